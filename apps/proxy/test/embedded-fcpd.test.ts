/**
 * The embedded fcpd serves only this proxy, so the per-client request rate and rule
 * quota that protect a shared fcpd must not refuse the proxy's own SETs under load.
 */
import { FcpClient } from '@pinhole/fcp';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { startApp, startEmbeddedFcpd } from '../src/app.js';
import { parseArgs } from '../src/config.js';

// Above the shared defaults: 1,000 requests/s with a burst of 2,000, and 10,000 rules a client.
const HOLES = 12_000;

describe('embedded fcpd', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const c of cleanup.reverse()) await c();
  });

  it('accepts a burst of SETs beyond the shared per-client rate and rule quota', async () => {
    const { config } = parseArgs(['--protected', '198.19.0.0/16']);
    const { fcpd, server } = await startEmbeddedFcpd(config, pino({ level: 'silent' }), 'memory');
    cleanup.push(() => fcpd.close());
    const client = new FcpClient({
      servers: [server!],
      keepAlive: false,
      requestTimeoutMs: 60_000,
    });
    cleanup.push(() => Promise.resolve(client.close()));
    await client.ready();
    const results = await Promise.all(
      Array.from({ length: HOLES }, (_, i) =>
        client.set(
          { proto: 17, dst: '198.19.0.10', dstPort: 20_000 + 2 * i },
          { timer: 60, keepAlive: false },
        ),
      ),
    );
    const refused = results.filter((r) => !r.ok);
    expect(refused.map((r) => r.outcomes)).toEqual([]);
    expect(results.length).toBe(HOLES);
  });

  it('in a worker: no socket, reached over the in-process link, any shard on the memory backend', async () => {
    const { config } = parseArgs([
      '--protected',
      '198.19.0.0/16',
      '--listen',
      'udp:127.0.0.1:0',
      '--no-warmup',
    ]);
    const app = await startApp({
      config,
      logger: pino({ level: 'silent' }),
      fcpServers: [],
      embeddedBackend: 'memory',
      embeddedShard: { index: 1, count: 2 },
    });
    cleanup.push(() => app.stop());
    expect(app.backend).toBe('memory');
    expect(app.fcpd?.addresses).toEqual([]);
    expect(app.fcp.servers).toEqual(['local:embedded']);
    const r = await app.fcp.set({ proto: 17, dst: '198.19.0.10', dstPort: 40000 }, { timer: 30 });
    expect(r.ok).toBe(true);
    expect(app.fcpd?.server.liveRules).toBe(1);
  });

  it("serves the embedded fcpd's fcpd_* series on the proxy's metrics endpoint, once each", async () => {
    const { config } = parseArgs([
      '--protected',
      '198.19.0.0/16',
      '--listen',
      'udp:127.0.0.1:0',
      '--metrics',
      'tcp:127.0.0.1:0',
      '--no-warmup',
    ]);
    const app = await startApp({
      config,
      logger: pino({ level: 'silent' }),
      embeddedBackend: 'memory',
    });
    cleanup.push(() => app.stop());
    const r = await app.fcp.set({ proto: 17, dst: '198.19.0.10', dstPort: 40002 }, { timer: 30 });
    expect(r.ok).toBe(true);
    const res = await fetch(`http://127.0.0.1:${app.proxy.metricsPort}/metrics`);
    const text = await res.text();
    expect(text).toMatch(/^fcpd_requests_total\{method="SET",code="20[01]"\} 1$/m);
    expect(text).toMatch(/^fcpd_backend_duration_seconds_count\{op="install"\} 1$/m);
    expect(text).toMatch(/^pinhole_proxy_pinholes_total/m);
    // One TYPE line per family: the fcpd's process series are not repeated.
    const types = text.split('\n').filter((l) => l.startsWith('# TYPE '));
    expect(new Set(types).size).toBe(types.length);
    expect(types.filter((l) => l.startsWith('# TYPE process_cpu_seconds_total '))).toHaveLength(1);
  });
});
