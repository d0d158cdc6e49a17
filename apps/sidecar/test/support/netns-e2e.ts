/**
 * Helpers for the namespace end-to-end test: where the programs and scenarios are. The
 * JSON-logging processes, the firewall's pinhole count and `sleep` are @pinhole/testkit's.
 */
import { fileURLToPath } from 'node:url';

export const SCENARIOS: string = fileURLToPath(
  new URL('../../../proxy/test/scenarios/', import.meta.url),
);
/** Scenarios of the sidecar's own (variants the proxy's tests do not need). */
export const OWN_SCENARIOS: string = fileURLToPath(new URL('../scenarios/', import.meta.url));
export const SIDECAR_CLI: string = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
export const FCPD_CLI: string = fileURLToPath(
  new URL('../../../fcpd/dist/cli.js', import.meta.url),
);
