/**
 * Pure text generation and parsing for the nftables backend: the table's sets and chains, the
 * set elements a rule becomes, and the reverse (elements listed by `nft -j` back into rules).
 * Nothing here touches the kernel, so all of it is unit-tested.
 *
 * Layout of the owned table (default `inet pinhole`):
 *
 * - `h4d` / `h6d`: hash sets `daddr . l4proto . dport` for holes without a source address;
 * - `h4sd` / `h6sd`: hash sets `saddr . daddr . l4proto . dport` for holes with a host source;
 * - `w4` / `w6`: interval (pipapo) sets `saddr . daddr . l4proto . sport . dport` for everything
 *   else (address prefixes, source ports, wide port ranges).
 *
 * Several daemons may share the table (`shards` > 1, e.g. the workers of one proxy, each with its
 * own fcpd): shard k > 0 writes the same six sets suffixed `_k` (`h4d_1`, …), and the `holes`
 * chain looks a packet up in every shard's sets. Each daemon adds, refreshes and deletes only
 * its own shard's elements, so no daemon can close another's hole.
 *
 * A hole toward a host and a short destination port range (RTP + RTCP) is expanded into one hash
 * element per port, so the common lookup is a constant-time hash hit whatever the number of
 * holes; only holes that need prefixes or ranges pay for the interval set. Every element carries
 * the kernel timeout (the kernel closes the hole even if the daemon is dead) and a comment with
 * owner, TIMER, absolute expiry and the original port ranges, from which a restarted daemon
 * rebuilds the rule.
 */
import type { FirewallRule, InstalledRule, IpPrefix, PortRange } from '@pinhole/fcp';

export type NftMode = 'standalone' | 'mark';
export type NftHook = 'forward' | 'input';

export interface RulesetOptions {
  /** Table name inside family `inet`. */
  readonly table: string;
  readonly mode: NftMode;
  readonly hooks: readonly NftHook[];
  /** Protected networks (CIDR text, already validated). */
  readonly protected: readonly string[];
  /** Destination ports gated in standalone mode. */
  readonly mediaPorts: PortRange;
  /** Bit(s) OR-ed into the packet mark in `mark` mode. */
  readonly mark: number;
  /** Daemons sharing the table, each with its own sets (default 1). */
  readonly shards?: number | undefined;
}

export type HoleSet = 'h4d' | 'h4sd' | 'w4' | 'h6d' | 'h6sd' | 'w6';
export const HOLE_SETS: readonly HoleSet[] = ['h4d', 'h4sd', 'w4', 'h6d', 'h6sd', 'w6'];

/** Most daemons that may share one table (`nft.shards`). */
export const MAX_SHARDS = 64;

/** The kernel name of a hole set in a shard: `h4d` for shard 0, `h4d_2` for shard 2. */
export function shardSetName(set: HoleSet, shard: number): string {
  return shard === 0 ? set : `${set}_${shard}`;
}

// Shard suffixes 1..99: covers MAX_SHARDS (64) and the sets of any table a larger count made.
const SET_NAME = /^(h4d|h4sd|w4|h6d|h6sd|w6)(?:_([1-9][0-9]?))?$/;

/** The hole set and shard a kernel set name stands for; undefined for any other set. */
export function parseSetName(name: string): { set: HoleSet; shard: number } | undefined {
  const m = SET_NAME.exec(name);
  if (!m) return undefined;
  return { set: m[1] as HoleSet, shard: m[2] === undefined ? 0 : Number(m[2]) };
}

/** At most this many destination ports are expanded into hash elements; wider ranges use `w*`. */
export const MAX_EXPANDED_PORTS = 16;
/** nft refuses element comments longer than this. */
export const MAX_COMMENT = 128;
const COMMENT_TAG = 'ph1';

