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
// the UAC run / calls), and the load average before and after.
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { missingRequirements } from '@pinhole/testkit';

const here = fileURLToPath(new URL('.', import.meta.url));
const CLI = join(here, '../dist/cli.js');
const FCPD = join(here, '../../fcpd/dist/cli.js');
const SCEN = join(here, '../test/scenarios/');
const RATE = Number(process.env.BENCH_RATE ?? 200);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const PROFILE = process.env.BENCH_PROFILE;
const HOLD_MS = 500;
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

function ticks(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
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
const dir = mkdtempSync(join(tmpdir(), 'pinhole-loopback-'));
const csv = join(dir, 'ports.csv');
writeFileSync(
  csv,
  `SEQUENTIAL\n${[...Array(Math.min(calls, 20000)).keys()].map((i) => `${20000 + 2 * i};${MEDIA_IP};`).join('\n')}\n`,
);
const [fcpPort, proxyPort, uasPort, uacPort] = [
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
    String(calls),
    '-nostdin',
    '-timeout',
    `${SECONDS + 40}s`,
    '-buff_size',
    '4194304',
  ]);
  await sleep(300);
  const cpu0 = ticks(proxy.child.pid);
  const uac = run('sipp', [
    `127.0.0.1:${proxyPort}`,
    '-sf',
    `${SCEN}uac-bench.xml`,
    '-i',
    '127.0.0.1',
    '-p',
    String(uacPort),
    '-mp',
    String(await freePort('udp')),
    '-key',
    'mport',
    '41000',
    '-s',
    'bench',
    '-r',
    String(RATE),
    '-m',
    String(calls),
    '-d',
    String(HOLD_MS),
    '-nostdin',
    '-timeout',
    `${SECONDS + 30}s`,
    '-timeout_error',
    '-buff_size',
    '4194304',
  ]);
  const r = await uac.done;
  const cpu1 = ticks(proxy.child.pid);
  await Promise.race([uas.done, sleep(5000)]);
  await stop(uas.child);
  const failed = Number(
    /Failed call\s*\|\s*\d+\s*\|\s*(\d+)/.exec(r.out)?.[1] ?? (r.code === 0 ? 0 : NaN),
  );
  const hz = 100; // USER_HZ
  const cpuMs = ((cpu1 - cpu0) * 1000) / hz / calls;
  row = `| ${RATE} | ${calls} | ${failed} | ${cpuMs.toFixed(3)} | ${loadBefore} | ${load()} |`;
} finally {
  await stop(proxy.child);
  await stop(fcpd.child);
  rmSync(dir, { recursive: true, force: true });
}
console.log(
  `Machine: ${cpus().length} CPUs, ${cpus()[0]?.model ?? '?'}, node ${process.version}${PROFILE ? `; profile in ${PROFILE}` : ''}\n`,
);
console.log('| rate (calls/s) | calls | failed | proxy CPU ms/call | load before | load after |');
console.log('| --- | --- | --- | --- | --- | --- |');
console.log(row);
