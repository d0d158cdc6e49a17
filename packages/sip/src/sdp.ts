/**
 * SDP media endpoints (RFC 4566 / RFC 8866, RFC 3264 offer/answer, RFC 3605 a=rtcp,
 * RFC 5761 a=rtcp-mux). SDP arrives from the peer, so every address and port is validated here:
 * ports are integers 0..65535, addresses valid IPv4/IPv6, or an FQDN kept as written and flagged.
 */
import { Buffer } from 'node:buffer';
import { isIP } from 'node:net';
import * as sdpTransform from 'sdp-transform';
import { SipErrorCode } from './errors.js';
import { classifyHost } from './host.js';
import type { MediaDirection, MediaEndpoint, MediaEndpointsResult } from './types.js';

interface ConnectionLine {
  readonly addressType: 'IP4' | 'IP6';
  readonly address: string;
  readonly fqdn: boolean;
}

type SdpError = { readonly ok: false; readonly error: { code: string; reason: string } };

function sdpError(code: string, reason: string): SdpError {
  return { ok: false, error: { code, reason } };
}

function toText(body: Uint8Array | string): string {
  if (typeof body === 'string') return body;
  return Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8');
}

function splitLines(text: string): string[] {
  const lines = text.split(/\r\n|\n|\r/);
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** Validates a unicast/multicast address of `c=`/`a=rtcp` for its address type. */
function checkAddress(
  addrType: string,
  address: string,
): { address: string; fqdn: boolean } | string {
  // RFC 4566 §5.7: multicast addresses carry "/ttl" (IP4) and "/number" suffixes.
  const base = address.split('/')[0] ?? '';
  const kind = isIP(base);
  if (addrType === 'IP4') {
    if (kind === 4) return { address: base, fqdn: false };
    if (kind === 6) return `IPv6 address ${base} with address type IP4`;
  } else if (addrType === 'IP6') {
    if (kind === 6) return { address: base.toLowerCase(), fqdn: false };
    if (kind === 4) return `IPv4 address ${base} with address type IP6`;
  } else {
    return `unknown address type ${addrType.slice(0, 16)}`;
  }
  if (classifyHost(base) === 'name') return { address: base, fqdn: true };
  return `invalid address ${base.slice(0, 64)}`;
}

/** c=<nettype> <addrtype> <connection-address> */
function parseConnection(value: string): ConnectionLine | string {
  const parts = value.trim().split(/ +/);
  if (parts.length !== 3 || parts[0] !== 'IN') return `malformed c= line`;
  const addressType = parts[1] ?? '';
  const checked = checkAddress(addressType, parts[2] ?? '');
  if (typeof checked === 'string') return checked;
  return {
    addressType: addressType as 'IP4' | 'IP6',
    address: checked.address,
    fqdn: checked.fqdn,
  };
}

function parsePort(text: string): number {
  if (!/^\d{1,5}$/.test(text)) return -1;
  const n = Number(text);
  return n <= 65535 ? n : -1;
}

/** One media section as read from the raw lines. */
interface RawMedia {
  type: string;
  port: number;
  portCount: number;
  protocol: string;
  connection: ConnectionLine | undefined;
}

/** Longest SDP line accepted (real ones are well under 1 KB; a=fingerprint, a=candidate). */
const MAX_SDP_LINE = 4096;

/** The lines handed to sdp-transform: m= lines and the few attributes read from it. */
const SAFE_FOR_TRANSFORM =
  /^(?:m=.*|a=(?:sendrecv|sendonly|recvonly|inactive|rtcp-mux)|a=rtcp:\d{1,5}(?: IN IP[46] [0-9A-Za-z.:-]+)?)$/;

const DIRECTIONS: readonly MediaDirection[] = ['sendrecv', 'sendonly', 'recvonly', 'inactive'];

function isDirection(v: unknown): v is MediaDirection {
  return typeof v === 'string' && (DIRECTIONS as readonly string[]).includes(v);
}

/**
 * Lists, per m-line, where its media goes: connection address (media-level `c=` over
 * session-level), port, port count, protocol, direction (media over session, default
 * sendrecv), `a=rtcp`, `a=rtcp-mux`, and whether the stream is disabled (port 0). Malformed SDP
 * is an error value, never an exception.
 */
export function mediaEndpoints(body: Uint8Array | string): MediaEndpointsResult {
  const text = toText(body);
  const lines = splitLines(text);
  // Bound the work the attribute regexes can be made to do on one peer-supplied line.
  if (lines.some((l) => l.length > MAX_SDP_LINE)) {
    return sdpError(SipErrorCode.BAD_SDP, `SDP line longer than ${MAX_SDP_LINE} characters`);
  }
  const firstLine = lines.find((l) => l.length > 0);
  if (firstLine === undefined || !/^v=0\s*$/.test(firstLine)) {
    return sdpError(SipErrorCode.BAD_SDP, 'SDP must start with v=0');
  }
  let session: sdpTransform.SessionDescription;
  try {
    // sdp-transform reads the attributes used here (direction, a=rtcp, a=rtcp-mux) and the m=
    // structure. It only ever sees those lines, prechecked by linear patterns: several of its
    // grammar regexes backtrack badly on long crafted lines of other attributes.
    session = sdpTransform.parse(lines.filter((l) => SAFE_FOR_TRANSFORM.test(l)).join('\r\n'));
  } catch (cause) {
    return sdpError(SipErrorCode.BAD_SDP, `unparseable SDP: ${String(cause).slice(0, 80)}`);
  }
  let sessionConnection: ConnectionLine | undefined;
  const raw: RawMedia[] = [];
  for (const line of lines) {
    if (line.length === 0) continue;
    if (line.length < 2 || line.charCodeAt(1) !== 0x3d) {
      return sdpError(SipErrorCode.BAD_SDP, `malformed SDP line: ${line.slice(0, 40)}`);
    }
    const type = line.charAt(0);
    const value = line.slice(2);
    if (type === 'm') {
      // m=<media> <port>[/<number of ports>] <proto> <fmt> ...
      const parts = value.split(' ');
      if (parts.length < 3) return sdpError(SipErrorCode.BAD_SDP, 'malformed m= line');
      const [portText = '', countText] = (parts[1] ?? '').split('/');
      const port = parsePort(portText);
      if (port < 0) {
        return sdpError(SipErrorCode.BAD_SDP_PORT, `bad m= port ${portText.slice(0, 16)}`);
      }
      let portCount = 1;
      if (countText !== undefined) {
        portCount = parsePort(countText);
        if (portCount < 1 || port + portCount > 65536) {
          return sdpError(SipErrorCode.BAD_SDP_PORT, 'bad m= port count');
        }
      }
      const protocol = parts[2] ?? '';
      if (protocol.length === 0 || (parts[0] ?? '').length === 0) {
        return sdpError(SipErrorCode.BAD_SDP, 'malformed m= line');
      }
      raw.push({ type: parts[0] ?? '', port, portCount, protocol, connection: undefined });
    } else if (type === 'c') {
      const c = parseConnection(value);
      if (typeof c === 'string') return sdpError(SipErrorCode.BAD_SDP_ADDRESS, c);
      const current = raw[raw.length - 1];
      if (current === undefined) sessionConnection ??= c;
      else current.connection ??= c;
    }
  }
  const parsedMedia = session.media;
  if (parsedMedia.length !== raw.length) {
    return sdpError(SipErrorCode.BAD_SDP, 'inconsistent m= lines');
  }
  const sessionDirection = isDirection(session.direction) ? session.direction : undefined;
  const media: MediaEndpoint[] = [];
  for (let index = 0; index < raw.length; index++) {
    const r = raw[index] as RawMedia;
    const m = parsedMedia[index] as (typeof parsedMedia)[number];
    const conn = r.connection ?? sessionConnection;
    let rtcp: MediaEndpoint['rtcp'];
    if (m.rtcp !== undefined) {
      const port = m.rtcp.port as unknown;
      if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) {
        return sdpError(SipErrorCode.BAD_SDP_PORT, 'bad a=rtcp port');
      }
      let address: string | undefined;
      if (m.rtcp.address !== undefined) {
        const ipVer = m.rtcp.ipVer as unknown;
        const checked = checkAddress(`IP${String(ipVer)}`, String(m.rtcp.address));
        if (typeof checked === 'string') return sdpError(SipErrorCode.BAD_SDP_ADDRESS, checked);
        address = checked.address;
      }
      rtcp = { port, address };
    }
    media.push({
      index,
      type: r.type,
      address: conn?.address,
      addressType: conn?.addressType,
      fqdn: conn?.fqdn ?? false,
      port: r.port,
      portCount: r.portCount,
      protocol: r.protocol,
      direction: isDirection(m.direction) ? m.direction : (sessionDirection ?? 'sendrecv'),
      rtcp,
      rtcpMux: m.rtcpMux !== undefined,
      disabled: r.port === 0,
    });
  }
  return { ok: true, media };
}