const SET_TYPES: Record<HoleSet, string> = {
  h4d: 'type ipv4_addr . inet_proto . inet_service; flags timeout;',
  h4sd: 'type ipv4_addr . ipv4_addr . inet_proto . inet_service; flags timeout;',
  w4: 'type ipv4_addr . ipv4_addr . inet_proto . inet_service . inet_service; flags interval, timeout;',
  h6d: 'type ipv6_addr . inet_proto . inet_service; flags timeout;',
  h6sd: 'type ipv6_addr . ipv6_addr . inet_proto . inet_service; flags timeout;',
  w6: 'type ipv6_addr . ipv6_addr . inet_proto . inet_service . inet_service; flags interval, timeout;',
};

/** What each set's elements are matched against (followed by `@<set name>`). */
const SET_MATCH: Record<HoleSet, string> = {
  h4d: 'ip daddr . meta l4proto . th dport',
  h4sd: 'ip saddr . ip daddr . meta l4proto . th dport',
  w4: 'ip saddr . ip daddr . meta l4proto . th sport . th dport',
  h6d: 'ip6 daddr . meta l4proto . th dport',
  h6sd: 'ip6 saddr . ip6 daddr . meta l4proto . th dport',
  w6: 'ip6 saddr . ip6 daddr . meta l4proto . th sport . th dport',
};

/** Protocols with ports that a hole may name (TCP, UDP, SCTP). */
export const HOLE_PROTOCOLS: ReadonlySet<number> = new Set([6, 17, 132]);
/** Maximum number of hash elements one set may hold (a bound, not a preallocation). */
const SET_SIZE = 4_000_000;

/** Name of the base chain for a hook in a mode; the mode is in the name so a mode change never
 * has to re-add a base chain with another priority in the same transaction. */
export function baseChainName(mode: NftMode, hook: NftHook): string {
  return `${mode === 'standalone' ? 'sa' : 'mk'}_${hook}`;
}

function ports(r: PortRange): string {
  return r[0] === r[1] ? String(r[0]) : `${r[0]}-${r[1]}`;
}

/**
 * The one transaction that (re)builds the table around existing hole sets: existing chains are
 * flushed and the unwanted ones deleted, the sets are declared (a no-op when they exist, so their
 * elements and timers survive), the protected networks are replaced and the chains re-filled.
 * Hole sets of shards beyond `shards` (a table shared by more daemons before) are deleted: no
 * chain looks at them any more.
 */
