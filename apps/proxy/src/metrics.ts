/**
 * Prometheus metrics in the text exposition format (version 0.0.4), without dependencies:
 * counters and gauges with labels, and histograms with fixed buckets.
 */
import { createServer, type Server } from 'node:http';

type Labels = Readonly<Record<string, string | number>>;

function escapeLabel(v: string | number): string {
  return typeof v === 'number'
    ? String(v)
    : v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function labelKey(labels: Labels | undefined): string {
  if (!labels) return '';
  // Fast path for the common single label (method, code, outcome): no sort, no arrays.
  let only: string | undefined;
  let n = 0;
  for (const k in labels) {
    only = k;
    if (++n > 1) break;
  }
  if (n === 1 && only !== undefined) return `{${only}="${escapeLabel(labels[only]!)}"}`;
  const parts = Object.keys(labels)
    .sort()
    .map(
      (k) =>
        `${k}="${String(labels[k]).replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`,
    );
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

interface Metric {
  readonly name: string;
  readonly help: string;
  render(): string;
}

export class Counter implements Metric {
  readonly #values = new Map<string, number>();
  readonly name: string;
  readonly help: string;
  constructor(name: string, help: string) {
    this.name = name;
    this.help = help;
  }
  inc(labels?: Labels, by = 1): void {
    const k = labelKey(labels);
    this.#values.set(k, (this.#values.get(k) ?? 0) + by);
  }
  get(labels?: Labels): number {
    return this.#values.get(labelKey(labels)) ?? 0;
  }
  render(): string {
    let s = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} counter\n`;
    if (this.#values.size === 0) s += `${this.name} 0\n`;
    for (const [k, v] of this.#values) s += `${this.name}${k} ${v}\n`;
    return s;
  }
}

export class Gauge implements Metric {
  readonly #values = new Map<string, number>();
  readonly #collect: (() => number) | undefined;
  readonly name: string;
  readonly help: string;
  constructor(name: string, help: string, collect?: () => number) {
    this.name = name;
    this.help = help;
    this.#collect = collect;
  }
  set(value: number, labels?: Labels): void {
    this.#values.set(labelKey(labels), value);
  }
  inc(labels?: Labels, by = 1): void {
    const k = labelKey(labels);
    this.#values.set(k, (this.#values.get(k) ?? 0) + by);
  }
  dec(labels?: Labels, by = 1): void {
    this.inc(labels, -by);
  }
  get(labels?: Labels): number {
    if (this.#collect && !labels) return this.#collect();
    return this.#values.get(labelKey(labels)) ?? 0;
  }
  render(): string {
    let s = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} gauge\n`;
    if (this.#collect) return `${s}${this.name} ${this.#collect()}\n`;
    if (this.#values.size === 0) s += `${this.name} 0\n`;
    for (const [k, v] of this.#values) s += `${this.name}${k} ${v}\n`;
    return s;
  }
}

export class Histogram implements Metric {
  readonly #buckets: readonly number[];
  readonly #counts: number[];
  #sum = 0;
  #count = 0;
  readonly name: string;
  readonly help: string;
  constructor(name: string, help: string, buckets: readonly number[]) {
    this.name = name;
    this.help = help;
    this.#buckets = [...buckets].sort((a, b) => a - b);
    this.#counts = this.#buckets.map(() => 0);
  }
  observe(value: number): void {
    this.#sum += value;
    this.#count++;
    for (let i = 0; i < this.#buckets.length; i++)
      if (value <= this.#buckets[i]!) this.#counts[i]!++;
  }
  get count(): number {
    return this.#count;
  }
  get sum(): number {
    return this.#sum;
  }
  render(): string {
    let s = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} histogram\n`;
    this.#buckets.forEach((b, i) => {
      s += `${this.name}_bucket{le="${b}"} ${this.#counts[i]}\n`;
    });
    s += `${this.name}_bucket{le="+Inf"} ${this.#count}\n`;
    s += `${this.name}_sum ${this.#sum}\n${this.name}_count ${this.#count}\n`;
    return s;
  }
}

/** Quantiles over the most recent observations (a ring of `size` samples). */
export class Summary implements Metric {
  readonly name: string;
  readonly help: string;
  readonly #ring: Float64Array;
  #n = 0;
  #sum = 0;
  #count = 0;
  constructor(name: string, help: string, size = 65_536) {
    this.name = name;
    this.help = help;
    this.#ring = new Float64Array(size);
  }
  observe(value: number): void {
    this.#ring[this.#n++ % this.#ring.length] = value;
    this.#sum += value;
    this.#count++;
  }
  quantile(q: number): number {
    const len = Math.min(this.#n, this.#ring.length);
    if (len === 0) return 0;
    const sorted = this.#ring.slice(0, len).sort();
    return sorted[Math.min(len - 1, Math.floor(q * len))]!;
  }
  render(): string {
    let s = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} summary\n`;
    for (const q of [0.5, 0.9, 0.99]) s += `${this.name}{quantile="${q}"} ${this.quantile(q)}\n`;
    return `${s}${this.name}_sum ${this.#sum}\n${this.name}_count ${this.#count}\n`;
  }
}

/** Every metric the proxy exports. Names follow Prometheus conventions (`_total`, `_seconds`). */
export class ProxyMetrics {
  readonly requests: Counter = new Counter(
    'pinhole_proxy_requests_total',
    'SIP requests received, by method',
  );
  readonly responses: Counter = new Counter(
    'pinhole_proxy_responses_total',
    'SIP responses sent or relayed, by status code',
  );
  readonly badMessages: Counter = new Counter(
    'pinhole_proxy_bad_messages_total',
    'Messages that failed parsing or validation, by outcome (answered 400 or dropped)',
  );
  readonly transactions: Gauge;
  readonly registrations: Gauge;
  readonly pinholes: Counter = new Counter(
    'pinhole_proxy_pinholes_total',
    'Pinhole operations, by outcome: opened, refreshed, closed, refused, failed',
  );
  readonly pinholeWait: Histogram = new Histogram(
    'pinhole_proxy_pinhole_wait_seconds',
    'Time a media-enabling response was held until its pinholes were acknowledged',
    [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  );
  readonly pinholeWaitRecent: Summary = new Summary(
    'pinhole_proxy_pinhole_step_seconds',
    'Pinhole step of media-enabling responses (received to relayed), recent quantiles',
  );
  readonly fcpLatency: Histogram = new Histogram(
    'pinhole_proxy_fcp_request_seconds',
    'FCP request round-trip time',
    [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
  );
  readonly #all: Metric[];

  constructor(collect: { transactions: () => number; registrations: () => number }) {
    this.transactions = new Gauge(
      'pinhole_proxy_transactions',
      'Live server transactions',
      collect.transactions,
    );
    this.registrations = new Gauge(
      'pinhole_proxy_registrations',
      'Live registrar bindings',
      collect.registrations,
    );
    this.#all = [
      this.requests,
      this.responses,
      this.badMessages,
      this.transactions,
      this.registrations,
      this.pinholes,
      this.pinholeWait,
      this.pinholeWaitRecent,
      this.fcpLatency,
    ];
  }

  render(): string {
    return this.#all.map((m) => m.render()).join('');
  }
}

/** Serves `GET /metrics` (any path, really) on a TCP address; returns the bound server. */
export async function serveMetrics(
  render: () => string,
  host: string,
  port: number,
): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405).end();
      return;
    }
    const body = render();
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}
