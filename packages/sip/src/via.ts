/** Via (RFC 3261 §20.42, §25.1 via-parm; RFC 3581 rport; RFC 5118 §4.5 bracketed received). */
import { isDigit, parseDigits } from './bytes.js';
import { SipError, SipErrorCode } from './errors.js';
import { classifyHost, isIpv6, readHost } from './host.js';
import { skipWs, tokenEnd } from './lex.js';
import { readParams } from './params.js';
import type { Via } from './types.js';

class ViaValue implements Via {
  readonly protocol: string;
  readonly transport: string;
  readonly host: string;
  readonly ipv6: boolean;
  readonly port: number | undefined;
  readonly branch: string | undefined;
  readonly received: string | undefined;
  readonly rport: number | true | undefined;
  readonly maddr: string | undefined;
  readonly ttl: number | undefined;
  readonly params: ReadonlyMap<string, string>;
  readonly raw: string;

  constructor(
    protocol: string,
    transport: string,
    host: string,
    ipv6: boolean,
    port: number | undefined,
    params: ReadonlyMap<string, string>,
    received: string | undefined,
    rport: number | true | undefined,
    ttl: number | undefined,
    raw: string,
  ) {
    this.protocol = protocol;
    this.transport = transport;
    this.host = host;
    this.ipv6 = ipv6;
    this.port = port;
    this.params = params;
    this.branch = params.get('branch');
    this.received = received;
    this.rport = rport;
    this.maddr = params.get('maddr');
    this.ttl = ttl;
    this.raw = raw;
  }
}

function bad(text: string, why: string): SipError {
  return new SipError(SipErrorCode.BAD_VIA, `Bad Via (${why}): ${text.slice(0, 80)}`);
}

/**
 * Parses one via-parm (a single element of a Via header; split comma lists first, e.g. with
 * `SipMessage.via()`). Never throws.
 *
 * via-parm = sent-protocol LWS sent-by *( SEMI via-params )
 * sent-protocol = protocol-name SLASH protocol-version SLASH transport
 */
export function parseVia(text: string): Via | SipError {
  const s = text;
  let i = skipWs(s, 0);
  // sent-protocol = protocol-name SLASH protocol-version SLASH transport; SLASH = SWS "/" SWS
  const n0 = i;
  const n1 = tokenEnd(s, n0);
  if (n1 === n0) return bad(s, 'sent-protocol');
  i = skipWs(s, n1);
  if (s.charCodeAt(i) !== 0x2f) return bad(s, 'sent-protocol');
  const v0 = skipWs(s, i + 1);
  const v1 = tokenEnd(s, v0);
  if (v1 === v0) return bad(s, 'sent-protocol');
  i = skipWs(s, v1);
  if (s.charCodeAt(i) !== 0x2f) return bad(s, 'sent-protocol');
  const t0 = skipWs(s, i + 1);
  const t1 = tokenEnd(s, t0);
  if (t1 === t0) return bad(s, 'sent-protocol');
  i = t1;
  const protocol =
    n1 - n0 === 3 && v1 - v0 === 3 && s.startsWith('SIP', n0) && s.startsWith('2.0', v0)
      ? 'SIP/2.0'
      : `${s.slice(n0, n1).toUpperCase()}/${s.slice(v0, v1)}`;
  const transport = s.slice(t0, t1).toUpperCase();
  const afterProto = i;
  i = skipWs(s, i);
  if (i === afterProto) return bad(s, 'missing LWS before sent-by');
  const h = readHost(s, i);
  if (h === undefined) return bad(s, 'sent-by host');
  i = h.end;
  let port: number | undefined;
  let j = skipWs(s, i);
  if (s.charCodeAt(j) === 0x3a) {
    j = skipWs(s, j + 1);
    let k = j;
    while (k < s.length && isDigit(s.charCodeAt(k))) k++;
    const p = parseDigits(s.slice(j, k), 65535);
    if (p < 0) return bad(s, 'sent-by port');
    port = p;
    i = k;
  }
  const pr = readParams(s, i);
  if (pr === undefined) return bad(s, 'parameter');
  if (pr.end !== s.length) return bad(s, 'trailing characters');
  const params = pr.params;

  let received: string | undefined;
  const rv = params.get('received');
  if (rv !== undefined) {
    // RFC 5118 §4.5: accept a bracketed IPv6 received value for robustness.
    const bare = rv.startsWith('[') && rv.endsWith(']') ? rv.slice(1, -1) : rv;
    if (!(isIpv6(bare) || classifyHost(bare) === 'ipv4')) return bad(s, 'received');
    received = bare;
  }
  let rport: number | true | undefined;
  const rp = params.get('rport');
  if (rp !== undefined) {
    if (rp === '') rport = true;
    else {
      const n = parseDigits(rp, 65535);
      if (n < 0) return bad(s, 'rport');
      rport = n;
    }
  }
  let ttl: number | undefined;
  const tv = params.get('ttl');
  if (tv !== undefined) {
    const n = parseDigits(tv, 255);
    if (n < 0) return bad(s, 'ttl');
    ttl = n;
  }
  const maddr = params.get('maddr');
  if (maddr !== undefined && readHost(maddr, 0)?.end !== maddr.length) return bad(s, 'maddr');
  const branch = params.get('branch');
  if (branch !== undefined && branch.length === 0) return bad(s, 'branch');
  return new ViaValue(protocol, transport, h.host, h.ipv6, port, params, received, rport, ttl, s);
}
