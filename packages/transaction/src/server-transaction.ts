/** What the INVITE and non-INVITE server transactions (RFC 3261 §17.2.1, §17.2.2) share. */
import type { SipMessage } from '@pinhole/sip';
import type { Address } from './address.js';
import { Transaction, type Outcome, type TransactionInit } from './transaction.js';

export abstract class ServerTransactionMachine<S extends string> extends Transaction<S> {
  /** Where responses go (RFC 3261 §18.2.2). */
  readonly replyTo: Address;
  /**
   * The most recent provisional sent; `undefined` before any, and again once a final response
   * is sent (only Proceeding retransmits it; the transaction lives on for up to 64*T1 and would
   * otherwise keep the message alive).
   */
  lastProvisional: SipMessage | undefined;
  /** The final response sent (for the INVITE server, the first 2xx in Accepted). */
  finalResponse: SipMessage | undefined;

  protected constructor(init: TransactionInit, initial: S) {
    super(init, initial);
    this.replyTo = init.replyTo ?? init.peer;
  }

  /**
   * A final response from the TU: enter `to` (Completed, or Accepted for an INVITE 2xx), keep the
   * response and the outcome, pass the response to the transport layer (§17.2.1, §17.2.2, RFC
   * 6026 §8.5) and tell the host. False when the machine terminated meanwhile (a transport
   * error, or a listener ending it): the caller then starts no timer.
   */
  protected sendFinal(to: S, response: SipMessage, local: boolean): boolean {
    this.transition(to);
    this.lastProvisional = undefined;
    this.finalResponse = response;
    const outcome: Outcome = { kind: 'response', status: response.status, local };
    this.outcome = outcome;
    this.send(response, this.replyTo);
    if (this.terminated) return false;
    this.host.notify(this, { kind: 'completed', outcome });
    return !this.terminated;
  }

  protected override fail(outcome: Outcome): void {
    // A failure after the final response keeps the final response as the outcome.
    if (this.outcome === undefined) this.outcome = outcome;
    this.host.notify(this, { kind: 'failed', outcome });
    if (!this.terminated) this.transition('terminated' as S);
  }
}
