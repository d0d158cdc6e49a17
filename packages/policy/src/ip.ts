/**
 * IPv4 and IPv6 addresses as bytes, parsed strictly and written canonically, with the prefix
 * arithmetic the zones and the safety checks need. Hand-written so that the policy stays pure and
 * so that every accepted spelling is one we have decided to accept: an SDP `c=` line is peer
 * input, and a lenient parser here would widen a hole.
 */

export type IpFamily = 4 | 6;

/** A parsed address: 4 or 16 bytes, and its canonical text (dotted quad, RFC 5952 for IPv6). */
export interface IpAddress {
  readonly family: IpFamily;
  readonly bytes: Uint8Array;
  readonly text: string;
}

/** A network: address with the host bits cleared, and its prefix length. */
export interface IpNetwork {
  readonly address: IpAddress;
  readonly prefix: number;
}

const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;

function parseDecimalOctet(s: string): number | undefined {
  if (s.length === 0 || s.length > 3) return undefined;
  // A leading zero ("010") is octal to some stacks and decimal to others: refuse it.
  if (s.length > 1 && s.charCodeAt(0) === DIGIT_0) return undefined;
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < DIGIT_0 || c > DIGIT_9) return undefined;
    n = n * 10 + (c - DIGIT_0);
  }
  return n <= 255 ? n : undefined;
}

function parseIpv4Bytes(s: string): Uint8Array | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const n = parseDecimalOctet(parts[i] ?? '');
    if (n === undefined) return undefined;
    out[i] = n;
  }
  return out;
}

function parseHexGroup(s: string): number | undefined {
  if (s.length === 0 || s.length > 4) return undefined;
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const d = parseInt(s[i] ?? '', 16);
    if (Number.isNaN(d)) return undefined;
    n = n * 16 + d;
  }
  return n;
}

function parseIpv6Bytes(input: string): Uint8Array | undefined {
  // Zone identifiers (fe80::1%eth0) name an interface of the sender, meaningless to a firewall.
  if (input.length < 2 || input.length > 45 || input.includes('%')) return undefined;
  const halves = input.split('::');
  if (halves.length > 2) return undefined;
  const parseSide = (side: string): number[] | undefined => {
    if (side === '') return [];
    const groups = side.split(':');
    const out: number[] = [];
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i] ?? '';
      if (i === groups.length - 1 && g.includes('.')) {
        const v4 = parseIpv4Bytes(g);
        if (!v4) return undefined;
        out.push(((v4[0] ?? 0) << 8) | (v4[1] ?? 0), ((v4[2] ?? 0) << 8) | (v4[3] ?? 0));
        continue;
      }
      const n = parseHexGroup(g);
      if (n === undefined) return undefined;
      out.push(n);
    }
    return out;
  };
  const head = parseSide(halves[0] ?? '');
  if (!head) return undefined;
  let groups: number[];
  if (halves.length === 2) {
    const tail = parseSide(halves[1] ?? '');
    if (!tail) return undefined;
    // `::` stands for at least one group of zeros (RFC 4291 §2.2).
    if (head.length + tail.length > 7) return undefined;
    groups = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  } else {
    if (head.length !== 8) return undefined;
    groups = head;
  }
  const out = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    const g = groups[i] ?? 0;
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  }
  return out;
}

function formatIpv4(b: Uint8Array): string {
  return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
}

/** RFC 5952 §4: lower case, no leading zeros, the longest run (≥ 2) of zero groups as `::`. */
function formatIpv6(b: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) groups.push(((b[2 * i] ?? 0) << 8) | (b[2 * i + 1] ?? 0));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (g: number | undefined): string => (g ?? 0).toString(16);
  if (bestLen < 2) return groups.map(hex).join(':');
  const left = groups.slice(0, bestStart).map(hex).join(':');
  const right = groups
    .slice(bestStart + bestLen)
    .map(hex)
    .join(':');
  return `${left}::${right}`;
}

function make(family: IpFamily, bytes: Uint8Array): IpAddress {
  return { family, bytes, text: family === 4 ? formatIpv4(bytes) : formatIpv6(bytes) };
}

/**
 * The address held in 4 (IPv4) or 16 (IPv6) bytes in network order, as a wire format carries it
 * (a HEP address chunk); the bytes are copied. Undefined for any other length.
 */
export function ipFromBytes(bytes: Uint8Array): IpAddress | undefined {
  if (bytes.length === 4) return make(4, Uint8Array.from(bytes));
  if (bytes.length === 16) return make(6, Uint8Array.from(bytes));
  return undefined;
}

/**
 * Parses a textual IPv4 or IPv6 address (brackets around IPv6 allowed). Returns undefined for
 * anything else, including host names, zone identifiers and octets with leading zeros.
 */
export function parseIp(text: string): IpAddress | undefined {
  // Media and signalling addresses repeat across the messages of a call: remember recent ones.
  // Entries are immutable in use (callers never write to `bytes`).
  if (text.length > 64) return undefined; // longer than any address text; don't cache junk
  const hit = CACHE.get(text);
  if (hit !== undefined || CACHE.has(text)) return hit;
  const parsed = parseUncached(text);
  if (CACHE.size >= CACHE_MAX) CACHE.clear();
  CACHE.set(text, parsed);
  return parsed;
}

const CACHE_MAX = 4096;
const CACHE = new Map<string, IpAddress | undefined>();