/** Edits for `rewriteSdp`. */
export interface SdpEdits {
  /** New address for every `c=` line (session and media level). IP4/IP6 follows the address. */
  readonly address?: string;
  /** Also rewrite the `o=` line's unicast address to `address` (default false). */
  readonly origin?: boolean;
  /** Per m-line edits, by m-line index. */
  readonly media?: readonly {
    readonly index: number;
    /** New m= port (the `/count` suffix and the rest of the line are kept). */
    readonly port?: number;
    /** Media-level connection address; a `c=` line is added when the section has none. */
    readonly address?: string;
    /** New `a=rtcp` port (only when the section has an `a=rtcp` line). */
    readonly rtcpPort?: number;
  }[];
}

export type RewriteSdpResult =
  | { readonly ok: true; readonly body: Buffer }
  | { readonly ok: false; readonly error: { readonly code: string; readonly reason: string } };

function connectionFor(address: string): string | undefined {
  const kind = isIP(address);
  if (kind === 4) return `IN IP4 ${address}`;
  if (kind === 6) return `IN IP6 ${address}`;
  return undefined;
}

/**
 * Rewrites connection addresses and ports line by line, keeping every other line as it was
 * (line endings are written in the body's style: CRLF when it has any, else LF). Addresses must be IP literals and ports 0..65535; the
 * input must itself be valid for `mediaEndpoints`.
 */
