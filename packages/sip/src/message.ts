/**
 * The parsed message: raw bytes plus a header index. Values are decoded and parsed on first use
 * and cached; edits change the index in place (no reparse) and `serialize` reassembles the bytes.
 */
import { Buffer, isAscii } from 'node:buffer';
import {
  UINT32_MAX,
  decodeLatin1,
  decodeUtf8,
  indexOfByte,
  isToken,
  parseDigits,
  writeUtf8,
} from './bytes.js';
import { SipError, SipErrorCode, isSipError } from './errors.js';
import { CANONICAL, H, LIST_HEADERS, PRETTY, resolveName } from './header-names.js';
import { firstListElement, splitList, unfold } from './lex.js';
import * as fast from './fast.js';
import { parseContact, parseNameAddr, parseNameAddrLazy } from './name-addr.js';
import { readParams } from './params.js';
import type {
  Contact,
  CSeq,
  HeaderField,
  NameAddr,
  SessionExpires,
  SipMessage,
  SipUri,
  Via,
} from './types.js';
import { parseUri } from './uri.js';
import { parseVia } from './via.js';

// Named bytes as constants of this module, not imports: optimized code reads an imported binding
// through its module cell with a hole check on every use (serialisation writes these per line).
const HT = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const COMMA = 0x2c;
const COLON = 0x3a;

// What the read accessors use on every message, as constants of this module too: an imported
// binding is a module cell, read with a hole check (and, for an object, a map check) at every
// use in optimized code; a module-local constant is folded to its value.
const scanTopVia: typeof fast.scanTopVia = fast.scanTopVia;
const scanNameAddr: typeof fast.scanNameAddr = fast.scanNameAddr;
const scanCSeq: typeof fast.scanCSeq = fast.scanCSeq;
const FastVia: typeof fast.FastVia = fast.FastVia;
const FastNameAddr: typeof fast.FastNameAddr = fast.FastNameAddr;
const found: { start: number; end: number } = fast.found;
const viaOkB: typeof fast.viaOkB = fast.viaOkB;
const nameAddrOkB: typeof fast.nameAddrOkB = fast.nameAddrOkB;
const latin1: typeof decodeLatin1 = decodeLatin1;
const VIA: number = H.VIA;
const FROM: number = H.FROM;
const TO: number = H.TO;
const CALL_ID: number = H.CALL_ID;
const CSEQ: number = H.CSEQ;
const MAX_FORWARDS: number = H.MAX_FORWARDS;
const CONTENT_LENGTH: number = H.CONTENT_LENGTH;

export { decodeLatin1, decodeUtf8 };

/**
 * One header line. Wire lines point into the message buffer (`lineStart >= 0`); lines added or
 * rewritten by an edit are synthetic (`lineStart === -1`) and carry their text.
 */
export class HeaderLine {
  id: number;
  lineStart: number;
  nameEnd: number;
  valueStart: number;
  valueEnd: number;
  lineEnd: number;
  folded: boolean;
  rawName: string | undefined;
  value: string | undefined;
  canonical: string | undefined;
  /**
   * For a synthetic line that replaced a wire line (a rewritten value): where its name still is
   * in the message buffer (`buf[nameStart..nameEnd)`), so the name is copied, never decoded.
   */
  nameStart: number;

  constructor(
    id: number,
    lineStart: number,
    nameEnd: number,
    valueStart: number,
    valueEnd: number,
    lineEnd: number,
    folded: boolean,
  ) {
    this.id = id;
    this.lineStart = lineStart;
    this.nameEnd = nameEnd;
    this.valueStart = valueStart;
    this.valueEnd = valueEnd;
    this.lineEnd = lineEnd;
    this.folded = folded;
    this.rawName = undefined;
    this.value = undefined;
    this.canonical = undefined;
    this.nameStart = -1;
  }

  /** A synthetic line with a new value that keeps the wire line's name bytes. */
  static rewritten(wire: HeaderLine, value: string): HeaderLine {
    const h = new HeaderLine(wire.id, -1, wire.nameEnd, -1, -1, -1, false);
    h.nameStart = wire.lineStart >= 0 ? wire.lineStart : wire.nameStart;
    h.rawName = wire.rawName;
    h.canonical = wire.canonical;
    h.value = value;
    return h;
  }

  static synthetic(id: number, rawName: string, canonical: string, value: string): HeaderLine {
    const h = new HeaderLine(id, -1, -1, -1, -1, -1, false);
    h.rawName = rawName;
    h.canonical = canonical;
    h.value = value;
    return h;
  }
}

/** Offsets of a scanned message head, as produced by the scanner (its head object is one). */
export interface MessageLayout {
  /** End of the start line's content (before CR LF). */
  readonly startLineEnd: number;
  /** First byte after the start line's terminator. */
  readonly startLineNext: number;
  readonly lines: HeaderLine[];
  /** Start of the empty line ending the head (== bodyStart when it is missing). */
  readonly sepStart: number;
  readonly bodyStart: number;
  /**
   * The Content-Length value the scanner read and framed the message with (every Content-Length
   * line has it), -1 when there is none; absent when not known (a clone).
   */
  readonly contentLength?: number;
}

export interface StartLine {
  readonly isRequest: boolean;
  readonly method: string;
  readonly requestUri: string;
  readonly status: number;
  readonly reason: string;
  readonly version: string;
}

