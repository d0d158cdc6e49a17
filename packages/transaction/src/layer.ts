/**
 * The transaction layer: the table, matching of incoming messages (RFC 3261 §17.1.3, §17.2.3),
 * the callbacks, holds, proxy contexts, and observer mode.
 */
import type { SipMessage } from '@pinhole/sip';
import { defaultIsReliable, responseDestination, type Address, type Transport } from './address.js';
import { TransactionError } from './errors.js';
import {
  TransactionEvent,
  isHoldDecision,
  isHoldable,
  type Direction,
  type HoldDecision,
  type ListenerEntry,
  type ListenerOptions,
  type TransactionEventInit,
  type TransactionEventName,
  type TransactionListener,
} from './events.js';
import { InviteClientTransaction } from './invite-client-transaction.js';
import { InviteServerTransaction } from './invite-server-transaction.js';
import {
  acceptedKey,
  cancelledClientKey,
  cancelledInviteKey,
  clientKey,
  flatKey,
  hasMagicCookie,
  serverKey,
} from './keys.js';
import { buildAck, buildCancel, buildLocalResponse, newBranch } from './messages.js';
import { NonInviteClientTransaction } from './non-invite-client-transaction.js';
import { NonInviteServerTransaction } from './non-invite-server-transaction.js';
import {
  ProxyContext,
  type ClientTransaction,
  type ForwardOptions,
  type ProxyHost,
  type ServerTransaction,
} from './proxy.js';
import {
  systemClock,
  timerConfig,
  timerValues,
  type Clock,
  type TimerConfig,
  type TimerValues,
} from './timers.js';
import type { MachineHost, Note, Outcome, Transaction } from './transaction.js';
import { SerializedMessage, type OutgoingMessage } from './wire.js';

export type AnyTransaction = ServerTransaction | ClientTransaction;

/** The transaction user (the proxy or UA core) above the layer. */
export interface TransactionUser {
  /**
   * A new request created a server transaction (any method but ACK). A matched CANCEL is
   * answered by the layer itself and is not passed here; an unmatched CANCEL is (§16.10: a proxy
   * "MUST statelessly forward the CANCEL request", a UAS answers 481).
   */
  request?(transaction: ServerTransaction): void;
  /**
   * An ACK that no server transaction absorbed: the ACK of a 2xx, which a proxy forwards
   * statelessly. `transaction` is the accepted INVITE server transaction it acknowledges, if
   * known.
   */
  ack?(
    message: SipMessage,
    source: Address,
    transaction: InviteServerTransaction | undefined,
  ): void;
  /** A response that matched no client transaction (§18.1.2: "MUST be passed to the core"). */
  response?(message: SipMessage, source: Address): void;
}

export interface TransactionLayerOptions {
  /** `active` (default) sends and retransmits; `observer` only watches copies (the sidecar). */
  readonly mode?: 'active' | 'observer';
  /** Required in active mode. */
  readonly transport?: Transport;
  readonly clock?: Clock;
  readonly timers?: Partial<TimerConfig>;
  /** Largest number of live transactions (default 100 000). */
  readonly maxTransactions?: number;
  /**
   * Seconds in the `Retry-After` of the stateless 503 a full table answers with; 0 sends none
   * (default 5). §21.5.4: a client "SHOULD NOT forward any other requests to that server for
   * the duration", so an upstream proxy that honours it sends this element nothing at all
   * meanwhile: an element that would rather shed only the excess gives 0. A function is asked
   * at each such 503 (a setting that can be reloaded); a value it returns that is not a whole
   * number of seconds, 0 or more, means none.
   */
  readonly tableFullRetryAfter?: number | (() => number);
  /**
   * `host[:port]` this element puts in the Via of requests it forwards, per transport (and
   * destination, so that an element with several addresses can name the one it sends from).
   */
  readonly sentBy?: (transport: string, destination: Address) => string;
  /** When an INVITE server transaction sends 100 Trying (default `delayed`: after 200 ms). */
  readonly trying?: 'immediate' | 'delayed' | 'never';
  /** Default longest hold of a holdable callback (default 2000 ms). */
  readonly holdDeadlineMs?: number;
  readonly isReliable?: (transport: string) => boolean;
  /**
   * What a proxy does with a branch that has no provisional when it must be cancelled: `wait`
   * (default, §9.1) for a provisional and then send CANCEL, or `local-487`: stop it now.
   */
  readonly cancelUnanswered?: 'wait' | 'local-487';
  readonly user?: TransactionUser;
  /** Reports listener failures, hold deadlines and transport errors; never throws into the layer. */
  readonly onError?: (error: TransactionError) => void;
}

/** Where an observed copy was seen. */
export interface ObservedHop {
  readonly direction: Direction;
  readonly source: Address;
  readonly destination: Address;
}

export interface LayerStats {
  created: number;
  destroyed: number;
  retransmissionsReceived: number;
  strayResponses: number;
  strayAcks: number;
  rejectedFull: number;
  badMessages: number;
  duplicatesObserved: number;
  /** Observer: INVITE branches ended by a timeout and brought back by a late response. */
  branchesRevived: number;
}

/** Observer: an INVITE branch that ended by a timeout, kept so a late response can revive it. */
interface TimedOutBranch {
  readonly branch: InviteClientTransaction;
  /** Clock time after which a response no longer revives it. */
  readonly until: number;
}

interface HopContext {
  readonly direction: Direction;
  readonly source: Address | undefined;
  readonly destination: Address | undefined;
}

const GUARD_SLACK = 2;

