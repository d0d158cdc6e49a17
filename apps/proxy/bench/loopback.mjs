// CPU per call of pinhole-proxy alone, on loopback: a separate pinhole-fcpd with the memory
// backend (pinholes on at the FCP level, nothing in the kernel), one proxy process (1 worker),
// the sipp bench pair (uas-bench.xml / uac-bench.xml: INVITE with SDP, 180, 200 with SDP on a
// different media port per call, ACK, 500 ms, BYE). Needs sipp; no root, no namespaces.
//
//   node bench/loopback.mjs                       (from apps/proxy, after `npm run build`)
//   BENCH_RATE=200 BENCH_SECONDS=10 BENCH_PROFILE=prof node bench/loopback.mjs
//
// BENCH_PROFILE=<dir> runs the proxy under `node --cpu-prof --cpu-prof-dir <dir>`. Prints one
// markdown row: calls, failed, proxy CPU ms per call (utime+stime of the proxy process during
// the UAC run / calls, and each part), the pinhole step's recent p50/p99 from the proxy's
// metrics, and the load average before and after.
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { missingRequirements } from '@pinhole/testkit';
import { bucketQuantile, buckets, metricValue } from './prom.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
const CLI = join(here, '../dist/cli.js');
const FCPD = join(here, '../../fcpd/dist/cli.js');
const SCEN = join(here, '../test/scenarios/');
const RATE = Number(process.env.BENCH_RATE ?? 200);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const PROFILE = process.env.BENCH_PROFILE;
const HOLD_MS = 500;
// BENCH_WARMUP_SECONDS=2: calls at the same rate first (default none), so that the measured
// window starts on compiled code (a fresh process stalls up to 200 ms in its first seconds).
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 0);
// BENCH_NO_WARMUP=1: start the proxy with --no-warmup (no synthetic calls before it listens).
const MEDIA_IP = '198.19.1.2';

const missing = missingRequirements(['sipp']);
if (missing.length > 0) {
  console.log(`proxy loopback bench skipped: ${missing.join('; ')}`);
  process.exit(0);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const load = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

async function freePort(kind) {
  if (kind === 'udp') {
    const s = createSocket('udp4');
    await new Promise((r) => s.bind(0, '127.0.0.1', r));
    const p = s.address().port;
    s.close();
    return p;
  }
  const srv = createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const p = srv.address().port;
  await new Promise((r) => srv.close(r));
  return p;
}

/** [utime, stime] of a process, in clock ticks. */
function ticks(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return [Number(f[11]), Number(f[12])];
}

async function metricsText(port) {
  try {
    return await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  } catch {
    return '';
  }
}

function run(cmd, args) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (d) => (out = (out + d).slice(-8000));
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const done = new Promise((resolve) => child.once('exit', (code) => resolve({ code, out })));
  return { child, done, text: () => out };
}

async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 8000);
  await exited;
  clearTimeout(t);
}

