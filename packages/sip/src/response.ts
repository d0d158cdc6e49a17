/** Building responses to requests (RFC 3261 §8.2.6, §16.7 local responses of a proxy). */
import { Buffer } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { SipError, SipErrorCode, isSipError } from './errors.js';
import { parseNameAddr } from './name-addr.js';
import { parse } from './parse.js';
import { H } from './header-names.js';
import { Message } from './message.js';
import type { ParseOptions, PartialMessage, SipMessage } from './types.js';

export interface BuildResponseOptions {
  /**
   * To tag to add when the request's To has none: a string, or `false` for none. Default: a
   * random tag for every status above 100 (RFC 3261 §8.2.6.2: "the UAS MUST add a tag to the
   * To header field in the response (with the exception of the 100 (Trying) response, in which
   * a tag MAY be present)").
   */
  readonly toTag?: string | false;
  /** A body, with its Content-Type. */
  readonly body?: Uint8Array | string;
  readonly contentType?: string;
}

interface Source {
  readonly via: readonly string[];
  /** Whether `to` has a tag when already known (as parseNameAddr would say); else undefined. */
  readonly toHasTag: boolean | undefined;
  readonly from: string | undefined;
  readonly to: string | undefined;
  readonly callId: string | undefined;
  readonly cseq: string | undefined;
  readonly timestamp: string | undefined;
}

/** A random token for tags: 16 hex digits (64 bits, RFC 3261 §19.3 asks for at least 32). */
export function randomTag(): string {
  return randomBytes(8).toString('hex');
}

function checkLine(what: string, v: string): void {
  if (/[\r\n]/.test(v)) throw new SipError(SipErrorCode.INVALID_ARGUMENT, `${what} has CR/LF`);
}

/** A built response is never too large to parse. */
const BUILT: ParseOptions = { maxMessageBytes: Number.MAX_SAFE_INTEGER };

function build(
  src: Source,
  status: number,
  reason: string,
  extraHeaders: readonly (readonly [string, string])[] | undefined,
  options: BuildResponseOptions | undefined,
): SipMessage {
  if (!Number.isInteger(status) || status < 100 || status > 699) {
    throw new SipError(SipErrorCode.INVALID_ARGUMENT, `status must be 100..699, got ${status}`);
  }
  checkLine('reason', reason);
  let text = `SIP/2.0 ${status} ${reason}\r\n`;
  // "The Via header field values in the response MUST equal the Via header field values in the
  // request and MUST maintain the same ordering." (§8.2.6.2)
  for (const v of src.via) text += `Via: ${v}\r\n`;
  // "The From field of the response MUST equal the From header field of the request."
  if (src.from !== undefined) text += `From: ${src.from}\r\n`;
  if (src.to !== undefined) {
    let to = src.to;
    let hasTag = src.toHasTag;
    if (hasTag === undefined) {
      const parsed = parseNameAddr(to);
      hasTag = !isSipError(parsed) && parsed.tag !== undefined;
    }
    const tag = options?.toTag;
    if (!hasTag && tag !== false && (status > 100 || tag !== undefined)) {
      to = `${to};tag=${tag ?? randomTag()}`;
    }
    text += `To: ${to}\r\n`;
  }
  if (src.callId !== undefined) text += `Call-ID: ${src.callId}\r\n`;
  if (src.cseq !== undefined) text += `CSeq: ${src.cseq}\r\n`;
  // §8.2.6.1: a 100 (Trying) copies the request's Timestamp.
  if (status === 100 && src.timestamp !== undefined) text += `Timestamp: ${src.timestamp}\r\n`;
  if (extraHeaders !== undefined) {
    for (const [name, value] of extraHeaders) {
      checkLine(name, name);
      checkLine(name, value);
      text += `${name}: ${value}\r\n`;
    }
  }
  const body =
    options?.body === undefined
      ? undefined
      : typeof options.body === 'string'
        ? Buffer.from(options.body, 'utf8')
        : Buffer.from(options.body);
  if (options?.contentType !== undefined) {
    checkLine('contentType', options.contentType);
    text += `Content-Type: ${options.contentType}\r\n`;
  }
  text += `Content-Length: ${body === undefined ? 0 : body.length}\r\n\r\n`;
  const head = Buffer.from(text, 'utf8');
  const r = parse(body === undefined ? head : Buffer.concat([head, body]), BUILT);
  if (!r.ok) {
    throw new SipError(
      SipErrorCode.INVALID_ARGUMENT,
      `built response does not parse: ${r.error.reason}`,
    );
  }
  return r.message;
}

/**
 * Creates a response to `request` (RFC 3261 §8.2.6): copies every Via (in order), From, To
 * (adding a To tag, see `options.toTag`), Call-ID and CSeq, then `extraHeaders`, and sets
 * Content-Length. Throws SipError(`SIP_ERR_INVALID_ARGUMENT`) on a bad status or a CR/LF in the
 * given text (programmer errors).
 */
export function buildResponse(
  request: SipMessage,
  status: number,
  reason: string,
  extraHeaders?: readonly (readonly [string, string])[],
  options?: BuildResponseOptions,
): SipMessage {
  let via: string[];
  let toHasTag: boolean | undefined;
  if (request instanceof Message) {
    via = request.lineValues(H.VIA);
    toHasTag = request.toHasTag();
  } else {
    via = [];
    for (const h of request.headers()) if (h.name === 'via') via.push(h.value);
  }
  return build(
    {
      via,
      toHasTag,
      from: request.get('from'),
      to: request.get('to'),
      callId: request.get('call-id'),
      cseq: request.get('cseq'),
      timestamp: request.get('timestamp'),
    },
    status,
    reason,
    extraHeaders,
    options,
  );
}

/**
 * Creates a response from what a failed parse could read (`error.partial`), so that a proxy can
 * still answer 400 to a malformed request (RFC 3261 §16.3 step 1).
 */
export function buildResponseFromPartial(
  partial: PartialMessage,
  status: number,
  reason: string,
  extraHeaders?: readonly (readonly [string, string])[],
  options?: BuildResponseOptions,
): SipMessage {
  return build(
    {
      via: partial.via ?? [],
      toHasTag: undefined,
      from: partial.from,
      to: partial.to,
      callId: partial.callId,
      cseq: partial.cseq,
      timestamp: undefined,
    },
    status,
    reason,
    extraHeaders,
    options,
  );
}
