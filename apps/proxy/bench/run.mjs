// Benchmark: sipp UAC/UAS INVITE…BYE calls through pinhole-proxy (pinholes on: embedded fcpd
// with the nftables backend) at increasing rates, and the same through Kamailio as a plain
// record-routing stateful proxy for reference. Runs in network namespaces it creates
// (caller ── firewall ── callee, 198.18.0.0/15) and removes. Needs root, nft, ip, sipp.
//
//   node bench/run.mjs                      (from apps/proxy, after `npm run build`)
//   BENCH_RATES=500,1000 BENCH_SECONDS=5 BENCH_TARGETS=pinhole-1,pinhole-2,kamailio node bench/run.mjs
//
// BENCH_CONTINUE=1 goes on past the first rate with a failed call, to show the proxy overloaded
// (overload control refuses a share of the new calls with 503: a column of its own).
// Prints a markdown table. Every run is bounded: calls = rate × BENCH_SECONDS, sipp -timeout.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cleanupNetns, createRoutedTopology, missingRequirements } from '@pinhole/testkit';
import { bucketQuantile, buckets, metricValue } from './prom.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
// BENCH_PROXY_CLI: another build of the proxy (an A/B of two builds in the same minutes).
const CLI = process.env.BENCH_PROXY_CLI ?? join(here, '../dist/cli.js');
const SCEN = join(here, '../test/scenarios/');
const RATES = (process.env.BENCH_RATES ?? '250,500,1000,1500,2000,2500,3000,3500,4000')
  .split(',')
  .map(Number);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
// pinhole-<workers>[-memory|-nftables] (default: embedded fcpd on nftables), kamailio.
const TARGETS = (
  process.env.BENCH_TARGETS ?? 'pinhole-1,pinhole-2,pinhole-1-memory,kamailio'
).split(',');
const HOLD_MS = 500;
// Calls at the step's rate before the measured ones (default 2 s of them), on the same proxy
// process: a freshly started process compiles its code during its first second or two of
// traffic, and those stalls (up to 200 ms) made every earlier step's p99. The warm-up calls'
// failures count; CPU and the steady pinhole step are read over the measured calls only.
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 2);
// Fail-closed after this long without the pinholes' acknowledgement (counts as a failed call).
const DEADLINE_MS = Number(process.env.BENCH_DEADLINE_MS ?? 2000);
const CALLER = '198.18.1.2';
const CALLEE = '198.19.1.2';
const PROXY_IP = '198.18.1.1';

