/**
 * The pinhole policy engine: per-call and per-dialog offer/answer state in, intents out.
 *
 * Design: every dialog's wanted holes are a pure function of its state (the negotiated session,
 * a pending offer when opening on offers, whether it is confirmed, its session timer). After each
 * event the engine recomputes that set and emits the difference against the holes the dialog
 * holds: `open` for new ones, `refresh` when the TIMER changes or a refresh is due, `close` for
 * the ones no longer wanted. Holes are reference-counted across dialogs (forked early dialogs
 * share the caller's media address), so a hole closes only when nothing uses it. Repeated input
 * (retransmissions, HEP duplicates) recomputes the same set and yields nothing.
 */
import { mediaEndpoints } from '@pinhole/sip';
import type { MediaEndpoint, MediaEndpointsResult, SipMessage } from '@pinhole/sip';
import { resolveConfig, type PolicyConfig, type PolicyConfigInput } from './config.js';
import type { PolicyEvent, SipEvent, TransactionEndedEvent, TransactionOutcome } from './events.js';
import type {
  CloseIntent,
  DialogRef,
  Intent,
  IntentReason,
  OpenIntent,
  Pme,
  PolicyResult,
  ProxyAction,
  Refusal,
  RefreshIntent,
  RefusalCode,
  StreamRef,
} from './intents.js';
import { inNetwork, networkOf, parseIp, specialAddress, type IpAddress } from './ip.js';
import { flowsToward, type Flow } from './media.js';
import { checkHole, pmeKey } from './safety.js';
import {
  decideTimerRequest,
  establishedTimerSec,
  readTimerRequest,
  settleTimer,
  type NegotiatedTimer,
  type TimerRequest,
} from './session-timer.js';

/** Reads the media endpoints of an SDP body (`mediaEndpoints` of `@pinhole/sip`). */
export type SdpReader = (body: Uint8Array) => MediaEndpointsResult;

type Side = 'caller' | 'callee';
const otherSide = (s: Side): Side => (s === 'caller' ? 'callee' : 'caller');

interface Party {
  contact: IpAddress | undefined;
  signalling: IpAddress | undefined;
}

interface Offer {
  readonly from: Side;
  readonly media: readonly MediaEndpoint[];
  readonly method: string;
  readonly cseq: number;
}

interface Session {
  readonly caller: readonly MediaEndpoint[];
  readonly callee: readonly MediaEndpoint[];
}

interface OwnedHole {
  timerSec: number;
}

interface GlobalHole {
  readonly pme: Pme;
  readonly owners: Map<string, number>;
  timerSec: number;
  setAt: number;
}

interface DialogState {
  readonly id: string;
  readonly call: CallState;
  /** undefined: the call's offer pseudo-dialog (holes opened on the INVITE's offer). */
  readonly calleeTag: string | undefined;
  readonly ref: DialogRef;
  confirmed: boolean;
  closed: boolean;
  branch: string | undefined;
  readonly callee: Party;
  session: Session | undefined;
  /** The session came from the INVITE's offer and its answer, not renegotiated since. */
  sessionFromInvite: boolean;
  pending: Offer | undefined;
  /** CSeq of a re-INVITE without SDP: its 2xx carries an offer (RFC 3261 §14.1). */
  awaitOfferIn2xx: number | undefined;
  timer: NegotiatedTimer | undefined;
  /** `<method> <cseq>` of the last 2xx handled in the dialog (repeats are not refreshes). */
  lastSettled: string | undefined;
  refreshRequest:
    { readonly cseq: number; readonly method: string; readonly req: TimerRequest } | undefined;
  readonly holes: Map<string, OwnedHole>;
  readonly streams: Map<string, StreamRef>;
  readonly refused: Set<string>;
  lastActivity: number;
}

interface CallState {
  readonly key: string;
  readonly callId: string;
  readonly callerTag: string;
  readonly caller: Party;
  readonly inviteCseq: number;
  readonly inviteOffer: readonly MediaEndpoint[] | undefined;
  readonly inviteTimer: TimerRequest;
  readonly offerDialog: DialogState;
  readonly dialogs: Map<string, DialogState>;
  inviteFinished: boolean;
  lastActivity: number;
}

interface Want {
  readonly pme: Pme;
  timerSec: number;
  readonly stream: StreamRef;
  readonly origin: 'session' | 'offer';
}

interface Problem {
  readonly code: RefusalCode;
  readonly detail: string;
  readonly pme: Pme | undefined;
}

interface Ctx {
  readonly open: IntentReason;
  readonly refresh: IntentReason;
  readonly close: IntentReason;
  readonly force?: boolean;
  readonly keepAlive?: boolean;
}

class Collector {
  readonly opens: OpenIntent[] = [];
  readonly refreshes: RefreshIntent[] = [];
  readonly closes: CloseIntent[] = [];
  readonly refusals: Refusal[] = [];
  readonly actions: ProxyAction[] = [];
}

const MAX_REMEMBERED_REFUSALS = 64;
const SDP_CACHE_MAX = 256;
const SDP_CACHE_BODY_MAX = 4096;

const EMPTY: PolicyResult = { intents: [], refusals: [], actions: [] };

function callKey(callId: string, callerTag: string): string {
  return `${callId}\u0000${callerTag}`;
}

/** Statistics for metrics. */
export interface PolicyStats {
  readonly calls: number;
  readonly dialogs: number;
  readonly holes: number;
}

