/**
 * The packet-matching expression (PME) and its canonical form, which is a rule's identity.
 *
 * [S16] "all FCP-maintained rules are uniquely identified by packet-matching expressions
 * (regardless if their elements are specified explicitly or by a default value)". Spec §6 #10:
 * canonicalise before comparing. The canonical form used here (the identity function):
 * - a member equal to its default is absent: `PROTO=0`, `SRCIP=0.0.0.0/0.0.0.0`, a port range
 *   `0-65535`, `TCPSYNALLOWED=yes` (no restriction) all mean "not given";
 * - a host mask is no mask (`a/255.255.255.255` = `a`), host bits are cleared
 *   (`10.0.0.5/255.255.255.0` = `10.0.0.0/255.255.255.0`);
 * - `p-p` is `p`; numbers have no leading zeros; IPv6 is RFC 5952 text;
 * - members are written in a fixed order, upper-case names, `; ` after each.
 * `TOSFLD` absent (any TOS) and `TOSFLD=0` (TOS byte 0) stay different: they match different packets.
 */
import type { FirewallRule, IpPrefix, PortRange } from './backend.js';
import { FcpError, FcpErrorCode } from './errors.js';
import {
  formatPrefix,
  fromIpPrefix,
  maxPrefix,
  parsePrefix,
  toIpPrefix,
  type ParsedPrefix,
} from './ip.js';

export type FcpInterface = 'in' | 'out' | 'dmz' | 'loopback';
export type FcpAction = 'pass' | 'drop' | 'reject';

export interface IcmpType {
  readonly type: number;
  readonly code?: number | undefined;
}

/** A canonical PME. Every member is optional; absent = matches anything. */
export interface Pme {
  readonly proto?: number | undefined;
  readonly src?: ParsedPrefix | undefined;
  readonly dst?: ParsedPrefix | undefined;
  readonly srcPorts?: PortRange | undefined;
  readonly dstPorts?: PortRange | undefined;
  readonly tos?: number | undefined;
  /** Only `false` is stored: `true` means "no restriction", the default. */
  readonly tcpSynAllowed?: false | undefined;
  readonly icmpType?: IcmpType | undefined;
  readonly inInterface?: FcpInterface | undefined;
  readonly outInterface?: FcpInterface | undefined;
}

/** Set options (the SOPT line). */
export interface SetOptions {
  /** Absent ACTION is stored as such (spec §6 #11); the client always sends one. */
  readonly action?: FcpAction | undefined;
  /** Seconds; 0 = never expires. Absent: the server's default (60) or, on refresh, the current. */
  readonly timer?: number | undefined;
  readonly reflexive?: boolean | undefined;
  readonly priorityClass?: number | undefined;
  readonly log?: number | undefined;
  /** Packet modifier: `ACTION=pass, TOSFLD=n`. */
  readonly tosModifier?: number | undefined;
  /** `ACTION=reject ICMPMESSAGE=type[:code]`. */
  readonly icmpMessage?: IcmpType | undefined;
}

/** Protocols whose PME may carry ports (spec §2.7 allows 6 and 17; SCTP 132 added). */
export const PORT_PROTOCOLS: ReadonlySet<number> = new Set([6, 17, 132]);
/** ICMP (1) and ICMPv6 (58, IPv6 extension) may carry ICMPTYPE. */
export const ICMP_PROTOCOLS: ReadonlySet<number> = new Set([1, 58]);

function canonicalPorts(r: PortRange | undefined): PortRange | undefined {
  if (!r) return undefined;
  if (r[0] === 0 && r[1] === 65535) return undefined;
  return [r[0], r[1]];
}

function canonicalAddr(p: ParsedPrefix | undefined): ParsedPrefix | undefined {
  return p && p.prefix === 0 ? undefined : p;
}

/**
 * Checks the cross-member constraints and returns the canonical PME, or an error text (400).
 */