const EMPTY_BODY = new Uint8Array(0);
/** Scratch bytes for scanning a short added line's text (3 bytes a UTF-16 unit at most). */
const SCRATCH_TEXT = 512;
const SCRATCH: Buffer = Buffer.allocUnsafeSlow(SCRATCH_TEXT * 3);
/** `#touch` ids beside the header ids: every cache, the Request-URI's. */
const ALL = -1;
const REQUEST_URI = -2;
const UNPARSED = Symbol('unparsed');
type Lazy<T> = T | typeof UNPARSED;

/** Message caches of Contact, Route, Record-Route and Content-Type. */
class MoreCaches {
  contacts: Lazy<readonly Contact[]> = UNPARSED;
  route: Lazy<readonly NameAddr[]> = UNPARSED;
  recordRoute: Lazy<readonly NameAddr[]> = UNPARSED;
  contentType: Lazy<string | undefined> = UNPARSED;

  copy(): MoreCaches {
    const c = new MoreCaches();
    c.contacts = this.contacts;
    c.route = this.route;
    c.recordRoute = this.recordRoute;
    c.contentType = this.contentType;
    return c;
  }
}

export class Message implements SipMessage {
  readonly isRequest: boolean;
  #method: string;
  /** Undefined until first asked for when the start line left its range (`#uriStart`). */
  #requestUri: string | undefined;
  readonly #uriStart: number;
  readonly #uriEnd: number;
  readonly status: number;
  readonly reason: string;
  readonly version: string;

  readonly #buf: Buffer;
  readonly #start: number;
  readonly #end: number;
  readonly #startLineEnd: number;
  readonly #startLineNext: number;
  readonly #sepStart: number;
  readonly #bodyStart: number;
  /** The scanner's Content-Length (-1: none or not known); used until the first edit. */
  readonly #scannedLength: number;
  #lines: HeaderLine[];
  #edited = false;
  #startLineEdited = false;
  #newBody: Uint8Array | undefined;
  /** The head decoded as Latin-1 (`#latin1Head`), and whether all of it is ASCII. */
  #latin1: string | undefined = undefined;
  #headAscii: boolean | undefined = undefined;

  // Caches of parsed values: an edit resets those of the header it changed (`#touch`), a clone
  // starts with the original's (the values are immutable and the lines the same).
  #via: Lazy<readonly Via[]> = UNPARSED;
  #topVia: Lazy<Via | undefined> = UNPARSED;
  #from: Lazy<NameAddr | undefined> = UNPARSED;
  #to: Lazy<NameAddr | undefined> = UNPARSED;
  #cseq: Lazy<CSeq | undefined> = UNPARSED;
  #ruri: Lazy<SipUri | undefined> = UNPARSED;
  /** The caches of headers read less often, made on first use (one field less per message). */
  #more: MoreCaches | undefined = undefined;

  /**
   * `buf[start..end)` is the message (the buffer may hold other data before and after it);
   * `layout` gives the head's offsets in `buf`.
   */
  constructor(
    buf: Buffer,
    start: number,
    end: number,
    layout: MessageLayout,
    startLine: StartLine,
    uriStart = -1,
    uriEnd = -1,
  ) {
    this.#buf = buf;
    this.#start = start;
    this.#end = end;
    this.#startLineEnd = layout.startLineEnd;
    this.#startLineNext = layout.startLineNext;
    this.#sepStart = layout.sepStart;
    this.#bodyStart = layout.bodyStart;
    this.#scannedLength = layout.contentLength ?? -1;
    this.#lines = layout.lines;
    this.isRequest = startLine.isRequest;
    this.#method = startLine.method;
    this.#requestUri = uriStart >= 0 ? undefined : startLine.requestUri;
    this.#uriStart = uriStart;
    this.#uriEnd = uriEnd;
    this.status = startLine.status;
    this.reason = startLine.reason;
    this.version = startLine.version;
  }

  get method(): string {
    if (this.isRequest) return this.#method;
    return this.cseq()?.method ?? '';
  }