/** A hole as the policy believes it is installed. */
export interface HoleSnapshot {
  readonly key: string;
  readonly pme: Pme;
  readonly timerSec: number;
  /** Dialog ids holding it. */
  readonly owners: readonly string[];
}

export interface PolicyOptions {
  /** The SDP reader; defaults to `mediaEndpoints` of `@pinhole/sip`. */
  readonly readSdp?: SdpReader;
}

export class Policy {
  #config: PolicyConfig;
  readonly #readSdp: SdpReader;
  readonly #calls = new Map<string, CallState>();
  readonly #holes = new Map<string, GlobalHole>();
  readonly #sdpCache = new Map<string, MediaEndpointsResult>();

  /** Throws `PolicyError` (`POLICY_ERR_CONFIG`) when the configuration is invalid. */
  constructor(config: PolicyConfigInput | PolicyConfig, options: PolicyOptions = {}) {
    this.#config = isResolved(config) ? config : resolveConfig(config);
    this.#readSdp = options.readSdp ?? ((body) => mediaEndpoints(body));
  }

  /** Feeds one event; returns what to do about it. Never throws on peer input. */
  handle(event: PolicyEvent): PolicyResult {
    const col = new Collector();
    try {
      switch (event.type) {
        case 'sip':
          if (event.message.isRequest) this.#onRequest(event, col);
          else this.#onResponse(event, col);
          break;
        case 'transaction-ended':
          this.#onTransactionEnded(event, col);
          break;
      }
    } catch (err) {
      // Peer input never crashes the caller. A bug here must not leave holes half-recorded
      // silently either: report it as a refusal so it shows in logs and metrics.
      col.refusals.push({
        kind: 'refusal',
        code: 'internal-error',
        detail: `internal error while handling the event: ${String(err)}`,
        pme: undefined,
        dialog: undefined,
      });
    }
    return this.#finish(col);
  }

