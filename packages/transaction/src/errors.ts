/** Stable error codes of @pinhole/transaction. Callers test `err.code`, never `instanceof`. */
export const TransactionErrorCode = {
  /** A state machine was asked to take an edge its table does not allow (a programmer error). */
  BAD_TRANSITION: 'TXN_ERR_BAD_TRANSITION',
  /** The transaction table is at `maxTransactions`. */
  TABLE_FULL: 'TXN_ERR_TABLE_FULL',
  /** The transport's `send` threw or its promise rejected. */
  TRANSPORT: 'TXN_ERR_TRANSPORT',
  /** A message lacks what the layer needs (top Via, CSeq, Call-ID). */
  BAD_MESSAGE: 'TXN_ERR_BAD_MESSAGE',
  /** An operation that sends was called on an observer-mode layer, or a send-only option is missing. */
  BAD_USAGE: 'TXN_ERR_BAD_USAGE',
  /** A listener threw or its promise rejected; reported through the `error` event, never thrown. */
  LISTENER: 'TXN_ERR_LISTENER',
  /** A held response was released because its hold deadline passed. */
  HOLD_DEADLINE: 'TXN_ERR_HOLD_DEADLINE',
} as const;
export type TransactionErrorCode = (typeof TransactionErrorCode)[keyof typeof TransactionErrorCode];

export class TransactionError extends Error {
  readonly code: TransactionErrorCode;
  constructor(code: TransactionErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TransactionError';
    this.code = code;
  }
}
