import { readFileSync } from 'node:fs';
import { deflateRawSync, deflateSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeHep,
  HepChunk,
  HepErrorCode,
  HepVendor,
  hepProtocolName,
  type HepDecodeResult,
} from './hep.js';
import { encodeHep, hepChunk, hepFrame } from './hep-encode.js';

const SIP =
  'INVITE sip:bob@198.18.0.20 SIP/2.0\r\n' +
  'Via: SIP/2.0/UDP 198.18.0.10:5060;branch=z9hG4bK776asdhds\r\n' +
  'From: "Jörg Ünal 山田" <sip:joerg@198.18.0.10>;tag=1928301774\r\n' +
  'To: <sip:bob@198.18.0.20>\r\n' +
  'Call-ID: a84b4c76e66710\r\n' +
  'CSeq: 314159 INVITE\r\n' +
  'Content-Length: 0\r\n\r\n';

function ok(r: HepDecodeResult) {
  if (!r.ok) throw new Error(`expected a packet, got ${r.error.code}: ${r.error.reason}`);
  return r.packet;
}

function errCode(r: HepDecodeResult): string {
  return r.ok ? 'ok' : r.error.code;
}

/** Encode SIP from 198.18.0.10:1 to 198.18.0.1:2 (with `extra` on top) and decode it again. */
function roundTrip(extra: Partial<Parameters<typeof encodeHep>[0]> = {}) {
  return ok(
    decodeHep(
      encodeHep({
        srcAddress: '198.18.0.10',
        dstAddress: '198.18.0.1',
        srcPort: 1,
        dstPort: 2,
        payload: SIP,
        ...extra,
      }),
    ),
  );
}

const g = HepVendor.generic;
const u8 = (...b: number[]) => Uint8Array.from(b);

