export {
  Counter,
  Gauge,
  Histogram,
  Summary,
  Registry,
  Registry as MetricsRegistry,
  LATENCY_BUCKETS,
  DEFAULT_MAX_SERIES,
  PROMETHEUS_CONTENT_TYPE,
  escapeHelp,
  escapeLabelValue,
  formatValue,
  registerProcessMetrics,
} from './registry.js';
export type {
  CounterChild,
  CounterOptions,
  GaugeChild,
  GaugeOptions,
  HistogramChild,
  HistogramOptions,
  LabelValue,
  Labels,
  Metric,
  MetricOptions,
  MetricType,
  SummaryOptions,
} from './registry.js';
export { MetricsServer, serveMetrics } from './http.js';
export type { MetricsEndpoint, MetricsServerOptions, MetricsSource } from './http.js';
export { MetricsError, MetricsErrorCode } from './errors.js';
