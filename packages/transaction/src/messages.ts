/**
 * Messages the layer generates itself: the ACK for a non-2xx (§17.1.1.3), CANCEL (§9.1) and
 * local responses (100 Trying, 408, 487, 500, 503). Built as text and parsed, so they are real
 * `SipMessage`s like any received one.
 */
import { randomFillSync } from 'node:crypto';
import { buildResponse, parse, type SipMessage } from '@pinhole/sip';
import { TransactionError } from './errors.js';
import { MAGIC_COOKIE } from './keys.js';

const CRLF = '\r\n';

/** Reason phrases (RFC 3261 §21) of the responses the layer and a proxy core generate. */
export const REASONS: Readonly<Record<number, string>> = {
  100: 'Trying',
  200: 'OK',
  400: 'Bad Request',
  403: 'Forbidden',
  404: 'Not Found',
  408: 'Request Timeout',
  416: 'Unsupported URI Scheme',
  420: 'Bad Extension',
  423: 'Interval Too Brief',
  480: 'Temporarily Unavailable',
  481: 'Call/Transaction Does Not Exist',
  482: 'Loop Detected',
  483: 'Too Many Hops',
  487: 'Request Terminated',
  500: 'Server Internal Error',
  503: 'Service Unavailable',
  505: 'Version Not Supported',
};

/** The standard reason phrase of `status`, or `Unknown`. */
export function reasonPhrase(status: number): string {
  return REASONS[status] ?? 'Unknown';
}

function parseOrThrow(text: string): SipMessage {
  const result = parse(text);
  if (!result.ok) {
    throw new TransactionError(
      'TXN_ERR_BAD_MESSAGE',
      `generated message does not parse: ${result.error.code} ${result.error.reason}`,
    );
  }
  return result.message;
}

/** Raw values (one per header line, as written) of a header. */
function lines(message: SipMessage, name: string): string[] {
  const out: string[] = [];
  for (const h of message.headers()) if (h.name === name) out.push(h.value);
  return out;
}

function required(message: SipMessage, name: string): string {
  const v = message.get(name);
  if (v === undefined) throw new TransactionError('TXN_ERR_BAD_MESSAGE', `message lacks ${name}`);
  return v;
}

/**
 * Random tokens from a pooled buffer: one `randomFillSync` per 512 tokens instead of one per
 * token. §19.3: tags "MUST be globally unique and cryptographically random with at least 32
 * bits of randomness"; each token here carries 64 random bits.
 */
const POOL = Buffer.alloc(4096);
let poolOffset = POOL.length;

function random64(): string {
  if (poolOffset + 8 > POOL.length) {
    randomFillSync(POOL);
    poolOffset = 0;
  }
  const hex = POOL.toString('hex', poolOffset, poolOffset + 8);
  poolOffset += 8;
  return hex;
}

/** A branch for a request this element sends: the magic cookie plus 64 random bits. */
export function newBranch(): string {
  return `${MAGIC_COOKIE}${random64()}`;
}

/** A tag with 64 random bits. */
export function newTag(): string {
  return random64();
}

/**
 * A response to `request` (RFC 3261 §8.2.6.2): "The From field of the response MUST equal the
 * From header field of the request. The Call-ID header field of the response MUST equal the
 * Call-ID header field of the request. The CSeq header field of the response MUST equal the CSeq
 * field of the request. The Via header field values in the response MUST equal the Via header
 * field values in the request and MUST maintain the same ordering." ... "if the To header field
 * in the request did not contain a tag, ... the UAS MUST add a tag to the To header field in the
 * response (with the exception of the 100 (Trying) response, in which a tag MAY be present)."
 */
