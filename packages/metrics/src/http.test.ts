import { request } from 'node:http';
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { MetricsServer, PROMETHEUS_CONTENT_TYPE, Registry, serveMetrics } from './index.js';

function get(
  port: number,
  path: string,
  method = 'GET',
): Promise<{ status: number; type: string | undefined; body: string; allow: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          type: res.headers['content-type'],
          body,
          allow: res.headers.allow,
        }),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

describe('MetricsServer', () => {
  it('serves the registry at /metrics with the text-format content type', async () => {
    const r = new Registry();
    r.counter('hits_total', 'Hits', ['path']).inc({ path: '/x' });
    const ms = new MetricsServer(r, { name: 'pinhole-test' });
    const { host, port } = await ms.listen('127.0.0.1', 0);
    try {
      expect(host).toBe('127.0.0.1');
      expect(port).toBeGreaterThan(0);
      expect(ms.address?.port).toBe(port);
      const ok = await get(port, '/metrics?x=1');
      expect(ok.status).toBe(200);
      expect(ok.type).toBe(PROMETHEUS_CONTENT_TYPE);
      expect(ok.body).toBe(r.render());
      expect(ok.body).toContain('hits_total{path="/x"} 1\n');
      const head = await get(port, '/metrics', 'HEAD');
      expect(head.status).toBe(200);
      expect(head.body).toBe('');
      expect((await get(port, '/')).body).toBe('pinhole-test: see /metrics\n');
      expect((await get(port, '/nope')).status).toBe(404);
      const post = await get(port, '/metrics', 'POST');
      expect(post.status).toBe(405);
      expect(post.allow).toBe('GET, HEAD');
    } finally {
      await ms.close();
    }
  });

  it('answers 500 when a collect function throws, and keeps serving', async () => {
    let fail = true;
    const r = new Registry();
    r.gauge('flaky', 'f', () => {
      if (fail) throw new Error('boom');
      return 1;
    });
    const ms = new MetricsServer(r);
    const { port } = await ms.listen('127.0.0.1', 0);
    try {
      expect((await get(port, '/metrics')).status).toBe(500);
      fail = false;
      expect((await get(port, '/metrics')).body).toContain('flaky 1\n');
    } finally {
      await ms.close();
    }
  });

  it('close() does not wait for an idle keep-alive connection or a stalled client', async () => {
    const ms = new MetricsServer(() => 'x 1\n', { closeGraceMs: 50 });
    const { port } = await ms.listen('127.0.0.1', 0);
    // A client that sends half a request and stalls.
    const stalled = connect(port, '127.0.0.1');
    await new Promise<void>((r) => stalled.once('connect', () => r()));
    stalled.write('GET /metrics HTTP/1.1\r\nHost: x\r\n');
    const closed = new Promise<void>((r) => stalled.once('close', () => r()));
    stalled.on('error', () => undefined);
    await ms.close();
    await closed;
    await ms.close(); // idempotent
    await expect(get(port, '/metrics')).rejects.toThrow();
  });

  it('reports a port in use as a listen error', async () => {
    const a = new MetricsServer(() => '');
    const { port } = await a.listen('127.0.0.1', 0);
    try {
      const b = new MetricsServer(() => '');
      await expect(b.listen('127.0.0.1', port)).rejects.toMatchObject({ code: 'EADDRINUSE' });
      await b.close();
    } finally {
      await a.close();
    }
  });
});

describe('serveMetrics', () => {
  it('takes a render function and closes with a promise or a callback', async () => {
    const ep = await serveMetrics(() => 'up 1\n', '127.0.0.1', 0);
    expect(ep.address().port).toBe(ep.port);
    expect((await get(ep.port, '/metrics')).body).toBe('up 1\n');
    await new Promise<void>((r) => void ep.close(r));
    expect(ep.server.listening).toBe(false);
  });
});
