/**
 * The callbacks a firewall module (or any TU extension) hooks, after SER/Kamailio `tm`'s TMCB_*
 * callbacks. One payload shape for all of them, carrying everything a policy needs.
 */
import type { SipMessage } from '@pinhole/sip';
import type { Address } from './address.js';
import { dialogId, type DialogId } from './dialog.js';
import type { Outcome, Transaction } from './transaction.js';

/**
 * - `requestReceived`: a request arrived on a server transaction, new or a retransmission
 *   (`retransmission`); ACKs are reported as `ackReceived` instead.
 * - `requestForwarded`: a request is about to leave on a client transaction (a proxy branch, or a
 *   request the TU sends). HOLDABLE.
 * - `responseReceived`: a response arrived on a client transaction (or matched none:
 *   `branch` undefined).
 * - `provisionalRelayed`: a 101-199 is about to be sent on a server transaction. HOLDABLE.
 * - `finalRelayed`: a final response is about to be sent on a server transaction (relayed from a
 *   branch, or `local`), including each 2xx retransmission a proxy forwards. HOLDABLE.
 * - `ackReceived`: an ACK arrived; `endToEnd` for the ACK of a 2xx (a proxy sees it only when it
 *   record-routes), false for the ACK of a non-2xx that the INVITE server transaction absorbs.
 * - `cancelReceived`: a CANCEL arrived; `transaction` is the INVITE server transaction it
 *   cancels, undefined when it matched none.
 * - `branchFailed`: a client transaction ended without a 2xx: a 3xx-6xx, a timeout (B, F, C, the
 *   §9.1 wait) or a transport error (`outcome`).
 * - `allBranchesFailed`: every branch of a proxy context failed; `message` is the winning
 *   response about to be relayed upstream (`local` when the proxy generated it).
 * - `transactionCompleted`: a transaction's final result is known (final response sent or
 *   received); fires once per transaction.
 * - `transactionDestroyed`: a transaction left the table (its machine reached Terminated, after
 *   completion, a timeout or a transport error); fires once per transaction.
 */
export const TransactionEventNames = [
  'requestReceived',
  'requestForwarded',
  'responseReceived',
  'provisionalRelayed',
  'finalRelayed',
  'ackReceived',
  'cancelReceived',
  'branchFailed',
  'allBranchesFailed',
  'transactionCompleted',
  'transactionDestroyed',
] as const;
export type TransactionEventName = (typeof TransactionEventNames)[number];

/** Events whose listeners may hold the message by returning a promise. */
export type HoldableEventName = 'requestForwarded' | 'provisionalRelayed' | 'finalRelayed';

export function isHoldable(name: TransactionEventName): name is HoldableEventName {
  return name === 'requestForwarded' || name === 'provisionalRelayed' || name === 'finalRelayed';
}

export type Direction = 'received' | 'sent';

export interface TransactionEventInit {
  readonly name: TransactionEventName;
  readonly message?: SipMessage | undefined;
  readonly direction?: Direction | undefined;
  readonly source?: Address | undefined;
  readonly destination?: Address | undefined;
  readonly transaction?: Transaction | undefined;
  readonly branch?: Transaction | undefined;
  readonly outcome?: Outcome | undefined;
  readonly retransmission?: boolean;
  readonly local?: boolean;
  readonly endToEnd?: boolean;
  readonly observed: boolean;
  readonly time: number;
}

export class TransactionEvent {
  readonly name: TransactionEventName;
  /** The message concerned; undefined for `transactionDestroyed` and failures without one. */
  readonly message: SipMessage | undefined;
  /** Relative to this element: `received` from the network or `sent` to it. */
  readonly direction: Direction | undefined;
  readonly source: Address | undefined;
  readonly destination: Address | undefined;
  /** The server transaction concerned (the proxy context's upstream side). */
  readonly transaction: Transaction | undefined;
  /** The client transaction concerned (a proxy branch). */
  readonly branch: Transaction | undefined;
  readonly outcome: Outcome | undefined;
  readonly retransmission: boolean;
  /** The layer generated this response (100, 408, 487, 500, 503) instead of relaying one. */
  readonly local: boolean;
  /** `ackReceived`: the ACK of a 2xx (a transaction of its own), not of a non-2xx. */
  readonly endToEnd: boolean;
  /** Fired by an observer-mode layer (nothing was or will be sent by it). */
  readonly observed: boolean;
  readonly time: number;
  #dialog: DialogId | undefined | null = null;

  constructor(init: TransactionEventInit) {
    this.name = init.name;
    this.message = init.message;
    this.direction = init.direction;
    this.source = init.source;
    this.destination = init.destination;
    this.transaction = init.transaction;
    this.branch = init.branch;
    this.outcome = init.outcome;
    this.retransmission = init.retransmission ?? false;
    this.local = init.local ?? false;
    this.endToEnd = init.endToEnd ?? false;
    this.observed = init.observed;
    this.time = init.time;
  }

  get transactionId(): string | undefined {
    return this.transaction?.id;
  }

  get branchId(): string | undefined {
    return this.branch?.id;
  }

  /** Transport name of the message's hop (`UDP`, `TCP`, ...). */
  get transport(): string | undefined {
    return (this.direction === 'sent' ? this.destination : this.source)?.transport;
  }

  /**
   * Dialog identity (Call-ID, tags, early/confirmed) of the message, or of the transaction's
   * request when the event has no message. Computed on first use.
   */
  get dialog(): DialogId | undefined {
    if (this.#dialog === null) {
      const m = this.message ?? this.transaction?.request ?? this.branch?.request;
      this.#dialog = m === undefined ? undefined : dialogId(m);
    }
    return this.#dialog;
  }
}

/**
 * What the promise of a holdable listener may resolve to. Anything else (undefined included)
 * means `send`: the held message leaves as it is.
 * - `drop`: the message is not sent. A dropped response leaves the server transaction as it was
 *   (a dropped final keeps it pending); a dropped `requestForwarded` aborts the branch.
 * - `replace`: `message` is sent instead (responses only: e.g. a 503 in place of a 200 whose
 *   pinholes could not be opened). On a server transaction that already took its final
 *   response only a 2xx can still leave (statelessly); other replacements are not sent.
 * When several listeners decide, the first `drop` or `replace` (in registration order) wins.
 */
export type HoldDecision =
  | { readonly action: 'send' }
  | { readonly action: 'drop' }
  | { readonly action: 'replace'; readonly message: SipMessage };

export function isHoldDecision(value: unknown): value is HoldDecision {
  if (typeof value !== 'object' || value === null) return false;
  const action = (value as { action?: unknown }).action;
  if (action === 'send' || action === 'drop') return true;
  return action === 'replace' && typeof (value as { message?: unknown }).message === 'object';
}

/**
 * A listener. For a holdable event, returning a promise holds the message until the promise
 * settles or the hold deadline passes, whichever comes first. The promise may resolve to a
 * `HoldDecision` (drop the message, or send another one instead); otherwise, on a rejection or
 * at the deadline the message is sent as it is. Other events ignore the return value. A
 * listener that throws or rejects is reported through `onError` and does not stop the others.
 */
export type TransactionListener = (event: TransactionEvent) => void | PromiseLike<unknown>;

export interface ListenerOptions {
  /** Longest hold for this listener, in ms (default: the layer's `holdDeadlineMs`). */
  readonly deadlineMs?: number;
}

export interface ListenerEntry {
  readonly listener: TransactionListener;
  readonly deadlineMs: number | undefined;
}
