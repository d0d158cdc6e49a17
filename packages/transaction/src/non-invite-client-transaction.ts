/** The non-INVITE client transaction (RFC 3261 §17.1.2). */
import type { SipMessage } from '@pinhole/sip';
import { Transaction, type TimerName, type TransactionInit } from './transaction.js';
import { nextInterval } from './timers.js';

export const NonInviteClientState = {
  Trying: 'trying',
  Proceeding: 'proceeding',
  Completed: 'completed',
  Terminated: 'terminated',
} as const;
export type NonInviteClientState = (typeof NonInviteClientState)[keyof typeof NonInviteClientState];

export const NON_INVITE_CLIENT_EDGES: Readonly<
  Record<NonInviteClientState, readonly NonInviteClientState[]>
> = {
  trying: ['proceeding', 'completed', 'terminated'],
  proceeding: ['completed', 'terminated'],
  completed: ['terminated'],
  terminated: [],
};

// Timers E and F keep running from Trying into Proceeding (§17.1.2.2).
const KEEPS: Readonly<Record<NonInviteClientState, readonly TimerName[]>> = {
  trying: [],
  proceeding: ['E', 'F'],
  completed: [],
  terminated: [],
};

export class NonInviteClientTransaction extends Transaction<NonInviteClientState> {
  readonly kind = 'nict' as const;
  #intervalE = 0;

  constructor(init: TransactionInit) {
    super(init, 'trying');
  }

  protected edges(): Readonly<Record<NonInviteClientState, readonly NonInviteClientState[]>> {
    return NON_INVITE_CLIENT_EDGES;
  }

  protected keeps(): Readonly<Record<NonInviteClientState, readonly TimerName[]>> {
    return KEEPS;
  }

  get pending(): boolean {
    return this.state === 'trying' || this.state === 'proceeding';
  }

  /**
   * §17.1.2.2: "The "Trying" state is entered when the TU initiates a new client transaction with
   * a request. When entering this state, the client transaction SHOULD set timer F to fire in
   * 64*T1 seconds. The request MUST be passed to the transport layer for transmission. If an
   * unreliable transport is in use, the client transaction MUST set timer E to fire in T1
   * seconds."
   */
  start(): void {
    const t = this.timerValues;
    this.startTimer('F', t.F);
    this.send(this.outgoingRequest());
    if (this.terminated) return;
    if (t.E !== undefined) {
      this.#intervalE = t.E;
      this.startTimer('E', t.E);
    }
  }

  receiveResponse(response: SipMessage): void {
    const status = response.status;
    switch (this.state) {
      case 'trying':
      case 'proceeding':
        if (status < 200) {
          // "If a provisional response is received while in the "Trying" state, the response
          // MUST be passed to the TU, and then the client transaction SHOULD move to the
          // "Proceeding" state."
          const retransmission = this.state === 'proceeding';
          if (this.state === 'trying') this.transition('proceeding');
          this.host.notify(this, { kind: 'response', message: response, retransmission });
        } else {
          // "If a final response (status codes 200-699) is received while in the "Trying" state,
          // the response MUST be passed to the TU, and the client transaction MUST transition to
          // the "Completed" state." (the same from "Proceeding")
          this.transition('completed');
          this.outcome = { kind: 'response', status, local: false };
          this.host.notify(this, { kind: 'response', message: response, retransmission: false });
          this.host.notify(this, { kind: 'completed', outcome: this.outcome });
          // Completed only absorbs retransmitted responses: the request's bytes are enough.
          this.releaseRequest();
          // "Once the client transaction enters the "Completed" state, it MUST set Timer K to
          // fire in T4 seconds for unreliable transports, and zero seconds for reliable
          // transports."
          if (!this.terminated) this.startTimer('K', this.timerValues.K);
        }
        return;
      case 'completed':
        // "The "Completed" state exists to buffer any additional response retransmissions that
        // may be received (which is why the client transaction remains there only for
        // unreliable transports)."
        return;
      case 'terminated':
        return;
    }
  }

  transportError(error: unknown): void {
    switch (this.state) {
      case 'trying':
      case 'proceeding':
        // §17.1.4: "the client transaction SHOULD inform the TU that a transport failure has
        // occurred, and the client transaction SHOULD transition directly to the "Terminated"
        // state."
        this.fail({ kind: 'transport-error', error });
        return;
      case 'completed':
      case 'terminated':
        return;
    }
  }

  protected onTimer(name: TimerName): void {
    switch (this.state) {
      case 'trying':
      case 'proceeding':
        if (name === 'E') {
          // "If timer E fires while still in this state, the timer is reset, but this time with
          // a value of MIN(2*T1, T2)." ... "If Timer E fires while in the "Proceeding" state, the
          // request MUST be passed to the transport layer for retransmission, and Timer E MUST
          // be reset with a value of T2 seconds."
          this.send(this.outgoingRequest());
          if (this.terminated) return;
          const t2 = this.timerValues.T2;
          this.#intervalE = this.state === 'proceeding' ? t2 : nextInterval(this.#intervalE, t2);
          this.startTimer('E', this.#intervalE);
        } else if (name === 'F') {
          // "If Timer F fires while the client transaction is still in the "Trying" state, the
          // client transaction SHOULD inform the TU about the timeout, and then it SHOULD enter
          // the "Terminated" state." (the same in "Proceeding")
          this.fail({ kind: 'timeout', timer: 'F' });
        }
        return;
      case 'completed':
        // "If Timer K fires while in this state, the client transaction MUST transition to the
        // "Terminated" state."
        if (name === 'K') this.transition('terminated');
        return;
      case 'terminated':
        return;
    }
  }
}
