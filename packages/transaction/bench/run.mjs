// Benchmark: @pinhole/transaction (built dist/) alone, no sockets, on a fake clock.
//
//   npm run build -w @pinhole/sip && npm run build -w @pinhole/transaction
//   npm run bench -w @pinhole/transaction
//
// 1. Calls per second through a stateful proxy layer: INVITE / 100 / 200 / ACK (stateless, via
//    the core) + BYE / 200, i.e. 2 server and 2 client transactions per call, UDP timers. The
//    upstream requests are cloned from templates before timing; the downstream 200s are made in
//    the loop by cloning a template and swapping its top Via (measured separately as "harness").
// 2. Heap bytes per live transaction (INVITE server transactions waiting for the TU).
//
// BENCH_SECONDS (default 1) bounds each throughput measurement; 3 rounds, best kept.
import { cpus } from 'node:os';
import { parse } from '@pinhole/sip';
import { FakeClock, TransactionLayer } from '../dist/index.js';

const SECONDS = Math.min(Math.max(Number(process.env.BENCH_SECONDS ?? '1'), 0.1), 5);
const ROUNDS = 3;
const BATCH = 2_000;

function msg(lines) {
  const r = parse(lines.join('\r\n'));
  if (!r.ok) throw new Error(r.error.reason);
  return r.message;
}

const UAC = { transport: 'UDP', host: '198.18.0.1', port: 5060 };
const UAS = { transport: 'UDP', host: '198.18.0.3', port: 5060 };
const SDP =
  'v=0\r\no=- 1 1 IN IP4 198.18.0.1\r\ns=-\r\nc=IN IP4 198.18.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n';

function request(method, i, branch, toTag, cseq) {
  return msg([
    `${method} sip:bob@198.18.0.3 SIP/2.0`,
    `Via: SIP/2.0/UDP 198.18.0.1:5060;branch=${branch}`,
    'Max-Forwards: 70',
    'From: "Alice" <sip:alice@example.com>;tag=a' + i,
    'To: <sip:bob@example.com>' + (toTag ? `;tag=${toTag}` : ''),
    `Call-ID: bench-${i}@198.18.0.1`,
    `CSeq: ${cseq} ${method}`,
    'Contact: <sip:alice@198.18.0.1:5060>',
    ...(method === 'INVITE'
      ? ['Content-Type: application/sdp', `Content-Length: ${SDP.length}`, '', SDP]
      : ['Content-Length: 0', '', '']),
  ]);
}

const OK_INVITE = msg([
  'SIP/2.0 200 OK',
  'Via: SIP/2.0/UDP 198.18.0.2:5060;branch=z9hG4bKplaceholder',
  'Via: SIP/2.0/UDP 198.18.0.1:5060;branch=z9hG4bKx',
  'From: "Alice" <sip:alice@example.com>;tag=a0',
  'To: <sip:bob@example.com>;tag=b0',
  'Call-ID: bench-0@198.18.0.1',
  'CSeq: 1 INVITE',
  'Contact: <sip:bob@198.18.0.3:5060>',
  'Content-Type: application/sdp',
  `Content-Length: ${SDP.length}`,
  '',
  SDP,
]);

/** Makes the downstream answer to a forwarded request: the template with the right Vias. */
function answer(template, forwarded) {
  const r = template.clone();
  r.removeTopVia();
  r.removeTopVia();
  const vias = forwarded.via();
  r.prependVia(vias[1].raw);
  r.prependVia(vias[0].raw);
  return r;
}

function makeProxy(clock) {
  const sent = [];
  const transport = { send: (m) => void sent.push(m) };
  let layer;
  layer = new TransactionLayer({
    transport,
    clock,
    trying: 'immediate',
    sentBy: () => '198.18.0.2:5060',
    maxTransactions: 10_000_000,
    user: {
      request(txn) {
        const fwd = txn.request.clone();
        fwd.decrementMaxForwards();
        layer.proxy(txn).forward(fwd, UAS);
      },
      ack(m) {
        void transport.send(m, UAS); // stateless forward (Via handling left out)
      },
    },
  });
  // A firewall-style listener on each hook the policy uses (synchronous: no hold).
  let seen = 0;
  for (const name of [
    'requestReceived',
    'requestForwarded',
    'provisionalRelayed',
    'finalRelayed',
    'ackReceived',
    'transactionDestroyed',
  ]) {
    layer.on(name, (e) => {
      seen += e.dialog === undefined ? 0 : 1;
    });
  }
  return { layer, sent, seen: () => seen };
}

function prepare(n, offset) {
  const calls = [];
  for (let k = 0; k < n; k++) {
    const i = offset + k;
    calls.push({
      invite: request('INVITE', i, `z9hG4bKi${i}`, undefined, 1),
      ack: request('ACK', i, `z9hG4bKa${i}`, 'b0', 1),
      bye: request('BYE', i, `z9hG4bKb${i}`, 'b0', 2),
    });
  }
  return calls;
}

const OK_BYE = msg([
  'SIP/2.0 200 OK',
  'Via: SIP/2.0/UDP 198.18.0.2:5060;branch=z9hG4bKplaceholder',
  'Via: SIP/2.0/UDP 198.18.0.1:5060;branch=z9hG4bKx',
  'From: "Alice" <sip:alice@example.com>;tag=a0',
  'To: <sip:bob@example.com>;tag=b0',
  'Call-ID: bench-0@198.18.0.1',
  'CSeq: 2 BYE',
  'Content-Length: 0',
  '',
  '',
]);