function parseUncached(text: string): IpAddress | undefined {
  let s = text.trim();
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1);
  if (s.includes(':')) {
    const b = parseIpv6Bytes(s);
    return b ? make(6, b) : undefined;
  }
  const b = parseIpv4Bytes(s);
  return b ? make(4, b) : undefined;
}

function maskBytes(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) {
    const bits = Math.max(0, Math.min(8, prefix - 8 * i));
    const mask = bits === 0 ? 0 : (0xff << (8 - bits)) & 0xff;
    out[i] = (bytes[i] ?? 0) & mask;
  }
  return out;
}

/** `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a host network). */
export function parseNetwork(
  text: string,
): { ok: true; network: IpNetwork } | { ok: false; reason: string } {
  const slash = text.indexOf('/');
  const addrText = slash < 0 ? text : text.slice(0, slash);
  const addr = parseIp(addrText);
  if (!addr) return { ok: false, reason: `"${addrText}" is not an IPv4 or IPv6 address` };
  const max = addr.family === 4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const p = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > max) {
      return { ok: false, reason: `prefix "/${p}" must be 0..${max}` };
    }
    prefix = Number(p);
  }
  const masked = maskBytes(addr.bytes, prefix);
  if (!masked.every((v, i) => v === addr.bytes[i])) {
    return { ok: false, reason: `"${text}" has host bits set (network would be ambiguous)` };
  }
  return { ok: true, network: { address: addr, prefix } };
}

export function inNetwork(addr: IpAddress, net: IpNetwork): boolean {
  if (addr.family !== net.address.family) return false;
  const a = addr.bytes;
  const n = net.address.bytes;
  let bits = net.prefix;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if (((a[i] ?? 0) & mask) !== (n[i] ?? 0)) return false;
  }
  return true;
}

export function sameAddress(a: IpAddress, b: IpAddress): boolean {
  return a.family === b.family && a.text === b.text;
}

/** The network an address belongs to at a prefix length, e.g. a /64 source for an IPv6 host. */
export function networkOf(addr: IpAddress, prefix: number): IpNetwork {
  const bytes = maskBytes(addr.bytes, prefix);
  return { address: make(addr.family, bytes), prefix };
}

/** Lowest and highest address of an IPv4 network (its network and directed-broadcast address). */
export function ipv4Bounds(net: IpNetwork): [IpAddress, IpAddress] | undefined {
  if (net.address.family !== 4) return undefined;
  const low = net.address.bytes;
  const high = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const bits = Math.max(0, Math.min(8, net.prefix - 8 * i));
    const hostMask = bits === 8 ? 0 : 0xff >> bits;
    high[i] = (low[i] ?? 0) | hostMask;
  }
  return [make(4, low), make(4, high)];
}

const SPECIAL = {
  v4Unspecified: mustNet('0.0.0.0/8'),
  v4Loopback: mustNet('127.0.0.0/8'),
  v4LinkLocal: mustNet('169.254.0.0/16'),
  v4Multicast: mustNet('224.0.0.0/4'),
  v4Reserved: mustNet('240.0.0.0/4'),
  v6Unspecified: mustNet('::/128'),
  v6Loopback: mustNet('::1/128'),
  v6Mapped: mustNet('::ffff:0:0/96'),
  v6LinkLocal: mustNet('fe80::/10'),
  v6Multicast: mustNet('ff00::/8'),
} as const;

function mustNet(text: string): IpNetwork {
  const r = parseNetwork(text);
  if (!r.ok) throw new Error(`built-in network ${text}: ${r.reason}`);
  return r.network;
}

/** Why an address can never be a pinhole end, whatever the configuration says. */
export type SpecialAddressKind =
  | 'unspecified'
  | 'loopback'
  | 'multicast'
  | 'broadcast'
  | 'link-local'
  | 'reserved'
  | 'ipv4-mapped';

/**
 * Classifies addresses no hole may ever point at: 0.0.0.0/8 and `::` (unspecified, also the RFC
 * 2543 hold address), loopback, multicast (RFC 3264 multicast streams are not pinholed), the
 * limited broadcast 255.255.255.255 and the rest of 240/4, link-local, and IPv4-mapped IPv6
 * (a v6 rule would never match the v4 packets they stand for).
 */
export function specialAddress(addr: IpAddress): SpecialAddressKind | undefined {
  if (addr.family === 4) {
    if (inNetwork(addr, SPECIAL.v4Unspecified)) return 'unspecified';
    if (inNetwork(addr, SPECIAL.v4Loopback)) return 'loopback';
    if (inNetwork(addr, SPECIAL.v4Multicast)) return 'multicast';
    if (addr.text === '255.255.255.255') return 'broadcast';
    if (inNetwork(addr, SPECIAL.v4Reserved)) return 'reserved';
    if (inNetwork(addr, SPECIAL.v4LinkLocal)) return 'link-local';
    return undefined;
  }
  if (inNetwork(addr, SPECIAL.v6Unspecified)) return 'unspecified';
  if (inNetwork(addr, SPECIAL.v6Loopback)) return 'loopback';
  if (inNetwork(addr, SPECIAL.v6Multicast)) return 'multicast';
  if (inNetwork(addr, SPECIAL.v6Mapped)) return 'ipv4-mapped';
  if (inNetwork(addr, SPECIAL.v6LinkLocal)) return 'link-local';
  return undefined;
}

export function formatNetwork(net: IpNetwork): string {
  return `${net.address.text}/${net.prefix}`;
}
