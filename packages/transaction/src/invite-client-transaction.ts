/** The INVITE client transaction (RFC 3261 §17.1.1, with the RFC 6026 Accepted state). */
import type { SipMessage } from '@pinhole/sip';
import { Transaction, type TimerName, type TransactionInit } from './transaction.js';
import { nextInterval } from './timers.js';
import type { OutgoingMessage } from './wire.js';

export const InviteClientState = {
  Calling: 'calling',
  Proceeding: 'proceeding',
  Completed: 'completed',
  Accepted: 'accepted',
  Terminated: 'terminated',
} as const;
export type InviteClientState = (typeof InviteClientState)[keyof typeof InviteClientState];

export const INVITE_CLIENT_EDGES: Readonly<
  Record<InviteClientState, readonly InviteClientState[]>
> = {
  calling: ['proceeding', 'completed', 'accepted', 'terminated'],
  proceeding: ['completed', 'accepted', 'terminated'],
  completed: ['terminated'],
  accepted: ['terminated'],
  terminated: [],
};

// Timer C (§16.6 step 11) runs in Calling and Proceeding; the §9.1 cancel wait in Proceeding.
const KEEPS: Readonly<Record<InviteClientState, readonly TimerName[]>> = {
  calling: [],
  proceeding: ['C', 'cancel'],
  completed: [],
  accepted: [],
  terminated: [],
};

export class InviteClientTransaction extends Transaction<InviteClientState> {
  readonly kind = 'ict' as const;
  /**
   * The last provisional (101-199) received; `undefined` before any, and again once a final
   * response arrived (it serves only to tell retransmissions apart in Proceeding).
   */
  lastProvisional: SipMessage | undefined;
  /** True once a CANCEL was sent (or observed) for this transaction. */
  cancelSent = false;
  /** A CANCEL was asked for before any provisional; it goes out with the first one (§9.1). */
  cancelWanted = false;
  /** Timer C fired while a provisional had arrived: the CANCEL sent is a timeout (§16.8). */
  timerCFired = false;
  #ack: OutgoingMessage | undefined;
  #intervalA = 0;

  constructor(init: TransactionInit) {
    super(init, 'calling');
  }

  protected edges(): Readonly<Record<InviteClientState, readonly InviteClientState[]>> {
    return INVITE_CLIENT_EDGES;
  }

  protected keeps(): Readonly<Record<InviteClientState, readonly TimerName[]>> {
    return KEEPS;
  }

  /** True in Calling/Proceeding: no final response yet. */
  get pending(): boolean {
    return this.state === 'calling' || this.state === 'proceeding';
  }

  /**
   * §17.1.1.2: "The initial state, "calling", MUST be entered when the TU initiates a new client
   * transaction with an INVITE request. The client transaction MUST pass the request to the
   * transport layer for transmission (see Section 18)."
   */
  start(): void {
    this.send(this.outgoingRequest());
    if (this.terminated) return; // a synchronous transport error
    const t = this.timerValues;
    // "If an unreliable transport is being used, the client transaction MUST start timer A with
    // a value of T1. If a reliable transport is being used, the client transaction SHOULD NOT
    // start timer A (Timer A controls request retransmissions)."
    if (t.A !== undefined) {
      this.#intervalA = t.A;
      this.startTimer('A', t.A);
    }
    // "For any transport, the client transaction MUST start timer B with a value of 64*T1
    // seconds (Timer B controls transaction timeouts)."
    this.startTimer('B', t.B);
    // §16.6 step 11: "If the request is an INVITE, Timer C MUST be set ... Timer C MUST be set
    // for each client transaction when an INVITE request is proxied."
    this.startTimer('C', t.C);
  }