/**
 * CPU time of this process (all threads: the GC's helpers included) in ms. The machine this
 * runs on may be shared; CPU time is steadier than wall time there.
 */
function cpuMs() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** Runs calls for about SECONDS of wall time; returns { calls, ms (CPU), harnessMs, live }. */
function runCycle(withLayer) {
  const clock = new FakeClock();
  const { layer, sent } = makeProxy(clock);
  let calls = 0;
  let ms = 0;
  let harnessMs = 0;
  const deadline = performance.now() + SECONDS * 1000;
  while (performance.now() < deadline) {
    const batch = prepare(BATCH, calls);
    const t0 = cpuMs();
    for (const c of batch) {
      if (!withLayer) {
        answer(OK_INVITE, OK_INVITE.clone());
        answer(OK_BYE, OK_BYE.clone());
        continue;
      }
      sent.length = 0;
      layer.receive(c.invite, UAC);
      const fwdInvite = sent[sent.length - 1];
      if (fwdInvite.method !== 'INVITE') throw new Error('the INVITE was not forwarded');
      layer.receive(answer(OK_INVITE, fwdInvite), UAS);
      layer.receive(c.ack, UAC);
      sent.length = 0;
      layer.receive(c.bye, UAC);
      const fwdBye = sent[sent.length - 1];
      layer.receive(answer(OK_BYE, fwdBye), UAS);
    }
    const t1 = cpuMs();
    ms += t1 - t0;
    calls += batch.length;
    // Expire what ended (Timers L, M, J, K): timers are part of the layer's cost.
    const t2 = cpuMs();
    clock.advance(40_000);
    ms += cpuMs() - t2;
  }
  if (!withLayer) harnessMs = ms;
  return { calls, ms, harnessMs, live: layer.size };
}

function heapPerTransaction() {
  if (typeof globalThis.gc !== 'function') return undefined;
  const N = 50_000;
  const gc = globalThis.gc;
  const invites = [];
  for (let i = 0; i < N; i++) invites.push(request('INVITE', i, `z9hG4bKh${i}`, undefined, 1));
  // Touch what the layer reads, so lazily parsed fields are counted in the baseline too.
  for (const m of invites) {
    void (m.topVia(), m.via(), m.cseq(), m.callId(), m.from(), m.to(), m.requestUri, m.method);
  }
  gc();
  gc();
  const before = process.memoryUsage().heapUsed;
  const clock = new FakeClock();
  const layer = new TransactionLayer({
    transport: { send() {} },
    clock,
    trying: 'never',
    maxTransactions: N + 1,
  });
  for (const m of invites) layer.receive(m, UAC);
  gc();
  gc();
  const after = process.memoryUsage().heapUsed;
  const perTxn = (after - before) / layer.size;
  const live = layer.size;
  layer.close();
  return { perTxn, live };
}

/** A fixed CPU-bound loop, so a reader can tell a loaded machine from a slow layer. */
function calibrate() {
  const t0 = performance.now();
  let x = 0;
  for (let i = 0; i < 1e7; i++) x = (x + i) | 0;
  if (x === 42) console.log('');
  return performance.now() - t0;
}

const results = [];
const calibrationMs = calibrate();
let best = { calls: 0, ms: 1 };
let harness = { calls: 0, ms: 1 };
for (let r = 0; r < ROUNDS; r++) {
  const h = runCycle(false);
  if (h.calls / h.ms > harness.calls / harness.ms) harness = h;
  const res = runCycle(true);
  if (res.calls / res.ms > best.calls / best.ms) best = res;
}
const totalPerSec = (best.calls / best.ms) * 1000;
const harnessPerCallMs = harness.ms / harness.calls;
const layerPerCallMs = best.ms / best.calls - harnessPerCallMs;
const layerPerSec = 1000 / layerPerCallMs;
results.push([
  'INVITE/200/ACK + BYE/200 calls per CPU-second (layer + harness)',
  totalPerSec.toFixed(0),
]);
results.push([
  'INVITE/200/ACK + BYE/200 calls per CPU-second (layer alone, harness subtracted)',
  layerPerSec.toFixed(0),
]);
results.push([
  'transactions per CPU-second (layer alone; 4 per call)',
  (layerPerSec * 4).toFixed(0),
]);
results.push(['CPU µs per call (layer alone)', (layerPerCallMs * 1000).toFixed(2)]);
const heap = heapPerTransaction();
if (heap !== undefined) {
  results.push([
    `heap bytes per live INVITE server transaction (${heap.live} live, request excluded)`,
    heap.perTxn.toFixed(0),
  ]);
} else {
  results.push(['heap bytes per live transaction', 'run with --expose-gc']);
}

console.log(
  `node ${process.version}, ${cpus().length} CPU, ${cpus()[0]?.model ?? 'unknown'}, BENCH_SECONDS=${SECONDS}`,
);
console.log(
  `calibration: a 1e7-iteration integer loop took ${calibrationMs.toFixed(1)} ms (about 10 ms on an idle core)`,
);
console.log('');
console.log('| measure | value |');
console.log('|---|---:|');
for (const [k, v] of results) console.log(`| ${k} | ${v} |`);