const missing = missingRequirements(['root', 'nft', 'netns', 'sipp']);
if (missing.length > 0) {
  console.log(`proxy bench skipped: ${missing.join('; ')}`);
  process.exit(0);
}
const haveKamailio = (() => {
  try {
    execFileSync('sh', ['-c', 'command -v kamailio'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function spawnIn(ns, cmd, args, opts = {}) {
  return spawn('ip', ['netns', 'exec', ns.name, cmd, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...opts,
  });
}

function waitExit(child, ms) {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve(child.exitCode);
    const t = setTimeout(() => child.kill('SIGKILL'), ms);
    child.once('exit', (code) => {
      clearTimeout(t);
      resolve(code);
    });
  });
}

/** utime+stime (clock ticks) of a process and all its descendants. */
function cpuTicks(pid) {
  let total = 0;
  const visit = (p) => {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      total += Number(f[11]) + Number(f[12]);
    } catch {
      return;
    }
    let kids = '';
    try {
      kids = readFileSync(`/proc/${p}/task/${p}/children`, 'utf8');
    } catch {
      kids = '';
    }
    for (const k of kids.split(' ').filter(Boolean)) visit(Number(k));
  };
  visit(pid);
  return total;
}

async function metricsOf(ns, ports) {
  const out = [];
  for (const port of ports) {
    try {
      const text = execFileSync(
        'ip',
        [
          'netns',
          'exec',
          ns.name,
          process.execPath,
          '-e',
          `fetch('http://${PROXY_IP}:${port}/metrics').then(r=>r.text()).then(t=>process.stdout.write(t)).catch(()=>{})`,
        ],
        { encoding: 'utf8' },
      );
      out.push(text);
    } catch {
      out.push('');
    }
  }
  return out;
}

const FCPD = join(here, '../../fcpd/dist/cli.js');

async function startPinhole(topo, workers, backend) {
  // `embedded`: the proxy's own fcpd (nftables), CPU counted with the proxy (and its nft child).
  // `memory`/`nftables`: a separate pinhole-fcpd process; the proxy's CPU is counted alone.
  let fcpd;
  const fcpArgs = [];
  if (backend !== 'embedded') {
    // A busy proxy makes four FCP requests a call: lift the shared per-client request rate
    // (1,000/s) and rule quota, as the embedded fcpd does and as the README tells operators.
    const cfg = join(tmpdir(), `pinhole-bench-fcpd-${process.pid}.json`);
    writeFileSync(cfg, JSON.stringify({ limits: { ratePerSec: 0, maxRulesPerClient: 1000000 } }));
    fcpd = spawnIn(topo.router, process.execPath, [
      FCPD,
      '--config',
      cfg,
      '--listen',
      'tcp:127.0.0.1:12345',
      '--backend',
      backend,
      '--protected',
      topo.insideNet,
      '--log-level',
      'warn',
    ]);
    await sleep(1500);
    rmSync(cfg, { force: true }); // read at start; nothing left behind
    fcpArgs.push('--fcp', 'tcp:127.0.0.1:12345');
  }
  const child = spawnIn(topo.router, process.execPath, [
    CLI,
    ...fcpArgs,
    '--pinhole-deadline-ms',
    String(DEADLINE_MS),
    '--listen',
    `udp:${PROXY_IP}:5060`,
    '--route',
    `default=sip:${CALLEE}:5060`,
    '--protected',
    topo.insideNet,
    '--workers',
    String(workers),
    '--metrics',
    `tcp:${PROXY_IP}:9464`,
    '--log-level',
    'warn',
    // BENCH_PROXY_ARGS: extra flags for the proxy (`--no-warmup` for an A/B of the start-up).
    ...(process.env.BENCH_PROXY_ARGS ?? '').split(' ').filter(Boolean),
  ]);
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  child.stdout.on('data', (d) => {
    if (process.env.BENCH_DEBUG)
      writeFileSync(join(tmpdir(), 'pinhole-bench-proxy.log'), d, { flag: 'a' });
  });
  for (let i = 0; i < 100 && !/listening/.test(err); i++) await sleep(100);
  if (!/listening/.test(err)) throw new Error(`pinhole-proxy did not start: ${err}`);
  if (fcpd) child.once('exit', () => fcpd.kill('SIGTERM'));
  return { child, fcpd, metricsPorts: [...Array(workers).keys()].map((i) => 9464 + i) };
}

function kamailioConfig(children) {
  return `#!KAMAILIO
debug=0
log_stderror=yes
children=${children}
listen=udp:${PROXY_IP}:5060
maxbuffer=4194304
disable_tcp=yes
auto_aliases=no
alias="${PROXY_IP}:5060"
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
request_route {
  if (!mf_process_maxfwd_header("10")) { sl_send_reply("483", "Too Many Hops"); exit; }
  if (has_totag()) {
    if (loose_route()) { t_relay(); exit; }
    if (is_method("ACK")) { if (t_check_trans()) { t_relay(); } exit; }
    sl_send_reply("404", "Not here");
    exit;
  }
  if (is_method("CANCEL")) { if (t_check_trans()) { t_relay(); } exit; }
  t_check_trans();
  record_route();
  $du = "sip:${CALLEE}:5060";
  t_relay();
}
`;
}

async function startKamailio(topo, children, dir) {
  const cfg = join(dir, 'kamailio.cfg');
  writeFileSync(cfg, kamailioConfig(children));
  const child = spawnIn(topo.router, 'kamailio', [
    '-f',
    cfg,
    '-DD',
    '-E',
    '-m',
    '256',
    '-M',
    '16',
    '-Y',
    dir,
    '-P',
    join(dir, 'k.pid'),
  ]);
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  await sleep(1500);
  if (child.exitCode !== null) throw new Error(`kamailio did not start: ${err.slice(-2000)}`);
  return { child, metricsPorts: [] };
}

function parseSipp(out) {
  const num = (label) => {
    const m = new RegExp(`${label}\\s*\\|\\s*(\\d+)\\s*\\|\\s*(\\d+)`).exec(out);
    return m ? Number(m[2]) : 0;
  };
  return { ok: num('Successful call'), failed: num('Failed call') };
}

async function step(topo, target, rate, dir) {
  const calls = Math.max(1, Math.round(rate * SECONDS));
  const warmCalls = Math.round(rate * WARMUP_SECONDS);
  const csv = join(dir, 'ports.csv');
  // One media port per call on the callee, so every call opens its own pinholes.
  writeFileSync(
    csv,
    `SEQUENTIAL\n${[...Array(Math.min(calls, 20000)).keys()].map((i) => `${20000 + 2 * (i % 20000)};${CALLEE};`).join('\n')}\n`,
  );
  const server =
    target.kind === 'kamailio'
      ? await startKamailio(topo, target.workers, dir)
      : await startPinhole(topo, target.workers, target.backend);
  const limit = String(Math.ceil(rate * (HOLD_MS / 1000 + 1) * 2) + 100);
  const uas = spawnIn(topo.inside, 'sipp', [
    '-sf',
    `${SCEN}uas-bench.xml`,
    '-i',
    CALLEE,
    '-p',
    '5060',
    '-mp',
    '16000',
    '-inf',
    csv,
    '-m',
    String(calls + warmCalls),
    '-nostdin',
    '-timeout',
    `${SECONDS + WARMUP_SECONDS + 60}s`,
    '-buff_size',
    '4194304',
    ...(process.env.BENCH_TRACE
      ? ['-trace_msg', '-message_file', join(tmpdir(), 'pinhole-bench-uas.msg')]
      : []),
  ]);
  let uasOut = '';
  uas.stdout.on('data', (d) => (uasOut = (uasOut + d).slice(-20000)));
  await sleep(300);
  let warm = { ok: 0, failed: 0 };
  if (warmCalls > 0) {
    const w = uacRun(topo, rate, warmCalls, limit, dir, 'warm');
    await waitExit(w.child, (WARMUP_SECONDS + 40) * 1000);
    warm = parseSipp(w.out());
    warm.failed += Math.max(0, warmCalls - warm.ok - warm.failed);
    if (process.env.BENCH_DEBUG)
      debugSipp('warm-up', w.out(), warm.failed, join(dir, 'uac-warm.err'));
  }
  const m0 = await metricsOf(topo.router, server.metricsPorts);
  const cpu0 = cpuTicks(server.child.pid);
  const t0 = Date.now();
  const measured = uacRun(topo, rate, calls, limit, dir, 'bench');
  const uac = measured.child;
  await waitExit(uac, (SECONDS + 40) * 1000);
  const out = measured.out();
  const elapsed = (Date.now() - t0) / 1000;
  const cpu1 = cpuTicks(server.child.pid);
  const m = await metricsOf(topo.router, server.metricsPorts);
  if (process.env.BENCH_DEBUG) {
    // Each namespace's UDP counters (caller, firewall, callee): RcvbufErrors are datagrams the
    // kernel dropped because a receive buffer (sipp's, the proxy's) was full.
    for (const [role, ns] of [
      ['caller', topo.outside],
      ['firewall', topo.router],
      ['callee', topo.inside],
    ]) {
      const snmp = execFileSync('ip', ['netns', 'exec', ns.name, 'cat', '/proc/net/snmp'], {
        encoding: 'utf8',
      });
      const udp = snmp.split('\n').filter((l) => l.startsWith('Udp:'));
      console.error(`${role} ${udp.join(' | ')}`);
    }
  }
  uas.kill('SIGTERM');
  await waitExit(uas, 5000);
  server.child.kill('SIGTERM');
  await waitExit(server.child, 10_000);
  if (server.fcpd) {
    server.fcpd.kill('SIGTERM');
    await waitExit(server.fcpd, 5000);
  }
  return finish({ rate, calls, warm, out, uasOut, m0, m, cpu0, cpu1, elapsed, dir });
}

/** One sipp UAC run of the bench scenario (`key`: the Call-ID prefix, unique per run). */
function uacRun(topo, rate, calls, limit, dir, key) {
  const uac = spawnIn(topo.outside, 'sipp', [
    `${PROXY_IP}:5060`,
    '-sf',
    `${SCEN}uac-bench.xml`,
    '-i',
    CALLER,
    '-p',
    '5060',
    '-mp',
    '16000',
    '-key',
    'mport',
    '41000',
    '-s',
    'bench',
    '-cid_str',
    `${key}-%u-%p@%s`,
    '-r',
    String(rate),
    '-m',
    String(calls),
    '-l',
    limit,
    '-d',
    String(HOLD_MS),
    '-nostdin',
    '-timeout',
    `${SECONDS + 30}s`,
    '-timeout_error',
    '-buff_size',
    '4194304',
    '-recv_timeout',
    '10000',
    '-trace_err',
    '-error_file',
    join(dir, `uac-${key}.err`),
    ...(process.env.BENCH_TRACE
      ? ['-trace_msg', '-message_file', join(tmpdir(), 'pinhole-bench-uac.msg')]
      : []),
  ]);
  let out = '';
  uac.stdout.on('data', (d) => (out = (out + d).slice(-20000)));
  return { child: uac, out: () => out };
}

/** BENCH_DEBUG: sipp's screen of a run and the start of its error file when calls failed. */
function debugSipp(phase, screen, failed, errFile) {
  if (screen) console.error(`--- sipp UAC, ${phase}:\n${screen.slice(-3000)}`);
  if (failed === 0) return;
  let text = '';
  try {
    text = readFileSync(errFile, 'utf8');
  } catch {
    return; // no error file
  }
  // Each event without its time and Call-ID, counted: what failed, and at which message.
  const kinds = new Map();
  for (const e of text.split(/\d{4}-\d\d-\d\d\t[\d:.]+\t[\d.]+: /).slice(1)) {
    const k = e
      .replace(/Call-I[dD]: \S+/g, 'Call-ID: …')
      .replace(/\s+/g, ' ')
      .trim()
      .slice(0, 200);
    kinds.set(k, (kinds.get(k) ?? 0) + 1);
  }
  console.error(`--- sipp UAC errors, ${phase}:`);
  for (const [k, n] of [...kinds].sort((a, b) => b[1] - a[1])) console.error(`${n} × ${k}`);
}

function finish({ rate, calls, warm, out, uasOut, m0, m, cpu0, cpu1, elapsed, dir }) {
  const { ok, failed } = parseSipp(out);
  if (process.env.BENCH_DEBUG) {
    console.error(out.slice(-3000), uasOut.slice(-3000));
    for (const t of m)
      console.error(
        t
          .split('\n')
          .filter((l) =>
            /requests_total|responses_total|bad_messages|pinholes_total|transactions /.test(l),
          )
          .join('\n'),
      );
  }
  if (process.env.BENCH_DEBUG) debugSipp('measured', '', failed, join(dir, 'uac-bench.err'));
  const hz = 100;
  const cpuMsPerCall = ok + failed > 0 ? (((cpu1 - cpu0) / hz) * 1000) / (ok + failed) : NaN;
  const p50s = m
    .map((t) => metricValue(t, 'pinhole_proxy_pinhole_step_recent_seconds{quantile="0.5"}'))
    .filter((v) => v !== undefined);
  const p99s = m
    .map((t) => metricValue(t, 'pinhole_proxy_pinhole_step_recent_seconds{quantile="0.99"}'))
    .filter((v) => v !== undefined);
  // The step (from reading the response to its relay decision) and, within it, the wait for the
  // FCP acknowledgements.
  const hist = 'pinhole_proxy_pinhole_step_seconds';
  const b0 = buckets(m0, hist);
  const b1 = buckets(m, hist);
  const w0 = buckets(m0, 'pinhole_proxy_pinhole_wait_seconds');
  const w1 = buckets(m, 'pinhole_proxy_pinhole_wait_seconds');
  const opened = m
    .map((t) => metricValue(t, 'pinhole_proxy_pinholes_total{outcome="opened"}') ?? 0)
    .reduce((a, b) => a + b, 0);
  // New calls overload control refused with 503 (they count among the failed calls too).
  const refusedOf = (texts) =>
    texts
      .map((t) => metricValue(t, 'pinhole_proxy_overload_refused_total{method="INVITE"}') ?? 0)
      .reduce((a, b) => a + b, 0);
  const warmRefused = m0.length > 0 ? refusedOf(m0) : undefined;
  const refused = m.length > 0 ? refusedOf(m) - (warmRefused ?? 0) : undefined;
  return {
    rate,
    calls,
    ok,
    failed: failed + Math.max(0, calls - ok - failed),
    warmFailed: warm.failed,
    elapsed,
    cpuMsPerCall,
    // Several workers: the p50 of the medians and the worst p99 (each worker keeps its own).
    p50: p50s.length ? p50s.reduce((a, b) => a + b, 0) / p50s.length : undefined,
    p99: p99s.length ? Math.max(...p99s) : undefined,
    // The measured calls only (no warm-up), from the histogram's buckets.
    steadyP50: bucketQuantile(b0, b1, 0.5),
    steadyP99: bucketQuantile(b0, b1, 0.99),
    waitP99: bucketQuantile(w0, w1, 0.99),
    opened,
    refused,
    warmRefused,
  };
}

const results = [];
const topo = await createRoutedTopology();
const dir = mkdtempSync(join(tmpdir(), 'pinhole-bench-'));
try {
  for (const name of TARGETS) {
    const target = name.startsWith('kamailio')
      ? { kind: 'kamailio', workers: 2, label: 'Kamailio 5.6 (tm + rr, 2 children)' }
      : {
          kind: 'pinhole',
          workers: Number(name.split('-')[1] ?? 1),
          backend: name.split('-')[2] ?? 'embedded',
          label: `pinhole-proxy ${name.split('-')[1] ?? 1} worker(s), ${
            { memory: 'separate fcpd (memory)', nftables: 'separate fcpd (nftables)' }[
              name.split('-')[2]
            ] ?? 'embedded fcpd (nftables)'
          }`,
        };
    if (target.kind === 'kamailio' && !haveKamailio) {
      console.log('kamailio not installed: reference skipped');
      continue;
    }
    // The highest rate with no failed call: the first step that fails ends the count, also when
    // BENCH_CONTINUE runs the steps above it (a clean step above a failed one is not counted).
    let best;
    let failedYet = false;
    for (const rate of RATES) {
      const r = await step(topo, target, rate, dir);
      results.push({ target: target.label, ...r });
      console.error(
        `${target.label} @ ${rate}/s: ${r.ok} ok, ${r.failed} failed (${r.warmFailed} in the warm-up), ${r.cpuMsPerCall.toFixed(3)} ms CPU/call`,
      );
      // BENCH_CONTINUE: go on past the first failing rate (how the proxy behaves overloaded).
      if (r.failed > 0 || r.warmFailed > 0) {
        failedYet = true;
        if (process.env.BENCH_CONTINUE) continue;
        break;
      }
      if (!failedYet && (best === undefined || best.rate < r.rate)) best = r;
    }
    results.push({ target: target.label, summary: true, best: best?.rate ?? 0 });
  }
} finally {
  await topo.destroy();
  await cleanupNetns();
  rmSync(dir, { recursive: true, force: true });
}

const fmt = (v, d = 2) => (v === undefined || Number.isNaN(v) ? '–' : v.toFixed(d));
console.log(
  `\nMachine: ${cpus().length} CPUs, ${cpus()[0]?.model ?? '?'}, node ${process.version}, load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}; ${SECONDS} s per step, calls held ${HOLD_MS} ms, pinhole deadline ${DEADLINE_MS} ms (fail-closed)\n`,
);
console.log(
  '| target | rate (calls/s) | calls | ok | failed (warm-up) | of which 503 overload (warm-up) | CPU ms/call | pinhole step p50 (ms) | p99 (ms) | steady p50 (ms) | steady p99 (ms) | steady FCP wait p99 (ms) | pinholes opened |',
);
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
for (const r of results) {
  if (r.summary) continue;
  console.log(
    `| ${r.target} | ${r.rate} | ${r.calls} | ${r.ok} | ${r.failed} (${r.warmFailed}) | ${r.refused === undefined ? '–' : `${r.refused} (${r.warmRefused})`} | ${fmt(r.cpuMsPerCall, 3)} | ${r.p50 === undefined ? '–' : fmt(r.p50 * 1000, 3)} | ${r.p99 === undefined ? '–' : fmt(r.p99 * 1000, 3)} | ${r.steadyP50 === undefined ? '–' : fmt(r.steadyP50 * 1000, 3)} | ${r.steadyP99 === undefined ? '–' : fmt(r.steadyP99 * 1000, 3)} | ${r.waitP99 === undefined ? '–' : fmt(r.waitP99 * 1000, 3)} | ${r.opened || '–'} |`,
  );
}
console.log('\n| target | highest rate with no failed call (calls/s) |\n|---|---|');
for (const r of results) if (r.summary) console.log(`| ${r.target} | ${r.best} |`);
