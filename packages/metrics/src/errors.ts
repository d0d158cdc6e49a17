/** Error codes of @pinhole/metrics. Every one is a programmer error (names and buckets come from code). */
export const MetricsErrorCode = {
  BadName: 'METRICS_ERR_BAD_NAME',
  BadLabel: 'METRICS_ERR_BAD_LABEL',
  BadBuckets: 'METRICS_ERR_BAD_BUCKETS',
  Duplicate: 'METRICS_ERR_DUPLICATE',
  Decrease: 'METRICS_ERR_COUNTER_DECREASE',
  NotListening: 'METRICS_ERR_NOT_LISTENING',
} as const;
export type MetricsErrorCode = (typeof MetricsErrorCode)[keyof typeof MetricsErrorCode];

/** The package's error: callers test `err.code`. */
export class MetricsError extends Error {
  readonly code: MetricsErrorCode;
  constructor(code: MetricsErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MetricsError';
    this.code = code;
  }
}
