/**
 * Counters, gauges, histograms and summaries with labels, rendered in the Prometheus text
 * exposition format, version 0.0.4:
 *
 *   # HELP <name> <help, with \ and newline escaped>
 *   # TYPE <name> counter|gauge|histogram|summary
 *   <name>{<label>="<value, with \ " and newline escaped>",...} <value>
 *
 * Label values normally come from code, but some come from the wire (a method, a status code),
 * so every metric bounds its series (default 1000); further label combinations fold into one
 * series whose labels all read `other`. Hot paths can bind a series once with `labels()`.
 */
import { MetricsError, MetricsErrorCode } from './errors.js';

export type LabelValue = string | number;
export type Labels = Readonly<Record<string, LabelValue>>;
export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary';

/** What a registry holds: anything that renders itself in the text format. */
export interface Metric {
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  /** The metric's lines in the text format, each ending with a newline. */
  render(): string;
}

export interface MetricOptions {
  /**
   * Label names, in output order. A call's labels are looked up by these names (a missing one
   * reads as the empty string, an extra one is ignored). Without them the labels are free-form:
   * a series is identified by its label set whatever the key order, and printed in the key
   * order of the call that created it.
   */
  readonly labelNames?: readonly string[] | undefined;
  /** At most this many series (default 1000); the rest fold into one `other` series. */
  readonly maxSeries?: number | undefined;
}

export interface CounterOptions extends MetricOptions {
  /** Read the (unlabelled) value at scrape time instead of counting with `inc`. */
  readonly collect?: (() => number) | undefined;
}

export interface GaugeOptions extends MetricOptions {
  /** Read the (unlabelled) value at scrape time instead of `set`/`inc`/`dec`. */
  readonly collect?: (() => number) | undefined;
}

export interface HistogramOptions extends MetricOptions {
  /** Upper bounds, any order; `+Inf` is implicit. Default: `LATENCY_BUCKETS`. */
  readonly buckets?: readonly number[] | undefined;
}

export interface SummaryOptions {
  /** Observations kept for the quantiles (a ring; default 65,536). */
  readonly size?: number | undefined;
  /** Quantiles to export (default 0.5, 0.9, 0.99). */
  readonly quantiles?: readonly number[] | undefined;
}

/** Latency buckets in seconds, 100 us .. 10 s. */
export const LATENCY_BUCKETS: readonly number[] = Object.freeze([
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10,
]);

export const DEFAULT_MAX_SERIES = 1000;

