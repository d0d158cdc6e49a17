/**
 * mediaEndpoints reads direction, a=rtcp and a=rtcp-mux itself; it used sdp-transform for them.
 * The earlier implementation is kept here, unchanged, as the reference: on generated bodies (the
 * attribute lines in every position, exact and near-miss spellings, stray U+2028, ports in and
 * out of range and non-canonical), both must give the same result, errors included.
 */
import fc from 'fast-check';
import { Buffer } from 'node:buffer';
import { isIP } from 'node:net';
import * as sdpTransform from 'sdp-transform';
import { describe, expect, it } from 'vitest';
import { SipErrorCode } from './errors.js';
import { classifyHost } from './host.js';
import { mediaEndpoints } from './sdp.js';
import type { MediaDirection, MediaEndpoint, MediaEndpointsResult } from './types.js';

// ---- the earlier implementation (sdp-transform for the attributes), verbatim ----------------

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
function referenceMediaEndpoints(body: Uint8Array | string): MediaEndpointsResult {
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

// ---- the comparison ---------------------------------------------------------------------------

const line = fc.oneof(
  { arbitrary: fc.constantFrom('a=sendrecv', 'a=sendonly', 'a=recvonly', 'a=inactive'), weight: 4 },
  {
    arbitrary: fc.constantFrom('a=rtcp-mux', 'a=rtcp-mux ', 'a=rtcp-muxx', 'a=rtcp-rsize'),
    weight: 2,
  },
  {
    arbitrary: fc
      .tuple(
        fc.constantFrom('5005', '05005', '0', '65535', '65536', '99999', '123456', '', 'x'),
        fc.constantFrom(
          '',
          '',
          ' IN IP4 198.18.0.11',
          ' IN IP6 2001:db8::1',
          ' IN IP4 2001:db8::1',
          ' IN IP6 198.18.0.1',
          ' IN IP4 media.example.com',
          ' IN IP4 1234',
          ' IN IP5 198.18.0.1',
          ' IN IP4 198.18.0.1 x',
          ' IN IP4',
        ),
      )
      .map(([p, a]) => `a=rtcp:${p}${a}`),
    weight: 4,
  },
  {
    arbitrary: fc.constantFrom('a=sendrecv ', 'a=SENDRECV', 'a=rtpmap:0 PCMU/8000', 'a=ptime:20'),
    weight: 2,
  },
  { arbitrary: fc.constantFrom('c=IN IP4 198.18.0.20', 'c=IN IP6 2001:db8::2', 'i=x'), weight: 2 },
  {
    arbitrary: fc.constantFrom(
      'm=audio 49170 RTP/AVP 0',
      'm=video 0 RTP/AVP 31',
      'm=audio 50000/2 RTP/SAVP 8',
      'm=audio 4000 RTP/AVP 0\u2028',
      'm=image 6000 udptl t38',
    ),
    weight: 3,
  },
);
const body = fc
  .tuple(fc.array(line, { maxLength: 12 }), fc.constantFrom('\r\n', '\n', '\r'))
  .map(
    ([ls, eol]) =>
      ['v=0', 'o=- 1 1 IN IP4 198.18.0.10', 's=-', 'c=IN IP4 198.18.0.10', 't=0 0', ...ls].join(
        eol,
      ) + eol,
  );

describe('mediaEndpoints without sdp-transform', () => {
  it('gives what the sdp-transform implementation gave', () => {
    let ok = 0;
    let failed = 0;
    fc.assert(
      fc.property(body, (sdp) => {
        const got = mediaEndpoints(sdp);
        expect(got).toEqual(referenceMediaEndpoints(sdp));
        if (got.ok && got.media.length > 0) ok++;
        else if (!got.ok) failed++;
      }),
      { numRuns: 4000 },
    );
    expect(ok).toBeGreaterThan(200);
    expect(failed).toBeGreaterThan(200);
  }, 120_000);
});
