/** SIP, SIPS and tel URIs (RFC 3261 §19.1, §25.1; RFC 3966 kept liberal). */
import {
  HNVCHAR,
  PARAMCHAR,
  PASSWORD,
  SCHEMECHAR,
  TELCHAR,
  USER,
  isAlpha,
  isDigit,
} from './bytes.js';
import { SipError, SipErrorCode } from './errors.js';
import { readHost } from './host.js';
import { unescapeOnce } from './lex.js';
import type { SipUri } from './types.js';

const EMPTY: ReadonlyMap<string, string> = new Map();

class Uri implements SipUri {
  readonly scheme: string;
  readonly user: string | undefined;
  readonly rawUser: string | undefined;
  readonly password: string | undefined;
  readonly host: string;
  readonly ipv6: boolean;
  readonly port: number | undefined;
  readonly params: ReadonlyMap<string, string>;
  readonly headers: ReadonlyMap<string, string>;
  readonly raw: string;
  readonly malformed?: boolean;

  constructor(
    scheme: string,
    user: string | undefined,
    rawUser: string | undefined,
    password: string | undefined,
    host: string,
    ipv6: boolean,
    port: number | undefined,
    params: ReadonlyMap<string, string>,
    headers: ReadonlyMap<string, string>,
    raw: string,
  ) {
    this.scheme = scheme;
    this.user = user;
    this.rawUser = rawUser;
    this.password = password;
    this.host = host;
    this.ipv6 = ipv6;
    this.port = port;
    this.params = params;
    this.headers = headers;
    this.raw = raw;
  }

  toString(): string {
    return this.raw;
  }
}

/** Stand-in for a URI that failed to parse where a value had to be returned (lazy From/To). */
export function malformedUri(text: string): SipUri {
  const colon = text.indexOf(':');
  const scheme = colon > 0 ? text.slice(0, colon).toLowerCase() : '';
  return Object.assign(
    new Uri(scheme, undefined, undefined, undefined, '', false, undefined, EMPTY, EMPTY, text),
    { malformed: true },
  );
}

function bad(text: string, why: string): SipError {
  return new SipError(SipErrorCode.BAD_URI, `Bad URI (${why}): ${text.slice(0, 80)}`);
}

/** Checks that s[start..end) holds only `allowed` characters or %HH escapes. */
function charsOk(s: string, start: number, end: number, allowed: Uint8Array): boolean {
  for (let i = start; i < end; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x25) {
      if (!isHex(s.charCodeAt(i + 1)) || !isHex(s.charCodeAt(i + 2)) || i + 2 >= end) return false;
      i += 2;
    } else if (c > 0x7f || allowed[c] !== 1) return false;
  }
  return true;
}

