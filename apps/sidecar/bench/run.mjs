// HEP packets per second through the sidecar's capture path, against the built dist/.
// Each case runs for a bounded time (BENCH_MS, default 1000 ms) after a short warm-up.
import { FcpClient, FcpServer, MemoryBackend } from '@pinhole/fcp';
import { MetricsRegistry } from '@pinhole/metrics';
import { Policy } from '@pinhole/policy';
import { parse } from '@pinhole/sip';
import {
  CaptureNormalizer,
  createEngineControlMetrics,
  decodeHep,
  encodeHep,
  EnginePinholeControl,
  HepStreamFramer,
} from '../dist/index.js';

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

// The media window: from the 200 OK's sent copy reaching the normalizer to the last of its
// pinholes acknowledged by an FCP server (memory backend) over loopback TCP. The sidecar cannot
// hold the 200, so media sent in this window meets a closed firewall (plus the capture lag).
{
  const fcpd = new FcpServer(
    {
      listen: [{ transport: 'tcp', host: '127.0.0.1', port: 0 }],
      policy: { protectedNetworks: ['198.18.0.0/16'], ownAddresses: ['198.18.0.1'] },
      limits: { ratePerSec: 0, maxRulesPerClient: 100_000 },
    },
    new MemoryBackend(),
  );
  await fcpd.start();
  const fcp = new FcpClient({
    servers: [{ host: '127.0.0.1', port: fcpd.addresses()[0].port }],
    keepAlive: false,
  });
  await fcp.ready(5000);
  const quiet = { debug() {}, info() {}, warn() {}, error() {} };
  const control = new EnginePinholeControl({
    policy: new Policy({ protectedNetworks: ['198.18.0.16/28'] }),
    fcp,
    metrics: createEngineControlMetrics(new MetricsRegistry()),
    logger: quiet,
  });
  const agent = { transport: 'udp', address: '198.18.0.1', port: 40000 };
  const n = new CaptureNormalizer({
    serverAddresses: [SERVER],
    parse,
    onObservation: (o) => control.observe(o),
    onSettle: (o, src) => control.settle(o, src),
  });
  const push = (bytes) => {
    const r = decodeHep(bytes);
    if (!r.ok) throw new Error(r.error.code);
    n.push(r.packet, agent);
  };
  // Every call answers with its own media address and port, so every 200 needs new SETs.
  const answerSdp = (i) =>
    sdp
      .replace(/198\.18\.0\.10/g, `198.18.0.${17 + (i % 14)}`)
      .replace('40000', String(10000 + 2 * Math.floor(i / 14)));
  const ok = (callId, vias, tag, body) =>
    [
      'SIP/2.0 200 OK',
      ...vias.map((v) => `Via: ${v}`),
      'From: "Jörg Ünal" <sip:joerg@198.18.0.10>;tag=fa',
      `To: <sip:bob@198.18.0.20>;tag=${tag}`,
      `Call-ID: ${callId}`,
      'CSeq: 1 INVITE',
      'Contact: <sip:bob@198.18.0.20:5060>',
      'Content-Type: application/sdp',
      `Content-Length: ${Buffer.byteLength(body)}`,
      '',
      body,
    ].join('\r\n');
  let callNo = 0;
  const setUp = () => {
    const i = callNo++;
    const callId = `win-${i}@198.18.0.10`;
    const ua = `SIP/2.0/UDP 198.18.0.10:5060;branch=z9hG4bKw${i};received=198.18.0.10`;
    const srv = `SIP/2.0/UDP 198.18.0.1:5060;branch=z9hG4bKws${i}`;
    push(hep(invite(callId, [ua]), UA, SERVER));
    push(hep(invite(callId, [srv, ua]), SERVER, CALLEE));
    push(hep(ok(callId, [srv, ua], `t${i}`, answerSdp(i)), CALLEE, SERVER));
    return hep(ok(callId, [ua], `t${i}`, answerSdp(i)), SERVER, UA);
  };
  const quantiles = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
    return { n: s.length, p50: q(0.5), p99: q(0.99), max: s[s.length - 1] };
  };
  // One call at a time (an idle sidecar).
  const single = [];
  const end = performance.now() + MS;
  while (performance.now() < end && single.length < 10_000) {
    const okOut = setUp();
    const t0 = performance.now();
    push(okOut);
    await control.idle();
    single.push(performance.now() - t0);
  }
  // Bursts of 100 answers arriving together: the last one waits for the others' SETs.
  const burst = [];
  const end2 = performance.now() + MS;
  while (performance.now() < end2 && burst.length < 200) {
    const oks = Array.from({ length: 100 }, setUp);
    const t0 = performance.now();
    for (const b of oks) push(b);
    await control.idle();
    burst.push(performance.now() - t0);
  }
  // Two holes (RTP and RTCP) per call, all distinct: every answer was acknowledged.
  if (fcpd.rules().length !== 2 * callNo) {
    throw new Error(`expected ${2 * callNo} pinholes, the server holds ${fcpd.rules().length}`);
  }
  await control.close();
  await fcpd.stop();
  const a = quantiles(single);
  const b = quantiles(burst);
  const f = (x) => x.toFixed(3);
  console.log('');
  console.log(
    '| answer copy to pinhole acknowledged (loopback FCP, memory backend) | samples | p50 ms | p99 ms | max ms |',
  );
  console.log('|---|---:|---:|---:|---:|');
  console.log(
    `| one 200 OK at a time (2 SETs: RTP + RTCP) | ${a.n} | ${f(a.p50)} | ${f(a.p99)} | ${f(a.max)} |`,
  );
  console.log(
    `| 100 200 OKs at once, until the last is acknowledged | ${b.n} | ${f(b.p50)} | ${f(b.p99)} | ${f(b.max)} |`,
  );
}
