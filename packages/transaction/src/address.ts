import type { SipMessage, Via } from '@pinhole/sip';
import type { SerializedMessage } from './wire.js';

/** A transport address: where a message came from or goes to. */
export interface Address {
  /** Upper case transport name as in Via: `UDP`, `TCP`, `TLS`, `SCTP`, `WS`, `WSS`. */
  readonly transport: string;
  readonly host: string;
  readonly port: number;
  /**
   * Identifies a connection of a connection-oriented transport, so a response reuses it; for a
   * connectionless one, the local socket a request arrived on, so its responses leave from it.
   */
  readonly connectionId?: string | number;
}

/**
 * The injected transport. `send` may return a promise; a throw or a rejection is a transport
 * error (RFC 3261 §17.1.4, §17.2.4) for the transaction that sent the message.
 */
export interface Transport {
  send(message: SipMessage, destination: Address): void | Promise<void>;
  /**
   * Optional: sends a message already serialised by the layer (the same contract as `send`).
   * A transport that has it lets transactions keep only the bytes of what they resend (final
   * responses, the ACK of a non-2xx, forwarded requests) instead of the parsed messages: the
   * layer serialises each of those once, sends it with this, and resends the same bytes.
   */
  sendSerialized?(message: SerializedMessage, destination: Address): void | Promise<void>;
  /**
   * Optional: calls `fn` once the transport has read what it had received when it was called (a
   * read barrier). A retransmission timer (A, E, G) that fires while the element is behind on
   * its input goes through it, so that a response or ACK already waiting in a socket buffer
   * stops the retransmission instead of the element sending one it did not need: under load,
   * those needless retransmissions reach the peer as duplicates and add to the load. Without
   * it, a timer retransmits at once.
   */
  afterInput?(fn: () => void): void;
}

/** Only UDP (and DTLS/UDP, which SIP does not define) is unreliable among the Via transports. */
export function defaultIsReliable(transport: string): boolean {
  return transport.toUpperCase() !== 'UDP';
}

/**
 * Where a server transaction sends its responses (RFC 3261 §18.2.2 with RFC 3581 rport).
 *
 * §18.2.2: "If the 'sent-protocol' is a reliable transport protocol such as TCP or SCTP, or TLS
 * over those, the response MUST be sent using the existing connection to the source of the
 * original request that created the transaction, if that connection is still open."
 * "Otherwise, if the Via header field value contains a 'maddr' parameter, the response MUST be
 * forwarded to the address listed there, using the port indicated in 'sent-by', or port 5060 if
 * none is present." "Otherwise (for unreliable unicast transports), if the top Via has a
 * 'received' parameter, the response MUST be sent to the address in the 'received' parameter,
 * using the port indicated in the 'sent-by' value, or using port 5060 if none is present
 * explicitly." RFC 3581 §4: with rport, "the response MUST be sent to the source port".
 */
export function responseDestination(
  via: Via | undefined,
  source: Address,
  reliable: boolean,
): Address {
  if (reliable || via === undefined) return source;
  const defaultPort = via.transport === 'TLS' ? 5061 : 5060;
  // The local socket the request came in on (if the transport names it) sends the response.
  const socket = source.connectionId === undefined ? {} : { connectionId: source.connectionId };
  if (via.maddr !== undefined) {
    return {
      transport: source.transport,
      host: via.maddr,
      port: via.port ?? defaultPort,
      ...socket,
    };
  }
  // The request came from `source`: its address is what `received` would say.
  const port = via.rport !== undefined ? source.port : (via.port ?? defaultPort);
  return { transport: source.transport, host: source.host, port, ...socket };
}

export function sameAddress(a: Address | undefined, b: Address | undefined): boolean {
  if (a === undefined || b === undefined) return false;
  return a.host === b.host && a.port === b.port && a.transport === b.transport;
}