export class TransactionLayer implements MachineHost, ProxyHost {
  readonly clock: Clock;
  readonly observed: boolean;
  readonly config: TimerConfig;
  readonly cancelUnanswered: 'wait' | 'local-487';
  readonly stats: LayerStats = {
    created: 0,
    destroyed: 0,
    retransmissionsReceived: 0,
    strayResponses: 0,
    strayAcks: 0,
    rejectedFull: 0,
    badMessages: 0,
    duplicatesObserved: 0,
    branchesRevived: 0,
  };
  readonly #table = new Map<string, AnyTransaction>();
  readonly #accepted = new Map<string, InviteServerTransaction>();
  /** Observer: INVITE branches ended by a timeout, by client key, oldest first. */
  readonly #timedOut = new Map<string, TimedOutBranch>();
  readonly #listeners = new Map<TransactionEventName, ListenerEntry[]>();
  readonly #transport: Transport | undefined;
  /** The transport sends serialised messages: transactions keep bytes, not parsed messages. */
  readonly #sendsBytes: boolean;
  readonly #max: number;
  /** See `tableFullRetryAfter`. */
  readonly #retryAfter: number | (() => number);
  readonly #sentBy: ((transport: string, destination: Address) => string) | undefined;
  readonly #trying: 'immediate' | 'delayed' | 'never';
  readonly #holdDeadline: number;
  readonly #isReliable: (transport: string) => boolean;
  readonly #user: TransactionUser;
  readonly #onError: ((error: TransactionError) => void) | undefined;
  readonly #timersReliable: TimerValues;
  readonly #timersUnreliable: TimerValues;
  #hop: HopContext | undefined;

  constructor(options: TransactionLayerOptions = {}) {
    this.observed = options.mode === 'observer';
    if (!this.observed && options.transport === undefined) {
      throw new TransactionError('TXN_ERR_BAD_USAGE', 'an active layer needs a transport');
    }
    this.#transport = options.transport;
    this.#sendsBytes = !this.observed && options.transport?.sendSerialized !== undefined;
    this.clock = options.clock ?? systemClock;
    this.config = timerConfig(options.timers);
    this.#max = options.maxTransactions ?? 100_000;
    const retryAfter = options.tableFullRetryAfter ?? 5;
    if (typeof retryAfter === 'number' && !(Number.isInteger(retryAfter) && retryAfter >= 0)) {
      throw new TransactionError(
        'TXN_ERR_BAD_USAGE',
        `tableFullRetryAfter must be a whole number of seconds, 0 or more (got ${retryAfter})`,
      );
    }
    this.#retryAfter = retryAfter;
    this.#sentBy = options.sentBy;
    this.#trying = options.trying ?? 'delayed';
    this.#holdDeadline = options.holdDeadlineMs ?? 2_000;
    this.#isReliable = options.isReliable ?? defaultIsReliable;
    this.cancelUnanswered = options.cancelUnanswered ?? 'wait';
    this.#user = options.user ?? {};
    this.#onError = options.onError;
    this.#timersReliable = timerValues(this.config, true);
    // An observer never retransmits: it gets the reliable schedule for A, E and G (none) and
    // the unreliable one for every timeout, since the observed hop may be UDP.
    const unreliable = timerValues(this.config, false);
    this.#timersUnreliable = this.observed
      ? { ...unreliable, A: undefined, E: undefined, G: undefined }
      : unreliable;
  }

  /** Number of live transactions. */
  get size(): number {
    return this.#table.size;
  }

  get(id: string): AnyTransaction | undefined {
    return this.#table.get(id);
  }

  transactions(): IterableIterator<AnyTransaction> {
    return this.#table.values();
  }

  /** The proxy context of a server transaction or a branch, if one exists. */
  contextOf(transaction: Transaction): ProxyContext | undefined {
    return transaction.context;
  }

  // ---------------------------------------------------------------- callbacks

  /** Registers a global listener; returns a function that removes it. */
  on(
    name: TransactionEventName,
    listener: TransactionListener,
    options?: ListenerOptions,
  ): () => void {
    return addListener(this.#listeners, name, listener, options);
  }

  /**
   * Registers a listener for one transaction. Listeners on a server transaction also hear the
   * events of its branches (its proxy context).
   */
  onTransaction(
    transaction: Transaction,
    name: TransactionEventName,
    listener: TransactionListener,
    options?: ListenerOptions,
  ): () => void {
    const map = (transaction.listeners ??= new Map()) as Map<TransactionEventName, ListenerEntry[]>;
    return addListener(map, name, listener, options);
  }

  /**
   * Whether anyone listens for `name` on these transactions: callers skip building an event
   * (and reading the clock) for the events nobody listens to, several of them a message.
   */
  #heard(
    name: TransactionEventName,
    transaction: Transaction | undefined,
    branch: Transaction | undefined,
  ): boolean {
    return (
      this.#listeners.has(name) ||
      transaction?.listeners?.has(name) === true ||
      branch?.listeners?.has(name) === true
    );
  }

  #emit(init: TransactionEventInit): Promise<HoldDecision | undefined> | undefined {
    const global = this.#listeners.get(init.name);
    const own = init.transaction?.listeners?.get(init.name) as ListenerEntry[] | undefined;
    const branchOwn =
      init.branch !== init.transaction
        ? (init.branch?.listeners?.get(init.name) as ListenerEntry[] | undefined)
        : undefined;
    if (global === undefined && own === undefined && branchOwn === undefined) return undefined;
    const event = new TransactionEvent(init);
    const hold = isHoldable(init.name) && !this.observed;
    let waits: Promise<HoldDecision | undefined>[] | undefined;
    let deadline = Infinity;
    const run = (entries: readonly ListenerEntry[] | undefined): void => {
      if (entries === undefined) return;
      for (const entry of entries) {
        let result: unknown;
        try {
          result = entry.listener(event);
        } catch (err) {
          this.#report('TXN_ERR_LISTENER', `${init.name} listener threw`, err);
          continue;
        }
        if (!isThenable(result)) continue;
        const settled = Promise.resolve(result).then(
          (value: unknown) => (isHoldDecision(value) ? value : undefined),
          (err: unknown) => {
            this.#report('TXN_ERR_LISTENER', `${init.name} listener rejected`, err);
            return undefined;
          },
        );
        if (hold) {
          (waits ??= []).push(settled);
          deadline = Math.min(deadline, entry.deadlineMs ?? this.#holdDeadline);
        }
      }
    };
    run(global);
    run(own);
    run(branchOwn);
    const pending = waits;
    if (pending === undefined) return undefined;
    return new Promise<HoldDecision | undefined>((resolve) => {
      let done = false;
      const timer = this.clock.setTimer(deadline, () => {
        if (done) return;
        done = true;
        this.#report('TXN_ERR_HOLD_DEADLINE', `${init.name} hold passed ${deadline} ms`);
        resolve(undefined);
      });
      void Promise.all(pending).then((decisions) => {
        if (done) return;
        done = true;
        this.clock.clearTimer(timer);
        resolve(decisions.find((d) => d !== undefined && d.action !== 'send'));
      });
    });
  }

