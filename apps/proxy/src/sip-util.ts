/**
 * Small SIP helpers the proxy core needs around @pinhole/sip: locally generated responses and
 * hop-by-hop requests (CANCEL, ACK for a non-2xx), next-hop resolution, Via received/rport.
 */
import { isIP } from 'node:net';
import type { SipMessage, SipUri, Via } from '@pinhole/sip';
import type { TransportName } from './config.js';

export const MAGIC_COOKIE = 'z9hG4bK';

/** Standard reason phrases for the responses the proxy generates itself. */
const REASONS: Readonly<Record<number, string>> = {
  100: 'Trying',
  200: 'OK',
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  408: 'Request Timeout',
  416: 'Unsupported URI Scheme',
  420: 'Bad Extension',
  423: 'Interval Too Brief',
  480: 'Temporarily Unavailable',
  481: 'Call/Transaction Does Not Exist',
  482: 'Loop Detected',
  483: 'Too Many Hops',
  487: 'Request Terminated',
  500: 'Server Internal Error',
  503: 'Service Unavailable',
  505: 'Version Not Supported',
};

export function reasonPhrase(status: number): string {
  return REASONS[status] ?? 'Unknown';
}

/** A phrase safe for a status line: no CR/LF, bounded. */
function cleanPhrase(p: string): string {
  return p.replace(/[\r\n]+/g, ' ').slice(0, 200);
}

export interface LocalResponseOptions {
  readonly reason?: string;
  /** To-tag to add when the request's To has none (status > 100). */
  readonly toTag?: string;
  readonly headers?: readonly (readonly [string, string])[];
}

/**
 * RFC 3261 §8.2.6.2: a response copies Via (all, in order), From, To, Call-ID and CSeq from the
 * request; a To tag is added to responses other than 100 when the To has none.
 */
export function buildLocalResponse(
  req: SipMessage,
  status: number,
  opts: LocalResponseOptions = {},
): string {
  const lines = [`SIP/2.0 ${status} ${cleanPhrase(opts.reason ?? reasonPhrase(status))}`];
  for (const h of req.headers()) {
    if (h.name === 'via') lines.push(`Via: ${h.value}`);
  }
  const from = req.get('from');
  if (from !== undefined) lines.push(`From: ${from}`);
  let to = req.get('to');
  if (to !== undefined) {
    if (status > 100 && opts.toTag !== undefined && req.to()?.tag === undefined) {
      to = `${to};tag=${opts.toTag}`;
    }
    lines.push(`To: ${to}`);
  }
  const callId = req.get('call-id');
  if (callId !== undefined) lines.push(`Call-ID: ${callId}`);
  const cseq = req.get('cseq');
  if (cseq !== undefined) lines.push(`CSeq: ${cseq}`);
  for (const [n, v] of opts.headers ?? []) lines.push(`${n}: ${v}`);
  lines.push('Server: pinhole-proxy', 'Content-Length: 0', '', '');
  return lines.join('\r\n');
}

/**
 * §9.1: a CANCEL has the Request-URI, Call-ID, To, From, CSeq number and the single Via of the
 * request it cancels, and its Route headers.
 */
export function buildCancel(invite: SipMessage): string {
  return hopRequest('CANCEL', invite, invite.get('to') ?? '');
}

/** §17.1.1.3: the ACK for a non-2xx final response, built by the client transaction. */
export function buildNon2xxAck(invite: SipMessage, response: SipMessage): string {
  return hopRequest('ACK', invite, response.get('to') ?? invite.get('to') ?? '');
}

/** The top Via value as written (the first element of the first Via line). */
export function topViaText(m: SipMessage): string | undefined {
  return m.getAll('via')[0];
}

function hopRequest(method: string, invite: SipMessage, to: string): string {
  const lines = [`${method} ${invite.requestUri} SIP/2.0`];
  const top = topViaText(invite);
  if (top !== undefined) lines.push(`Via: ${top}`);
  for (const h of invite.headers()) if (h.name === 'route') lines.push(`Route: ${h.value}`);
  lines.push(
    `From: ${invite.get('from') ?? ''}`,
    `To: ${to}`,
    `Call-ID: ${invite.get('call-id') ?? ''}`,
    `CSeq: ${invite.cseq()?.seq ?? 1} ${method}`,
    'Max-Forwards: 70',
    'Content-Length: 0',
    '',
    '',
  );
  return lines.join('\r\n');
}

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
 * packet's source address, and fills in an empty `rport`. Returns the new Via value, or
 * undefined when nothing changes.
 */
export function stampVia(
  via: Via,
  rawValue: string,
  address: string,
  port: number,
): string | undefined {
  let raw = rawValue;
  let changed = false;
  if (via.rport === true) {
    raw = raw.replace(/;\s*rport(?=\s*(;|$))/i, `;rport=${port}`);
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

/** A random token for tags. */
export function randomToken(): string {
  return Math.random().toString(36).slice(2, 12);
}
