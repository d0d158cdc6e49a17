/**
 * IPv4 and IPv6 addresses and prefixes as byte arrays (4 or 16 bytes). Strict parsers: decimal
 * IPv4 octets without leading zeros (`010.0.0.1` would be octal to inet_aton; refuse rather than
 * guess), textual IPv6 without zone ids. Output is canonical: dotted decimal, RFC 5952 IPv6.
 */
import type { IpPrefix } from './backend.js';

export interface IpBytes {
  readonly family: 4 | 6;
  /** 4 or 16 octets (plain numbers: far smaller in memory than a typed array). */
  readonly bytes: readonly number[];
}

export interface ParsedPrefix extends IpBytes {
  /** 0..32 or 0..128. Host bits of `bytes` are zero. */
  readonly prefix: number;
}

const DOT = 0x2e;
const ZERO = 0x30;
const NINE = 0x39;

export function parseIpv4(text: string): number[] | undefined {
  const out = [0, 0, 0, 0];
  let octet = 0;
  let value = 0;
  let digits = 0;
  let leadingZero = false;
  for (let i = 0; i <= text.length; i++) {
    const c = i === text.length ? DOT : text.charCodeAt(i);
    if (c === DOT) {
      if (digits === 0 || octet > 3 || (leadingZero && digits > 1)) return undefined;
      out[octet++] = value;
      value = 0;
      digits = 0;
      continue;
    }
    if (c < ZERO || c > NINE) return undefined;
    if (digits === 0) leadingZero = c === ZERO;
    value = value * 10 + (c - ZERO);
    digits++;
    if (value > 255) return undefined;
  }
  return octet === 4 ? out : undefined;
}

function parseHextet(text: string): number | undefined {
  if (text.length === 0 || text.length > 4) return undefined;
  let v = 0;
  for (let i = 0; i < text.length; i++) {
    const d = Number.parseInt(text[i] ?? '', 16);
    if (Number.isNaN(d)) return undefined;
    v = v * 16 + d;
  }
  return v;
}

export function parseIpv6(text: string): number[] | undefined {
  if (text.length < 2 || text.length > 45 || text.includes('%')) return undefined;
  const dbl = text.indexOf('::');
  if (dbl !== -1 && text.indexOf('::', dbl + 1) !== -1) return undefined;
  const parts = (s: string): string[] => (s === '' ? [] : s.split(':'));
  const head = dbl === -1 ? parts(text) : parts(text.slice(0, dbl));
  const tail = dbl === -1 ? [] : parts(text.slice(dbl + 2));
  const words: number[] = [];
  const toWords = (list: string[], isLastGroup: boolean): number[] | undefined => {
    const res: number[] = [];
    for (let i = 0; i < list.length; i++) {
      const p = list[i] ?? '';
      if (isLastGroup && i === list.length - 1 && p.includes('.')) {
        const v4 = parseIpv4(p);
        if (!v4) return undefined;
        res.push(((v4[0] ?? 0) << 8) | (v4[1] ?? 0), ((v4[2] ?? 0) << 8) | (v4[3] ?? 0));
        continue;
      }
      const h = parseHextet(p);
      if (h === undefined) return undefined;
      res.push(h);
    }
    return res;
  };
  const h = toWords(head, dbl === -1);
  const t = toWords(tail, true);
  if (!h || !t) return undefined;
  if (dbl === -1) {
    if (h.length !== 8) return undefined;
    words.push(...h);
  } else {
    if (h.length + t.length > 7) return undefined;
    words.push(...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t);
  }
  const out = new Array<number>(16).fill(0);
  for (let i = 0; i < 8; i++) {
    const w = words[i] ?? 0;
    out[2 * i] = w >> 8;
    out[2 * i + 1] = w & 0xff;
  }
  return out;
}

/** Parses an IPv4 or IPv6 address (IPv4-mapped IPv6 stays IPv6; see `normalizeClientAddress`). */
export function parseAddress(text: string): IpBytes | undefined {
  const v4 = parseIpv4(text);
  if (v4) return { family: 4, bytes: v4 };
  const v6 = parseIpv6(text);
  if (v6) return { family: 6, bytes: v6 };
  return undefined;
}

export function formatAddress(ip: IpBytes): string {
  const b = ip.bytes;
  if (ip.family === 4) return [b[0], b[1], b[2], b[3]].join('.'); // join: a flat string
  const words: number[] = [];
  for (let i = 0; i < 8; i++) words.push(((b[2 * i] ?? 0) << 8) | (b[2 * i + 1] ?? 0));
  // RFC 5952 §4.2: compress the longest run (first if tied) of two or more zero words.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (ws: number[]): string => ws.map((w) => w.toString(16)).join(':');
  if (bestStart === -1) return hex(words);
  return `${hex(words.slice(0, bestStart))}::${hex(words.slice(bestStart + bestLen))}`;
}