export function rewriteSdp(body: Uint8Array | string, edits: SdpEdits): RewriteSdpResult {
  const before = mediaEndpoints(body);
  if (!before.ok) return before;
  const text = toText(body);
  const eol = text.includes('\r\n') ? '\r\n' : '\n';
  const lines = text.split(/\r\n|\n/);
  const trailing = lines.length > 0 && lines[lines.length - 1] === '';
  if (trailing) lines.pop();
  const globalConn = edits.address === undefined ? undefined : connectionFor(edits.address);
  if (edits.address !== undefined && globalConn === undefined) {
    return sdpError(SipErrorCode.BAD_SDP_ADDRESS, `not an IP address: ${edits.address}`);
  }
  const perMedia = new Map<number, NonNullable<SdpEdits['media']>[number]>();
  for (const e of edits.media ?? []) {
    for (const p of [e.port, e.rtcpPort]) {
      if (p !== undefined && !(Number.isInteger(p) && p >= 0 && p <= 65535)) {
        return sdpError(SipErrorCode.BAD_SDP_PORT, `bad port ${String(p)}`);
      }
    }
    if (e.address !== undefined && connectionFor(e.address) === undefined) {
      return sdpError(SipErrorCode.BAD_SDP_ADDRESS, `not an IP address: ${e.address}`);
    }
    if (e.index < 0 || e.index >= before.media.length) {
      return sdpError(SipErrorCode.BAD_SDP, `no m-line ${e.index}`);
    }
    perMedia.set(e.index, e);
  }
  const out: string[] = [];
  let mIndex = -1;
  let sectionHasC = false;
  const flushMissingC = (): void => {
    const e = perMedia.get(mIndex);
    if (mIndex >= 0 && !sectionHasC && e?.address !== undefined) {
      // c= goes after m= and i= (RFC 4566 §5 field order); insert right after those.
      let at = out.length;
      while (
        at > 0 &&
        !(out[at - 1] ?? '').startsWith('m=') &&
        !(out[at - 1] ?? '').startsWith('i=')
      )
        at--;
      out.splice(at, 0, `c=${connectionFor(e.address) ?? ''}`);
    }
  };
  for (const line of lines) {
    if (line.startsWith('m=')) {
      flushMissingC();
      mIndex++;
      sectionHasC = false;
      const e = perMedia.get(mIndex);
      if (e?.port !== undefined) {
        const parts = line.slice(2).split(' ');
        const [, count] = (parts[1] ?? '').split('/');
        parts[1] = count === undefined ? String(e.port) : `${e.port}/${count}`;
        out.push(`m=${parts.join(' ')}`);
        continue;
      }
    } else if (line.startsWith('c=')) {
      const e = mIndex >= 0 ? perMedia.get(mIndex) : undefined;
      if (mIndex >= 0) sectionHasC = true;
      if (e?.address !== undefined) {
        out.push(`c=${connectionFor(e.address) ?? ''}`);
        continue;
      }
      if (globalConn !== undefined) {
        out.push(`c=${globalConn}`);
        continue;
      }
    } else if (line.startsWith('o=') && edits.origin === true && globalConn !== undefined) {
      const parts = line.slice(2).split(' ');
      if (parts.length === 6) {
        const conn = globalConn.split(' ');
        parts[4] = conn[1] ?? '';
        parts[5] = conn[2] ?? '';
        out.push(`o=${parts.join(' ')}`);
        continue;
      }
    } else if (line.startsWith('a=rtcp:') && mIndex >= 0) {
      const e = perMedia.get(mIndex);
      if (e?.rtcpPort !== undefined) {
        out.push(line.replace(/^a=rtcp:\d+/, `a=rtcp:${e.rtcpPort}`));
        continue;
      }
    }
    out.push(line);
  }
  flushMissingC();
  const result = out.join(eol) + (trailing ? eol : '');
  const check = mediaEndpoints(result);
  if (!check.ok) return check;
  return { ok: true, body: Buffer.from(result, 'utf8') };
}
