// CPU per call of the proxy's JavaScript alone, in one process and without sockets: the proxy
// core, the firewall module, @pinhole/control, the policy and the FCP client (to a separate
// pinhole-fcpd with the memory backend) on a transport that hands the proxy's datagrams to a
// scripted caller and callee (the bench scenario: INVITE with SDP, 100, 180, 200 with SDP on a
// different media port per call, ACK, hold, BYE, 200). No sipp, no root; the numbers exclude
// the kernel's UDP work and include the scripted peers' small share (the same in every build),
// so they are for comparing builds of this repository in the same minutes, and for profiling.
//
//   node bench/core.mjs                                         (from apps/proxy, after build)
//   BENCH_RATE=300 BENCH_SECONDS=10 BENCH_HOLD_MS=500 node bench/core.mjs
//   node --cpu-prof --cpu-prof-dir prof bench/core.mjs            (a profile of the same)
//
// Prints one markdown row: calls, completed, CPU ms per call (process user+system time during
// the run / calls), the pinhole step p50/p99 and the event loop's p99 delay.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { GCProfiler } from 'node:v8';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FcpClient } from '@pinhole/fcp';
import { PinholeController } from '@pinhole/control';
import * as app from '../dist/app.js';
import { parseArgs } from '../dist/config.js';
import { controlMetrics, Firewall } from '../dist/firewall.js';
import { ProxyMetrics } from '../dist/metrics.js';
import { ProxyCore } from '../dist/proxy-core.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const FCPD = join(here, '../../fcpd/dist/cli.js');
const RATE = Number(process.env.BENCH_RATE ?? 300);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const HOLD_MS = Number(process.env.BENCH_HOLD_MS ?? 500);
const CALLS = RATE * SECONDS;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function freePort() {
  const srv = createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const p = srv.address().port;
  await new Promise((r) => srv.close(r));
  return p;
}

const fcpPort = await freePort();
const fcpd = spawn(
  process.execPath,
  [
    FCPD,
    '--listen',
    `tcp:127.0.0.1:${fcpPort}`,
    '--backend',
    'memory',
    '--protected',
    '198.19.0.0/16',
    '--log-level',
    'warn',
  ],
  { stdio: 'ignore' },
);

const LISTENER = {
  transport: 'udp',
  host: '127.0.0.1',
  port: 5060,
  family: 4,
  advertise: '127.0.0.1',
  index: 0,
};
const UAC = { transport: 'udp', address: '127.0.0.1', port: 5061 };
const UAS = { transport: 'udp', address: '127.0.0.1', port: 5062 };
const quiet = {
  isLevelEnabled: () => false,
  info: () => undefined,
  warn: () => undefined,
  debug: () => undefined,
  error: () => undefined,
};

/** Calls by Call-ID: what the scripted peers know of each. */
const calls = new Map();
let completed = 0;
let failed = 0;
const queue = [];
let scheduled = false;
/** Datagrams "on the wire": delivered to the proxy on a later turn, as a socket would. */
function toProxy(text, peer) {
  queue.push([text, peer]);
  if (!scheduled) {
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      for (const [t, p] of queue.splice(0)) {
        core.receive({ bytes: Buffer.from(t, 'latin1'), peer: p, listener: LISTENER });
      }
    });
  }
}

function lines(bytes) {
  const text = Buffer.from(bytes).toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  return text.slice(0, end).split('\r\n');
}
const pick = (ls, name) => ls.filter((l) => l.toLowerCase().startsWith(name));

function callee(ls) {
  const [method] = ls[0].split(' ');
  const callId = pick(ls, 'call-id:')[0].slice(8).trim();
  const c = calls.get(callId);
  if (c === undefined) return;
  const copy = [
    ...pick(ls, 'via:'),
    ...pick(ls, 'from:'),
    ...pick(ls, 'call-id:'),
    ...pick(ls, 'cseq:'),
  ];
  if (method === 'INVITE') {
    if (c.invited) return; // a retransmission
    c.invited = true;
    const to = `${pick(ls, 'to:')[0]};tag=callee${c.n}`;
    const rr = pick(ls, 'record-route:');
    const contact = `Contact: <sip:127.0.0.1:${UAS.port};transport=udp>`;
    toProxy(
      [`SIP/2.0 180 Ringing`, ...copy, to, ...rr, contact, 'Content-Length: 0', '', ''].join(
        '\r\n',
      ),
      UAS,
    );
    const sdp = `v=0\r\no=pinhole 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 198.19.1.2\r\nt=0 0\r\nm=audio ${20000 + 2 * (c.n % 20000)} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n`;
    toProxy(
      [
        `SIP/2.0 200 OK`,
        ...copy,
        to,
        ...rr,
        contact,
        'Content-Type: application/sdp',
        `Content-Length: ${sdp.length}`,
        '',
        sdp,
      ].join('\r\n'),
      UAS,
    );
  } else if (method === 'BYE') {
    const to = pick(ls, 'to:')[0];
    toProxy([`SIP/2.0 200 OK`, ...copy, to, 'Content-Length: 0', '', ''].join('\r\n'), UAS);
  }
}

