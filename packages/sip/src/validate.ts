/**
 * validate: what a proxy must answer to a message that parsed (RFC 3261 §16.3 request
 * validation steps 1, 2 and 5, §8.1.1 mandatory headers, RFC 4475 §3 expectations). The checks
 * run in the RFC's order: syntax (400), version (505), URI scheme (416), Proxy-Require (420).
 * For a response the same result tells the caller to discard it.
 */
import { WORD } from './bytes.js';
import { SipErrorCode, isSipError } from './errors.js';
import { Message, parseCSeq, parseSessionExpires } from './message.js';
import { parseContact, parseNameAddr } from './name-addr.js';
import type { SipMessage, ValidationResult } from './types.js';
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

/** Call-ID = word [ "@" word ] */
function isCallId(v: string): boolean {
  const at = v.indexOf('@');
  const parts = at === -1 ? [v] : [v.slice(0, at), v.slice(at + 1)];
  for (const p of parts) {
    if (p.length === 0) return false;
    for (let i = 0; i < p.length; i++) {
      const c = p.charCodeAt(i);
      if (c > 0x7f || WORD[c] !== 1) return false;
    }
  }
  return true;
}

/** rfc1123-date = wkday "," SP date1 SP time SP "GMT" (RFC 3261 §20.17) */
const DATE_RE =
  /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/;

const SINGLETONS: readonly string[] = [
  'Call-ID',
  'CSeq',
  'From',
  'To',
  'Max-Forwards',
  'Content-Length',
  'Content-Type',
];

/**
 * Checks a parsed message. `{ ok: true }` or the status, reason phrase and stable code a proxy
 * answers with (400 malformed, 505 version, 416 scheme, 420 Proxy-Require). Never throws.
 */
export function validate(message: SipMessage, opts?: ValidateOptions): ValidationResult {
  const m = message;
  const names = m instanceof Message ? undefined : m.headers();
  const count = (canonical: string): number =>
    m instanceof Message
      ? m.count(canonical)
      : (names ?? []).filter((h) => h.name === canonical).length;

  // §8.1.1: To, From, CSeq, Call-ID, Via are mandatory (Max-Forwards too, but RFC 4475 §3.4.1
  // asks to accept RFC 2543 requests without it).
  for (const [name, label] of [
    ['via', 'Via'],
    ['from', 'From'],
    ['to', 'To'],
    ['call-id', 'Call-ID'],
    ['cseq', 'CSeq'],
  ] as const) {
    if (count(name) === 0) return bad(`Missing ${label} header`, SipErrorCode.MISSING_HEADER);
  }
  for (const label of SINGLETONS) {
    if (count(label.toLowerCase()) > 1) {
      return bad(`Multiple ${label} header fields`, SipErrorCode.DUPLICATE_HEADER);
    }
  }

  for (const el of m.getAll('via')) {
    if (isSipError(parseVia(el))) return bad('Malformed Via header', SipErrorCode.BAD_VIA);
  }
  if (isSipError(parseNameAddr(m.get('from') ?? ''))) {
    return bad('Malformed From header', SipErrorCode.BAD_NAME_ADDR);
  }
  if (isSipError(parseNameAddr(m.get('to') ?? ''))) {
    return bad('Malformed To header', SipErrorCode.BAD_NAME_ADDR);
  }
  if (!isCallId(m.get('call-id') ?? '')) return bad('Malformed Call-ID header');
  const cseq = parseCSeq(m.get('cseq') ?? '');
  if (cseq === undefined) return bad('Malformed CSeq header', SipErrorCode.BAD_CSEQ);
  if (m.isRequest && cseq.method !== m.method) {
    // RFC 3261 §8.1.1.5: "The method MUST match that of the request."
    return bad('CSeq method does not match the Request-Line', SipErrorCode.CSEQ_METHOD_MISMATCH);
  }
  const mf = m.get('max-forwards');
  if (mf !== undefined && !/^\d{1,10}$/.test(mf)) return bad('Malformed Max-Forwards header');

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
  for (const [name, label] of [
    ['route', 'Route'],
    ['record-route', 'Record-Route'],
  ] as const) {
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
  if (m.has('content-type') && m.body.length > 0 && m.contentType() === undefined) {
    return bad('Malformed Content-Type header');
  }
  for (const name of ['require', 'proxy-require', 'supported'] as const) {
    for (const el of m.getAll(name)) {
      if (!/^[A-Za-z0-9\-.!%*_+`'~]+$/.test(el)) return bad(`Malformed ${name} header`);
    }
  }

  // RFC 3261 §8.2.2 / §16.3 step 1 and §7.1: SIP-Version must be 2.0, else 505.
  if (m.version.toUpperCase() !== 'SIP/2.0') {
    return reject(505, 'Version Not Supported', SipErrorCode.UNSUPPORTED_VERSION);
  }

  if (m.isRequest) {
    const uri = parseUri(m.requestUri);
    if (isSipError(uri)) return bad('Malformed Request-URI', SipErrorCode.BAD_URI);
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
    if (supported !== null) {
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
