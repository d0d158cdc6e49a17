/**
 * What the policy is told. The proxy and the sidecar adapt their transaction callbacks to these
 * two events; the mapping is in README.md ("Driving the policy").
 */
import type { SipMessage } from '@pinhole/sip';

/** A socket address as the transport saw it. */
export interface TransportAddress {
  /** IPv4 or IPv6 text (brackets optional). */
  readonly address: string;
  readonly port: number;
  /** `UDP`, `TCP`, `TLS`, `WS`, ... (informational). */
  readonly transport?: string;
}

/**
 * A SIP message passing this hop: a request forwarded (or received, when this hop answers it
 * itself), a response relayed (or absorbed), an ACK or a CANCEL. Feed each message once, as it
 * continues toward the far end; repeats (retransmissions, HEP duplicates) change nothing.
 */
export interface SipEvent {
  readonly type: 'sip';
  readonly message: SipMessage;
  /** The hop the message was received from: the sender's signalling address. */
  readonly source?: TransportAddress;
  /** The hop it is sent to, when known. */
  readonly destination?: TransportAddress;
  /**
   * `relayed` (default): the message continues toward the far end (or was generated here for it).
   * `absorbed`: received but not passed on, e.g. a forked branch's non-2xx final response that
   * the proxy does not relay: only that branch's early dialog ends, not the call.
   */
  readonly disposition?: 'relayed' | 'absorbed';
  /** The client-transaction branch a response arrived on (forking proxies): lets a later
   * `transaction-ended` for that branch close the early dialogs it created. */
  readonly branch?: string;
  /** Clock value, milliseconds (any monotonic origin). */
  readonly now: number;
}

/** Why a transaction ended without a final response passing through. */
export type TransactionOutcome =
  /** Timer B/F (or Timer C) fired: no final response. */
  | 'timeout'
  /** The transport reported an error sending the request. */
  | 'transport-error'
  /** The INVITE was cancelled (the 487 will not be seen, e.g. a proxy's own branch). */
  | 'cancelled'
  /** A forked branch lost: another branch's 2xx won and this one was cancelled. */
  | 'lost';

/** A client or server transaction ended without a final response this policy saw. */
export interface TransactionEndedEvent {
  readonly type: 'transaction-ended';
  /** The request of the transaction (as forwarded). */
  readonly request: SipMessage;
  readonly outcome: TransactionOutcome;
  /** The branch, for one branch of a forked INVITE; undefined means the whole transaction. */
  readonly branch?: string;
  readonly now: number;
}

export type PolicyEvent = SipEvent | TransactionEndedEvent;
