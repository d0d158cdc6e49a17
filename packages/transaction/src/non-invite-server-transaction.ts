/** The non-INVITE server transaction (RFC 3261 §17.2.2). */
import type { SipMessage } from '@pinhole/sip';
import { ServerTransactionMachine } from './server-transaction.js';
import type { TimerName, TransactionInit } from './transaction.js';

export const NonInviteServerState = {
  Trying: 'trying',
  Proceeding: 'proceeding',
  Completed: 'completed',
  Terminated: 'terminated',
} as const;
export type NonInviteServerState = (typeof NonInviteServerState)[keyof typeof NonInviteServerState];

export const NON_INVITE_SERVER_EDGES: Readonly<
  Record<NonInviteServerState, readonly NonInviteServerState[]>
> = {
  trying: ['proceeding', 'completed', 'terminated'],
  proceeding: ['completed', 'terminated'],
  completed: ['terminated'],
  terminated: [],
};

const KEEPS: Readonly<Record<NonInviteServerState, readonly TimerName[]>> = {
  trying: [],
  proceeding: ['guard'],
  completed: [],
  terminated: [],
};

export class NonInviteServerTransaction extends ServerTransactionMachine<NonInviteServerState> {
  readonly kind = 'nist' as const;

  constructor(init: TransactionInit) {
    // §17.2.2: "The state machine is initialized in the "Trying" state and is passed a request
    // other than INVITE or ACK when initialized."
    super(init, 'trying');
  }

  protected edges(): Readonly<Record<NonInviteServerState, readonly NonInviteServerState[]>> {
    return NON_INVITE_SERVER_EDGES;
  }

  protected keeps(): Readonly<Record<NonInviteServerState, readonly TimerName[]>> {
    return KEEPS;
  }

  get pending(): boolean {
    return this.state === 'trying' || this.state === 'proceeding';
  }

  /** Starts the guard that bounds a TU that never answers (not in the RFC). */
  start(guardMs: number): void {
    this.startTimer('guard', guardMs);
  }

  sendResponse(response: SipMessage, local: boolean): boolean {
    const status = response.status;
    switch (this.state) {
      case 'trying':
      case 'proceeding':
        if (status < 200) {
          // "While in the "Trying" state, if the TU passes a provisional response to the server
          // transaction, the server transaction MUST enter the "Proceeding" state. The response
          // MUST be passed to the transport layer for transmission." ... "Any further
          // provisional responses that are received from the TU while in the "Proceeding"
          // state MUST be passed to the transport layer for transmission."
          if (this.state === 'trying') this.transition('proceeding');
          this.lastProvisional = response;
          this.send(response, this.replyTo);
        } else {
          // "If the TU passes a final response (status codes 200-699) to the server while in
          // the "Proceeding" state, the transaction MUST enter the "Completed" state, and the
          // response MUST be passed to the transport layer for transmission." (the same from
          // "Trying")
          if (!this.sendFinal('completed', response, local)) return true;
          // "When the server transaction enters the "Completed" state, it MUST set Timer J to
          // fire in 64*T1 seconds for unreliable transports, and zero seconds for reliable
          // transports."
          this.startTimer('J', this.timerValues.J);
        }
        return true;
      case 'completed':
      case 'terminated':
        return false;
    }
  }

  receiveRequest(request: SipMessage): void {
    switch (this.state) {
      case 'trying':
        // "Once in the "Trying" state, any further request retransmissions are discarded."
        this.host.notify(this, { kind: 'request-retransmission', message: request });
        return;
      case 'proceeding':
        // "If a retransmission of the request is received while in the "Proceeding" state, the
        // most recently sent provisional response MUST be passed to the transport layer for
        // retransmission."
        this.host.notify(this, { kind: 'request-retransmission', message: request });
        if (this.lastProvisional !== undefined) this.send(this.lastProvisional, this.replyTo);
        return;
      case 'completed':
        // "While in the "Completed" state, the server transaction MUST pass the final response
        // to the transport layer for retransmission whenever a retransmission of the request
        // is received."
        this.host.notify(this, { kind: 'request-retransmission', message: request });
        if (this.outgoingFinal !== undefined) this.send(this.outgoingFinal, this.replyTo);
        return;
      case 'terminated':
        return;
    }
  }

  transportError(error: unknown): void {
    switch (this.state) {
      case 'trying':
      case 'proceeding':
      case 'completed':
        // §17.2.4 / the figure: "Transport Err. Inform TU" and move to "Terminated".
        this.fail({ kind: 'transport-error', error });
        return;
      case 'terminated':
        return;
    }
  }

  protected onTimer(name: TimerName): void {
    switch (this.state) {
      case 'trying':
      case 'proceeding':
        if (name === 'guard') {
          this.host.notify(this, { kind: 'guard' });
          if (this.pending) this.abort('no final response from the TU');
        }
        return;
      case 'completed':
        // "The server transaction remains in this state until Timer J fires, at which point it
        // MUST transition to the "Terminated" state."
        if (name === 'J') this.transition('terminated');
        return;
      case 'terminated':
        return;
    }
  }
}
