/** Stable error codes of @pinhole/proxy. Callers test `err.code`, not `instanceof`. */
export const ProxyErrorCode = {
  CONFIG: 'PROXY_ERR_CONFIG',
  LISTEN: 'PROXY_ERR_LISTEN',
  TRANSPORT: 'PROXY_ERR_TRANSPORT',
  FIREWALL: 'PROXY_ERR_FIREWALL',
} as const;
export type ProxyErrorCode = (typeof ProxyErrorCode)[keyof typeof ProxyErrorCode];

export class ProxyError extends Error {
  readonly code: ProxyErrorCode;
  constructor(code: ProxyErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ProxyError';
    this.code = code;
  }
}

/** A configuration problem; `field` names the offending field or flag (`listen[1]`, `--route`). */
export class ConfigError extends ProxyError {
  readonly field: string;
  constructor(field: string, message: string) {
    super(ProxyErrorCode.CONFIG, `${field}: ${message}`);
    this.name = 'ConfigError';
    this.field = field;
  }
}
