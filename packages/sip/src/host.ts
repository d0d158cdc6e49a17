/** Host syntax (RFC 3261 §25.1 host / hostport, RFC 5118 IPv6 references). */
import { isIP } from 'node:net';
import { HOSTCHAR } from './bytes.js';

export type HostKind = 'name' | 'ipv4' | 'ipv6';

/** True when `s` is a dotted-quad IPv4 address (no leading-zero ambiguity beyond RFC 3261 §25.1). */
export function isIpv4(s: string): boolean {
  let octets = 0;
  let digits = 0;
  let value = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x2e) {
      if (digits === 0) return false;
      octets++;
      digits = 0;
      value = 0;
    } else if (c >= 0x30 && c <= 0x39) {
      value = value * 10 + (c - 0x30);
      if (++digits > 3 || value > 255) return false;
    } else return false;
  }
  return digits > 0 && octets === 3;
}

/**
 * Scans a host name / IPv4 address at `s[i..]` in one pass. Returns the end index (exclusive)
 * and sets `scratch` flags; -1 when the characters there do not form a valid host.
 * domainlabel = alphanum / alphanum *( alphanum / "-" ) alphanum, labels of at most 63
 * characters, a trailing dot allowed, "_" tolerated; an all-numeric name must be IPv4.
 */
function scanHostName(s: string, i: number, scratch: { upper: boolean; numeric: boolean }): number {
  let allNumeric = true;
  let upper = false;
  let labelLen = 0;
  let prev = 0x2e;
  let j = i;
  for (; j < s.length; j++) {
    const c = s.charCodeAt(j);
    if (c === 0x2e) {
      if (labelLen === 0 || prev === 0x2d) return -1;
      labelLen = 0;
    } else {
      if (c > 0x7f || HOSTCHAR[c] !== 1) break;
      if (labelLen === 0 && c === 0x2d) return -1;
      if (++labelLen > 63) return -1;
      if (c < 0x30 || c > 0x39) {
        allNumeric = false;
        if (c >= 0x41 && c <= 0x5a) upper = true;
      }
    }
    prev = c;
  }
  const n = j - i;
  if (n === 0 || n > 255 || prev === 0x2d || (prev === 0x2e && n === 1)) return -1;
  scratch.upper = upper;
  scratch.numeric = allNumeric;
  return j;
}

const scratch = { upper: false, numeric: false };

/** Classifies a host written without brackets; undefined when it is not a valid host. */
export function classifyHost(host: string): HostKind | undefined {
  const end = scanHostName(host, 0, scratch);
  if (end !== host.length) return undefined;
  if (scratch.numeric) return isIpv4(host) ? 'ipv4' : undefined;
  return 'name';
}

/** True when `text` (without brackets) is an IPv6 address. */
export function isIpv6(text: string): boolean {
  return isIP(text) === 6;
}

/**
 * Reads a host at `i` of `s`: an IPv6 reference `[...]` or a host name / IPv4 address.
 * Returns the host (lower case, without brackets), whether it was bracketed, and the end index.
 */
export function readHost(
  s: string,
  i: number,
): { host: string; ipv6: boolean; end: number } | undefined {
  if (s.charCodeAt(i) === 0x5b) {
    const close = s.indexOf(']', i + 1);
    if (close === -1) return undefined;
    const inner = s.slice(i + 1, close);
    if (!isIpv6(inner)) return undefined;
    return { host: inner.toLowerCase(), ipv6: true, end: close + 1 };
  }
  const j = scanHostName(s, i, scratch);
  if (j < 0) return undefined;
  const host = s.slice(i, j);
  if (scratch.numeric && !isIpv4(host)) return undefined;
  return { host: scratch.upper ? host.toLowerCase() : host, ipv6: false, end: j };
}
