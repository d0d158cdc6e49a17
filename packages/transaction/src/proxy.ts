/**
 * A stateful proxy's response context (RFC 3261 §16): one server transaction and the client
 * transactions (branches) it forwarded the request on.
 */
import type { SipMessage } from '@pinhole/sip';
import type { Address } from './address.js';
import { isChallenge, selectBest, type Candidate } from './best-response.js';
import { InviteClientTransaction } from './invite-client-transaction.js';
import type { InviteServerTransaction } from './invite-server-transaction.js';
import type { NonInviteClientTransaction } from './non-invite-client-transaction.js';
import type { NonInviteServerTransaction } from './non-invite-server-transaction.js';
import type { Outcome } from './transaction.js';

export type ServerTransaction = InviteServerTransaction | NonInviteServerTransaction;
export type ClientTransaction = InviteClientTransaction | NonInviteClientTransaction;

/** Options of `ProxyContext.forward`. */
export interface ForwardOptions {
  /**
   * The branch of the Via the layer adds (default: a fresh random one). It MUST start with the
   * magic cookie `z9hG4bK` and be unique per branch; a proxy that detects loops (§16.3 step 4)
   * puts a hash of the request in it.
   */
  readonly branch?: string;
  /** Further Via parameters, written as they go on the wire (e.g. `;rport`). */
  readonly viaParams?: string;
}

/** What a context needs from its layer. */
export interface ProxyHost {
  readonly observed: boolean;
  readonly cancelUnanswered: 'wait' | 'local-487';
  forward(
    ctx: ProxyContext,
    request: SipMessage,
    destination: Address,
    options?: ForwardOptions,
  ): ClientTransaction | undefined;
  relay(
    server: ServerTransaction,
    response: SipMessage,
    local: boolean,
    retransmit2xx?: boolean,
    branch?: ClientTransaction,
  ): void;
  sendCancel(branch: InviteClientTransaction): void;
  localResponse(request: SipMessage, status: number): SipMessage;
  allBranchesFailed(ctx: ProxyContext, winner: SipMessage, local: boolean): void;
}

export class ProxyContext {
  readonly server: ServerTransaction;
  /** Every branch created, in order (terminated ones included). */
  readonly branches: ClientTransaction[] = [];
  readonly #host: ProxyHost;
  /**
   * The final responses (and local stand-ins) stored for §16.7 step 6; created on first use and
   * dropped once a final response was forwarded (nothing reads them then, and the context lives
   * as long as its transactions absorb retransmissions).
   */
  #candidates: Candidate<SipMessage>[] | undefined;
  /** Branches whose CANCEL waits for a provisional (§9.1); created on first use. */
  #cancelWaiting: Set<InviteClientTransaction> | undefined;
  /** Branches created but not yet started (their `requestForwarded` is held). */
  #held: Set<ClientTransaction> | undefined;
  #cancelled = false;
  #closed = false;
  #finalForwarded = false;

  constructor(host: ProxyHost, server: ServerTransaction) {
    this.#host = host;
    this.server = server;
  }

  /** True once a CANCEL was received for the request or `cancel()` was called. */
  get cancelled(): boolean {
    return this.#cancelled;
  }

  /** True once no new branch may be created (a 6xx or a final response was forwarded). */
  get closed(): boolean {
    return this.#closed || !this.server.pending;
  }

  /**
   * Forwards `request` (already prepared by the proxy core per §16.6 steps 1-7: Request-URI,
   * Max-Forwards, Record-Route, Route) to `destination` on a new branch: the layer adds the Via
   * (§16.6 step 8) and creates the client transaction. Returns undefined when the context
   * accepts no new branch (§16.7 step 5: after a 6xx "it MUST NOT create any new branches in this
   * context").
   */
  forward(
    request: SipMessage,
    destination: Address,
    options?: ForwardOptions,
  ): ClientTransaction | undefined {
    if (this.closed) return undefined;
    return this.#host.forward(this, request, destination, options);
  }

  /** Sends a response upstream on the server transaction (a local answer of the proxy core). */
  respond(response: SipMessage): void {
    this.#host.relay(this.server, response, true);
  }

