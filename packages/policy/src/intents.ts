/**
 * What the policy decides: intents for the FCP layer (`open`, `refresh`, `close`), refusals with
 * their reasons, and actions for the proxy (headers to set on the message it is about to
 * forward, or a response to send instead of forwarding).
 */
import type { MediaProtocol } from './config.js';

/** An address with a prefix length, the shape `@pinhole/fcp` uses: `{ address, prefix }`. */
export interface IpPrefix {
  /** Dotted IPv4 or RFC 5952 IPv6 text, without brackets. */
  readonly address: string;
  /** 32 / 128 for a host. */
  readonly prefix: number;
}

/**
 * A packet-matching expression (fcp-spec §2.7): protocol, optional source, destination host and
 * destination port. IPv6 is represented fully; whether FCP can carry it is the FCP layer's call.
 */
export interface Pme {
  readonly protocol: MediaProtocol;
  /** IP protocol number: 17 (UDP) or 6 (TCP). */
  readonly proto: 6 | 17;
  readonly family: 4 | 6;
  /** Undefined: any sender (source policy `any`, or a fallback). */
  readonly source: IpPrefix | undefined;
  readonly destination: IpPrefix;
  readonly destinationPort: number;
}

/** The dialog an intent belongs to. `calleeTag` is undefined for holes opened on an INVITE offer. */
export interface DialogRef {
  readonly callId: string;
  readonly callerTag: string;
  readonly calleeTag: string | undefined;
}

/** What a hole carries: which m-line (0-based) and which flow of it. */
export interface StreamRef {
  readonly index: number;
  /** `audio`, `video`, `image`, ... */
  readonly media: string;
  /** `rtp` (or plain media), `rtcp`. */
  readonly flow: 'rtp' | 'rtcp';
  /** Whose media address the hole points at. */
  readonly party: 'caller' | 'callee';
}

/** Why an intent was produced. Stable strings, fit for metrics labels. */
export type IntentReason =
  /** open-on-offer: the offer announced this destination (short TIMER). */
  | 'offer'
  /** An answer in a provisional response (early media). */
  | 'early-answer'
  /** An answer completed an offer/answer exchange. */
  | 'answer'
  /** A 2xx confirmed the dialog: its holes take the established-call TIMER. */
  | 'confirmed'
  /** An accepted session refresh (2xx to re-INVITE or UPDATE). */
  | 'session-refresh'
  /** A provisional response kept an early dialog alive past half its TIMER. */
  | 'keep-alive'
  /** New offer/answer no longer uses the hole (address/port changed, hold, port 0). */
  | 'media-change'
  /** The offer that opened the hole was refused or never answered. */
  | 'offer-rejected'
  | 'bye'
  /** 487 after CANCEL, or a cancelled INVITE transaction. */
  | 'cancelled'
  /** Final response >= 300 to the initial INVITE (busy, not found, 422, ...). */
  | 'call-failed'
  /** Another branch's 2xx won; this early dialog's holes close. */
  | 'branch-lost'
  /** 408 or 481 to an in-dialog request (RFC 3261 §12.2.1.2). */
  | 'dialog-error'
  | 'transaction-timeout'
  | 'transport-error'
  /** The state's TIMER passed without refresh; the firewall has removed the holes by itself. */
  | 'timer-expired'
  /** The configuration changed (`Policy.reconfigure`). */
  | 'reconfigured';

export interface OpenIntent {
  readonly kind: 'open';
  /** Canonical identity of the hole (one string per PME). */
  readonly key: string;
  readonly pme: Pme;
  /** TIMER in seconds, always >= 1 (FCP TIMER 0 would never expire and is never produced). */
  readonly timerSec: number;
  readonly reason: IntentReason;
  readonly dialog: DialogRef;
  readonly stream: StreamRef;
}

/** SET again with this TIMER (an FCP keep-alive). Also correct if the hole had expired. */
export interface RefreshIntent {
  readonly kind: 'refresh';
  readonly key: string;
  readonly pme: Pme;
  readonly timerSec: number;
  readonly reason: IntentReason;
  readonly dialog: DialogRef;
}

/** RELEASE: nothing uses the hole any more. */
export interface CloseIntent {
  readonly kind: 'close';
  readonly key: string;
  readonly pme: Pme;
  readonly reason: IntentReason;
  readonly dialog: DialogRef;
}

export type Intent = OpenIntent | RefreshIntent | CloseIntent;

/** Stable refusal codes, fit for metrics labels. */
export type RefusalCode =
  | 'destination-not-protected'
  | 'destination-special'
  | 'destination-firewall'
  | 'destination-broadcast'
  | 'port-out-of-range'
  | 'protocol-not-allowed'
  | 'protocol-unsupported'
  | 'address-invalid'
  | 'source-invalid'
  | 'source-unknown'
  | 'timer-invalid'
  | 'too-many-streams'
  | 'too-many-holes'
  | 'too-many-calls'
  | 'sdp-invalid'
  | 'session-timer-required'
  | 'session-interval-too-small'
  /** A bug met unexpected input; the event was not (fully) applied. Please report it. */
  | 'internal-error';

/** A hole (or a call) the policy refused, with the reason, for logs and metrics. */
export interface Refusal {
  readonly kind: 'refusal';
  readonly code: RefusalCode;
  readonly detail: string;
  /** The hole that was refused, when the refusal concerns one. */
  readonly pme: Pme | undefined;
  readonly dialog: DialogRef | undefined;
}

/** A header to put on the message the event carried, before it is forwarded or relayed. */
export interface HeaderAction {
  /** `set`: replace every line of the header with this value; `add`: append one line. */
  readonly kind: 'set-header' | 'add-header';
  readonly name: string;
  readonly value: string;
}

/** Do not forward the request: answer it with this response instead. */
export interface RejectAction {
  readonly kind: 'reject';
  readonly status: number;
  readonly reason: string;
  readonly headers: readonly { readonly name: string; readonly value: string }[];
}

export type ProxyAction = HeaderAction | RejectAction;

/** The outcome of one event: apply `actions` to the message, send `intents`, log `refusals`. */
export interface PolicyResult {
  /** Opens first, then refreshes, then closes (a moved stream is reachable before the old hole goes). */
  readonly intents: readonly Intent[];
  readonly refusals: readonly Refusal[];
  readonly actions: readonly ProxyAction[];
}
