/** Host syntax (RFC 3261 §25.1 host / hostport, RFC 5118 IPv6 references). */
import { isIP } from 'node:net';
import { HOSTCHAR, isDigit } from './bytes.js';

export type HostKind = 'name' | 'ipv4' | 'ipv6';

/** Classifies a host written without brackets; undefined when it is not a valid host. */
export function classifyHost(host: string): HostKind | undefined {
  if (host.length === 0 || host.length > 255) return undefined;
  let allDigitsAndDots = true;
  for (let i = 0; i < host.length; i++) {
    const c = host.charCodeAt(i);
    if (c > 0x7f || HOSTCHAR[c] !== 1) return undefined;
    if (!isDigit(c) && c !== 0x2e) allDigitsAndDots = false;
  }
  if (allDigitsAndDots) return isIP(host) === 4 ? 'ipv4' : undefined;
  // domainlabel = alphanum / alphanum *( alphanum / "-" ) alphanum; a trailing dot is allowed.
  const labels = host.endsWith('.') ? host.slice(0, -1).split('.') : host.split('.');
  for (const label of labels) {
    if (label.length === 0 || label.length > 63) return undefined;
    if (label.startsWith('-') || label.endsWith('-')) return undefined;
  }
  return 'name';
}

/** True when `text` (without brackets) is an IPv6 address. */
export function isIpv6(text: string): boolean {
  return isIP(text) === 6;
}

/**
 * Reads a host at `i` of `s`: an IPv6 reference `[...]` or a run of host characters.
 * Returns the host without brackets, whether it was bracketed, and the end index.
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
  let j = i;
  while (j < s.length) {
    const c = s.charCodeAt(j);
    if (c > 0x7f || HOSTCHAR[c] !== 1) break;
    j++;
  }
  const host = s.slice(i, j);
  if (classifyHost(host) === undefined) return undefined;
  return { host: host.toLowerCase(), ipv6: false, end: j };
}
