/**
 * name-addr / addr-spec values: From, To, Contact, Route, Record-Route (RFC 3261 §20.10, §20.20,
 * §20.39, §20.30, §20.34, §25.1).
 */
import { DQUOTE, LAQUOT, RAQUOT, SEMI, TOKEN, UINT32_MAX, isAlpha, parseDigits } from './bytes.js';
import { SipError, SipErrorCode, isSipError } from './errors.js';
import { readQuoted, skipWs, skipWsBack } from './lex.js';
import { readParams } from './params.js';
import type { Contact, NameAddr, SipUri } from './types.js';
import { malformedUri, parseUri } from './uri.js';

class NameAddrValue implements Contact {
  readonly displayName: string | undefined;
  #uri: SipUri | undefined;
  readonly #uriText: string;
  readonly params: ReadonlyMap<string, string>;
  readonly tag: string | undefined;
  readonly raw: string;
  readonly expires: number | undefined;
  readonly q: number | undefined;

  constructor(
    displayName: string | undefined,
    uri: SipUri | undefined,
    uriText: string,
    params: ReadonlyMap<string, string>,
    raw: string,
    expires: number | undefined,
    q: number | undefined,
  ) {
    this.displayName = displayName;
    this.#uri = uri;
    this.#uriText = uriText;
    this.params = params;
    this.tag = params.get('tag');
    this.raw = raw;
    this.expires = expires;
    this.q = q;
  }

  /** The URI, parsed on first access when the value was read lazily (From/To accessors). */
  get uri(): SipUri {
    if (this.#uri === undefined) {
      const u = parseUri(this.#uriText);
      this.#uri = isSipError(u) ? malformedUri(this.#uriText) : u;
    }
    return this.#uri;
  }
}

function bad(text: string, why: string): SipError {
  return new SipError(SipErrorCode.BAD_NAME_ADDR, `Bad address (${why}): ${text.slice(0, 80)}`);
}

/**
 * Parses one name-addr or addr-spec with its header parameters:
 * `( name-addr / addr-spec ) *( SEMI param )`. In the addr-spec form (no `<>`) the URI ends at
 * the first `;` (those parameters belong to the header, RFC 3261 §20) and must not contain `?`
 * or `,`. Never throws.
 */
export function parseNameAddr(text: string): NameAddr | SipError {
  return parseAddress(text, false);
}

/**
 * Like parseNameAddr, but the URI is only checked for its outline (a scheme, no whitespace or
 * controls) and parsed on first access of `.uri`: a proxy reading From/To tags never pays for
 * it. A URI that then fails to parse reads as `{ malformed: true }` with an empty host;
 * `validate()` checks From and To fully.
 */
export function parseNameAddrLazy(text: string): NameAddr | SipError {
  return parseAddress(text, true);
}

function uriOutlineOk(u: string): boolean {
  if (u.length < 2 || !isAlpha(u.charCodeAt(0))) return false;
  let colon = false;
  for (let i = 1; i < u.length; i++) {
    const c = u.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f) return false;
    if (c === 0x3a) colon = true;
  }
  return colon;
}

function parseAddress(text: string, lazyUri: boolean): NameAddrValue | SipError {
  const s = text;
  let i = skipWs(s, 0);
  const end = skipWsBack(s, s.length, i);
  if (i >= end) return bad(s, 'empty');
  let displayName: string | undefined;
  let uriText: string;
  const c0 = s.charCodeAt(i);
  if (c0 === DQUOTE) {
    const q = readQuoted(s, i);
    if (q === undefined) return bad(s, 'unterminated quoted display name');
    displayName = q.text;
    i = skipWs(s, q.end);
    if (s.charCodeAt(i) !== LAQUOT) return bad(s, 'expected < after display name');
  } else if (c0 !== LAQUOT) {
    // Either display-name tokens followed by "<", or a bare addr-spec.
    const lt = s.indexOf('<', i);
    if (lt !== -1) {
      // display-name = *(token LWS) / quoted-string; RFC 4475 §3.1.1.6 allows no LWS before "<".
      const dn = s.slice(i, skipWsBack(s, lt, i));
      let oddSpace = false;
      for (let k = 0; k < dn.length; k++) {
        const c = dn.charCodeAt(k);
        if (c === 0x20) {
          if (dn.charCodeAt(k + 1) === 0x20) oddSpace = true;
          continue;
        }
        if (c === 0x09 || c === 0x0d || c === 0x0a) {
          oddSpace = true;
          continue;
        }
        if (c > 0x7f || TOKEN[c] !== 1) return bad(s, 'display name is not a token list');
      }
      displayName = oddSpace ? dn.replace(/\s+/g, ' ') : dn;
      i = lt;
    }
  }
  if (s.charCodeAt(i) === LAQUOT) {
    const gt = s.indexOf('>', i + 1);
    if (gt === -1) return bad(s, 'missing >');
    uriText = s.slice(i + 1, gt);
    // LAQUOT = SWS "<" and RAQUOT = ">" SWS: no whitespace inside the brackets.
    if (uriText.length === 0) return bad(s, 'empty <>');
    i = gt + 1;
  } else {
    // addr-spec: the URI runs to the first ";" or whitespace.
    let j = i;
    while (j < end) {
      const c = s.charCodeAt(j);
      if (c === SEMI || c === 0x20 || c === 0x09) break;
      if (c === 0x3f || c === 0x2c || c === RAQUOT) return bad(s, 'addr-spec needs <> for ?,>');
      j++;
    }
    uriText = s.slice(i, j);
    i = j;
  }
  let uri: SipUri | undefined;
  if (lazyUri) {
    if (!uriOutlineOk(uriText)) return bad(s, 'URI');
  } else {
    const u = parseUri(uriText);
    if (isSipError(u)) return bad(s, u.message);
    uri = u;
  }
  const pr = readParams(s, i);
  if (pr === undefined) return bad(s, 'parameter');
  if (skipWs(s, pr.end) !== s.length) return bad(s, 'trailing characters');
  const params = pr.params;
  let expires: number | undefined;
  const ex = params.get('expires');
  if (ex !== undefined) {
    const n = parseDigits(ex, UINT32_MAX);
    if (n < 0) return bad(s, 'expires');
    expires = n;
  }
  let q: number | undefined;
  const qv = params.get('q');
  if (qv !== undefined) {
    const n = parseQ(qv);
    if (n === undefined) return bad(s, 'q');
    q = n;
  }
  return new NameAddrValue(
    displayName,
    uri,
    uriText,
    params,
    s.slice(skipWs(s, 0), end),
    expires,
    q,
  );
}

/** qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ) */
function parseQ(v: string): number | undefined {
  if (!/^[01](\.\d{0,3})?$/.test(v)) return undefined;
  const n = Number(v);
  if (!(n >= 0 && n <= 1)) return undefined;
  return n;
}

/** Parses one Contact element (not `*`). */
export function parseContact(text: string): Contact | SipError {
  return parseAddress(text, false);
}
