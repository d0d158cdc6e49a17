import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  Counter,
  Gauge,
  Histogram,
  LATENCY_BUCKETS,
  MetricsError,
  Registry,
  Summary,
  escapeLabelValue,
  formatValue,
  registerProcessMetrics,
} from './index.js';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof MetricsError ? e.code : 'not a MetricsError';
  }
  return undefined;
}

/** Reads a label value back the way a Prometheus text parser does. */
function unescapeLabelValue(v: string): string {
  return v.replace(/\\(.)/g, (_m, c: string) => (c === 'n' ? '\n' : c));
}

describe('text exposition format 0.0.4', () => {
  it('writes HELP and TYPE, escaping backslash and line feed in HELP', () => {
    const r = new Registry();
    const c = r.counter('x_total', 'Things.\nSecond line with \\ backslash', ['kind']);
    c.inc({ kind: 'a' });
    c.inc({ kind: 'a' }, 2);
    expect(r.render()).toBe(
      [
        '# HELP x_total Things.\\nSecond line with \\\\ backslash',
        '# TYPE x_total counter',
        'x_total{kind="a"} 3',
        '',
      ].join('\n'),
    );
  });

  it('escapes backslash, double quote and line feed in label values', () => {
    const c = new Counter('esc_total', 'e');
    c.inc({ v: 'quote"new\nline\\' });
    c.inc({ v: 'a"b' });
    const text = c.render();
    expect(text).toContain('esc_total{v="quote\\"new\\nline\\\\"} 1\n');
    expect(text).toContain('esc_total{v="a\\"b"} 1\n');
    // Nothing else is touched (tabs, UTF-8, braces).
    expect(escapeLabelValue('tab\t{é}')).toBe('tab\t{é}');
  });

  it('label escaping round-trips any string (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 40 }), (s) => {
        const e = escapeLabelValue(s);
        expect(e).not.toMatch(/\n/);
        expect(e).not.toMatch(/(^|[^\\])(\\\\)*"/);
        expect(unescapeLabelValue(e)).toBe(s);
      }),
      { numRuns: 300 },
    );
  });

  it('formats special values as +Inf, -Inf and NaN, and numbers exactly', () => {
    expect(formatValue(Infinity)).toBe('+Inf');
    expect(formatValue(-Infinity)).toBe('-Inf');
    expect(formatValue(NaN)).toBe('NaN');
    expect(formatValue(0.1 + 0.2)).toBe('0.30000000000000004');
    expect(formatValue(1234567890123)).toBe('1234567890123');
  });

  it('prints an unlabelled metric that was never touched as 0, a labelled one not at all', () => {
    const r = new Registry();
    r.counter('a_total', 'a');
    r.counter('b_total', 'b', ['k']);
    r.histogram('c_seconds', 'c', [1]);
    const text = r.render();
    expect(text).toMatch(/^a_total 0$/m);
    expect(text).not.toMatch(/^b_total/m);
    expect(text).toContain('c_seconds_bucket{le="1"} 0\n');
    expect(text).toContain('c_seconds_count 0\n');
  });
});

describe('Counter', () => {
  it('counts per label set, free-form labels identified whatever the key order', () => {
    const c = new Counter('req_total', 'r');
    c.inc({ method: 'SET', code: '200' });
    c.inc({ code: '200', method: 'SET' });
    c.inc({ method: 'SET', code: 403 });
    expect(c.get({ method: 'SET', code: '200' })).toBe(2);
    expect(c.value({ code: '403', method: 'SET' })).toBe(1);
    // Printed in the key order of the call that created the series.
    expect(c.render()).toContain('req_total{method="SET",code="200"} 2\n');
    expect(c.render()).toContain('req_total{method="SET",code="403"} 1\n');
  });

  it('reads declared labels in their declared order; missing ones are empty, extra ones ignored', () => {
    const c = new Counter('d_total', 'd', ['b', 'a']);
    c.inc({ a: '1', b: '2', z: 'ignored' });
    c.inc({ a: '1' });
    expect(c.render()).toContain('d_total{b="2",a="1"} 1\n');
    expect(c.render()).toContain('d_total{b="",a="1"} 1\n');
  });

  it('refuses to decrease (METRICS_ERR_COUNTER_DECREASE)', () => {
    const c = new Counter('y_total', 'y');
    expect(() => c.inc(undefined, -1)).toThrow(/cannot decrease/);
    expect(codeOf(() => c.inc(undefined, NaN))).toBe('METRICS_ERR_COUNTER_DECREASE');
    expect(codeOf(() => c.labels({ k: 'v' }).inc(-2))).toBe('METRICS_ERR_COUNTER_DECREASE');
    expect(c.get()).toBe(0);
  });

  it('binds a series with labels() for hot paths', () => {
    const c = new Counter('h_total', 'h', ['op']);
    const child = c.labels({ op: 'install' });
    child.inc();
    child.inc(4);
    c.inc({ op: 'install' });
    expect(child.value()).toBe(6);
    expect(c.get({ op: 'install' })).toBe(6);
  });

  it('can be read at scrape time', () => {
    let n = 7;
    const c = new Counter('cpu_total', 'c', { collect: () => n });
    expect(c.render()).toContain('cpu_total 7\n');
    n = 9;
    expect(c.get()).toBe(9);
  });

  it('bounds the number of series; the rest fold into one `other` series', () => {
    const r = new Registry();
    const c = r.counter('many_total', 'x', ['k']);
    for (let i = 0; i < 1500; i++) c.inc({ k: String(i) });
    const lines = r
      .render()
      .split('\n')
      .filter((l) => l.startsWith('many_total{'));
    expect(lines.length).toBe(1001);
    expect(c.value({ k: 'other' })).toBe(500);
    const f = new Counter('free_total', 'x', { maxSeries: 2 });
    f.inc({ a: '1' });
    f.inc({ a: '2' });
    f.inc({ a: '3' });
    f.inc({ a: '4' });
    expect(f.value({ a: 'other' })).toBe(2);
  });
});

