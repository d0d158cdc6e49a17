/**
 * Frames HEP3 packets out of a byte stream (HEP over TCP): the 16-bit total length in the header
 * says where each packet ends. Packets may be split anywhere, and several may come in one chunk.
 * Garbage (no `HEP3` magic, or a length below the header size or above the limit) either ends the
 * stream (`close`, the default: the caller drops the connection) or is skipped up to the next
 * `HEP3` (`resync`), within a bound on the garbage bytes tolerated.
 */
import { HEP_HEADER_BYTES, HEP_MAX_PACKET_BYTES, isHep3Magic } from './hep.js';

export interface HepStreamOptions {
  /** Largest packet accepted (default and maximum 65_535). */
  readonly maxPacketBytes?: number;
  /** What to do on garbage (default `close`). */
  readonly onGarbage?: 'close' | 'resync';
  /** In `resync` mode, garbage bytes tolerated in total before giving up (default 65_536). */
  readonly maxGarbageBytes?: number;
}

export type HepStreamEvent =
  | { readonly type: 'packet'; readonly bytes: Buffer }
  | { readonly type: 'garbage'; readonly bytes: number; readonly reason: string }
  /** The stream cannot continue: the caller closes the connection. */
  | { readonly type: 'fatal'; readonly reason: string };

export class HepStreamFramer {
  readonly #max: number;
  readonly #resync: boolean;
  readonly #maxGarbage: number;
  #buf: Buffer = Buffer.alloc(0);
  #garbage = 0;
  #dead = false;

  constructor(options: HepStreamOptions = {}) {
    this.#max = Math.min(options.maxPacketBytes ?? HEP_MAX_PACKET_BYTES, HEP_MAX_PACKET_BYTES);
    this.#resync = options.onGarbage === 'resync';
    this.#maxGarbage = options.maxGarbageBytes ?? 65_536;
  }

  /** Bytes held waiting for the rest of a packet. */
  get buffered(): number {
    return this.#buf.length;
  }

  /** True once a fatal event was returned; later input is ignored. */
  get dead(): boolean {
    return this.#dead;
  }

  /** Feeds bytes; returns the packets completed and any garbage or fatal event, in order. */
  push(chunk: Uint8Array): HepStreamEvent[] {
    if (this.#dead) return [];
    const events: HepStreamEvent[] = [];
    this.#buf =
      this.#buf.length === 0
        ? Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
        : Buffer.concat([this.#buf, chunk]);
    let off = 0;
    // Each iteration consumes at least one byte or stops, so the loop is bounded by the input.
    while (this.#buf.length - off >= 4) {
      const bad = this.#checkHeader(off);
      if (bad === undefined) {
        if (this.#buf.length - off < HEP_HEADER_BYTES) break;
        const total = this.#buf.readUInt16BE(off + 4);
        if (this.#buf.length - off < total) break;
        // Copy, so a packet never pins the (possibly large) receive buffer.
        events.push({ type: 'packet', bytes: Buffer.from(this.#buf.subarray(off, off + total)) });
        off += total;
        continue;
      }
      if (!this.#resync) {
        events.push({ type: 'fatal', reason: bad });
        this.#die();
        return events;
      }
      const next = this.#findMagic(off + 1);
      const skippedTo = next === -1 ? Math.max(off + 1, this.#buf.length - 3) : next;
      const skipped = skippedTo - off;
      this.#garbage += skipped;
      events.push({ type: 'garbage', bytes: skipped, reason: bad });
      off = skippedTo;
      if (this.#garbage > this.#maxGarbage) {
        events.push({ type: 'fatal', reason: `more than ${this.#maxGarbage} garbage bytes` });
        this.#die();
        return events;
      }
      if (next === -1) break;
    }
    this.#buf = off === 0 ? this.#buf : Buffer.from(this.#buf.subarray(off));
    return events;
  }

  /** The reason the header at `off` is garbage, or undefined when it is (so far) valid. */
  #checkHeader(off: number): string | undefined {
    if (!isHep3Magic(this.#buf, off)) return 'no HEP3 magic';
    if (this.#buf.length - off < HEP_HEADER_BYTES) return undefined;
    const total = this.#buf.readUInt16BE(off + 4);
    if (total < HEP_HEADER_BYTES) return `packet length ${total} is below the header size`;
    if (total > this.#max) return `packet length ${total} exceeds the limit ${this.#max}`;
    // The first chunk header must fit the packet too. Checking it early keeps a stray "HEP3"
    // inside garbage from swallowing the real packets that follow while we wait for its length.
    if (total > HEP_HEADER_BYTES && this.#buf.length - off >= HEP_HEADER_BYTES + 6) {
      const first = this.#buf.readUInt16BE(off + HEP_HEADER_BYTES + 4);
      if (total - HEP_HEADER_BYTES < 6 || first < 6 || first > total - HEP_HEADER_BYTES) {
        return `first chunk length ${first} does not fit packet length ${total}`;
      }
    }
    return undefined;
  }

  #findMagic(from: number): number {
    for (let i = from; i + 4 <= this.#buf.length; i++) {
      if (isHep3Magic(this.#buf, i)) return i;
    }
    return -1;
  }

  #die(): void {
    this.#dead = true;
    this.#buf = Buffer.alloc(0);
  }
}
