import { constants } from 'node:os';
import { describe, expect, it } from 'vitest';
import {
  NFNL_MSG_BATCH_BEGIN,
  NFNL_MSG_BATCH_END,
  NFT_MSG_DELSETELEM,
  NFT_MSG_NEWSETELEM,
  ReplyDecoder,
  commentUserdata,
  decodeUserdata,
  describeError,
  emptyNewSetElem,
  encodeBatchFrame,
  holeKeyBytes,
  keyBytes,
  setElemLayout,
  type SetElemMessage,
} from './nfnl.js';

/** A minimal netlink reader for the tests: messages, then attributes. */
interface Msg {
  len: number;
  type: number;
  flags: number;
  seq: number;
  family: number;
  resId: number;
  body: Buffer;
}

function messages(b: Buffer): Msg[] {
  const out: Msg[] = [];
  let at = 0;
  while (at < b.length) {
    const len = b.readUInt32LE(at);
    out.push({
      len,
      type: b.readUInt16LE(at + 4),
      flags: b.readUInt16LE(at + 6),
      seq: b.readUInt32LE(at + 8),
      family: b[at + 16] as number,
      resId: b.readUInt16BE(at + 18),
      body: b.subarray(at + 20, at + len),
    });
    at += (len + 3) & ~3;
  }
  return out;
}

interface Attr {
  type: number;
  nested: boolean;
  value: Buffer;
}

function attrs(b: Buffer): Attr[] {
  const out: Attr[] = [];
  let at = 0;
  while (at + 4 <= b.length) {
    const len = b.readUInt16LE(at);
    const t = b.readUInt16LE(at + 2);
    expect(len).toBeGreaterThanOrEqual(4);
    out.push({ type: t & 0x3fff, nested: (t & 0x8000) !== 0, value: b.subarray(at + 4, at + len) });
    at += (len + 3) & ~3;
  }
  expect(at).toBe(b.length);
  return out;
}

const hex = (b: Buffer): string => b.toString('hex');

describe('nf_tables element keys', () => {
  it('pads every component of a concatenated key to 4 bytes, the port in network order', () => {
    // `nft --debug=netlink add element inet t h4d { 198.19.0.1 . 17 . 40000 }` prints the key
    // as 010013c6 00000011 0000409c (host-order words): bytes c6 13 00 01, 11 00 00 00, 9c 40 00 00.
    const { keys, keyLen } = keyBytes(['198.19.0.1 . 17 . 40000']);
    expect(keyLen).toBe(12);
    expect(hex(keys)).toBe('c6130001' + '11000000' + '9c400000');
  });

  it('encodes several keys of one shape back to back, with a source address first', () => {
    const { keys, keyLen } = keyBytes([
      '198.18.0.9 . 198.19.0.1 . 6 . 5060',
      '198.18.0.9 . 198.19.0.1 . 6 . 5061',
    ]);
    expect(keyLen).toBe(16);
    expect(hex(keys)).toBe(
      'c6120009c613000106000000' + '13c40000' + 'c6120009c613000106000000' + '13c50000',
    );
  });

  it('encodes IPv6 addresses as 16 bytes', () => {
    const { keys, keyLen } = keyBytes(['2001:db8::1 . 2001:db8::2 . 132 . 65535']);
    expect(keyLen).toBe(40);
    expect(hex(keys)).toBe(
      '20010db8000000000000000000000001' +
        '20010db8000000000000000000000002' +
        '84000000' +
        'ffff0000',
    );
  });

  it('builds the same keys from a hole (addresses, protocol, port range) as from their text', () => {
    expect(holeKeyBytes(undefined, '198.19.0.1', 17, [40000, 40001])).toEqual(
      keyBytes(['198.19.0.1 . 17 . 40000', '198.19.0.1 . 17 . 40001']),
    );
    expect(holeKeyBytes('2001:db8::1', '2001:db8::2', 6, [5060, 5060])).toEqual(
      keyBytes(['2001:db8::1 . 2001:db8::2 . 6 . 5060']),
    );
    expect(() => holeKeyBytes(undefined, '198.19.1.999', 17, [1, 1])).toThrow(RangeError);
  });

  it.each([
    ['198.19.1.999 . 17 . 40000'],
    ['198.19.1.1 . 256 . 40000'],
    ['198.19.1.1 . 17 . 65536'],
    ['198.19.1.1 . 17'],
    ['198.19.1.1 . x . 1'],
  ])('refuses the bad key %s with a RangeError', (k) => {
    expect(() => keyBytes([k])).toThrow(RangeError);
  });

  it('refuses keys of different shapes in one call', () => {
    expect(() => keyBytes(['198.19.0.1 . 17 . 1', '2001:db8::1 . 17 . 1'])).toThrow(RangeError);
  });
});