  #report(code: TransactionError['code'], message: string, cause?: unknown): void {
    if (this.#onError === undefined) return;
    try {
      this.#onError(new TransactionError(code, message, { cause }));
    } catch {
      // The error sink itself failed; nothing left to tell.
    }
  }

  // ---------------------------------------------------------------- MachineHost

  transmit(txn: Transaction, message: OutgoingMessage, destination: Address): void {
    const transport = this.#transport;
    if (this.observed || transport === undefined) return;
    let result: void | Promise<void>;
    try {
      result =
        message instanceof SerializedMessage
          ? (transport.sendSerialized as NonNullable<Transport['sendSerialized']>)(
              message,
              destination,
            )
          : transport.send(message, destination);
    } catch (err) {
      this.#transportFailed(txn, err);
      return;
    }
    if (isThenable(result)) {
      result.then(undefined, (err: unknown) => this.#transportFailed(txn, err));
    }
  }

  #transportFailed(txn: Transaction, err: unknown): void {
    this.#report('TXN_ERR_TRANSPORT', `transport failed for ${txn.kind} ${txn.id}`, err);
    txn.transportError(err);
  }

  /** A transport noticed a failure after the fact (e.g. a TCP connection reset). */
  transportFailed(transactionId: string, error: unknown): void {
    const txn = this.#table.get(transactionId);
    if (txn !== undefined) this.#transportFailed(txn, error);
  }

  serialize(message: SipMessage): SerializedMessage | undefined {
    return this.#sendsBytes ? new SerializedMessage(message) : undefined;
  }

  buildAck(request: SipMessage, response: SipMessage): SipMessage {
    return buildAck(request, response);
  }

  buildResponse(request: SipMessage, status: number): SipMessage {
    return buildLocalResponse(request, status);
  }

  afterInput(fn: () => void): void {
    const transport = this.#transport;
    if (transport?.afterInput === undefined) {
      fn();
      return;
    }
    let ran = false;
    let fnThrew = false;
    const once = (): void => {
      if (ran) return;
      ran = true;
      try {
        fn();
      } catch (err) {
        fnThrew = true;
        throw err;
      }
    };
    try {
      transport.afterInput(once);
    } catch (err) {
      // The machine's own failure is not the transport's: it goes on as a timer's would.
      if (fnThrew) throw err;
      this.#report('TXN_ERR_TRANSPORT', 'the transport failed a read barrier', err);
      once();
    }
  }

  localResponse(request: SipMessage, status: number): SipMessage {
    return buildLocalResponse(request, status);
  }

