/**
 * Errors of @pinhole/fcp. Callers test `err.code` (stable strings), never `instanceof`.
 * Wire input never throws: the codec returns these as values; only the client API rejects
 * promises with them, and programmer errors (invalid arguments) throw them.
 */
export const FcpErrorCode = {
  /** A request or response could not be parsed (FCP status 400 on the server side). */
  BAD_REQUEST: 'FCP_ERR_BAD_REQUEST',
  /** An AVP that needs a value has none, or a keyword carries one (FCP status 402). */
  INVALID_VALUE: 'FCP_ERR_INVALID_VALUE',
  /** The request exceeds the configured size limit. */
  TOO_LONG: 'FCP_ERR_TOO_LONG',
  /** `FCP=` is not `1.0` (FCP status 503). */
  VERSION: 'FCP_ERR_VERSION',
  /** A response line could not be understood or does not match the request (client side). */
  PROTOCOL: 'FCP_ERR_PROTOCOL',
  /** The server answered a status outside 2xx. */
  STATUS: 'FCP_ERR_STATUS',
  /** No answer before the request's deadline. */
  TIMEOUT: 'FCP_ERR_TIMEOUT',
  /** The connection was lost before the answer arrived, or could not be made. */
  CONNECTION: 'FCP_ERR_CONNECTION',
  /** The client or server was closed. */
  CLOSED: 'FCP_ERR_CLOSED',
  /** An argument given by the program is invalid (programmer error; thrown synchronously). */
  INVALID_ARGUMENT: 'FCP_ERR_INVALID_ARGUMENT',
  /** A server configuration field is invalid; `field` names it. */
  CONFIG: 'FCP_ERR_CONFIG',
  /** The firewall backend failed. */
  BACKEND: 'FCP_ERR_BACKEND',
} as const;
export type FcpErrorCode = (typeof FcpErrorCode)[keyof typeof FcpErrorCode];

export interface FcpErrorOptions {
  /** The FCP status code this error maps to (server side) or that was received (client side). */
  readonly status?: number | undefined;
  /** The configuration field at fault (code `FCP_ERR_CONFIG`). */
  readonly field?: string | undefined;
  readonly cause?: unknown;
}

export class FcpError extends Error {
  readonly code: FcpErrorCode;
  readonly status: number | undefined;
  readonly field: string | undefined;

  constructor(code: FcpErrorCode, message: string, options: FcpErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FcpError';
    this.code = code;
    this.status = options.status;
    this.field = options.field;
  }
}
