/**
 * RFC 4028 session timers as a proxy sees them: what a request asks for, what this hop does about
 * it (insert Session-Expires, raise it, answer 422 or 421), and what a 2xx settles.
 */
import type { SipMessage } from '@pinhole/sip';
import type { PolicyConfig } from './config.js';
import type { ProxyAction, RefusalCode } from './intents.js';

/** What a session refresh request (INVITE, re-INVITE, UPDATE) said about timers. */
export interface TimerRequest {
  /** Session-Expires after this hop's changes (inserted or raised), or undefined. */
  readonly se: number | undefined;
  readonly minSE: number | undefined;
  /** `Supported: timer` or `Require: timer`: the UAC can refresh (RFC 4028 §7.1). */
  readonly uacSupports: boolean;
}

/** The interval a 2xx settled, and who refreshes. */
export interface NegotiatedTimer {
  readonly intervalSec: number;
  readonly refresher: 'uac' | 'uas' | undefined;
}

export function readTimerRequest(m: SipMessage): TimerRequest {
  const se = m.sessionExpires();
  return {
    se: se && se.delta > 0 ? se.delta : undefined,
    minSE: m.minSE(),
    uacSupports: m.supported().includes('timer') || m.require().includes('timer'),
  };
}

export interface RequestDecision {
  readonly request: TimerRequest;
  readonly actions: ProxyAction[];
  /** Set when the request must be answered instead of forwarded. */
  readonly refusal: { readonly code: RefusalCode; readonly detail: string } | undefined;
}

/**
 * Decides what this hop does with the session timer of an initial INVITE. Pure: the same INVITE
 * (a retransmission) always yields the same decision.
 */
export function decideTimerRequest(m: SipMessage, config: PolicyConfig): RequestDecision {
  const req = readTimerRequest(m);
  const { mode, intervalSec, minSESec } = config.sessionTimer;
  if (mode === 'observe') return { request: req, actions: [], refusal: undefined };
  if (mode === 'require' && !req.uacSupports) {
    // RFC 3261 §21.4.15 421 Extension Required: the server needs `timer`, which the UAC lacks.
    return {
      request: req,
      actions: [
        {
          kind: 'reject',
          status: 421,
          reason: 'Extension Required',
          headers: [{ name: 'Require', value: 'timer' }],
        },
      ],
      refusal: {
        code: 'session-timer-required',
        detail: 'the caller does not support session timers (no "Supported: timer")',
      },
    };
  }
  const floor = Math.max(minSESec, req.minSE ?? 0);
  const actions: ProxyAction[] = [];
  // RFC 4028 §8.1: a proxy "MAY increase the value of the Min-SE header field", never decrease it.
  const raiseMinSE = (req.minSE ?? 90) < minSESec;
  if (req.se === undefined) {
    // RFC 4028 §8.1: "If the request doesn't contain a Session-Expires header field, the proxy
    // MAY insert one" - and its value MUST NOT be below the Min-SE of the request.
    const se = Math.max(intervalSec, floor);
    actions.push({ kind: 'set-header', name: 'Session-Expires', value: String(se) });
    if (raiseMinSE) actions.push({ kind: 'set-header', name: 'Min-SE', value: String(floor) });
    return { request: { ...req, se }, actions, refusal: undefined };
  }
  if (req.se < minSESec) {
    if (req.uacSupports) {
      // RFC 4028 §8.1: the proxy MAY reject a too small interval with 422 carrying its Min-SE.
      return {
        request: req,
        actions: [
          {
            kind: 'reject',
            status: 422,
            reason: 'Session Interval Too Small',
            headers: [{ name: 'Min-SE', value: String(minSESec) }],
          },
        ],
        refusal: {
          code: 'session-interval-too-small',
          detail: `Session-Expires ${req.se} is below this hop's Min-SE ${minSESec}`,
        },
      };
    }
    // RFC 4028 §8.1: without timer support "the proxy cannot usefully reject the request";
    // it inserts or raises Min-SE and raises Session-Expires to that value.
    const refresher = m.sessionExpires()?.refresher;
    const value = refresher ? `${floor};refresher=${refresher}` : String(floor);
    actions.push({ kind: 'set-header', name: 'Session-Expires', value });
    actions.push({ kind: 'set-header', name: 'Min-SE', value: String(floor) });
    return { request: { ...req, se: floor, minSE: floor }, actions, refusal: undefined };
  }
  return { request: req, actions, refusal: undefined };
}

/**
 * What a 2xx to a session refresh request settles (RFC 4028 §7.2, §8.2), and the headers this
 * hop adds to it when the UAS ignored the timer but the UAC can refresh.
 */
export function settleTimer(
  response: SipMessage,
  request: TimerRequest | undefined,
  config: PolicyConfig,
): { timer: NegotiatedTimer | undefined; actions: ProxyAction[] } {
  const se = response.sessionExpires();
  if (se && se.delta > 0) {
    return { timer: { intervalSec: se.delta, refresher: se.refresher }, actions: [] };
  }
  if (config.sessionTimer.mode !== 'observe' && request?.se !== undefined && request.uacSupports) {
    // RFC 4028 §8.2: a proxy that asked for the timer and finds the UAS ignored it, while the UAC
    // supports it, inserts Session-Expires with refresher=uac and Require: timer into the 2xx.
    return {
      timer: { intervalSec: request.se, refresher: 'uac' },
      actions: [
        { kind: 'set-header', name: 'Session-Expires', value: `${request.se};refresher=uac` },
        { kind: 'add-header', name: 'Require', value: 'timer' },
      ],
    };
  }
  // RFC 4028 §7.2: "If the 2xx response did not contain a Session-Expires header field, there is
  // no session expiration."
  return { timer: undefined, actions: [] };
}

/** The TIMER of an established call's holes. */
export function establishedTimerSec(
  timer: NegotiatedTimer | undefined,
  config: PolicyConfig,
): number {
  if (!timer) return config.maxCallLifetimeSec;
  return Math.min(timer.intervalSec + config.sessionTimerMarginSec, config.maxTimerSec);
}
