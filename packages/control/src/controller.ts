/**
 * The intent-to-FCP executor shared by apps/proxy and apps/sidecar. Policy events go in; the
 * policy's intents come out as FCP requests (SET to open or refresh, RELEASE to close) on an
 * injected FCP port, with metrics and logs through injected minimal interfaces.
 *
 * A proxy can hold a message until its SETs are acknowledged: `hold()` settles when every SET of
 * an execution is acknowledged, or when the deadline passes or a SET is refused, and then the fail
 * mode decides (`open` relays anyway, `closed` fails the call). A sidecar, which cannot hold
 * anything, uses `settled()` to measure how long media may have met a closed firewall.
 */
import type {
  CloseIntent,
  Intent,
  OpenIntent,
  Policy,
  PolicyConfig,
  PolicyConfigInput,
  PolicyResult,
  RefreshIntent,
  SipEvent,
  TransactionEndedEvent,
} from '@pinhole/policy';
import { isNoMatchingRuleReason } from '@pinhole/fcp';
import { ControlError, ControlErrorCode } from './errors.js';
import { toFcpPme, type FcpPmeInput } from './pme.js';

/** One FCP server's answer, as the port reports it (`ServerOutcome` of @pinhole/fcp fits). */
export interface FcpPortOutcome {
  readonly server: string;
  readonly kind: string;
  readonly status?: number | undefined;
  readonly reason?: string | undefined;
}

export interface FcpPortResult {
  /** True when every server accepted the request. */
  readonly ok: boolean;
  readonly outcomes: readonly FcpPortOutcome[];
}

/** What the controller needs of an FCP client. `FcpClient` of @pinhole/fcp satisfies it. */
export interface FcpPort {
  set(pme: FcpPmeInput, params: { timer?: number; keepAlive?: boolean }): Promise<FcpPortResult>;
  release(pme: FcpPmeInput): Promise<FcpPortResult>;
}

/** pino's call shape, reduced to what is used. Default: silent. */
export interface ControlLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  /**
   * pino's level test, optional: when it says `debug` is off, the per-hole debug lines are not
   * built at all (one object per SET and RELEASE otherwise).
   */
  isLevelEnabled?(level: string): boolean;
}

/**
 * `opened`/`refreshed`/`closed`: the firewall acknowledged; `expired`: a RELEASE found no rule
 * left (the firewall had already expired it by its TIMER, or lost it): closed all the same;
 * `refused`: by the policy; `failed`: at the firewall.
 */
export type PinholeOutcome = 'opened' | 'refreshed' | 'closed' | 'expired' | 'refused' | 'failed';
export type FcpMethod = 'set' | 'release';
/** `open`: a message whose pinholes are not confirmed is relayed anyway; `closed`: the call fails. */
export type FailMode = 'open' | 'closed';

/**
 * Metrics hooks; every one optional. The app adapts them to its registry (Prometheus or other),
 * so the library depends on none.
 */
export interface ControlMetrics {
  /** One per intent outcome (and one per policy refusal). */
  pinhole?(outcome: PinholeOutcome): void;
  /** Seconds from sending an FCP request to its answer (answered or not: failures count too). */
  fcpLatency?(method: FcpMethod, seconds: number): void;
  /** A hold settled: how long the message waited and why it was released. */
  hold?(verdict: HoldVerdict): void;
  /** Calls the policy tracks, after every sweep tick (reading it per message would cost O(calls)). */
  callsTracked?(calls: number): void;
}

/** A policy event without its clock reading: the controller stamps `now` unless given. */
export type ControlEvent =
  | (Omit<SipEvent, 'now'> & { readonly now?: number })
  | (Omit<TransactionEndedEvent, 'now'> & { readonly now?: number });

