/**
 * The public shapes of @pinhole/sip. Other packages (transaction, policy, the apps) program
 * against these types; the implementation lives beside them.
 */

/** RFC 3261 §25.1 URI, as parsed by `parseUri`. */
export interface SipUri {
  /** `sip`, `sips`, `tel`, or any other scheme in lower case (kept, not interpreted). */
  readonly scheme: string;
  /** User part with %HH escapes decoded once (never recursively); undefined when absent. */
  readonly user: string | undefined;
  /** The user part exactly as written (escapes kept). */
  readonly rawUser: string | undefined;
  readonly password: string | undefined;
  /** Host name in lower case, IPv4 address, or IPv6 reference *without* brackets. */
  readonly host: string;
  /** True when `host` was written as an IPv6 reference (`[...]`). */
  readonly ipv6: boolean;
  readonly port: number | undefined;
  /** URI parameters, names in lower case, valueless parameters map to `''`. */
  readonly params: ReadonlyMap<string, string>;
  /** URI headers (`?a=b&c=d`), values decoded. */
  readonly headers: ReadonlyMap<string, string>;
  /** The URI exactly as written. */
  readonly raw: string;
  /**
   * Set on the stand-in returned by a lazily parsed From/To `.uri` whose text turned out not to
   * be a valid URI (`validate()` rejects such a message with 400).
   */
  readonly malformed?: boolean;
}

/** One Via value (RFC 3261 §20.42). */
export interface Via {
  /** e.g. `SIP/2.0`. */
  readonly protocol: string;
  /** Upper case: `UDP`, `TCP`, `TLS`, `SCTP`, `WS`, or an extension token. */
  readonly transport: string;
  /** Host without brackets for IPv6. */
  readonly host: string;
  readonly ipv6: boolean;
  readonly port: number | undefined;
  readonly branch: string | undefined;
  readonly received: string | undefined;
  /** `true` when `rport` is present without a value, the number when it has one. */
  readonly rport: number | true | undefined;
  readonly maddr: string | undefined;
  readonly ttl: number | undefined;
  /** Every parameter, names in lower case, valueless ones map to `''`. */
  readonly params: ReadonlyMap<string, string>;
  /** The value exactly as written. */
  readonly raw: string;
}

/** From, To, Contact, Route, Record-Route values (name-addr / addr-spec). */
export interface NameAddr {
  /** Display name with quotes removed and quoted-pairs resolved; undefined when absent. */
  readonly displayName: string | undefined;
  readonly uri: SipUri;
  /** Header parameters (outside `<>`), names in lower case. */
  readonly params: ReadonlyMap<string, string>;
  /** `tag` parameter (From/To). */
  readonly tag: string | undefined;
  readonly raw: string;
}

export interface Contact extends NameAddr {
  readonly expires: number | undefined;
  readonly q: number | undefined;
}

/** `Contact: *` (RFC 3261 §10.2.2). */
export interface ContactStar {
  readonly star: true;
}

export interface CSeq {
  readonly seq: number;
  readonly method: string;
}

/** RFC 4028 Session-Expires. */
export interface SessionExpires {
  /** delta-seconds. */
  readonly delta: number;
  readonly refresher: 'uac' | 'uas' | undefined;
  readonly params: ReadonlyMap<string, string>;
}

/** One header line as it was on the wire. */
export interface HeaderField {
  /** The name exactly as written (original case, may be a compact form). */
  readonly rawName: string;
  /** Canonical long name in lower case (`v` -> `via`, `Call-ID` -> `call-id`). */
  readonly name: string;
  /** The value with leading/trailing whitespace trimmed and folding (CRLF + WSP) unfolded. */
  readonly value: string;
}

export interface ParseOptions {
  /** Largest accepted message in bytes (default 65_535). */
  readonly maxMessageBytes?: number;
  /** Largest number of header lines (default 256). */
  readonly maxHeaders?: number;
  /** Longest header line, folded continuations included (default 8_192). */
  readonly maxHeaderLineBytes?: number;
  /** Largest body (default 65_535). */
  readonly maxBodyBytes?: number;
}

/** What could be read from a message that failed to parse, so a proxy can still answer 400. */
export interface PartialMessage {
  readonly method?: string;
  readonly status?: number;
  readonly via?: readonly string[];
  readonly callId?: string;
  readonly cseq?: string;
  readonly from?: string;
  readonly to?: string;
}

export interface SipParseError {
  /** Stable code, e.g. `SIP_ERR_BAD_START_LINE`, `SIP_ERR_CONTENT_LENGTH`. */
  readonly code: string;
  /** Human-readable reason, fit for a 400 reason phrase. */
  readonly reason: string;
  readonly partial?: PartialMessage;
}

export type ParseResult =
  | { readonly ok: true; readonly message: SipMessage }
  | { readonly ok: false; readonly error: SipParseError };

/** Result of `validate(message)`: what a proxy must answer for a message that parsed. */
export type ValidationResult =
  | { readonly ok: true }
  | {
      readonly ok: false;
      readonly status: number;
      readonly reason: string;
      readonly code: string;
      /** For 420: the Proxy-Require option tags to list in an Unsupported header. */
      readonly unsupported?: readonly string[];
    };

