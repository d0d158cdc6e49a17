/**
 * What every fcpd embedded in a proxy process shares: the live one (app.ts) and the warm-up's
 * private one (warmup.ts).
 */
import type { FcpServer, ServerEndpoint } from '@pinhole/fcp';

/** Rules an embedded fcpd lets its proxy hold: 500,000 two-hole calls. */
export const EMBEDDED_MAX_RULES = 1_000_000;

/**
 * An embedded fcpd's only client is its own proxy process, over the in-process link. The
 * per-client request rate (default 1,000/s) and rule quota (default 10,000) protect a shared
 * fcpd from untrusted clients; here they would cap the proxy at ~250 calls/s (4 FCP requests per
 * call) and ~5,000 concurrent two-hole calls, and refused SETs fail calls (fail-closed).
 */
export const EMBEDDED_LIMITS: { readonly ratePerSec: number; readonly maxRulesPerClient: number } =
  {
    ratePerSec: 0,
    maxRulesPerClient: EMBEDDED_MAX_RULES,
  };

/** The FCP client's endpoint for an fcpd in this process: the in-process link, no socket. */
export function localEndpoint(name: string, server: FcpServer): ServerEndpoint {
  return { host: name, port: 0, transport: 'local', connect: () => server.connectLocal() };
}
