/**
 * Byte-level fast paths for what a proxy reads on every message: the top Via (its branch), the
 * From/To tag, the CSeq. Each scanner accepts a deliberately narrow, common subset of the grammar
 * directly on the message bytes and answers -1 ("use the full parser") on anything else:
 * quotes in odd places, escapes, whitespace inside the value, IPv6 references, `maddr`, `q`,
 * `expires`, non-ASCII bytes, and so on. It never rejects on its own, so whenever it accepts,
 * the full string parser accepts too and reads the same values (property-tested against the full
 * parsers in fast.test.ts). Only the values asked for are decoded; every other field of the
 * returned objects comes from the full parser, run on first access.
 */
import {
  HOSTCHAR,
  PARAMCHAR as PARAMCHAR_TABLE,
  TOKEN as TOKEN_TABLE,
  UINT32_MAX,
  USER as USER_TABLE,
  decodeLatin1,
} from './bytes.js';
import { SipError, SipErrorCode, isSipError } from './errors.js';
import { parseNameAddrLazy } from './name-addr.js';
import type { CSeq, NameAddr, SipUri, Via } from './types.js';
import { parseVia } from './via.js';

const DQUOTE = 0x22;
const SEMI = 0x3b;
const COMMA = 0x2c;
const EQUAL = 0x3d;
const COLON = 0x3a;
const LAQUOT = 0x3c;
const RAQUOT = 0x3e;
const SP = 0x20;
const HT = 0x09;
const BACKSLASH = 0x5c;

// Module-local names for what the scanners use on every call: an imported or exported binding
// is a module cell, read with a hole check at every use (the inlined token loops of one Via scan
// read TOKEN a dozen times); a local constant is not.
const TOKEN: Uint8Array = TOKEN_TABLE;
const result = { start: -1, end: -1 };

/** Where the scanners leave the range of the value they were asked for (start -1: absent). */
export const found: { start: number; end: number } = result;

/**
 * Case-insensitive comparison of `buf[s..e)` with a lower-case name of letters only: `| 0x20`
 * maps exactly "A".."Z" and "a".."z" onto "a".."z" (no other byte lands there).
 */
function nameIs(buf: Uint8Array, s: number, e: number, name: string): boolean {
  if (e - s !== name.length) return false;
  for (let i = 0; i < name.length; i++) {
    if (((buf[s + i] as number) | 0x20) !== name.charCodeAt(i)) return false;
  }
  return true;
}

function tokenEndB(buf: Uint8Array, i: number, e: number): number {
  const token = TOKEN; // a local: not reloaded per byte
  while (i < e && token[buf[i] as number] === 1) i++;
  return i;
}

/** Digits at `buf[s..e)` as a number when there are 1..maxDigits of them; -1 otherwise. */
function smallNumber(buf: Uint8Array, s: number, e: number, maxDigits: number): number {
  if (e <= s || e - s > maxDigits) return -1;
  let n = 0;
  for (let i = s; i < e; i++) {
    const c = buf[i] as number;
    if (c < 0x30 || c > 0x39) return -1;
    n = n * 10 + (c - 0x30);
  }
  return n;
}