function isHex(c: number): boolean {
  return isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

/**
 * Parses `;name[=value]` URI parameters from `i` until `?` or the end. Names and values are
 * %-decoded once; names are lower-cased.
 */
function readUriParams(
  s: string,
  i: number,
): { params: ReadonlyMap<string, string>; end: number } | undefined {
  if (i >= s.length || s.charCodeAt(i) !== 0x3b) return { params: EMPTY, end: i };
  const params = new Map<string, string>();
  while (i < s.length && s.charCodeAt(i) === 0x3b) {
    let j = i + 1;
    while (j < s.length) {
      const c = s.charCodeAt(j);
      if (c === 0x3b || c === 0x3f || c === 0x3d) break;
      j++;
    }
    if (j === i + 1 || !charsOk(s, i + 1, j, PARAMCHAR)) return undefined;
    const name = unescapeOnce(s.slice(i + 1, j));
    if (name === undefined) return undefined;
    let value = '';
    if (s.charCodeAt(j) === 0x3d) {
      let k = j + 1;
      while (k < s.length) {
        const c = s.charCodeAt(k);
        if (c === 0x3b || c === 0x3f) break;
        k++;
      }
      if (k === j + 1 || !charsOk(s, j + 1, k, PARAMCHAR)) return undefined;
      const v = unescapeOnce(s.slice(j + 1, k));
      if (v === undefined) return undefined;
      value = v;
      j = k;
    }
    params.set(name.toLowerCase(), value);
    i = j;
  }
  return { params, end: i };
}

function readUriHeaders(
  s: string,
  i: number,
): { headers: ReadonlyMap<string, string>; end: number } | undefined {
  if (s.charCodeAt(i) !== 0x3f) return { headers: EMPTY, end: i };
  const headers = new Map<string, string>();
  const parts = s.slice(i + 1).split('&');
  for (const part of parts) {
    const eq = part.indexOf('=');
    if (eq <= 0) return undefined;
    if (!charsOk(part, 0, eq, HNVCHAR) || !charsOk(part, eq + 1, part.length, HNVCHAR)) {
      return undefined;
    }
    const name = unescapeOnce(part.slice(0, eq));
    const value = unescapeOnce(part.slice(eq + 1));
    if (name === undefined || value === undefined) return undefined;
    headers.set(name, value);
  }
  return { headers, end: s.length };
}

/**
 * Parses a URI. `sip:`/`sips:` are parsed fully (user with escapes decoded once, password, host,
 * IPv6 reference, port, parameters, headers); `tel:` gives the number as `user` and its
 * parameters; any other scheme is kept opaque (scheme and `raw` only). Never throws.
 */
export function parseUri(text: string): SipUri | SipError {
  const s = text;
  if (s.length === 0) return bad(s, 'empty');
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f) return bad(s, 'whitespace or non-ASCII character');
  }
  if (!isAlpha(s.charCodeAt(0))) return bad(s, 'scheme');
  let i = 1;
  while (i < s.length && SCHEMECHAR[s.charCodeAt(i)] === 1) i++;
  if (s.charCodeAt(i) !== 0x3a) return bad(s, 'scheme');
  const scheme = s.slice(0, i).toLowerCase();
  i++;
  if (scheme === 'sip' || scheme === 'sips') return parseSip(s, scheme, i);
  if (scheme === 'tel') return parseTel(s, i);
  if (i >= s.length) return bad(s, 'empty opaque part');
  return new Uri(scheme, undefined, undefined, undefined, '', false, undefined, EMPTY, EMPTY, s);
}

function parseSip(s: string, scheme: string, i: number): SipUri | SipError {
  let user: string | undefined;
  let rawUser: string | undefined;
  let password: string | undefined;
  const at = s.indexOf('@', i);
  if (at !== -1) {
    let colon = s.indexOf(':', i);
    if (colon > at) colon = -1;
    const userEnd = colon === -1 ? at : colon;
    if (userEnd === i || !charsOk(s, i, userEnd, USER)) return bad(s, 'user');
    rawUser = s.slice(i, userEnd);
    user = unescapeOnce(rawUser);
    if (user === undefined) return bad(s, 'user escape');
    if (colon !== -1) {
      if (!charsOk(s, colon + 1, at, PASSWORD)) return bad(s, 'password');
      password = unescapeOnce(s.slice(colon + 1, at));
      if (password === undefined) return bad(s, 'password escape');
    }
    i = at + 1;
  }
  const h = readHost(s, i);
  if (h === undefined) return bad(s, 'host');
  i = h.end;
  let port: number | undefined;
  if (s.charCodeAt(i) === 0x3a) {
    let j = i + 1;
    let n = 0;
    while (j < s.length && isDigit(s.charCodeAt(j)) && j - i <= 6) {
      n = n * 10 + s.charCodeAt(j) - 0x30;
      j++;
    }
    if (j === i + 1 || n > 65535) return bad(s, 'port');
    port = n;
    i = j;
  }
  const p = readUriParams(s, i);
  if (p === undefined) return bad(s, 'parameters');
  const hd = readUriHeaders(s, p.end);
  if (hd === undefined) return bad(s, 'headers');
  if (hd.end !== s.length) return bad(s, 'trailing characters');
  return new Uri(scheme, user, rawUser, password, h.host, h.ipv6, port, p.params, hd.headers, s);
}

function parseTel(s: string, i: number): SipUri | SipError {
  let j = i;
  while (j < s.length && s.charCodeAt(j) !== 0x3b) j++;
  if (j === i || !charsOk(s, i, j, TELCHAR)) return bad(s, 'telephone-subscriber');
  const rawUser = s.slice(i, j);
  const user = unescapeOnce(rawUser);
  if (user === undefined) return bad(s, 'telephone-subscriber escape');
  const p = readUriParams(s, j);
  if (p === undefined || p.end !== s.length) return bad(s, 'parameters');
  return new Uri('tel', user, rawUser, undefined, '', false, undefined, p.params, EMPTY, s);
}
