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
  | { readonly ok: true; readonly message: import('./message.ts').SipMessage }
  | { readonly ok: false; readonly error: SipParseError };

/** Result of `validate(message)`: what a proxy must answer for a message that parsed. */
export type ValidationResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly status: number; readonly reason: string; readonly code: string };

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
}

export type MediaEndpointsResult =
  | { readonly ok: true; readonly media: readonly MediaEndpoint[] }
  | { readonly ok: false; readonly error: { readonly code: string; readonly reason: string } };