/** What one event (or sweep, or reconfiguration) made the controller do. */
export interface Execution {
  readonly result: PolicyResult;
  /** One per open/refresh intent, in order: resolves true when every FCP server accepted it. Never rejects. */
  readonly sets: readonly Promise<boolean>[];
  /** One per close intent: resolves true when released (or already gone). Never rejects. */
  readonly releases: readonly Promise<boolean>[];
}

export interface HoldVerdict {
  /** What to do with the held message. */
  readonly action: 'relay' | 'fail';
  /**
   * `none`: nothing to wait for; `acknowledged`: every SET accepted; `refused`: a SET was not
   * accepted (or failed); `deadline`: the deadline passed first.
   */
  readonly outcome: 'none' | 'acknowledged' | 'refused' | 'deadline';
  readonly waitedMs: number;
  readonly failMode: FailMode;
}

export interface HoldOptions {
  /** Overrides the controller's deadline for this hold (ms). */
  readonly deadlineMs?: number;
  /** Log fields (e.g. `{ callId, status }`) for the warning when the hold does not succeed. */
  readonly context?: Readonly<Record<string, unknown>>;
}

export interface PinholeControllerOptions {
  readonly policy: Policy;
  readonly fcp: FcpPort;
  readonly logger?: ControlLogger;
  readonly metrics?: ControlMetrics;
  /** Default `open`. */
  readonly failMode?: FailMode;
  /** How long `hold()` waits for the SETs (ms, default 1000). */
  readonly deadlineMs?: number;
  /** How often expired policy state is swept (ms, default 1000; 0 = never, call `sweep()`). */
  readonly sweepMs?: number;
  /** The policy's clock (ms). Default `Date.now`. */
  readonly now?: () => number;
  /**
   * FCP keep-alive for SETs (default false): the policy refreshes holes from SIP session timers,
   * so a hole nobody refreshes expires after its TIMER instead of being kept open by the client.
   */
  readonly keepAlive?: boolean;
  /**
   * Longest delay of a RELEASE (ms, default 0: sent at once). A RELEASE waits at most this long
   * and goes out with the next SET (before it, in order) or when the delay ends, so the closes of
   * ended calls share the FCP write (one syscall, one wake-up of the daemon) of a new call's
   * opens instead of costing one of their own. Holes then close up to this much later.
   */
  readonly releaseDelayMs?: number;
}

const SILENT: ControlLogger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

const EMPTY_RESULT: PolicyResult = { intents: [], refusals: [], actions: [] };