function caller(ls) {
  const [, status] = ls[0].split(' ');
  const callId = pick(ls, 'call-id:')[0].slice(8).trim();
  const c = calls.get(callId);
  if (c === undefined) return;
  const method = pick(ls, 'cseq:')[0].split(' ').pop();
  if (status === '200' && method === 'INVITE') {
    if (c.answered) return;
    c.answered = true;
    c.to = pick(ls, 'to:')[0];
    // The route set: Record-Route as received (a UAC uses it as is), and the callee's Contact.
    c.routes = pick(ls, 'record-route:').map((l) => `Route: ${l.slice(l.indexOf(':') + 1).trim()}`);
    c.target = /<([^>]+)>/.exec(pick(ls, 'contact:')[0])[1];
    toProxy(c.request('ACK', 1), UAC);
    setTimeout(() => toProxy(c.request('BYE', 2), UAC), HOLD_MS);
  } else if (status === '200' && method === 'BYE') {
    if (c.done) return;
    c.done = true;
    completed++;
    calls.delete(callId);
  } else if (Number(status) >= 300 && method === 'INVITE') {
    failed++;
    calls.delete(callId);
  }
}

function startCall(n) {
  const callId = `${n}-bench@127.0.0.1`;
  const from = `From: sipp <sip:sipp@127.0.0.1:${UAC.port}>;tag=caller${n}`;
  const c = {
    n,
    invited: false,
    answered: false,
    done: false,
    to: 'To: service <sip:service@127.0.0.1:5060>',
    routes: [],
    target: '',
    request(method, seq) {
      return [
        `${method} ${this.target} SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${UAC.port};branch=z9hG4bK-${n}-${seq}-${method};rport`,
        ...this.routes,
        from,
        this.to,
        `Call-ID: ${callId}`,
        `CSeq: ${seq} ${method}`,
        `Contact: <sip:sipp@127.0.0.1:${UAC.port};transport=UDP>`,
        'Max-Forwards: 70',
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n');
    },
  };
  calls.set(callId, c);
  const sdp = `v=0\r\no=pinhole 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 41000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n`;
  toProxy(
    [
      'INVITE sip:service@127.0.0.1:5060 SIP/2.0',
      `Via: SIP/2.0/UDP 127.0.0.1:${UAC.port};branch=z9hG4bK-${n}-1;rport`,
      from,
      c.to,
      `Call-ID: ${callId}`,
      'CSeq: 1 INVITE',
      `Contact: <sip:sipp@127.0.0.1:${UAC.port};transport=UDP>`,
      'Max-Forwards: 70',
      'Subject: Pinhole test',
      'Content-Type: application/sdp',
      `Content-Length: ${sdp.length}`,
      '',
      sdp,
    ].join('\r\n'),
    UAC,
  );
}

const transport = {
  listeners: [LISTENER],
  listenerFor: () => LISTENER,
  send(bytes, peer) {
    const ls = lines(bytes);
    if (peer.port === UAS.port) callee(ls);
    else if (peer.port === UAC.port) caller(ls);
    return true;
  },
};

const { config } = parseArgs([
  '--listen',
  'udp:127.0.0.1:5060',
  '--route',
  `default=sip:127.0.0.1:${UAS.port}`,
  '--fcp',
  `tcp:127.0.0.1:${fcpPort}`,
  '--protected',
  '198.19.0.0/16',
  '--pinhole-deadline-ms',
  '2000',
]);
await sleep(500);
const fcp = new FcpClient({ servers: [{ host: '127.0.0.1', port: fcpPort }], keepAlive: false });
await fcp.ready(5000);
const metrics = new ProxyMetrics({ transactions: () => 0, registrations: () => 0 });
const control = new PinholeController({
  policy: app.buildPolicy(config, ['127.0.0.1']),
  fcp,
  logger: quiet,
  metrics: controlMetrics(metrics),
  failMode: config.failMode,
  deadlineMs: config.pinholeDeadlineMs,
  // BENCH_RELEASE_DELAY_MS: try @pinhole/control's releaseDelayMs (the app leaves it off).
  releaseDelayMs: Number(process.env.BENCH_RELEASE_DELAY_MS ?? 0),
});
const firewall = new Firewall({ control, logger: quiet });
const core = new ProxyCore({ config, transport, metrics, logger: quiet, gate: firewall });

// With --expose-gc: the heap after a full collection before the first call and after the last
// (every call's transactions are still alive then: they live 32 s on UDP), i.e. what a call keeps.
const gc = globalThis.gc;
gc?.();
const heap0 = process.memoryUsage().heapUsed;
// Allocation and GC time from V8's own GC records: every byte allocated is either still in the
// heap after the last (forced) collection or was freed by one of the collections.
const gcProfiler = new GCProfiler();
gcProfiler.start();
const loop = monitorEventLoopDelay({ resolution: 1 });
loop.enable();
const cpu0 = process.cpuUsage();
const t0 = performance.now();
let started = 0;
const perTick = RATE / 100;
await new Promise((resolve) => {
  const tick = setInterval(
    () => {
      const due = Math.min(CALLS, Math.floor(((performance.now() - t0) / 1000) * RATE));
      while (started < due) startCall(started++);
      if (started >= CALLS) {
        clearInterval(tick);
        resolve();
      }
    },
    10 / Math.max(1, perTick / 10),
  );
});
for (let i = 0; i < 200 && completed + failed < CALLS; i++) await sleep(50);
const cpu = process.cpuUsage(cpu0);
const elapsedMs = performance.now() - t0;
gc?.();
const heap1 = process.memoryUsage().heapUsed;
const gcStats = gcProfiler.stop()?.statistics ?? [];
let gcMs = 0;
let freed = 0;
let scavenges = 0;
for (const g of gcStats) {
  gcMs += g.cost / 1000;
  freed += g.beforeGC.heapStatistics.usedHeapSize - g.afterGC.heapStatistics.usedHeapSize;
  if (g.gcType === 'Scavenge') scavenges++;
}
if (process.env.BENCH_SNAPSHOT) {
  const { writeHeapSnapshot } = await import('node:v8');
  console.log(`heap snapshot: ${writeHeapSnapshot(process.env.BENCH_SNAPSHOT)}`);
}
loop.disable();
const q = (x) => (metrics.pinholeWaitRecent.quantile(x) * 1000).toFixed(3);
const ms = (cpu.user + cpu.system) / 1000 / CALLS;
console.log(
  `Machine: ${cpus().length} CPUs, ${cpus()[0]?.model ?? '?'}, node ${process.version}\n`,
);
console.log(
  '| rate (calls/s) | calls | completed | failed | CPU ms/call | pinhole step p50 (ms) | p99 (ms) | event loop delay p99 (ms) |',
);
console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
console.log(
  `| ${RATE} | ${CALLS} | ${completed} | ${failed} | ${ms.toFixed(3)} | ${q(0.5)} | ${q(0.99)} | ${(loop.percentile(99) / 1e6).toFixed(1)} |`,
);
const busyMs = (cpu.user + cpu.system) / 1000;
if (gc !== undefined) {
  // The forced collection at the end is in gcStats: freed covers it, gcMs does not count it.
  const last = gcStats.at(-1);
  if (last !== undefined) gcMs -= last.cost / 1000;
  console.log(
    `\n| retained KB/call | allocated KB/call | GC ms (share of CPU) | scavenges | run ms |\n| --- | --- | --- | --- | --- |\n| ${((heap1 - heap0) / 1024 / CALLS).toFixed(2)} | ${((heap1 - heap0 + freed) / 1024 / CALLS).toFixed(1)} | ${gcMs.toFixed(0)} (${((gcMs / busyMs) * 100).toFixed(1)} %) | ${scavenges} | ${elapsedMs.toFixed(0)} |`,
  );
}
core.close();
await control.close();
fcp.close();
fcpd.kill('SIGTERM');
process.exit(0);