describe('Gauge', () => {
  it('sets, increments and decrements', () => {
    const r = new Registry();
    const g = r.gauge('conns', 'Connections.');
    g.set(5);
    g.dec();
    g.inc(undefined, 3);
    expect(g.get()).toBe(7);
    expect(r.render()).toContain('conns 7\n');
  });

  it('with labels, and bound', () => {
    const g = new Gauge('q', 'q', ['queue']);
    g.set(3, { queue: 'a' });
    const b = g.labels({ queue: 'b' });
    b.inc();
    b.inc(2);
    b.dec();
    b.set(b.value() * 10);
    expect(g.render()).toContain('q{queue="a"} 3\n');
    expect(g.render()).toContain('q{queue="b"} 20\n');
  });

  it('reads a collect function at scrape time', () => {
    let live = 3;
    const g = new Gauge('live', 'Live rules', () => live);
    expect(g.render()).toBe('# HELP live Live rules\n# TYPE live gauge\nlive 3\n');
    live = 10000;
    expect(g.get()).toBe(10000);
    expect(new Gauge('x', 'x', { collect: () => -1.5 }).render()).toContain('x -1.5\n');
  });
});

describe('Histogram', () => {
  it('renders cumulative buckets, +Inf, sum and count per label set', () => {
    const r = new Registry();
    const h = r.histogram('lat_seconds', 'Latency.', ['op'], [0.1, 0.5, 1]);
    for (const v of [0.05, 0.2, 0.7, 3]) h.observe(v, { op: 'open' });
    h.observe(0.1, { op: 'close' });
    const text = r.render();
    expect(text).toContain('lat_seconds_bucket{op="open",le="0.1"} 1\n');
    expect(text).toContain('lat_seconds_bucket{op="open",le="0.5"} 2\n');
    expect(text).toContain('lat_seconds_bucket{op="open",le="1"} 3\n');
    expect(text).toContain('lat_seconds_bucket{op="open",le="+Inf"} 4\n');
    expect(text).toContain('lat_seconds_sum{op="open"} 3.95\n');
    expect(text).toContain('lat_seconds_count{op="open"} 4\n');
    // A value equal to a bound falls into that bucket (le = less or equal).
    expect(text).toContain('lat_seconds_bucket{op="close",le="0.1"} 1\n');
    expect(h.count({ op: 'open' })).toBe(4);
    expect(h.sum({ op: 'close' })).toBe(0.1);
  });

  it('accepts every constructor spelling the apps used', () => {
    expect(new Histogram('a', 'a').buckets).toEqual(LATENCY_BUCKETS);
    expect(new Histogram('b', 'b', [0.01, 0.001]).buckets).toEqual([0.001, 0.01]);
    expect(new Histogram('c', 'c', ['m'], [1]).labelNames).toEqual(['m']);
    expect(new Histogram('d', 'd', [], [2]).buckets).toEqual([2]);
    const e = new Histogram('e', 'e', { labelNames: ['x'], buckets: [1, 2, Infinity] });
    expect(e.buckets).toEqual([1, 2]);
  });

  it('unlabelled, bucket bounds are written exactly', () => {
    const h = new Histogram('lat_seconds', 'h', [0.001, 0.01]);
    h.observe(0.0005);
    h.observe(0.005);
    h.observe(1);
    h.observe(NaN);
    const text = h.render();
    expect(text).toContain('lat_seconds_bucket{le="0.001"} 1\n');
    expect(text).toContain('lat_seconds_bucket{le="0.01"} 2\n');
    expect(text).toContain('lat_seconds_bucket{le="+Inf"} 3\n');
    expect(text).toContain('lat_seconds_count 3\n');
    expect(text).toContain('lat_seconds_sum 1.0055\n');
  });

  it('bucket counts are cumulative and agree with the observations (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: -1, max: 20, noNaN: true }), { maxLength: 60 }),
        (values) => {
          const h = new Histogram('p', 'p', LATENCY_BUCKETS);
          for (const v of values) h.observe(v);
          const text = h.render();
          for (const b of LATENCY_BUCKETS) {
            const m = new RegExp(`^p_bucket\\{le="${b}"\\} (\\d+)$`, 'm').exec(text);
            expect(Number(m?.[1])).toBe(values.filter((v) => v <= b).length);
          }
          expect(h.count()).toBe(values.length);
        },
      ),
      { numRuns: 100 },
    );
  });

  it('bound series and timers observe into the same series', () => {
    const h = new Histogram('t_seconds', 't', ['op'], [10]);
    const child = h.labels({ op: 'x' });
    child.observe(1);
    const stop = child.startTimer();
    const sec = stop();
    expect(sec).toBeGreaterThanOrEqual(0);
    h.startTimer({ op: 'x' })();
    expect(h.count({ op: 'x' })).toBe(3);
  });

  it('refuses empty or duplicate buckets and the reserved label `le`', () => {
    expect(codeOf(() => new Histogram('h', 'x', [1, 1]))).toBe('METRICS_ERR_BAD_BUCKETS');
    expect(codeOf(() => new Histogram('h', 'x', { buckets: [] }))).toBe('METRICS_ERR_BAD_BUCKETS');
    expect(codeOf(() => new Histogram('h', 'x', ['le'], [1]))).toBe('METRICS_ERR_BAD_LABEL');
    const free = new Histogram('h', 'x', [1]);
    expect(codeOf(() => free.observe(1, { le: '1' }))).toBe('METRICS_ERR_BAD_LABEL');
  });
});