export function setupScript(
  o: RulesetOptions,
  existingChains: readonly string[],
  existingSets: readonly string[] = [],
): string {
  const t = `inet ${o.table}`;
  const shards = o.shards ?? 1;
  const wanted = new Set(allWantedChains(o));
  const lines: string[] = [`add table ${t}`];
  // A chain is declared and flushed together: a chain another daemon created after our listing
  // (daemons sharing the table, starting at once) is refilled once, not appended to.
  const chain = (name: string, spec = ''): void => {
    lines.push(`add chain ${t} ${name}${spec}`, `flush chain ${t} ${name}`);
  };
  // Every chain is flushed first, so no jump references a chain deleted after it.
  for (const c of existingChains) lines.push(`flush chain ${t} ${c}`);
  for (const c of existingChains) if (!wanted.has(c)) lines.push(`delete chain ${t} ${c}`);
  for (const name of existingSets) {
    const p = parseSetName(name);
    if (p !== undefined && p.shard >= shards) lines.push(`delete set ${t} ${name}`);
  }
  for (let k = 0; k < shards; k++) {
    for (const s of HOLE_SETS) {
      lines.push(`add set ${t} ${shardSetName(s, k)} { ${SET_TYPES[s]} size ${SET_SIZE}; }`);
    }
  }
  lines.push(`add set ${t} protected4 { type ipv4_addr; flags interval; auto-merge; }`);
  lines.push(`add set ${t} protected6 { type ipv6_addr; flags interval; auto-merge; }`);
  lines.push(`flush set ${t} protected4`, `flush set ${t} protected6`);
  const v4 = o.protected.filter((p) => !p.includes(':'));
  const v6 = o.protected.filter((p) => p.includes(':'));
  if (v4.length > 0) lines.push(`add element ${t} protected4 { ${v4.join(', ')} }`);
  if (v6.length > 0) lines.push(`add element ${t} protected6 { ${v6.join(', ')} }`);

  chain('holes');
  const verdict =
    o.mode === 'standalone'
      ? 'accept'
      : `meta mark set meta mark or 0x${o.mark.toString(16)} accept`;
  for (let k = 0; k < shards; k++) {
    for (const s of HOLE_SETS) {
      lines.push(`add rule ${t} holes ${SET_MATCH[s]} @${shardSetName(s, k)} ${verdict}`);
    }
  }

  const mp = ports(o.mediaPorts);
  // Gate chains before the base chains that jump to them.
  if (o.mode === 'standalone') {
    for (const hook of o.hooks) {
      const g = `gate_${hook}`;
      chain(g);
      lines.push(
        `add rule ${t} ${g} jump holes`,
        // Replies to connections a protected host opened itself (its DNS, HTTP, outbound RTP)
        // are not gated; everything else toward the media ports needs a hole.
        `add rule ${t} ${g} ct direction reply ct state established,related accept`,
        `add rule ${t} ${g} counter drop`,
      );
    }
  }
  for (const hook of o.hooks) {
    const c = baseChainName(o.mode, hook);
    if (o.mode === 'standalone') {
      chain(c, ` { type filter hook ${hook} priority filter; policy accept; }`);
      lines.push(
        `add rule ${t} ${c} ip daddr @protected4 meta l4proto { tcp, udp, sctp } th dport ${mp} jump gate_${hook}`,
        `add rule ${t} ${c} ip6 daddr @protected6 meta l4proto { tcp, udp, sctp } th dport ${mp} jump gate_${hook}`,
      );
    } else {
      // Mark before the site's filter chains (priority filter = 0) see the packet.
      chain(c, ` { type filter hook ${hook} priority mangle; policy accept; }`);
      lines.push(`add rule ${t} ${c} jump holes`);
    }
  }
  return lines.join('\n') + '\n';
}

/** Chains the setup creates. */
export function allWantedChains(o: RulesetOptions): string[] {
  const names = o.hooks.map((h) => baseChainName(o.mode, h));
  names.push('holes');
  if (o.mode === 'standalone') for (const h of o.hooks) names.push(`gate_${h}`);
  return names;
}

// ---------------------------------------------------------------------------------------------
// Rules <-> elements

export interface RuleElements {
  readonly set: HoleSet;
  /** Element keys in nft syntax, without timeout or comment. */
  readonly keys: readonly string[];
}

function isHost(p: IpPrefix, family: 4 | 6): boolean {
  return p.prefix === (family === 4 ? 32 : 128);
}

function prefixText(p: IpPrefix | undefined, family: 4 | 6): string {
  if (p === undefined) return family === 4 ? '0.0.0.0/0' : '::/0';
  return isHost(p, family) ? p.address : `${p.address}/${p.prefix}`;
}

/** Why this backend cannot enforce the rule, or undefined. */
export function unsupportedReason(rule: FirewallRule): string | undefined {
  if (rule.action !== 'pass') return `the nftables backend only installs ACTION=pass holes`;
  if (!HOLE_PROTOCOLS.has(rule.proto)) return 'the nftables backend needs PROTO=6, 17 or 132';
  if (rule.dst === undefined) return 'the nftables backend needs DSTIP';
  for (const p of [rule.src, rule.dst]) {
    if (p && (p.address.includes(':') ? 6 : 4) !== rule.family) return 'address family mismatch';
  }
  return undefined;
}

