import { describe, expect, it } from 'vitest';
import { Counter, Histogram, ProxyMetrics, serveMetrics } from './metrics.js';

describe('metrics', () => {
  it('renders counters with escaped labels', () => {
    const c = new Counter('x_total', 'help');
    c.inc({ method: 'INVITE' });
    c.inc({ method: 'INVITE' });
    c.inc({ method: 'a"b' });
    const text = c.render();
    expect(text).toContain('# TYPE x_total counter');
    expect(text).toContain('x_total{method="INVITE"} 2');
    expect(text).toContain('x_total{method="a\\"b"} 1');
  });

  it('renders cumulative histogram buckets', () => {
    const h = new Histogram('lat_seconds', 'h', [0.001, 0.01]);
    h.observe(0.0005);
    h.observe(0.005);
    h.observe(1);
    const text = h.render();
    expect(text).toContain('lat_seconds_bucket{le="0.001"} 1');
    expect(text).toContain('lat_seconds_bucket{le="0.01"} 2');
    expect(text).toContain('lat_seconds_bucket{le="+Inf"} 3');
    expect(text).toContain('lat_seconds_count 3');
  });

  it('serves every proxy metric over HTTP', async () => {
    const m = new ProxyMetrics({ transactions: () => 3, registrations: () => 7 });
    m.requests.inc({ method: 'INVITE' });
    m.responses.inc({ code: 200 });
    m.pinholes.inc({ outcome: 'opened' });
    const server = await serveMetrics(m.registry, '127.0.0.1', 0);
    try {
      const port = server.port;
      const res = await fetch(`http://127.0.0.1:${port}/metrics`);
      const body = await res.text();
      expect(res.headers.get('content-type')).toMatch(/text\/plain/);
      expect(body).toContain('pinhole_proxy_requests_total{method="INVITE"} 1');
      expect(body).toContain('pinhole_proxy_responses_total{code="200"} 1');
      expect(body).toContain('pinhole_proxy_transactions 3');
      expect(body).toContain('pinhole_proxy_registrations 7');
      expect(body).toContain('pinhole_proxy_pinholes_total{outcome="opened"} 1');
      expect(body).toContain('pinhole_proxy_fcp_request_seconds_count 0');
      expect(body).toContain('# TYPE process_cpu_seconds_total counter');
    } finally {
      await server.close();
    }
  });
});
