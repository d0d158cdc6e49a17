/**
 * Transaction matching keys (RFC 3261 §17.1.3 and §17.2.3). A key is a string so the table is
 * one `Map` lookup.
 */
import type { SipMessage, Via } from '@pinhole/sip';

/** §8.1.1.7: "The branch ID inserted by an element compliant with this specification MUST always begin with the characters "z9hG4bK"." */
export const MAGIC_COOKIE = 'z9hG4bK';

/**
 * A copy of a key in one flat string. A key built by a template is a tree of string pieces, and
 * its branch is a slice of the whole Via value: a transaction that lives 32 s would keep all of
 * those alive (and every scavenge would copy them). Used for the keys the table keeps.
 */
export function flatKey(key: string): string {
  return (' ' + key).slice(1);
}

export function hasMagicCookie(branch: string | undefined): branch is string {
  return branch !== undefined && branch.startsWith(MAGIC_COOKIE);
}

function sentBy(via: Via): string {
  return `${via.host.toLowerCase()}:${via.port ?? ''}`;
}

/**
 * The method a request or response belongs to for matching. §17.2.3: "the method of the
 * request matches the one that created the transaction, except for ACK, where the method of
 * the request that created the transaction is INVITE."
 */
function matchMethod(method: string): string {
  const m = method.toUpperCase();
  return m === 'ACK' ? 'INVITE' : m;
}

/**
 * Server transaction key of a request, or of a response sent on it (same top Via, same CSeq
 * method). `undefined` when the message lacks a top Via or a CSeq.
 *
 * §17.2.3: "1. the branch parameter in the request is equal to the one in the top Via header
 * field of the request that created the transaction, and 2. the sent-by value in the top Via of
 * the request is equal to the one in the request that created the transaction, and 3. the
 * method of the request matches the one that created the transaction, except for ACK".
 *
 * For a branch without the magic cookie (RFC 2543) the key is built from From tag, Call-ID,
 * CSeq number and method, and top Via sent-by; the layer then checks the Request-URI and, for
 * an ACK, the To tag (§17.2.3: "The ACK request matches a transaction if the Request-URI, From
 * tag, Call-ID, CSeq number (not the method), and top Via header field match those of the
 * INVITE request which created the transaction, and the To tag of the ACK matches the To tag of
 * the response sent by the server transaction.").
 */
export function serverKey(message: SipMessage): string | undefined {
  const via = message.topVia();
  const cseq = message.cseq();
  if (via === undefined || cseq === undefined) return undefined;
  const method = matchMethod(message.isRequest ? message.method : cseq.method);
  if (hasMagicCookie(via.branch)) return `s|${via.branch}|${sentBy(via)}|${method}`;
  return `s2543|${message.from()?.tag ?? ''}|${message.callId() ?? ''}|${cseq.seq}|${method}|${sentBy(via)}|${via.branch ?? ''}`;
}

/** The server key of the INVITE a CANCEL cancels (§9.2: "the CANCEL ... matches an INVITE"). */
export function cancelledInviteKey(cancel: SipMessage): string | undefined {
  const via = cancel.topVia();
  const cseq = cancel.cseq();
  if (via === undefined || cseq === undefined) return undefined;
  if (hasMagicCookie(via.branch)) return `s|${via.branch}|${sentBy(via)}|INVITE`;
  return `s2543|${cancel.from()?.tag ?? ''}|${cancel.callId() ?? ''}|${cseq.seq}|INVITE|${sentBy(via)}|${via.branch ?? ''}`;
}

/**
 * Client transaction key of a request sent, or of a response received.
 *
 * §17.1.3: "1. If the response has the same value of the branch parameter in the top Via header
 * field as the branch parameter in the top Via header field of the request that created the
 * transaction. 2. If the method parameter in the CSeq header field matches the method of the
 * request that created the transaction. The method is needed since a CANCEL request constitutes
 * a different transaction, but shares the same value of the branch parameter."
 *
 * The sent-by is part of the key too: branches are unique only per element, and an observer
 * watches many elements at once. An ACK for a non-2xx shares the INVITE's key.
 */
export function clientKey(message: SipMessage): string | undefined {
  const via = message.topVia();
  const cseq = message.cseq();
  if (via === undefined || cseq === undefined) return undefined;
  const method = matchMethod(message.isRequest ? message.method : cseq.method);
  if (hasMagicCookie(via.branch)) return `c|${via.branch}|${sentBy(via)}|${method}`;
  return `c2543|${message.from()?.tag ?? ''}|${message.callId() ?? ''}|${cseq.seq}|${method}|${sentBy(via)}|${via.branch ?? ''}`;
}

/** The client key of the INVITE a CANCEL sent by this element cancels (same branch, §9.1). */
export function cancelledClientKey(cancel: SipMessage): string | undefined {
  const via = cancel.topVia();
  const cseq = cancel.cseq();
  if (via === undefined || cseq === undefined) return undefined;
  if (hasMagicCookie(via.branch)) return `c|${via.branch}|${sentBy(via)}|INVITE`;
  return `c2543|${cancel.from()?.tag ?? ''}|${cancel.callId() ?? ''}|${cseq.seq}|INVITE|${sentBy(via)}|${via.branch ?? ''}`;
}

/**
 * Key of an accepted INVITE (RFC 6026 Accepted state) that an end-to-end ACK for its 2xx is
 * matched against: Call-ID, CSeq number, From tag. The To tag is checked separately because a
 * forking proxy may accept several 2xx with different To tags.
 */
export function acceptedKey(message: SipMessage): string | undefined {
  const cseq = message.cseq();
  const callId = message.callId();
  if (cseq === undefined || callId === undefined) return undefined;
  return `a|${callId}|${cseq.seq}|${message.from()?.tag ?? ''}`;
}