  /**
   * Cancels every pending INVITE branch (§16.10: "the element MUST generate CANCEL requests for
   * all pending client transactions in the context as described in Section 16.7 step 10").
   */
  cancel(): void {
    this.#cancelled = true;
    this.#closed = true;
    this.#cancelPending();
  }

  #cancelPending(except?: ClientTransaction): void {
    if (this.#host.observed) return;
    for (const b of this.branches) {
      if (b === except || !(b instanceof InviteClientTransaction) || !b.pending || b.cancelSent) {
        continue;
      }
      if (b.state === 'proceeding') {
        this.#host.sendCancel(b);
      } else if (this.#host.cancelUnanswered === 'local-487' || this.#held?.has(b) === true) {
        // Not started yet, or the deployment prefers to stop retransmitting at once.
        b.abort('cancelled before any provisional response');
      } else {
        // §9.1: "If no provisional response has been received, the CANCEL request MUST NOT be
        // sent; rather, the client MUST wait for the arrival of a provisional response before
        // sending the request."
        (this.#cancelWaiting ??= new Set()).add(b);
      }
    }
  }

  /** @internal the branch was created but its start is held. */
  addBranch(branch: ClientTransaction, held: boolean): void {
    this.branches.push(branch);
    if (held) (this.#held ??= new Set()).add(branch);
  }

  /** @internal the held branch is now started (or was aborted meanwhile). */
  released(branch: ClientTransaction): void {
    this.#held?.delete(branch);
  }

  /** @internal a response arrived on a branch (after `responseReceived` fired). */
  branchResponse(branch: ClientTransaction, response: SipMessage, retransmission: boolean): void {
    if (this.#host.observed) return;
    const status = response.status;
    if (status < 200) {
      if (
        branch instanceof InviteClientTransaction &&
        this.#cancelWaiting?.delete(branch) === true &&
        branch.pending
      ) {
        this.#host.sendCancel(branch);
      }
      // §16.7 step 5: "Any provisional response other than a 100 (Trying) MUST be forwarded
      // upstream immediately." and §16.7 step 3: "The proxy removes the topmost Via header field
      // value from the response."
      if (status > 100 && this.server.pending) {
        response.removeTopVia();
        this.#host.relay(this.server, response, false, false, branch);
      }
      return;
    }
    if (status < 300) {
      if (branch.kind === 'ict') {
        // §16.7 step 5: "Any 2xx response to an INVITE request MUST be forwarded upstream
        // immediately." (also after a final response was sent, and each retransmission).
        response.removeTopVia();
        this.#host.relay(this.server, response, false, false, branch);
      } else if (this.server.pending) {
        response.removeTopVia();
        this.#host.relay(this.server, response, false, false, branch);
      } else {
        return;
      }
      if (!retransmission) this.#afterFinalForwarded(branch);
      return;
    }
    if (retransmission) return;
    // §16.7 step 4/5: 3xx-6xx are stored in the response context until every branch is done.
    response.removeTopVia();
    if (branch instanceof InviteClientTransaction && branch.timerCFired && status === 487) {
      // §16.8 ends the branch with a CANCEL because the call attempt timed out: its 487 is the
      // callee's answer to our CANCEL, not to the caller. The caller learns of a timeout (408),
      // as it would had the branch sent no provisional ("as if ... received a 408").
      this.#store({ status: 408, message: undefined, local: true });
    } else {
      this.#store({ status, message: response, local: false });
    }
    if (status >= 600) {
      // §16.7 step 5: "If a 6xx response is received, it is not immediately forwarded, but the
      // stateful proxy SHOULD cancel all client pending transactions as described in Section
      // 10, and it MUST NOT create any new branches in this context."
      this.#closed = true;
      this.#cancelPending(branch);
    }
  }

  /** @internal a branch ended without a 2xx (`branchFailed` has fired). */
  branchEnded(branch: ClientTransaction, outcome: Outcome): void {
    this.#cancelWaiting?.delete(branch as InviteClientTransaction);
    this.#held?.delete(branch);
    if (this.#host.observed) return;
    switch (outcome.kind) {
      case 'response':
        break; // stored by branchResponse
      case 'timeout':
        // §16.8: a branch without a provisional when Timer C fires behaves "as if the
        // transaction received a 408"; Timer B/F likewise report a timeout (§16.7 step 6's 408).
        // The §9.1 wait after a CANCEL ends with the request considered cancelled: 487.
        this.#store({
          status: outcome.timer === 'cancel' ? 487 : 408,
          message: undefined,
          local: true,
        });
        break;
      case 'transport-error':
        // §16.9: "If the transport layer notifies a proxy of an error when it tries to forward a
        // request (see Section 18.4), the proxy MUST behave as if the forwarded request received
        // a 503 (Service Unavailable) response."
        this.#store({ status: 503, message: undefined, local: true });
        break;
      case 'aborted':
        this.#store({
          status: this.#cancelled ? 487 : 408,
          message: undefined,
          local: true,
        });
        break;
    }
    this.#checkDone(branch);
  }

