export type {
  Contact,
  ContactStar,
  CSeq,
  HeaderField,
  MediaDirection,
  MediaEndpoint,
  MediaEndpointsResult,
  NameAddr,
  ParseOptions,
  ParseResult,
  PartialMessage,
  SessionExpires,
  SipMessage,
  SipParseError,
  SipUri,
  ValidationResult,
  Via,
} from './types.js';

export { parse, DEFAULT_LIMITS } from './parse.js';
export type { Limits } from './parse.js';
export { SipStreamParser } from './stream-parser.js';
export type { StreamParserOptions } from './stream-parser.js';
export { serialize } from './serialize.js';
export { parseUri } from './uri.js';
export { parseVia } from './via.js';
export { parseNameAddr, parseContact } from './name-addr.js';
export { parseCSeq, parseSessionExpires } from './message.js';
export { validate } from './validate.js';
export type { ValidateOptions } from './validate.js';
export { mediaEndpoints, rewriteSdp } from './sdp.js';
export type { SdpEdits, RewriteSdpResult } from './sdp.js';
export { buildResponse, buildResponseFromPartial, randomTag } from './response.js';
export type { BuildResponseOptions } from './response.js';
export { SipError, SipErrorCode, isSipError } from './errors.js';
export { splitList } from './lex.js';
