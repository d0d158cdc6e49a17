/**
 * SipStreamParser: framing for stream transports (TCP, TLS) per RFC 3261 §18.3. Chunks go in,
 * whole messages come out; a message may be split anywhere (even between CR and LF) and one chunk
 * may hold several messages. CRLF keep-alives before a start line are skipped (RFC 3261 §7.5,
 * RFC 5626 §3.5.1). The parser keeps a cursor, so a message fed one byte at a time is scanned
 * once, not once per byte.
 */
import { Buffer } from 'node:buffer';
import { CR, LF } from './bytes.js';
import { SipErrorCode } from './errors.js';
import {
  buildMessage,
  partialFrom,
  resolveLimits,
  scanHead,
  type Limits,
  type ScannedHead,
} from './parse.js';
import type { ParseOptions, ParseResult, SipParseError } from './types.js';

export interface StreamParserOptions extends ParseOptions {
  /** Called for every framed message (same objects that `push` returns). */
  readonly onMessage?: (result: ParseResult) => void;
}

export class SipStreamParser {
  readonly #limits: Limits;
  readonly #onMessage: ((result: ParseResult) => void) | undefined;
  #buf: Buffer;
  #len = 0;
  /** Start of the message being framed. */
  #pos = 0;
  /** Where the search for the end of the head resumes. */
  #scan = 0;
  /** Scanned head of the current message, once its end was found. */
  #head: ScannedHead | undefined;
  #failed: SipParseError | undefined;

  constructor(opts?: StreamParserOptions) {
    this.#limits = resolveLimits(opts);
    this.#onMessage = opts?.onMessage;
    this.#buf = Buffer.allocUnsafe(4096);
  }

  /**
   * Set once the byte stream became unframeable (bad or conflicting Content-Length, a limit
   * exceeded). RFC 3261 §18.3 leaves no way to resynchronise: the connection should be closed.
   */
  get failed(): SipParseError | undefined {
    return this.#failed;
  }

  /** Bytes held while waiting for the rest of a message. */
  get buffered(): number {
    return this.#len - this.#pos;
  }

