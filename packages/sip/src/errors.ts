/**
 * Stable error codes of @pinhole/sip. Callers test `err.code`, never the message text.
 */
export const SipErrorCode = {
  /** Nothing but whitespace / CRLF keep-alives in the input. */
  EMPTY: 'SIP_ERR_EMPTY',
  BAD_START_LINE: 'SIP_ERR_BAD_START_LINE',
  BAD_VERSION: 'SIP_ERR_BAD_VERSION',
  BAD_STATUS: 'SIP_ERR_BAD_STATUS',
  BAD_HEADER: 'SIP_ERR_BAD_HEADER',
  /** Content-Length missing where required, negative, non-numeric, or given twice. */
  CONTENT_LENGTH: 'SIP_ERR_CONTENT_LENGTH',
  /** The datagram ends before the body that Content-Length announces. */
  BODY_TRUNCATED: 'SIP_ERR_BODY_TRUNCATED',
  MESSAGE_TOO_LARGE: 'SIP_ERR_MESSAGE_TOO_LARGE',
  TOO_MANY_HEADERS: 'SIP_ERR_TOO_MANY_HEADERS',
  HEADER_TOO_LONG: 'SIP_ERR_HEADER_TOO_LONG',
  BODY_TOO_LARGE: 'SIP_ERR_BODY_TOO_LARGE',
  /** Headers never terminated (stream input ended, or a datagram had no header end). */
  INCOMPLETE: 'SIP_ERR_INCOMPLETE',
  BAD_URI: 'SIP_ERR_BAD_URI',
  BAD_VIA: 'SIP_ERR_BAD_VIA',
  BAD_NAME_ADDR: 'SIP_ERR_BAD_NAME_ADDR',
  BAD_CSEQ: 'SIP_ERR_BAD_CSEQ',
  BAD_VALUE: 'SIP_ERR_BAD_VALUE',
  MISSING_HEADER: 'SIP_ERR_MISSING_HEADER',
  DUPLICATE_HEADER: 'SIP_ERR_DUPLICATE_HEADER',
  CSEQ_METHOD_MISMATCH: 'SIP_ERR_CSEQ_METHOD_MISMATCH',
  UNSUPPORTED_VERSION: 'SIP_ERR_UNSUPPORTED_VERSION',
  UNSUPPORTED_URI_SCHEME: 'SIP_ERR_UNSUPPORTED_URI_SCHEME',
  BAD_EXTENSION: 'SIP_ERR_BAD_EXTENSION',
  BAD_SDP: 'SIP_ERR_BAD_SDP',
  BAD_SDP_ADDRESS: 'SIP_ERR_BAD_SDP_ADDRESS',
  BAD_SDP_PORT: 'SIP_ERR_BAD_SDP_PORT',
  /** A broken internal invariant (a bug in this package); never expected. */
  INTERNAL: 'SIP_ERR_INTERNAL',
  /** A programmer error, e.g. an invalid edit argument. */
  INVALID_ARGUMENT: 'SIP_ERR_INVALID_ARGUMENT',
} as const;

export type SipErrorCode = (typeof SipErrorCode)[keyof typeof SipErrorCode];

/** Base error of @pinhole/sip: a stable string `code` and an optional `cause`. */
export class SipError extends Error {
  readonly code: SipErrorCode;

  constructor(code: SipErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SipError';
    this.code = code;
  }
}

/** True when `value` is a SipError (tests the `code` shape, not the prototype chain). */
export function isSipError(value: unknown): value is SipError {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { code?: unknown }).code === 'string' &&
    (value as { code: string }).code.startsWith('SIP_ERR_') &&
    value instanceof Error
  );
}