export function buildLocalResponse(
  request: SipMessage,
  status: number,
  reason: string = REASONS[status] ?? '',
  toTag?: string,
  extraHeaders: readonly (readonly [string, string])[] = [],
): SipMessage {
  // §8.2.6.1: "If there is a Timestamp header field in the request, it MUST be copied into the
  // response" (said of 100 Trying).
  const ts = status === 100 ? request.get('timestamp') : undefined;
  const extra: readonly (readonly [string, string])[] =
    ts === undefined ? extraHeaders : [...extraHeaders, ['Timestamp', ts]];
  // A To tag only when the request has none and the status is above 100 (buildResponse adds
  // it); a counter-based tag is cheaper than random bytes and unique per process.
  const tag = toTag ?? (status > 100 && request.to()?.tag === undefined ? newTag() : undefined);
  return buildResponse(request, status, reason, extra, tag === undefined ? {} : { toTag: tag });
}

/**
 * The ACK for a non-2xx final response (§17.1.1.3): "The ACK request constructed by the client
 * transaction MUST contain values for the Call-ID, From, and Request-URI that are equal to the
 * values of those header fields in the request passed to the transport by the client transaction
 * (call this the "original request"). The To header field in the ACK MUST equal the To header
 * field in the response being acknowledged ... The ACK MUST contain a single Via header field,
 * and this MUST be equal to the top Via header field of the original request. The CSeq header
 * field in the ACK MUST contain the same value for the sequence number as was present in the
 * original request, but the method parameter MUST be equal to "ACK"." ... "If the INVITE request
 * whose response is being acknowledged had Route header fields, those header fields MUST appear
 * in the ACK."
 */
export function buildAck(request: SipMessage, response: SipMessage): SipMessage {
  const via = request.topVia();
  const cseq = request.cseq();
  if (via === undefined || cseq === undefined) {
    throw new TransactionError('TXN_ERR_BAD_MESSAGE', 'INVITE lacks Via or CSeq');
  }
  let text = `ACK ${request.requestUri} SIP/2.0${CRLF}Via: ${via.raw}${CRLF}`;
  for (const r of lines(request, 'route')) text += `Route: ${r}${CRLF}`;
  text += `Max-Forwards: 70${CRLF}`;
  text += `From: ${required(request, 'from')}${CRLF}`;
  text += `To: ${required(response, 'to')}${CRLF}`;
  text += `Call-ID: ${required(request, 'call-id')}${CRLF}`;
  text += `CSeq: ${cseq.seq} ACK${CRLF}Content-Length: 0${CRLF}${CRLF}`;
  return parseOrThrow(text);
}

/**
 * A CANCEL for `request` (§9.1): "The Request-URI, Call-ID, To, the numeric part of CSeq, and
 * From header fields in the CANCEL request MUST be identical to those in the request being
 * cancelled, including tags. A CANCEL constructed by a client MUST have only a single Via header
 * field value matching the top Via value in the request being cancelled." ... "If the request
 * being cancelled contains a Route header field, the CANCEL request MUST include that Route
 * header field's values."
 */
export function buildCancel(request: SipMessage, reasonHeader?: string): SipMessage {
  const via = request.topVia();
  const cseq = request.cseq();
  if (via === undefined || cseq === undefined) {
    throw new TransactionError('TXN_ERR_BAD_MESSAGE', 'request lacks Via or CSeq');
  }
  let text = `CANCEL ${request.requestUri} SIP/2.0${CRLF}Via: ${via.raw}${CRLF}`;
  for (const r of lines(request, 'route')) text += `Route: ${r}${CRLF}`;
  text += `Max-Forwards: 70${CRLF}`;
  text += `From: ${required(request, 'from')}${CRLF}`;
  text += `To: ${required(request, 'to')}${CRLF}`;
  text += `Call-ID: ${required(request, 'call-id')}${CRLF}`;
  text += `CSeq: ${cseq.seq} CANCEL${CRLF}`;
  // RFC 3326: a Reason header may say why (e.g. Timer C).
  if (reasonHeader !== undefined) text += `Reason: ${reasonHeader}${CRLF}`;
  text += `Content-Length: 0${CRLF}${CRLF}`;
  return parseOrThrow(text);
}
