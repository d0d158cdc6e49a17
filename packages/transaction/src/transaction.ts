/**
 * What the four RFC 3261 §17 machines share: identity, the allowed-edges check, per-state
 * timers on an injected clock, and the host (the layer) they report to.
 */
import type { SipMessage } from '@pinhole/sip';
import type { Address } from './address.js';
import type { ProxyContext } from './proxy.js';
import { TransactionError } from './errors.js';
import type { Clock, TimerHandle, TimerValues } from './timers.js';
import type { OutgoingMessage, SerializedMessage } from './wire.js';

export type TransactionKind = 'ict' | 'nict' | 'ist' | 'nist';

/**
 * Timer names: the letters of RFC 3261 Table 4 and RFC 6026, plus `trying` (the 200 ms before
 * an INVITE server transaction sends 100 Trying itself), `cancel` (§9.1: 64*T1 after a CANCEL),
 * `guard` (a server transaction whose TU never answers), and `2xx` (UAS core 2xx
 * retransmission, §13.3.1.4).
 */
export type TimerName =
  | 'A'
  | 'B'
  | 'C'
  | 'D'
  | 'E'
  | 'F'
  | 'G'
  | 'H'
  | 'I'
  | 'J'
  | 'K'
  | 'L'
  | 'M'
  | 'trying'
  | 'cancel'
  | 'guard'
  | '2xx';

/** How a transaction ended, or what its final result was. */
export type Outcome =
  | { readonly kind: 'response'; readonly status: number; readonly local: boolean }
  | { readonly kind: 'timeout'; readonly timer: TimerName }
  | { readonly kind: 'transport-error'; readonly error: unknown }
  /** Terminated on request (Timer C without a provisional, a local 487, layer shutdown). */
  | { readonly kind: 'aborted'; readonly reason: string };

/** What a machine tells its host (the layer / TU). */
export type Note =
  | { readonly kind: 'response'; readonly message: SipMessage; readonly retransmission: boolean }
  | { readonly kind: 'request-retransmission'; readonly message: SipMessage }
  | { readonly kind: 'ack'; readonly message: SipMessage; readonly endToEnd: boolean }
  | { readonly kind: 'timer-c' }
  | { readonly kind: 'guard' }
  | { readonly kind: 'completed'; readonly outcome: Outcome }
  | { readonly kind: 'failed'; readonly outcome: Outcome }
  | { readonly kind: 'terminated' };

export interface MachineHost {
  readonly clock: Clock;
  /** Passes a message to the transport (a no-op in observer mode). */
  transmit(txn: Transaction, message: OutgoingMessage, destination: Address): void;
  /**
   * The bytes form of a message, for a transaction to keep instead of the parsed message;
   * undefined when the transport cannot send bytes (or in observer mode): keep the message.
   */
  serialize(message: SipMessage): SerializedMessage | undefined;
  notify(txn: Transaction, note: Note): void;
  /** Builds the ACK for a non-2xx final response (§17.1.1.3). */
  buildAck(request: SipMessage, response: SipMessage): SipMessage;
  /** Builds a locally generated response (100 Trying, 408). */
  buildResponse(request: SipMessage, status: number): SipMessage;
  /**
   * Runs `fn` once the transport has read the input it had when called (`Transport.afterInput`),
   * or at once. Retransmission timers fire through it.
   */
  afterInput?(fn: () => void): void;
}

/**
 * The timers whose firing retransmits: they wait for the transport's input to be read (A, E, G,
 * and the UAS core's 2xx retransmission, stopped by the ACK).
 */
const RETRANSMISSION_TIMERS: ReadonlySet<TimerName> = new Set<TimerName>(['A', 'E', 'G', '2xx']);

/** Parameters every machine is created with. */
export interface TransactionInit {
  readonly host: MachineHost;
  /** The table key (also the public id). */
  readonly key: string;
  readonly request: SipMessage;
  /** Client: where requests go. Server: where the request came from. */
  readonly peer: Address;
  readonly reliable: boolean;
  readonly observed: boolean;
  readonly timers: TimerValues;
  /** Server transactions: where responses go (RFC 3261 §18.2.2); defaults to `peer`. */
  readonly replyTo?: Address;
}

type TimerSlots = { [K in TimerName]?: TimerHandle };

export abstract class Transaction<S extends string = string> {
  abstract readonly kind: TransactionKind;
  /** Also the key in the transaction table. */
  readonly id: string;
  /** Upper-case method of the request that created the transaction. */
  readonly method: string;
  readonly peer: Address;
  readonly reliable: boolean;
  /** True in observer mode: the machine tracks states but never sends. */
  readonly observed: boolean;
  readonly timerValues: TimerValues;
  readonly createdAt: number;
  /** The final result once known (final response, timeout, transport error). */
  outcome: Outcome | undefined;
  /** Per-transaction listeners, managed by the layer (see `TransactionLayer.onTransaction`). */
  listeners: Map<string, unknown[]> | undefined;
  /** @internal The proxy context this transaction belongs to (layer bookkeeping). */
  context: ProxyContext | undefined;
  /** @internal `transactionCompleted` has fired. */
  completedFired = false;
  /** @internal The failure reported after the final result (e.g. Timer H), if any. */
  failure: Outcome | undefined;
  /** @internal Held sends waiting on this transaction, in order. */
  holdChain: Promise<void> | undefined;
  protected readonly host: MachineHost;
  #timers: TimerSlots | undefined;
  /** Running timers: a slot is set to undefined when its timer stops (no `delete`, which turns
   * the object into a slow dictionary), and transitions skip the scan when none runs. */
  #live = 0;
  #state: S;
  /** The request, until `releaseRequest` keeps its bytes instead. */
  #request: SipMessage | undefined;
  #requestWire: SerializedMessage | undefined;