describe('Summary', () => {
  it('exports quantiles of the recent observations with the total sum and count', () => {
    const s = new Summary('step_seconds', 's', 4);
    for (const v of [9, 9, 1, 2, 3, 4]) s.observe(v);
    expect(s.quantile(0.5)).toBe(3);
    expect(s.count()).toBe(6);
    expect(s.sum()).toBe(28);
    const text = s.render();
    expect(text).toContain('# TYPE step_seconds summary\n');
    expect(text).toContain('step_seconds{quantile="0.99"} 4\n');
    expect(text).toContain('step_seconds_count 6\n');
    expect(new Summary('e', 'e').quantile(0.5)).toBe(0);
  });
});

describe('Registry', () => {
  it('renders metrics in registration order and refuses a name twice', () => {
    const r = new Registry();
    r.gauge('z', 'z').set(1);
    r.register(new Counter('a_total', 'a')).inc();
    expect(r.render().indexOf('# HELP z')).toBeLessThan(r.render().indexOf('# HELP a_total'));
    expect(r.metrics().map((m) => m.name)).toEqual(['z', 'a_total']);
    expect(r.get('a_total')?.type).toBe('counter');
    expect(() => r.gauge('z', 'again')).toThrow(/twice/);
    expect(codeOf(() => r.counter('a_total', 'x'))).toBe('METRICS_ERR_DUPLICATE');
    expect(new Registry().render()).toBe('');
  });

  it('rejects bad metric and label names', () => {
    const r = new Registry();
    expect(codeOf(() => r.counter('bad-name', 'x'))).toBe('METRICS_ERR_BAD_NAME');
    expect(codeOf(() => r.counter('ok_total', 'x', ['__reserved']))).toBe('METRICS_ERR_BAD_LABEL');
    expect(codeOf(() => r.counter('ok2_total', 'x', ['a', 'a']))).toBe('METRICS_ERR_BAD_LABEL');
    const free = r.counter('free_total', 'x');
    expect(codeOf(() => free.inc({ 'bad-label': 'v' }))).toBe('METRICS_ERR_BAD_LABEL');
  });

  it('registers the process metrics', () => {
    const r = new Registry();
    registerProcessMetrics(r);
    const text = r.render();
    expect(text).toMatch(/^process_resident_memory_bytes [1-9]\d*$/m);
    expect(text).toMatch(/^nodejs_heap_used_bytes [1-9]\d*$/m);
    expect(text).toMatch(/^process_cpu_seconds_total \d/m);
    expect(text).toContain('# TYPE process_cpu_seconds_total counter\n');
  });

  it('every line of a rendered registry is a comment or a well-formed sample', () => {
    const r = new Registry();
    r.counter('c_total', 'c').inc({ a: 'x"y', b: 2 });
    r.gauge('g', 'g', ['q']).set(-3, { q: 'line\nfeed' });
    r.histogram('h_seconds', 'h', ['op'], [0.5]).observe(0.2, { op: 'a\\b' });
    r.summary('s', 's').observe(1);
    const sample =
      /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_]\w*="([^"\\\n]|\\[\\"n])*",?)*\})? (-?[0-9.e+-]+|\+Inf|-Inf|NaN)$/;
    for (const line of r.render().trimEnd().split('\n')) {
      if (line.startsWith('# ')) continue;
      expect(line).toMatch(sample);
    }
  });
});
