/**
 * Real traffic: every SIP datagram in the corpora's captures (MANIFEST.tsv rows `pcaps`) parses,
 * validates, serialises to its own bytes, and its SDP reads.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { mediaEndpoints, parse, serialize, validate } from './index.js';

const pcaps = new URL('../../../../shared/corpora/pcaps/', import.meta.url);

/** UDP payloads of IPv4 packets in a libpcap file (Ethernet with optional VLAN tags, or SLL). */
function udpPayloads(file: string): Buffer[] {
  const b = readFileSync(new URL(file, pcaps));
  const magic = b.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  const u32 = (o: number): number => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const link = u32(20);
  const out: Buffer[] = [];
  let off = 24;
  for (let guard = 0; off + 16 <= b.length && guard < 100_000; guard++) {
    const incl = u32(off + 8);
    const start = off + 16;
    off = start + incl;
    let p = start;
    if (link === 1) {
      let ethertype = b.readUInt16BE(p + 12);
      p += 14;
      while (ethertype === 0x8100) {
        ethertype = b.readUInt16BE(p + 2);
        p += 4;
      }
      if (ethertype !== 0x0800) continue;
    } else if (link === 113) {
      p += 16;
    } else continue;
    if ((b[p] ?? 0) >> 4 !== 4 || b[p + 9] !== 17) continue;
    const ihl = ((b[p] ?? 0) & 15) * 4;
    const total = b.readUInt16BE(p + 2);
    const udp = p + ihl;
    const udpLength = b.readUInt16BE(udp + 4);
    out.push(b.subarray(udp + 8, Math.min(udp + udpLength, p + total, off)));
  }
  return out;
}

const SIP_START = /^([A-Z]+ [a-zA-Z]+:|SIP\/2\.0 )/;

describe.each([
  ['aaa.pcap', 81],
  ['sip_rtp.pcap', 6],
  ['SIP_Eyebeam2Eyebeam_Video_Audio.pcap', 68],
])('%s', (file, count) => {
  const sip = udpPayloads(file).filter((p) => SIP_START.test(p.subarray(0, 40).toString('latin1')));

  it(`holds the ${count} SIP datagrams MANIFEST.tsv counts (RTP is not taken for SIP)`, () => {
    expect(sip).toHaveLength(count);
  });

  it('every SIP datagram parses, validates and serialises to its own bytes', () => {
    for (const payload of sip) {
      const r = parse(payload);
      expect(r.ok, r.ok ? '' : r.error.reason).toBe(true);
      if (!r.ok) continue;
      expect(validate(r.message)).toEqual({ ok: true });
      expect(Buffer.compare(serialize(r.message), payload)).toBe(0);
      expect(r.message.topVia()).toBeDefined();
      if (r.message.contentType() === 'application/sdp') {
        const media = mediaEndpoints(r.message.body);
        expect(media.ok, media.ok ? '' : media.error.reason).toBe(true);
      }
    }
  });
});
