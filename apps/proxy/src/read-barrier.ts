/**
 * A read barrier over this process's own UDP sockets (`Transport.afterInput` of
 * @pinhole/transaction): `wait(fn)` calls `fn` once every datagram that had reached the sockets
 * when it was called has been read. Each socket sends a probe datagram to itself; a socket's
 * receive queue is first in, first out, so when the probe comes back everything queued ahead of
 * it has been handed to the proxy.
 *
 * Why: a retransmission timer (Timer A of a forwarded INVITE, E of a BYE, G of a final response)
 * fires in the timers phase of the event loop, before the poll phase reads the sockets. A proxy
 * that is behind on its input would retransmit a request whose response is already waiting in
 * its socket buffer, and the callee gets an INVITE again after it answered (SIPp's UAS aborts
 * such a call) while the duplicates add to the load that made the proxy late. Through the
 * barrier, the response is read first and the retransmission does not happen. On an idle proxy
 * the probe is back within the same turn of the event loop.
 *
 * Only sockets no other process reads get probes: the listeners of a single process, or each
 * worker's private sockets (where the responses to what that worker sends arrive). A probe lost
 * to a full receive buffer releases its waiters after `timeoutMs`.
 */
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:dgram';

/** NUL, `PHR`, a 16-byte token of this process, a 32-bit sequence: never a SIP message. */
export const PROBE_BYTES = 24;
const TOKEN_AT = 4;
const SEQ_AT = 20;

/** A socket to probe, with the address its probes are sent to (the socket's own). */
export interface BarrierTarget {
  readonly socket: Socket;
  readonly address: string;
  readonly port: number;
}

export interface ReadBarrierOptions {
  /** The sockets to probe now (they change when the listeners are rebound). */
  readonly targets: () => readonly BarrierTarget[];
  /** Longest wait for the probes (a probe dropped by a full buffer): default 4000 ms. */
  readonly timeoutMs?: number;
  /** A waiter threw (the others still run). */
  readonly onError?: (err: unknown) => void;
}

export class ReadBarrier {
  readonly #targets: () => readonly BarrierTarget[];
  readonly #timeoutMs: number;
  readonly #onError: ((err: unknown) => void) | undefined;
  readonly #token = randomBytes(16);
  /** Waiters the probes in flight answer for. */
  #covered: (() => void)[] = [];
  /** Waiters that came after those probes were sent: they need the next ones. */
  #next: (() => void)[] = [];
  #seq = 0;
  /** Probes of the current sequence not back yet; 0 when none is in flight. */
  #outstanding = 0;
  #timer: NodeJS.Timeout | undefined;
  /** Probes sent, and rounds released by the timeout instead of their probes. */
  readonly stats = { probes: 0, timeouts: 0 };

  constructor(opts: ReadBarrierOptions) {
    this.#targets = opts.targets;
    this.#timeoutMs = opts.timeoutMs ?? 4_000;
    this.#onError = opts.onError;
  }

  wait(fn: () => void): void {
    if (this.#outstanding > 0) {
      this.#next.push(fn);
      return;
    }
    this.#covered.push(fn);
    this.#launch();
  }

  /**
   * Called with every datagram of a probed socket before anything else: true when it is one of
   * this barrier's probes (consumed), false for anything else.
   */
  take(bytes: Buffer): boolean {
    if (bytes.length !== PROBE_BYTES || bytes[0] !== 0) return false;
    if (this.#token.compare(bytes, TOKEN_AT, SEQ_AT) !== 0) return false;
    // A probe of an earlier round (released by its timeout) is consumed and ignored.
    if (bytes.readUInt32BE(SEQ_AT) === this.#seq && this.#outstanding > 0) {
      this.#outstanding--;
      if (this.#outstanding === 0) this.#release();
    }
    return true;
  }

  /** Releases every waiter now (the sockets are closing or being rebound). */
  close(): void {
    this.#outstanding = 0;
    const all = [...this.#covered, ...this.#next];
    this.#covered = [];
    this.#next = [];
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#run(all);
  }

  #launch(): void {
    const targets = this.#targets();
    if (targets.length === 0) {
      this.#release();
      return;
    }
    this.#seq = (this.#seq + 1) >>> 0;
    const probe = Buffer.alloc(PROBE_BYTES);
    probe.write('PHR', 1, 'latin1');
    this.#token.copy(probe, TOKEN_AT);
    probe.writeUInt32BE(this.#seq, SEQ_AT);
    this.#outstanding = targets.length;
    for (const t of targets) {
      this.stats.probes++;
      try {
        // A failed send leaves the round to its timeout.
        t.socket.send(probe, t.port, t.address, () => undefined);
      } catch {
        // the socket closed under us: the same
      }
    }
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.stats.timeouts++;
      this.#release();
    }, this.#timeoutMs);
    this.#timer.unref();
  }

  #release(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#outstanding = 0;
    const ready = this.#covered;
    this.#covered = this.#next;
    this.#next = [];
    if (this.#covered.length > 0) this.#launch();
    this.#run(ready);
  }

  #run(waiters: readonly (() => void)[]): void {
    for (const fn of waiters) {
      try {
        fn();
      } catch (err) {
        this.#onError?.(err);
      }
    }
  }
}