  /**
   * Forgets state whose TIMER has passed without a refresh (the firewall removed those holes by
   * itself) and returns `close` intents for them, so the FCP layer stops keeping them alive.
   */
  sweep(now: number): PolicyResult {
    const col = new Collector();
    for (const call of [...this.#calls.values()]) {
      for (const d of [...call.dialogs.values(), call.offerDialog]) {
        if (d.closed) continue;
        if (this.#dialogExpiry(d) <= now) this.#closeDialog(d, now, 'timer-expired', col);
      }
      if (call.dialogs.size === 0 && call.lastActivity + this.#config.earlyTimerSec * 1000 <= now) {
        this.#closeDialog(call.offerDialog, now, 'timer-expired', col);
        this.#calls.delete(call.key);
      }
    }
    return this.#finish(col);
  }

  /** The configuration in force. */
  get config(): PolicyConfig {
    return this.#config;
  }

  /**
   * Replaces the configuration (a proxy's SIGHUP reload) and re-decides every dialog under it:
   * holes the new rules forbid close, holes they newly allow open, changed TIMERs are refreshed.
   * Throws `PolicyError` (`POLICY_ERR_CONFIG`) and keeps the old configuration when invalid.
   */
  reconfigure(config: PolicyConfigInput | PolicyConfig, now: number): PolicyResult {
    this.#config = isResolved(config) ? config : resolveConfig(config);
    const col = new Collector();
    for (const call of this.#calls.values()) {
      for (const d of [call.offerDialog, ...call.dialogs.values()]) {
        if (d.closed) continue;
        d.refused.clear();
        this.#reconcile(d, now, col, reasons('reconfigured'));
      }
    }
    return this.#finish(col);
  }

  stats(): PolicyStats {
    let dialogs = 0;
    for (const c of this.#calls.values()) dialogs += c.dialogs.size;
    return { calls: this.#calls.size, dialogs, holes: this.#holes.size };
  }

  holes(): HoleSnapshot[] {
    return [...this.#holes.entries()].map(([key, h]) => ({
      key,
      pme: h.pme,
      timerSec: h.timerSec,
      owners: [...h.owners.keys()],
    }));
  }

  // ---------------------------------------------------------------------------------------------
  // Requests

  #onRequest(ev: SipEvent, col: Collector): void {
    const m = ev.message;
    const callId = m.callId();
    const fromTag = m.from()?.tag;
    const cseq = m.cseq();
    if (!callId || !fromTag || !cseq) return;
    const method = m.method.toUpperCase();
    const toTag = m.to()?.tag;
    if (toTag === undefined) {
      if (method === 'INVITE') this.#onInitialInvite(ev, callId, fromTag, cseq.seq, col);
      return;
    }
    let found = this.#findDialog(callId, fromTag, toTag);
    if (!found && (method === 'INVITE' || method === 'UPDATE')) {
      // A stream that starts mid-call (sidecar restart): adopt the dialog from its refresh.
      found = this.#adoptDialog(callId, fromTag, toTag, ev.now, col);
    }
    if (!found) return;
    const { dialog, sender } = found;
    dialog.lastActivity = ev.now;
    dialog.call.lastActivity = ev.now;
    this.#learnParty(dialog, sender, m, ev);
    switch (method) {
      case 'BYE':
        // RFC 3261 §15: BYE ends the session; configurable whether on the request or its answer.
        if (this.#config.closeOnBye === 'request') this.#closeDialog(dialog, ev.now, 'bye', col);
        return;
      case 'ACK': {
        const p = dialog.pending;
        if (!p || p.from === sender || p.method !== 'INVITE' || p.cseq !== cseq.seq) return;
        const sdp = this.#sdp(m, dialog, col);
        // RFC 3261 §13.2.1: an offer in a 2xx is answered in the ACK.
        if (sdp) this.#answer(dialog, sdp, ev.now, col);
        else {
          dialog.pending = undefined;
          this.#reconcile(dialog, ev.now, col, reasons('offer-rejected'));
        }
        return;
      }
      case 'PRACK': {
        const sdp = this.#sdp(m, dialog, col);
        if (!sdp) return;
        // RFC 3262 §5: an offer in a reliable provisional is answered in the PRACK; otherwise
        // the PRACK itself may carry a new offer, answered in its 2xx.
        if (dialog.pending && dialog.pending.from !== sender)
          this.#answer(dialog, sdp, ev.now, col);
        else this.#offer(dialog, { from: sender, media: sdp, method, cseq: cseq.seq }, ev.now, col);
        return;
      }
      case 'INVITE':
      case 'UPDATE': {
        dialog.refreshRequest = { cseq: cseq.seq, method, req: readTimerRequest(m) };
        const sdp = this.#sdp(m, dialog, col);
        if (sdp) {
          this.#offer(dialog, { from: sender, media: sdp, method, cseq: cseq.seq }, ev.now, col);
        } else if (method === 'INVITE') {
          dialog.awaitOfferIn2xx = cseq.seq;
        }
        return;
      }
      default:
        return;
    }
  }

  #onInitialInvite(
    ev: SipEvent,
    callId: string,
    fromTag: string,
    seq: number,
    col: Collector,
  ): void {
    const m = ev.message;
    const key = callKey(callId, fromTag);
    const existing = this.#calls.get(key);
    const decision = decideTimerRequest(m, this.#config);
    col.actions.push(...decision.actions);
    const ref: DialogRef = { callId, callerTag: fromTag, calleeTag: undefined };
    if (decision.refusal) {
      col.refusals.push({ kind: 'refusal', ...decision.refusal, pme: undefined, dialog: ref });
      return;
    }
    if (existing) {
      // A retransmission changes nothing. A new INVITE with the same Call-ID and From tag and a
      // higher CSeq is a retry after 401/407/422/491 (RFC 3261 §8.1.3.5, RFC 4028 §7.4).
      if (seq <= existing.inviteCseq || hasConfirmed(existing)) return;
      this.#endCall(existing, ev.now, 'call-failed', col);
    }
    if (this.#calls.size >= this.#config.maxCalls) {
      col.refusals.push({
        kind: 'refusal',
        code: 'too-many-calls',
        detail: `already tracking ${this.#calls.size} calls (maxCalls)`,
        pme: undefined,
        dialog: ref,
      });
      return;
    }
    const call: CallState = {
      key,
      callId,
      callerTag: fromTag,
      caller: { contact: undefined, signalling: undefined },
      inviteCseq: seq,
      inviteOffer: undefined,
      inviteTimer: decision.request,
      offerDialog: undefined as unknown as DialogState,
      dialogs: new Map(),
      inviteFinished: false,
      lastActivity: ev.now,
    };
    const offerDialog = newDialog(call, undefined, ev.now);
    (call as { offerDialog: DialogState }).offerDialog = offerDialog;
    this.#calls.set(key, call);
    learn(call.caller, m, ev);
    const sdp = this.#sdp(m, offerDialog, col);
    if (sdp) {
      (call as { inviteOffer: readonly MediaEndpoint[] | undefined }).inviteOffer = sdp;
      offerDialog.pending = { from: 'caller', media: sdp, method: 'INVITE', cseq: seq };
      this.#reconcile(offerDialog, ev.now, col, reasons('offer'));
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Responses

  #onResponse(ev: SipEvent, col: Collector): void {
    const m = ev.message;
    const callId = m.callId();
    const fromTag = m.from()?.tag;
    const cseq = m.cseq();
    if (!callId || !fromTag || !cseq || m.status < 101) return;
    const method = cseq.method.toUpperCase();
    const toTag = m.to()?.tag;
    const call = this.#calls.get(callKey(callId, fromTag));
    if (call && method === 'INVITE' && cseq.seq === call.inviteCseq) {
      call.lastActivity = ev.now;
      this.#onInviteResponse(call, ev, toTag, col);
      return;
    }
    if (toTag === undefined) return;
    const found = this.#findDialog(callId, fromTag, toTag);
    if (!found) return;
    const { dialog, sender: requester } = found;
    const responder = otherSide(requester);
    dialog.lastActivity = ev.now;
    dialog.call.lastActivity = ev.now;
    this.#learnParty(dialog, responder, m, ev);
    const status = m.status;
    if (method === 'BYE') {
      if (status >= 200) this.#closeDialog(dialog, ev.now, 'bye', col);
      return;
    }
    if (status >= 200 && (status === 408 || status === 481)) {
      // RFC 3261 §12.2.1.2: "If the response for a request within a dialog is a 481 (Call/
      // Transaction Does Not Exist) or a 408 (Request Timeout), the UAC SHOULD terminate the dialog."
      this.#closeDialog(dialog, ev.now, 'dialog-error', col);
      return;
    }
    if (method !== 'INVITE' && method !== 'UPDATE' && method !== 'PRACK') return;
    const p = dialog.pending;
    const matches =
      p !== undefined && p.from === requester && p.method === method && p.cseq === cseq.seq;
    if (status < 200) {
      // A reliable provisional to a re-INVITE may carry the answer (RFC 3262).
      if (matches) {
        const sdp = this.#sdp(m, dialog, col);
        if (sdp) this.#answer(dialog, sdp, ev.now, col);
      }
      return;
    }
    if (status >= 300) {
      // RFC 3261 §14.1: "If a UA receives a non-2xx final response to a re-INVITE, the session
      // parameters MUST remain unchanged, as if no re-INVITE had been issued." RFC 3311 §5.2
      // says the same of UPDATE. 488 and 491 change nothing.
      if (dialog.awaitOfferIn2xx === cseq.seq) dialog.awaitOfferIn2xx = undefined;
      if (matches) {
        dialog.pending = undefined;
        this.#reconcile(dialog, ev.now, col, reasons('offer-rejected'));
      }
      return;
    }
    // 2xx. A retransmitted 2xx (or a HEP duplicate) settles nothing new.
    const settledKey = `${method} ${cseq.seq}`;
    const repeat = dialog.lastSettled === settledKey;
    dialog.lastSettled = settledKey;
    const refreshMethod = method === 'INVITE' || method === 'UPDATE';
    const refresh = refreshMethod && !repeat;
    if (refreshMethod) {
      const rr = dialog.refreshRequest;
      const req = rr && rr.cseq === cseq.seq && rr.method === method ? rr.req : undefined;
      const settled = settleTimer(m, req, this.#config);
      dialog.timer = settled.timer;
      col.actions.push(...settled.actions);
    }
    const sdp = this.#sdp(m, dialog, col);
    if (matches) {
      if (sdp) {
        this.#answer(dialog, sdp, ev.now, col, refresh);
        return;
      }
      // An offer without an answer in its 2xx: the exchange failed; keep the old session.
      dialog.pending = undefined;
    } else if (method === 'INVITE' && dialog.awaitOfferIn2xx === cseq.seq && sdp) {
      dialog.awaitOfferIn2xx = undefined;
      dialog.pending = { from: responder, media: sdp, method, cseq: cseq.seq };
    }
    this.#reconcile(dialog, ev.now, col, {
      open: dialog.confirmed ? 'answer' : 'early-answer',
      refresh: 'session-refresh',
      close: 'offer-rejected',
      force: refresh,
    });
  }

  #onInviteResponse(
    call: CallState,
    ev: SipEvent,
    toTag: string | undefined,
    col: Collector,
  ): void {
    const m = ev.message;
    const status = m.status;
    if (status >= 300) {
      const reason: IntentReason = status === 487 ? 'cancelled' : 'call-failed';
      if (ev.disposition === 'absorbed') {
        // One branch of a forked INVITE failed; the others go on.
        for (const d of [...call.dialogs.values()]) {
          if (d.confirmed) continue;
          if (
            (toTag !== undefined && d.calleeTag === toTag) ||
            (ev.branch !== undefined && d.branch === ev.branch)
          ) {
            this.#closeDialog(d, ev.now, reason, col);
          }
        }
        return;
      }
      this.#endInvite(call, ev.now, reason, col);
      return;
    }
    if (toTag === undefined) return;
    const dialog = this.#dialogFor(call, toTag, ev.branch, ev.now);
    dialog.lastActivity = ev.now;
    this.#learnParty(dialog, 'callee', m, ev);
    const sdp = this.#sdp(m, dialog, col);
    if (status < 200) {
      if (dialog.confirmed) return;
      if (sdp) this.#inviteResponseSdp(call, dialog, sdp);
      this.#reconcile(dialog, ev.now, col, {
        open: 'early-answer',
        refresh: 'early-answer',
        close: 'media-change',
        keepAlive: true,
      });
      return;
    }
    // 2xx: the dialog is confirmed (RFC 3261 §12.1.2).
    const wasConfirmed = dialog.confirmed;
    dialog.confirmed = true;
    call.inviteFinished = true;
    const settled = settleTimer(m, call.inviteTimer, this.#config);
    col.actions.push(...settled.actions);
    // A repeated 2xx (retransmission, another copy) does not undo what later refreshes settled.
    if (!wasConfirmed) dialog.timer = settled.timer;
    if (sdp && !wasConfirmed) this.#inviteResponseSdp(call, dialog, sdp);
    this.#reconcile(dialog, ev.now, col, {
      open: 'answer',
      refresh: 'confirmed',
      close: 'media-change',
    });
    if (wasConfirmed) return;
    // RFC 3261 §16.7 step 5 / §13.2.2.4: once a 2xx is forwarded, the other branches are
    // cancelled; their early dialogs end.
    for (const d of [...call.dialogs.values()]) {
      if (!d.confirmed) this.#closeDialog(d, ev.now, 'branch-lost', col);
    }
    this.#closeDialog(call.offerDialog, ev.now, 'offer-rejected', col);
  }

  /** SDP in a response to the initial INVITE. */
  #inviteResponseSdp(call: CallState, dialog: DialogState, sdp: readonly MediaEndpoint[]): void {
    const p = dialog.pending;
    if (p && p.from === 'caller' && p.method === 'INVITE' && p.cseq === call.inviteCseq) {
      // RFC 3261 §13.2.1: the answer to an offer in the INVITE is in the first reliable
      // non-failure response; an unreliable 18x carries the same answer for early media
      // (RFC 3261 §13.2.1, RFC 6337 §3.1).
      dialog.session = { caller: p.media, callee: sdp };
      dialog.sessionFromInvite = true;
      dialog.pending = undefined;
    } else if (dialog.session && dialog.sessionFromInvite) {
      // A later 18x or the 2xx repeating (or, against RFC 6337, changing) that answer.
      dialog.session = { caller: dialog.session.caller, callee: sdp };
    } else if (!call.inviteOffer && !dialog.session && (!p || p.from === 'callee')) {
      // RFC 3261 §13.2.1: an INVITE without an offer gets the offer in the first reliable
      // response (2xx or reliable 18x), answered in the ACK or PRACK.
      dialog.pending = { from: 'callee', media: sdp, method: 'INVITE', cseq: call.inviteCseq };
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Transaction outcomes

  #onTransactionEnded(ev: TransactionEndedEvent, col: Collector): void {
    const m = ev.request;
    const callId = m.callId();
    const fromTag = m.from()?.tag;
    const cseq = m.cseq();
    if (!callId || !fromTag || !cseq) return;
    const method = m.method.toUpperCase();
    const toTag = m.to()?.tag;
    const reason = outcomeReason(ev.outcome);
    if (toTag === undefined) {
      if (method !== 'INVITE') return;
      const call = this.#calls.get(callKey(callId, fromTag));
      if (!call || call.inviteCseq !== cseq.seq) return;
      if (ev.branch !== undefined) {
        for (const d of [...call.dialogs.values()]) {
          if (!d.confirmed && d.branch === ev.branch) this.#closeDialog(d, ev.now, reason, col);
        }
        return;
      }
      if (ev.outcome === 'lost') return;
      this.#endInvite(call, ev.now, reason, col);
      return;
    }
    const found = this.#findDialog(callId, fromTag, toTag);
    if (!found) return;
    const { dialog } = found;
    if (method === 'BYE') {
      this.#closeDialog(dialog, ev.now, 'bye', col);
      return;
    }
    if (method === 'ACK') return;
    if (ev.outcome === 'cancelled' || ev.outcome === 'lost') {
      // A cancelled re-INVITE is a refused offer: nothing changes (RFC 3261 §14.1).
      const p = dialog.pending;
      if (p && p.method === method && p.cseq === cseq.seq) {
        dialog.pending = undefined;
        this.#reconcile(dialog, ev.now, col, reasons('offer-rejected'));
      }
      return;
    }
    // RFC 3261 §12.2.1.2: "or if no response at all is received for the request (the client
    // transaction would inform the TU about the timeout.)" - the UAC SHOULD terminate the dialog.
    this.#closeDialog(dialog, ev.now, reason, col);
  }

  // ---------------------------------------------------------------------------------------------
  // Offer/answer

  #offer(dialog: DialogState, offer: Offer, now: number, col: Collector): void {
    dialog.pending = offer;
    this.#reconcile(dialog, now, col, reasons('offer'));
  }

  #answer(
    dialog: DialogState,
    answer: readonly MediaEndpoint[],
    now: number,
    col: Collector,
    force = false,
  ): void {
    const p = dialog.pending;
    if (!p) return;
    const offerer = p.from;
    dialog.session =
      offerer === 'caller'
        ? { caller: p.media, callee: answer }
        : { caller: answer, callee: p.media };
    dialog.sessionFromInvite = false;
    dialog.pending = undefined;
    this.#reconcile(dialog, now, col, {
      open: dialog.confirmed ? 'answer' : 'early-answer',
      refresh: force ? 'session-refresh' : 'answer',
      close: 'media-change',
      force,
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Holes

  #dialogTimerSec(d: DialogState): number {
    if (d.confirmed) return establishedTimerSec(d.timer, this.#config);
    return this.#config.earlyTimerSec;
  }

  #wanted(d: DialogState): { wants: Map<string, Want>; problems: Problem[] } {
    const wants = new Map<string, Want>();
    const problems: Problem[] = [];
    if (d.closed) return { wants, problems };
    const cfg = this.#config;
    const add = (
      side: Side,
      own: MediaEndpoint,
      peer: MediaEndpoint | undefined,
      timerSec: number,
      origin: Want['origin'],
    ): void => {
      const { flows, problem } = flowsToward(own, peer);
      if (problem) problems.push({ ...problem, pme: undefined });
      for (const f of flows) this.#want(d, side, own, peer, f, timerSec, origin, wants, problems);
    };
    if (d.session) {
      const timer = this.#dialogTimerSec(d);
      const n = Math.min(d.session.caller.length, d.session.callee.length);
      let streams = 0;
      for (let i = 0; i < n; i++) {
        const c = d.session.caller[i];
        const e = d.session.callee[i];
        if (!c || !e || c.disabled || e.disabled || c.port === 0 || e.port === 0) continue;
        if (++streams > cfg.maxStreamsPerCall) {
          problems.push({
            code: 'too-many-streams',
            detail: `m-line ${i}: more than ${cfg.maxStreamsPerCall} streams (maxStreamsPerCall)`,
            pme: undefined,
          });
          continue;
        }
        add('caller', c, e, timer, 'session');
        add('callee', e, c, timer, 'session');
      }
    }
    const p = d.pending;
    if (cfg.openOn === 'offer' && p) {
      let streams = 0;
      for (let i = 0; i < p.media.length; i++) {
        const own = p.media[i];
        if (!own || own.disabled || own.port === 0) continue;
        if (++streams > cfg.maxStreamsPerCall) {
          problems.push({
            code: 'too-many-streams',
            detail: `offered m-line ${i}: more than ${cfg.maxStreamsPerCall} streams (maxStreamsPerCall)`,
            pme: undefined,
          });
          continue;
        }
        add(p.from, own, undefined, cfg.offerTimerSec, 'offer');
      }
    }
    if (wants.size > cfg.maxHolesPerDialog) {
      const keys = [...wants.keys()];
      for (const k of keys.slice(cfg.maxHolesPerDialog)) {
        const w = wants.get(k);
        wants.delete(k);
        problems.push({
          code: 'too-many-holes',
          detail: `more than ${cfg.maxHolesPerDialog} holes in one dialog (maxHolesPerDialog)`,
          pme: w?.pme,
        });
      }
    }
    return { wants, problems };
  }

  #want(
    d: DialogState,
    side: Side,
    own: MediaEndpoint,
    peer: MediaEndpoint | undefined,
    f: Flow,
    timerSec: number,
    origin: Want['origin'],
    wants: Map<string, Want>,
    problems: Problem[],
  ): void {
    const cfg = this.#config;
    // Zones: a hole is needed only toward a protected network...
    if (!this.#isProtected(f.address)) return;
    // ...and only if the other end is not inside too (then media never crosses the firewall).
    const peerParty = side === 'caller' ? d.callee : d.call.caller;
    if (this.#peerInside(peer, peerParty)) return;
    const source = this.#source(peer, peerParty, f);
    const pme: Pme = {
      protocol: f.protocol,
      proto: f.protocol === 'udp' ? 17 : 6,
      family: f.address.family,
      source: source === 'refuse' ? undefined : source,
      destination: { address: f.address.text, prefix: f.address.family === 4 ? 32 : 128 },
      destinationPort: f.port,
    };
    if (source === 'refuse') {
      problems.push({
        code: 'source-unknown',
        detail: `no usable ${cfg.source} source for ${f.address.text}:${f.port}`,
        pme,
      });
      return;
    }
    const verdict = checkHole(pme, timerSec, cfg);
    if (verdict) {
      problems.push({ ...verdict, pme });
      return;
    }
    const key = pmeKey(pme);
    const existing = wants.get(key);
    if (existing) {
      existing.timerSec = Math.max(existing.timerSec, timerSec);
      return;
    }
    wants.set(key, {
      pme,
      timerSec,
      stream: { index: own.index, media: own.type, flow: f.flow, party: side },
      origin,
    });
  }

  #isProtected(a: IpAddress): boolean {
    return this.#config.protectedNetworks.some((n) => inNetwork(a, n));
  }

  /** Is the other end of the media inside the protected networks? Unknown counts as outside. */
  #peerInside(peer: MediaEndpoint | undefined, party: Party): boolean {
    const cues: IpAddress[] = [];
    const media = peer?.address !== undefined ? parseIp(peer.address) : undefined;
    if (media && !media.bytes.every((b) => b === 0)) cues.push(media);
    if (party.signalling) cues.push(party.signalling);
    return cues.length > 0 && cues.every((c) => this.#isProtected(c));
  }

  #source(peer: MediaEndpoint | undefined, party: Party, f: Flow): Pme['source'] | 'refuse' {
    const cfg = this.#config;
    let candidate: IpAddress | undefined;
    switch (cfg.source) {
      case 'any':
        return undefined;
      case 'sdp': {
        const text =
          f.flow === 'rtcp' && peer?.rtcp?.address !== undefined
            ? peer.rtcp.address
            : peer?.address;
        candidate = text !== undefined ? parseIp(text) : undefined;
        break;
      }
      case 'contact':
        candidate = party.contact;
        break;
      case 'signalling':
        candidate = party.signalling;
        break;
    }
    if (candidate && candidate.family === f.address.family && !specialAddress(candidate)) {
      const prefix = candidate.family === 4 ? cfg.sourcePrefix.ipv4 : cfg.sourcePrefix.ipv6;
      const net = networkOf(candidate, prefix);
      return { address: net.address.text, prefix };
    }
    return cfg.sourceFallback === 'refuse' ? 'refuse' : undefined;
  }

  #reconcile(d: DialogState, now: number, col: Collector, ctx: Ctx): void {
    const { wants, problems } = this.#wanted(d);
    for (const p of problems) {
      const k = `${p.code}|${p.detail}|${p.pme ? pmeKey(p.pme) : ''}`;
      if (d.refused.has(k)) continue;
      // Bounded memory: a peer sending endless new bad offers gets its refusals reported again
      // rather than growing this set.
      if (d.refused.size >= MAX_REMEMBERED_REFUSALS) d.refused.clear();
      d.refused.add(k);
      col.refusals.push({
        kind: 'refusal',
        code: p.code,
        detail: p.detail,
        pme: p.pme,
        dialog: d.ref,
      });
    }
    for (const [key, w] of wants) {
      const owned = d.holes.get(key);
      const global = this.#holes.get(key);
      if (!owned || !global) {
        d.holes.set(key, { timerSec: w.timerSec });
        d.streams.set(key, w.stream);
        if (!global) {
          this.#holes.set(key, {
            pme: w.pme,
            owners: new Map([[d.id, w.timerSec]]),
            timerSec: w.timerSec,
            setAt: now,
          });
          col.opens.push({
            kind: 'open',
            key,
            pme: w.pme,
            timerSec: w.timerSec,
            reason: w.origin === 'offer' ? 'offer' : ctx.open,
            dialog: d.ref,
            stream: w.stream,
          });
        } else {
          global.owners.set(d.id, w.timerSec);
          if (w.timerSec > global.timerSec) this.#refresh(key, global, now, d, ctx.refresh, col);
        }
        continue;
      }
      owned.timerSec = w.timerSec;
      global.owners.set(d.id, w.timerSec);
      const target = maxOwnerTimer(global);
      if (ctx.force === true || target !== global.timerSec) {
        this.#refresh(key, global, now, d, ctx.refresh, col);
      } else if (ctx.keepAlive === true && now - global.setAt >= global.timerSec * 500) {
        this.#refresh(key, global, now, d, 'keep-alive', col);
      }
    }
    for (const key of [...d.holes.keys()]) {
      if (wants.has(key)) continue;
      d.holes.delete(key);
      d.streams.delete(key);
      const global = this.#holes.get(key);
      if (!global) continue;
      global.owners.delete(d.id);
      if (global.owners.size === 0) {
        this.#holes.delete(key);
        col.closes.push({ kind: 'close', key, pme: global.pme, reason: ctx.close, dialog: d.ref });
      }
    }
  }

  #refresh(
    key: string,
    g: GlobalHole,
    now: number,
    d: DialogState,
    reason: IntentReason,
    col: Collector,
  ): void {
    g.timerSec = maxOwnerTimer(g);
    g.setAt = now;
    col.refreshes.push({
      kind: 'refresh',
      key,
      pme: g.pme,
      timerSec: g.timerSec,
      reason,
      dialog: d.ref,
    });
  }

  #closeDialog(d: DialogState, now: number, reason: IntentReason, col: Collector): void {
    d.closed = true;
    d.pending = undefined;
    this.#reconcile(d, now, col, { open: reason, refresh: reason, close: reason });
    const call = d.call;
    if (d.calleeTag !== undefined) call.dialogs.delete(d.calleeTag);
    if (call.dialogs.size === 0 && call.inviteFinished && this.#calls.get(call.key) === call) {
      if (!call.offerDialog.closed) this.#closeDialog(call.offerDialog, now, reason, col);
      this.#calls.delete(call.key);
    }
  }

  /** The initial INVITE failed as a whole: every early dialog ends; confirmed ones stay. */
  #endInvite(call: CallState, now: number, reason: IntentReason, col: Collector): void {
    call.inviteFinished = true;
    for (const d of [...call.dialogs.values()]) {
      if (!d.confirmed) this.#closeDialog(d, now, reason, col);
    }
    if (!call.offerDialog.closed) this.#closeDialog(call.offerDialog, now, reason, col);
    if (call.dialogs.size === 0) this.#calls.delete(call.key);
  }

  #endCall(call: CallState, now: number, reason: IntentReason, col: Collector): void {
    call.inviteFinished = true;
    for (const d of [...call.dialogs.values()]) this.#closeDialog(d, now, reason, col);
    if (!call.offerDialog.closed) this.#closeDialog(call.offerDialog, now, reason, col);
    this.#calls.delete(call.key);
  }

  #dialogExpiry(d: DialogState): number {
    let latest = -Infinity;
    for (const key of d.holes.keys()) {
      const g = this.#holes.get(key);
      if (g) latest = Math.max(latest, g.setAt + g.timerSec * 1000);
    }
    if (latest === -Infinity) {
      const timer =
        d.calleeTag === undefined ? this.#config.earlyTimerSec : this.#dialogTimerSec(d);
      latest = d.lastActivity + timer * 1000;
    }
    return latest;
  }

  // ---------------------------------------------------------------------------------------------
  // Dialog bookkeeping

  #findDialog(
    callId: string,
    fromTag: string,
    toTag: string,
  ): { dialog: DialogState; sender: Side } | undefined {
    const asCaller = this.#calls.get(callKey(callId, fromTag))?.dialogs.get(toTag);
    if (asCaller) return { dialog: asCaller, sender: 'caller' };
    const asCallee = this.#calls.get(callKey(callId, toTag))?.dialogs.get(fromTag);
    if (asCallee) return { dialog: asCallee, sender: 'callee' };
    return undefined;
  }

  #adoptDialog(
    callId: string,
    fromTag: string,
    toTag: string,
    now: number,
    col: Collector,
  ): { dialog: DialogState; sender: Side } | undefined {
    if (this.#calls.size >= this.#config.maxCalls) {
      col.refusals.push({
        kind: 'refusal',
        code: 'too-many-calls',
        detail: `already tracking ${this.#calls.size} calls (maxCalls)`,
        pme: undefined,
        dialog: { callId, callerTag: fromTag, calleeTag: toTag },
      });
      return undefined;
    }
    const key = callKey(callId, fromTag);
    // Only a dialog of a call we know nothing about is adopted; a stray in-dialog request for an
    // unknown dialog of a known call changes nothing.
    if (this.#calls.has(key) || this.#calls.has(callKey(callId, toTag))) return undefined;
    const call: CallState = {
      key,
      callId,
      callerTag: fromTag,
      caller: { contact: undefined, signalling: undefined },
      inviteCseq: -1,
      inviteOffer: undefined,
      inviteTimer: { se: undefined, minSE: undefined, uacSupports: false },
      offerDialog: undefined as unknown as DialogState,
      dialogs: new Map(),
      inviteFinished: true,
      lastActivity: now,
    };
    (call as { offerDialog: DialogState }).offerDialog = newDialog(call, undefined, now);
    this.#calls.set(key, call);
    const dialog = this.#dialogFor(call, toTag, undefined, now);
    dialog.confirmed = true;
    return { dialog, sender: 'caller' };
  }

  #dialogFor(call: CallState, toTag: string, branch: string | undefined, now: number): DialogState {
    let d = call.dialogs.get(toTag);
    if (!d) {
      d = newDialog(call, toTag, now);
      if (call.inviteOffer) {
        d.pending = {
          from: 'caller',
          media: call.inviteOffer,
          method: 'INVITE',
          cseq: call.inviteCseq,
        };
      }
      call.dialogs.set(toTag, d);
    }
    if (branch !== undefined) d.branch = branch;
    return d;
  }

  #learnParty(d: DialogState, side: Side, m: SipMessage, ev: SipEvent): void {
    learn(side === 'caller' ? d.call.caller : d.callee, m, ev);
  }

  #sdp(m: SipMessage, d: DialogState, col: Collector): readonly MediaEndpoint[] | undefined {
    if (m.body.length === 0) return undefined;
    if (m.contentType() !== 'application/sdp') return undefined;
    // The same SDP comes back in 18x and 2xx, retransmissions and refresh re-INVITEs: parse it
    // once. Results are never mutated, so sharing them is safe.
    // Bounded: at most SDP_CACHE_MAX bodies of at most SDP_CACHE_BODY_MAX bytes each.
    const cacheable = m.body.byteLength <= SDP_CACHE_BODY_MAX;
    const key = cacheable
      ? Buffer.from(m.body.buffer, m.body.byteOffset, m.body.byteLength).toString('latin1')
      : '';
    let r = cacheable ? this.#sdpCache.get(key) : undefined;
    if (!r) {
      r = this.#readSdp(m.body);
      if (cacheable) {
        if (this.#sdpCache.size >= SDP_CACHE_MAX) this.#sdpCache.clear();
        this.#sdpCache.set(key, r);
      }
    }
    if (r.ok) return r.media;
    col.refusals.push({
      kind: 'refusal',
      code: 'sdp-invalid',
      detail: `${r.error.code}: ${r.error.reason}`,
      pme: undefined,
      dialog: d.ref,
    });
    return undefined;
  }

  #finish(col: Collector): PolicyResult {
    const intents: Intent[] = [];
    const refusals = [...col.refusals];
    // The last gate: nothing that opens or refreshes a hole leaves without passing the checks.
    // Deterministic order within each kind: by destination, then port.
    const order = (a: { pme: Pme; key: string }, b: { pme: Pme; key: string }): number =>
      a.pme.destination.address.localeCompare(b.pme.destination.address) ||
      a.pme.destinationPort - b.pme.destinationPort ||
      a.key.localeCompare(b.key);
    col.opens.sort(order);
    col.refreshes.sort(order);
    col.closes.sort(order);
    for (const i of [...col.opens, ...col.refreshes]) {
      const v = checkHole(i.pme, i.timerSec, this.#config);
      if (v)
        refusals.push({
          kind: 'refusal',
          code: v.code,
          detail: v.detail,
          pme: i.pme,
          dialog: i.dialog,
        });
      else intents.push(i);
    }
    intents.push(...col.closes);
    if (intents.length === 0 && refusals.length === 0 && col.actions.length === 0) return EMPTY;
    return { intents, refusals, actions: col.actions };
  }
}

