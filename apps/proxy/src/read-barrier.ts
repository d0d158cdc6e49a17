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
 * the probe is back in the next turn of the event loop.
 *
 * Only sockets no other process reads get probes: the listeners of a single process, or each
 * worker's private sockets (where the responses to what that worker sends arrive). A probe lost
 * to a full receive buffer releases its waiters after `timeoutMs`.
 *
 * The worker dispatch uses one on its loopback socket to keep a call's messages in order
 * (dispatch.ts). Each turn of the event loop that has waiters sends its own probes at its end
 * (without waiting for earlier rounds), so what was queued before a waiter came is read first.
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
  /** Longest wait for the probes (a probe dropped by a full buffer): default 1000 ms. */
  readonly timeoutMs?: number;
  /** A waiter threw (the others still run). */
  readonly onError?: (err: unknown) => void;
  /** A round was released by its timeout (called for the first one only). */
  readonly onFirstTimeout?: () => void;
}

/** One probe round: its sequence number, the probes not back yet, who waits on it. */
interface Round {
  readonly seq: number;
  outstanding: number;
  readonly waiters: (() => void)[];
  /** Set when the probes leave (at the end of the turn the round started in). */
  timer: NodeJS.Timeout | undefined;
}

export class ReadBarrier {
  readonly #targets: () => readonly BarrierTarget[];
  readonly #timeoutMs: number;
  readonly #onError: ((err: unknown) => void) | undefined;
  readonly #onFirstTimeout: (() => void) | undefined;
  readonly #token = randomBytes(16);
  /** Rounds in flight, oldest first: a socket returns its probes in the order they were sent. */
  #rounds: Round[] = [];
  /** The round started in this turn of the event loop: later waiters of the turn join it. */
  #open: Round | undefined;
  #seq = 0;
  /** Probes sent, and rounds released by the timeout instead of their probes. */
  readonly stats = { probes: 0, timeouts: 0 };

  constructor(opts: ReadBarrierOptions) {
    this.#targets = opts.targets;
    this.#timeoutMs = opts.timeoutMs ?? 1_000;
    this.#onError = opts.onError;
    this.#onFirstTimeout = opts.onFirstTimeout;
  }

  /**
   * Calls `fn` once the probes sent at the end of this turn of the event loop are back: what was
   * queued on the sockets before `fn` came is read first.
   */
  wait(fn: () => void): void {
    const open = this.#open;
    if (open !== undefined) {
      open.waiters.push(fn);
      return;
    }
    const targets = this.#targets();
    if (targets.length === 0) {
      this.#run([fn]);
      return;
    }
    this.#seq = (this.#seq + 1) >>> 0;
    const round: Round = {
      seq: this.#seq,
      outstanding: targets.length,
      waiters: [fn],
      timer: undefined,
    };
    this.#rounds.push(round);
    this.#open = round;
    // The probes leave at the end of this turn of the event loop, after every waiter of the turn
    // joined: each of those waiters' place in the queues is then ahead of the probes.
    setImmediate(() => {
      if (this.#open === round) this.#open = undefined;
      if (this.#rounds.includes(round)) this.#send(round, targets);
    });
  }

  #send(round: Round, targets: readonly BarrierTarget[]): void {
    const probe = Buffer.alloc(PROBE_BYTES);
    probe.write('PHR', 1, 'latin1');
    this.#token.copy(probe, TOKEN_AT);
    probe.writeUInt32BE(round.seq, SEQ_AT);
    round.timer = setTimeout(() => {
      this.#releaseThrough(round);
      if (this.stats.timeouts++ === 0) {
        try {
          this.#onFirstTimeout?.();
        } catch (err) {
          this.#onError?.(err);
        }
      }
    }, this.#timeoutMs);
    round.timer.unref();
    for (const t of targets) {
      this.stats.probes++;
      try {
        t.socket.send(probe, t.port, t.address, (err) => {
          if (err) this.#unprobed(round);
        });
      } catch {
        this.#unprobed(round);
      }
    }
  }

  /**
   * Called with every datagram of a probed socket before anything else: true when it is one of
   * this barrier's probes (consumed), false for anything else.
   */
  take(bytes: Buffer): boolean {
    if (bytes.length !== PROBE_BYTES || bytes[0] !== 0) return false;
    if (this.#token.compare(bytes, TOKEN_AT, SEQ_AT) !== 0) return false;
    // Rounds in flight have consecutive sequence numbers, oldest first. A probe of a round
    // already released (by its timeout) is consumed and ignored.
    const first = this.#rounds[0];
    if (first === undefined) return true;
    const round = this.#rounds[(bytes.readUInt32BE(SEQ_AT) - first.seq) >>> 0];
    if (round !== undefined && --round.outstanding === 0) this.#releaseThrough(round);
    return true;
  }

  /** Releases every waiter now (the sockets are closing or being rebound). */
  close(): void {
    const last = this.#rounds[this.#rounds.length - 1];
    if (last !== undefined) this.#releaseThrough(last);
  }

  /**
   * A probe could not be sent (no route to the socket's own address, e.g. no `::1`; the socket
   * closed): that socket cannot be waited for, so the round does not wait for it.
   */
  #unprobed(round: Round): void {
    if (this.#rounds.includes(round) && --round.outstanding === 0) this.#releaseThrough(round);
  }

  /** Releases `round` and every older one, in order. */
  #releaseThrough(round: Round): void {
    while (this.#rounds.length > 0) {
      const r = this.#rounds.shift() as Round;
      if (r.timer !== undefined) clearTimeout(r.timer);
      if (this.#open === r) this.#open = undefined;
      this.#run(r.waiters);
      if (r === round) return;
    }
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
