// Benchmarks of pinhole-fcpd (run against the built dist/; needs root, nft and ip for the
// nftables rows, which run in a network namespace this script creates and deletes).
//
//   npm run bench -w @pinhole/fcpd            (BENCH_PAIRS=20000 by default)
//
// Rows:
//  - pipelined SET+RELEASE pairs per second through FcpClient -> FCP server -> backend, for the
//    memory and nftables backends, with per-request latency p50/p99;
//  - the same number of elements added then deleted with `nft -f` directly: the ceiling;
//  - single SET latency when the daemon is idle (one request at a time, nftables backend);
//  - heap with 100,000 live rules (memory backend).
import { execFileSync, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FcpClient, MemoryBackend } from '@pinhole/fcp';
import { cleanupNetns, createNetns, missingRequirements } from '@pinhole/testkit';
import { pino } from 'pino';
import {
  NetlinkChannel,
  NftChannel,
  NftablesBackend,
  builtAddonPath,
  builtHelperPath,
  emptyNewSetElem,
  startFcpd,
} from '../dist/index.js';

const PAIRS = Number(process.env.BENCH_PAIRS ?? 20_000);
const WINDOW = Number(process.env.BENCH_WINDOW ?? 256);
const IDLE_SETS = Number(process.env.BENCH_IDLE_SETS ?? 500);
// Idle latency is that of a running (warm) daemon: the first requests after a start run cold
// code (lazy compilation) and are measured but not counted.
const IDLE_WARMUP = Number(process.env.BENCH_IDLE_WARMUP ?? 100);
// The "warm" idle rows first send this many SET+RELEASE pairs back to back through the same
// client (uncounted): a daemon in service has run its request path long enough for V8 to have
// optimised it, client and server; 100 requests after a start have not.
const IDLE_WARM_PAIRS = Number(process.env.BENCH_IDLE_WARM_PAIRS ?? 5000);
// Each throughput row is run REPEAT times (the nftables rows interleaved); the median run is reported.
const REPEAT = Number(process.env.BENCH_REPEAT ?? 3);

/**
 * Runs every case REPEAT times, interleaved (a, b, c, a, b, c, ...), and keeps each case's
 * median run: on a shared machine the load drifts over minutes, and interleaving spreads the
 * drift over all cases instead of giving each case its own minute.
 */
async function interleaved(cases) {
  const runs = cases.map(() => []);
  for (let i = 0; i < REPEAT; i++) {
    for (let c = 0; c < cases.length; c++) {
      const [name, fn] = cases[c];
      console.error(`  ${name} (${i + 1}/${REPEAT})`);
      runs[c].push(await fn());
    }
  }
  return runs.map((r) => {
    if (r[0] === undefined) return undefined;
    r.sort((a, b) => a.rate - b.rate);
    return r[Math.floor(r.length / 2)];
  });
}

async function median(fn) {
  const runs = [];
  for (let i = 0; i < REPEAT; i++) runs.push(await fn());
  runs.sort((a, b) => a.rate - b.rate);
  return runs[Math.floor(runs.length / 2)];
}
const log = pino({ level: 'silent' });

function pct(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}
const ms = (x) => x.toFixed(2);

function dst(i) {
  // 198.19.0.0/16, one address per pair, port 40000 + (i % 2) * 2.
  return { proto: 'udp', dst: `198.19.${(i >> 8) & 0xff}.${i & 0xff}`, dstPort: [40000, 40001] };
}

const CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

/** The daemon as its own process (as deployed), so client and server do not share a CPU. */
async function daemon(kind, ns, nftExtra = {}) {
  const cfg = {
    listen: ['tcp:127.0.0.1:0'],
    backend: kind,
    protected: ['198.19.0.0/16'],
    limits: { ratePerSec: 0, maxRulesPerClient: 200_000, maxInflightPerConnection: 4096 },
    policy: { allowForever: true },
    logLevel: 'info',
    ...(ns ? { nft: { command: ns.argv('nft'), ...nftExtra } } : {}),
  };
  const file = join(tmpdir(), `pinhole-bench-${process.pid}.json`);
  writeFileSync(file, JSON.stringify(cfg));
  const child = spawn(process.execPath, [CLI, '--config', file], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('fcpd did not start')), 15_000);
    child.once('exit', (c) => reject(new Error(`fcpd exited ${c}`)));
    createInterface({ input: child.stdout }).on('line', (line) => {
      const rec = JSON.parse(line);
      if (rec.msg === 'pinhole-fcpd started') {
        clearTimeout(t);
        resolve(Number(rec.listen[0].split(':').pop()));
      }
    });
  });
  rmSync(file, { force: true });
  return {
    addresses: [{ port }],
    pid: child.pid,
    close: () =>
      new Promise((r) => {
        child.once('exit', () => r());
        child.kill('SIGTERM');
      }),
  };
}

