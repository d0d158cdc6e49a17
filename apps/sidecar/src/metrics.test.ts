import { describe, expect, it } from 'vitest';
import { MetricsRegistry } from './metrics.js';

describe('MetricsRegistry (Prometheus text format 0.0.4)', () => {
  it('renders counters with HELP, TYPE and labels', () => {
    const r = new MetricsRegistry();
    const c = r.counter('x_total', 'Things.\nSecond line with \\ backslash', ['kind']);
    c.inc({ kind: 'a' });
    c.inc({ kind: 'a' }, 2);
    c.inc({ kind: 'quote"new\nline\\' });
    expect(r.render()).toBe(
      [
        '# HELP x_total Things.\\nSecond line with \\\\ backslash',
        '# TYPE x_total counter',
        'x_total{kind="a"} 3',
        'x_total{kind="quote\\"new\\nline\\\\"} 1',
        '',
      ].join('\n'),
    );
    expect(c.value({ kind: 'a' })).toBe(3);
  });

  it('refuses to decrease a counter', () => {
    const c = new MetricsRegistry().counter('y_total', 'y');
    expect(() => c.inc(undefined, -1)).toThrow(/cannot decrease/);
  });

  it('renders gauges', () => {
    const r = new MetricsRegistry();
    const g = r.gauge('conns', 'Connections.');
    g.set(5);
    g.dec();
    expect(r.render()).toContain('conns 4\n');
  });

  it('renders cumulative histogram buckets, +Inf, sum and count', () => {
    const r = new MetricsRegistry();
    const h = r.histogram('lat_seconds', 'Latency.', ['op'], [0.1, 0.5, 1]);
    for (const v of [0.05, 0.2, 0.7, 3]) h.observe(v, { op: 'open' });
    const text = r.render();
    expect(text).toContain('lat_seconds_bucket{op="open",le="0.1"} 1\n');
    expect(text).toContain('lat_seconds_bucket{op="open",le="0.5"} 2\n');
    expect(text).toContain('lat_seconds_bucket{op="open",le="1"} 3\n');
    expect(text).toContain('lat_seconds_bucket{op="open",le="+Inf"} 4\n');
    expect(text).toContain('lat_seconds_sum{op="open"} 3.95\n');
    expect(text).toContain('lat_seconds_count{op="open"} 4\n');
  });

  it('rejects bad names, reserved labels and duplicate registration', () => {
    const r = new MetricsRegistry();
    expect(() => r.counter('bad-name', 'x')).toThrow();
    expect(() => r.histogram('h', 'x', ['le'], [1])).toThrow();
    r.counter('dup', 'x');
    expect(() => r.gauge('dup', 'x')).toThrow(/twice/);
  });

  it('bounds the number of series per metric', () => {
    const r = new MetricsRegistry();
    const c = r.counter('many_total', 'x', ['k']);
    for (let i = 0; i < 1500; i++) c.inc({ k: String(i) });
    const lines = r
      .render()
      .split('\n')
      .filter((l) => l.startsWith('many_total{'));
    expect(lines.length).toBe(1001);
    expect(c.value({ k: 'other' })).toBe(500);
  });
});
