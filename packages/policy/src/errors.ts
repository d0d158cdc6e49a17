/** Stable error codes of @pinhole/policy. Callers test `err.code`, never `instanceof`. */
export const PolicyErrorCode = {
  /** The configuration failed validation; `errors` names each offending field. */
  config: 'POLICY_ERR_CONFIG',
} as const;
export type PolicyErrorCode = (typeof PolicyErrorCode)[keyof typeof PolicyErrorCode];

/** One configuration problem, with the dotted path of the field it concerns. */
export interface ConfigIssue {
  readonly field: string;
  readonly message: string;
}

export class PolicyError extends Error {
  readonly code: PolicyErrorCode;
  readonly issues: readonly ConfigIssue[];
  constructor(
    code: PolicyErrorCode,
    message: string,
    options?: { cause?: unknown; issues?: readonly ConfigIssue[] },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'PolicyError';
    this.code = code;
    this.issues = options?.issues ?? [];
  }
}