/** Media direction attribute (RFC 4566 / RFC 3264). */
export type MediaDirection = 'sendrecv' | 'sendonly' | 'recvonly' | 'inactive';

/** One m-line of an SDP body, resolved to where its media must be sent. */
export interface MediaEndpoint {
  /** Index of the m-line in the body (0-based). */
  readonly index: number;
  /** `audio`, `video`, `image`, `application`, ... */
  readonly type: string;
  /** Connection address: media-level `c=` over session-level. Undefined when neither exists. */
  readonly address: string | undefined;
  /** `IP4` or `IP6`. */
  readonly addressType: 'IP4' | 'IP6' | undefined;
  readonly port: number;
  /** `m=audio 49170/2 ...` gives 2; default 1. */
  readonly portCount: number;
  /** e.g. `RTP/AVP`, `RTP/SAVP`, `udptl`, `TCP/MSRP`. */
  readonly protocol: string;
  /** Media-level direction over session-level, default `sendrecv`. */
  readonly direction: MediaDirection;
  /** `a=rtcp` port and optional address (RFC 3605). */
  readonly rtcp: { readonly port: number; readonly address: string | undefined } | undefined;
  readonly rtcpMux: boolean;
  /** Port 0: the stream is disabled or rejected (RFC 3264 §6). */
  readonly disabled: boolean;
  /**
   * True when `address` is a domain name (RFC 4566 allows an FQDN) rather than an IP literal:
   * kept as written, never resolved here. A firewall pinhole needs an IP; treat with care.
   */
  readonly fqdn?: boolean;
}

export type MediaEndpointsResult =
  | { readonly ok: true; readonly media: readonly MediaEndpoint[] }
  | { readonly ok: false; readonly error: { readonly code: string; readonly reason: string } };

/**
 * A parsed SIP request or response. Header values are parsed lazily, on first use, and cached;
 * a typed accessor returns `undefined` when its header is absent or malformed (`validate` says
 * which). Editing methods change the message in place without reparsing; `serialize` of an
 * unedited message returns exactly the bytes it was parsed from.
 */
export interface SipMessage {
  readonly isRequest: boolean;
  /** Request method (case kept); for a response, the CSeq method. */
  readonly method: string;
  /** Request-URI exactly as written; `''` for a response. */
  readonly requestUri: string;
  /** Status code; 0 for a request. */
  readonly status: number;
  /** Reason phrase (may be empty or non-ASCII); `''` for a request. */
  readonly reason: string;
  /** `SIP/2.0`. */
  readonly version: string;
  /** The body bytes (framed by Content-Length). */
  readonly body: Uint8Array;

  /** Every header line in order. */
  headers(): readonly HeaderField[];
  /** First value of a header (name case-insensitive, compact or long form). */
  get(name: string): string | undefined;
  /** Every value of a header, comma-separated list headers split into their elements. */
  getAll(name: string): string[];
  has(name: string): boolean;

  requestUriParsed(): SipUri | undefined;
  /** All Via values, top first. */
  via(): readonly Via[];
  topVia(): Via | undefined;
  /**
   * From / To: display name, parameters and `tag` are parsed on the call; the URI only on first
   * access of `.uri` (a proxy matching dialogs reads tags only). See `SipUri.malformed`.
   */
  from(): NameAddr | undefined;
  to(): NameAddr | undefined;
  callId(): string | undefined;
  cseq(): CSeq | undefined;
  maxForwards(): number | undefined;
  /** Contact values in order (empty for `Contact: *`, see `contactStar`). */
  contacts(): readonly Contact[];
  contactStar(): boolean;
  route(): readonly NameAddr[];
  recordRoute(): readonly NameAddr[];
  contentLength(): number | undefined;
  /** Media type in lower case without parameters, e.g. `application/sdp`. */
  contentType(): string | undefined;
  expires(): number | undefined;
  sessionExpires(): SessionExpires | undefined;
  minSE(): number | undefined;
  /** Option tags, lower case. */
  supported(): readonly string[];
  require(): readonly string[];
  /** Methods, upper case. */
  allow(): readonly string[];
  /** The body decoded as UTF-8. */
  bodyText(): string;

  prependVia(value: string): void;
  removeTopVia(): void;
  prependRecordRoute(value: string): void;
  /** Removes the first Route value (one element of a comma list, or the whole line). */
  removeTopRoute(): void;
  setRequestUri(uri: string): void;
  /** Decrements Max-Forwards (adding `Max-Forwards: 70` first when absent) and returns the new value. */
  decrementMaxForwards(): number;
  /** Replaces the body and keeps Content-Length (and Content-Type when given) right. */
  setBody(body: Uint8Array | string, contentType?: string): void;
  /** Adds a header line, last by default. */
  addHeader(name: string, value: string, position?: 'first' | 'last'): void;
  /** Replaces every line of the header with one line of this value. */
  setHeader(name: string, value: string): void;
  /** Removes every line of the header; returns how many were removed. */
  removeHeader(name: string): number;
  /** A deep copy that can be edited independently (e.g. one per forked branch). */
  clone(): SipMessage;
}