  get requestUri(): string {
    return (this.#requestUri ??= decodeUtf8(this.#buf, this.#uriStart, this.#uriEnd));
  }

  get body(): Uint8Array {
    if (this.#newBody !== undefined) return this.#newBody;
    if (this.#bodyStart >= this.#end) return EMPTY_BODY;
    return this.#buf.subarray(this.#bodyStart, this.#end);
  }

  /** True once any edit was made (serialize then rebuilds the bytes). */
  get edited(): boolean {
    return this.#edited;
  }

  // ---- raw header access -------------------------------------------------------------------

  #rawName(h: HeaderLine): string {
    if (h.rawName === undefined) {
      const from = h.lineStart >= 0 ? h.lineStart : h.nameStart;
      h.rawName = decodeLatin1(this.#buf, from, h.nameEnd);
    }
    return h.rawName;
  }

  /**
   * 1*DIGIT of a header value as a number, exactly as `parseDigits(value, max)`, read from the
   * bytes of a wire line (no string is made); -1 when not all digits, empty or above `max`.
   */
  #digits(h: HeaderLine, max: number): number {
    if (h.lineStart < 0 || h.folded) return parseDigits(this.#value(h), max);
    const buf = this.#buf;
    const s = h.valueStart;
    const e = h.valueEnd;
    if (e <= s || e - s > 20) return -1;
    let n = 0;
    for (let i = s; i < e; i++) {
      const c = buf[i] as number;
      if (c < 0x30 || c > 0x39) return -1;
      n = n * 10 + (c - 0x30);
    }
    return n > max ? -1 : n;
  }

  #canonical(h: HeaderLine): string {
    if (h.canonical === undefined) {
      h.canonical = h.id !== H.UNKNOWN ? (CANONICAL[h.id] ?? '') : this.#rawName(h).toLowerCase();
    }
    return h.canonical;
  }

  /**
   * The head decoded as Latin-1, once (one call into the runtime, about the cost of decoding a
   * single short value). Byte offsets are string indices, and ASCII bytes decode the same in
   * Latin-1 and UTF-8, so every ASCII value is a substring of it.
   */
  #latin1Head(): string {
    return (this.#latin1 ??= latin1(this.#buf, this.#start, this.#sepStart));
  }

  /** Decodes bytes of the head: a substring of the Latin-1 head when ASCII, else UTF-8. */
  #decode(start: number, end: number): string {
    if (end <= this.#sepStart) {
      let ascii = this.#headAscii;
      if (ascii === undefined && end - start > 64) {
        ascii = this.#headAscii = isAscii(this.#buf.subarray(this.#start, this.#sepStart));
      }
      if (ascii !== true) {
        // OR of the bytes: no branch per byte (a short value is usually ASCII throughout)
        const buf = this.#buf;
        let acc = 0;
        for (let i = start; i < end; i++) acc |= buf[i] as number;
        ascii = acc < 0x80;
      }
      if (ascii) return this.#latin1Head().slice(start - this.#start, end - this.#start);
    }
    return decodeUtf8(this.#buf, start, end);
  }

  #value(h: HeaderLine): string {
    if (h.value === undefined) {
      if (h.valueStart >= h.valueEnd) h.value = '';
      else {
        const v = this.#decode(h.valueStart, h.valueEnd);
        h.value = h.folded ? unfold(v).trim() : v;
      }
    }
    return h.value;
  }

  #first(id: number): HeaderLine | undefined {
    const lines = this.#lines;
    for (let i = 0; i < lines.length; i++) {
      const h = lines[i] as HeaderLine;
      if (h.id === id) return h;
    }
    return undefined;
  }