  protected constructor(init: TransactionInit, initial: S) {
    this.host = init.host;
    this.id = init.key;
    this.#request = init.request;
    this.method = init.request.method.toUpperCase();
    this.peer = init.peer;
    this.reliable = init.reliable;
    this.observed = init.observed;
    this.timerValues = init.timers;
    this.createdAt = init.host.clock.now();
    this.#state = initial;
  }

  get state(): S {
    return this.#state;
  }

  /**
   * The request that created the transaction. Once the machine only absorbs retransmissions
   * (see `requestReleased`) it keeps the request's bytes, and this parses them again on first
   * use: the same content, but a new object.
   */
  get request(): SipMessage {
    let r = this.#request;
    if (r === undefined) {
      r = (this.#requestWire as SerializedMessage).parse();
      this.#request = r;
    }
    return r;
  }

  /** True while the transaction holds the bytes of its request instead of the parsed request. */
  get requestReleased(): boolean {
    return this.#request === undefined;
  }

  /** The request as the transport gets it: its bytes once they were made for a send. */
  protected outgoingRequest(): OutgoingMessage {
    const r = this.#request;
    if (this.#requestWire !== undefined) return this.#requestWire;
    const wire = this.host.serialize(r as SipMessage);
    if (wire === undefined) return r as SipMessage;
    this.#requestWire = wire;
    return wire;
  }

  /**
   * The machine entered a state that only absorbs retransmissions: drop the parsed request
   * (keeping its bytes) when the host can send bytes.
   */
  protected releaseRequest(): void {
    const r = this.#request;
    if (r === undefined) return;
    const wire = this.#requestWire ?? this.host.serialize(r);
    if (wire === undefined) return;
    this.#requestWire = wire;
    this.#request = undefined;
  }

  get terminated(): boolean {
    return this.#state === ('terminated' as S);
  }

  /** The allowed edges of this machine. */
  protected abstract edges(): Readonly<Record<S, readonly S[]>>;
  /** Timers that keep running when the machine enters a state (all others are cleared). */
  protected abstract keeps(): Readonly<Record<S, readonly TimerName[]>>;
  protected abstract onTimer(name: TimerName): void;
  /** RFC 3261 §17.1.4 / §17.2.4: the transport reported a failure for a message this sent. */
  abstract transportError(error: unknown): void;

  /** Is `to` reachable from the current state in one edge? */
  canTransition(to: S): boolean {
    return this.edges()[this.#state].includes(to);
  }

  /**
   * The one way to change state: checks the edge table, clears the old state's timers (all
   * but those the new state keeps) and tells the host when the machine terminates.
   */
  protected transition(to: S): void {
    const from = this.#state;
    if (!this.edges()[from].includes(to)) {
      throw new TransactionError(
        'TXN_ERR_BAD_TRANSITION',
        `${this.kind} ${this.id}: no edge ${from} -> ${to}`,
      );
    }
    this.#state = to;
    const timers = this.#timers;
    if (timers !== undefined && this.#live > 0) {
      const keep = this.keeps()[to];
      for (const key in timers) {
        const name = key as TimerName;
        if (timers[name] !== undefined && !keep.includes(name)) this.stopTimer(name);
      }
    }
    if (to === ('terminated' as S)) this.host.notify(this, { kind: 'terminated' });
  }

  /**
   * Starts (or restarts) a timer. A zero duration fires synchronously, which is how the
   * reliable-transport values of D, I, J and K ("zero seconds") take effect.
   */
  protected startTimer(name: TimerName, ms: number): void {
    this.stopTimer(name);
    if (ms <= 0) {
      this.onTimer(name);
      return;
    }
    const slots = (this.#timers ??= {});
    slots[name] = this.host.clock.setTimer(ms, () => {
      slots[name] = undefined;
      this.#live--;
      const host = this.host;
      if (host.afterInput !== undefined && RETRANSMISSION_TIMERS.has(name)) {
        // A response (or ACK) read meanwhile moves the machine on, and `onTimer` of its new
        // state ignores the timer; a restarted timer supersedes this firing.
        host.afterInput(() => {
          if (!this.terminated && slots[name] === undefined) this.onTimer(name);
        });
        return;
      }
      this.onTimer(name);
    });
    this.#live++;
  }

  protected stopTimer(name: TimerName): void {
    const slots = this.#timers;
    const handle = slots?.[name];
    if (slots !== undefined && handle !== undefined) {
      this.host.clock.clearTimer(handle);
      slots[name] = undefined;
      this.#live--;
    }
  }

  /** Names of the running timers (for tests and diagnostics). */
  runningTimers(): TimerName[] {
    const slots = this.#timers;
    if (slots === undefined || this.#live === 0) return [];
    return (Object.keys(slots) as TimerName[]).filter((n) => slots[n] !== undefined);
  }

  /** Ends the machine now, whatever its state (every state has an edge to Terminated). */
  abort(reason: string): void {
    if (this.terminated) return;
    if (this.outcome === undefined) {
      this.outcome = { kind: 'aborted', reason };
      this.host.notify(this, { kind: 'failed', outcome: this.outcome });
    }
    if (!this.terminated) this.transition('terminated' as S);
  }

  protected send(message: OutgoingMessage, destination: Address = this.peer): void {
    this.host.transmit(this, message, destination);
  }

  protected fail(outcome: Outcome): void {
    this.outcome = outcome;
    this.host.notify(this, { kind: 'failed', outcome });
    if (!this.terminated) this.transition('terminated' as S);
  }
}
