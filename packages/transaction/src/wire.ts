/**
 * A message kept as the bytes that went (or go) on the wire: what a transaction holds once it
 * only absorbs retransmissions (RFC 3261 §17 Completed/Confirmed, RFC 6026 Accepted). It needs
 * its key, the bytes it resends and where to send them, not the parsed message with its cached
 * header parses; those would live on for 64*T1 (32 s on UDP) and be copied by every scavenge.
 */
import { parse, serialize, type SipMessage } from '@pinhole/sip';
import { TransactionError } from './errors.js';

export class SerializedMessage {
  /** The message's bytes, exactly as serialised when it was kept. */
  readonly bytes: Uint8Array;
  readonly isRequest: boolean;
  /** Status code; 0 for a request. */
  readonly status: number;
  /** Request method, or the CSeq method of a response (case kept). */
  readonly method: string;

  constructor(message: SipMessage, bytes: Uint8Array = serialize(message)) {
    this.bytes = bytes;
    this.isRequest = message.isRequest;
    this.status = message.status;
    this.method = message.method;
  }

  /** A fresh parsed message of the same bytes (for the rare reader of a released message). */
  parse(): SipMessage {
    const result = parse(this.bytes);
    if (!result.ok) {
      throw new TransactionError(
        'TXN_ERR_BAD_MESSAGE',
        `a kept message no longer parses: ${result.error.reason}`,
      );
    }
    return result.message;
  }
}

/** Either form a transaction passes to its host for transmission. */
export type OutgoingMessage = SipMessage | SerializedMessage;