  /** Feeds a chunk; returns every message (or per-message error) completed by it. */
  push(chunk: Uint8Array): ParseResult[] {
    const out: ParseResult[] = [];
    if (this.#failed !== undefined) return out;
    this.#append(chunk);
    for (;;) {
      const r = this.#next();
      if (r === undefined) break;
      out.push(r);
      this.#onMessage?.(r);
      if (this.#failed !== undefined) break;
    }
    this.#compact();
    return out;
  }

  /**
   * Signals the end of the stream. Returns an `SIP_ERR_INCOMPLETE` error when a partial message
   * is left (e.g. a head never closed by an empty line, or a body shorter than Content-Length),
   * nothing when only keep-alive whitespace remains.
   */
  end(): ParseResult[] {
    if (this.#failed !== undefined) return [];
    const buf = this.#buf;
    let p = this.#pos;
    while (p < this.#len && (buf[p] === CR || buf[p] === LF)) p++;
    if (p >= this.#len) return [];
    const head = this.#head ?? scanHead(buf, p, this.#len, this.#limits);
    const error: SipParseError = {
      code: SipErrorCode.INCOMPLETE,
      reason: 'Stream ended inside a message',
      partial: partialFrom(Buffer.from(buf.subarray(0, this.#len)), p, head),
    };
    this.#failed = error;
    const r: ParseResult = { ok: false, error };
    this.#onMessage?.(r);
    return [r];
  }

  #append(chunk: Uint8Array): void {
    const need = this.#len + chunk.length;
    if (need > this.#buf.length) {
      let cap = Math.max(this.#buf.length * 2, 4096);
      while (cap < need) cap *= 2;
      const nb = Buffer.allocUnsafe(cap);
      this.#buf.copy(nb, 0, 0, this.#len);
      this.#buf = nb;
    }
    this.#buf.set(chunk, this.#len);
    this.#len = need;
  }

  #compact(): void {
    if (this.#pos === 0) return;
    const shift = this.#pos;
    if (shift === this.#len) {
      this.#len = 0;
    } else if (shift > this.#buf.length / 2 || this.#len === this.#buf.length) {
      this.#buf.copy(this.#buf, 0, shift, this.#len);
      this.#len -= shift;
    } else {
      return;
    }
    this.#pos = 0;
    this.#scan = Math.max(0, this.#scan - shift);
    if (this.#head !== undefined) rebase(this.#head, shift);
  }

  #fail(code: string, reason: string): ParseResult {
    const error: SipParseError = { code, reason };
    this.#failed = error;
    // Nothing more will be framed: let go of whatever was buffered.
    this.#buf = Buffer.allocUnsafe(0);
    this.#len = 0;
    this.#pos = 0;
    this.#scan = 0;
    this.#head = undefined;
    return { ok: false, error };
  }

  /** Frames the next message, or returns undefined when more bytes are needed. */
  #next(): ParseResult | undefined {
    const buf = this.#buf;
    const len = this.#len;
    const limits = this.#limits;
    if (this.#head === undefined) {
      while (this.#pos < len && (buf[this.#pos] === CR || buf[this.#pos] === LF)) this.#pos++;
      if (this.#scan < this.#pos) this.#scan = this.#pos;
      // Find the empty line: LF followed by LF or by CR LF.
      let i = this.#scan;
      let headEnd = -1;
      while (i < len) {
        if (buf[i] !== LF) {
          i++;
          continue;
        }
        if (i + 1 >= len) break;
        const n = buf[i + 1];
        if (n === LF) {
          headEnd = i + 2;
          break;
        }
        if (n === CR) {
          if (i + 2 >= len) break;
          if (buf[i + 2] === LF) {
            headEnd = i + 3;
            break;
          }
        }
        i++;
      }
      if (headEnd === -1) {
        this.#scan = i;
        if (len - this.#pos > limits.maxMessageBytes) {
          return this.#fail(SipErrorCode.MESSAGE_TOO_LARGE, 'Message head too large');
        }
        return undefined;
      }
      const head = scanHead(buf, this.#pos, headEnd, limits);
      if (head.fatal && head.error !== undefined) {
        return this.#fail(head.error.code, head.error.reason);
      }
      this.#head = head;
      this.#scan = headEnd;
    }
    const head = this.#head;
    // RFC 3261 §18.3: on stream transports Content-Length frames the body; a message without it
    // is taken to have none (it MUST be present, so a sender that omits it sends no body).
    const cl = head.contentLength < 0 ? 0 : head.contentLength;
    if (cl > limits.maxBodyBytes) {
      return this.#fail(SipErrorCode.BODY_TOO_LARGE, 'Body too large');
    }
    const end = head.bodyStart + cl;
    if (end - this.#pos > limits.maxMessageBytes) {
      return this.#fail(SipErrorCode.MESSAGE_TOO_LARGE, 'Message too large');
    }
    if (end > len) return undefined;
    // The message gets its own copy: the stream buffer is reused.
    const start = this.#pos;
    const own = Buffer.allocUnsafe(end - start);
    buf.copy(own, 0, start, end);
    rebase(head, start);
    this.#pos = end;
    this.#scan = end;
    this.#head = undefined;
    return buildMessage(own, 0, head, end - start);
  }
}

function rebase(head: ScannedHead, shift: number): void {
  head.startLineEnd -= shift;
  head.startLineNext -= shift;
  head.sepStart -= shift;
  head.bodyStart -= shift;
  for (const h of head.lines) {
    h.lineStart -= shift;
    h.nameEnd -= shift;
    h.valueStart -= shift;
    h.valueEnd -= shift;
    h.lineEnd -= shift;
  }
}