/** host.ts isIpv4 on bytes. */
function isIpv4B(buf: Uint8Array, s: number, e: number): boolean {
  let octets = 0;
  let digits = 0;
  let value = 0;
  for (let i = s; i < e; i++) {
    const c = buf[i] as number;
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
 * Host bytes by class, one table read a byte: 0 not a host character, 1 digit, 2 letter or "_",
 * 3 "-", 4 ".".
 */
const HOST_CLASS: Uint8Array = (() => {
  const t = new Uint8Array(256);
  for (let c = 0; c < 256; c++) {
    if (HOSTCHAR[c] !== 1) continue;
    t[c] = c >= 0x30 && c <= 0x39 ? 1 : c === 0x2d ? 3 : c === 0x2e ? 4 : 2;
  }
  return t;
})();

/**
 * host.ts scanHostName on bytes (host name or IPv4 address): the end of the host, or -1 when it
 * is not one the full parser would accept. Each label is checked when it ends (non-empty, at
 * most 63 bytes, no "-" first or last), so the per-byte work is one table read.
 */
function hostEndB(buf: Uint8Array, i: number, e: number): number {
  const cls = HOST_CLASS;
  let nonDigit = 0;
  let label = i;
  let j = i;
  for (; j < e; j++) {
    const k = cls[buf[j] as number] as number;
    if (k === 0) break;
    if (k === 4) {
      const n = j - label;
      if (n === 0 || n > 63 || buf[label] === 0x2d || buf[j - 1] === 0x2d) return -1;
      label = j + 1;
    } else nonDigit |= k >>> 1;
  }
  const n = j - i;
  if (n === 0 || n > 255) return -1;
  const last = buf[j - 1] as number;
  if (last === 0x2d || (last === 0x2e && n === 1)) return -1;
  if (j - label > 63 || (j > label && buf[label] === 0x2d)) return -1;
  if (nonDigit === 0 && !isIpv4B(buf, i, j)) return -1;
  return j;
}

/**
 * The top via-parm of a Via value `buf[s..e)` (trimmed, not folded) in the common form
 * `SIP/2.0/<transport> <host>[:<port>]*(;<token>[=<token>])`. Returns the end of the element
 * (at `e` or at the comma ending it) and leaves the last `branch` value range in `found`; -1
 * sends the caller to the full parser.
 */
export function scanTopVia(buf: Uint8Array, s: number, e: number): number {
  if (
    e - s < 10 ||
    buf[s] !== 0x53 ||
    buf[s + 1] !== 0x49 ||
    buf[s + 2] !== 0x50 ||
    buf[s + 3] !== 0x2f ||
    buf[s + 4] !== 0x32 ||
    buf[s + 5] !== 0x2e ||
    buf[s + 6] !== 0x30 ||
    buf[s + 7] !== 0x2f
  ) {
    return -1;
  }
  let i = tokenEndB(buf, s + 8, e);
  if (i === s + 8) return -1;
  const ws = i;
  while (i < e && (buf[i] === SP || buf[i] === HT)) i++;
  if (i === ws) return -1;
  i = hostEndB(buf, i, e);
  if (i < 0) return -1;
  if (i < e && buf[i] === COLON) {
    const p0 = ++i;
    let port = 0;
    for (; i < e; i++) {
      const c = buf[i] as number;
      if (c < 0x30 || c > 0x39) break;
      port = port * 10 + (c - 0x30);
    }
    if (i === p0 || i - p0 > 5 || port > 65535) return -1;
  }
  let bs = -1;
  let be = -1;
  while (i < e && buf[i] === SEMI) {
    const n0 = i + 1;
    const n1 = tokenEndB(buf, n0, e);
    if (n1 === n0) return -1;
    let v0 = n1;
    let v1 = n1;
    i = n1;
    const hasValue = i < e && buf[i] === EQUAL;
    if (hasValue) {
      v0 = i + 1;
      v1 = tokenEndB(buf, v0, e);
      if (v1 === v0) return -1;
      i = v1;
    }
    if (i < e && buf[i] !== SEMI && buf[i] !== COMMA) return -1;
    const len = n1 - n0;
    if (len === 6 && nameIs(buf, n0, n1, 'branch')) {
      if (!hasValue) return -1;
      bs = v0;
      be = v1;
    } else if (len === 8 && nameIs(buf, n0, n1, 'received')) {
      if (!hasValue || !isIpv4B(buf, v0, v1)) return -1;
    } else if (len === 5 && nameIs(buf, n0, n1, 'rport')) {
      if (hasValue) {
        const p = smallNumber(buf, v0, v1, 5);
        if (p < 0 || p > 65535) return -1;
      }
    } else if (len === 3 && nameIs(buf, n0, n1, 'ttl')) {
      const t = hasValue ? smallNumber(buf, v0, v1, 3) : -1;
      if (t < 0 || t > 255) return -1;
    } else if (len === 5 && nameIs(buf, n0, n1, 'maddr')) {
      return -1;
    }
  }
  if (i < e && buf[i] !== COMMA) return -1;
  result.start = bs;
  result.end = be;
  return i;
}

/** Bytes inside `<...>` by class: 0 whitespace, control or non-ASCII, 1 other, 2 ":", 3 ">". */
const URI_OUTLINE: Uint8Array = (() => {
  const t = new Uint8Array(256);
  for (let c = SP + 1; c < 0x7f; c++) t[c] = c === COLON ? 2 : c === RAQUOT ? 3 : 1;
  return t;
})();

/**
 * A From/To value `buf[s..e)` (trimmed, not folded) in the common form
 * `[display-name] <uri>*(;<token>[=<token>])`, the display name a plain token list or a quoted
 * string without escapes. True when accepted, with the last `tag` value range in `found`
 * (start -1: no tag; start == end: an empty tag).
 */
export function scanNameAddr(buf: Uint8Array, s: number, e: number): boolean {
  const token = TOKEN;
  let i = s;
  if (i >= e) return false;
  let c = buf[i] as number;
  if (c === DQUOTE) {
    i++;
    for (;;) {
      if (i >= e) return false;
      c = buf[i] as number;
      if (c === DQUOTE) break;
      if (c === BACKSLASH || c < SP || c >= 0x7f) return false;
      i++;
    }
    i++;
    while (i < e && (buf[i] === SP || buf[i] === HT)) i++;
    if (i >= e || buf[i] !== LAQUOT) return false;
  } else if (c !== LAQUOT) {
    // display-name as *(token LWS): single spaces between tokens only
    let prev = 0;
    for (;;) {
      if (i >= e) return false;
      c = buf[i] as number;
      if (c === LAQUOT) break;
      if (c === SP) {
        if (prev === SP) return false;
      } else if (token[c] !== 1) return false;
      prev = c;
      i++;
    }
  }
  // at "<": the URI outline (a scheme letter, a colon, no whitespace or controls) up to ">"
  const u0 = i + 1;
  const outline = URI_OUTLINE;
  let colon = false;
  i = u0;
  for (;;) {
    if (i >= e) return false;
    const k = outline[buf[i] as number] as number;
    if (k !== 1) {
      if (k === 3) break;
      if (k === 0) return false;
      colon = true;
    }
    i++;
  }
  const first = buf[u0] as number;
  if (
    i - u0 < 2 ||
    !colon ||
    !((first >= 0x41 && first <= 0x5a) || (first >= 0x61 && first <= 0x7a))
  ) {
    return false;
  }
  i++;
  let ts = -1;
  let te = -1;
  while (i < e && buf[i] === SEMI) {
    const n0 = i + 1;
    const n1 = tokenEndB(buf, n0, e);
    if (n1 === n0) return false;
    let v0 = n1;
    let v1 = n1;
    i = n1;
    if (i < e && buf[i] === EQUAL) {
      v0 = i + 1;
      v1 = tokenEndB(buf, v0, e);
      if (v1 === v0) return false;
      i = v1;
    }
    if (i < e && buf[i] !== SEMI) return false;
    const len = n1 - n0;
    if (len === 3 && nameIs(buf, n0, n1, 'tag')) {
      ts = v0;
      te = v1;
    } else if (
      (len === 7 && nameIs(buf, n0, n1, 'expires')) ||
      (len === 1 && ((buf[n0] as number) | 0x20) === 0x71)
    ) {
      return false;
    }
  }
  if (i !== e) return false;
  result.start = ts;
  result.end = te;
  return true;
}

/**
 * The well-known method spelled by `buf[s..e)` (case-sensitive, as methods are), as an interned
 * string; undefined for any other token. One switch on the first byte, then a byte comparison.
 */
export function knownMethod(buf: Uint8Array, s: number, e: number): string | undefined {
  const n = e - s;
  let m: string;
  switch (buf[s] as number) {
    case 0x49: // I
      m = n === 4 ? 'INFO' : 'INVITE';
      break;
    case 0x41:
      m = 'ACK';
      break;
    case 0x42:
      m = 'BYE';
      break;
    case 0x43:
      m = 'CANCEL';
      break;
    case 0x4f:
      m = 'OPTIONS';
      break;
    case 0x52: // R
      m = n === 5 ? 'REFER' : 'REGISTER';
      break;
    case 0x50: // P
      m = n === 5 ? 'PRACK' : 'PUBLISH';
      break;
    case 0x55:
      m = 'UPDATE';
      break;
    case 0x53:
      m = 'SUBSCRIBE';
      break;
    case 0x4e:
      m = 'NOTIFY';
      break;
    case 0x4d:
      m = 'MESSAGE';
      break;
    default:
      return undefined;
  }
  if (m.length !== n) return undefined;
  for (let k = 1; k < n; k++) if (buf[s + k] !== m.charCodeAt(k)) return undefined;
  return m;
}

/**
 * A CSeq value `buf[s..e)` (trimmed, not folded) as `1*10DIGIT 1*WSP token`; undefined sends the
 * caller to the full parser. Well-known methods come from a table (no string made).
 */
export function scanCSeq(buf: Buffer, s: number, e: number): CSeq | undefined {
  let i = s;
  let seq = 0;
  for (; i < e; i++) {
    const c = buf[i] as number;
    if (c < 0x30 || c > 0x39) break;
    seq = seq * 10 + (c - 0x30);
  }
  if (i === s || i - s > 10 || seq > UINT32_MAX) return undefined;
  const ws = i;
  while (i < e && (buf[i] === SP || buf[i] === HT)) i++;
  if (i === ws) return undefined;
  const m0 = i;
  if (tokenEndB(buf, m0, e) !== e || m0 === e) return undefined;
  return { seq, method: knownMethod(buf, m0, e) ?? decodeLatin1(buf, m0, e) };
}

function inconsistent(what: string, raw: string): SipError {
  return new SipError(
    SipErrorCode.INTERNAL,
    `fast ${what} path accepted a value the full parser rejects: ${raw.slice(0, 80)}`,
  );
}

/** `nameIs` on a string: `text[at..)` spells the lower-case letters of `name` in any case. */
function textNameIs(text: string, at: number, name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    if ((text.charCodeAt(at + i) | 0x20) !== name.charCodeAt(i)) return false;
  }
  return true;
}

/** The fields of a scanned Via read on first use (`FastVia`): -1 where absent. */
interface ViaFields {
  readonly transport: string;
  readonly host: string;
  readonly port: number;
  readonly received: string | undefined;
  /** -2 absent, -1 without a value. */
  readonly rport: number;
  readonly ttl: number;
}

/**
 * Reads the transport, host, port, `received`, `rport` and `ttl` of `text[s..e)`, a via-parm
 * that `scanTopVia` accepted (so in its form: `SIP/2.0/<transport> <host>[:<port>]` then
 * `;name[=value]` tokens, ASCII, no quotes): one pass, no validation left to do. Values as
 * parseVia gives them (upper-case transport, lower-case host, the last of a repeated parameter).
 */
function viaFieldsOf(text: string, s: number, e: number): ViaFields {
  let i = s + 8;
  while (text.charCodeAt(i) !== SP && text.charCodeAt(i) !== HT) i++;
  const transport = text.slice(s + 8, i).toUpperCase();
  while (text.charCodeAt(i) === SP || text.charCodeAt(i) === HT) i++;
  const h0 = i;
  while (i < e && text.charCodeAt(i) !== COLON && text.charCodeAt(i) !== SEMI) i++;
  const host = text.slice(h0, i).toLowerCase();
  let port = -1;
  if (i < e && text.charCodeAt(i) === COLON) {
    port = 0;
    for (i++; i < e && text.charCodeAt(i) !== SEMI; i++)
      port = port * 10 + text.charCodeAt(i) - 0x30;
  }
  let received: string | undefined;
  let rport = -2;
  let ttl = -1;
  while (i < e) {
    // at ";": name [= value] up to the next ";" or the end
    const n0 = i + 1;
    let n1 = n0;
    while (n1 < e && text.charCodeAt(n1) !== EQUAL && text.charCodeAt(n1) !== SEMI) n1++;
    let v1 = n1;
    while (v1 < e && text.charCodeAt(v1) !== SEMI) v1++;
    const len = n1 - n0;
    const hasValue = n1 < v1;
    if (len === 8 && textNameIs(text, n0, 'received')) {
      received = text.slice(n1 + 1, v1);
    } else if (len === 5 && textNameIs(text, n0, 'rport')) {
      rport = hasValue ? Number(text.slice(n1 + 1, v1)) : -1;
    } else if (len === 3 && textNameIs(text, n0, 'ttl')) {
      ttl = Number(text.slice(n1 + 1, v1));
    }
    i = v1;
  }
  return { transport, host, port, received, rport, ttl };
}

/**
 * A top Via accepted by `scanTopVia`: `branch` and `raw` are substrings of the message head
 * (`text`, offsets into it); the transport, host, port, `received`, `rport` and `ttl` are read
 * from the same text on first use of any of them (`viaFieldsOf`), `params` comes from the full
 * parser. The scan accepts no IPv6 reference, no `maddr` and no protocol but `SIP/2.0`.
 */
export class FastVia implements Via {
  readonly #text: string;
  readonly #s: number;
  readonly #e: number;
  readonly #bs: number;
  readonly #be: number;
  #raw: string | undefined;
  #branch: string | undefined;
  #fields: ViaFields | undefined;
  #full: Via | undefined;

  constructor(text: string, s: number, e: number, bs: number, be: number) {
    this.#text = text;
    this.#s = s;
    this.#e = e;
    this.#bs = bs;
    this.#be = be;
  }

  get raw(): string {
    return (this.#raw ??= this.#text.slice(this.#s, this.#e));
  }

  get branch(): string | undefined {
    if (this.#branch === undefined && this.#bs >= 0) {
      this.#branch = this.#text.slice(this.#bs, this.#be);
    }
    return this.#branch;
  }

  #v(): ViaFields {
    return (this.#fields ??= viaFieldsOf(this.#text, this.#s, this.#e));
  }

  get protocol(): string {
    return 'SIP/2.0';
  }
  get transport(): string {
    return this.#v().transport;
  }
  get host(): string {
    return this.#v().host;
  }
  get ipv6(): boolean {
    return false;
  }
  get port(): number | undefined {
    const p = this.#v().port;
    return p < 0 ? undefined : p;
  }
  get received(): string | undefined {
    return this.#v().received;
  }
  get rport(): number | true | undefined {
    const r = this.#v().rport;
    return r === -2 ? undefined : r === -1 ? true : r;
  }
  get maddr(): string | undefined {
    return undefined;
  }
  get ttl(): number | undefined {
    const t = this.#v().ttl;
    return t < 0 ? undefined : t;
  }

  #f(): Via {
    if (this.#full === undefined) {
      const v = parseVia(this.raw);
      if (isSipError(v)) throw inconsistent('Via', this.raw);
      this.#full = v;
    }
    return this.#full;
  }

  get params(): ReadonlyMap<string, string> {
    return this.#f().params;
  }
}

/**
 * A From/To value accepted by `scanNameAddr`: `tag` and `raw` are substrings of the message head
 * (`text`, offsets into it); the rest comes from the full (lazy-URI) parser on first access.
 */
export class FastNameAddr implements NameAddr {
  readonly #text: string;
  readonly #s: number;
  readonly #e: number;
  readonly #ts: number;
  readonly #te: number;
  #raw: string | undefined;
  #tag: string | undefined;
  #full: NameAddr | undefined;

  constructor(text: string, s: number, e: number, ts: number, te: number) {
    this.#text = text;
    this.#s = s;
    this.#e = e;
    this.#ts = ts;
    this.#te = te;
  }

  get raw(): string {
    return (this.#raw ??= this.#text.slice(this.#s, this.#e));
  }

  get tag(): string | undefined {
    if (this.#tag === undefined && this.#ts >= 0) {
      this.#tag = this.#te > this.#ts ? this.#text.slice(this.#ts, this.#te) : '';
    }
    return this.#tag;
  }

  #f(): NameAddr {
    if (this.#full === undefined) {
      const v = parseNameAddrLazy(this.raw);
      if (isSipError(v)) throw inconsistent('address', this.raw);
      this.#full = v;
    }
    return this.#full;
  }

  get displayName(): string | undefined {
    return this.#f().displayName;
  }
  get uri(): SipUri {
    return this.#f().uri;
  }
  get params(): ReadonlyMap<string, string> {
    return this.#f().params;
  }
}

// ---- validation: byte checks that answer "the full parser accepts this" or "ask it" --------

/** User bytes of a SIP URI the full parser accepts unescaped (bytes.ts USER; no "%" escapes). */
const URI_USER: Uint8Array = (() => {
  const t = new Uint8Array(256);
  for (let c = 0x21; c < 0x7f; c++) t[c] = USER_TABLE[c] === 1 && c !== 0x25 ? 1 : 0;
  return t;
})();

/** URI parameter bytes the full parser accepts unescaped (bytes.ts PARAMCHAR; no "%"). */
const URI_PARAM: Uint8Array = (() => {
  const t = new Uint8Array(256);
  for (let c = 0x21; c < 0x7f; c++) t[c] = PARAMCHAR_TABLE[c] === 1 && c !== 0x25 ? 1 : 0;
  return t;
})();

/**
 * A `sip:`/`sips:` URI at `buf[s..e)` in the common form `sip[s]:[user@]host[:port]*(;p[=v])`
 * (lower-case scheme, no escapes, no password, no IPv6 reference, no `?headers`). True only
 * when `parseUri` accepts it; false means "ask the full parser", never "malformed".
 */
export function sipUriOkB(buf: Uint8Array, s: number, e: number): boolean {
  if (e - s < 5 || buf[s] !== 0x73 || buf[s + 1] !== 0x69 || buf[s + 2] !== 0x70) return false;
  let i = s + 3;
  if (buf[i] === 0x73) i++;
  if (buf[i] !== COLON) return false;
  i++;
  // parseSip: the user part ends at the first "@" of the rest of the URI, wherever it is.
  let at = -1;
  for (let k = i; k < e; k++) {
    if (buf[k] === 0x40) {
      at = k;
      break;
    }
  }
  if (at !== -1) {
    if (at === i) return false;
    const user = URI_USER;
    for (let k = i; k < at; k++) if (user[buf[k] as number] !== 1) return false;
    i = at + 1;
  }
  i = hostEndB(buf, i, e);
  if (i < 0) return false;
  if (i < e && buf[i] === COLON) {
    const p0 = ++i;
    let port = 0;
    for (; i < e; i++) {
      const c = buf[i] as number;
      if (c < 0x30 || c > 0x39) break;
      port = port * 10 + (c - 0x30);
    }
    if (i === p0 || i - p0 > 5 || port > 65535) return false;
  }
  const pc = URI_PARAM;
  while (i < e && buf[i] === SEMI) {
    const n0 = ++i;
    while (i < e && pc[buf[i] as number] === 1) i++;
    if (i === n0) return false;
    if (i < e && buf[i] === EQUAL) {
      const v0 = ++i;
      while (i < e && pc[buf[i] as number] === 1) i++;
      if (i === v0) return false;
    }
  }
  return i === e;
}

/**
 * A name-addr or addr-spec with header parameters at `buf[s..e)` (a trimmed, unfolded wire
 * value): true only when `parseNameAddr` (and so `parseContact`) accepts it. The name-addr form
 * is `scanNameAddr`'s with the URI checked by `sipUriOkB`; the addr-spec form (Contact, Route
 * written without `<>`) a `sipUriOkB` URI up to the first `;`, then token parameters. False
 * means "ask the full parser".
 */
export function nameAddrOkB(buf: Uint8Array, s: number, e: number): boolean {
  if (s >= e) return false;
  const first = buf[s] as number;
  if (first === 0x73 && !hasByte(buf, s, e, LAQUOT)) {
    // addr-spec: the URI runs to the first ";" (RFC 3261 §20: its parameters are the header's).
    let j = s;
    for (; j < e; j++) {
      const c = buf[j] as number;
      if (c === SEMI) break;
      // parseAddress rejects these in an addr-spec, or ends the URI at whitespace: ask it.
      if (c === 0x3f || c === COMMA || c === RAQUOT || c === SP || c === HT || c === DQUOTE) {
        return false;
      }
    }
    return sipUriOkB(buf, s, j) && headerParamsOkB(buf, j, e);
  }
  if (!scanNameAddr(buf, s, e)) return false;
  // Accepted: parseAddress's URI text is between the "<" after the display name (a quoted one
  // holds no backslash here, so its end is the next quote) and the first ">" after that.
  const lt =
    first === DQUOTE
      ? indexOfB(buf, indexOfB(buf, s + 1, e, DQUOTE) + 1, e, LAQUOT)
      : indexOfB(buf, s, e, LAQUOT);
  return sipUriOkB(buf, lt + 1, indexOfB(buf, lt + 1, e, RAQUOT));
}

function hasByte(buf: Uint8Array, s: number, e: number, b: number): boolean {
  return indexOfB(buf, s, e, b) !== -1;
}

function indexOfB(buf: Uint8Array, s: number, e: number, b: number): number {
  for (let i = s; i < e; i++) if (buf[i] === b) return i;
  return -1;
}

/** `*(;token[=token])` to exactly `e`, without `expires` or `q` (which the full parser checks). */
function headerParamsOkB(buf: Uint8Array, i: number, e: number): boolean {
  while (i < e && buf[i] === SEMI) {
    const n0 = i + 1;
    const n1 = tokenEndB(buf, n0, e);
    if (n1 === n0) return false;
    i = n1;
    if (i < e && buf[i] === EQUAL) {
      const v1 = tokenEndB(buf, i + 1, e);
      if (v1 === i + 1) return false;
      i = v1;
    }
    const len = n1 - n0;
    if (
      (len === 7 && nameIs(buf, n0, n1, 'expires')) ||
      (len === 1 && ((buf[n0] as number) | 0x20) === 0x71)
    ) {
      return false;
    }
  }
  return i === e;
}

/**
 * Every element of a Via value at `buf[s..e)` (trimmed, unfolded): true only when the value is
 * one via-parm that `parseVia` accepts (`scanTopVia` reaching the end: no comma).
 */
export function viaOkB(buf: Uint8Array, s: number, e: number): boolean {
  return scanTopVia(buf, s, e) === e;
}
