/**
 * validate: what a proxy must answer to a message that parsed (RFC 3261 §16.3 request
 * validation steps 1, 2 and 5, §8.1.1 mandatory headers, RFC 4475 §3 expectations). The checks
 * run in the RFC's order: syntax (400), version (505), URI scheme (416), Proxy-Require (420).
 * For a response the same result tells the caller to discard it.
 */
import { WORD } from './bytes.js';
import { SipErrorCode, isSipError } from './errors.js';
import { H } from './header-names.js';
import { Message, parseCSeq, parseSessionExpires } from './message.js';
import { parseContact, parseNameAddr } from './name-addr.js';
import type { HeaderField, SipMessage, ValidationResult } from './types.js';
import { parseUri } from './uri.js';
import { parseVia } from './via.js';

export interface ValidateOptions {
  /**
   * URI schemes this element can route; another Request-URI scheme gives 416 (RFC 3261 §16.3
   * step 2). Default `['sip', 'sips', 'tel']`; `null` skips the check.
   */
  readonly schemes?: readonly string[] | null;
  /**
   * Option tags this element supports; a Proxy-Require tag outside the list gives 420 with the
   * tags in `unsupported` (RFC 3261 §16.3 step 5). Default `[]`; `null` skips the check.
   */
  readonly proxyRequire?: readonly string[] | null;
}

const DEFAULT_SCHEMES = ['sip', 'sips', 'tel'];

const ROUTES: readonly (readonly [number, string, string])[] = [
  [H.ROUTE, 'route', 'Route'],
  [H.RECORD_ROUTE, 'record-route', 'Record-Route'],
];

const OPTION_TAGS: readonly (readonly [number, string])[] = [
  [H.REQUIRE, 'require'],
  [H.PROXY_REQUIRE, 'proxy-require'],
  [H.SUPPORTED, 'supported'],
];

function reject(
  status: number,
  reason: string,
  code: string,
  unsupported?: readonly string[],
): ValidationResult {
  return unsupported === undefined
    ? { ok: false, status, reason, code }
    : { ok: false, status, reason, code, unsupported };
}

const bad = (reason: string, code: string = SipErrorCode.BAD_VALUE): ValidationResult =>
  reject(400, reason, code);

/** Call-ID = word [ "@" word ]: both words non-empty, at most one "@". No substrings made. */
function isCallId(v: string): boolean {
  const at = v.indexOf('@');
  if (at === 0 || at === v.length - 1 || v.length === 0) return false;
  for (let i = 0; i < v.length; i++) {
    if (i === at) continue;
    const c = v.charCodeAt(i);
    if (c > 0x7f || WORD[c] !== 1) return false;
  }
  return true;
}

/** rfc1123-date = wkday "," SP date1 SP time SP "GMT" (RFC 3261 §20.17) */
const DATE_RE =
  /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/;

const SINGLETONS: readonly (readonly [number, string])[] = [
  [H.CALL_ID, 'Call-ID'],
  [H.CSEQ, 'CSeq'],
  [H.FROM, 'From'],
  [H.TO, 'To'],
  [H.MAX_FORWARDS, 'Max-Forwards'],
  [H.CONTENT_LENGTH, 'Content-Length'],
  [H.CONTENT_TYPE, 'Content-Type'],
];

const MANDATORY: readonly (readonly [number, string])[] = [
  [H.VIA, 'Via'],
  [H.FROM, 'From'],
  [H.TO, 'To'],
  [H.CALL_ID, 'Call-ID'],
  [H.CSEQ, 'CSeq'],
];

/** Lines of header `id` (named `label`): by id in a parsed message, else by canonical name. */
function count(
  msg: Message | undefined,
  names: readonly HeaderField[] | undefined,
  id: number,
  label: string,
): number {
  if (msg !== undefined) return msg.countId(id);
  const name = label.toLowerCase();
  let n = 0;
  for (const h of names ?? []) if (h.name === name) n++;
  return n;
}

/**
 * True when every line of header `id` passes the byte check of a parsed message (then the full
 * parsers would accept every element, and `validate` skips them); false: run the full parsers.
 */
function bytesOk(msg: Message | undefined, id: number, nameAddr: boolean): boolean {
  return msg !== undefined && msg.linesOkB(id, nameAddr);
}

/**
 * Checks a parsed message. `{ ok: true }` or the status, reason phrase and stable code a proxy
 * answers with (400 malformed, 505 version, 416 scheme, 420 Proxy-Require). Never throws.
 */
