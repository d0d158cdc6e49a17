/**
 * The wire scanner: one index-based pass over the bytes finds the start line, every header line
 * (name, value range, folding) and the end of the head, resolving header names to ids. Nothing
 * else is decoded until a caller asks.
 */
// Buffer is imported in every module: the global `Buffer` is an accessor property of globalThis,
// so each use of it in a hot path (`Buffer.isBuffer` per parse) called its getter.
import { Buffer } from 'node:buffer';
import {
  TOKEN as TOKEN_TABLE,
  UINT32_MAX,
  decodeLatin1,
  decodeUtf8,
  indexOfByte as bufferIndexOfByte,
} from './bytes.js';
import { SipErrorCode } from './errors.js';
import { knownMethod } from './fast.js';
import {
  H,
  NAME_CLASS as NAME_CLASS_TABLE,
  NAME_ID as NAME_ID_TABLE,
  NAME_NEXT as NAME_NEXT_TABLE,
  NAME_START as NAME_START_STATE,
} from './header-names.js';
import { splitList, unfold } from './lex.js';
import { HeaderLine as HeaderLineClass, Message, type StartLine } from './message.js';
import type {
  ParseOptions,
  ParseResult,
  PartialMessage,
  SipMessage,
  SipParseError,
} from './types.js';

// Named bytes as constants of this module rather than imports from bytes.js: optimized code
// reads an imported binding through its module cell, with a hole check, on every use, and the
// head scan compares bytes with these on every line (~10 % of its instructions).
const HT = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const COLON = 0x3a;

// The name tables and the line class as constants of this module too: an imported binding is a
// module cell whose value optimized code does not know, so every table read in the name loop
// checked the table's map (three map checks a name byte); a module-local constant is folded to
// the object itself, map and all.
const NAME_CLASS: Uint8Array = NAME_CLASS_TABLE;
const TOKEN: Uint8Array = TOKEN_TABLE;
const indexOfByte: typeof bufferIndexOfByte = bufferIndexOfByte;
const NAME_NEXT: Uint16Array = NAME_NEXT_TABLE;
const NAME_ID: Uint8Array = NAME_ID_TABLE;
const NAME_START: number = NAME_START_STATE;
const CONTENT_LENGTH_ID: number = H.CONTENT_LENGTH;
const HeaderLine: typeof HeaderLineClass = HeaderLineClass;
type HeaderLine = HeaderLineClass;

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

export interface Limits {
  readonly maxMessageBytes: number;
  readonly maxHeaders: number;
  readonly maxHeaderLineBytes: number;
  readonly maxBodyBytes: number;
}

export const DEFAULT_LIMITS: Limits = {
  maxMessageBytes: 65_535,
  maxHeaders: 256,
  maxHeaderLineBytes: 8_192,
  maxBodyBytes: 65_535,
};

export function resolveLimits(opts: ParseOptions | undefined): Limits {
  if (opts === undefined) return DEFAULT_LIMITS;
  return {
    maxMessageBytes: opts.maxMessageBytes ?? DEFAULT_LIMITS.maxMessageBytes,
    maxHeaders: opts.maxHeaders ?? DEFAULT_LIMITS.maxHeaders,
    maxHeaderLineBytes: opts.maxHeaderLineBytes ?? DEFAULT_LIMITS.maxHeaderLineBytes,
    maxBodyBytes: opts.maxBodyBytes ?? DEFAULT_LIMITS.maxBodyBytes,
  };
}

/** The result of scanning a head. `error` set means the head is malformed (lines still kept). */
export interface ScannedHead {
  startLineEnd: number;
  startLineNext: number;
  lines: HeaderLine[];
  sepStart: number;
  bodyStart: number;
  /** Content-Length value, -1 when absent. */
  contentLength: number;
  error: SipParseError | undefined;
  /** True when the error makes the byte stream unframeable (bad Content-Length, limits). */
  fatal: boolean;
}

function err(code: string, reason: string): SipParseError {
  return { code, reason };
}

/**
 * Scans `buf[start..end)` as a message head. The head ends at an empty line or at `end` (a
 * datagram whose header section is not closed by an empty line). Accepts CRLF and bare LF line
 * ends and RFC 3261 §7.3.1 folding (a line starting with SP/HT continues the previous one).
 */
