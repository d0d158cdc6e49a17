/**
 * Reading an nftables firewall from a test: how many pinholes fcpd's nftables backend holds.
 */
import type { Netns } from './netns.js';

/**
 * Pinholes in the `inet pinhole` table in `ns` (fcpd's nftables backend): the elements of its
 * sets whose names do not start with `protected`. -1 when the table cannot be listed (absent,
 * or nft failed).
 */
export async function holeCount(ns: Netns): Promise<number> {
  try {
    const { stdout } = await ns.exec('nft', ['-j', 'list', 'table', 'inet', 'pinhole']);
    return countHoles(stdout);
  } catch {
    return -1;
  }
}

/** The count `holeCount` reads from `nft -j list table` output. */
export function countHoles(nftJson: string): number {
  const j = JSON.parse(nftJson) as { nftables: { set?: { name: string; elem?: unknown[] } }[] };
  let n = 0;
  for (const o of j.nftables) {
    if (o.set && !o.set.name.startsWith('protected')) n += o.set.elem?.length ?? 0;
  }
  return n;
}

/** A promise that resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
