/** serialize: the inverse of parse. */
import { SipError, SipErrorCode } from './errors.js';
import { Message } from './message.js';
import type { SipMessage } from './types.js';

/**
 * Returns the bytes of a message. For a message that was not edited these are exactly the bytes
 * it was parsed from (for a datagram: the message as framed, without trailing octets beyond
 * Content-Length); an edited message is reassembled from its untouched raw lines and the new
 * ones. The result is a Buffer (a Uint8Array).
 */
export function serialize(message: SipMessage): Buffer {
  if (message instanceof Message) return message.toBytes();
  throw new SipError(
    SipErrorCode.INVALID_ARGUMENT,
    'serialize() takes a message produced by this package (parse, SipStreamParser, builders)',
  );
}
