/**
 * The SIP observation: one copy of a SIP message as the capture stream showed it, placed relative
 * to the SIP server the sidecar sits beside. This is what the observer-mode transaction layer and
 * the policy consume; nothing in it depends on HEP.
 *
 * Seen from the SIP server (a proxy), the four cases map onto RFC 3261 §17 transactions:
 *   received-by-server request  -> the request of a server transaction
 *   sent-by-server request      -> the request of a client transaction (one per branch)
 *   received-by-server response -> a response to a client transaction
 *   sent-by-server response     -> a response of a server transaction
 * so `kind` is the direction an observer-mode transaction layer needs, with `src`/`dst` as the
 * addresses and `transport` as the transport of the hop.
 */
import type { SipMessage, ParseResult } from '@pinhole/sip';

export interface Endpoint {
  /** Canonical text: dotted IPv4, RFC 5952 IPv6; an IPv4-mapped IPv6 address is given as IPv4. */
  readonly address: string;
  readonly port: number;
}

/** Which side of the SIP server this copy was taken on. */
export type ObservationKind = 'received-by-server' | 'sent-by-server';

/**
 * How this copy relates to earlier copies of the same message (same `key`):
 * - `first`: the first copy seen.
 * - `twin`: the other side's copy (as sent after as received, or the reverse).
 * - `fork`: another sent copy on a different branch (a forking proxy; new top Via branch).
 * - `retransmission`: a copy of a side (and branch) already seen.
 */
export type CopyClass = 'first' | 'twin' | 'fork' | 'retransmission';

/** Hop transport, upper case like a Via: UDP, TCP, TLS, SCTP, WS, WSS. */
export type HopTransport = string;

export interface CaptureInfo {
  /** HEP capture agent id (chunk 0x000c). */
  readonly captureId: number | undefined;
  /** HEP node name / group id (chunk 0x0013). */
  readonly nodeName: string | undefined;
  /** HEP correlation id (chunk 0x0011) as UTF-8 text. */
  readonly correlationId: string | undefined;
  /** The capture agent's own address (where the HEP packet came from). */
  readonly agent: {
    readonly transport: 'udp' | 'tcp';
    readonly address: string;
    readonly port: number;
  };
}

export interface SipObservation {
  /** Increasing number, per normalizer, in arrival order. */
  readonly seq: number;
  /** The SIP message bytes exactly as captured (non-ASCII display names intact). */
  readonly bytes: Uint8Array;
  readonly message: SipMessage;
  readonly src: Endpoint;
  readonly dst: Endpoint;
  readonly transport: HopTransport;
  /** Capture time from the HEP timestamp chunks, ms since the epoch (with µs fraction). */
  readonly capturedAtMs: number | undefined;
  /** Local time the sidecar received the copy (the injected clock), ms. */
  readonly receivedAtMs: number;
  readonly kind: ObservationKind;
  /** Message identity, shared by both sides' copies and the retransmissions of one message. */
  readonly key: string;
  readonly copy: CopyClass;
  /**
   * True when this copy is what the far end of the hop receives: every sent-by-server copy.
   * A received-by-server copy shows the message before the server changed it (Record-Route,
   * Via, and possibly an SDP rewritten by a media relay), so the policy should read SDP from
   * the sent copy; see `MediaSource`.
   */
  readonly farEnd: boolean;
  readonly capture: CaptureInfo;
}

/**
 * Which copy a message was settled from. `sent-copy`: the copy the far end receives.
 * `received-copy`: no sent copy came within the twin wait (the message ended at the server,
 * e.g. a REGISTER, a B2BUA leg, or the sent copy was lost).
 */
export type MediaSource = 'sent-copy' | 'received-copy';

/** Parses SIP bytes (`parse` of @pinhole/sip fits). */
export type SipParser = (bytes: Uint8Array) => ParseResult;