export function validate(message: SipMessage, opts?: ValidateOptions): ValidationResult {
  const m = message;
  // A message of this package is checked on its bytes first (byte checks that accept only what
  // the full parsers accept), and its cached parses are used where it has them; any other
  // implementation of SipMessage through its header list and the full parsers.
  const msg = m instanceof Message ? m : undefined;
  const names = msg === undefined ? m.headers() : undefined;

  // §8.1.1: To, From, CSeq, Call-ID, Via are mandatory (Max-Forwards too, but RFC 4475 §3.4.1
  // asks to accept RFC 2543 requests without it).
  for (const [id, label] of MANDATORY) {
    if (count(msg, names, id, label) === 0) {
      return bad(`Missing ${label} header`, SipErrorCode.MISSING_HEADER);
    }
  }
  for (const [id, label] of SINGLETONS) {
    if (count(msg, names, id, label) > 1) {
      return bad(`Multiple ${label} header fields`, SipErrorCode.DUPLICATE_HEADER);
    }
  }

  if (!bytesOk(msg, H.VIA, false)) {
    for (const el of m.getAll('via')) {
      if (isSipError(parseVia(el))) return bad('Malformed Via header', SipErrorCode.BAD_VIA);
    }
  }
  // From and To: one line each here (duplicates were rejected above).
  if (!bytesOk(msg, H.FROM, true) && isSipError(parseNameAddr(m.get('from') ?? ''))) {
    return bad('Malformed From header', SipErrorCode.BAD_NAME_ADDR);
  }
  if (!bytesOk(msg, H.TO, true) && isSipError(parseNameAddr(m.get('to') ?? ''))) {
    return bad('Malformed To header', SipErrorCode.BAD_NAME_ADDR);
  }
  if (!isCallId(m.get('call-id') ?? '')) return bad('Malformed Call-ID header');
  // The message's own CSeq parse (cached, and the same as parseCSeq of its first line).
  const cseq = msg !== undefined ? msg.cseq() : parseCSeq(m.get('cseq') ?? '');
  if (cseq === undefined) return bad('Malformed CSeq header', SipErrorCode.BAD_CSEQ);
  if (m.isRequest && cseq.method !== m.method) {
    // RFC 3261 §8.1.1.5: "The method MUST match that of the request."
    return bad('CSeq method does not match the Request-Line', SipErrorCode.CSEQ_METHOD_MISMATCH);
  }
  const mf = m.get('max-forwards');
  if (mf !== undefined && !/^\d{1,10}$/.test(mf)) return bad('Malformed Max-Forwards header');

  if (!bytesOk(msg, H.CONTACT, true)) {
    const contacts = m.getAll('contact');
    for (const el of contacts) {
      if (el === '*') {
        if (contacts.length !== 1) return bad('Contact * mixed with other contacts');
        continue;
      }
      if (isSipError(parseContact(el))) {
        return bad('Malformed Contact header', SipErrorCode.BAD_NAME_ADDR);
      }
    }
  }
  for (const [id, name, label] of ROUTES) {
    if (bytesOk(msg, id, true)) continue;
    for (const el of m.getAll(name)) {
      if (isSipError(parseNameAddr(el))) {
        return bad(`Malformed ${label} header`, SipErrorCode.BAD_NAME_ADDR);
      }
    }
  }
  const date = m.get('date');
  if (date !== undefined && !DATE_RE.test(date)) return bad('Malformed Date header');
  for (const [name, label] of [
    ['session-expires', 'Session-Expires'],
    ['min-se', 'Min-SE'],
  ] as const) {
    const v = m.get(name);
    if (v !== undefined && parseSessionExpires(v) === undefined) {
      return bad(`Malformed ${label} header`);
    }
  }
  if (
    m.has('content-type') &&
    (msg !== undefined ? msg.bodyLength() : m.body.length) > 0 &&
    m.contentType() === undefined
  ) {
    return bad('Malformed Content-Type header');
  }
  for (const [id, name] of OPTION_TAGS) {
    if (msg !== undefined && msg.countId(id) === 0) continue;
    for (const el of m.getAll(name)) {
      if (!/^[A-Za-z0-9\-.!%*_+`'~]+$/.test(el)) return bad(`Malformed ${name} header`);
    }
  }

  // RFC 3261 §8.2.2 / §16.3 step 1 and §7.1: SIP-Version must be 2.0, else 505.
  if (m.version !== 'SIP/2.0' && m.version.toUpperCase() !== 'SIP/2.0') {
    return reject(505, 'Version Not Supported', SipErrorCode.UNSUPPORTED_VERSION);
  }

  if (m.isRequest) {
    // The message's cached parse of its Request-URI: parseUri of it, undefined when malformed.
    const parsed = msg !== undefined ? msg.requestUriParsed() : parseUri(m.requestUri);
    if (parsed === undefined || isSipError(parsed)) {
      return bad('Malformed Request-URI', SipErrorCode.BAD_URI);
    }
    const uri = parsed;
    // RFC 3261 §19.1.1 Table 1: URI headers are not allowed in a Request-URI (RFC 4475 §3.1.2.11).
    if (uri.headers.size > 0)
      return bad('Request-URI must not contain headers', SipErrorCode.BAD_URI);
    const schemes = opts?.schemes === undefined ? DEFAULT_SCHEMES : opts.schemes;
    if (schemes !== null && !schemes.includes(uri.scheme)) {
      // §16.3 step 2: "If the Request-URI has a URI whose scheme is not understood by the proxy,
      // the proxy SHOULD reject the request with a 416 (Unsupported URI Scheme) response."
      return reject(416, 'Unsupported URI Scheme', SipErrorCode.UNSUPPORTED_URI_SCHEME);
    }
    const supported = opts?.proxyRequire === undefined ? [] : opts.proxyRequire;
    if (supported !== null && (msg === undefined || msg.countId(H.PROXY_REQUIRE) > 0)) {
      // §16.3 step 5: Proxy-Require tags the proxy does not support give 420 with Unsupported.
      const lower = supported.map((t) => t.toLowerCase());
      const unsupported = m
        .getAll('proxy-require')
        .filter((t) => t.length > 0 && !lower.includes(t.toLowerCase()));
      if (unsupported.length > 0) {
        return reject(420, 'Bad Extension', SipErrorCode.BAD_EXTENSION, unsupported);
      }
    }
  }
  return { ok: true };
}