export function scanHead(buf: Buffer, start: number, end: number, limits: Limits): ScannedHead {
  const head: ScannedHead = {
    startLineEnd: end,
    startLineNext: end,
    lines: [],
    sepStart: end,
    bodyStart: end,
    contentLength: -1,
    error: undefined,
    fatal: false,
  };
  let pos = indexOfByte(buf, LF, start);
  if (pos === -1 || pos > end) pos = end;
  head.startLineNext = pos < end ? pos + 1 : end;
  head.startLineEnd = pos > start && buf[pos - 1] === CR ? pos - 1 : pos;
  if (head.startLineEnd - start > limits.maxHeaderLineBytes) {
    head.error = err(SipErrorCode.HEADER_TOO_LONG, 'Start line too long');
    head.fatal = true;
    return head;
  }
  pos = head.startLineNext;
  const lines = head.lines;
  const maxLine = limits.maxHeaderLineBytes;
  const nameClass = NAME_CLASS;
  const nameNext = NAME_NEXT;
  const nameId = NAME_ID;
  const maxHeaders = limits.maxHeaders;
  const contentLengthId = CONTENT_LENGTH_ID;
  while (pos < end) {
    let c = buf[pos] as number;
    if (c === LF) {
      head.sepStart = pos;
      head.bodyStart = pos + 1;
      return head;
    }
    if (c === CR && (pos + 1 >= end || buf[pos + 1] === LF)) {
      head.sepStart = pos;
      head.bodyStart = Math.min(pos + 2, end);
      return head;
    }
    const lineStart = pos;
    let notToken = 0;
    // Token bytes run the name DFA (header-names.ts: two table reads a byte, and the name is
    // recognised when it ends); anything else ends the name, or, when it is not one of the name
    // terminators, marks it malformed and the scan goes on to them.
    let state = NAME_START;
    while (pos < end) {
      c = buf[pos] as number;
      const cls = nameClass[c] as number;
      if (cls === 0) break;
      state = nameNext[state + cls] as number;
      pos++;
    }
    if (pos < end && c !== COLON && c !== SP && c !== HT && c !== CR && c !== LF) {
      notToken = 1;
      while (pos < end) {
        c = buf[pos] as number;
        if (c === COLON || c === SP || c === HT || c === CR || c === LF) break;
        pos++;
      }
    }
    const nameOk = notToken === 0;
    const nameEnd = pos;
    // From here `c` is buf[pos] whenever pos < end: each byte is read once (every typed-array
    // read costs a map check, two pointer loads and a bounds check in optimized code).
    while (pos < end && (c === SP || c === HT)) {
      pos++;
      if (pos < end) c = buf[pos] as number;
    }
    const hasColon = pos < end && c === COLON;
    if (hasColon) {
      pos++;
      if (pos < end) c = buf[pos] as number;
    }
    // value: skip leading WSP, then run to the end of the (possibly folded) line
    while (pos < end && (c === SP || c === HT)) {
      pos++;
      if (pos < end) c = buf[pos] as number;
    }
    const valueStart = pos;
    let valueEnd = pos;
    let folded = false;
    let lineEnd: number;
    for (;;) {
      // memchr for the line end: value bytes are never looked at one by one here.
      let lf = indexOfByte(buf, LF, pos);
      if (lf === -1 || lf > end) lf = end;
      pos = lf;
      const contentEnd = pos > valueStart && buf[pos - 1] === CR ? pos - 1 : pos;
      if (contentEnd > valueEnd) valueEnd = contentEnd;
      if (pos >= end) {
        lineEnd = end;
        break;
      }
      pos++;
      if (pos < end) {
        const next = buf[pos] as number;
        if (next === SP || next === HT) {
          folded = true;
          continue;
        }
      }
      lineEnd = pos;
      break;
    }
    while (valueEnd > valueStart) {
      const last = buf[valueEnd - 1] as number;
      if (last !== SP && last !== HT) break;
      valueEnd--;
    }
    if (lineEnd - lineStart > maxLine) {
      head.error = err(SipErrorCode.HEADER_TOO_LONG, 'Header line too long');
      head.fatal = true;
      return head;
    }
    if (!hasColon || nameEnd === lineStart || !nameOk) {
      // Keep scanning so that `partial` still gets Via/Call-ID/CSeq for a 400 answer.
      head.error ??= err(
        SipErrorCode.BAD_HEADER,
        `Malformed header line: ${decodeLatin1(buf, lineStart, Math.min(nameEnd, lineStart + 40))}`,
      );
      continue;
    }
    if (lines.length >= maxHeaders) {
      head.error = err(SipErrorCode.TOO_MANY_HEADERS, 'Too many header lines');
      head.fatal = true;
      return head;
    }
    const id = nameId[state >>> 5] as number;
    const line = new HeaderLine(id, lineStart, nameEnd, valueStart, valueEnd, lineEnd, folded);
    lines.push(line);
    if (id === contentLengthId) {
      const n = readContentLength(buf, valueStart, valueEnd, folded);
      if (n < 0) {
        head.error = err(SipErrorCode.CONTENT_LENGTH, 'Bad Content-Length');
        head.fatal = true;
      } else if (head.contentLength >= 0 && head.contentLength !== n) {
        // RFC 4475 §3.3.9: conflicting Content-Length values make framing impossible.
        head.error = err(SipErrorCode.CONTENT_LENGTH, 'Conflicting Content-Length values');
        head.fatal = true;
      } else {
        head.contentLength = n;
      }
    }
  }
  return head;
}