/** The set and element keys that realise a (supported) rule. */
export function ruleElements(rule: FirewallRule): RuleElements {
  const f = rule.family;
  const dst = rule.dst;
  if (dst === undefined) throw new Error('rule without destination');
  const dp = rule.dstPorts ?? [0, 65535];
  const exact =
    isHost(dst, f) &&
    (rule.src === undefined || isHost(rule.src, f)) &&
    rule.srcPorts === undefined &&
    dp[1] - dp[0] < MAX_EXPANDED_PORTS;
  if (exact) {
    const keys: string[] = [];
    const pre = rule.src ? `${rule.src.address} . ` : '';
    for (let p = dp[0]; p <= dp[1]; p++) keys.push(`${pre}${dst.address} . ${rule.proto} . ${p}`);
    const set: HoleSet = rule.src ? (f === 4 ? 'h4sd' : 'h6sd') : f === 4 ? 'h4d' : 'h6d';
    return { set, keys };
  }
  const sp = rule.srcPorts ?? [0, 65535];
  const key = `${prefixText(rule.src, f)} . ${prefixText(dst, f)} . ${rule.proto} . ${sp[0]}-${sp[1]} . ${dp[0]}-${dp[1]}`;
  return { set: f === 4 ? 'w4' : 'w6', keys: [key] };
}

export interface ElementComment {
  readonly owner: string;
  readonly timerSec: number;
  /** Wall-clock expiry in ms since the epoch; undefined = never. */
  readonly expiresAt: number | undefined;
  readonly srcPorts: PortRange | undefined;
  readonly dstPorts: PortRange | undefined;
}

/** `ph1;o=<owner>;t=<timer>;x=<expiry ms>;sp=a-b;dp=a-b` (owner percent-encoded). */
export function encodeComment(c: ElementComment): string {
  let s = `${COMMENT_TAG};o=${encodeURIComponent(c.owner)};t=${c.timerSec}`;
  if (c.expiresAt !== undefined) s += `;x=${Math.round(c.expiresAt)}`;
  if (c.srcPorts) s += `;sp=${c.srcPorts[0]}-${c.srcPorts[1]}`;
  if (c.dstPorts) s += `;dp=${c.dstPorts[0]}-${c.dstPorts[1]}`;
  return s;
}

function parseRange(v: string): PortRange | undefined {
  const m = /^(\d{1,5})-(\d{1,5})$/.exec(v);
  if (!m) return undefined;
  const a = Number(m[1]);
  const b = Number(m[2]);
  return a <= b && b <= 65535 ? [a, b] : undefined;
}

export function decodeComment(text: string): ElementComment | undefined {
  const parts = text.split(';');
  if (parts[0] !== COMMENT_TAG) return undefined;
  let owner: string | undefined;
  let timerSec: number | undefined;
  let expiresAt: number | undefined;
  let srcPorts: PortRange | undefined;
  let dstPorts: PortRange | undefined;
  for (const p of parts.slice(1)) {
    const eq = p.indexOf('=');
    const k = p.slice(0, eq);
    const v = p.slice(eq + 1);
    try {
      if (k === 'o') owner = decodeURIComponent(v);
    } catch {
      return undefined;
    }
    if (k === 't' && /^\d+$/.test(v)) timerSec = Number(v);
    if (k === 'x' && /^\d+$/.test(v)) expiresAt = Number(v);
    if (k === 'sp') srcPorts = parseRange(v);
    if (k === 'dp') dstPorts = parseRange(v);
  }
  if (owner === undefined || timerSec === undefined) return undefined;
  return { owner, timerSec, expiresAt, srcPorts, dstPorts };
}

/** One `add element` body entry: `key timeout 30s comment "..."`. */
export function elementText(key: string, timerSec: number, comment: string): string {
  const timeout = timerSec > 0 ? ` timeout ${timerSec}s` : '';
  return `${key}${timeout} comment "${comment}"`;
}

// ---------------------------------------------------------------------------------------------
// Canonical key (the same text as @pinhole/fcp's canonical PME)

function dotted(prefix: number): string {
  const out: number[] = [];
  for (let i = 0; i < 4; i++) {
    const bits = Math.max(0, Math.min(8, prefix - 8 * i));
    out.push(bits === 0 ? 0 : (0xff << (8 - bits)) & 0xff);
  }
  return out.join('.');
}

