// Benchmarks of @pinhole/fcp against the built dist/ (run `npm run build` first).
// Usage: npm run bench -w @pinhole/fcp   (env BENCH_PAIRS, BENCH_WINDOW, BENCH_SECONDS)
// Prints a markdown table. Bounded in time: every phase stops at its count or its time budget.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import os from 'node:os';

const dist = new URL('../dist/index.js', import.meta.url);
const { FcpServer, FcpClient, MemoryBackend, parseRequest, encodeRequest, toPme } = await import(
  dist.href
);

const serverConfig = (port = 0) => ({
  listen: [{ transport: 'tcp', host: '127.0.0.1', port }],
  policy: { protectedNetworks: ['198.18.0.0/15'], maxDestinationPorts: 65536 },
  limits: { maxRulesPerClient: 1_000_000, ratePerSec: 0, maxInflightPerConnection: 100_000 },
});

// ---- worker: runs the server (own event loop, like the daemon) ----
if (!isMainThread && workerData?.role === 'server') {
  const server = new FcpServer(serverConfig(), new MemoryBackend());
  await server.start();
  parentPort.postMessage({ port: server.addresses()[0].port });
  parentPort.on('message', async (m) => {
    if (m === 'stop') {
      await server.stop();
      process.exit(0);
    }
  });
}

// ---- heap phase: a separate process with --expose-gc ----
async function heapPhase(n) {
  const gc = globalThis.gc;
  const server = new FcpServer(serverConfig(), new MemoryBackend());
  await server.start();
  const who = {
    address: '127.0.0.1',
    port: 1,
    transport: 'tcp',
    owner: '127.0.0.1',
    authenticated: false,
  };
  gc();
  const before = process.memoryUsage().heapUsed;
  const t0 = performance.now();
  const batch = [];
  for (let i = 0; i < n; i++) {
    const a = `198.18.${(i >> 8) & 0xff}.${i & 0xff}`;
    const port = 1024 + (i >> 16);
    batch.push(
      server.handle(
        `SET FCP=1.0 SEQ=${i}\r\nPME PROTO=17; DSTIP=${a}; DSTPORT=${port};\r\nSOPT ACTION=pass; TIMER=${60 + (i % 600)};\r\n\r\n`,
        who,
      ),
    );
    if (batch.length === 1000) await Promise.all(batch.splice(0));
  }
  await Promise.all(batch);
  const ms = performance.now() - t0;
  gc();
  const after = process.memoryUsage().heapUsed;
  const live = server.liveRules;
  // A QUERY over the whole table (the largest reply the server writes).
  const q0 = performance.now();
  const reply = await server.handle('QUERY FCP=1.0 SEQ=1\r\n\r\n', who);
  const queryMs = performance.now() - q0;
  await server.stop();
  console.log(
    JSON.stringify({
      live,
      heapMiB: (after - before) / 1048576,
      addMs: ms,
      queryMs,
      queryBytes: reply.length,
    }),
  );
}