function readContentLength(buf: Buffer, s: number, e: number, folded: boolean): number {
  if (folded) {
    const v = unfold(decodeLatin1(buf, s, e)).trim();
    if (!/^\d{1,10}$/.test(v)) return -1;
    const n = Number(v);
    return n > UINT32_MAX ? -1 : n;
  }
  if (e <= s || e - s > 10) return -1;
  let n = 0;
  for (let i = s; i < e; i++) {
    const c = buf[i] as number;
    if (!isDigit(c)) return -1;
    n = n * 10 + (c - 0x30);
  }
  return n > UINT32_MAX ? -1 : n;
}

function isVersion(v: string): boolean {
  // SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT ("SIP" is case-insensitive, RFC 3261 §7.1)
  return /^SIP\/\d+\.\d+$/i.test(v);
}

/** Reason phrases common enough to intern (no string made for them). */
const REASONS: readonly string[] = ['OK', 'Trying', 'Ringing', 'Session Progress', 'Accepted'];

function reasonText(buf: Buffer, s: number, e: number): string {
  const n = e - s;
  for (const r of REASONS) {
    if (r.length !== n) continue;
    let k = 0;
    while (k < n && buf[s + k] === r.charCodeAt(k)) k++;
    if (k === n) return r;
  }
  return decodeUtf8(buf, s, e);
}

/** Where `fastStartLine(..., lazyUri = true)` leaves the Request-URI's byte range. */
const uriRange = { start: -1, end: -1 };

/** `SIP/2.0` at `buf[at..at+7)` (compared byte by byte: no table to read besides the bytes). */
function isSip20(buf: Buffer, at: number): boolean {
  return (
    buf[at] === 0x53 &&
    buf[at + 1] === 0x49 &&
    buf[at + 2] === 0x50 &&
    buf[at + 3] === 0x2f &&
    buf[at + 4] === 0x32 &&
    buf[at + 5] === 0x2e &&
    buf[at + 6] === 0x30
  );
}

/**
 * The common start lines read from the bytes: `SIP/2.0 NNN reason` and `METHOD uri SIP/2.0`
 * with a token method. Undefined for anything else, which the string parser below then decides
 * (so both always agree: this path only accepts lines that parser accepts, with the same values).
 */