describe('element comment userdata', () => {
  it('is the TLV the nft CLI writes: type 0, length with the NUL, text, NUL', () => {
    // `nft --debug=netlink ... comment "ph1;o=x"` prints userdata = { \x00\x08ph1;o=x\x00 }.
    expect(commentUserdata('ph1;o=x')).toEqual(Buffer.from('\x00\x08ph1;o=x\x00', 'latin1'));
  });

  it('round-trips, and skips other TLVs', () => {
    const c = 'ph1;o=127.0.0.1;t=60;x=1800000000000;dp=40000-40001';
    expect(decodeUserdata(commentUserdata(c))).toBe(c);
    const flags = Buffer.from([1, 4, 0, 0, 0, 1]);
    expect(decodeUserdata(Buffer.concat([flags, commentUserdata('a')]))).toBe('a');
    expect(decodeUserdata(Buffer.from([0, 9, 65]))).toBeUndefined();
  });

  it('refuses a comment that does not fit one length byte', () => {
    expect(() => commentUserdata('x'.repeat(255))).toThrow(RangeError);
  });
});

describe('set-element batches', () => {
  const key = keyBytes(['198.19.0.1 . 17 . 40000', '198.19.0.1 . 17 . 40001']);
  const add: SetElemMessage = {
    kind: 'new',
    set: 'h4d',
    keys: key.keys,
    keyLen: key.keyLen,
    timeoutMs: 30_000,
    userdata: commentUserdata('ph1;o=a;t=30'),
  };
  const del: SetElemMessage = { ...add, kind: 'del', timeoutMs: 0, userdata: undefined };

  it('frames BEGIN, the messages and END with consecutive sequence numbers', () => {
    const frame = encodeBatchFrame(7, 'pinhole', [add, del], 1000);
    expect(frame.readUInt32LE(0)).toBe(frame.length - 8);
    expect(frame.readUInt32LE(4)).toBe(7);
    const m = messages(frame.subarray(8));
    expect(m.map((x) => x.type)).toEqual([
      NFNL_MSG_BATCH_BEGIN,
      (10 << 8) | NFT_MSG_NEWSETELEM,
      (10 << 8) | NFT_MSG_DELSETELEM,
      NFNL_MSG_BATCH_END,
    ]);
    expect(m.map((x) => x.seq)).toEqual([1000, 1001, 1002, 1003]);
    // BEGIN/END: family unspec, res_id NFNL_SUBSYS_NFTABLES; no ACK asked for them.
    expect([m[0]?.family, m[0]?.resId, m[0]?.flags]).toEqual([0, 10, 0x1]);
    expect([m[3]?.family, m[3]?.resId, m[3]?.flags]).toEqual([0, 10, 0x1]);
    // NEWSETELEM: REQUEST | ACK | CREATE (no EXCL: an existing element is not an error);
    // DELSETELEM: REQUEST | ACK. Family inet.
    expect([m[1]?.family, m[1]?.flags]).toEqual([1, 0x1 | 0x4 | 0x400]);
    expect([m[2]?.family, m[2]?.flags]).toEqual([1, 0x1 | 0x4]);
  });

  it('carries table, set, and per element the key, the timeout (ms, be64) and the comment', () => {
    const [, msg] = messages(encodeBatchFrame(1, 'pinhole', [add], 1).subarray(8));
    const top = attrs(msg?.body ?? Buffer.alloc(0));
    expect(top.map((a) => [a.type, a.nested])).toEqual([
      [1, false],
      [2, false],
      [3, true],
    ]);
    expect(top[0]?.value.toString('latin1')).toBe('pinhole\0');
    expect(top[1]?.value.toString('latin1')).toBe('h4d\0');
    const elems = attrs(top[2]?.value ?? Buffer.alloc(0));
    expect(elems).toHaveLength(2);
    const ports: string[] = [];
    for (const e of elems) {
      expect([e.type, e.nested]).toEqual([1, true]);
      const [k, timeout, ud] = attrs(e.value);
      expect([k?.type, k?.nested, timeout?.type, ud?.type]).toEqual([1, true, 4, 6]);
      const [value] = attrs(k?.value ?? Buffer.alloc(0));
      expect(value?.type).toBe(1);
      ports.push(hex(value?.value ?? Buffer.alloc(0)));
      expect(timeout?.value.readBigUInt64BE()).toBe(30_000n);
      expect(decodeUserdata(ud?.value ?? Buffer.alloc(0))).toBe('ph1;o=a;t=30');
    }
    expect(ports).toEqual(['c613000111000000' + '9c400000', 'c613000111000000' + '9c410000']);
  });

  it('sends only the keys in a deletion, and no timeout for TIMER 0', () => {
    const [, d] = messages(encodeBatchFrame(1, 'pinhole', [del], 1).subarray(8));
    const elems = attrs(attrs(d?.body ?? Buffer.alloc(0))[2]?.value ?? Buffer.alloc(0));
    expect(elems.map((e) => attrs(e.value).map((a) => a.type))).toEqual([[1], [1]]);
    const forever = { ...add, timeoutMs: 0 };
    const [, f] = messages(encodeBatchFrame(1, 'pinhole', [forever], 1).subarray(8));
    const fe = attrs(attrs(f?.body ?? Buffer.alloc(0))[2]?.value ?? Buffer.alloc(0));
    expect(fe.map((e) => attrs(e.value).map((a) => a.type))).toEqual([
      [1, 6],
      [1, 6],
    ]);
  });

  it('encodes an empty element list (the start-up probe)', () => {
    const probe = { ...del, keys: Buffer.alloc(0), keyLen: 0 };
    const [, m] = messages(encodeBatchFrame(1, 'pinhole', [probe], 1).subarray(8));
    expect(attrs(attrs(m?.body ?? Buffer.alloc(0))[2]?.value ?? Buffer.alloc(0))).toEqual([]);
    // The probe the backend sends: a NEWSETELEM with no element, asking for an ACK.
    const [, p] = messages(encodeBatchFrame(1, 'pinhole', [emptyNewSetElem('h4d')], 1).subarray(8));
    expect(p?.type).toBe((10 << 8) | NFT_MSG_NEWSETELEM);
    expect(attrs(attrs(p?.body ?? Buffer.alloc(0))[2]?.value ?? Buffer.alloc(0))).toEqual([]);
  });
});