export function canonicalPme(p: Pme): Pme | string {
  const proto = p.proto === 0 ? undefined : p.proto;
  const src = canonicalAddr(p.src);
  const dst = canonicalAddr(p.dst);
  const srcPorts = canonicalPorts(p.srcPorts);
  const dstPorts = canonicalPorts(p.dstPorts);
  if (src && dst && src.family !== dst.family) return 'SRCIP and DSTIP are of different families';
  if ((p.srcPorts || p.dstPorts) && (proto === undefined || !PORT_PROTOCOLS.has(proto))) {
    return 'SRCPORT or DSTPORT only makes sense with PROTO=6, 17 or 132';
  }
  for (const r of [p.srcPorts, p.dstPorts]) {
    if (r && (r[0] > r[1] || r[0] < 0 || r[1] > 65535)) return 'invalid port range';
  }
  if (p.icmpType && (proto === undefined || !ICMP_PROTOCOLS.has(proto))) {
    return 'ICMPTYPE only makes sense with PROTO=1 (or 58)';
  }
  if (p.tcpSynAllowed === false && proto !== 6)
    return 'TCPSYNALLOWED only makes sense with PROTO=6';
  if (p.inInterface && p.inInterface === p.outInterface) {
    return 'ININTERFACE and OUTINTERFACE must differ';
  }
  // Only present members become properties: smaller objects for 100,000 live rules.
  const out: { -readonly [K in keyof Pme]: Pme[K] } = {};
  if (proto !== undefined) out.proto = proto;
  if (src) out.src = src;
  if (dst) out.dst = dst;
  if (srcPorts) out.srcPorts = srcPorts;
  if (dstPorts) out.dstPorts = dstPorts;
  if (p.tos !== undefined) out.tos = p.tos;
  if (p.tcpSynAllowed === false) out.tcpSynAllowed = false;
  if (p.icmpType) out.icmpType = p.icmpType;
  if (p.inInterface) out.inInterface = p.inInterface;
  if (p.outInterface) out.outInterface = p.outInterface;
  return out;
}

function fmtPorts(r: PortRange): string {
  return r[0] === r[1] ? String(r[0]) : `${r[0]}-${r[1]}`;
}

function fmtIcmp(t: IcmpType): string {
  return t.code === undefined ? String(t.type) : `${t.type}:${t.code}`;
}

/** The PME members in canonical order as `NAME=value` strings. */
export function pmeMembers(p: Pme): string[] {
  const out: string[] = [];
  if (p.proto !== undefined) out.push(`PROTO=${p.proto}`);
  if (p.src) out.push(`SRCIP=${formatPrefix(p.src)}`);
  if (p.dst) out.push(`DSTIP=${formatPrefix(p.dst)}`);
  if (p.srcPorts) out.push(`SRCPORT=${fmtPorts(p.srcPorts)}`);
  if (p.dstPorts) out.push(`DSTPORT=${fmtPorts(p.dstPorts)}`);
  if (p.tos !== undefined) out.push(`TOSFLD=${p.tos}`);
  if (p.tcpSynAllowed === false) out.push('TCPSYNALLOWED=no');
  if (p.icmpType) out.push(`ICMPTYPE=${fmtIcmp(p.icmpType)}`);
  if (p.inInterface) out.push(`ININTERFACE=${p.inInterface}`);
  if (p.outInterface) out.push(`OUTINTERFACE=${p.outInterface}`);
  return out;
}

/**
 * The identity of a rule: the canonical PME text, e.g.
 * `PROTO=17; DSTIP=198.18.0.2; DSTPORT=40000-40001;`. The empty PME is ``.
 * Input must already be canonical (from the codec or `canonicalPme`).
 */
