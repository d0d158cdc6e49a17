/** Stable error codes of the sidecar (callers test `err.code`). */
export const SidecarErrorCode = {
  /** A configuration field or flag is missing or invalid; `field` names it. */
  config: 'SIDECAR_ERR_CONFIG',
  /** A listener could not be bound. */
  listen: 'SIDECAR_ERR_LISTEN',
} as const;
export type SidecarErrorCode = (typeof SidecarErrorCode)[keyof typeof SidecarErrorCode];

export class SidecarError extends Error {
  readonly code: SidecarErrorCode;
  constructor(code: SidecarErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SidecarError';
    this.code = code;
  }
}

/** A configuration error naming the offending field (`hep[1]`, `--server-address`, ...). */
export class SidecarConfigError extends SidecarError {
  readonly field: string;
  constructor(field: string, message: string) {
    super(SidecarErrorCode.config, `${field}: ${message}`);
    this.name = 'SidecarConfigError';
    this.field = field;
  }
}
