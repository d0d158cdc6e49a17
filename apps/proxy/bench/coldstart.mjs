// The first seconds of traffic of a fresh process, with or without the start-up warm-up before
// them, in one process and without sockets: the bench flow (src/scripted-calls.ts: INVITE with
// SDP, 100, 180, 200 with SDP, ACK, 500 ms hold, BYE, 200) at BENCH_RATE calls/s for
// BENCH_SECONDS through a fresh proxy core, firewall module, controller and policy, with FCP to
// a private embedded fcpd over the in-process link, as the warm-up's (the same code in both
// modes: only the warm-up differs).
// Run each mode in a fresh process, alternating (the process's first traffic is what is measured):
//
//   node bench/coldstart.mjs warm; node bench/coldstart.mjs cold      (from apps/proxy, after build)
//   BENCH_RATE=800 BENCH_SECONDS=2 BENCH_WARMUP_MS=1000 node bench/coldstart.mjs warm
//
// Prints one JSON line: the warm-up's calls and time, the calls completed, the event loop's
// utilisation and worst delay during the traffic (a delay over T1 = 500 ms is what makes the
// proxy's INVITE client transactions retransmit INVITEs already answered), the process's CPU per
// call (all threads) and the pinhole step's p99 (the 200 held until its SETs are answered).
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { PinholeController } from '@pinhole/control';
import { Policy } from '@pinhole/policy';
import { policyInput } from '../dist/app.js';
import { parseArgs } from '../dist/config.js';
import { controlMetrics, Firewall } from '../dist/firewall.js';
import { ProxyMetrics } from '../dist/metrics.js';
import { ProxyCore } from '../dist/proxy-core.js';
import { ScriptedCalls } from '../dist/scripted-calls.js';
import { silent, warmUp, WarmupFcp } from '../dist/warmup.js';

const MODE = process.argv[2] ?? 'warm';
const RATE = Number(process.env.BENCH_RATE ?? 800);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
const CALLS = RATE * SECONDS;
const PROXY = '198.18.1.1';
const PROTECTED = '198.19.1.0/24';

const { config } = parseArgs([
  '--listen',
  `udp:${PROXY}:5060`,
  '--route',
  'default=sip:198.19.1.2:5060',
  '--protected',
  PROTECTED,
  '--pinhole-deadline-ms',
  '2000',
  ...(process.env.BENCH_WARMUP_MS ? ['--warmup-ms', process.env.BENCH_WARMUP_MS] : []),
]);
const policy = policyInput(config, [PROXY]);
let warm;
if (MODE === 'warm') warm = await warmUp({ config, policy });
else if (MODE !== 'cold') throw new Error('mode: warm or cold');

const listener = {
  transport: 'udp',
  host: PROXY,
  port: 5060,
  family: 4,
  advertise: PROXY,
  index: 0,
};
const peers = new ScriptedCalls({
  listener,
  caller: { transport: 'udp', address: '198.18.1.2', port: 5060 },
  callee: { transport: 'udp', address: '198.19.1.2', port: 5060 },
  calleeMedia: '198.19.1.2',
  holdMs: 500,
  tag: 'live',
});
const metrics = new ProxyMetrics({ transactions: () => 0, registrations: () => 0 });
const fcp = await WarmupFcp.start([PROTECTED]);
const control = new PinholeController({
  policy: new Policy(policy),
  fcp: fcp.client,
  logger: silent,
  metrics: controlMetrics(metrics),
  failMode: config.failMode,
  deadlineMs: config.pinholeDeadlineMs,
});
const core = new ProxyCore({
  config,
  transport: peers.transport,
  metrics,
  logger: silent,
  gate: new Firewall({ control, logger: silent }),
});
peers.attach((inb) => core.receive(inb));

const delay = monitorEventLoopDelay({ resolution: 1 });
delay.enable();
const elu0 = performance.eventLoopUtilization();
const cpu0 = process.cpuUsage();
const t0 = performance.now();
let started = 0;
await new Promise((resolve) => {
  const tick = setInterval(() => {
    const due = Math.min(CALLS, Math.floor(((performance.now() - t0) / 1000) * RATE));
    while (started < due) peers.start(started++);
    if (started >= CALLS) {
      clearInterval(tick);
      resolve();
    }
  }, 5);
});
for (let i = 0; i < 200 && peers.completed + peers.failed < CALLS; i++) {
  await new Promise((r) => setTimeout(r, 20));
}
const elu = performance.eventLoopUtilization(elu0);
const cpu = process.cpuUsage(cpu0);
delay.disable();
console.log(
  JSON.stringify({
    mode: MODE,
    warmup: warm && { calls: warm.calls, ms: Math.round(warm.ms), cpuMs: Math.round(warm.cpuMs) },
    rate: RATE,
    calls: CALLS,
    completed: peers.completed,
    eventLoopUtilisation: Number(elu.utilization.toFixed(3)),
    maxDelayMs: Number((delay.max / 1e6).toFixed(1)),
    p99DelayMs: Number((delay.percentile(99) / 1e6).toFixed(1)),
    cpuMsPerCall: Number(((cpu.user + cpu.system) / 1000 / CALLS).toFixed(3)),
    pinholeStepP99Ms: Number((metrics.pinholeStepRecent.quantile(0.99) * 1000).toFixed(1)),
  }),
);
peers.close();
core.close();
await control.close();
await fcp.close();
