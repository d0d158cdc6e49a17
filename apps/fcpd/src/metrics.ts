/**
 * A small Prometheus registry (text exposition format 0.0.4) and its HTTP endpoint on node:http.
 * Counters and histograms with labels, and gauges read at scrape time.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

type Labels = Readonly<Record<string, string>>;

function labelText(l: Labels): string {
  const keys = Object.keys(l);
  if (keys.length === 0) return '';
  const esc = (v: string): string =>
    v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
  return `{${keys.map((k) => `${k}="${esc(l[k] ?? '')}"`).join(',')}}`;
}

function fmt(n: number): string {
  if (n === Infinity) return '+Inf';
  return Number.isInteger(n) ? String(n) : String(Number(n.toPrecision(9)));
}

interface Metric {
  render(): string;
}

export class Counter implements Metric {
  readonly name: string;
  readonly help: string;
  readonly #values = new Map<string, { labels: Labels; v: number }>();
  constructor(name: string, help: string) {
    this.name = name;
    this.help = help;
  }

  inc(labels: Labels = {}, by = 1): void {
    const k = labelText(labels);
    const e = this.#values.get(k);
    if (e) e.v += by;
    else this.#values.set(k, { labels, v: by });
  }

  get(labels: Labels = {}): number {
    return this.#values.get(labelText(labels))?.v ?? 0;
  }

  render(): string {
    let s = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} counter\n`;
    if (this.#values.size === 0) s += `${this.name} 0\n`;
    for (const [k, e] of this.#values) s += `${this.name}${k} ${fmt(e.v)}\n`;
    return s;
  }
}

export class Gauge implements Metric {
  readonly name: string;
  readonly help: string;
  readonly read: () => number;
  constructor(name: string, help: string, read: () => number) {
    this.name = name;
    this.help = help;
    this.read = read;
  }

  render(): string {
    return `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} gauge\n${this.name} ${fmt(this.read())}\n`;
  }
}

/** Latency buckets in seconds, 100 us .. 10 s. */
export const LATENCY_BUCKETS: readonly number[] = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10,
];

export class Histogram implements Metric {
  readonly name: string;
  readonly help: string;
  readonly buckets: readonly number[];
  readonly #series = new Map<
    string,
    { labels: Labels; counts: number[]; sum: number; n: number }
  >();
  constructor(name: string, help: string, buckets: readonly number[] = LATENCY_BUCKETS) {
    this.name = name;
    this.help = help;
    this.buckets = buckets;
  }

  observe(value: number, labels: Labels = {}): void {
    const k = labelText(labels);
    let s = this.#series.get(k);
    if (!s) {
      s = { labels, counts: new Array<number>(this.buckets.length).fill(0), sum: 0, n: 0 };
      this.#series.set(k, s);
    }
    for (let i = 0; i < this.buckets.length; i++) {
      if (value <= (this.buckets[i] ?? Infinity)) s.counts[i] = (s.counts[i] ?? 0) + 1;
    }
    s.sum += value;
    s.n++;
  }

  count(labels: Labels = {}): number {
    return this.#series.get(labelText(labels))?.n ?? 0;
  }

  render(): string {
    let out = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} histogram\n`;
    for (const s of this.#series.values()) {
      for (let i = 0; i < this.buckets.length; i++) {
        const l = labelText({ ...s.labels, le: fmt(this.buckets[i] ?? Infinity) });
        out += `${this.name}_bucket${l} ${s.counts[i] ?? 0}\n`;
      }
      out += `${this.name}_bucket${labelText({ ...s.labels, le: '+Inf' })} ${s.n}\n`;
      out += `${this.name}_sum${labelText(s.labels)} ${fmt(s.sum)}\n`;
      out += `${this.name}_count${labelText(s.labels)} ${s.n}\n`;
    }
    return out;
  }
}

export class Registry {
  readonly #metrics: Metric[] = [];

  counter(name: string, help: string): Counter {
    const c = new Counter(name, help);
    this.#metrics.push(c);
    return c;
  }

  gauge(name: string, help: string, read: () => number): Gauge {
    const g = new Gauge(name, help, read);
    this.#metrics.push(g);
    return g;
  }

  histogram(name: string, help: string, buckets?: readonly number[]): Histogram {
    const h = new Histogram(name, help, buckets);
    this.#metrics.push(h);
    return h;
  }

  render(): string {
    return this.#metrics.map((m) => m.render()).join('');
  }
}

/** Serves `GET /metrics` (and `/` with a pointer). Resolves once listening. */
export async function serveMetrics(
  registry: Registry,
  host: string,
  port: number,
): Promise<{ server: Server; host: string; port: number }> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/metrics') {
      const body = registry.render();
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' });
      res.end(req.method === 'HEAD' ? undefined : body);
    } else if (path === '/') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('pinhole-fcpd: see /metrics\n');
    } else {
      res.writeHead(404).end();
    }
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const a = server.address() as AddressInfo;
  return { server, host: a.address, port: a.port };
}