export function pmeKey(p: Pme): string {
  // Same text as pmeMembers(p).map((m) => `${m};`).join(' '), with one array. join() gives a
  // flat string: the key is stored in maps for every live rule, where a concatenation rope
  // would cost memory (measured: +300 B per rule).
  const parts: string[] = [];
  if (p.proto !== undefined) parts.push(`PROTO=${p.proto};`);
  if (p.src) parts.push(`SRCIP=${formatPrefix(p.src)};`);
  if (p.dst) parts.push(`DSTIP=${formatPrefix(p.dst)};`);
  if (p.srcPorts) parts.push(`SRCPORT=${fmtPorts(p.srcPorts)};`);
  if (p.dstPorts) parts.push(`DSTPORT=${fmtPorts(p.dstPorts)};`);
  if (p.tos !== undefined) parts.push(`TOSFLD=${p.tos};`);
  if (p.tcpSynAllowed === false) parts.push('TCPSYNALLOWED=no;');
  if (p.icmpType) parts.push(`ICMPTYPE=${fmtIcmp(p.icmpType)};`);
  if (p.inInterface) parts.push(`ININTERFACE=${p.inInterface};`);
  if (p.outInterface) parts.push(`OUTINTERFACE=${p.outInterface};`);
  return parts.join(' ');
}

export function formatSetOptions(o: SetOptions): string[] {
  const out: string[] = [];
  if (o.action) {
    let a = `ACTION=${o.action}`;
    if (o.action === 'pass' && o.tosModifier !== undefined) a += `, TOSFLD=${o.tosModifier}`;
    if (o.action === 'reject' && o.icmpMessage) a += ` ICMPMESSAGE=${fmtIcmp(o.icmpMessage)}`;
    out.push(a);
  }
  if (o.timer !== undefined) out.push(`TIMER=${o.timer}`);
  if (o.reflexive !== undefined) out.push(`REFLEXIVE=${o.reflexive ? 'yes' : 'no'}`);
  if (o.priorityClass !== undefined) out.push(`PRIORITYCLASS=${o.priorityClass}`);
  if (o.log !== undefined) out.push(`LOG=${o.log}`);
  return out;
}

/** Members of the PME that FirewallRule cannot carry (the server answers 501 for them). */
export function inexpressibleMembers(p: Pme): string[] {
  const out: string[] = [];
  if (p.tos !== undefined) out.push('TOSFLD');
  if (p.tcpSynAllowed === false) out.push('TCPSYNALLOWED');
  if (p.icmpType) out.push('ICMPTYPE');
  if (p.inInterface) out.push('ININTERFACE');
  if (p.outInterface) out.push('OUTINTERFACE');
  return out;
}

export function pmeFamily(p: Pme): 4 | 6 {
  return p.dst?.family ?? p.src?.family ?? 4;
}

/** The backend's view of a rule. `key` is `pmeKey(p)` when the caller has it already. */
export function toFirewallRule(
  p: Pme,
  action: FcpAction | undefined,
  key: string = pmeKey(p),
): FirewallRule {
  return {
    key,
    family: pmeFamily(p),
    proto: p.proto ?? 0,
    src: p.src ? toIpPrefix(p.src) : undefined,
    srcPorts: p.srcPorts,
    dst: p.dst ? toIpPrefix(p.dst) : undefined,
    dstPorts: p.dstPorts,
    action: action ?? 'none',
  };
}

/** Rebuilds a PME from a backend rule (rules adopted at start); undefined if malformed. */
export function fromFirewallRule(r: FirewallRule): Pme | undefined {
  const conv = (x: IpPrefix | undefined): ParsedPrefix | undefined | null =>
    x === undefined ? undefined : (fromIpPrefix(x) ?? null);
  const src = conv(r.src);
  const dst = conv(r.dst);
  if (src === null || dst === null) return undefined;
  const c = canonicalPme({
    proto: r.proto,
    src,
    dst,
    srcPorts: r.srcPorts,
    dstPorts: r.dstPorts,
  });
  return typeof c === 'string' ? undefined : c;
}

/** A friendlier PME for programs: `{ proto: 'udp', dst: '198.18.0.2', dstPort: [40000, 40001] }`. */
export interface PmeInput {
  readonly proto?: number | 'tcp' | 'udp' | 'icmp' | 'sctp' | undefined;
  /** `a.b.c.d`, `a.b.c.d/len`, `a.b.c.d/m.m.m.m`, IPv6 `addr[/len]`. */
  readonly src?: string | undefined;
  readonly dst?: string | undefined;
  readonly srcPort?: number | PortRange | undefined;
  readonly dstPort?: number | PortRange | undefined;
  readonly tos?: number | undefined;
  readonly tcpSynAllowed?: boolean | undefined;
  readonly icmpType?: IcmpType | undefined;
}

