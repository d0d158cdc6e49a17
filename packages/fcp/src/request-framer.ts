/**
 * Streaming framer for requests on a TCP connection. A request ends with an empty line
 * (spec §1, §6 #7: any `EOL EOL`, CRs optional; a line of only SP/HT/CR counts as empty). Data
 * may arrive in any split: the framer keeps its cursor and resumes on the next chunk. A first
 * line `QUIT` (fcpd extension, §6 #33) is reported on its own line, without an empty line.
 */
const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const HT = 0x09;

export type FramerEvent =
  | { readonly kind: 'request'; readonly text: string }
  | { readonly kind: 'quit' }
  | { readonly kind: 'too-long'; readonly limit: number };

export interface RequestFramerOptions {
  /** Maximum bytes of one request including line ends; default 8192 (spec §6 #7). */
  readonly maxRequestBytes?: number | undefined;
}

export const DEFAULT_MAX_REQUEST_BYTES = 8192;

export class RequestFramer {
  readonly maxRequestBytes: number;
  #buf: Buffer = Buffer.alloc(0);
  /** Where the current request starts in #buf. */
  #reqStart = 0;
  /** Where the current line starts. */
  #lineStart = 0;
  /** Scan position (bytes before it were already looked at). */
  #scan = 0;
  /** The current line has a byte other than SP/HT/CR. */
  #lineHasContent = false;
  /** The current request has at least one non-empty line. */
  #reqHasContent = false;
  #failed = false;

  constructor(options: RequestFramerOptions = {}) {
    this.maxRequestBytes = options.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES;
  }

  /** Bytes buffered for an incomplete request. */
  get pendingBytes(): number {
    return this.#buf.length - this.#reqStart;
  }

  /**
   * Feeds a chunk; returns the events it completes, in order. After `too-long` the framer stops
   * (the stream cannot be re-synchronised reliably); the caller answers 400 and closes.
   */
  push(chunk: Buffer): FramerEvent[] {
    if (this.#failed) return [];
    const events: FramerEvent[] = [];
    // Drop consumed bytes before appending, so the buffer holds at most one partial request.
    if (this.#reqStart > 0) {
      this.#buf = this.#buf.subarray(this.#reqStart);
      this.#scan -= this.#reqStart;
      this.#lineStart -= this.#reqStart;
      this.#reqStart = 0;
    }
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    const buf = this.#buf;
    for (let i = this.#scan; i < buf.length; i++) {
      const c = buf[i];
      if (c !== LF) {
        if (c !== SP && c !== HT && c !== CR) this.#lineHasContent = true;
        if (i + 1 - this.#reqStart > this.maxRequestBytes) {
          this.#failed = true;
          events.push({ kind: 'too-long', limit: this.maxRequestBytes });
          return events;
        }
        continue;
      }
      if (!this.#lineHasContent) {
        if (this.#reqHasContent) {
          events.push({ kind: 'request', text: buf.toString('latin1', this.#reqStart, i + 1) });
          this.#reqHasContent = false;
        }
        this.#reqStart = i + 1;
      } else if (!this.#reqHasContent && isQuit(buf, this.#lineStart, i)) {
        events.push({ kind: 'quit' });
        this.#reqStart = i + 1;
      } else {
        this.#reqHasContent = true;
      }
      this.#lineStart = i + 1;
      this.#lineHasContent = false;
    }
    this.#scan = buf.length;
    if (this.#reqStart >= buf.length) {
      this.#buf = Buffer.alloc(0);
      this.#scan = this.#lineStart = this.#reqStart = 0;
    }
    return events;
  }
}

function isQuit(buf: Buffer, start: number, end: number): boolean {
  let s = start;
  let e = end;
  while (s < e && isBlank(buf[s])) s++;
  while (e > s && isBlank(buf[e - 1])) e--;
  return e - s === 4 && buf.toString('latin1', s, e).toUpperCase() === 'QUIT';
}

function isBlank(c: number | undefined): boolean {
  return c === SP || c === HT || c === CR;
}