function pct(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function main() {
  const pairs = Number(process.env.BENCH_PAIRS ?? 50_000);
  const window = Number(process.env.BENCH_WINDOW ?? 256);
  const seconds = Number(process.env.BENCH_SECONDS ?? 10);
  const rows = [];

  // Codec throughput (single thread, no I/O).
  {
    const texts = Array.from({ length: 20_000 }, (_, i) =>
      encodeRequest({
        method: 'SET',
        seq: i,
        pme: toPme({
          proto: 'udp',
          src: '198.19.1.2',
          dst: `198.18.${(i >> 8) & 0xff}.${i & 0xff}`,
          dstPort: [40000, 40001],
        }),
        options: { action: 'pass', timer: 30 },
      }),
    );
    for (const t of texts.slice(0, 2000)) parseRequest(t);
    const t0 = performance.now();
    for (const t of texts) parseRequest(t);
    const parseRate = texts.length / ((performance.now() - t0) / 1000);
    rows.push([
      'codec: parse v0.19 SET',
      `${Math.round(parseRate).toLocaleString('en')} req/s`,
      '',
      '',
    ]);
  }

  const worker = new Worker(fileURLToPath(import.meta.url), { workerData: { role: 'server' } });
  const { port } = await new Promise((r) => worker.once('message', r));
  const client = new FcpClient({
    servers: [{ host: '127.0.0.1', port }],
    requestTimeoutMs: 30_000,
    keepAlive: false,
  });
  await client.ready();
  const pme = (i) => ({
    proto: 'udp',
    dst: `198.18.${(i >> 8) & 0xff}.${i & 0xff}`,
    dstPort: 2000 + (i >> 16),
  });

  // Idle latency: one SET, then its RELEASE, nothing else in flight.
  {
    const lat = [];
    const deadline = performance.now() + seconds * 300;
    for (let i = 0; i < 2000 && performance.now() < deadline; i++) {
      const t0 = performance.now();
      const r = await client.set(pme(i), { timer: 30 });
      lat.push(performance.now() - t0);
      if (!r.ok) throw new Error(JSON.stringify(r));
      await client.release(pme(i));
    }
    lat.sort((a, b) => a - b);
    rows.push([
      `idle SET (1 in flight, ${lat.length} samples)`,
      '',
      pct(lat, 50).toFixed(3),
      pct(lat, 99).toFixed(3),
    ]);
  }

  // Call bursts: what a proxy does per call, 4 requests issued in one turn (RTP and RTCP holes
  // of both directions: 4 SET when the call starts, 4 RELEASE when it ends), one call at a time.
  // Latency is from issuing the 4 to the last answer. This is the case write coalescing is for.
  {
    const lat = [];
    const deadline = performance.now() + seconds * 300;
    const t0 = performance.now();
    let calls = 0;
    for (let i = 0; i < 2000 && performance.now() < deadline; i++, calls++) {
      const holes = [0, 1, 2, 3].map((k) => pme(100_000 + i * 4 + k));
      const t1 = performance.now();
      const r = await Promise.all(holes.map((h) => client.set(h, { timer: 30 })));
      lat.push(performance.now() - t1);
      if (!r.every((x) => x.ok)) throw new Error(JSON.stringify(r));
      const t2 = performance.now();
      await Promise.all(holes.map((h) => client.release(h)));
      lat.push(performance.now() - t2);
    }
    const rate = calls / ((performance.now() - t0) / 1000);
    lat.sort((a, b) => a - b);
    rows.push([
      `call bursts: 4 SET then 4 RELEASE per call, one call at a time (${calls} calls)`,
      `${Math.round(rate).toLocaleString('en')} calls/s`,
      pct(lat, 50).toFixed(3),
      pct(lat, 99).toFixed(3),
    ]);
  }

  // Pipelined SET+RELEASE pairs with `window` pairs in flight.
  {
    const lat = [];
    let next = 0;
    let done = 0;
    const t0 = performance.now();
    const stopAt = t0 + seconds * 1000;
    const runOne = async () => {
      while (next < pairs && performance.now() < stopAt) {
        const i = next++;
        const a = performance.now();
        const s = await client.set(pme(i), { timer: 30 });
        const b = performance.now();
        const r = await client.release(pme(i));
        lat.push(b - a, performance.now() - b);
        if (!s.ok || !r.ok) throw new Error('pair failed');
        done++;
      }
    };
    await Promise.all(Array.from({ length: window }, runOne));
    const secs = (performance.now() - t0) / 1000;
    lat.sort((a, b) => a - b);
    rows.push([
      `pipelined SET+RELEASE pairs, window ${window} (${done} pairs)`,
      `${Math.round(done / secs).toLocaleString('en')} pairs/s`,
      pct(lat, 50).toFixed(3),
      pct(lat, 99).toFixed(3),
    ]);
  }
  client.close();
  worker.postMessage('stop');
  await new Promise((r) => worker.once('exit', r));

  // Heap with 100,000 live rules (separate process, --expose-gc).
  const child = spawnSync(
    process.execPath,
    ['--expose-gc', fileURLToPath(import.meta.url), '--heap', '100000'],
    {
      encoding: 'utf8',
      timeout: 120_000,
    },
  );
  if (child.status !== 0) throw new Error(`heap phase failed: ${child.stderr}`);
  const heap = JSON.parse(child.stdout.trim().split('\n').at(-1));
  rows.push([
    `heap with ${heap.live.toLocaleString('en')} live rules (memory backend)`,
    `${heap.heapMiB.toFixed(1)} MiB (${Math.round((heap.heapMiB * 1048576) / heap.live)} B/rule)`,
    '',
    '',
  ]);
  rows.push([
    `install ${heap.live.toLocaleString('en')} rules via server.handle()`,
    `${Math.round(heap.live / (heap.addMs / 1000)).toLocaleString('en')} SET/s`,
    '',
    '',
  ]);
  rows.push([
    `QUERY listing all ${heap.live.toLocaleString('en')} rules`,
    `${(heap.queryBytes / 1048576).toFixed(1)} MiB reply`,
    heap.queryMs.toFixed(1),
    '',
  ]);

  const cpu = (os.cpus()[0]?.model ?? 'unknown').trim();
  console.log(
    `\n@pinhole/fcp benchmark — node ${process.version}, ${os.cpus().length} CPUs (${cpu}), load avg ${os
      .loadavg()
      .map((x) => x.toFixed(1))
      .join(' ')}\n`,
  );
  console.log('| case | rate | p50 ms | p99 ms |');
  console.log('|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);
}

if (isMainThread) {
  const i = process.argv.indexOf('--heap');
  if (i !== -1) await heapPhase(Number(process.argv[i + 1]));
  else await main();
}
