/** The INVITE server transaction (RFC 3261 §17.2.1, with the RFC 6026 Accepted state). */
import type { SipMessage } from '@pinhole/sip';
import { ServerTransactionMachine } from './server-transaction.js';
import type { TimerName, TransactionInit } from './transaction.js';
import { nextInterval } from './timers.js';
import type { OutgoingMessage } from './wire.js';

export const InviteServerState = {
  Proceeding: 'proceeding',
  Completed: 'completed',
  Confirmed: 'confirmed',
  Accepted: 'accepted',
  Terminated: 'terminated',
} as const;
export type InviteServerState = (typeof InviteServerState)[keyof typeof InviteServerState];

export const INVITE_SERVER_EDGES: Readonly<
  Record<InviteServerState, readonly InviteServerState[]>
> = {
  proceeding: ['completed', 'accepted', 'terminated'],
  completed: ['confirmed', 'terminated'],
  confirmed: ['terminated'],
  accepted: ['terminated'],
  terminated: [],
};

const KEEPS: Readonly<Record<InviteServerState, readonly TimerName[]>> = {
  proceeding: ['trying', 'guard'],
  completed: [],
  confirmed: [],
  accepted: [],
  terminated: [],
};

export class InviteServerTransaction extends ServerTransactionMachine<InviteServerState> {
  readonly kind = 'ist' as const;
  /** @internal The key under which the layer indexes this Accepted transaction for its ACK. */
  acceptedKey: string | undefined;
  #intervalG = 0;
  #guardMs = 0;
  #interval2xx = 0;
  #retransmit2xx: OutgoingMessage | undefined;

  constructor(init: TransactionInit) {
    super(init, 'proceeding');
  }

  protected edges(): Readonly<Record<InviteServerState, readonly InviteServerState[]>> {
    return INVITE_SERVER_EDGES;
  }

  protected keeps(): Readonly<Record<InviteServerState, readonly TimerName[]>> {
    return KEEPS;
  }

  /** True in Proceeding: no final response sent yet. */
  get pending(): boolean {
    return this.state === 'proceeding';
  }

  /**
   * §17.2.1: "When a server transaction is constructed for a request, it enters the "Proceeding"
   * state. The server transaction MUST generate a 100 (Trying) response unless it knows that the
   * TU will generate a provisional or final response within 200 ms, in which case it MAY
   * generate a 100 (Trying) response."
   *
   * `trying`: `immediate` sends it now, `delayed` after the `trying` timer unless the TU
   * answered, `never` leaves it to the TU. `guardMs` bounds how long a TU may stay silent.
   */
  start(trying: 'immediate' | 'delayed' | 'never', guardMs: number): void {
    this.#guardMs = guardMs;
    if (!this.observed) {
      if (trying === 'immediate') this.#sendTrying();
      else if (trying === 'delayed') this.startTimer('trying', this.timerValues.trying);
    }
    if (!this.terminated) this.startTimer('guard', guardMs);
  }

