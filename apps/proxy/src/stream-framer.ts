/**
 * Content-Length framing of SIP over a byte stream (RFC 3261 §18.3), used for TCP until a
 * connection's bytes are handed to the parser: it only finds where each message ends. CRLF
 * keep-alives between messages (RFC 5626 §3.5.1) are skipped. A missing or bad Content-Length on a
 * stream is unrecoverable (§18.3: "MUST" be present on streams); the framer reports it so the
 * connection can be closed.
 */

const CR = 0x0d;
const LF = 0x0a;

export type FrameResult =
  | { readonly ok: true; readonly messages: Buffer[] }
  | { readonly ok: false; readonly messages: Buffer[]; readonly reason: string };

export class StreamFramer {
  #buf: Buffer = Buffer.alloc(0);
  readonly #maxMessage: number;

  constructor(maxMessageBytes = 65_535) {
    this.#maxMessage = maxMessageBytes;
  }

  push(chunk: Buffer): FrameResult {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    const messages: Buffer[] = [];
    for (let guard = 0; guard < 10_000; guard++) {
      let start = 0;
      while (start < this.#buf.length && (this.#buf[start] === CR || this.#buf[start] === LF)) {
        start++;
      }
      if (start > 0) this.#buf = this.#buf.subarray(start);
      if (this.#buf.length === 0) break;
      const end = this.#headerEnd();
      if (end < 0) {
        if (this.#buf.length > this.#maxMessage) {
          return { ok: false, messages, reason: 'Header section too long' };
        }
        break;
      }
      const cl = contentLength(this.#buf.subarray(0, end));
      if (cl === undefined) return { ok: false, messages, reason: 'Missing Content-Length' };
      if (cl < 0) return { ok: false, messages, reason: 'Bad Content-Length' };
      const total = end + cl;
      if (total > this.#maxMessage) return { ok: false, messages, reason: 'Message too large' };
      if (this.#buf.length < total) break;
      messages.push(Buffer.from(this.#buf.subarray(0, total)));
      this.#buf = this.#buf.subarray(total);
    }
    return { ok: true, messages };
  }

  /** Bytes waiting for the rest of a message. */
  get pending(): number {
    return this.#buf.length;
  }

  /** Index just past the empty line ending the header section, or -1. */
  #headerEnd(): number {
    const b = this.#buf;
    for (let i = 0; i + 1 < b.length; i++) {
      if (b[i] !== LF) continue;
      if (b[i + 1] === LF) return i + 2;
      if (b[i + 1] === CR && i + 2 < b.length && b[i + 2] === LF) return i + 3;
    }
    return -1;
  }
}

/** Content-Length (or compact `l`) from a header section; -1 when malformed. */
export function contentLength(head: Buffer): number | undefined {
  const text = head.toString('latin1');
  const lines = text.split(/\r?\n/);
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    if (name !== 'content-length' && name !== 'l') continue;
    const v = line.slice(colon + 1).trim();
    return /^\d{1,9}$/.test(v) ? Number(v) : -1;
  }
  return undefined;
}