const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Escapes a label value: backslash, double quote and line feed. */
export function escapeLabelValue(v: string): string {
  if (!/[\\"\n]/.test(v)) return v;
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** Escapes HELP text: backslash and line feed. */
export function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** A sample value as the text format writes it (`+Inf`, `-Inf`, `NaN`, shortest round-trip). */
export function formatValue(v: number): string {
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function str(v: LabelValue | undefined): string {
  return v === undefined ? '' : typeof v === 'number' ? String(v) : v;
}

function checkName(name: string): void {
  if (!NAME_RE.test(name)) {
    throw new MetricsError(MetricsErrorCode.BadName, `metrics: bad metric name ${name}`);
  }
}

function checkLabelName(metric: string, label: string, reserved: string | undefined): void {
  if (!LABEL_RE.test(label) || label.startsWith('__') || label === reserved) {
    throw new MetricsError(
      MetricsErrorCode.BadLabel,
      `metrics: bad label name ${label} on ${metric}`,
    );
  }
}

interface Entry<S> {
  /** `a="x",b="y"`, or '' without labels. */
  readonly pairs: string;
  readonly state: S;
}

/** Series bookkeeping shared by counters, gauges and histograms. */
abstract class Labelled<S> {
  readonly name: string;
  readonly help: string;
  /** Declared label names, or undefined for free-form labels. */
  readonly labelNames: readonly string[] | undefined;
  readonly #max: number;
  readonly #reserved: string | undefined;
  readonly #series = new Map<string, Entry<S>>();

  constructor(name: string, help: string, options: MetricOptions, reserved?: string) {
    checkName(name);
    if (options.labelNames) {
      const seen = new Set<string>();
      for (const l of options.labelNames) {
        checkLabelName(name, l, reserved);
        if (seen.has(l)) {
          throw new MetricsError(MetricsErrorCode.BadLabel, `metrics: label ${l} twice on ${name}`);
        }
        seen.add(l);
      }
    }
    this.name = name;
    this.help = help;
    this.labelNames = options.labelNames ? [...options.labelNames] : undefined;
    this.#max = Math.max(1, options.maxSeries ?? DEFAULT_MAX_SERIES);
    this.#reserved = reserved;
  }

  protected abstract initial(): S;

  /** The series' identity: declared-order values, or sorted `name\u0001value` pairs. */
  #key(labels: Labels | undefined): string {
    const names = this.labelNames;
    if (names) {
      if (names.length === 0) return '';
      let k = str(labels?.[names[0]!]);
      for (let i = 1; i < names.length; i++) k += '\u0000' + str(labels?.[names[i]!]);
      return k;
    }
    if (labels === undefined) return '';
    let n = 0;
    let only = '';
    for (const k in labels) {
      only = k;
      if (++n > 1) break;
    }
    if (n === 0) return '';
    if (n === 1) return only + '\u0001' + str(labels[only]);
    const keys = Object.keys(labels).sort();
    let k = '';
    for (const name of keys) k += name + '\u0001' + str(labels[name]) + '\u0000';
    return k;
  }

  #pairs(labels: Labels | undefined, other: boolean): string {
    const names = this.labelNames ?? Object.keys(labels ?? {});
    let out = '';
    for (const n of names) {
      if (!this.labelNames) checkLabelName(this.name, n, this.#reserved);
      const v = other ? 'other' : str(labels?.[n]);
      out += (out === '' ? '' : ',') + n + '="' + escapeLabelValue(v) + '"';
    }
    return out;
  }

  /** The state of the series `labels` names, created on first use. */
  protected state(labels: Labels | undefined): S {
    const key = this.#key(labels);
    const hit = this.#series.get(key);
    if (hit) return hit.state;
    if (this.#series.size >= this.#max) {
      const names = this.labelNames ?? Object.keys(labels ?? {});
      const other: Record<string, string> = {};
      for (const n of names) other[n] = 'other';
      const okey = this.#key(other);
      const o = this.#series.get(okey);
      if (o) return o.state;
      const entry = { pairs: this.#pairs(labels, true), state: this.initial() };
      this.#series.set(okey, entry);
      return entry.state;
    }
    const entry = { pairs: this.#pairs(labels, false), state: this.initial() };
    this.#series.set(key, entry);
    return entry.state;
  }

  /** The state of an existing series, without creating it. */
  protected peek(labels: Labels | undefined): S | undefined {
    return this.#series.get(this.#key(labels))?.state;
  }

  protected entries(): IterableIterator<Entry<S>> {
    return this.#series.values();
  }

  protected get seriesCount(): number {
    return this.#series.size;
  }

  /** Drops every series (tests, or a gauge whose label set is rebuilt at each scrape). */
  reset(): void {
    this.#series.clear();
  }

  protected header(type: MetricType): string {
    return `# HELP ${this.name} ${escapeHelp(this.help)}\n# TYPE ${this.name} ${type}\n`;
  }

  /** True when the metric has no declared labels, so an empty one still prints `name 0`. */
  protected get unlabelled(): boolean {
    return this.labelNames === undefined || this.labelNames.length === 0;
  }
}

function braces(pairs: string): string {
  return pairs === '' ? '' : `{${pairs}}`;
}

interface Value {
  v: number;
}

/** A counter bound to one series. */
export interface CounterChild {
  inc(by?: number): void;
  value(): number;
}

function optionsOf<O extends MetricOptions>(
  o: readonly string[] | O | undefined,
): O | MetricOptions {
  if (o === undefined) return {};
  if (Array.isArray(o)) return { labelNames: o as readonly string[] };
  return o as O;
}

/** A monotonically increasing count (`_total`). */
export class Counter extends Labelled<Value> implements Metric {
  readonly type = 'counter' as const;
  readonly #collect: (() => number) | undefined;

  /** `options` may be the label names alone. */
  constructor(name: string, help: string, options?: readonly string[] | CounterOptions) {
    const o: CounterOptions = optionsOf(options);
    super(name, help, o);
    this.#collect = o.collect;
  }

  protected initial(): Value {
    return { v: 0 };
  }

  /** Adds `by` (default 1) to the series `labels` names. A negative `by` is a programmer error. */
  inc(labels?: Labels, by = 1): void {
    if (!(by >= 0)) {
      throw new MetricsError(
        MetricsErrorCode.Decrease,
        `metrics: counter ${this.name} cannot decrease`,
      );
    }
    this.state(labels).v += by;
  }

  /** The series' current value (0 if it was never counted). */
  get(labels?: Labels): number {
    if (this.#collect && labels === undefined) return this.#collect();
    return this.peek(labels)?.v ?? 0;
  }

  /** Same as `get`. */
  value(labels?: Labels): number {
    return this.get(labels);
  }

  /** Binds one series, for hot paths. */
  labels(labels: Labels): CounterChild {
    const s = this.state(labels);
    const name = this.name;
    return {
      inc(by = 1): void {
        if (!(by >= 0)) {
          throw new MetricsError(
            MetricsErrorCode.Decrease,
            `metrics: counter ${name} cannot decrease`,
          );
        }
        s.v += by;
      },
      value: () => s.v,
    };
  }

  render(): string {
    let out = this.header('counter');
    if (this.#collect) return `${out}${this.name} ${formatValue(this.#collect())}\n`;
    if (this.seriesCount === 0 && this.unlabelled) return `${out}${this.name} 0\n`;
    for (const e of this.entries())
      out += `${this.name}${braces(e.pairs)} ${formatValue(e.state.v)}\n`;
    return out;
  }
}

/** A gauge bound to one series. */
export interface GaugeChild {
  set(value: number): void;
  inc(by?: number): void;
  dec(by?: number): void;
  value(): number;
}

/** A value that goes up and down, set by code or read at scrape time. */
export class Gauge extends Labelled<Value> implements Metric {
  readonly type = 'gauge' as const;
  readonly #collect: (() => number) | undefined;

  /** `options` may be the label names alone, or the collect function alone. */
  constructor(
    name: string,
    help: string,
    options?: readonly string[] | (() => number) | GaugeOptions,
  ) {
    const o: GaugeOptions =
      typeof options === 'function' ? { collect: options } : optionsOf(options);
    super(name, help, o);
    this.#collect = o.collect;
  }

  protected initial(): Value {
    return { v: 0 };
  }

  set(value: number, labels?: Labels): void {
    this.state(labels).v = value;
  }

  inc(labels?: Labels, by = 1): void {
    this.state(labels).v += by;
  }

  dec(labels?: Labels, by = 1): void {
    this.state(labels).v -= by;
  }

  get(labels?: Labels): number {
    if (this.#collect && labels === undefined) return this.#collect();
    return this.peek(labels)?.v ?? 0;
  }

  value(labels?: Labels): number {
    return this.get(labels);
  }

  labels(labels: Labels): GaugeChild {
    const s = this.state(labels);
    return {
      set: (v) => {
        s.v = v;
      },
      inc: (by = 1) => {
        s.v += by;
      },
      dec: (by = 1) => {
        s.v -= by;
      },
      value: () => s.v,
    };
  }

  render(): string {
    let out = this.header('gauge');
    if (this.#collect) return `${out}${this.name} ${formatValue(this.#collect())}\n`;
    if (this.seriesCount === 0 && this.unlabelled) return `${out}${this.name} 0\n`;
    for (const e of this.entries())
      out += `${this.name}${braces(e.pairs)} ${formatValue(e.state.v)}\n`;
    return out;
  }
}

interface HistState {
  /** Per-bucket (not cumulative) counts; the last slot is `+Inf`. */
  readonly counts: Float64Array;
  sum: number;
  count: number;
}

/** A histogram bound to one series. */
export interface HistogramChild {
  observe(value: number): void;
  /** Starts a timer; calling the result observes the elapsed seconds and returns them. */
  startTimer(): () => number;
}

function observeInto(buckets: readonly number[], s: HistState, value: number): void {
  if (Number.isNaN(value)) return;
  let i = 0;
  const n = buckets.length;
  while (i < n && value > buckets[i]!) i++;
  s.counts[i]!++;
  s.sum += value;
  s.count++;
}

function timer(observe: (v: number) => void): () => number {
  const t0 = process.hrtime.bigint();
  return () => {
    const sec = Number(process.hrtime.bigint() - t0) / 1e9;
    observe(sec);
    return sec;
  };
}

/** Observations counted into cumulative buckets, with their sum and count. */
export class Histogram extends Labelled<HistState> implements Metric {
  readonly type = 'histogram' as const;
  /** The finite upper bounds, ascending. */
  readonly buckets: readonly number[];

  /**
   * Accepts every spelling the apps used: `(name, help)`, `(name, help, buckets)`,
   * `(name, help, labelNames, buckets)` and `(name, help, { labelNames, buckets })`.
   */
  constructor(
    name: string,
    help: string,
    a?: readonly number[] | readonly string[] | HistogramOptions,
    b?: readonly number[],
  ) {
    let o: HistogramOptions;
    if (b !== undefined)
      o = { ...optionsOf(a as readonly string[] | HistogramOptions | undefined), buckets: b };
    else if (Array.isArray(a)) {
      o =
        a.length > 0 && typeof a[0] === 'number'
          ? { buckets: a as readonly number[] }
          : { labelNames: a as readonly string[] };
    } else o = (a as HistogramOptions | undefined) ?? {};
    super(name, help, o, 'le');
    const sorted = [...(o.buckets ?? LATENCY_BUCKETS)]
      .filter((x) => x !== Infinity)
      .sort((x, y) => x - y);
    if (
      sorted.length === 0 ||
      sorted.some((x, i) => Number.isNaN(x) || (i > 0 && x === sorted[i - 1]))
    ) {
      throw new MetricsError(
        MetricsErrorCode.BadBuckets,
        `metrics: histogram ${name} needs distinct, finite buckets`,
      );
    }
    this.buckets = sorted;
  }

  protected initial(): HistState {
    return { counts: new Float64Array(this.buckets.length + 1), sum: 0, count: 0 };
  }

  /** Counts `value` (NaN is ignored). */
  observe(value: number, labels?: Labels): void {
    observeInto(this.buckets, this.state(labels), value);
  }

  /** Starts a timer; calling the result observes the elapsed seconds. */
  startTimer(labels?: Labels): () => number {
    return timer((v) => this.observe(v, labels));
  }

  count(labels?: Labels): number {
    return this.peek(labels)?.count ?? 0;
  }

  sum(labels?: Labels): number {
    return this.peek(labels)?.sum ?? 0;
  }

  labels(labels: Labels): HistogramChild {
    const s = this.state(labels);
    const buckets = this.buckets;
    return {
      observe: (v) => observeInto(buckets, s, v),
      startTimer: () => timer((v) => observeInto(buckets, s, v)),
    };
  }

  render(): string {
    let out = this.header('histogram');
    const entries: Entry<HistState>[] = [...this.entries()];
    if (entries.length === 0 && this.unlabelled) {
      entries.push({ pairs: '', state: this.initial() });
    }
    const les = this.buckets.map((b) => `le="${formatValue(b)}"`);
    for (const { pairs, state } of entries) {
      const pre = pairs === '' ? '' : `${pairs},`;
      let cum = 0;
      for (let i = 0; i < les.length; i++) {
        cum += state.counts[i]!;
        out += `${this.name}_bucket{${pre}${les[i]!}} ${cum}\n`;
      }
      out += `${this.name}_bucket{${pre}le="+Inf"} ${state.count}\n`;
      out += `${this.name}_sum${braces(pairs)} ${formatValue(state.sum)}\n`;
      out += `${this.name}_count${braces(pairs)} ${state.count}\n`;
    }
    return out;
  }
}

/**
 * Quantiles over the most recent observations (a ring of `size` samples), plus the all-time sum
 * and count. Unlabelled: one ring per metric.
 */
export class Summary implements Metric {
  readonly type = 'summary' as const;
  readonly name: string;
  readonly help: string;
  readonly quantiles: readonly number[];
  readonly #ring: Float64Array;
  #n = 0;
  #sum = 0;
  #count = 0;

  /** `options` may be the ring size alone. */
  constructor(name: string, help: string, options?: number | SummaryOptions) {
    checkName(name);
    const o: SummaryOptions = typeof options === 'number' ? { size: options } : (options ?? {});
    this.name = name;
    this.help = help;
    this.quantiles = o.quantiles ?? [0.5, 0.9, 0.99];
    this.#ring = new Float64Array(Math.max(1, o.size ?? 65_536));
  }

  /** Records `value` (NaN is ignored). */
  observe(value: number): void {
    if (Number.isNaN(value)) return;
    this.#ring[this.#n++ % this.#ring.length] = value;
    this.#sum += value;
    this.#count++;
  }

  /** The q-quantile of the retained observations (0 when there are none). */
  quantile(q: number): number {
    const len = Math.min(this.#n, this.#ring.length);
    if (len === 0) return 0;
    const sorted = this.#ring.slice(0, len).sort();
    return sorted[Math.min(len - 1, Math.max(0, Math.floor(q * len)))]!;
  }

  count(): number {
    return this.#count;
  }

  sum(): number {
    return this.#sum;
  }

  render(): string {
    let s = `# HELP ${this.name} ${escapeHelp(this.help)}\n# TYPE ${this.name} summary\n`;
    for (const q of this.quantiles) {
      s += `${this.name}{quantile="${formatValue(q)}"} ${formatValue(this.quantile(q))}\n`;
    }
    return `${s}${this.name}_sum ${formatValue(this.#sum)}\n${this.name}_count ${this.#count}\n`;
  }
}

/** A set of metrics rendered together. Registering a name twice is a programmer error. */
export class Registry {
  readonly #metrics = new Map<string, Metric>();

  /** Adds a metric built elsewhere (e.g. a field of an app's metrics object). */
  register<M extends Metric>(metric: M): M {
    if (this.#metrics.has(metric.name)) {
      throw new MetricsError(
        MetricsErrorCode.Duplicate,
        `metrics: ${metric.name} registered twice`,
      );
    }
    this.#metrics.set(metric.name, metric);
    return metric;
  }

  counter(name: string, help: string, options?: readonly string[] | CounterOptions): Counter {
    return this.register(new Counter(name, help, options));
  }

  gauge(
    name: string,
    help: string,
    options?: readonly string[] | (() => number) | GaugeOptions,
  ): Gauge {
    return this.register(new Gauge(name, help, options));
  }

  /** Same argument spellings as the `Histogram` constructor. */
  histogram(
    name: string,
    help: string,
    a?: readonly number[] | readonly string[] | HistogramOptions,
    b?: readonly number[],
  ): Histogram {
    return this.register(new Histogram(name, help, a, b));
  }

  summary(name: string, help: string, options?: number | SummaryOptions): Summary {
    return this.register(new Summary(name, help, options));
  }

  get(name: string): Metric | undefined {
    return this.#metrics.get(name);
  }

  /** Every metric, in registration order. */
  metrics(): readonly Metric[] {
    return [...this.#metrics.values()];
  }

  /** The whole exposition, ending with a newline ('' when empty). */
  render(): string {
    let out = '';
    for (const m of this.#metrics.values()) out += m.render();
    return out;
  }
}

/** Content type of the text exposition format. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** The usual process metrics, read at scrape time: resident memory, V8 heap, CPU seconds, start time. */
export function registerProcessMetrics(registry: Registry): void {
  registry.gauge('process_resident_memory_bytes', 'Resident set size in bytes', () =>
    process.memoryUsage.rss(),
  );
  registry.gauge(
    'nodejs_heap_used_bytes',
    'V8 heap in use, in bytes',
    () => process.memoryUsage().heapUsed,
  );
  registry.gauge(
    'nodejs_heap_total_bytes',
    'V8 heap reserved, in bytes',
    () => process.memoryUsage().heapTotal,
  );
  registry.counter('process_cpu_seconds_total', 'User and system CPU time, in seconds', {
    collect: () => {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1e6;
    },
  });
  const start = Date.now() / 1000 - process.uptime();
  registry.gauge('process_start_time_seconds', 'Start time since the Unix epoch, in seconds', () =>
    Math.round(start),
  );
}