  receiveResponse(response: SipMessage): void {
    const status = response.status;
    switch (this.state) {
      case 'calling':
      case 'proceeding':
        if (status < 200) {
          // §17.1.1.2: "If the client transaction receives a provisional response while in the
          // "Calling" state, it transitions to the "Proceeding" state. In the "Proceeding"
          // state, the client transaction SHOULD NOT retransmit the request any longer.
          // Furthermore, the provisional response MUST be passed to the TU."
          const retransmission =
            this.state === 'proceeding' && status === this.lastProvisional?.status;
          if (this.state === 'calling') this.transition('proceeding');
          if (status > 100) {
            this.lastProvisional = response;
            // §16.7 step 2: "For a provisional response other than 100, the proxy MUST reset the
            // timer with a different value. This value MUST be greater than 3 minutes."
            if (!this.cancelSent) this.startTimer('C', this.timerValues.C);
          }
          this.host.notify(this, { kind: 'response', message: response, retransmission });
        } else if (status < 300) {
          // RFC 6026 §8.4: "If a 2xx response is received while the client INVITE state machine
          // is in the "Calling" or "Proceeding" states, it MUST transition to the "Accepted"
          // state, pass the 2xx response to the TU, and set Timer M to 64*T1."
          this.transition('accepted');
          this.lastProvisional = undefined;
          this.outcome = { kind: 'response', status, local: false };
          this.host.notify(this, { kind: 'response', message: response, retransmission: false });
          this.host.notify(this, { kind: 'completed', outcome: this.outcome });
          // Accepted only passes 2xx retransmissions up: the request's bytes are enough.
          this.releaseRequest();
          if (!this.terminated) this.startTimer('M', this.timerValues.M);
        } else {
          // §17.1.1.2: "When in either the "Calling" or "Proceeding" states, reception of a
          // response with status code from 300-699 MUST cause the client transaction to
          // transition to "Completed". The client transaction MUST pass the received response up
          // to the TU, and the client transaction MUST generate an ACK request, even if the
          // transport is reliable ... and then pass the ACK to the transport layer for
          // transmission."
          this.transition('completed');
          this.lastProvisional = undefined;
          this.outcome = { kind: 'response', status, local: false };
          if (!this.observed) {
            const ack = this.host.buildAck(this.request, response);
            // Completed resends this ACK for each retransmitted final response: keep its bytes.
            this.#ack = this.host.serialize(ack) ?? ack;
            this.send(this.#ack);
          }
          if (this.terminated) return;
          this.host.notify(this, { kind: 'response', message: response, retransmission: false });
          this.host.notify(this, { kind: 'completed', outcome: this.outcome });
          this.releaseRequest();
          // "The client transaction SHOULD start timer D when it enters the "Completed" state,
          // with a value of at least 32 seconds for unreliable transports, and a value of zero
          // seconds for reliable transports."
          if (!this.terminated) this.startTimer('D', this.timerValues.D);
        }
        return;
      case 'completed':
        // "Any retransmissions of the final response that are received while in the
        // "Completed" state MUST cause the ACK to be re-passed to the transport layer for
        // retransmission, but the newly received response MUST NOT be passed up to the TU."
        if (status >= 300 && this.#ack !== undefined) this.send(this.#ack);
        return;
      case 'accepted':
        // RFC 6026 §8.4: "Any 2xx responses that match this client transaction and that are
        // received while in the "Accepted" state MUST be passed up to the TU. The client
        // transaction MUST NOT generate an ACK to the 2xx response".
        if (status >= 200 && status < 300) {
          this.host.notify(this, { kind: 'response', message: response, retransmission: true });
        }
        return;
      case 'terminated':
        return;
    }
  }

  /**
   * A CANCEL for this transaction was sent (or observed). §9.1: "If there is no final response
   * for the original request in 64*T1 seconds (T1 is defined in Section 17.1.1.1), the client
   * SHOULD then consider the original transaction cancelled and SHOULD destroy the client
   * transaction handling the original request."
   */
  markCancelSent(): void {
    if (this.cancelSent || !this.pending) return;
    this.cancelSent = true;
    this.stopTimer('C');
    this.startTimer('cancel', this.timerValues.cancel);
  }

  transportError(error: unknown): void {
    switch (this.state) {
      case 'calling':
      case 'proceeding':
      case 'completed':
        // §17.1.4: "the client transaction SHOULD inform the TU that a transport failure has
        // occurred, and the client transaction SHOULD transition directly to the "Terminated"
        // state."
        if (this.outcome === undefined) this.fail({ kind: 'transport-error', error });
        else this.transition('terminated');
        return;
      case 'accepted':
      case 'terminated':
        return;
    }
  }

  protected onTimer(name: TimerName): void {
    switch (this.state) {
      case 'calling':
        if (name === 'A') {
          // "When timer A fires, the client transaction MUST retransmit the request by passing
          // it to the transport layer, and MUST reset the timer with a value of 2*T1."
          this.send(this.outgoingRequest());
          if (this.terminated) return;
          this.#intervalA = nextInterval(this.#intervalA);
          this.startTimer('A', this.#intervalA);
        } else if (name === 'B') {
          // "If the client transaction is still in the "Calling" state when timer B fires, the
          // client transaction SHOULD inform the TU that a timeout has occurred."
          this.fail({ kind: 'timeout', timer: 'B' });
        } else if (name === 'C') {
          // §16.8: "If the client transaction has not received a provisional response, the
          // proxy MUST behave as if the transaction received a 408 (Request Timeout) response."
          this.fail({ kind: 'timeout', timer: 'C' });
        }
        return;
      case 'proceeding':
        if (name === 'C') {
          // §16.8: "If the client transaction has received a provisional response, the proxy
          // MUST generate a CANCEL request matching that transaction." The host sends it and
          // calls markCancelSent; the §9.1 wait bounds the transaction either way.
          this.host.notify(this, { kind: 'timer-c' });
          if (this.pending && !this.cancelSent) {
            this.cancelSent = true;
            this.startTimer('cancel', this.timerValues.cancel);
          }
        } else if (name === 'cancel') {
          this.fail({ kind: 'timeout', timer: 'cancel' });
        }
        return;
      case 'completed':
        // "If timer D fires while the client transaction is in the "Completed" state, the
        // client transaction MUST move to the terminated state."
        if (name === 'D') this.transition('terminated');
        return;
      case 'accepted':
        // RFC 6026 §8.4: "If Timer M fires while the client transaction is in the "Accepted"
        // state, the client transaction MUST move to the "Terminated" state."
        if (name === 'M') this.transition('terminated');
        return;
      case 'terminated':
        return;
    }
  }
}