describe('helper replies', () => {
  function reply(id: number, recs: [number, number, number][]): Buffer {
    const b = Buffer.alloc(8 + 12 * recs.length);
    b.writeUInt32LE(recs.length, 0);
    b.writeUInt32LE(id, 4);
    recs.forEach(([seq, err, off], i) => {
      b.writeUInt32LE(seq, 8 + 12 * i);
      b.writeInt32LE(err, 12 + 12 * i);
      b.writeUInt32LE(off, 16 + 12 * i);
    });
    return b;
  }
  const wire = Buffer.concat([
    reply(0, []),
    reply(5, [
      [11, 0, 0xffffffff],
      [12, -2, 40],
    ]),
  ]);
  const expected = [
    { id: 0, records: [] },
    {
      id: 5,
      records: [
        { seq: 11, errno: 0, offset: undefined },
        { seq: 12, errno: 2, offset: 40 },
      ],
    },
  ];

  it('decodes replies arriving whole', () => {
    const d = new ReplyDecoder();
    expect(d.push(wire)).toEqual(expected);
    expect(d.pendingBytes).toBe(0);
  });

  it('decodes replies arriving one byte at a time', () => {
    const d = new ReplyDecoder();
    const out = [];
    for (let i = 0; i < wire.length; i++) out.push(...d.push(wire.subarray(i, i + 1)));
    expect(out).toEqual(expected);
    expect(d.pendingBytes).toBe(0);
  });
});

describe('kernel errors', () => {
  const { ENOENT, EEXIST, EINVAL } = constants.errno;
  const layout = setElemLayout('pinhole');

  it('names the table, the set or the element the kernel blamed', () => {
    expect(describeError('new', 'pinhole', 'h4d', ENOENT, layout.tableAt)).toBe(
      'table inet pinhole does not exist (ENOENT)',
    );
    expect(describeError('new', 'pinhole', 'h4d', ENOENT, layout.setAt)).toBe(
      'set inet pinhole h4d does not exist (ENOENT)',
    );
    expect(describeError('del', 'pinhole', 'h4d', ENOENT, 60)).toBe(
      'element does not exist in inet pinhole h4d (ENOENT)',
    );
    expect(describeError('new', 'pinhole', 'h4d', EEXIST, undefined)).toBe(
      'element already exists in inet pinhole h4d (EEXIST)',
    );
    expect(describeError('new', 'pinhole', 'h4d', EINVAL, undefined)).toContain('invalid key');
  });
});