describe('decodeHep: well-formed packets', () => {
  it('decodes an IPv4 SIP packet with every generic chunk Kamailio sends', () => {
    const buf = encodeHep({
      srcAddress: '198.18.0.10',
      dstAddress: '198.18.0.1',
      srcPort: 5060,
      dstPort: 5061,
      timeSeconds: 1_700_000_000,
      timeMicros: 123_456,
      captureId: 2001,
      payload: SIP,
    });
    const p = ok(decodeHep(buf));
    expect(p).toMatchObject({
      version: 3,
      length: buf.length,
      ipFamily: 2,
      ipProtocol: 17,
      srcAddress: '198.18.0.10',
      dstAddress: '198.18.0.1',
      srcPort: 5060,
      dstPort: 5061,
      timeSeconds: 1_700_000_000,
      timeMicros: 123_456,
      protocolType: 1,
      captureId: 2001,
      compressed: false,
      skippedChunks: 0,
    });
    expect(p.otherChunks).toEqual([]);
    expect(hepProtocolName(p.protocolType)).toBe('sip');
  });

  it('keeps the payload as bytes, so non-ASCII display names survive exactly', () => {
    const p = roundTrip();
    expect(Buffer.from(p.payload ?? new Uint8Array()).equals(Buffer.from(SIP, 'utf8'))).toBe(true);
    expect(Buffer.from(p.payload ?? new Uint8Array()).toString('utf8')).toContain(
      '"Jörg Ünal 山田"',
    );
  });

  it('decodes IPv6 addresses to RFC 5952 text', () => {
    const p = ok(
      decodeHep(
        encodeHep({
          srcAddress: '2001:DB8:0:0:0:0:0:1',
          dstAddress: '2001:db8:0:1:0:0:0:2',
          srcPort: 5060,
          dstPort: 5060,
          payload: SIP,
        }),
      ),
    );
    expect(p.ipFamily).toBe(10);
    expect(p.srcAddress).toBe('2001:db8::1');
    expect(p.dstAddress).toBe('2001:db8:0:1::2');
  });

  it('inflates a zlib-compressed payload (chunk 0x0010)', () => {
    const p = roundTrip({ compress: true });
    expect(p.compressed).toBe(true);
    expect(Buffer.from(p.payload ?? new Uint8Array()).toString('utf8')).toBe(SIP);
  });

  it.each([
    ['gzip', gzipSync],
    ['raw deflate', deflateRawSync],
    ['zlib', deflateSync],
  ])('accepts a %s compressed payload', (_name, fn) => {
    const buf = encodeHep({
      srcAddress: '198.18.0.10',
      dstAddress: '198.18.0.1',
      srcPort: 1,
      dstPort: 2,
      extraChunks: [{ typeId: HepChunk.compressedPayload, data: fn(Buffer.from(SIP)) }],
    });
    expect(Buffer.from(ok(decodeHep(buf)).payload ?? []).toString('utf8')).toBe(SIP);
  });

  it('keeps vendor chunks with their vendor id and skips the excess safely', () => {
    const extra = Array.from({ length: 20 }, (_, i) => ({
      vendorId: HepVendor.opensips,
      typeId: 0x20 + i,
      data: u8(i, i + 1),
    }));
    const p = ok(
      decodeHep(
        encodeHep({
          srcAddress: '198.18.0.10',
          dstAddress: '198.18.0.1',
          srcPort: 1,
          dstPort: 2,
          payload: SIP,
          extraChunks: extra,
        }),
        { maxOtherChunks: 4 },
      ),
    );
    expect(p.otherChunks).toHaveLength(4);
    expect(p.otherChunks[0]).toMatchObject({ vendorId: 3, typeId: 0x20 });
    expect(Array.from(p.otherChunks[0]?.data ?? [])).toEqual([0, 1]);
    expect(p.skippedChunks).toBe(16);
    expect(p.payload?.length).toBe(Buffer.byteLength(SIP));
  });

  it('treats a vendor chunk that reuses a generic type number as the vendor’s, not generic', () => {
    const p = roundTrip({
      extraChunks: [{ vendorId: HepVendor.kamailio, typeId: HepChunk.payload, data: u8(1, 2, 3) }],
    });
    expect(Buffer.from(p.payload ?? []).toString()).toBe(SIP);
    expect(p.otherChunks.map((c) => [c.vendorId, c.typeId, Array.from(c.data)])).toEqual([
      [2, HepChunk.payload, [1, 2, 3]],
    ]);
  });

  it('reads the auth key, correlation id and node name', () => {
    const p = roundTrip({
      authKey: 's3cret',
      correlationId: 'a84b4c76e66710',
      nodeName: 'kamailio-1',
    });
    expect(Buffer.from(p.authKey ?? []).toString()).toBe('s3cret');
    expect(Buffer.from(p.correlationId ?? []).toString()).toBe('a84b4c76e66710');
    expect(p.nodeName).toBe('kamailio-1');
  });

  it('accepts a 16-bit capture id chunk from older agents', () => {
    const buf = hepFrame([
      hepChunk(g, HepChunk.captureId, u8(0x07, 0xd1)),
      hepChunk(g, HepChunk.payload, Buffer.from(SIP)),
    ]);
    expect(ok(decodeHep(buf)).captureId).toBe(2001);
  });

  it('reads 32-bit values above 2^31 as unsigned', () => {
    const buf = hepFrame([
      hepChunk(g, HepChunk.captureId, u8(0xff, 0xff, 0xff, 0xfe)),
      hepChunk(g, HepChunk.timeSeconds, u8(0x80, 0, 0, 0)),
    ]);
    const p = ok(decodeHep(buf));
    expect(p.captureId).toBe(0xfffffffe);
    expect(p.timeSeconds).toBe(0x80000000);
  });

  it('decodes a header-only packet (no chunks) as empty', () => {
    const p = ok(decodeHep(hepFrame([])));
    expect(p.length).toBe(6);
    expect(p.payload).toBeUndefined();
  });

  it('decodes a packet captured from Kamailio 5.6 siptrace (trace_mode=1)', () => {
    const hex = readFileSync(
      new URL('../test/fixtures/kamailio-5.6-invite-received.hex', import.meta.url),
      'utf8',
    ).trim();
    const p = ok(decodeHep(Buffer.from(hex, 'hex')));
    expect(p).toMatchObject({
      ipFamily: 2,
      ipProtocol: 17,
      srcAddress: '127.0.0.1',
      dstAddress: '127.0.0.1',
      srcPort: 51418,
      dstPort: 54518,
      protocolType: 1,
      captureId: 2001,
      nodeName: undefined,
      correlationId: undefined,
    });
    const text = Buffer.from(p.payload ?? []).toString('utf8');
    expect(text.startsWith('INVITE sip:callee@127.0.0.1:49071 SIP/2.0\r\n')).toBe(true);
    expect(text).toContain('From: "Jörg Ünal" <sip:alice@127.0.0.1>;tag=fa');
  });
});

