/**
 * A small Prometheus metrics registry: counters, gauges and histograms with fixed label names,
 * rendered in the text exposition format (version 0.0.4). Label values come from code (never
 * from peer input); the number of label combinations per metric is still bounded, and the
 * overflow is folded into one series with every label set to `other`.
 */

const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const MAX_SERIES = 1000;

export type Labels = Readonly<Record<string, string>>;

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function renderLabels(names: readonly string[], values: readonly string[], extra?: string): string {
  const parts = names.map((n, i) => `${n}="${escapeLabel(values[i] ?? '')}"`);
  if (extra !== undefined) parts.push(extra);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

abstract class Metric<S> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  protected readonly series: Map<string, { values: string[]; state: S }> = new Map();

  constructor(name: string, help: string, labelNames: readonly string[]) {
    if (!NAME_RE.test(name)) throw new Error(`metrics: bad metric name ${name}`);
    for (const l of labelNames) {
      if (!LABEL_RE.test(l) || l.startsWith('__') || l === 'le') {
        throw new Error(`metrics: bad label name ${l}`);
      }
    }
    this.name = name;
    this.help = help;
    this.labelNames = labelNames;
  }

  protected abstract initial(): S;
  abstract readonly type: 'counter' | 'gauge' | 'histogram';
  abstract render(): string[];

  protected get(labels: Labels | undefined): S {
    const values = this.labelNames.map((n) => labels?.[n] ?? '');
    let key = values.join('\u0000');
    let entry = this.series.get(key);
    if (entry) return entry.state;
    if (this.series.size >= MAX_SERIES) {
      const other = this.labelNames.map(() => 'other');
      key = other.join('\u0000');
      entry = this.series.get(key);
      if (entry) return entry.state;
      entry = { values: other, state: this.initial() };
    } else {
      entry = { values, state: this.initial() };
    }
    this.series.set(key, entry);
    return entry.state;
  }

  protected header(): string[] {
    return [`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`];
  }
}

export class Counter extends Metric<{ v: number }> {
  get type(): 'counter' {
    return 'counter';
  }
  protected initial(): { v: number } {
    return { v: 0 };
  }
  inc(labels?: Labels, by = 1): void {
    if (!(by >= 0)) throw new Error(`metrics: counter ${this.name} cannot decrease`);
    this.get(labels).v += by;
  }
  /** Current value (tests, logs). */
  value(labels?: Labels): number {
    const key = this.labelNames.map((n) => labels?.[n] ?? '').join('\u0000');
    return this.series.get(key)?.state.v ?? 0;
  }
  render(): string[] {
    const out = this.header();
    for (const { values, state } of this.series.values()) {
      out.push(`${this.name}${renderLabels(this.labelNames, values)} ${formatValue(state.v)}`);
    }
    return out;
  }
}

export class Gauge extends Metric<{ v: number }> {
  get type(): 'gauge' {
    return 'gauge';
  }
  protected initial(): { v: number } {
    return { v: 0 };
  }
  set(value: number, labels?: Labels): void {
    this.get(labels).v = value;
  }
  inc(labels?: Labels, by = 1): void {
    this.get(labels).v += by;
  }
  dec(labels?: Labels, by = 1): void {
    this.get(labels).v -= by;
  }
  value(labels?: Labels): number {
    const key = this.labelNames.map((n) => labels?.[n] ?? '').join('\u0000');
    return this.series.get(key)?.state.v ?? 0;
  }
  render(): string[] {
    const out = this.header();
    for (const { values, state } of this.series.values()) {
      out.push(`${this.name}${renderLabels(this.labelNames, values)} ${formatValue(state.v)}`);
    }
    return out;
  }
}

interface HistState {
  counts: number[];
  sum: number;
  count: number;
}

export class Histogram extends Metric<HistState> {
  get type(): 'histogram' {
    return 'histogram';
  }
  readonly buckets: readonly number[];

  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    buckets: readonly number[],
  ) {
    super(name, help, labelNames);
    const sorted = [...buckets].sort((a, b) => a - b);
    if (sorted.length === 0 || sorted.some((b, i) => i > 0 && b === sorted[i - 1])) {
      throw new Error(`metrics: histogram ${name} needs distinct buckets`);
    }
    this.buckets = sorted.filter((b) => b !== Infinity);
  }
  protected initial(): HistState {
    return { counts: this.buckets.map(() => 0), sum: 0, count: 0 };
  }
  observe(value: number, labels?: Labels): void {
    const s = this.get(labels);
    for (let i = 0; i < this.buckets.length; i++) {
      if (value <= (this.buckets[i] ?? Infinity)) s.counts[i] = (s.counts[i] ?? 0) + 1;
    }
    s.sum += value;
    s.count += 1;
  }
  count(labels?: Labels): number {
    const key = this.labelNames.map((n) => labels?.[n] ?? '').join('\u0000');
    return this.series.get(key)?.state.count ?? 0;
  }
  render(): string[] {
    const out = this.header();
    for (const { values, state } of this.series.values()) {
      this.buckets.forEach((b, i) => {
        const le = `le="${formatValue(b)}"`;
        out.push(
          `${this.name}_bucket${renderLabels(this.labelNames, values, le)} ${state.counts[i] ?? 0}`,
        );
      });
      out.push(
        `${this.name}_bucket${renderLabels(this.labelNames, values, 'le="+Inf"')} ${state.count}`,
      );
      out.push(
        `${this.name}_sum${renderLabels(this.labelNames, values)} ${formatValue(state.sum)}`,
      );
      out.push(`${this.name}_count${renderLabels(this.labelNames, values)} ${state.count}`);
    }
    return out;
  }
}

/** A set of metrics rendered together. Registering a name twice is a programmer error. */
export class MetricsRegistry {
  readonly #metrics = new Map<string, Counter | Gauge | Histogram>();

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.#add(new Counter(name, help, labelNames));
  }
  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    return this.#add(new Gauge(name, help, labelNames));
  }
  histogram(
    name: string,
    help: string,
    labelNames: readonly string[],
    buckets: readonly number[],
  ): Histogram {
    return this.#add(new Histogram(name, help, labelNames, buckets));
  }

  /** The text exposition format, ending with a newline. */
  render(): string {
    const lines: string[] = [];
    for (const m of this.#metrics.values()) lines.push(...m.render());
    return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
  }

  #add<M extends Counter | Gauge | Histogram>(m: M): M {
    if (this.#metrics.has(m.name)) throw new Error(`metrics: ${m.name} registered twice`);
    this.#metrics.set(m.name, m);
    return m;
  }
}

/** Content type of the text exposition format. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
