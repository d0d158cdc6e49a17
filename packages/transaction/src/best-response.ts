/** Best-response selection for a stateful proxy (RFC 3261 §16.7 steps 6 and 7). */

/** A final response stored in a response context. */
export interface Candidate<M = unknown> {
  readonly status: number;
  /** The response (top Via already removed); undefined for one the proxy synthesises. */
  readonly message: M | undefined;
  /** Synthesised by the proxy: a timeout (408), a transport error (503), a cancelled branch (487). */
  readonly local: boolean;
}

/**
 * RFC 3261 §16.7 step 6: "It MUST choose from the 6xx class responses if any exist in the
 * context. If no 6xx class responses are present, the proxy SHOULD choose from the lowest
 * response class stored in the response context. The proxy MAY select any response within that
 * chosen class. The proxy SHOULD give preference to responses that provide information affecting
 * resubmission of this request, such as 401, 407, 415, 420, and 484 if the 4xx class is chosen."
 *
 * Returns the chosen candidate, or undefined when the context holds none ("If there are no final
 * responses in the context, the proxy MUST send a 408 (Request Timeout) response to the server
 * transaction."). Within a class the earliest received wins.
 */
export function selectBest<M>(candidates: readonly Candidate<M>[]): Candidate<M> | undefined {
  let best: Candidate<M> | undefined;
  for (const c of candidates) {
    if (best === undefined || rank(c) < rank(best)) best = c;
  }
  return best;
}

const RESUBMISSION_INFO = new Set([401, 407, 415, 420, 484]);

function rank(c: Candidate<unknown>): number {
  const cls = Math.floor(c.status / 100);
  if (cls === 6) return 0;
  // Lower classes rank better; inside 4xx the resubmission hints rank first.
  const hint = cls === 4 && RESUBMISSION_INFO.has(c.status) ? 0 : 1;
  return cls * 10 + hint;
}

/** §16.7 step 7 collects the challenges of every other 401/407 into the chosen one. */
export function isChallenge(status: number): boolean {
  return status === 401 || status === 407;
}
