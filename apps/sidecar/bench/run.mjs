// HEP packets per second through the sidecar's capture path, against the built dist/.
// Each case runs for a bounded time (BENCH_MS, default 1000 ms) after a short warm-up.
import { parse } from '@pinhole/sip';
import { CaptureNormalizer, decodeHep, encodeHep, HepStreamFramer } from '../dist/index.js';

const MS = Number(process.env.BENCH_MS ?? 1000);
const SERVER = { address: '198.18.0.1', port: 5060 };
const UA = { address: '198.18.0.10', port: 5060 };
const CALLEE = { address: '198.18.0.20', port: 5060 };

const sdp =
  'v=0\r\no=- 1 1 IN IP4 198.18.0.10\r\ns=-\r\nc=IN IP4 198.18.0.10\r\nt=0 0\r\n' +
  'm=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n';
function invite(callId, vias) {
  return [
    'INVITE sip:bob@198.18.0.20 SIP/2.0',
    ...vias.map((v) => `Via: ${v}`),
    'Max-Forwards: 70',
    'From: "Jörg Ünal" <sip:joerg@198.18.0.10>;tag=fa',
    'To: <sip:bob@198.18.0.20>',
    `Call-ID: ${callId}`,
    'CSeq: 1 INVITE',
    'Contact: <sip:joerg@198.18.0.10:5060>',
    'User-Agent: pinhole-bench',
    'Content-Type: application/sdp',
    `Content-Length: ${Buffer.byteLength(sdp)}`,
    '',
    sdp,
  ].join('\r\n');
}
const hep = (payload, src, dst, compress = false) =>
  encodeHep({
    srcAddress: src.address,
    dstAddress: dst.address,
    srcPort: src.port,
    dstPort: dst.port,
    timeSeconds: 1_700_000_000,
    captureId: 2001,
    payload,
    compress,
  });

// A pool of distinct calls, each mirrored as received and as sent (so de-duplication pairs them).
const POOL = 10_000;
const pairs = [];
for (let i = 0; i < POOL; i++) {
  const callId = `bench-${i}@198.18.0.10`;
  const ua = `SIP/2.0/UDP 198.18.0.10:5060;branch=z9hG4bKua${i}`;
  pairs.push(hep(invite(callId, [ua]), UA, SERVER));
  pairs.push(
    hep(invite(callId, [`SIP/2.0/UDP 198.18.0.1:5060;branch=z9hG4bKs${i}`, ua]), SERVER, CALLEE),
  );
}
const one = pairs[0];
const compressed = hep(
  invite('c@x', ['SIP/2.0/UDP 198.18.0.10:5060;branch=z9hG4bKc']),
  UA,
  SERVER,
  true,
);

function bench(name, fn) {
  const warm = Date.now() + Math.min(200, MS / 5);
  let i = 0;
  while (Date.now() < warm) fn(i++);
  let n = 0;
  const start = process.hrtime.bigint();
  const end = Date.now() + MS;
  while (Date.now() < end) {
    for (let k = 0; k < 256; k++) fn(n++);
  }
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  return { name, rate: n / secs, nsPer: (secs * 1e9) / n };
}

const results = [];
results.push(
  bench('decodeHep (INVITE with SDP, ' + one.length + ' B)', (i) => {
    const r = decodeHep(pairs[i % pairs.length]);
    if (!r.ok) throw new Error(r.error.code);
  }),
);
results.push(
  bench('decodeHep, compressed payload (zlib inflate)', () => {
    const r = decodeHep(compressed);
    if (!r.ok) throw new Error(r.error.code);
  }),
);
results.push(
  bench('decodeHep + @pinhole/sip parse', (i) => {
    const r = decodeHep(pairs[i % pairs.length]);
    if (!r.ok) throw new Error(r.error.code);
    const m = parse(r.packet.payload);
    if (!m.ok) throw new Error(m.error.code);
    m.message.callId();
  }),
);
{
  let settled = 0;
  const agent = { transport: 'udp', address: '198.18.0.1', port: 40000 };
  const n = new CaptureNormalizer({
    serverAddresses: [SERVER],
    parse,
    onObservation: () => undefined,
    onSettle: () => settled++,
  });
  results.push(
    bench('decode + parse + classify + de-duplicate (CaptureNormalizer)', (i) => {
      // Every packet is a new message (first) or its twin; the table is emptied on each wrap
      // around the pool so that no copy is seen as a retransmission of an earlier pass.
      if (i % pairs.length === 0) n.flush();
      const r = decodeHep(pairs[i % pairs.length]);
      if (!r.ok) throw new Error(r.error.code);
      if (n.push(r.packet, agent) === undefined) throw new Error('dropped');
    }),
  );
  n.flush();
  if (settled === 0) throw new Error('nothing settled');
}
{
  const stream = Buffer.concat(pairs.slice(0, 64));
  const chunks = [];
  for (let off = 0; off < stream.length; off += 1460) chunks.push(stream.subarray(off, off + 1460));
  let count = 0;
  const r = bench('TCP framing (1460-byte segments), per packet', () => {
    const f = new HepStreamFramer();
    for (const c of chunks) count += f.push(c).length;
  });
  results.push({ name: r.name, rate: r.rate * 64, nsPer: r.nsPer / 64 });
  if (count === 0) throw new Error('no packets framed');
}

console.log(`| case | packets/s | ns/packet |`);
console.log(`|---|---:|---:|`);
for (const r of results) {
  console.log(
    `| ${r.name} | ${Math.round(r.rate).toLocaleString('en-US')} | ${Math.round(r.nsPer).toLocaleString('en-US')} |`,
  );
}