/** Number of leading one bits of a contiguous dotted mask, or undefined if not contiguous. */
export function maskLength(mask: readonly number[]): number | undefined {
  let len = 0;
  let seenZero = false;
  for (const byte of mask) {
    for (let bit = 7; bit >= 0; bit--) {
      if ((byte >> bit) & 1) {
        if (seenZero) return undefined;
        len++;
      } else seenZero = true;
    }
  }
  return len;
}

export function maskBytes(family: 4 | 6, prefix: number): number[] {
  const out = new Array<number>(family === 4 ? 4 : 16).fill(0);
  for (let i = 0; i < out.length; i++) {
    const bits = Math.max(0, Math.min(8, prefix - 8 * i));
    out[i] = bits === 0 ? 0 : (0xff << (8 - bits)) & 0xff;
  }
  return out;
}

/** Clears the host bits. */
export function applyPrefix(ip: IpBytes, prefix: number): ParsedPrefix {
  const mask = maskBytes(ip.family, prefix);
  const bytes = new Array<number>(ip.bytes.length).fill(0);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (ip.bytes[i] ?? 0) & (mask[i] ?? 0);
  return { family: ip.family, bytes, prefix };
}

export function maxPrefix(family: 4 | 6): number {
  return family === 4 ? 32 : 128;
}

/**
 * Parses `addr`, `addr/len` or (IPv4) `addr/dotted-mask`. Returns an error text when invalid.
 * Host bits are cleared (they match nothing extra: `10.0.0.5/255.255.255.0` is `10.0.0.0/24`).
 */
export function parsePrefix(text: string): ParsedPrefix | string {
  const slash = text.indexOf('/');
  const addrText = slash === -1 ? text : text.slice(0, slash);
  const ip = parseAddress(addrText);
  if (!ip) return `invalid IP address "${addrText}"`;
  // A literal of one shape (no spread): this runs for every address of every request.
  if (slash === -1) return { family: ip.family, bytes: ip.bytes, prefix: maxPrefix(ip.family) };
  const maskText = text.slice(slash + 1);
  let len: number | undefined;
  if (/^\d{1,3}$/.test(maskText)) {
    len = Number(maskText);
    if (len > maxPrefix(ip.family)) return `prefix length ${maskText} out of range`;
  } else if (ip.family === 4) {
    const mask = parseIpv4(maskText);
    if (!mask) return `invalid netmask "${maskText}"`;
    len = maskLength(mask);
    if (len === undefined) return `netmask ${maskText} is not contiguous`;
  } else {
    return `invalid IPv6 prefix length "${maskText}"`;
  }
  return applyPrefix(ip, len);
}

/** True if `inner` lies entirely inside `outer`. */
export function prefixContains(outer: ParsedPrefix, inner: ParsedPrefix): boolean {
  if (outer.family !== inner.family || inner.prefix < outer.prefix) return false;
  const masked = applyPrefix(inner, outer.prefix);
  for (let i = 0; i < masked.bytes.length; i++) {
    if (masked.bytes[i] !== outer.bytes[i]) return false;
  }
  return true;
}

/** True if the two prefixes share at least one address. */
export function prefixOverlaps(a: ParsedPrefix, b: ParsedPrefix): boolean {
  return prefixContains(a, b) || prefixContains(b, a);
}

export function toIpPrefix(p: ParsedPrefix): IpPrefix {
  return { address: formatAddress(p), prefix: p.prefix };
}

export function fromIpPrefix(p: IpPrefix): ParsedPrefix | undefined {
  const ip = parseAddress(p.address);
  if (!ip || !Number.isInteger(p.prefix) || p.prefix < 0 || p.prefix > maxPrefix(ip.family)) {
    return undefined;
  }
  return applyPrefix(ip, p.prefix);
}

/** Formats a prefix: host prefixes as bare addresses, IPv4 masks dotted, IPv6 `/len`. */
export function formatPrefix(p: ParsedPrefix): string {
  const addr = formatAddress(p);
  if (p.prefix === maxPrefix(p.family)) return addr;
  if (p.family === 4)
    return `${addr}/${formatAddress({ family: 4, bytes: maskBytes(4, p.prefix) })}`;
  return `${addr}/${p.prefix}`;
}

/** `::ffff:a.b.c.d` (how dual-stack sockets report IPv4 peers) becomes `a.b.c.d`. */
export function normalizeClientAddress(address: string): string {
  const lower = address.toLowerCase();
  if (lower.startsWith('::ffff:') && parseIpv4(lower.slice(7))) return lower.slice(7);
  const ip = parseAddress(lower);
  return ip ? formatAddress(ip) : address;
}