export function fastStartLine(
  buf: Buffer,
  start: number,
  end: number,
  lazyUri = false,
): StartLine | undefined {
  if (end - start >= 11 && buf[start + 7] === SP && isSip20(buf, start)) {
    const c0 = buf[start + 8] as number;
    const c1 = buf[start + 9] as number;
    const c2 = buf[start + 10] as number;
    if (c0 < 0x31 || c0 > 0x36 || !isDigit(c1) || !isDigit(c2)) return undefined;
    if (end - start > 11 && buf[start + 11] !== SP) return undefined;
    return {
      isRequest: false,
      method: '',
      requestUri: '',
      status: (c0 - 0x30) * 100 + (c1 - 0x30) * 10 + (c2 - 0x30),
      reason: end - start > 11 ? reasonText(buf, start + 12, end) : '',
      version: 'SIP/2.0',
    };
  }
  let i = start;
  const token = TOKEN;
  while (i < end && token[buf[i] as number] === 1) i++;
  if (i === start || i >= end || buf[i] !== SP) return undefined;
  const sp1 = i;
  // The line must end in SP "SIP/2.0"; that SP must be the first SP or HT after the method's.
  const sp2 = end - 8;
  if (sp2 <= sp1 + 1 || buf[sp2] !== SP || !isSip20(buf, sp2 + 1)) return undefined;
  i = sp1 + 1;
  for (;;) {
    const c = buf[i] as number; // the SP at sp2 ends this loop
    if (c === SP || c === HT) break;
    i++;
  }
  if (i !== sp2) return undefined;
  if (lazyUri) {
    // The caller decodes the Request-URI when it is first asked for.
    uriRange.start = sp1 + 1;
    uriRange.end = i;
  }
  return {
    isRequest: true,
    method: knownMethod(buf, start, sp1) ?? decodeLatin1(buf, start, sp1),
    requestUri: lazyUri ? '' : decodeUtf8(buf, sp1 + 1, i),
    status: 0,
    reason: '',
    version: 'SIP/2.0',
  };
}

/** Parses the start line `buf[start..end)`; a SipParseError when it is malformed. */
export function parseStartLine(buf: Buffer, start: number, end: number): StartLine | SipParseError {
  return fastStartLine(buf, start, end) ?? parseStartLineText(buf, start, end);
}

/** The general start-line parser, on the decoded line. */
export function parseStartLineText(
  buf: Buffer,
  start: number,
  end: number,
): StartLine | SipParseError {
  const text = decodeUtf8(buf, start, end);
  if (
    (buf[start] === 0x53 || buf[start] === 0x73) &&
    text.length > 4 &&
    text.slice(0, 4).toUpperCase() === 'SIP/'
  ) {
    // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF
    const sp = text.indexOf(' ');
    const version = sp === -1 ? text : text.slice(0, sp);
    if (!isVersion(version)) {
      return err(SipErrorCode.BAD_START_LINE, 'Malformed SIP-Version in status line');
    }
    const rest = sp === -1 ? '' : text.slice(sp + 1);
    const sp2 = rest.indexOf(' ');
    const code = sp2 === -1 ? rest : rest.slice(0, sp2);
    if (!/^[1-6]\d\d$/.test(code)) {
      return err(SipErrorCode.BAD_STATUS, `Bad status code: ${code.slice(0, 20)}`);
    }
    return {
      isRequest: false,
      method: '',
      requestUri: '',
      status: Number(code),
      reason: sp2 === -1 ? '' : rest.slice(sp2 + 1),
      version,
    };
  }
  // Request-Line = Method SP Request-URI SP SIP-Version CRLF: exactly one SP between elements
  // (RFC 4475 §3.1.2.8-10: extra or trailing whitespace is rejected, never forwarded).
  const sp1 = text.indexOf(' ');
  const sp2 = sp1 === -1 ? -1 : text.indexOf(' ', sp1 + 1);
  if (sp1 <= 0 || sp2 === -1) {
    return err(SipErrorCode.BAD_START_LINE, 'Malformed Request-Line');
  }
  const method = text.slice(0, sp1);
  const requestUri = text.slice(sp1 + 1, sp2);
  const version = text.slice(sp2 + 1);
  for (let i = 0; i < method.length; i++) {
    const c = method.charCodeAt(i);
    if (c > 0x7f || TOKEN[c] !== 1) {
      return err(SipErrorCode.BAD_START_LINE, 'Malformed method in Request-Line');
    }
  }
  if (requestUri.length === 0 || requestUri.indexOf('\t') !== -1) {
    return err(SipErrorCode.BAD_START_LINE, 'Whitespace in Request-Line');
  }
  if (!isVersion(version)) {
    return err(SipErrorCode.BAD_START_LINE, 'Malformed SIP-Version in Request-Line');
  }
  return { isRequest: true, method, requestUri, status: 0, reason: '', version };
}

