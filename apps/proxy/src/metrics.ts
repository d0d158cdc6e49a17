/**
 * The proxy's Prometheus metrics, on @pinhole/metrics (one registry implementation for every
 * Pinhole app; the metric names are unchanged).
 */
import {
  Counter,
  Gauge,
  Histogram,
  Registry,
  Summary,
  registerProcessMetrics,
  serveMetrics,
} from '@pinhole/metrics';

export { Counter, Gauge, Histogram, Registry, Summary, serveMetrics };
export type { MetricsEndpoint } from '@pinhole/metrics';

/** Every metric the proxy exports. Names follow Prometheus conventions (`_total`, `_seconds`). */
export class ProxyMetrics {
  /** The one registry every proxy metric lives in (rendered in this order). */
  readonly registry: Registry = new Registry();
  readonly requests: Counter = this.registry.counter(
    'pinhole_proxy_requests_total',
    'SIP requests received, by method',
  );
  readonly responses: Counter = this.registry.counter(
    'pinhole_proxy_responses_total',
    'SIP responses sent or relayed, by status code',
  );
  readonly badMessages: Counter = this.registry.counter(
    'pinhole_proxy_bad_messages_total',
    'Messages that failed parsing or validation, by outcome (answered 400 or dropped)',
  );
  readonly transactions: Gauge;
  readonly registrations: Gauge;
  readonly overloadRefused: Counter = this.registry.counter(
    'pinhole_proxy_overload_refused_total',
    'New out-of-dialog requests refused with 503 while the proxy was overloaded, by method',
  );
  readonly overloadShare: Gauge;
  readonly pinholes: Counter = this.registry.counter(
    'pinhole_proxy_pinholes_total',
    'Pinhole operations, by outcome: opened, refreshed, closed, expired (already gone at the firewall), refused, failed',
  );
  readonly pinholeWait: Histogram = this.registry.histogram(
    'pinhole_proxy_pinhole_wait_seconds',
    'Time a media-enabling response was held until its pinholes were acknowledged',
    [0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  );
  readonly pinholeStep: Histogram = this.registry.histogram(
    'pinhole_proxy_pinhole_step_seconds',
    'Pinhole step of media-enabling responses: from reading the response to the decision that relays or fails it (parsing, transaction, policy, FCP SETs and their acknowledgements)',
    [0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  );
  readonly pinholeStepRecent: Summary = this.registry.summary(
    'pinhole_proxy_pinhole_step_recent_seconds',
    'Pinhole step of media-enabling responses, recent quantiles',
  );
  readonly fcpLatency: Histogram = this.registry.histogram(
    'pinhole_proxy_fcp_request_seconds',
    'FCP request round-trip time',
    [0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
  );

  constructor(collect: {
    transactions: () => number;
    registrations: () => number;
    /** The share of new requests overload control refuses now (0..1). */
    overloadShare?: () => number;
  }) {
    this.transactions = this.registry.gauge(
      'pinhole_proxy_transactions',
      'Live server transactions',
      collect.transactions,
    );
    this.registrations = this.registry.gauge(
      'pinhole_proxy_registrations',
      'Live registrar bindings',
      collect.registrations,
    );
    this.overloadShare = this.registry.gauge(
      'pinhole_proxy_overload_refused_share',
      'Share of new out-of-dialog requests refused now by overload control (0..1)',
      collect.overloadShare ?? (() => 0),
    );
    // Resident memory, V8 heap, CPU seconds, start time (per process: per worker).
    registerProcessMetrics(this.registry);
  }

  render(): string {
    return this.registry.render();
  }
}