function isResolved(c: PolicyConfigInput | PolicyConfig): c is PolicyConfig {
  return (
    Array.isArray(c.protectedNetworks) &&
    c.protectedNetworks.length > 0 &&
    typeof c.protectedNetworks[0] === 'object' &&
    'broadcastAddresses' in c
  );
}

function reasons(r: IntentReason): Ctx {
  return { open: r, refresh: r, close: r };
}

function maxOwnerTimer(g: GlobalHole): number {
  let t = 0;
  for (const v of g.owners.values()) t = Math.max(t, v);
  return t;
}

function hasConfirmed(call: CallState): boolean {
  for (const d of call.dialogs.values()) if (d.confirmed) return true;
  return false;
}

function outcomeReason(o: TransactionOutcome): IntentReason {
  switch (o) {
    case 'timeout':
      return 'transaction-timeout';
    case 'transport-error':
      return 'transport-error';
    case 'cancelled':
      return 'cancelled';
    case 'lost':
      return 'branch-lost';
  }
}

function newDialog(call: CallState, calleeTag: string | undefined, now: number): DialogState {
  return {
    id: `${call.key}\u0000${calleeTag ?? '\u0000offer'}`,
    call,
    calleeTag,
    ref: { callId: call.callId, callerTag: call.callerTag, calleeTag },
    confirmed: false,
    closed: false,
    branch: undefined,
    callee: { contact: undefined, signalling: undefined },
    session: undefined,
    sessionFromInvite: false,
    pending: undefined,
    awaitOfferIn2xx: undefined,
    timer: undefined,
    refreshRequest: undefined,
    lastSettled: undefined,
    holes: new Map(),
    streams: new Map(),
    refused: new Set(),
    lastActivity: now,
  };
}

/** Records a party's Contact host and signalling address (for the source policies). */
function learn(p: Party, m: SipMessage, ev: SipEvent): void {
  const contact = m.contacts()[0];
  if (contact) {
    const a = parseIp(contact.uri.host);
    if (a) p.contact = a;
  }
  if (ev.source) {
    const a = parseIp(ev.source.address);
    if (a) p.signalling = a;
  }
}