/** In-process daemon (heap measurement). */
async function inProcess(backend) {
  return startFcpd(
    {
      listen: [{ transport: 'tcp', host: '127.0.0.1', port: 0 }],
      backend: 'memory',
      protected: ['198.19.0.0/16'],
      limits: { ratePerSec: 0, maxRulesPerClient: 200_000, maxInflightPerConnection: 4096 },
      policy: { allowForever: true },
    },
    { logger: log, backend },
  );
}

/** CPU time (ms) a process used so far, from /proc (clock ticks of 10 ms). */
function cpuMs(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}

async function pairs(kind, ns, n, nftExtra) {
  const d = await daemon(kind, ns, nftExtra);
  const client = new FcpClient({
    servers: [{ host: '127.0.0.1', port: d.addresses[0].port }],
    keepAlive: false,
    requestTimeoutMs: 30_000,
  });
  await client.ready();
  const lat = [];
  let next = 0;
  let failures = 0;
  const d0 = cpuMs(d.pid);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  async function worker() {
    for (;;) {
      const i = next++;
      if (i >= n) return;
      const pme = dst(i);
      let s = performance.now();
      const a = await client.set(pme, { timer: 60 });
      lat.push(performance.now() - s);
      s = performance.now();
      const b = await client.release(pme);
      lat.push(performance.now() - s);
      if (!a.ok || !b.ok) failures++;
    }
  }
  await Promise.all(Array.from({ length: WINDOW }, worker));
  const secs = (performance.now() - t0) / 1000;
  // CPU per FCP request (2 per pair): robust to other load, unlike the rate.
  const daemonUs = ((cpuMs(d.pid) - d0) * 1000) / (2 * n);
  const cu = process.cpuUsage(c0);
  const clientUs = (cu.user + cu.system) / (2 * n);
  client.close();
  await d.close();
  lat.sort((x, y) => x - y);
  return { rate: n / secs, p50: pct(lat, 50), p99: pct(lat, 99), failures, daemonUs, clientUs };
}

/** The backend alone (no FCP): concurrent install+remove pairs, as the server would call it. */
async function backendPairs(backend, n) {
  await backend.open();
  const lat = [];
  let next = 0;
  let failures = 0;
  const t0 = performance.now();
  async function worker() {
    for (;;) {
      const i = next++;
      if (i >= n) return;
      const rule = ruleOf(i);
      try {
        let s = performance.now();
        await backend.install(rule, { owner: '127.0.0.1', timerSec: 60 });
        lat.push(performance.now() - s);
        s = performance.now();
        await backend.remove(rule);
        lat.push(performance.now() - s);
      } catch {
        failures++;
      }
    }
  }
  await Promise.all(Array.from({ length: WINDOW }, worker));
  const secs = (performance.now() - t0) / 1000;
  await backend.close();
  lat.sort((x, y) => x - y);
  return { rate: n / secs, p50: pct(lat, 50), p99: pct(lat, 99), failures };
}

async function idleBackend(backend, n) {
  await backend.open();
  const lat = [];
  for (let i = 0; i < n + IDLE_WARMUP; i++) {
    await new Promise((r) => setTimeout(r, 5));
    const rule = ruleOf(i);
    const s = performance.now();
    await backend.install(rule, { owner: '127.0.0.1', timerSec: 60 });
    if (i >= IDLE_WARMUP) lat.push(performance.now() - s);
    await backend.remove(rule);
  }
  await backend.close();
  lat.sort((x, y) => x - y);
  return { p50: pct(lat, 50), p99: pct(lat, 99) };
}

/** The nft CLI floor: an empty transaction (an empty include and the sentinel) when idle. */
async function idleChannel(ns, n) {
  const ch = new NftChannel({ argv: ns.argv('nft') });
  await ch.run('');
  const lat = [];
  for (let i = 0; i < n + IDLE_WARMUP; i++) {
    await new Promise((r) => setTimeout(r, 5));
    const s = performance.now();
    await ch.run('');
    if (i >= IDLE_WARMUP) lat.push(performance.now() - s);
  }
  await ch.close();
  lat.sort((x, y) => x - y);
  return { p50: pct(lat, 50), p99: pct(lat, 99) };
}