function keyPrefix(p: IpPrefix, family: 4 | 6): string {
  if (isHost(p, family)) return p.address;
  return family === 4 ? `${p.address}/${dotted(p.prefix)}` : `${p.address}/${p.prefix}`;
}

function keyPorts(r: PortRange): string {
  return r[0] === r[1] ? String(r[0]) : `${r[0]}-${r[1]}`;
}

/** `PROTO=17; SRCIP=...; DSTIP=...; SRCPORT=...; DSTPORT=...;` as the FCP core spells a rule. */
export function canonicalKey(r: Omit<FirewallRule, 'key'>): string {
  const m: string[] = [];
  if (r.proto !== 0) m.push(`PROTO=${r.proto}`);
  if (r.src && r.src.prefix > 0) m.push(`SRCIP=${keyPrefix(r.src, r.family)}`);
  if (r.dst && r.dst.prefix > 0) m.push(`DSTIP=${keyPrefix(r.dst, r.family)}`);
  const full = (x: PortRange | undefined): boolean => !x || (x[0] === 0 && x[1] === 65535);
  if (!full(r.srcPorts) && r.srcPorts) m.push(`SRCPORT=${keyPorts(r.srcPorts)}`);
  if (!full(r.dstPorts) && r.dstPorts) m.push(`DSTPORT=${keyPorts(r.dstPorts)}`);
  return m.map((x) => `${x};`).join(' ');
}

// ---------------------------------------------------------------------------------------------
// Reading back `nft -j list table`

const PROTO_NAMES: Record<string, number> = { tcp: 6, udp: 17, sctp: 132, dccp: 33, udplite: 136 };

function protoOf(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (typeof v === 'string') return PROTO_NAMES[v] ?? (/^\d+$/.test(v) ? Number(v) : undefined);
  return undefined;
}

function addrOf(v: unknown, family: 4 | 6): IpPrefix | undefined | null {
  const host = family === 4 ? 32 : 128;
  if (typeof v === 'string') return { address: v, prefix: host };
  if (typeof v === 'object' && v !== null && 'prefix' in v) {
    const p = (v as { prefix: { addr?: unknown; len?: unknown } }).prefix;
    if (typeof p.addr !== 'string' || typeof p.len !== 'number') return null;
    return p.len === 0 ? undefined : { address: p.addr, prefix: p.len };
  }
  if (typeof v === 'object' && v !== null && 'range' in v) {
    // pipapo may print a prefix as a range; accept only what is a single address.
    const r = (v as { range: unknown[] }).range;
    if (typeof r[0] === 'string' && r[0] === r[1]) return { address: r[0], prefix: host };
    return null;
  }
  return null;
}

function portsOf(v: unknown): PortRange | undefined | null {
  if (typeof v === 'number') return [v, v];
  if (typeof v === 'object' && v !== null && 'range' in v) {
    const r = (v as { range: unknown[] }).range;
    if (typeof r[0] === 'number' && typeof r[1] === 'number') {
      return r[0] === 0 && r[1] === 65535 ? undefined : [r[0], r[1]];
    }
  }
  return null;
}

export interface ListedElement {
  readonly set: HoleSet;
  /** The shard whose set holds it (0 for the plain set names). */
  readonly shard: number;
  readonly val: unknown;
  /** Seconds left as the kernel reports them; undefined = no timeout. */
  readonly expires: number | undefined;
  readonly comment: string | undefined;
}

/**
 * Extracts the chain and set names and the hole-set elements (of every shard) from
 * `nft -j list table` output.
 */