const PROTO_NAMES = { tcp: 6, udp: 17, icmp: 1, sctp: 132 } as const;

function inputRange(name: string, v: number | PortRange | undefined): PortRange | undefined {
  if (v === undefined) return undefined;
  const r: PortRange = typeof v === 'number' ? [v, v] : v;
  if (!r.every((n) => Number.isInteger(n) && n >= 0 && n <= 65535) || r[0] > r[1]) {
    throw new FcpError(FcpErrorCode.INVALID_ARGUMENT, `${name}: invalid port range`);
  }
  return [r[0], r[1]];
}

function inputPrefix(name: string, v: string | undefined): ParsedPrefix | undefined {
  if (v === undefined) return undefined;
  const p = parsePrefix(v);
  if (typeof p === 'string') throw new FcpError(FcpErrorCode.INVALID_ARGUMENT, `${name}: ${p}`);
  return p;
}

function byteArg(name: string, v: number | undefined): number | undefined {
  if (v !== undefined && !(Number.isInteger(v) && v >= 0 && v <= 255)) {
    throw new FcpError(FcpErrorCode.INVALID_ARGUMENT, `${name}: must be 0..255`);
  }
  return v;
}

/** Converts and canonicalises a `PmeInput`; throws `FCP_ERR_INVALID_ARGUMENT` when invalid. */
export function toPme(input: PmeInput): Pme {
  let proto: number | undefined;
  if (typeof input.proto === 'string') {
    proto = (PROTO_NAMES as Record<string, number | undefined>)[input.proto];
    if (proto === undefined) {
      throw new FcpError(FcpErrorCode.INVALID_ARGUMENT, `proto: unknown protocol name`);
    }
  } else {
    proto = byteArg('proto', input.proto);
  }
  if (input.icmpType) {
    byteArg('icmpType.type', input.icmpType.type);
    byteArg('icmpType.code', input.icmpType.code);
  }
  const c = canonicalPme({
    proto,
    src: inputPrefix('src', input.src),
    dst: inputPrefix('dst', input.dst),
    srcPorts: inputRange('srcPort', input.srcPort),
    dstPorts: inputRange('dstPort', input.dstPort),
    tos: byteArg('tos', input.tos),
    tcpSynAllowed: input.tcpSynAllowed === false ? false : undefined,
    icmpType: input.icmpType,
  });
  if (typeof c === 'string') throw new FcpError(FcpErrorCode.INVALID_ARGUMENT, c);
  return c;
}

/** True if every member present in `filter` equals the rule's (spec §5.1 QUERY matching). */
export function pmeMatches(filter: Pme, rule: Pme): boolean {
  const eqPrefix = (a: ParsedPrefix | undefined, b: ParsedPrefix | undefined): boolean =>
    a === undefined || (b !== undefined && formatPrefix(a) === formatPrefix(b));
  const eqRange = (a: PortRange | undefined, b: PortRange | undefined): boolean =>
    a === undefined || (b !== undefined && a[0] === b[0] && a[1] === b[1]);
  return (
    (filter.proto === undefined || filter.proto === rule.proto) &&
    eqPrefix(filter.src, rule.src) &&
    eqPrefix(filter.dst, rule.dst) &&
    eqRange(filter.srcPorts, rule.srcPorts) &&
    eqRange(filter.dstPorts, rule.dstPorts) &&
    (filter.tos === undefined || filter.tos === rule.tos) &&
    (filter.tcpSynAllowed === undefined || filter.tcpSynAllowed === rule.tcpSynAllowed) &&
    (filter.icmpType === undefined ||
      (rule.icmpType !== undefined &&
        filter.icmpType.type === rule.icmpType.type &&
        filter.icmpType.code === rule.icmpType.code)) &&
    (filter.inInterface === undefined || filter.inInterface === rule.inInterface) &&
    (filter.outInterface === undefined || filter.outInterface === rule.outInterface)
  );
}

export { maxPrefix };