describe('decodeHep: truncated and hostile packets are errors, never throws', () => {
  const good = encodeHep({
    srcAddress: '198.18.0.10',
    dstAddress: '198.18.0.1',
    srcPort: 1,
    dstPort: 2,
    payload: SIP,
  });

  it('rejects fewer than 6 bytes', () => {
    for (let n = 0; n < 6; n++)
      expect(errCode(decodeHep(good.subarray(0, n)))).toBe(HepErrorCode.tooShort);
  });

  it('rejects HEP v1/v2 and anything not starting with HEP3', () => {
    expect(errCode(decodeHep(Buffer.from('HEP2\x00\x06')))).toBe(HepErrorCode.badMagic);
    expect(errCode(decodeHep(u8(0x02, 0x10, 0x02, 0x11, 0, 0, 0, 0)))).toBe(HepErrorCode.badMagic);
  });

  it('rejects every truncation of a valid packet', () => {
    for (let n = 6; n < good.length; n++) {
      expect(errCode(decodeHep(good.subarray(0, n)))).toBe(HepErrorCode.badLength);
    }
  });

  it('rejects a total length below the header size, or above the bytes present', () => {
    for (const total of [0, 1, 5, good.length + 1, 0xffff]) {
      const b = Buffer.from(good);
      b.writeUInt16BE(total, 4);
      expect(errCode(decodeHep(b))).toBe(HepErrorCode.badLength);
    }
  });

  it('rejects bytes after the packet unless told to allow them', () => {
    const b = Buffer.concat([good, Buffer.from('xx')]);
    expect(errCode(decodeHep(b))).toBe(HepErrorCode.trailingBytes);
    expect(ok(decodeHep(b, { allowTrailingBytes: true })).length).toBe(good.length);
  });

  it('rejects a total length that cuts a chunk header or a chunk in two', () => {
    // Lie in the header: claim fewer bytes than the chunks need.
    for (const total of [7, 10, 11, 12, 14]) {
      const b = Buffer.from(good.subarray(0, total));
      b.writeUInt16BE(total, 4);
      expect(errCode(decodeHep(b))).toBe(HepErrorCode.badChunkLength);
    }
  });

  it.each([0, 1, 5])(
    'rejects a chunk length of %i (below the chunk header; no infinite loop)',
    (len) => {
      const c = hepChunk(g, 0x99, u8());
      c.writeUInt16BE(len, 4);
      expect(errCode(decodeHep(hepFrame([c])))).toBe(HepErrorCode.badChunkLength);
    },
  );

  it('rejects a chunk length running past the packet, for every chunk of a valid packet', () => {
    let off = 6;
    while (off < good.length) {
      const len = good.readUInt16BE(off + 4);
      const b = Buffer.from(good);
      b.writeUInt16BE(good.length - off + 1, off + 4);
      expect(errCode(decodeHep(b))).toBe(HepErrorCode.badChunkLength);
      const huge = Buffer.from(good);
      huge.writeUInt16BE(0xffff, off + 4);
      expect(errCode(decodeHep(huge))).toBe(HepErrorCode.badChunkLength);
      off += len;
    }
  });

  it.each([
    ['IP family', HepChunk.ipFamily, 2],
    ['IPv4 source', HepChunk.ipv4Src, 16],
    ['IPv6 destination', HepChunk.ipv6Dst, 4],
    ['source port', HepChunk.srcPort, 4],
    ['timestamp', HepChunk.timeSeconds, 8],
    ['capture id', HepChunk.captureId, 3],
    ['protocol type', HepChunk.protocolType, 0],
  ])('rejects a %s chunk of the wrong size', (_n, type, size) => {
    expect(errCode(decodeHep(hepFrame([hepChunk(g, type, new Uint8Array(size))])))).toBe(
      HepErrorCode.badChunkSize,
    );
  });

  it('accepts zero-length variable chunks (empty payload, empty key)', () => {
    const p = ok(
      decodeHep(
        hepFrame([hepChunk(g, HepChunk.payload, u8()), hepChunk(g, HepChunk.authKey, u8())]),
      ),
    );
    expect(p.payload?.length).toBe(0);
    expect(p.authKey?.length).toBe(0);
  });

  it('rejects a generic chunk given twice (no second auth key or payload smuggled in)', () => {
    const twice = hepFrame([
      hepChunk(g, HepChunk.authKey, Buffer.from('right')),
      hepChunk(g, HepChunk.authKey, Buffer.from('wrong')),
    ]);
    expect(errCode(decodeHep(twice))).toBe(HepErrorCode.duplicateChunk);
    const v4v6 = hepFrame([
      hepChunk(g, HepChunk.ipv4Src, u8(1, 2, 3, 4)),
      hepChunk(g, HepChunk.ipv6Src, new Uint8Array(16)),
    ]);
    expect(errCode(decodeHep(v4v6))).toBe(HepErrorCode.duplicateChunk);
  });

  it('rejects a payload and a compressed payload together', () => {
    const b = hepFrame([
      hepChunk(g, HepChunk.payload, u8(1)),
      hepChunk(g, HepChunk.compressedPayload, deflateSync(u8(2))),
    ]);
    expect(errCode(decodeHep(b))).toBe(HepErrorCode.twoPayloads);
  });

  it('rejects address chunks that contradict the IP family', () => {
    const b = hepFrame([
      hepChunk(g, HepChunk.ipFamily, u8(10)),
      hepChunk(g, HepChunk.ipv4Src, u8(1, 2, 3, 4)),
    ]);
    expect(errCode(decodeHep(b))).toBe(HepErrorCode.familyMismatch);
    const mixed = hepFrame([
      hepChunk(g, HepChunk.ipv4Src, u8(1, 2, 3, 4)),
      hepChunk(g, HepChunk.ipv6Dst, new Uint8Array(16)),
    ]);
    expect(errCode(decodeHep(mixed))).toBe(HepErrorCode.familyMismatch);
  });

  it('bounds the number of chunks', () => {
    const many = hepFrame(Array.from({ length: 300 }, () => hepChunk(7, 1, u8())));
    expect(errCode(decodeHep(many))).toBe(HepErrorCode.tooManyChunks);
    expect(ok(decodeHep(many, { maxChunks: 300 })).skippedChunks).toBe(300 - 16);
  });

  it('rejects a compressed payload that is not compressed data', () => {
    const b = hepFrame([
      hepChunk(g, HepChunk.compressedPayload, Buffer.from('definitely not deflate')),
    ]);
    expect(errCode(decodeHep(b))).toBe(HepErrorCode.inflateFailed);
    const gz = gzipSync(Buffer.from(SIP));
    const cut = hepFrame([hepChunk(g, HepChunk.compressedPayload, gz.subarray(0, gz.length - 12))]);
    expect(errCode(decodeHep(cut))).toBe(HepErrorCode.inflateFailed);
  });

  it('stops a compression bomb at maxInflatedBytes', () => {
    const bomb = deflateSync(Buffer.alloc(10_000_000));
    expect(bomb.length).toBeLessThan(65_000);
    const b = hepFrame([hepChunk(g, HepChunk.compressedPayload, bomb)]);
    expect(errCode(decodeHep(b))).toBe(HepErrorCode.inflateTooLarge);
    expect(errCode(decodeHep(b, { maxInflatedBytes: 100_000 }))).toBe(HepErrorCode.inflateTooLarge);
  });

  it('reports the offset of the faulty length field', () => {
    const c = hepChunk(g, 0x99, u8());
    c.writeUInt16BE(2, 4);
    const r = decodeHep(hepFrame([hepChunk(g, HepChunk.srcPort, u8(0, 1)), c]));
    expect(r.ok ? -1 : r.error.offset).toBe(6 + 8 + 4);
  });
});