  #sendTrying(): void {
    const trying = this.host.buildResponse(this.request, 100);
    this.lastProvisional = trying;
    this.send(trying, this.replyTo);
  }

  /**
   * A response from the TU. Returns false when the state does not accept it (the caller may
   * then forward a 2xx statelessly, §16.7 step 5).
   */
  sendResponse(response: SipMessage, local: boolean, retransmit2xx = false): boolean {
    const status = response.status;
    switch (this.state) {
      case 'proceeding':
        if (status < 200) {
          // "The TU passes any number of provisional responses to the server transaction. So
          // long as the server transaction is in the "Proceeding" state, each of these MUST be
          // passed to the transport layer for transmission."
          this.stopTimer('trying');
          this.lastProvisional = response;
          this.send(response, this.replyTo);
          // A call may ring for longer than the guard as long as provisionals keep coming (each
          // one also resets the proxy's Timer C): each one pushes the guard back.
          if (status > 100 && this.#guardMs > 0 && !this.terminated) {
            this.startTimer('guard', this.#guardMs);
          }
        } else if (status < 300) {
          // RFC 6026 §8.5: "If, while in the "Proceeding" state, the TU passes a 2xx response to
          // the server transaction, the server transaction MUST pass this response to the
          // transport layer for transmission. It is not retransmitted by the server
          // transaction; retransmissions of 2xx responses are handled by the TU. The server
          // transaction MUST then transition to the "Accepted" state."
          if (!this.sendFinal('accepted', response, local)) return true;
          // RFC 6026 §8.7: Timer L "MUST be set to fire in 64*T1"
          this.startTimer('L', this.timerValues.L);
          // §13.3.1.4 (UAS core): "The 2xx response is passed to the transport with an interval
          // that starts at T1 seconds and doubles for each retransmission until it reaches T2
          // seconds." Only over unreliable transports, and only when the TU asks for it.
          if (retransmit2xx && this.timerValues.G !== undefined && !this.terminated) {
            this.#retransmit2xx = this.outgoingFinal;
            this.#interval2xx = this.timerValues.T1;
            this.startTimer('2xx', this.#interval2xx);
          }
        } else {
          // §17.2.1: "While in the "Proceeding" state, if the TU passes a response with status
          // code from 300 to 699 to the server transaction, the response MUST be passed to the
          // transport layer for transmission, and the state machine MUST enter the "Completed"
          // state. For unreliable transports, timer G is set to fire in T1 seconds, and is not
          // set to fire for reliable transports."
          if (!this.sendFinal('completed', response, local)) return true;
          const t = this.timerValues;
          if (t.G !== undefined) {
            this.#intervalG = t.G;
            this.startTimer('G', t.G);
          }
          // "When the "Completed" state is entered, timer H MUST be set to fire in 64*T1
          // seconds for all transports."
          this.startTimer('H', t.H);
        }
        return true;
      case 'accepted':
        // RFC 6026 §8.7: "While in the "Accepted" state, any 2xx responses passed in from the TU
        // MUST be passed to the transport layer for transmission."
        if (status >= 200 && status < 300) {
          this.send(response, this.replyTo);
          return true;
        }
        return false;
      case 'completed':
      case 'confirmed':
      case 'terminated':
        return false;
    }
  }

  /** A request that matched this transaction: a retransmitted INVITE or an ACK. */
  receiveRequest(request: SipMessage): void {
    const isAck = request.method.toUpperCase() === 'ACK';
    switch (this.state) {
      case 'proceeding':
        if (isAck) return;
        // "If a request retransmission is received while in the "Proceeding" state, the most
        // recent provisional response that was received from the TU MUST be passed to the
        // transport layer for retransmission."
        this.host.notify(this, { kind: 'request-retransmission', message: request });
        if (this.lastProvisional !== undefined) this.send(this.lastProvisional, this.replyTo);
        return;
      case 'completed':
        if (isAck) {
          // "If an ACK is received while the server transaction is in the "Completed" state,
          // the server transaction MUST transition to the "Confirmed" state. As Timer G is
          // ignored in this state, any retransmissions of the response will cease."
          this.transition('confirmed');
          this.host.notify(this, { kind: 'ack', message: request, endToEnd: false });
          // "When this state is entered, timer I is set to fire in T4 seconds for unreliable
          // transports, and zero seconds for reliable transports."
          if (!this.terminated) this.startTimer('I', this.timerValues.I);
        } else {
          // "Furthermore, while in the "Completed" state, if a request retransmission is
          // received, the server SHOULD pass the response to the transport for retransmission."
          this.host.notify(this, { kind: 'request-retransmission', message: request });
          if (this.outgoingFinal !== undefined) this.send(this.outgoingFinal, this.replyTo);
        }
        return;
      case 'confirmed':
        // "The purpose of the "Confirmed" state is to absorb any additional ACK messages that
        // arrive, triggered from retransmissions of the final response."
        return;
      case 'accepted':
        if (isAck) {
          // RFC 6026 §8.7: "If an ACK is received while the INVITE server transaction is in the
          // "Accepted" state, then the ACK must be passed up to the TU."
          this.stopTimer('2xx');
          this.#retransmit2xx = undefined;
          this.host.notify(this, { kind: 'ack', message: request, endToEnd: true });
        } else {
          // RFC 6026 §8.7: "The server transaction MUST NOT retransmit the 2xx response in
          // response to a retransmitted INVITE": the retransmission is absorbed.
          this.host.notify(this, { kind: 'request-retransmission', message: request });
        }
        return;
      case 'terminated':
        return;
    }
  }

  transportError(error: unknown): void {
    switch (this.state) {
      case 'proceeding':
      case 'completed':
      case 'accepted':
        // §17.2.4: "If the transport layer indicates a failure ... the server transaction ...
        // SHOULD inform the TU that a failure has occurred, and SHOULD transition to the
        // terminated state." (RFC 6026 §8.8 says the same for "Accepted".)
        this.fail({ kind: 'transport-error', error });
        return;
      case 'confirmed':
      case 'terminated':
        return;
    }
  }

  protected onTimer(name: TimerName): void {
    switch (this.state) {
      case 'proceeding':
        if (name === 'trying') {
          if (this.lastProvisional === undefined) this.#sendTrying();
        } else if (name === 'guard') {
          // Not in the RFC: a TU that never answers must not leak the transaction.
          this.host.notify(this, { kind: 'guard' });
          if (this.state === 'proceeding') this.abort('no final response from the TU');
        }
        return;
      case 'completed':
        if (name === 'G') {
          // "If timer G fires, the response is passed to the transport layer once more for
          // retransmission, and timer G is set to fire in MIN(2*T1, T2) seconds. From then on,
          // when timer G fires, the response is passed to the transport again for
          // transmission, and timer G is reset with a value that doubles, unless that value
          // exceeds T2, in which case it is reset with the value of T2."
          if (this.outgoingFinal !== undefined) this.send(this.outgoingFinal, this.replyTo);
          if (this.terminated) return;
          this.#intervalG = nextInterval(this.#intervalG, this.timerValues.T2);
          this.startTimer('G', this.#intervalG);
        } else if (name === 'H') {
          // "If timer H fires while in the "Completed" state, it implies that the ACK was never
          // received. In this case, the server transaction MUST transition to the "Terminated"
          // state, and MUST indicate to the TU that a transaction failure has occurred."
          this.fail({ kind: 'timeout', timer: 'H' });
        }
        return;
      case 'confirmed':
        // "Once timer I fires, the server MUST transition to the "Terminated" state."
        if (name === 'I') this.transition('terminated');
        return;
      case 'accepted':
        if (name === 'L') {
          // RFC 6026 §8.7: "If Timer L fires while the INVITE server transaction is in the
          // "Accepted" state, the transaction MUST transition to the "Terminated" state."
          this.transition('terminated');
        } else if (name === '2xx' && this.#retransmit2xx !== undefined) {
          this.send(this.#retransmit2xx, this.replyTo);
          if (this.terminated) return;
          this.#interval2xx = nextInterval(this.#interval2xx, this.timerValues.T2);
          this.startTimer('2xx', this.#interval2xx);
        }
        return;
      case 'terminated':
        return;
    }
  }
}