/** What could be read from a failed message, so that a proxy can still answer 400. */
export function partialFrom(buf: Buffer, start: number, head: ScannedHead): PartialMessage {
  const out: {
    method?: string;
    status?: number;
    via?: string[];
    callId?: string;
    cseq?: string;
    from?: string;
    to?: string;
  } = {};
  const sl = decodeUtf8(buf, start, head.startLineEnd);
  const first = sl.split(' ', 2);
  if (sl.toUpperCase().startsWith('SIP/')) {
    const n = Number(first[1]);
    if (Number.isInteger(n) && n >= 100 && n <= 699) out.status = n;
  } else if (first[0] !== undefined && first[0].length > 0 && first[0].length < 64) {
    out.method = first[0];
  }
  const value = (h: HeaderLine): string => {
    const v = h.valueStart >= h.valueEnd ? '' : decodeUtf8(buf, h.valueStart, h.valueEnd);
    return h.folded ? unfold(v).trim() : v;
  };
  for (const h of head.lines) {
    switch (h.id) {
      case H.VIA:
        (out.via ??= []).push(...splitList(value(h)));
        break;
      case H.CALL_ID:
        out.callId ??= value(h);
        break;
      case H.CSEQ:
        out.cseq ??= value(h);
        break;
      case H.FROM:
        out.from ??= value(h);
        break;
      case H.TO:
        out.to ??= value(h);
        break;
      default:
        break;
    }
  }
  return out;
}

function fail(error: SipParseError, partial?: PartialMessage): ParseResult {
  return { ok: false, error: partial === undefined ? error : { ...error, partial } };
}

/** Builds the message from a scanned head whose body ends at `end`. */
export function buildMessage(
  buf: Buffer,
  start: number,
  head: ScannedHead,
  end: number,
): ParseResult {
  if (head.error !== undefined) return fail(head.error, partialFrom(buf, start, head));
  uriRange.start = -1;
  const sl =
    fastStartLine(buf, start, head.startLineEnd, true) ??
    parseStartLineText(buf, start, head.startLineEnd);
  if ('code' in sl) return fail(sl, partialFrom(buf, start, head));
  const message: SipMessage = new Message(buf, start, end, head, sl, uriRange.start, uriRange.end);
  return { ok: true, message };
}

export function toBuffer(bytes: Uint8Array | string): Buffer {
  if (typeof bytes === 'string') return Buffer.from(bytes, 'utf8');
  if (Buffer.isBuffer(bytes)) return bytes;
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Parses one datagram (RFC 3261 §18.3 message-oriented framing). Leading CRLFs are skipped;
 * with Content-Length the body is that many bytes and any further bytes are ignored; without it
 * the body runs to the end of the datagram. Never throws on wire input.
 */
export function parse(bytes: Uint8Array | string, opts?: ParseOptions): ParseResult {
  const limits = resolveLimits(opts);
  const buf = toBuffer(bytes);
  const len = buf.length;
  if (len > limits.maxMessageBytes) {
    return fail(err(SipErrorCode.MESSAGE_TOO_LARGE, 'Message too large'));
  }
  let start = 0;
  while (start < len && (buf[start] === CR || buf[start] === LF)) start++;
  if (start >= len) return fail(err(SipErrorCode.EMPTY, 'Empty message'));
  const head = scanHead(buf, start, len, limits);
  if (head.error !== undefined) return fail(head.error, partialFrom(buf, start, head));
  let end = len;
  if (head.contentLength >= 0) {
    if (head.contentLength > limits.maxBodyBytes) {
      return fail(
        err(SipErrorCode.BODY_TOO_LARGE, 'Body too large'),
        partialFrom(buf, start, head),
      );
    }
    // "If the transport packet ends before the end of the message body, this is considered an
    // error. If the message is a response, it MUST be discarded. If the message is a request,
    // the element SHOULD generate a 400 (Bad Request) response." (RFC 3261 §18.3)
    end = head.bodyStart + head.contentLength;
    if (end > len) {
      return fail(
        err(SipErrorCode.BODY_TRUNCATED, 'Content-Length exceeds the datagram body'),
        partialFrom(buf, start, head),
      );
    }
  } else if (len - head.bodyStart > limits.maxBodyBytes) {
    return fail(err(SipErrorCode.BODY_TOO_LARGE, 'Body too large'), partialFrom(buf, start, head));
  }
  return buildMessage(buf, start, head, end);
}