describe('decodeHep: properties', () => {
  const valid = fc
    .record({
      v6: fc.boolean(),
      srcPort: fc.integer({ min: 0, max: 65535 }),
      dstPort: fc.integer({ min: 0, max: 65535 }),
      captureId: fc.nat(),
      payload: fc.uint8Array({ maxLength: 2000 }),
      compress: fc.boolean(),
      authKey: fc.option(fc.string({ maxLength: 20 }), { nil: undefined }),
    })
    .map((r) =>
      encodeHep({
        srcAddress: r.v6 ? '2001:db8::1' : '198.18.0.1',
        dstAddress: r.v6 ? '2001:db8::2' : '198.18.0.2',
        srcPort: r.srcPort,
        dstPort: r.dstPort,
        captureId: r.captureId,
        payload: r.payload,
        compress: r.compress,
        ...(r.authKey !== undefined ? { authKey: r.authKey } : {}),
      }),
    );

  it('round-trips what the encoder writes', () => {
    fc.assert(
      fc.property(valid, (buf) => {
        const r = decodeHep(buf);
        expect(r.ok).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('never throws on random bytes, with or without the magic', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.boolean(), (bytes, magic) => {
        const b = magic ? Buffer.concat([Buffer.from('HEP3'), Buffer.from(bytes)]) : bytes;
        const r = decodeHep(b);
        expect(typeof r.ok).toBe('boolean');
      }),
      { numRuns: 2000 },
    );
  });

  it('never throws on valid packets with random bytes overwritten (lying length fields)', () => {
    fc.assert(
      fc.property(
        valid,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 8,
        }),
        (buf, edits) => {
          const b = Buffer.from(buf);
          for (const [pos, val] of edits) b[pos % b.length] = val;
          const r = decodeHep(b);
          if (r.ok) {
            // Whatever decodes stays inside the packet and the inflate bound.
            expect(r.packet.length).toBeLessThanOrEqual(b.length);
            expect(r.packet.payload?.length ?? 0).toBeLessThanOrEqual(65_535);
          } else {
            expect(r.error.code).toMatch(/^HEP_ERR_/);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('never throws on deep garbage: thousands of random chunks', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            vendor: fc.integer({ min: 0, max: 3 }),
            type: fc.integer({ min: 0, max: 0x22 }),
            data: fc.uint8Array({ maxLength: 20 }),
          }),
          { maxLength: 3000 },
        ),
        (chunks) => {
          const parts = chunks.map((c) => hepChunk(c.vendor, c.type, c.data));
          const total = 6 + parts.reduce((n, p) => n + p.length, 0);
          if (total > 0xffff) return;
          const r = decodeHep(hepFrame(parts), { maxChunks: 20_000 });
          expect(typeof r.ok).toBe('boolean');
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('IPv6 text (RFC 5952 §4.2.3, as @pinhole/policy writes it)', () => {
  it.each([
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8:0:1:0:0:0:2', '2001:db8:0:1::2'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['0:0:0:0:0:0:0:0', '::'],
    // IPv4-mapped stays IPv6 text in the packet; the normalizer unmaps it.
    ['::ffff:198.18.0.1', '::ffff:c612:1'],
    ['0:0:0:0:0:ffff:c612:1', '::ffff:c612:1'],
  ])('formats %s as %s', (input, want) => {
    const p = decodeHep(
      encodeHep({ srcAddress: input, dstAddress: '::1', srcPort: 1, dstPort: 2 }),
    );
    expect(p.ok && p.packet.srcAddress).toBe(want);
  });
});
