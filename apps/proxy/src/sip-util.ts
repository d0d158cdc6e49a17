/**
 * Small SIP helpers the proxy core needs around @pinhole/sip and @pinhole/transaction:
 * next-hop resolution, Via received/rport, hashes for loop detection and stateless
 * branches.
 */
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import type { SipMessage, SipUri, Via } from '@pinhole/sip';
import type { TransportName } from './config.js';

/** A next hop: transport, address (maybe a name to resolve) and port. */
export interface NextHop {
  readonly transport: TransportName;
  readonly host: string;
  readonly port: number;
}

/** RFC 3263 without DNS SRV/NAPTR: `transport` parameter, `maddr`, port or 5060. */
export function nextHopOf(uri: SipUri, fallback: TransportName = 'udp'): NextHop | undefined {
  if (uri.scheme !== 'sip' && uri.scheme !== 'sips') return undefined;
  const t = uri.params.get('transport')?.toLowerCase();
  const transport: TransportName = t === 'tcp' ? 'tcp' : t === 'udp' ? 'udp' : fallback;
  const maddr = uri.params.get('maddr');
  const host = maddr !== undefined && isIP(maddr) !== 0 ? maddr : uri.host;
  return { transport, host, port: uri.port ?? 5060 };
}

/** Where a response goes by its (next) Via, RFC 3261 §18.2.2 with RFC 3581 rport. */
export function responseTarget(via: Via): NextHop {
  const transport: TransportName = via.transport === 'TCP' ? 'tcp' : 'udp';
  const host = via.received ?? via.host;
  const port = typeof via.rport === 'number' ? via.rport : (via.port ?? 5060);
  return { transport, host, port };
}

/**
 * §18.2.1 and RFC 3581 §4: the server adds `received` when the sent-by host differs from the
 * packet's source address, and fills in an empty `rport`. With `forceRport` (datagrams), an
 * `rport` is added when the source port differs from the sent-by port, so that responses go
 * back to where the request came from even from a client behind NAT that did not ask for it
 * (Kamailio's `force_rport`). Returns the new Via value, or undefined when nothing changes.
 */
export function stampVia(
  via: Via,
  rawValue: string,
  address: string,
  port: number,
  forceRport = false,
): string | undefined {
  let raw = rawValue;
  let changed = false;
  if (via.rport === true) {
    raw = raw.replace(/;\s*rport(?=\s*(;|$))/i, `;rport=${port}`);
    changed = true;
  } else if (forceRport && via.rport === undefined && (via.port ?? 5060) !== port) {
    raw = `${raw};rport=${port}`;
    changed = true;
  }
  if (via.host !== address && via.received === undefined) {
    raw = `${raw};received=${address}`;
    changed = true;
  }
  return changed ? raw : undefined;
}

/** 32-bit FNV-1a over strings, hex. Used for loop detection and stateless branches. */
export function fnv1a(parts: readonly (string | undefined)[]): string {
  let h = 0x811c9dc5;
  for (const p of parts) {
    const s = p ?? '';
    for (let i = 0; i < s.length; i++) {
      h ^= s.charCodeAt(i);
      h = Math.imul(h, 0x01000193) >>> 0;
    }
    h ^= 0x7c;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, '0');
}

/** Host text for a URI or Via: IPv6 in brackets. */
export function hostText(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/** A random token for branches of requests the proxy originates (hang-up BYE). */
export function randomToken(): string {
  return randomBytes(6).toString('hex');
}

/** The top Via value as written (the first element of the first Via line). */
export function topViaText(m: SipMessage): string | undefined {
  return m.getAll('via')[0];
}