  #matches(h: HeaderLine, id: number, canonical: string): boolean {
    return id !== H.UNKNOWN ? h.id === id : h.id === H.UNKNOWN && this.#canonical(h) === canonical;
  }

  #linesOf(name: string): HeaderLine[] {
    const { id, canonical } = resolveName(name);
    return this.#lines.filter((h) => this.#matches(h, id, canonical));
  }

  /** List elements of every line of header `id`, in order. */
  #elementsOf(id: number): string[] {
    const out: string[] = [];
    for (const h of this.#lines) {
      if (h.id !== id) continue;
      for (const e of splitList(this.#value(h))) out.push(e);
    }
    return out;
  }

  headers(): readonly HeaderField[] {
    return this.#lines.map((h) => ({
      rawName: this.#rawName(h),
      name: this.#canonical(h),
      value: this.#value(h),
    }));
  }

  get(name: string): string | undefined {
    const { id, canonical } = resolveName(name);
    for (const h of this.#lines) if (this.#matches(h, id, canonical)) return this.#value(h);
    return undefined;
  }

  getAll(name: string): string[] {
    const { id, canonical } = resolveName(name);
    const list = LIST_HEADERS.has(canonical);
    const out: string[] = [];
    const lines = this.#lines;
    for (let i = 0; i < lines.length; i++) {
      const h = lines[i] as HeaderLine;
      if (!this.#matches(h, id, canonical)) continue;
      if (!list) out.push(this.#value(h));
      else for (const e of splitList(this.#value(h))) out.push(e);
    }
    return out;
  }

  has(name: string): boolean {
    const { id, canonical } = resolveName(name);
    return this.#lines.some((h) => this.#matches(h, id, canonical));
  }

  /** How many lines of header `name` there are (for validation of singletons). */
  count(name: string): number {
    return this.#linesOf(name).length;
  }

  /** How many lines header `id` (a known header, `H`) has: no array, no name lookup. */
  countId(id: number): number {
    const lines = this.#lines;
    let n = 0;
    for (let i = 0; i < lines.length; i++) if ((lines[i] as HeaderLine).id === id) n++;
    return n;
  }

  /**
   * For `validate`: true when every line of header `id` is a wire line, not folded, whose value
   * the byte check accepts (`viaOkB`, or `nameAddrOkB` when `nameAddr`), so that every element
   * of the header parses with the full parser. False means "ask the full parsers", not
   * "malformed". No string is made.
   */
  linesOkB(id: number, nameAddr: boolean): boolean {
    const lines = this.#lines;
    const buf = this.#buf;
    for (let i = 0; i < lines.length; i++) {
      const h = lines[i] as HeaderLine;
      if (h.id !== id) continue;
      if (h.lineStart < 0 || h.folded) return false;
      if (
        !(nameAddr
          ? nameAddrOkB(buf, h.valueStart, h.valueEnd)
          : viaOkB(buf, h.valueStart, h.valueEnd))
      ) {
        return false;
      }
    }
    return true;
  }

  /** The values of every line of header `id` (whole lines, lists not split), in order. */
  lineValues(id: number): string[] {
    const out: string[] = [];
    const lines = this.#lines;
    for (let i = 0; i < lines.length; i++) {
      const h = lines[i] as HeaderLine;
      if (h.id === id) out.push(this.#value(h));
    }
    return out;
  }

  /**
   * Whether the To value has a tag, as `parseNameAddr(get('to'))` would say (false when it fails
   * to parse), answered from the cached To when the bytes pass `nameAddrOkB`; undefined: ask
   * `parseNameAddr`.
   */
  toHasTag(): boolean | undefined {
    const h = this.#first(TO);
    if (h === undefined || h.lineStart < 0 || h.folded) return undefined;
    if (!nameAddrOkB(this.#buf, h.valueStart, h.valueEnd)) return undefined;
    return this.to()?.tag !== undefined;
  }

  /** `body.length` without making the body's view. */
  bodyLength(): number {
    if (this.#newBody !== undefined) return this.#newBody.length;
    return this.#bodyStart >= this.#end ? 0 : this.#end - this.#bodyStart;
  }

  // ---- typed accessors ---------------------------------------------------------------------

  requestUriParsed(): SipUri | undefined {
    if (this.#ruri === UNPARSED) {
      if (!this.isRequest) this.#ruri = undefined;
      else {
        const u = parseUri(this.requestUri);
        this.#ruri = isSipError(u) ? undefined : u;
      }
    }
    return this.#ruri;
  }

  via(): readonly Via[] {
    if (this.#via === UNPARSED) {
      const out: Via[] = [];
      const lines = this.#lines;
      let top = true;
      for (let i = 0; i < lines.length; i++) {
        const h = lines[i] as HeaderLine;
        if (h.id !== VIA) continue;
        // A line that is one via-parm in the common form: the scanner's Via (the top one is
        // topVia()'s); else every element through the full parser, up to the first bad one.
        const fast = top ? this.topVia() : this.#fastVia(h);
        top = false;
        if (fast !== undefined && fast.raw.length === this.#valueLength(h)) {
          out.push(fast);
          continue;
        }
        let bad = false;
        for (const e of splitList(this.#value(h))) {
          const v = parseVia(e);
          if (isSipError(v)) {
            bad = true;
            break;
          }
          out.push(v);
        }
        if (bad) break;
      }
      this.#via = out;
    }
    return this.#via;
  }

  /** Length of a line's value as `#value` gives it (without decoding a wire line's). */
  #valueLength(h: HeaderLine): number {
    if (h.value !== undefined || h.lineStart < 0 || h.folded) return this.#value(h).length;
    return h.valueEnd - h.valueStart;
  }

  topVia(): Via | undefined {
    if (this.#topVia === UNPARSED) this.#topVia = this.#readTopVia();
    return this.#topVia;
  }

  #readTopVia(): Via | undefined {
    const h = this.#first(VIA);
    if (h === undefined) return undefined;
    const fast = this.#fastVia(h);
    if (fast !== undefined) return fast;
    const v = parseVia(firstListElement(this.#value(h)));
    return isSipError(v) ? undefined : v;
  }

  /**
   * The first via-parm of a Via line by the byte scanner (fast.ts), undefined when it answers
   * "ask the full parser". A wire line is scanned in place; a line added by an edit (its value a
   * string) is scanned from a scratch copy of its UTF-8 bytes when they are all ASCII, so that
   * byte offsets are string offsets.
   */
  #fastVia(h: HeaderLine): fast.FastVia | undefined {
    if (h.lineStart >= 0 && !h.folded) {
      const end = scanTopVia(this.#buf, h.valueStart, h.valueEnd);
      // The scanner accepts ASCII bytes only: its strings are substrings of the Latin-1 head.
      if (end < 0) return undefined;
      const b = this.#start;
      return new FastVia(
        this.#latin1Head(),
        h.valueStart - b,
        end - b,
        found.start < 0 ? -1 : found.start - b,
        found.end - b,
      );
    }
    const v = h.value;
    if (h.lineStart >= 0 || v === undefined || v.length > SCRATCH_TEXT) return undefined;
    const n = writeUtf8(SCRATCH, 0, v);
    if (n !== v.length) return undefined;
    const end = scanTopVia(SCRATCH, 0, n);
    return end < 0 ? undefined : new FastVia(v, 0, end, found.start, found.end);
  }

  #nameAddr(id: number): NameAddr | undefined {
    const h = this.#first(id);
    if (h === undefined) return undefined;
    if (h.lineStart >= 0 && !h.folded && scanNameAddr(this.#buf, h.valueStart, h.valueEnd)) {
      const b = this.#start;
      return new FastNameAddr(
        this.#latin1Head(),
        h.valueStart - b,
        h.valueEnd - b,
        found.start < 0 ? -1 : found.start - b,
        found.end - b,
      );
    }
    const v = parseNameAddrLazy(this.#value(h));
    return isSipError(v) ? undefined : v;
  }

  from(): NameAddr | undefined {
    if (this.#from === UNPARSED) this.#from = this.#nameAddr(FROM);
    return this.#from;
  }

  to(): NameAddr | undefined {
    if (this.#to === UNPARSED) this.#to = this.#nameAddr(TO);
    return this.#to;
  }

  callId(): string | undefined {
    const h = this.#first(CALL_ID);
    if (h === undefined) return undefined;
    const v = this.#value(h);
    return v.length > 0 ? v : undefined;
  }

  cseq(): CSeq | undefined {
    if (this.#cseq === UNPARSED) {
      const h = this.#first(CSEQ);
      this.#cseq =
        h === undefined
          ? undefined
          : ((h.lineStart >= 0 && !h.folded
              ? scanCSeq(this.#buf, h.valueStart, h.valueEnd)
              : undefined) ?? parseCSeq(this.#value(h)));
    }
    return this.#cseq;
  }

  maxForwards(): number | undefined {
    const h = this.#first(MAX_FORWARDS);
    if (h === undefined) return undefined;
    const n = this.#digits(h, 255);
    return n < 0 ? undefined : n;
  }

  contacts(): readonly Contact[] {
    const more = (this.#more ??= new MoreCaches());
    if (more.contacts === UNPARSED) {
      const out: Contact[] = [];
      for (const e of this.#elementsOf(H.CONTACT)) {
        if (e === '*') continue;
        const c = parseContact(e);
        if (isSipError(c)) break;
        out.push(c);
      }
      more.contacts = out;
    }
    return more.contacts;
  }

  contactStar(): boolean {
    const els = this.#elementsOf(H.CONTACT);
    return els.length === 1 && els[0] === '*';
  }

  #addressList(id: number): NameAddr[] {
    const out: NameAddr[] = [];
    for (const e of this.#elementsOf(id)) {
      const v = parseNameAddr(e);
      if (isSipError(v)) break;
      out.push(v);
    }
    return out;
  }

  route(): readonly NameAddr[] {
    const more = (this.#more ??= new MoreCaches());
    if (more.route === UNPARSED) more.route = this.#addressList(H.ROUTE);
    return more.route;
  }

  recordRoute(): readonly NameAddr[] {
    const more = (this.#more ??= new MoreCaches());
    if (more.recordRoute === UNPARSED) more.recordRoute = this.#addressList(H.RECORD_ROUTE);
    return more.recordRoute;
  }

  contentLength(): number | undefined {
    if (this.#newBody !== undefined) return this.#newBody.length;
    // The scanner already read and checked it (the same digits rule, the same 32-bit bound):
    // no second search of the lines until an edit may have changed them.
    if (!this.#edited && this.#scannedLength >= 0) return this.#scannedLength;
    const h = this.#first(CONTENT_LENGTH);
    if (h === undefined) return undefined;
    const n = this.#digits(h, UINT32_MAX);
    return n < 0 ? undefined : n;
  }

  contentType(): string | undefined {
    const more = (this.#more ??= new MoreCaches());
    if (more.contentType === UNPARSED) more.contentType = this.#readContentType();
    return more.contentType;
  }

  #readContentType(): string | undefined {
    const h = this.#first(H.CONTENT_TYPE);
    if (h === undefined) return undefined;
    const v = this.#value(h);
    const semi = v.indexOf(';');
    const media = (semi === -1 ? v : v.slice(0, semi)).replace(/\s+/g, '').toLowerCase();
    const slash = media.indexOf('/');
    if (slash <= 0 || !isToken(media.slice(0, slash)) || !isToken(media.slice(slash + 1))) {
      return undefined;
    }
    return media;
  }

  expires(): number | undefined {
    const h = this.#first(H.EXPIRES);
    if (h === undefined) return undefined;
    const n = parseDigits(this.#value(h), UINT32_MAX);
    return n < 0 ? undefined : n;
  }

  sessionExpires(): SessionExpires | undefined {
    const h = this.#first(H.SESSION_EXPIRES);
    if (h === undefined) return undefined;
    return parseSessionExpires(this.#value(h));
  }

  minSE(): number | undefined {
    const h = this.#first(H.MIN_SE);
    if (h === undefined) return undefined;
    return parseSessionExpires(this.#value(h))?.delta;
  }

  #tokens(id: number): string[] {
    const out: string[] = [];
    for (const e of this.#elementsOf(id)) if (e.length > 0) out.push(e);
    return out;
  }

  supported(): readonly string[] {
    return this.#tokens(H.SUPPORTED).map((t) => t.toLowerCase());
  }

  require(): readonly string[] {
    return this.#tokens(H.REQUIRE).map((t) => t.toLowerCase());
  }

  /** Proxy-Require option tags, lower case. */
  proxyRequire(): readonly string[] {
    return this.#tokens(H.PROXY_REQUIRE).map((t) => t.toLowerCase());
  }

  allow(): readonly string[] {
    return this.#tokens(H.ALLOW).map((t) => t.toUpperCase());
  }

  bodyText(): string {
    const b = this.body;
    return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8');
  }

  // ---- editing -----------------------------------------------------------------------------

  /**
   * Marks the message edited and drops the cached parses the edit may have changed: those of
   * header `id` (the Request-URI's for `REQUEST_URI`), or all of them for `ALL`.
   */
  #touch(id: number): void {
    this.#edited = true;
    if (id === ALL || id === H.VIA) {
      this.#via = UNPARSED;
      this.#topVia = UNPARSED;
    }
    if (id === ALL || id === H.FROM) this.#from = UNPARSED;
    if (id === ALL || id === H.TO) this.#to = UNPARSED;
    if (id === ALL || id === H.CSEQ) this.#cseq = UNPARSED;
    if (id === ALL || id === REQUEST_URI) this.#ruri = UNPARSED;
    const more = this.#more;
    if (more !== undefined) {
      if (id === ALL || id === H.CONTACT) more.contacts = UNPARSED;
      if (id === ALL || id === H.ROUTE) more.route = UNPARSED;
      if (id === ALL || id === H.RECORD_ROUTE) more.recordRoute = UNPARSED;
      if (id === ALL || id === H.CONTENT_TYPE) more.contentType = UNPARSED;
    }
  }

  #newLine(name: string, value: string): HeaderLine {
    checkHeaderText(name, value);
    const { id, canonical } = resolveName(name);
    const rawName = id !== H.UNKNOWN && name.length > 1 ? (PRETTY[id] ?? name) : name;
    return HeaderLine.synthetic(id, rawName, canonical, value);
  }

  #indexOfFirst(id: number): number {
    const lines = this.#lines;
    for (let i = 0; i < lines.length; i++) if ((lines[i] as HeaderLine).id === id) return i;
    return -1;
  }

  prependVia(value: string): void {
    checkHeaderValue('Via', value);
    const line = HeaderLine.synthetic(H.VIA, 'Via', 'via', value);
    const at = this.#indexOfFirst(H.VIA);
    insertAt(this.#lines, at === -1 ? 0 : at, line);
    this.#touch(H.VIA);
  }

  /** Removes the first element of the first line of header `id`; false when there is none. */
  #removeFirstElement(id: number): boolean {
    const at = this.#indexOfFirst(id);
    if (at === -1) return false;
    const h = this.#lines[at] as HeaderLine;
    // A wire value without a comma byte is one element (or none): the line goes, no decoding.
    if (h.lineStart >= 0 && h.value === undefined) {
      const comma = indexOfByte(this.#buf, COMMA, h.valueStart);
      if (comma === -1 || comma >= h.valueEnd) {
        removeAt(this.#lines, at);
        this.#touch(id);
        return true;
      }
    }
    const elements = splitList(this.#value(h));
    if (elements.length <= 1) removeAt(this.#lines, at);
    else {
      const rest = HeaderLine.synthetic(
        h.id,
        this.#rawName(h),
        this.#canonical(h),
        elements.slice(1).join(', '),
      );
      this.#lines[at] = rest;
    }
    this.#touch(id);
    return true;
  }

  removeTopVia(): void {
    this.#removeFirstElement(H.VIA);
  }

  prependRecordRoute(value: string): void {
    checkHeaderValue('Record-Route', value);
    const line = HeaderLine.synthetic(H.RECORD_ROUTE, 'Record-Route', 'record-route', value);
    let at = this.#indexOfFirst(H.RECORD_ROUTE);
    if (at === -1) {
      // After the Via block keeps the common layout; any position is valid (RFC 3261 §7.3.1).
      const lines = this.#lines;
      let lastVia = -1;
      for (let i = 0; i < lines.length; i++) if ((lines[i] as HeaderLine).id === H.VIA) lastVia = i;
      at = lastVia + 1;
    }
    insertAt(this.#lines, at, line);
    this.#touch(H.RECORD_ROUTE);
  }

  removeTopRoute(): void {
    this.#removeFirstElement(H.ROUTE);
  }

  setRequestUri(uri: string): void {
    if (!this.isRequest) throw new SipError(SipErrorCode.INVALID_ARGUMENT, 'not a request');
    if (/[\s]/.test(uri) || uri.length === 0) {
      throw new SipError(SipErrorCode.INVALID_ARGUMENT, 'Request-URI must be non-empty, no LWS');
    }
    this.#requestUri = uri;
    this.#startLineEdited = true;
    this.#touch(REQUEST_URI);
  }

  decrementMaxForwards(): number {
    const at = this.#indexOfFirst(H.MAX_FORWARDS);
    if (at === -1) {
      // RFC 3261 §16.6 step 3: "If the copy does not contain a Max-Forwards header field, the
      // proxy MUST add one with a field value, which SHOULD be 70."
      const line = this.#newLine('Max-Forwards', '70');
      const lastVia = this.#lines.reduce((acc, h, i) => (h.id === H.VIA ? i : acc), -1);
      insertAt(this.#lines, lastVia + 1, line);
      this.#touch(H.MAX_FORWARDS);
      return 70;
    }
    const h = this.#lines[at] as HeaderLine;
    const current = this.#digits(h, UINT32_MAX);
    // "If the copy contains a Max-Forwards header field, the proxy MUST decrement its value by
    // one (1)." A malformed value is replaced by 70 - 1; zero stays zero (answer 483 first).
    const next = current < 0 ? 69 : current === 0 ? 0 : Math.min(current, 256) - 1;
    this.#lines[at] = HeaderLine.rewritten(
      h,
      next < DIGIT_TEXT.length ? (DIGIT_TEXT[next] as string) : String(next),
    );
    this.#touch(H.MAX_FORWARDS);
    return next;
  }

  setBody(body: Uint8Array | string, contentType?: string): void {
    const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    this.#newBody = bytes;
    this.setHeader('Content-Length', String(bytes.length));
    if (contentType !== undefined) this.setHeader('Content-Type', contentType);
    this.#touch(H.CONTENT_LENGTH);
  }

  addHeader(name: string, value: string, position: 'first' | 'last' = 'last'): void {
    const line = this.#newLine(name, value);
    if (position === 'first') this.#lines.unshift(line);
    else this.#lines.push(line);
    this.#touch(line.id);
  }

  setHeader(name: string, value: string): void {
    const line = this.#newLine(name, value);
    const { id, canonical } = resolveName(name);
    const at = this.#lines.findIndex((h) => this.#matches(h, id, canonical));
    if (at === -1) {
      this.#lines.push(line);
    } else {
      const old = this.#lines[at] as HeaderLine;
      line.rawName = this.#rawName(old);
      this.#lines[at] = line;
      this.#lines = this.#lines.filter((h, i) => i <= at || !this.#matches(h, id, canonical));
    }
    this.#touch(id);
  }

  removeHeader(name: string): number {
    const { id, canonical } = resolveName(name);
    const before = this.#lines.length;
    this.#lines = this.#lines.filter((h) => !this.#matches(h, id, canonical));
    const removed = before - this.#lines.length;
    if (removed > 0) this.#touch(id);
    return removed;
  }

  clone(): Message {
    const layout: MessageLayout = {
      startLineEnd: this.#startLineEnd,
      startLineNext: this.#startLineNext,
      // The clone shares the line objects (an edit replaces a line in its message's array, never
      // changes one; what a line caches, its decoded name and value, is the same for both).
      lines: this.#lines.slice(),
      sepStart: this.#sepStart,
      bodyStart: this.#bodyStart,
    };
    const m = new Message(this.#buf, this.#start, this.#end, layout, {
      isRequest: this.isRequest,
      method: this.#method,
      requestUri: this.requestUri,
      status: this.status,
      reason: this.reason,
      version: this.version,
    });
    if (this.#edited) m.#edited = true;
    m.#startLineEdited = this.#startLineEdited;
    m.#newBody = this.#newBody;
    m.#latin1 = this.#latin1;
    m.#headAscii = this.#headAscii;
    m.#via = this.#via;
    m.#topVia = this.#topVia;
    m.#from = this.#from;
    m.#to = this.#to;
    m.#cseq = this.#cseq;
    m.#ruri = this.#ruri;
    m.#more = this.#more?.copy();
    return m;
  }

  // ---- serialisation -----------------------------------------------------------------------

  /** The message as bytes: the original bytes when unedited, otherwise reassembled. */
  toBytes(): Buffer {
    if (!this.#edited) return this.#buf.subarray(this.#start, this.#end);
    const buf = this.#buf;
    const lines = this.#lines;
    // Pass 1: the exact size. Pass 2: one allocation, original byte ranges copied (adjacent
    // ranges merged, so an edit in the middle costs two copies) and new text written in place.
    const startLine = this.#startLineEdited
      ? `${this.#method} ${this.requestUri} ${this.version}\r\n`
      : undefined;
    // Upper bound of the size: every original byte, the CR LF the start line, the last header
    // line and the empty line may lack, 3 bytes per UTF-16 unit of new text (no byteLength
    // pass), the new body. Wire lines cost nothing here; unused space goes back to the slab.
    const newBody = this.#newBody;
    let size =
      this.#end -
      this.#start +
      6 +
      (startLine !== undefined ? startLine.length * 3 : 0) +
      (newBody !== undefined ? newBody.length : 0);
    for (let i = 0; i < lines.length; i++) {
      const h = lines[i] as HeaderLine;
      if (h.lineStart < 0) {
        size +=
          (h.rawName === undefined ? h.nameEnd - h.nameStart : h.rawName.length * 3) +
          (h.value ?? '').length * 3 +
          4;
      }
    }
    // A wire line ends after its LF, except a last line that runs to the end of a datagram whose
    // head has no empty line: that one ends at `sepStart`.
    const noLf = this.#sepStart > 0 && buf[this.#sepStart - 1] !== LF ? this.#sepStart : -1;
    // `size` is an upper bound (3 bytes per UTF-16 unit of new text): no byteLength pass.
    const base = reserve(size);
    const out = target;
    // The original message is staged at the end of the reservation with one copy, and its
    // unchanged runs are moved from there with copyWithin (a memmove inside one buffer: no
    // source view to allocate per run). Output never overtakes unread staged bytes: it is at
    // most the original bytes read so far plus the new text, which `size` bounds.
    const len = this.#end - this.#start;
    const stage = base + size - len;
    if (this.#start === 0 && this.#end === buf.length) out.set(buf, stage);
    else out.set(new Uint8Array(buf.buffer, buf.byteOffset + this.#start, len), stage);
    const shift = stage - this.#start;
    let at = base;
    // pending original range [ps, pe), flushed before any text
    let ps = 0;
    let pe = 0;
    if (startLine !== undefined) at += writeText(out, at, startLine);
    else {
      ps = this.#start;
      pe = this.#startLineNext;
      if (this.#startLineNext === this.#startLineEnd) {
        at += moveBytes(buf, out, at, shift, ps, pe);
        ps = pe = 0;
        out[at++] = CR;
        out[at++] = LF;
      }
    }
    for (let i = 0; i < lines.length; i++) {
      const h = lines[i] as HeaderLine;
      if (h.lineStart >= 0) {
        if (pe === h.lineStart && pe > ps) pe = h.lineEnd;
        else {
          if (pe > ps) at += moveBytes(buf, out, at, shift, ps, pe);
          ps = h.lineStart;
          pe = h.lineEnd;
        }
        if (h.lineEnd === noLf) {
          at += moveBytes(buf, out, at, shift, ps, pe);
          ps = pe = 0;
          out[at++] = CR;
          out[at++] = LF;
        }
      } else {
        if (pe > ps) at += moveBytes(buf, out, at, shift, ps, pe);
        ps = pe = 0;
        if (h.rawName === undefined) at += moveBytes(buf, out, at, shift, h.nameStart, h.nameEnd);
        else at += writeText(out, at, h.rawName);
        out[at++] = COLON;
        out[at++] = SP;
        const v = h.value ?? '';
        if (v.length > 0) at += writeText(out, at, v);
        out[at++] = CR;
        out[at++] = LF;
      }
    }
    if (this.#sepStart < this.#bodyStart) {
      if (pe === this.#sepStart && pe > ps) pe = this.#bodyStart;
      else {
        if (pe > ps) at += moveBytes(buf, out, at, shift, ps, pe);
        ps = this.#sepStart;
        pe = this.#bodyStart;
      }
    } else {
      if (pe > ps) at += moveBytes(buf, out, at, shift, ps, pe);
      ps = pe = 0;
      out[at++] = CR;
      out[at++] = LF;
    }
    if (newBody === undefined) {
      if (pe === this.#bodyStart && pe > ps) pe = this.#end;
      else {
        if (pe > ps) at += moveBytes(buf, out, at, shift, ps, pe);
        ps = this.#bodyStart;
        pe = this.#end;
      }
      if (pe > ps) at += moveBytes(buf, out, at, shift, ps, pe);
    } else {
      if (pe > ps) at += moveBytes(buf, out, at, shift, ps, pe);
      out.set(newBody, at);
      at += newBody.length;
    }
    return release(out, base, at);
  }

  toString(): string {
    return this.toBytes().toString('utf8');
  }
}

/** `lines.splice(at, 0, line)` without the array splice allocates for its result. */
function insertAt(lines: HeaderLine[], at: number, line: HeaderLine): void {
  let i = lines.length;
  lines.push(line);
  for (; i > at; i--) lines[i] = lines[i - 1] as HeaderLine;
  lines[at] = line;
}

/** `lines.splice(at, 1)`, likewise. */
function removeAt(lines: HeaderLine[], at: number): void {
  const n = lines.length - 1;
  for (let i = at; i < n; i++) lines[i] = lines[i + 1] as HeaderLine;
  lines.pop();
}

/**
 * Output slab for serialised messages: one 64 KiB allocation serves dozens of forwards (Node's
 * own 8 KiB pool is refilled every few messages of this size, which profiles showed as a cost).
 * A retained message keeps at most one slab alive, as with Node's pool.
 */
const SLAB_BYTES = 64 * 1024;
let slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
let slabUsed = 0;

let target: Buffer = slab;

/** Reserves up to `size` bytes for one message in `target`; returns the start offset there. */
function reserve(size: number): number {
  if (size > SLAB_BYTES >>> 3) {
    target = Buffer.allocUnsafe(size);
    return 0;
  }
  if (slabUsed + size > SLAB_BYTES) {
    slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
    slabUsed = 0;
  }
  target = slab;
  return slabUsed;
}

/** The bytes written to `out[base..end)`; unused reserved slab space goes back to the slab. */
function release(out: Buffer, base: number, end: number): Buffer {
  if (out === slab) slabUsed = (end + 7) & ~7;
  return out.subarray(base, end);
}

/**
 * Writes `text` as UTF-8 at `at`; returns the byte count. Short ASCII text is stored by a loop
 * (cheaper than a call into the runtime up to about 32 characters), the rest by `utf8Write`.
 */
function writeText(out: Buffer, at: number, text: string): number {
  const n = text.length;
  if (n <= 32) {
    let i = 0;
    for (; i < n; i++) {
      const c = text.charCodeAt(i);
      if (c >= 0x80) break;
      out[at + i] = c;
    }
    if (i === n) return n;
    return i + writeUtf8(out, at + i, i === 0 ? text : text.slice(i));
  }
  return writeUtf8(out, at, text);
}

/**
 * Puts the original bytes `src[s..e)` at `out[at..)`: short runs byte by byte from `src`, longer
 * ones moved from their staged copy at `out[s + shift..)`.
 */
function moveBytes(
  src: Buffer,
  out: Buffer,
  at: number,
  shift: number,
  s: number,
  e: number,
): number {
  const n = e - s;
  if (n <= 16) {
    for (let i = 0; i < n; i++) out[at + i] = src[s + i] as number;
  } else {
    out.copyWithin(at, s + shift, e + shift);
  }
  return n;
}

/** Decimal text of 0..255 (every Max-Forwards value), made once. */
const DIGIT_TEXT: readonly string[] = Array.from({ length: 256 }, (_, i) => String(i));

/** Rejects header text that would break framing (CR/LF not followed by WSP, bad names). */
function checkHeaderText(name: string, value: string): void {
  if (!isToken(name)) {
    throw new SipError(SipErrorCode.INVALID_ARGUMENT, `header name is not a token: ${name}`);
  }
  checkHeaderValue(name, value);
}

/** CR, LF and the other controls except HT: they would break the framing of a header line. */
const CONTROL_CHAR = /[\x00-\x08\x0a-\x1f]/;

function checkHeaderValue(name: string, value: string): void {
  // One native regular-expression scan (a charCodeAt loop costs several times more per character).
  if (CONTROL_CHAR.test(value)) {
    throw new SipError(SipErrorCode.INVALID_ARGUMENT, `header ${name} value has a control char`);
  }
}

/** CSeq = 1*DIGIT LWS Method (RFC 3261 §20.16); the number must fit 32 bits unsigned. */
export function parseCSeq(v: string): CSeq | undefined {
  let i = 0;
  while (i < v.length && v.charCodeAt(i) >= 0x30 && v.charCodeAt(i) <= 0x39) i++;
  if (i === 0) return undefined;
  const seq = parseDigits(v.slice(0, i), UINT32_MAX);
  if (seq < 0) return undefined;
  if (v.charCodeAt(i) !== SP && v.charCodeAt(i) !== HT) return undefined;
  const method = v.slice(i).trim();
  if (!isToken(method)) return undefined;
  return { seq, method };
}

/** Session-Expires / Min-SE value: delta-seconds *(SEMI param) (RFC 4028 §4). */
export function parseSessionExpires(v: string): SessionExpires | undefined {
  let i = 0;
  while (i < v.length && v.charCodeAt(i) >= 0x30 && v.charCodeAt(i) <= 0x39) i++;
  const delta = parseDigits(v.slice(0, i), UINT32_MAX);
  if (delta < 0) return undefined;
  const pr = readParams(v, i);
  if (pr === undefined || pr.end !== v.length) return undefined;
  const r = pr.params.get('refresher')?.toLowerCase();
  const refresher = r === 'uac' || r === 'uas' ? r : undefined;
  if (r !== undefined && refresher === undefined) return undefined;
  return { delta, refresher, params: pr.params };
}
