/** What the INVITE and non-INVITE server transactions (RFC 3261 §17.2.1, §17.2.2) share. */
import type { SipMessage } from '@pinhole/sip';
import type { Address } from './address.js';
import { Transaction, type Outcome, type TransactionInit } from './transaction.js';
import { SerializedMessage, type OutgoingMessage } from './wire.js';

export abstract class ServerTransactionMachine<S extends string> extends Transaction<S> {
  /** Where responses go (RFC 3261 §18.2.2). */
  readonly replyTo: Address;
  /**
   * The most recent provisional sent; `undefined` before any, and again once a final response
   * is sent (only Proceeding retransmits it; the transaction lives on for up to 64*T1 and would
   * otherwise keep the message alive).
   */
  lastProvisional: SipMessage | undefined;
  /**
   * The final response sent (for the INVITE server, the first 2xx in Accepted), as the machine
   * resends it: its bytes when the host can send bytes, else the message.
   */
  #final: OutgoingMessage | undefined;

  protected constructor(init: TransactionInit, initial: S) {
    super(init, initial);
    this.replyTo = init.replyTo ?? init.peer;
  }

  /**
   * The final response sent. When the machine keeps only its bytes (the host sends bytes), this
   * parses them again on each read: the same content, a new object.
   */
  get finalResponse(): SipMessage | undefined {
    const f = this.#final;
    return f instanceof SerializedMessage ? f.parse() : f;
  }

  /** What retransmissions of the final response send (bytes or message). */
  protected get outgoingFinal(): OutgoingMessage | undefined {
    return this.#final;
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
    // From here the machine only absorbs retransmissions (and resends this response): it keeps
    // the response's bytes and the request's, not the parsed messages.
    const final = this.host.serialize(response) ?? response;
    this.#final = final;
    const outcome: Outcome = { kind: 'response', status: response.status, local };
    this.outcome = outcome;
    this.send(final, this.replyTo);
    if (this.terminated) return false;
    this.host.notify(this, { kind: 'completed', outcome });
    this.releaseRequest();
    return !this.terminated;
  }

  protected override fail(outcome: Outcome): void {
    // A failure after the final response keeps the final response as the outcome.
    if (this.outcome === undefined) this.outcome = outcome;
    this.host.notify(this, { kind: 'failed', outcome });
    if (!this.terminated) this.transition('terminated' as S);
  }
}
