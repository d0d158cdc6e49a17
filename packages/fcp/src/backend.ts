/**
 * The contract between the FCP server core (which speaks the protocol, owns the rule table,
 * checks policy and runs the TIMERs) and a firewall backend (which makes rules real: nftables in
 * apps/fcpd, or memory). The server core never touches a firewall; a backend never parses FCP.
 */

/** An address with a prefix length: `{ address: '198.18.0.1', prefix: 32 }`. */
export interface IpPrefix {
  /** Dotted IPv4 or textual IPv6 (lower case, compressed), without brackets. */
  readonly address: string;
  /** 0..32 for IPv4, 0..128 for IPv6; a host is 32 / 128. */
  readonly prefix: number;
}

/** Inclusive port range; a single port is `[p, p]`. */
export type PortRange = readonly [number, number];

/** A rule as the backend must enforce it. Fields left undefined match anything. */
export interface FirewallRule {
  /** The canonical packet-matching expression: the rule's identity, stable across restarts. */
  readonly key: string;
  readonly family: 4 | 6;
  /** IP protocol number (6 TCP, 17 UDP, ...); 0 = any. */
  readonly proto: number;
  readonly src: IpPrefix | undefined;
  readonly srcPorts: PortRange | undefined;
  readonly dst: IpPrefix | undefined;
  readonly dstPorts: PortRange | undefined;
  readonly action: 'pass' | 'drop' | 'reject' | 'none';
}

/** What the backend stores beside a rule so that a restarted daemon can adopt it again. */
export interface RuleMeta {
  /** Owner: the client's address (or authenticated principal). */
  readonly owner: string;
  /** The TIMER the rule was (last) set with, seconds; 0 = never expires. */
  readonly timerSec: number;
}

/** A rule found in the firewall when the backend opens (reconciliation after a restart). */
export interface InstalledRule {
  readonly rule: FirewallRule;
  readonly meta: RuleMeta;
  /** Milliseconds left before the firewall drops it by itself; undefined = never expires. */
  readonly remainingMs: number | undefined;
}

export interface FirewallBackend {
  /** `nftables`, `memory`, ... */
  readonly name: string;
  /** False for a backend that enforces nothing (memory): the daemon says so at start. */
  readonly enforces: boolean;
  /**
   * Why the backend cannot express this rule (the server answers 501 with it), or undefined when
   * it can. Pure and synchronous.
   */
  unsupported(rule: FirewallRule): string | undefined;
  /** Prepares the firewall objects it owns and returns the rules already there. */
  open(): Promise<readonly InstalledRule[]>;
  /**
   * Installs a rule, or refreshes it (its expiry restarts at `meta.timerSec`). Resolves only once
   * the rule is in force, so a 200 means the hole is open. Backends batch concurrent calls.
   */
  install(rule: FirewallRule, meta: RuleMeta): Promise<void>;
  /** Removes a rule; resolves once it no longer matches. Removing an absent rule succeeds. */
  remove(rule: FirewallRule): Promise<void>;
  /** Releases resources. Rules stay in the firewall, and their kernel timeouts keep running. */
  close(): Promise<void>;
}