  notify(txn: Transaction, note: Note): void {
    const t = txn as AnyTransaction;
    const server = t.kind === 'ist' || t.kind === 'nist';
    const ctx = t.context;
    const hop = this.#hop;
    switch (note.kind) {
      case 'response': {
        const branch = t as ClientTransaction;
        if (this.#heard('responseReceived', ctx?.server, branch)) {
          void this.#emit({
            name: 'responseReceived',
            observed: this.observed,
            time: this.clock.now(),
            message: note.message,
            direction: 'received',
            source: hop?.source ?? branch.peer,
            destination: hop?.destination,
            transaction: ctx?.server,
            branch,
            retransmission: note.retransmission,
          });
        }
        if (
          branch instanceof InviteClientTransaction &&
          branch.cancelWanted &&
          note.message.status < 200
        ) {
          this.sendCancel(branch);
        }
        ctx?.branchResponse(branch, note.message, note.retransmission);
        return;
      }
      case 'request-retransmission':
        this.stats.retransmissionsReceived++;
        void this.#emit({
          name: 'requestReceived',
          observed: this.observed,
          time: this.clock.now(),
          message: note.message,
          direction: hop?.direction ?? 'received',
          source: hop?.source ?? t.peer,
          destination: hop?.destination,
          transaction: t,
          retransmission: true,
        });
        return;
      case 'ack':
        if (!this.#heard('ackReceived', t, undefined)) return;
        void this.#emit({
          name: 'ackReceived',
          observed: this.observed,
          time: this.clock.now(),
          message: note.message,
          direction: hop?.direction ?? 'received',
          source: hop?.source ?? t.peer,
          destination: hop?.destination,
          transaction: t,
          endToEnd: note.endToEnd,
        });
        return;
      case 'timer-c':
        if (!this.observed && t instanceof InviteClientTransaction) {
          t.timerCFired = true;
          this.sendCancel(t);
        }
        return;
      case 'guard':
        // A TU that never answered an INVITE: the upstream client still waits, so answer 408.
        if (!this.observed && t instanceof InviteServerTransaction && t.pending) {
          this.relay(t, buildLocalResponse(t.request, 408), true);
        }
        return;
      case 'completed':
        this.#completed(t, note.outcome, server, ctx);
        return;
      case 'failed':
        t.failure = note.outcome;
        this.#completed(t, note.outcome, server, ctx);
        return;
      case 'terminated':
        this.#destroyed(t, ctx);
        return;
    }
  }

  #completed(
    t: AnyTransaction,
    outcome: Outcome,
    server: boolean,
    ctx: ProxyContext | undefined,
  ): void {
    if (t.completedFired) return;
    t.completedFired = true;
    if (t instanceof InviteServerTransaction && t.state === 'accepted') {
      // Index the Accepted transaction so the end-to-end ACK (a new branch) finds it.
      const found = acceptedKey(t.request);
      if (found !== undefined) {
        const key = flatKey(found);
        t.acceptedKey = key;
        this.#accepted.set(key, t);
      }
    }
    const completedOf = server ? t : ctx?.server;
    const completedBranch = server ? undefined : t;
    if (this.#heard('transactionCompleted', completedOf, completedBranch)) {
      void this.#emit({
        name: 'transactionCompleted',
        observed: this.observed,
        time: this.clock.now(),
        transaction: completedOf,
        branch: completedBranch,
        outcome,
      });
    }
    if (server) return;
    if (outcome.kind === 'response' && outcome.status < 300) return;
    const branch = t as ClientTransaction;
    if (this.observed && outcome.kind === 'timeout' && branch instanceof InviteClientTransaction) {
      this.#rememberTimedOut(branch);
    }
    void this.#emit({
      name: 'branchFailed',
      observed: this.observed,
      time: this.clock.now(),
      transaction: ctx?.server,
      branch,
      outcome,
    });
    ctx?.branchEnded(branch, outcome);
  }

  #destroyed(t: AnyTransaction, ctx: ProxyContext | undefined): void {
    if (this.#table.get(t.id) === t) this.#table.delete(t.id);
    if (t instanceof InviteServerTransaction) {
      const key = t.acceptedKey;
      if (key !== undefined && this.#accepted.get(key) === t) this.#accepted.delete(key);
    }
    this.stats.destroyed++;
    const server = t.kind === 'ist' || t.kind === 'nist' ? t : ctx?.server;
    const branch = t.kind === 'ict' || t.kind === 'nict' ? t : undefined;
    if (!this.#heard('transactionDestroyed', server, branch)) return;
    void this.#emit({
      name: 'transactionDestroyed',
      observed: this.observed,
      time: this.clock.now(),
      transaction: server,
      branch,
      outcome: t.failure ?? t.outcome,
    });
  }

  // ---------------------------------------------------------------- server side

  #timersFor(transport: string): TimerValues {
    return this.#isReliable(transport) ? this.#timersReliable : this.#timersUnreliable;
  }

  #createServer(
    request: SipMessage,
    baseKey: string,
    source: Address,
  ): ServerTransaction | undefined {
    if (this.#table.size >= this.#max) {
      this.stats.rejectedFull++;
      return undefined;
    }
    // RFC 2543 transactions differing only in Request-URI share a base key.
    const key = flatKey(this.#table.has(baseKey) ? `${baseKey}|${request.requestUri}` : baseKey);
    const reliable = this.#isReliable(source.transport);
    const init = {
      host: this,
      key,
      request,
      peer: source,
      reliable,
      observed: this.observed,
      timers: this.#timersFor(source.transport),
      replyTo: responseDestination(request.topVia(), source, reliable),
    };
    const txn =
      request.method.toUpperCase() === 'INVITE'
        ? new InviteServerTransaction(init)
        : new NonInviteServerTransaction(init);
    this.#table.set(key, txn);
    this.stats.created++;
    return txn;
  }

  #guardMs(invite: boolean): number {
    const t64 = 64 * this.config.T1;
    return invite ? this.config.C + GUARD_SLACK * t64 : GUARD_SLACK * t64;
  }

  /**
   * Feeds a message received from the network (active mode). Never throws: a message the layer
   * cannot match (no top Via or CSeq) is counted in `stats.badMessages` and dropped.
   */
  receive(message: SipMessage, source: Address): void {
    if (this.observed) {
      throw new TransactionError('TXN_ERR_BAD_USAGE', 'an observer layer is fed with observe()');
    }
    this.#dispatch(message, { direction: 'received', source, destination: undefined }, source);
  }

  /**
   * One message in, in either mode: the hop is known to every callback it causes, and a failure
   * is reported, never thrown into the caller's socket handler.
   */
  #dispatch(message: SipMessage, hop: HopContext, source: Address): void {
    this.#hop = hop;
    try {
      if (!this.observed) {
        if (message.isRequest) this.#receiveRequest(message, source);
        else this.#receiveResponse(message, source);
      } else {
        const seen = hop as ObservedHop;
        if (message.isRequest) this.#observeRequest(message, seen);
        else this.#observeResponse(message, seen);
      }
    } catch (err) {
      this.#report(
        'TXN_ERR_BAD_MESSAGE',
        this.observed ? 'observed message handling failed' : 'message handling failed',
        err,
      );
    } finally {
      this.#hop = undefined;
    }
  }

  #receiveRequest(request: SipMessage, source: Address): void {
    const method = request.method.toUpperCase();
    const key = serverKey(request);
    if (key === undefined || request.callId() === undefined) {
      this.stats.badMessages++;
      return;
    }
    if (method === 'ACK') {
      this.#receiveAck(request, key, source);
      return;
    }
    const existing = this.#matchServer(key, request);
    if (existing !== undefined) {
      existing.receiveRequest(request);
      return;
    }
    const txn = this.#createServer(request, key, source);
    if (txn === undefined) {
      // Overload: answer statelessly. §21.5.4: 503 "The server is temporarily unable to process
      // the request due to a temporary overloading".
      const reply = buildLocalResponse(
        request,
        503,
        undefined,
        undefined,
        this.#tableFullHeaders(),
      );
      const reliable = this.#isReliable(source.transport);
      void this.#sendStateless(reply, responseDestination(request.topVia(), source, reliable));
      return;
    }
    if (this.#heard('requestReceived', txn, undefined)) {
      void this.#emit({
        name: 'requestReceived',
        observed: this.observed,
        time: this.clock.now(),
        message: request,
        direction: 'received',
        source,
        transaction: txn,
      });
    }
    if (txn instanceof InviteServerTransaction) txn.start(this.#trying, this.#guardMs(true));
    else txn.start(this.#guardMs(false));
    if (txn.terminated) return;
    if (method === 'CANCEL') {
      const invite = this.#cancelTarget(request);
      void this.#emit({
        name: 'cancelReceived',
        observed: this.observed,
        time: this.clock.now(),
        message: request,
        direction: 'received',
        source,
        transaction: invite,
        branch: undefined,
      });
      if (invite !== undefined) {
        this.#answerCancel(txn, invite);
        return;
      }
    }
    this.#user.request?.(txn);
  }

  /** The INVITE server transaction a CANCEL cancels (§9.2, matched per §17.2.3). */
  #cancelTarget(cancel: SipMessage): InviteServerTransaction | undefined {
    const key = cancelledInviteKey(cancel);
    if (key === undefined) return undefined;
    const t = this.#table.get(key);
    return t instanceof InviteServerTransaction ? t : undefined;
  }

  #answerCancel(cancelTxn: ServerTransaction, invite: InviteServerTransaction): void {
    // §9.2: "Regardless of the method of the original request, as long as the CANCEL matched an
    // existing transaction, the UAS answers the CANCEL request itself with a 200 (OK) response."
    // §16.10: "If a matching response context is found, the element MUST immediately return a
    // 200 (OK) response to the CANCEL request."
    this.relay(cancelTxn, buildLocalResponse(cancelTxn.request, 200), true);
    const ctx = invite.context;
    if (ctx !== undefined) {
      ctx.cancel();
    } else if (invite.pending) {
      // §9.2: "If the transaction for the original request still exists, the behavior of the UAS
      // on receiving a CANCEL request depends on whether it has already sent a final response
      // for the original request. If it has, the CANCEL request has no effect on the processing
      // of the original request ... If the UAS has not issued a final response for the original
      // request, its behavior depends on the method of the original request. If the original
      // request was an INVITE, the UAS SHOULD immediately respond to the INVITE with a 487."
      this.relay(invite, buildLocalResponse(invite.request, 487), true);
    }
  }

  /**
   * Lookup with the RFC 2543 extra checks (Request-URI; ACK To tag). Two RFC 2543 transactions
   * that differ only in their Request-URI share a base key; the second lives under
   * `key|Request-URI`.
   */
  #matchServer(key: string, request: SipMessage): ServerTransaction | undefined {
    let t = this.#table.get(key);
    if (t === undefined || (t.kind !== 'ist' && t.kind !== 'nist')) return undefined;
    if (hasMagicCookie(request.topVia()?.branch)) return t;
    if (t.request.requestUri !== request.requestUri) {
      t = this.#table.get(`${key}|${request.requestUri}`);
      if (t === undefined || (t.kind !== 'ist' && t.kind !== 'nist')) return undefined;
    }
    if (request.method.toUpperCase() === 'ACK') {
      const sent = t.finalResponse?.to()?.tag;
      if (sent !== undefined && sent !== request.to()?.tag) return undefined;
    }
    return t;
  }

  #receiveAck(ack: SipMessage, key: string, source: Address): void {
    const txn = this.#matchServer(key, ack);
    if (txn instanceof InviteServerTransaction && txn.state !== 'accepted') {
      // The ACK of a non-2xx, absorbed by the transaction (§17.2.1).
      txn.receiveRequest(ack);
      return;
    }
    // The ACK of a 2xx: RFC 6026 passes it to the TU through the Accepted transaction when one
    // matches (by dialog, since its branch is new); otherwise the core gets it directly.
    const accepted = this.#endToEndAck(ack, txn, this.#hop);
    this.#user.ack?.(ack, source, accepted);
  }

  /**
   * The ACK of a 2xx (a new branch): RFC 6026 passes it to the TU through the Accepted INVITE
   * server transaction it matches (`matched`, or by dialog); with none, `ackReceived` fires
   * without a transaction. Returns the transaction that took it.
   */
  #endToEndAck(
    ack: SipMessage,
    matched: AnyTransaction | undefined,
    hop: HopContext | undefined,
  ): InviteServerTransaction | undefined {
    let accepted: InviteServerTransaction | undefined;
    if (matched instanceof InviteServerTransaction) accepted = matched;
    else {
      const aKey = acceptedKey(ack);
      accepted = aKey === undefined ? undefined : this.#accepted.get(aKey);
    }
    if (accepted !== undefined) {
      accepted.receiveRequest(ack);
      return accepted;
    }
    this.stats.strayAcks++;
    void this.#emit({
      name: 'ackReceived',
      observed: this.observed,
      time: this.clock.now(),
      message: ack,
      direction: hop?.direction ?? 'received',
      source: hop?.source,
      destination: hop?.destination,
      endToEnd: true,
    });
    return undefined;
  }

  // ---------------------------------------------------------------- responding

  /**
   * Sends `response` on a server transaction: fires `provisionalRelayed` / `finalRelayed`,
   * waits for holds, then passes it to the machine. A 2xx the INVITE server transaction no
   * longer accepts (it already sent a non-2xx) is forwarded statelessly, as §16.7 step 5
   * requires of a proxy.
   */
  relay(
    server: ServerTransaction,
    response: SipMessage,
    local: boolean,
    retransmit2xx = false,
    branch?: ClientTransaction,
  ): void {
    const status = response.status;
    if (!this.#accepts(server, status)) return;
    const name = status < 200 ? 'provisionalRelayed' : 'finalRelayed';
    const retransmission = !server.pending && status >= 200;
    // A 100 (Trying) is hop-by-hop and enables nothing: no event, no hold.
    const hold =
      status === 100
        ? undefined
        : this.#emit({
            name: name,
            observed: this.observed,
            time: this.clock.now(),
            message: response,
            direction: 'sent',
            // A relayed response comes from the branch's peer; a local one from nowhere.
            source: branch === undefined ? undefined : (this.#hop?.source ?? branch.peer),
            destination: server.replyTo,
            transaction: server,
            branch,
            local,
            retransmission,
          });
    const send = (decision: HoldDecision | undefined): void => {
      if (decision?.action === 'drop') return;
      const replaced = decision?.action === 'replace';
      const message = replaced ? decision.message : response;
      const isLocal = replaced || local;
      const s = message.status;
      // A held message may meet a transaction that moved on meanwhile (a replacement too).
      if (replaced && !this.#accepts(server, s)) return;
      if (server instanceof InviteServerTransaction) {
        if (!server.sendResponse(message, isLocal, retransmit2xx) && s >= 200 && s < 300) {
          void this.#sendStateless(message, server.replyTo);
        }
      } else {
        server.sendResponse(message, isLocal);
      }
    };
    this.#afterHold(server, hold, send);
  }

  /**
   * Whether a server transaction still takes a response of this status: any while pending, and
   * a 2xx to an INVITE always (in Accepted by the machine, else statelessly: §16.7 step 5).
   */
  #accepts(server: ServerTransaction, status: number): boolean {
    if (server.pending) return true;
    return server instanceof InviteServerTransaction && status >= 200 && status < 300;
  }

  #afterHold(
    txn: Transaction,
    hold: Promise<HoldDecision | undefined> | undefined,
    action: (decision: HoldDecision | undefined) => void,
  ): void {
    if (hold === undefined && txn.holdChain === undefined) {
      action(undefined);
      return;
    }
    const prev = txn.holdChain ?? Promise.resolve();
    const next = prev
      .then(() => hold)
      .then((decision) => {
        try {
          action(decision);
        } catch (err) {
          this.#report('TXN_ERR_BAD_MESSAGE', 'sending a held message failed', err);
        }
      });
    txn.holdChain = next;
    void next.then(() => {
      if (txn.holdChain === next) txn.holdChain = undefined;
    });
  }

  /** The table-full 503's Retry-After, if any (see `tableFullRetryAfter`). */
  #tableFullHeaders(): [string, string][] {
    const o = this.#retryAfter;
    const s = typeof o === 'function' ? o() : o;
    return Number.isInteger(s) && s > 0 ? [['Retry-After', String(s)]] : [];
  }

  async #sendStateless(message: SipMessage, destination: Address): Promise<void> {
    if (this.observed || this.#transport === undefined) return;
    try {
      await this.#transport.send(message, destination);
    } catch (err) {
      this.#report('TXN_ERR_TRANSPORT', 'stateless send failed', err);
    }
  }

  /**
   * Answers on a server transaction with a locally built response (status, reason, extra
   * headers). `retransmit2xx` makes the layer retransmit a 2xx until the ACK, as a UAS core must
   * (§13.3.1.4).
   */
  reply(
    server: ServerTransaction,
    status: number,
    reason?: string,
    headers: readonly (readonly [string, string])[] = [],
    options: { readonly retransmit2xx?: boolean } = {},
  ): SipMessage {
    const response = buildLocalResponse(server.request, status, reason, undefined, headers);
    this.relay(server, response, true, options.retransmit2xx ?? false);
    return response;
  }

  /** Sends a response the TU built (e.g. with `buildResponse` of @pinhole/sip). */
  respond(
    server: ServerTransaction,
    response: SipMessage,
    options: { readonly retransmit2xx?: boolean } = {},
  ): void {
    this.relay(server, response, false, options.retransmit2xx ?? false);
  }

  // ---------------------------------------------------------------- proxy / client side

  /** The proxy context of a server transaction (created on first use). */
  proxy(server: ServerTransaction): ProxyContext {
    let ctx = server.context;
    if (ctx === undefined) {
      ctx = new ProxyContext(this, server);
      server.context = ctx;
    }
    return ctx;
  }

  forward(
    ctx: ProxyContext,
    request: SipMessage,
    destination: Address,
    options?: ForwardOptions,
  ): ClientTransaction | undefined {
    const sentBy = this.#sentBy;
    if (sentBy === undefined) {
      throw new TransactionError('TXN_ERR_BAD_USAGE', 'forwarding needs the sentBy option');
    }
    // §16.6 step 8: "The proxy MUST insert a Via header field value into the copy before the
    // existing Via header field values." ... the branch "MUST always begin with the characters
    // "z9hG4bK"" and be unique per branch.
    const branch = options?.branch ?? newBranch();
    if (!hasMagicCookie(branch)) {
      throw new TransactionError(
        'TXN_ERR_BAD_USAGE',
        `branch ${String(branch)} lacks the magic cookie`,
      );
    }
    const transport = destination.transport.toUpperCase();
    request.prependVia(
      `SIP/2.0/${transport} ${sentBy(transport, destination)};branch=${branch}${options?.viaParams ?? ''}`,
    );
    return this.#startClient(request, destination, ctx);
  }

  /**
   * Sends a request on a new client transaction (UA usage, or a proxy that manages Via itself).
   * The request must carry its top Via with a unique branch.
   */
  sendRequest(request: SipMessage, destination: Address): ClientTransaction | undefined {
    return this.#startClient(request, destination, undefined);
  }

  #startClient(
    request: SipMessage,
    destination: Address,
    ctx: ProxyContext | undefined,
    eventServer: ServerTransaction | undefined = ctx?.server,
  ): ClientTransaction | undefined {
    if (this.observed)
      throw new TransactionError('TXN_ERR_BAD_USAGE', 'an observer layer never sends');
    const key = clientKey(request);
    if (key === undefined)
      throw new TransactionError('TXN_ERR_BAD_MESSAGE', 'request lacks Via or CSeq');
    if (this.#table.size >= this.#max) {
      this.stats.rejectedFull++;
      this.#report(
        'TXN_ERR_TABLE_FULL',
        `cannot create a client transaction for ${request.method}`,
      );
      return undefined;
    }
    const txn = this.#createClient(request, key, destination);
    if (ctx !== undefined) txn.context = ctx;
    const hold = this.#heard('requestForwarded', eventServer, txn)
      ? this.#emit({
          name: 'requestForwarded',
          observed: this.observed,
          time: this.clock.now(),
          message: request,
          direction: 'sent',
          destination,
          transaction: eventServer,
          branch: txn,
        })
      : undefined;
    ctx?.addBranch(txn, hold !== undefined);
    if (hold === undefined) {
      txn.start();
    } else {
      void hold.then((decision) => {
        ctx?.released(txn);
        if (txn.terminated) return;
        if (decision?.action === 'drop') txn.abort('dropped by a requestForwarded listener');
        else txn.start();
      });
    }
    return txn;
  }

  #createClient(request: SipMessage, baseKey: string, destination: Address): ClientTransaction {
    const key = flatKey(baseKey);
    const init = {
      host: this,
      key,
      request,
      peer: destination,
      reliable: this.#isReliable(destination.transport),
      observed: this.observed,
      timers: this.#timersFor(destination.transport),
    };
    const txn =
      request.method.toUpperCase() === 'INVITE'
        ? new InviteClientTransaction(init)
        : new NonInviteClientTransaction(init);
    this.#table.set(key, txn);
    this.stats.created++;
    return txn;
  }

  /** Sends a CANCEL for a pending INVITE client transaction (§9.1), on its own transaction. */
  sendCancel(branch: InviteClientTransaction): void {
    if (this.observed || !branch.pending || branch.cancelSent) return;
    if (branch.state === 'calling') {
      // §9.1: "If no provisional response has been received, the CANCEL request MUST NOT be
      // sent; rather, the client MUST wait for the arrival of a provisional response before
      // sending the request."
      branch.cancelWanted = true;
      return;
    }
    branch.markCancelSent();
    const cancel = buildCancel(branch.request);
    // The CANCEL is a transaction of its own (not a branch of the context), but its
    // requestForwarded event names the server transaction it belongs to.
    this.#startClient(cancel, branch.peer, undefined, branch.context?.server);
  }

  #receiveResponse(response: SipMessage, source: Address): void {
    const key = clientKey(response);
    const txn = key === undefined ? undefined : this.#table.get(key);
    if (txn instanceof InviteClientTransaction || txn instanceof NonInviteClientTransaction) {
      txn.receiveResponse(response);
      return;
    }
    if (key === undefined) this.stats.badMessages++;
    this.stats.strayResponses++;
    void this.#emit({
      name: 'responseReceived',
      observed: this.observed,
      time: this.clock.now(),
      message: response,
      direction: 'received',
      source,
    });
    this.#user.response?.(response, source);
  }

  allBranchesFailed(ctx: ProxyContext, winner: SipMessage, local: boolean): void {
    void this.#emit({
      name: 'allBranchesFailed',
      observed: this.observed,
      time: this.clock.now(),
      message: winner,
      direction: 'sent',
      destination: ctx.server.replyTo,
      transaction: ctx.server,
      local,
    });
  }

  // ---------------------------------------------------------------- observer mode

  /**
   * Feeds a copy of a message seen on the wire (observer mode). `direction` is relative to the
   * observed element. Duplicates (the same message mirrored as received and as sent) and
   * retransmissions are absorbed by the matching transaction; a message whose transaction was
   * never seen fires its callbacks without a transaction. Never throws.
   */
  observe(message: SipMessage, hop: ObservedHop): void {
    if (!this.observed) {
      throw new TransactionError('TXN_ERR_BAD_USAGE', 'an active layer is fed with receive()');
    }
    this.#dispatch(
      message,
      { direction: hop.direction, source: hop.source, destination: hop.destination },
      hop.source,
    );
  }

  #observeRequest(request: SipMessage, hop: ObservedHop): void {
    const sKey = serverKey(request);
    const cKey = clientKey(request);
    if (sKey === undefined || cKey === undefined || request.callId() === undefined) {
      this.stats.badMessages++;
      return;
    }
    const method = request.method.toUpperCase();
    const server = this.#matchServer(sKey, request);
    const client = this.#table.get(cKey);
    if (method === 'ACK') {
      if (server instanceof InviteServerTransaction && server.state !== 'accepted') {
        server.receiveRequest(request);
        return;
      }
      if (client !== undefined) {
        this.stats.duplicatesObserved++;
        return; // the ACK a client transaction sent for a non-2xx, or its mirror
      }
      this.#endToEndAck(request, server, hop);
      return;
    }
    if (server !== undefined) {
      server.receiveRequest(request); // a retransmission, or the mirror of the received copy
      return;
    }
    if (client !== undefined) {
      this.stats.duplicatesObserved++; // our own retransmission, or the mirror of the sent copy
      return;
    }
    if (this.#table.size >= this.#max) {
      this.stats.rejectedFull++;
      return;
    }
    if (hop.direction === 'received') {
      const txn = this.#createServer(request, sKey, hop.source);
      if (txn === undefined) return;
      void this.#emit({
        name: 'requestReceived',
        observed: this.observed,
        time: this.clock.now(),
        message: request,
        direction: 'received',
        source: hop.source,
        destination: hop.destination,
        transaction: txn,
      });
      if (txn instanceof InviteServerTransaction) txn.start('never', this.#guardMs(true));
      else txn.start(this.#guardMs(false));
      if (method === 'CANCEL') {
        void this.#emit({
          name: 'cancelReceived',
          observed: this.observed,
          time: this.clock.now(),
          message: request,
          direction: 'received',
          source: hop.source,
          destination: hop.destination,
          transaction: this.#cancelTarget(request),
        });
      }
      return;
    }
    // Sent: a new client transaction, linked to the server transaction of the request it was
    // forwarded from (the Via below ours is that request's top Via).
    const txn = this.#createClient(request, cKey, hop.destination);
    const parent = this.#parentOf(request);
    const ctx = parent === undefined ? undefined : this.proxy(parent);
    if (ctx !== undefined) {
      txn.context = ctx;
      ctx.addBranch(txn, false);
    }
    void this.#emit({
      name: 'requestForwarded',
      observed: this.observed,
      time: this.clock.now(),
      message: request,
      direction: 'sent',
      source: hop.source,
      destination: hop.destination,
      transaction: ctx?.server,
      branch: txn,
    });
    txn.start();
    if (method === 'CANCEL') {
      const inviteKey = cancelledClientKey(request);
      const invite = inviteKey === undefined ? undefined : this.#table.get(inviteKey);
      if (invite instanceof InviteClientTransaction) invite.markCancelSent();
    }
  }

  #parentOf(request: SipMessage): ServerTransaction | undefined {
    const vias = request.via();
    const below = vias[1];
    const cseq = request.cseq();
    if (below === undefined || cseq === undefined) return undefined;
    const method = request.method.toUpperCase();
    const sentBy = `${below.host.toLowerCase()}:${below.port ?? ''}`;
    const key = hasMagicCookie(below.branch)
      ? `s|${below.branch}|${sentBy}|${method}`
      : `s2543|${request.from()?.tag ?? ''}|${request.callId() ?? ''}|${cseq.seq}|${method}|${sentBy}|${below.branch ?? ''}`;
    const t = this.#table.get(key);
    return t !== undefined && (t.kind === 'ist' || t.kind === 'nist') ? t : undefined;
  }

  #observeResponse(response: SipMessage, hop: ObservedHop): void {
    const cKey = clientKey(response);
    const sKey = serverKey(response);
    if (cKey === undefined || sKey === undefined) {
      this.stats.badMessages++;
      return;
    }
    const c = this.#table.get(cKey);
    const s = this.#table.get(sKey);
    const client =
      c instanceof InviteClientTransaction || c instanceof NonInviteClientTransaction
        ? c
        : undefined;
    const server =
      s instanceof InviteServerTransaction || s instanceof NonInviteServerTransaction
        ? s
        : undefined;
    // A response matching a client transaction was received from downstream; one matching a
    // server transaction was sent upstream. Direction decides only when both match.
    const toClient = client !== undefined && (server === undefined || hop.direction === 'received');
    if (toClient) {
      client.receiveResponse(response);
      return;
    }
    if (client === undefined && hop.direction === 'received') {
      const revived = this.#revive(cKey);
      if (revived !== undefined) {
        revived.receiveResponse(response);
        return;
      }
    }
    if (server !== undefined) {
      this.#observeSent(server, response);
      return;
    }
    if (hop.direction === 'received') {
      this.stats.strayResponses++;
      void this.#emit({
        name: 'responseReceived',
        observed: this.observed,
        time: this.clock.now(),
        message: response,
        direction: 'received',
        source: hop.source,
        destination: hop.destination,
      });
    } else {
      void this.#emit({
        name: response.status < 200 ? 'provisionalRelayed' : 'finalRelayed',
        observed: this.observed,
        time: this.clock.now(),
        message: response,
        direction: 'sent',
        source: hop.source,
        destination: hop.destination,
      });
    }
  }

  /**
   * §17.1.1.2: "If the client transaction is still in the "Calling" state when timer B fires,
   * the client transaction SHOULD inform the TU that a timeout has occurred." An observer's
   * timers only estimate the observed element's: its Timer B or C may be longer, and a mirrored
   * 100 Trying may never have reached us (capture copies travel over UDP). A response that
   * arrives from downstream after the branch timed out here proves the branch is alive at the
   * element, so the observer tracks it again: the response reaches the TU on its branch (in
   * Proceeding, Timer C restarted by a 101-199; §16.7 step 2), and the branch's own end (a
   * final response, or Timer C and the §9.1 wait) fires `branchFailed` once more, so whatever a
   * late 18x opened is closed with the branch. Remembered for Timer C after the timeout.
   */
  #rememberTimedOut(branch: InviteClientTransaction): void {
    const now = this.clock.now();
    this.#pruneTimedOut(now);
    if (this.#timedOut.size >= this.#max) {
      const oldest = this.#timedOut.keys().next();
      if (oldest.done !== true) this.#timedOut.delete(oldest.value);
    }
    this.#timedOut.delete(branch.id);
    this.#timedOut.set(branch.id, { branch, until: now + branch.timerValues.C });
  }

  #pruneTimedOut(now: number): void {
    // Insertion order is expiry order (one Timer C value per transport schedule, at most two).
    for (const [key, entry] of this.#timedOut) {
      if (entry.until > now) break;
      this.#timedOut.delete(key);
    }
  }

  #revive(key: string): InviteClientTransaction | undefined {
    if (this.#timedOut.size === 0) return undefined;
    const entry = this.#timedOut.get(key);
    if (entry === undefined) return undefined;
    this.#timedOut.delete(key);
    if (entry.until <= this.clock.now() || this.#table.size >= this.#max) return undefined;
    const old = entry.branch;
    const txn = this.#createClient(old.request, key, old.peer) as InviteClientTransaction;
    const ctx = old.context;
    if (ctx !== undefined && !ctx.server.terminated) {
      txn.context = ctx;
      ctx.addBranch(txn, false);
    }
    this.stats.branchesRevived++;
    txn.start();
    return txn;
  }

  #observeSent(server: ServerTransaction, response: SipMessage): void {
    const status = response.status;
    const hop = this.#hop;
    const accepts =
      server.pending ||
      (server instanceof InviteServerTransaction &&
        server.state === 'accepted' &&
        status >= 200 &&
        status < 300);
    if (!accepts) {
      this.stats.duplicatesObserved++;
      if (!(server instanceof InviteServerTransaction && status >= 200 && status < 300)) return;
    }
    const ctx = server.context;
    if (accepts && status >= 300 && ctx !== undefined && ctx.branches.length > 0) {
      void this.#emit({
        name: 'allBranchesFailed',
        observed: this.observed,
        time: this.clock.now(),
        message: response,
        direction: 'sent',
        source: hop?.source,
        destination: hop?.destination,
        transaction: server,
      });
    }
    if (status > 100 || !accepts) {
      void this.#emit({
        name: status < 200 ? 'provisionalRelayed' : 'finalRelayed',
        observed: this.observed,
        time: this.clock.now(),
        message: response,
        direction: 'sent',
        source: hop?.source,
        destination: hop?.destination,
        transaction: server,
        retransmission: !server.pending && status >= 200,
      });
    }
    if (!accepts) return;
    if (server instanceof InviteServerTransaction) server.sendResponse(response, false);
    else server.sendResponse(response, false);
  }

  // ---------------------------------------------------------------- lifecycle

  /** Aborts every live transaction (their timers are cleared and `transactionDestroyed` fires). */
  close(): void {
    for (const t of [...this.#table.values()]) t.abort('layer closed');
    this.#timedOut.clear();
  }
}

function addListener(
  map: Map<TransactionEventName, ListenerEntry[]>,
  name: TransactionEventName,
  listener: TransactionListener,
  options: ListenerOptions | undefined,
): () => void {
  const entry: ListenerEntry = { listener, deadlineMs: options?.deadlineMs };
  // Copy on write: a listener that (un)subscribes while an event is dispatched does not disturb
  // the dispatch in progress.
  map.set(name, [...(map.get(name) ?? []), entry]);
  return () => {
    const current = map.get(name);
    if (current === undefined) return;
    const rest = current.filter((e) => e !== entry);
    if (rest.length === 0) map.delete(name);
    else map.set(name, rest);
  };
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}
