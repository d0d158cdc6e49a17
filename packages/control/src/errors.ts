/** Stable error codes of @pinhole/control. */
export const ControlErrorCode = {
  /** The controller was used after `close()` (a programmer error; thrown). */
  CLOSED: 'CONTROL_ERR_CLOSED',
  /** A new policy configuration was invalid; the old one stays (thrown by `reconfigurePolicy`). */
  CONFIG: 'CONTROL_ERR_CONFIG',
} as const;
export type ControlErrorCode = (typeof ControlErrorCode)[keyof typeof ControlErrorCode];

export class ControlError extends Error {
  readonly code: ControlErrorCode;

  constructor(code: ControlErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ControlError';
    this.code = code;
  }
}