export function parseListing(json: string): {
  chains: string[];
  sets: string[];
  elements: ListedElement[];
} {
  const doc = JSON.parse(json) as { nftables?: unknown[] };
  const chains: string[] = [];
  const sets: string[] = [];
  const elements: ListedElement[] = [];
  for (const item of doc.nftables ?? []) {
    if (typeof item !== 'object' || item === null) continue;
    if ('chain' in item) {
      const c = (item as { chain: { name?: unknown } }).chain;
      if (typeof c.name === 'string') chains.push(c.name);
    }
    if ('set' in item) {
      const s = (item as { set: { name?: unknown; elem?: unknown[] } }).set;
      if (typeof s.name === 'string') sets.push(s.name);
      const named = typeof s.name === 'string' ? parseSetName(s.name) : undefined;
      if (named === undefined) continue;
      for (const e of s.elem ?? []) {
        if (typeof e !== 'object' || e === null || !('elem' in e)) continue;
        const el = (e as { elem: { val?: unknown; expires?: unknown; comment?: unknown } }).elem;
        elements.push({
          set: named.set,
          shard: named.shard,
          val: el.val,
          expires: typeof el.expires === 'number' ? el.expires : undefined,
          comment: typeof el.comment === 'string' ? el.comment : undefined,
        });
      }
    }
  }
  return { chains, sets, elements };
}

/**
 * Groups listed elements back into rules. Elements without our comment, or that cannot be read,
 * are returned in `foreign` (the backend logs and leaves them: it only removes what it made).
 */
export function adoptElements(
  elements: readonly ListedElement[],
  now: number,
): { rules: InstalledRule[]; foreign: ListedElement[] } {
  const byKey = new Map<string, InstalledRule>();
  const foreign: ListedElement[] = [];
  for (const el of elements) {
    const c = el.comment === undefined ? undefined : decodeComment(el.comment);
    const concat = (el.val as { concat?: unknown[] } | undefined)?.concat;
    if (!c || !Array.isArray(concat)) {
      foreign.push(el);
      continue;
    }
    const family: 4 | 6 = el.set.includes('4') ? 4 : 6;
    let src: IpPrefix | undefined | null;
    let dst: IpPrefix | undefined | null;
    let proto: number | undefined;
    let srcPorts: PortRange | undefined | null = c.srcPorts;
    let dstPorts: PortRange | undefined | null = c.dstPorts;
    if (el.set === 'h4d' || el.set === 'h6d') {
      dst = addrOf(concat[0], family);
      proto = protoOf(concat[1]);
    } else if (el.set === 'h4sd' || el.set === 'h6sd') {
      src = addrOf(concat[0], family);
      dst = addrOf(concat[1], family);
      proto = protoOf(concat[2]);
    } else {
      src = addrOf(concat[0], family);
      dst = addrOf(concat[1], family);
      proto = protoOf(concat[2]);
      srcPorts = portsOf(concat[3]);
      dstPorts = portsOf(concat[4]);
    }
    if (src === null || dst === null || dst === undefined || proto === undefined) {
      foreign.push(el);
      continue;
    }
    if (srcPorts === null || dstPorts === null) {
      foreign.push(el);
      continue;
    }
    const base = { family, proto, src, srcPorts, dst, dstPorts, action: 'pass' as const };
    const key = canonicalKey(base);
    let remainingMs: number | undefined;
    if (el.expires !== undefined) {
      const kernelMs = el.expires * 1000;
      // The comment's absolute expiry is precise to the millisecond; the kernel's listing only
      // to the second. Trust the comment while both agree.
      const fromComment = c.expiresAt === undefined ? undefined : c.expiresAt - now;
      remainingMs =
        fromComment !== undefined && Math.abs(fromComment - kernelMs) <= 1500
          ? Math.max(0, fromComment)
          : kernelMs;
    }
    const prev = byKey.get(key);
    if (prev) {
      // Several elements of one rule (expanded ports): keep the soonest expiry.
      const a = prev.remainingMs;
      if (a !== undefined && remainingMs !== undefined && remainingMs < a) {
        byKey.set(key, { ...prev, remainingMs });
      }
      continue;
    }
    byKey.set(key, {
      rule: { key, ...base },
      meta: { owner: c.owner, timerSec: c.timerSec },
      remainingMs,
    });
  }
  return { rules: [...byKey.values()], foreign };
}
