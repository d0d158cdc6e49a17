/**
 * FCP/1.0 status codes with the reason phrases of the v0.19 grammar (spec §3.2). The server
 * always writes these phrases (fcpd's typos such as `Server Internal Error` are not reproduced);
 * the client keys on the three digits only.
 */
export const FcpStatus = {
  OK: 200,
  KEEPING_ALIVE: 201,
  RULE_CHANGED: 202,
  NOT_MY_ROUTE: 203,
  BAD_REQUEST: 400,
  UNAUTHORIZED: 401,
  INVALID_VALUE: 402,
  FORBIDDEN: 403,
  PRIORITY_CLASS_CONFLICT: 480,
  INTERNAL_ERROR: 500,
  NOT_IMPLEMENTED: 501,
  SERVICE_UNAVAILABLE: 502,
  VERSION_NOT_SUPPORTED: 503,
} as const;
export type FcpStatus = (typeof FcpStatus)[keyof typeof FcpStatus];

const PHRASES: ReadonlyMap<number, string> = new Map([
  [200, 'OK'],
  [201, 'Keeping Alive'],
  [202, 'Rule Changed'],
  [203, 'Not My Route'],
  [400, 'Bad Request'],
  [401, 'Unauthorized'],
  [402, 'Invalid Control State Field Value'],
  [403, 'Forbidden'],
  [480, 'Priority Class Conflict'],
  [500, 'Internal Server Error'],
  [501, 'Not Implemented'],
  [502, 'Service Unavailable'],
  [503, 'Version Not Supported'],
]);

/** The v0.19 reason phrase of a status code; `Unknown` for codes outside the grammar. */
export function reasonPhrase(status: number): string {
  return PHRASES.get(status) ?? 'Unknown';
}

/** 2xx: the request succeeded (203 succeeds without keeping state). */
export function isSuccess(status: number): boolean {
  return status >= 200 && status <= 299;
}