export class PinholeController {
  readonly #fcp: FcpPort;
  readonly #log: ControlLogger;
  readonly #metrics: ControlMetrics;
  readonly #now: () => number;
  readonly #keepAlive: boolean;
  readonly #releaseDelayMs: number;
  /** Close intents waiting for the next SET or the end of the release delay. */
  readonly #deferred: { intent: CloseIntent; resolve: (ok: boolean) => void }[] = [];
  #deferTimer: NodeJS.Timeout | undefined;
  readonly #inflight = new Set<Promise<unknown>>();
  #policy: Policy;
  #failMode: FailMode;
  #deadlineMs: number;
  #sweep: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(opts: PinholeControllerOptions) {
    this.#policy = opts.policy;
    this.#fcp = opts.fcp;
    this.#log = opts.logger ?? SILENT;
    this.#metrics = opts.metrics ?? {};
    this.#now = opts.now ?? Date.now;
    this.#keepAlive = opts.keepAlive ?? false;
    this.#releaseDelayMs = Math.max(0, opts.releaseDelayMs ?? 0);
    this.#failMode = opts.failMode ?? 'open';
    this.#deadlineMs = opts.deadlineMs ?? 1000;
    const sweepMs = opts.sweepMs ?? 1000;
    if (sweepMs > 0) {
      this.#sweep = setInterval(() => this.sweep(), sweepMs);
      this.#sweep.unref();
    }
  }

  get policy(): Policy {
    return this.#policy;
  }

  get failMode(): FailMode {
    return this.#failMode;
  }

  get deadlineMs(): number {
    return this.#deadlineMs;
  }

  /** The policy's clock (ms): callers that stamp events with `now` read it here. */
  now(): number {
    return this.#now();
  }

  /** FCP requests sent and not yet answered. */
  get inFlight(): number {
    return this.#inflight.size;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Feeds one event to the policy and sends its intents. Never throws; after `close()`, a no-op. */
  handle(event: ControlEvent): Execution {
    if (this.#closed) return { result: EMPTY_RESULT, sets: [], releases: [] };
    let result: PolicyResult;
    try {
      // An event that carries its clock reading goes to the policy as it is: copying it per
      // message (an object spread of one of several shapes) was the controller's largest cost.
      result = this.#policy.handle(
        event.now !== undefined
          ? (event as SipEvent | TransactionEndedEvent)
          : { ...event, now: this.#now() },
      );
    } catch (err) {
      // The policy never throws on peer input; a bug must not escape into a socket handler.
      this.#log.error({ err: (err as Error).message }, 'policy failed');
      return { result: EMPTY_RESULT, sets: [], releases: [] };
    }
    const callId =
      event.type === 'sip' ? event.message.callId() : (event.request.callId() ?? undefined);
    return this.execute(result, callId);
  }

  /** Sends the intents of a result the caller got from the policy itself. */
  execute(result: PolicyResult, callId?: string): Execution {
    for (const r of result.refusals) {
      this.#metrics.pinhole?.('refused');
      this.#log.info(
        { code: r.code, detail: r.detail, callId: r.dialog?.callId ?? callId },
        'pinhole refused by policy',
      );
    }
    const intents = result.intents;
    if (intents.length === 0) return { result, sets: [], releases: [] };
    const sets: Promise<boolean>[] = [];
    const releases: Promise<boolean>[] = [];
    let flush = false;
    for (const intent of intents) {
      switch (intent.kind) {
        case 'open':
        case 'refresh':
          // A waiting RELEASE of the same rule goes first (the firewall must see the two in the
          // policy's order); the others follow this execution's SETs in the same write, so the
          // SETs' answers do not queue behind them at the firewall.
          if (this.#deferred.length > 0) {
            this.#flushReleases(intent.key);
            flush = true;
          }
          sets.push(this.#track(this.#set(intent)));
          break;
        case 'close':
          releases.push(this.#track(this.#releaseSoon(intent)));
          break;
      }
    }
    if (flush) this.#flushReleases();
    return { result, sets, releases };
  }

  #releaseSoon(intent: CloseIntent): Promise<boolean> {
    if (this.#releaseDelayMs === 0 || this.#closed) return this.#release(intent);
    return new Promise<boolean>((resolve) => {
      this.#deferred.push({ intent, resolve });
      if (this.#deferTimer === undefined) {
        this.#deferTimer = setTimeout(() => this.#flushReleases(), this.#releaseDelayMs);
        this.#deferTimer.unref();
      }
    });
  }

  /** Sends the deferred RELEASEs now (only those of rule `key`, when given), in their order. */
  #flushReleases(key?: string): void {
    const deferred = this.#deferred;
    if (key !== undefined) {
      for (let i = 0; i < deferred.length;) {
        const d = deferred[i]!;
        if (d.intent.key !== key) i++;
        else {
          deferred.splice(i, 1);
          void this.#release(d.intent).then(d.resolve);
        }
      }
      return;
    }
    if (this.#deferTimer !== undefined) clearTimeout(this.#deferTimer);
    this.#deferTimer = undefined;
    for (const d of deferred.splice(0)) void this.#release(d.intent).then(d.resolve);
  }

  /** Forgets expired policy state and releases its holes (the sweep timer calls this). */
  sweep(now: number = this.#now()): Execution {
    if (this.#closed) return { result: EMPTY_RESULT, sets: [], releases: [] };
    const exec = this.execute(this.#policy.sweep(now));
    this.#metrics.callsTracked?.(this.#policy.stats().calls);
    return exec;
  }

  /**
   * Waits for the SETs of an execution: `relay` once every one is acknowledged; when one is not
   * accepted or the deadline passes first, the fail mode decides (`open` relays, `closed` fails).
   * Never rejects.
   */
  hold(exec: Pick<Execution, 'sets'>, opts: HoldOptions = {}): Promise<HoldVerdict> {
    const failMode = this.#failMode;
    const deadlineMs = opts.deadlineMs ?? this.#deadlineMs;
    const started = performance.now();
    const settle = (outcome: HoldVerdict['outcome']): HoldVerdict => {
      const ok = outcome === 'none' || outcome === 'acknowledged';
      const verdict: HoldVerdict = {
        action: ok || failMode === 'open' ? 'relay' : 'fail',
        outcome,
        waitedMs: performance.now() - started,
        failMode,
      };
      this.#metrics.hold?.(verdict);
      if (!ok) {
        this.#log.warn(
          { ...opts.context, outcome, deadlineMs, failMode, action: verdict.action },
          outcome === 'deadline'
            ? 'pinholes not acknowledged before the deadline'
            : 'pinholes refused by the firewall',
        );
      }
      return verdict;
    };
    if (exec.sets.length === 0) return Promise.resolve(settle('none'));
    return new Promise<HoldVerdict>((resolve) => {
      let done = false;
      const timer = setTimeout(() => {
        if (done) return;
        done = true;
        resolve(settle('deadline'));
      }, deadlineMs);
      void Promise.all(exec.sets).then((oks) => {
        clearTimeout(timer);
        if (done) return;
        done = true;
        resolve(settle(oks.every(Boolean) ? 'acknowledged' : 'refused'));
      });
    });
  }

  /** Resolves when every SET of the execution is answered: true when all were accepted. */
  async settled(exec: Pick<Execution, 'sets'>): Promise<boolean> {
    const oks = await Promise.all(exec.sets);
    return oks.every(Boolean);
  }

  /** SIGHUP: fail mode and deadline apply to holds that start from now on. */
  reconfigure(opts: { readonly failMode?: FailMode; readonly deadlineMs?: number }): void {
    if (opts.failMode !== undefined) this.#failMode = opts.failMode;
    if (opts.deadlineMs !== undefined) this.#deadlineMs = opts.deadlineMs;
  }

  /**
   * SIGHUP: new policy settings. Every live dialog is re-decided under them (holes the new rules
   * forbid close, newly allowed ones open) and the intents are sent. Throws `CONTROL_ERR_CONFIG`
   * and keeps the old settings when the configuration is invalid.
   */
  reconfigurePolicy(
    config: PolicyConfigInput | PolicyConfig,
    now: number = this.#now(),
  ): Execution {
    let result: PolicyResult;
    try {
      result = this.#policy.reconfigure(config, now);
    } catch (err) {
      throw new ControlError(
        ControlErrorCode.CONFIG,
        `invalid policy configuration: ${(err as Error).message}`,
        { cause: err },
      );
    }
    return this.execute(result);
  }

  /** Resolves when no FCP request is in flight (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.#inflight.size > 0) await Promise.all([...this.#inflight]);
  }

  /**
   * Stops the sweep timer and waits for the requests in flight. The FCP port is the caller's: it
   * is not closed here, and holes stay until their TIMER runs out (keep-alive is off).
   */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#sweep) clearInterval(this.#sweep);
    this.#sweep = undefined;
    this.#flushReleases();
    await this.idle();
  }

  #track<T>(p: Promise<T>): Promise<T> {
    this.#inflight.add(p);
    // #set and #release never reject: one reaction, not the two of `finally`.
    void p.then(() => this.#inflight.delete(p));
    return p;
  }

  async #set(intent: OpenIntent | RefreshIntent): Promise<boolean> {
    const started = performance.now();
    let ok = false;
    let detail: unknown;
    try {
      const r = await this.#fcp.set(toFcpPme(intent.pme), {
        timer: intent.timerSec,
        keepAlive: this.#keepAlive,
      });
      ok = r.ok;
      if (!ok) detail = outcomeText(r);
    } catch (err) {
      detail = (err as Error).message;
    }
    this.#metrics.fcpLatency?.('set', (performance.now() - started) / 1000);
    if (ok) {
      this.#metrics.pinhole?.(intent.kind === 'open' ? 'opened' : 'refreshed');
      if (this.#log.isLevelEnabled?.('debug') === false) return ok;
      this.#log.debug(
        {
          key: intent.key,
          reason: intent.reason,
          timer: intent.timerSec,
          callId: intent.dialog.callId,
        },
        intent.kind === 'open' ? 'pinhole opened' : 'pinhole refreshed',
      );
    } else {
      this.#metrics.pinhole?.('failed');
      const fields = { key: intent.key, callId: intent.dialog.callId, detail };
      if (this.#failMode === 'closed') this.#log.error(fields, 'pinhole SET failed');
      else this.#log.warn(fields, 'pinhole SET failed');
    }
    return ok;
  }

  async #release(intent: CloseIntent): Promise<boolean> {
    const started = performance.now();
    let outcome: ReleaseOutcome = 'failed';
    let detail: unknown;
    try {
      const r = await this.#fcp.release(toFcpPme(intent.pme));
      outcome = releaseOutcome(r);
      if (outcome === 'failed') detail = outcomeText(r);
    } catch (err) {
      detail = (err as Error).message;
    }
    this.#metrics.fcpLatency?.('release', (performance.now() - started) / 1000);
    this.#metrics.pinhole?.(outcome);
    switch (outcome) {
      case 'closed':
        if (this.#log.isLevelEnabled?.('debug') === false) return true;
        this.#log.debug(
          { key: intent.key, reason: intent.reason, callId: intent.dialog.callId },
          'pinhole closed',
        );
        return true;
      case 'expired':
        // The goal of the RELEASE (no such rule at the firewall) is met: a hole nobody refreshed
        // ran out its TIMER at the firewall before the policy's sweep released it.
        if (this.#log.isLevelEnabled?.('debug') === false) return true;
        this.#log.debug(
          { key: intent.key, reason: intent.reason, callId: intent.dialog.callId },
          'pinhole already expired at the firewall',
        );
        return true;
      case 'failed':
        this.#log.warn(
          { key: intent.key, reason: intent.reason, callId: intent.dialog.callId, detail },
          'pinhole RELEASE failed',
        );
        return false;
    }
  }
}

type ReleaseOutcome = 'closed' | 'expired' | 'failed';

/**
 * `expired` when some server no longer had the rule (the FCP client's `gone`, or a 400 "no
 * matching rule" from a port that reports it as a refusal) and every other server released it;
 * `failed` when any server failed otherwise (timeout, connection, another refusal).
 */
function releaseOutcome(r: FcpPortResult): ReleaseOutcome {
  let gone = false;
  for (const o of r.outcomes) {
    if (o.kind === 'gone' || (o.status === 400 && isNoMatchingRuleReason(o.reason ?? ''))) {
      gone = true;
    } else if (o.kind === 'refused' || o.kind === 'failed') {
      return 'failed';
    }
  }
  if (gone) return 'expired';
  return r.ok ? 'closed' : 'failed';
}

function outcomeText(r: FcpPortResult): string[] {
  return r.outcomes.map((o) =>
    [o.server, o.kind, o.status, o.reason].filter((x) => x !== undefined).join(' '),
  );
}

/** Type guard kept for callers that filter intents (e.g. to count what an execution opens). */
export function isSetIntent(intent: Intent): intent is OpenIntent | RefreshIntent {
  return intent.kind === 'open' || intent.kind === 'refresh';
}