function ruleOf(i) {
  const p = dst(i);
  return {
    key: `PROTO=17; DSTIP=${p.dst}; DSTPORT=40000-40001;`,
    family: 4,
    proto: 17,
    src: undefined,
    srcPorts: undefined,
    dst: { address: p.dst, prefix: 32 },
    dstPorts: [40000, 40001],
    action: 'pass',
  };
}

const ECHO_SERVER = `
const s = require('node:net').createServer((c) => { c.setNoDelay(true); c.on('data', (d) => c.write(d)); });
s.listen(0, '127.0.0.1', () => console.log(s.address().port));
process.stdin.on('end', () => process.exit(0)); process.stdin.resume();
`;

/**
 * The floor of any two-process round trip on this host: a raw Node TCP echo (a separate
 * process, no FCP), with a message the size of a SET, the same gaps and the same warm-up.
 */
async function idleEcho(n) {
  const child = spawn(process.execPath, ['-e', ECHO_SERVER], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const port = await new Promise((resolve) =>
    createInterface({ input: child.stdout }).once('line', (l) => resolve(Number(l))),
  );
  const sock = net.connect(port, '127.0.0.1');
  sock.setNoDelay(true);
  await new Promise((r) => sock.once('connect', r));
  const msg = Buffer.alloc(90, 0x41);
  const lat = [];
  for (let i = 0; i < n + IDLE_WARMUP; i++) {
    await new Promise((r) => setTimeout(r, 5));
    const s = performance.now();
    await new Promise((r) => {
      let got = 0;
      const on = (d) => {
        got += d.length;
        if (got >= msg.length) {
          sock.off('data', on);
          r();
        }
      };
      sock.on('data', on);
      sock.write(msg);
    });
    if (i >= IDLE_WARMUP) lat.push(performance.now() - s);
  }
  sock.destroy();
  child.stdin.end();
  lat.sort((x, y) => x - y);
  return { p50: pct(lat, 50), p99: pct(lat, 99) };
}

/** The netlink floor: an empty NEWSETELEM batch, in process or through the helper, when idle. */
async function idleNetlink(ns, n, mode) {
  const ch = new NetlinkChannel(
    mode === 'helper'
      ? { argv: ns.argv(builtHelperPath()) }
      : { inProcess: { netns: `/run/netns/${ns.name}` } },
  );
  const msg = () => [emptyNewSetElem('h4d')];
  await ch.run('pinhole', msg());
  const lat = [];
  for (let i = 0; i < n + IDLE_WARMUP; i++) {
    await new Promise((r) => setTimeout(r, 5));
    const s = performance.now();
    await ch.run('pinhole', msg());
    if (i >= IDLE_WARMUP) lat.push(performance.now() - s);
  }
  await ch.close();
  lat.sort((x, y) => x - y);
  return { p50: pct(lat, 50), p99: pct(lat, 99) };
}

/**
 * The embedded deployment (a one-worker pinhole-proxy): fcpd in the client's process on the
 * nftables backend (netlink in process, in the namespace), reached over the local FCP link.
 */
async function idleEmbedded(ns, n) {
  const d = await startFcpd(
    {
      listen: [{ transport: 'tcp', host: '127.0.0.1', port: 0 }],
      backend: 'nftables',
      protected: ['198.19.0.0/16'],
      limits: { ratePerSec: 0, maxRulesPerClient: 200_000 },
      policy: { allowForever: true },
      nft: { command: ns.argv('nft') },
    },
    { logger: log },
  );
  const client = new FcpClient({
    servers: [
      { host: 'embedded', port: 0, transport: 'local', connect: () => d.server.connectLocal() },
    ],
    keepAlive: false,
  });
  return timeIdleSets(client, n, d);
}

async function idleSets(kind, ns, n, nftExtra, warmPairs = 0) {
  const d = await daemon(kind, ns, nftExtra);
  const client = new FcpClient({
    servers: [{ host: '127.0.0.1', port: d.addresses[0].port }],
    keepAlive: false,
  });
  return timeIdleSets(client, n, d, warmPairs);
}

/**
 * One SET at a time, 5 ms apart (the daemon idles between them), each followed by its RELEASE;
 * after `warmPairs` uncounted pairs sent back to back (a daemon in service) and IDLE_WARMUP
 * uncounted spaced ones.
 */
async function timeIdleSets(client, n, d, warmPairs = 0) {
  await client.ready();
  const lat = [];
  const uncounted = warmPairs + IDLE_WARMUP;
  for (let i = 0; i < uncounted + n; i++) {
    const pme = dst(i);
    if (i >= warmPairs) await new Promise((r) => setTimeout(r, 5));
    const s = performance.now();
    const r = await client.set(pme, { timer: 60 });
    if (i >= uncounted) lat.push(performance.now() - s);
    if (!r.ok) throw new Error(`SET failed: ${JSON.stringify(r.outcomes)}`);
    await client.release(pme);
  }
  client.close();
  await d.close();
  lat.sort((x, y) => x - y);
  return { p50: pct(lat, 50), p99: pct(lat, 99) };
}

/** The same elements as the backend writes, added then deleted with `nft -f`: the ceiling. */
function directNft(ns, n) {
  const add = [];
  const keys = [];
  for (let i = 0; i < n; i++) {
    const p = dst(i);
    for (const port of [40000, 40001]) {
      const k = `${p.dst} . 17 . ${port}`;
      keys.push(k);
      add.push(`${k} timeout 60s comment "ph1;o=127.0.0.1;t=60;x=1800000000000;dp=40000-40001"`);
    }
  }
  const fa = join(tmpdir(), `pinhole-bench-add-${process.pid}.nft`);
  const fd = join(tmpdir(), `pinhole-bench-del-${process.pid}.nft`);
  writeFileSync(fa, `add element inet pinhole h4d { ${add.join(',\n')} }\n`);
  writeFileSync(fd, `delete element inet pinhole h4d { ${keys.join(',\n')} }\n`);
  try {
    const t0 = performance.now();
    execFileSync('ip', ['netns', 'exec', ns.name, 'nft', '-f', fa]);
    execFileSync('ip', ['netns', 'exec', ns.name, 'nft', '-f', fd]);
    const secs = (performance.now() - t0) / 1000;
    return { rate: n / secs };
  } finally {
    rmSync(fa, { force: true });
    rmSync(fd, { force: true });
  }
}

async function heap100k() {
  const backend = new MemoryBackend();
  const d = await inProcess(backend);
  const client = new FcpClient({
    servers: [{ host: '127.0.0.1', port: d.addresses[0].port }],
    keepAlive: false,
    requestTimeoutMs: 60_000,
  });
  await client.ready();
  globalThis.gc?.();
  const before = process.memoryUsage().heapUsed;
  let next = 0;
  async function worker() {
    for (;;) {
      const i = next++;
      if (i >= 100_000) return;
      const r = await client.set(
        { proto: 'udp', dst: `198.19.${(i >> 8) & 0xff}.${i & 0xff}`, dstPort: 1024 + (i % 60000) },
        { timer: 3600, keepAlive: false },
      );
      if (!r.ok) throw new Error('SET failed');
    }
  }
  await Promise.all(Array.from({ length: WINDOW }, worker));
  globalThis.gc?.();
  const after = process.memoryUsage().heapUsed;
  const live = d.server.liveRules;
  client.close();
  await d.close();
  // Includes the client's bookkeeping of its 100,000 owned rules (same process).
  return { live, mib: (after - before) / 1048576 };
}

const loadAtStart = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const rows = [];
const facts = {
  node: process.version,
  nproc: execFileSync('nproc').toString().trim(),
  nft: (() => {
    try {
      return execFileSync('nft', ['--version']).toString().trim();
    } catch {
      return 'nft missing';
    }
  })(),
};

console.error(`memory backend: ${PAIRS} pairs...`);
await pairs('memory', undefined, Math.min(PAIRS, 2000)); // warm-up
const missing = missingRequirements(['root', 'nft', 'ip', 'netns']);
// With the nftables rows, the memory row is interleaved with them (below).
let mem = missing.length === 0 ? undefined : await median(() => pairs('memory', undefined, PAIRS));

const idleMem = await idleSets('memory', undefined, IDLE_SETS);
const idleMemWarm = await idleSets('memory', undefined, IDLE_SETS, {}, IDLE_WARM_PAIRS);
const idleRaw = await idleEcho(IDLE_SETS);

let nftRow;
let nftSplit;
let ceiling;
let idle;
let nftAlone;
let idleAlone;
let idleNft;
let nftNl;
let nftAloneNl;
let idleNl;
let idleNlWarm;
let idleAloneNl;
let idleNlFloor;
let nftHelper;
let idleHelper;
let idleHelperFloor;
let idleEmb;
if (missing.length === 0) {
  const ns = await createNetns('b');
  try {
    const mk = (channel) =>
      new NftablesBackend({
        protected: ['198.19.0.0/16'],
        nftCommand: ns.argv('nft'),
        channel,
        logger: undefined,
      });
    // Create the table once so the ceiling run has its sets.
    const b0 = mk('cli');
    await b0.open();
    await b0.close();
    const netlink = builtAddonPath() !== undefined;
    const helper = builtHelperPath() !== undefined;
    const viaHelper = { channel: 'netlink', helperCommand: ns.argv(builtHelperPath() ?? '') };
    console.error(`${PAIRS} pairs per run, ${REPEAT} interleaved runs per row...`);
    const none = async () => undefined;
    [mem, ceiling, nftNl, nftHelper, nftRow, nftSplit, nftAloneNl, nftAlone] = await interleaved([
      ['e2e memory', () => pairs('memory', undefined, PAIRS)],
      ['direct nft -f', async () => directNft(ns, PAIRS)],
      ['e2e netlink', netlink ? () => pairs('nftables', ns, PAIRS, { channel: 'netlink' }) : none],
      ['e2e netlink helper', helper ? () => pairs('nftables', ns, PAIRS, viaHelper) : none],
      ['e2e cli', () => pairs('nftables', ns, PAIRS, { channel: 'cli' })],
      [
        'e2e cli splitBursts',
        () => pairs('nftables', ns, PAIRS, { channel: 'cli', splitBursts: true }),
      ],
      ['backend alone netlink', netlink ? () => backendPairs(mk('netlink'), PAIRS) : none],
      ['backend alone cli', () => backendPairs(mk('cli'), PAIRS)],
    ]);
    rows.push(['FcpClient → server → memory backend', mem]);
    if (nftNl) rows.push(['FcpClient → server → nftables backend, netlink in process', nftNl]);
    if (nftHelper)
      rows.push(['FcpClient → server → nftables backend, netlink through the helper', nftHelper]);
    rows.push(['FcpClient → server → nftables backend, cli channel', nftRow]);
    rows.push(['FcpClient → server → nftables backend, cli channel, `nft.splitBursts`', nftSplit]);
    if (nftAloneNl)
      rows.push(['NftablesBackend alone (install + remove calls), netlink', nftAloneNl]);
    rows.push(['NftablesBackend alone (install + remove calls), cli', nftAlone]);
    rows.push(['`nft -f` add + delete of the same elements (ceiling)', ceiling]);
    console.error(`idle single SET x${IDLE_SETS} (after ${IDLE_WARMUP} warm-up)...`);
    if (netlink) {
      idleNl = await idleSets('nftables', ns, IDLE_SETS, { channel: 'netlink' });
      idleNlWarm = await idleSets(
        'nftables',
        ns,
        IDLE_SETS,
        { channel: 'netlink' },
        IDLE_WARM_PAIRS,
      );
      idleAloneNl = await idleBackend(mk('netlink'), IDLE_SETS);
      idleNlFloor = await idleNetlink(ns, IDLE_SETS, 'in-process');
      idleEmb = await idleEmbedded(ns, IDLE_SETS);
    }
    if (helper) {
      idleHelper = await idleSets('nftables', ns, IDLE_SETS, viaHelper);
      idleHelperFloor = await idleNetlink(ns, IDLE_SETS, 'helper');
    }
    idle = await idleSets('nftables', ns, IDLE_SETS, { channel: 'cli' });
    idleAlone = await idleBackend(mk('cli'), IDLE_SETS);
    idleNft = await idleChannel(ns, IDLE_SETS);
  } finally {
    await cleanupNetns();
  }
} else {
  console.error(`nftables rows skipped: ${missing.join('; ')}`);
  rows.push(['FcpClient → server → memory backend', mem]);
}
console.error('heap with 100,000 live rules...');
const heap = await heap100k();

console.log(
  `\n### pinhole-fcpd (${PAIRS} SET+RELEASE pairs, ${WINDOW} in flight, median of ${REPEAT} runs)\n`,
);
console.log(
  '| path | pairs/s | p50 ms | p99 ms | failures | daemon CPU µs/request | client CPU µs/request |',
);
console.log('|---|---:|---:|---:|---:|---:|---:|');
const us = (x) => (x === undefined ? '–' : x.toFixed(1));
for (const [name, r] of rows) {
  console.log(
    `| ${name} | ${Math.round(r.rate)} | ${r.p50 === undefined ? '–' : ms(r.p50)} | ${r.p99 === undefined ? '–' : ms(r.p99)} | ${r.failures ?? '–'} | ${us(r.daemonUs)} | ${us(r.clientUs)} |`,
  );
}
if (nftRow && ceiling && nftAlone) {
  const r = (x) => (x === undefined ? '–' : (x.rate / ceiling.rate).toFixed(2));
  console.log(
    `\nRatio to direct nft (goal ≥ 0.5): end to end netlink ${r(nftNl)} (through the helper ${r(nftHelper)}), cli ${r(nftRow)} (with splitBursts ${r(nftSplit)}); backend alone netlink ${r(nftAloneNl)}, cli ${r(nftAlone)}`,
  );
}
console.log(
  `\nSingle SET when idle (${IDLE_SETS} samples after ${IDLE_WARMUP} uncounted warm-up ones, 5 ms apart; goal p99 ≤ 2 ms):\n`,
);
console.log('| path | p50 ms | p99 ms |');
console.log('|---|---:|---:|');
console.log(`| FcpClient → server → memory backend | ${ms(idleMem.p50)} | ${ms(idleMem.p99)} |`);
console.log(
  `| FcpClient → server → memory backend, warm (after ${IDLE_WARM_PAIRS} pairs back to back) | ${ms(idleMemWarm.p50)} | ${ms(idleMemWarm.p99)} |`,
);
console.log(
  `| raw Node TCP echo between two processes (no FCP): the host's floor | ${ms(idleRaw.p50)} | ${ms(idleRaw.p99)} |`,
);
if (idleNl)
  console.log(
    `| FcpClient → server → nftables backend, netlink in process | ${ms(idleNl.p50)} | ${ms(idleNl.p99)} |`,
  );
if (idleNlWarm)
  console.log(
    `| FcpClient → server → nftables backend, netlink in process, warm (after ${IDLE_WARM_PAIRS} pairs back to back) | ${ms(idleNlWarm.p50)} | ${ms(idleNlWarm.p99)} |`,
  );
if (idleEmb)
  console.log(
    `| embedded (one-worker proxy): FcpClient → local link → server → nftables, netlink in process, all in one process | ${ms(idleEmb.p50)} | ${ms(idleEmb.p99)} |`,
  );
if (idleHelper)
  console.log(
    `| FcpClient → server → nftables backend, netlink through the helper | ${ms(idleHelper.p50)} | ${ms(idleHelper.p99)} |`,
  );
if (idle)
  console.log(
    `| FcpClient → server → nftables backend, cli channel | ${ms(idle.p50)} | ${ms(idle.p99)} |`,
  );
if (idleAloneNl)
  console.log(
    `| NftablesBackend.install alone, netlink in process | ${ms(idleAloneNl.p50)} | ${ms(idleAloneNl.p99)} |`,
  );
if (idleAlone)
  console.log(
    `| NftablesBackend.install alone, cli | ${ms(idleAlone.p50)} | ${ms(idleAlone.p99)} |`,
  );
if (idleNlFloor)
  console.log(
    `| empty NEWSETELEM batch in process: the netlink floor | ${ms(idleNlFloor.p50)} | ${ms(idleNlFloor.p99)} |`,
  );
if (idleHelperFloor)
  console.log(
    `| empty NEWSETELEM batch through pinhole-nfnl: the helper's floor | ${ms(idleHelperFloor.p50)} | ${ms(idleHelperFloor.p99)} |`,
  );
if (idleNft)
  console.log(
    `| nft -i empty transaction (include + sentinel): the CLI floor | ${ms(idleNft.p50)} | ${ms(idleNft.p99)} |`,
  );
console.log(
  `\nHeap with ${heap.live} live rules (memory backend, server + client in one process): ${heap.mib.toFixed(1)} MiB`,
);
console.log('\nEnd-to-end rows run pinhole-fcpd as its own process; the client is this process.');
const load = execFileSync('cat', ['/proc/loadavg']).toString().split(' ').slice(0, 3).join(' ');
console.log(
  `\n${facts.node}, nproc ${facts.nproc}, ${facts.nft}, load average at the start ${loadAtStart}, at the end ${load}`,
);
