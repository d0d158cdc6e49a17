import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeHep } from './hep.js';
import { encodeHep } from './hep-encode.js';
import { HepStreamFramer, type HepStreamEvent } from './hep-stream.js';

const pkt = (i: number, size = 40): Buffer =>
  encodeHep({
    srcAddress: '198.18.0.10',
    dstAddress: '198.18.0.1',
    srcPort: 5060,
    dstPort: 5060,
    captureId: i,
    payload: `OPTIONS sip:x SIP/2.0\r\nCall-ID: ${i}\r\n${'x'.repeat(size)}\r\n\r\n`,
  });

function packets(events: HepStreamEvent[]): Buffer[] {
  return events.flatMap((e) => (e.type === 'packet' ? [e.bytes] : []));
}

describe('HepStreamFramer', () => {
  const stream = Buffer.concat([pkt(1), pkt(2, 300), pkt(3, 0)]);

  it('frames several packets that arrive in one chunk', () => {
    const f = new HepStreamFramer();
    const out = packets(f.push(stream));
    expect(out.map((b) => (decodeHep(b).ok ? 'ok' : 'bad'))).toEqual(['ok', 'ok', 'ok']);
    expect(Buffer.concat(out).equals(stream)).toBe(true);
    expect(f.buffered).toBe(0);
  });

  it('frames the same stream fed one byte at a time', () => {
    const f = new HepStreamFramer();
    const out: Buffer[] = [];
    for (const byte of stream) out.push(...packets(f.push(Uint8Array.of(byte))));
    expect(out).toHaveLength(3);
    expect(Buffer.concat(out).equals(stream)).toBe(true);
  });

  it('frames the stream split at every possible point', () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const f = new HepStreamFramer();
      const out = [
        ...packets(f.push(stream.subarray(0, cut))),
        ...packets(f.push(stream.subarray(cut))),
      ];
      expect(Buffer.concat(out).equals(stream)).toBe(true);
    }
  });

  it('frames any random split of the stream (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.nat({ max: stream.length }), { maxLength: 20 }), (cuts) => {
        const points = [...new Set(cuts)].sort((a, b) => a - b);
        const f = new HepStreamFramer();
        const out: Buffer[] = [];
        let prev = 0;
        for (const p of [...points, stream.length]) {
          out.push(...packets(f.push(stream.subarray(prev, p))));
          prev = p;
        }
        expect(Buffer.concat(out).equals(stream)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('closes the stream on garbage by default and ignores later input', () => {
    const f = new HepStreamFramer();
    const ev = f.push(Buffer.concat([pkt(1), Buffer.from('GET / HTTP/1.1\r\n'), pkt(2)]));
    expect(ev.map((e) => e.type)).toEqual(['packet', 'fatal']);
    expect(f.dead).toBe(true);
    expect(f.push(pkt(3))).toEqual([]);
  });

  it.each([0, 5])('treats a length field of %i as garbage', (len) => {
    const b = Buffer.from(pkt(1));
    b.writeUInt16BE(len, 4);
    expect(new HepStreamFramer().push(b).map((e) => e.type)).toEqual(['fatal']);
  });

  it('enforces maxPacketBytes before buffering the packet', () => {
    const f = new HepStreamFramer({ maxPacketBytes: 100 });
    const ev = f.push(pkt(1, 500).subarray(0, 6));
    expect(ev[0]?.type).toBe('fatal');
  });

  it('resyncs to the next HEP3 magic when asked, counting the garbage', () => {
    const f = new HepStreamFramer({ onGarbage: 'resync' });
    const junk = Buffer.from('\x00\x01garbageHEPnotHEP3');
    const events: HepStreamEvent[] = [];
    const all = Buffer.concat([junk, pkt(1), Buffer.from('zz'), pkt(2)]);
    for (const byte of all) events.push(...f.push(Uint8Array.of(byte)));
    expect(packets(events)).toHaveLength(2);
    const garbage = events.reduce((n, e) => n + (e.type === 'garbage' ? e.bytes : 0), 0);
    // "HEP3" inside the junk is the last 4 bytes; it starts a "packet" whose length is garbage.
    expect(garbage).toBeGreaterThanOrEqual(junk.length - 4 + 2);
    expect(f.dead).toBe(false);
  });

  it('gives up after maxGarbageBytes of garbage in resync mode', () => {
    const f = new HepStreamFramer({ onGarbage: 'resync', maxGarbageBytes: 1000 });
    const ev = f.push(Buffer.alloc(5000, 0x41));
    expect(ev.at(-1)?.type).toBe('fatal');
    expect(f.buffered).toBe(0);
  });

  it('holds at most 3 bytes of garbage while looking for a magic split across chunks', () => {
    const f = new HepStreamFramer({ onGarbage: 'resync' });
    f.push(Buffer.from('xxxxxxHEP'));
    expect(f.buffered).toBe(3);
    expect(packets(f.push(pkt(9).subarray(3)))).toHaveLength(1);
  });

  it('never throws and never buffers more than one packet on random input (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 30 }),
        fc.boolean(),
        (chunks, resync) => {
          const f = new HepStreamFramer({ onGarbage: resync ? 'resync' : 'close' });
          for (const c of chunks) {
            f.push(Buffer.concat([c.length % 3 === 0 ? Buffer.from('HEP3') : Buffer.alloc(0), c]));
            expect(f.buffered).toBeLessThanOrEqual(65_535 + 300 + 4);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('HepStreamFramer with the captured Kamailio packet', () => {
  const hex = readFileSync(
    new URL('../test/fixtures/kamailio-5.6-invite-received.hex', import.meta.url),
    'utf8',
  ).trim();
  const kam = Buffer.from(hex, 'hex');
  const stream = Buffer.concat([kam, pkt(7), kam]);

  it.each([
    ['whole', stream.length],
    ['one byte at a time', 1],
  ])('frames and decodes it %s', (_how, step) => {
    const f = new HepStreamFramer();
    const out: Buffer[] = [];
    for (let off = 0; off < stream.length; off += step) {
      out.push(...packets(f.push(stream.subarray(off, off + step))));
    }
    expect(out).toHaveLength(3);
    expect(out[0]?.equals(kam)).toBe(true);
    const d = decodeHep(out[2] ?? Buffer.alloc(0));
    expect(d.ok && d.packet.captureId).toBe(2001);
  });
});