const calls = RATE * SECONDS;
const warmCalls = Math.round(RATE * WARMUP_SECONDS);
const uacMediaPort = await freePort('udp');
const dir = mkdtempSync(join(tmpdir(), 'pinhole-loopback-'));
const csv = join(dir, 'ports.csv');
writeFileSync(
  csv,
  `SEQUENTIAL\n${[...Array(Math.min(calls, 20000)).keys()].map((i) => `${20000 + 2 * i};${MEDIA_IP};`).join('\n')}\n`,
);
const [fcpPort, metricsPort, proxyPort, uasPort, uacPort] = [
  await freePort('tcp'),
  await freePort('tcp'),
  await freePort('udp'),
  await freePort('udp'),
  await freePort('udp'),
];
const loadBefore = load();
const fcpd = run(process.execPath, [
  FCPD,
  '--listen',
  `tcp:127.0.0.1:${fcpPort}`,
  '--backend',
  'memory',
  '--protected',
  '198.19.0.0/16',
  '--log-level',
  'warn',
]);
await sleep(1000);
const proxy = run(process.execPath, [
  ...(PROFILE ? ['--cpu-prof', '--cpu-prof-dir', PROFILE] : []),
  CLI,
  '--fcp',
  `tcp:127.0.0.1:${fcpPort}`,
  '--listen',
  `udp:127.0.0.1:${proxyPort}`,
  '--route',
  `default=sip:127.0.0.1:${uasPort}`,
  '--protected',
  '198.19.0.0/16',
  '--log-level',
  'warn',
  '--metrics',
  `tcp:127.0.0.1:${metricsPort}`,
  ...(process.env.BENCH_NO_WARMUP === '1' ? ['--no-warmup'] : []),
]);
for (let i = 0; i < 100 && !/listening/.test(proxy.text()); i++) await sleep(100);
let row;
try {
  if (!/listening/.test(proxy.text())) throw new Error(`proxy did not start: ${proxy.text()}`);
  const uas = run('sipp', [
    '-sf',
    `${SCEN}uas-bench.xml`,
    '-i',
    '127.0.0.1',
    '-p',
    String(uasPort),
    '-mp',
    String(await freePort('udp')),
    '-inf',
    csv,
    '-m',
    String(calls + warmCalls),
    '-nostdin',
    '-timeout',
    `${SECONDS + WARMUP_SECONDS + 60}s`,
    '-buff_size',
    '4194304',
  ]);
  await sleep(300);
  let warmFailed = 0;
  if (warmCalls > 0) {
    const w = await uacRun(warmCalls, 'warm').done;
    warmFailed = Number(/Failed call\s*\|\s*\d+\s*\|\s*(\d+)/.exec(w.out)?.[1] ?? NaN);
  }
  const hist = 'pinhole_proxy_pinhole_step_seconds';
  const b0 = buckets([await metricsText(metricsPort)], hist);
  const cpu0 = ticks(proxy.child.pid);
  const uac = uacRun(calls, 'bench');
  const r = await uac.done;
  const cpu1 = ticks(proxy.child.pid);
  const text = await metricsText(metricsPort);
  const b1 = buckets([text], hist);
  await Promise.race([uas.done, sleep(5000)]);
  await stop(uas.child);
  const failed = Number(
    /Failed call\s*\|\s*\d+\s*\|\s*(\d+)/.exec(r.out)?.[1] ?? (r.code === 0 ? 0 : NaN),
  );
  const hz = 100; // USER_HZ
  const ms = (i) => ((cpu1[i] - cpu0[i]) * 1000) / hz / calls;
  const q = (x) => {
    const v = metricValue(text, `pinhole_proxy_pinhole_step_recent_seconds{quantile="${x}"}`);
    return v === undefined || Number.isNaN(v) ? '–' : (v * 1000).toFixed(3);
  };
  const sq = (x) => {
    const v = bucketQuantile(b0, b1, x);
    return v === undefined ? '–' : (v * 1000).toFixed(3);
  };
  row = `| ${RATE} | ${calls} | ${failed} (${warmFailed}) | ${(ms(0) + ms(1)).toFixed(3)} | ${ms(0).toFixed(3)} | ${ms(1).toFixed(3)} | ${q('0.5')} | ${q('0.99')} | ${sq(0.5)} | ${sq(0.99)} | ${loadBefore} | ${load()} |`;
} finally {
  await stop(proxy.child);
  await stop(fcpd.child);
  rmSync(dir, { recursive: true, force: true });
}

function uacRun(n, key) {
  return run('sipp', [
    `127.0.0.1:${proxyPort}`,
    '-sf',
    `${SCEN}uac-bench.xml`,
    '-i',
    '127.0.0.1',
    '-p',
    String(uacPort),
    '-mp',
    String(uacMediaPort),
    '-key',
    'mport',
    '41000',
    '-s',
    'bench',
    '-cid_str',
    `${key}-%u-%p@%s`,
    '-r',
    String(RATE),
    '-m',
    String(n),
    '-d',
    String(HOLD_MS),
    '-nostdin',
    '-timeout',
    `${SECONDS + 30}s`,
    '-timeout_error',
    '-buff_size',
    '4194304',
  ]);
}
console.log(
  `Machine: ${cpus().length} CPUs, ${cpus()[0]?.model ?? '?'}, node ${process.version}${PROFILE ? `; profile in ${PROFILE}` : ''}\n`,
);
console.log(
  '| rate (calls/s) | calls | failed (warm-up) | proxy CPU ms/call | user | sys | pinhole step p50 (ms) | p99 (ms) | steady p50 (ms) | steady p99 (ms) | load before | load after |',
);
console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
console.log(row);