  #store(candidate: Candidate<SipMessage>): void {
    if (this.#finalForwarded) return;
    (this.#candidates ??= []).push(candidate);
  }

  #afterFinalForwarded(branch: ClientTransaction): void {
    this.#finalForwarded = true;
    this.#candidates = undefined;
    this.#closed = true;
    // §16.7 step 10: "If the forwarded response was a final response, the proxy MUST generate a
    // CANCEL request for all pending client transactions associated with this response context."
    this.#cancelPending(branch);
  }

  /** `ended` is the branch reporting its end (still in its old state while it reports). */
  #checkDone(ended: ClientTransaction): void {
    if (this.#finalForwarded || !this.server.pending || (this.#held?.size ?? 0) > 0) return;
    for (const b of this.branches) if (b !== ended && b.pending) return;
    if (this.branches.length === 0) return;
    this.#finalForwarded = true;
    this.#closed = true;
    const [message, local] = this.#winner();
    this.#candidates = undefined;
    this.#host.allBranchesFailed(this, message, local);
    this.#host.relay(this.server, message, local);
  }

  /** §16.7 steps 6 and 7. */
  #winner(): [SipMessage, boolean] {
    const candidates = this.#candidates ?? [];
    const best = selectBest(candidates);
    const request = this.server.request;
    if (best === undefined || (best.local && best.status === 408 && this.#cancelled)) {
      // "If there are no final responses in the context, the proxy MUST send a 408 (Request
      // Timeout) response to the server transaction." A cancelled request gets 487 instead
      // (§9.2: "the UAS SHOULD then respond to the INVITE with a 487").
      return [this.#host.localResponse(request, this.#cancelled ? 487 : 408), true];
    }
    if (best.status === 503) {
      // §16.7 step 6: "A proxy which receives a 503 (Service Unavailable) response SHOULD NOT
      // forward it upstream unless it can determine that any subsequent requests it might proxy
      // will also generate a 503." ... "If the only response that was received is a 503, the
      // proxy SHOULD generate a 500 response and forward that upstream."
      return [this.#host.localResponse(request, 500), true];
    }
    if (best.message === undefined) return [this.#host.localResponse(request, best.status), true];
    const chosen = best.message;
    if (isChallenge(best.status)) {
      // §16.7 step 7: "If the selected response is a 401 (Unauthorized) or 407 (Proxy
      // Authentication Required), the proxy MUST collect any WWW-Authenticate and
      // Proxy-Authenticate header field values from all other 401 (Unauthorized) and 407
      // (Proxy Authentication Required) responses received so far in this response context and
      // add them to this response without modification before forwarding."
      for (const c of candidates) {
        if (c === best || c.message === undefined || !isChallenge(c.status)) continue;
        for (const h of c.message.headers()) {
          if (h.name === 'www-authenticate' || h.name === 'proxy-authenticate') {
            chosen.addHeader(h.rawName, h.value);
          }
        }
      }
    }
    return [chosen, false];
  }
}
