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
import { rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FcpClient } from '@pinhole/fcp';
import { PinholeController } from '@pinhole/control';
import * as app from '../dist/app.js';
import { silent } from '../dist/warmup.js';
import { parseArgs } from '../dist/config.js';
import { controlMetrics, Firewall } from '../dist/firewall.js';
import { ProxyMetrics } from '../dist/metrics.js';
import { ProxyCore } from '../dist/proxy-core.js';
import { ScriptedCalls } from '../dist/scripted-calls.js';
import { makeListener, SOCKET_BUFFER_BYTES } from '../dist/transport.js';

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
// Four FCP requests a call: lift the fcpd's per-client request rate (1,000/s) and rule quota, as
// the embedded fcpd does (and run.mjs for its separate fcpd); 800 calls/s were refused SETs.
const fcpdConfig = join(tmpdir(), `pinhole-core-bench-fcpd-${process.pid}.json`);
writeFileSync(
  fcpdConfig,
  JSON.stringify({ limits: { ratePerSec: 0, maxRulesPerClient: 1_000_000 } }),
);
const fcpd = spawn(
  process.execPath,
  [
    FCPD,
    '--config',
    fcpdConfig,
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

const LISTENER = makeListener('udp', '127.0.0.1', 5060, 4, '127.0.0.1', 0, SOCKET_BUFFER_BYTES);
const UAC = { transport: 'udp', address: '127.0.0.1', port: 5061 };
const UAS = { transport: 'udp', address: '127.0.0.1', port: 5062 };

// The scripted caller and callee (src/scripted-calls.ts, shared with the start-up warm-up).
const peers = new ScriptedCalls({
  listener: LISTENER,
  caller: UAC,
  callee: UAS,
  calleeMedia: '198.19.1.2',
  callerMedia: '127.0.0.1',
  holdMs: HOLD_MS,
  tag: 'bench',
});
const transport = peers.transport;

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
rmSync(fcpdConfig, { force: true }); // read at start; nothing left behind
const fcp = new FcpClient({ servers: [{ host: '127.0.0.1', port: fcpPort }], keepAlive: false });
await fcp.ready(5000);
const metrics = new ProxyMetrics({ transactions: () => 0, registrations: () => 0 });
const control = new PinholeController({
  policy: app.buildPolicy(config, ['127.0.0.1']),
  fcp,
  logger: silent,
  metrics: controlMetrics(metrics),
  failMode: config.failMode,
  deadlineMs: config.pinholeDeadlineMs,
  // BENCH_RELEASE_DELAY_MS: try @pinhole/control's releaseDelayMs (the app leaves it off).
  releaseDelayMs: Number(process.env.BENCH_RELEASE_DELAY_MS ?? 0),
});
const firewall = new Firewall({ control, logger: silent });
const core = new ProxyCore({ config, transport, metrics, logger: silent, gate: firewall });
peers.attach((inb) => core.receive(inb));

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
      while (started < due) peers.start(started++);
      if (started >= CALLS) {
        clearInterval(tick);
        resolve();
      }
    },
    10 / Math.max(1, perTick / 10),
  );
});
for (let i = 0; i < 200 && peers.completed + peers.failed < CALLS; i++) await sleep(50);
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
const q = (x) => (metrics.pinholeStepRecent.quantile(x) * 1000).toFixed(3);
const ms = (cpu.user + cpu.system) / 1000 / CALLS;
console.log(
  `Machine: ${cpus().length} CPUs, ${cpus()[0]?.model ?? '?'}, node ${process.version}\n`,
);
console.log(
  '| rate (calls/s) | calls | completed | failed | CPU ms/call | pinhole step p50 (ms) | p99 (ms) | event loop delay p99 (ms) |',
);
console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
console.log(
  `| ${RATE} | ${CALLS} | ${peers.completed} | ${peers.failed} | ${ms.toFixed(3)} | ${q(0.5)} | ${q(0.99)} | ${(loop.percentile(99) / 1e6).toFixed(1)} |`,
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
peers.close();
core.close();
await control.close();
fcp.close();
fcpd.kill('SIGTERM');
process.exit(0);
