/**
 * Helpers for the namespace end-to-end test: where the programs and scenarios are, and the
 * firewall's pinhole count. The JSON-logging processes are @pinhole/testkit's JsonLogProcess.
 */
import { fileURLToPath } from 'node:url';
import type { Netns } from '@pinhole/testkit';

export const SCENARIOS: string = fileURLToPath(
  new URL('../../../proxy/test/scenarios/', import.meta.url),
);
/** Scenarios of the sidecar's own (variants the proxy's tests do not need). */
export const OWN_SCENARIOS: string = fileURLToPath(new URL('../scenarios/', import.meta.url));
export const SIDECAR_CLI: string = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
export const FCPD_CLI: string = fileURLToPath(
  new URL('../../../fcpd/dist/cli.js', import.meta.url),
);

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Pinholes in the fcpd's nftables table (elements of its non-`protected` sets); -1 if none. */
export async function holeCount(ns: Netns): Promise<number> {
  try {
    const { stdout } = await ns.exec('nft', ['-j', 'list', 'table', 'inet', 'pinhole']);
    const j = JSON.parse(stdout) as { nftables: { set?: { name: string; elem?: unknown[] } }[] };
    let n = 0;
    for (const o of j.nftables) {
      if (o.set && !o.set.name.startsWith('protected')) n += o.set.elem?.length ?? 0;
    }
    return n;
  } catch {
    return -1;
  }
}
