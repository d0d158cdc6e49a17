/**
 * The firewall module: the proxy core's media gate. Every message passing the proxy becomes a
 * policy event; the policy's intents become FCP requests (SET to open or refresh, RELEASE to
 * close) on the FCP client's persistent connections. A response that enables media (18x or 2xx
 * whose SDP opens holes) is held until its SETs are acknowledged or the deadline passes, after
 * which the fail mode decides: `open` relays anyway, `closed` fails the call.
 */
import type { SipMessage } from '@pinhole/sip';
import type { Intent, Pme, Policy, PolicyResult } from '@pinhole/policy';
import type { FailMode } from './config.js';
import type { ProxyMetrics } from './metrics.js';
import type { GateDecision, GateEvent, Logger, MediaGate } from './proxy-core.js';
import type { Peer } from './transport.js';

/** What the module needs of an FCP client (`FcpClient` of @pinhole/fcp fits). */
export interface FcpPort {
  set(
    pme: FcpPmeInput,
    params: { timer?: number; keepAlive?: boolean },
  ): Promise<{ readonly ok: boolean; readonly outcomes: readonly FcpOutcome[] }>;
  release(
    pme: FcpPmeInput,
  ): Promise<{ readonly ok: boolean; readonly outcomes: readonly FcpOutcome[] }>;
}

export interface FcpOutcome {
  readonly server: string;
  readonly kind: string;
  readonly status?: number | undefined;
  readonly reason?: string | undefined;
}

export interface FcpPmeInput {
  readonly proto?: number;
  readonly src?: string;
  readonly dst?: string;
  readonly dstPort?: number;
}

export interface FirewallOptions {
  readonly policy: Policy;
  readonly fcp: FcpPort;
  readonly metrics: ProxyMetrics;
  readonly logger: Logger;
  readonly failMode: FailMode;
  readonly deadlineMs: number;
  /** How often expired policy state is swept (ms, default 1000). */
  readonly sweepMs?: number;
  readonly now?: () => number;
}

function prefixText(p: { address: string; prefix: number }, family: 4 | 6): string {
  const host = family === 4 ? 32 : 128;
  return p.prefix === host ? p.address : `${p.address}/${p.prefix}`;
}

/** The FCP packet-matching expression of a policy hole. */
export function toFcpPme(pme: Pme): FcpPmeInput {
  return {
    proto: pme.proto,
    ...(pme.source ? { src: prefixText(pme.source, pme.family) } : {}),
    dst: prefixText(pme.destination, pme.family),
    dstPort: pme.destinationPort,
  };
}

function transportAddress(
  p: Peer | undefined,
): { address: string; port: number; transport: string } | undefined {
  return p ? { address: p.address, port: p.port, transport: p.transport.toUpperCase() } : undefined;
}

export class Firewall implements MediaGate {
  readonly #o: FirewallOptions;
  readonly #now: () => number;
  #sweep: NodeJS.Timeout | undefined;
  #policy: Policy;
  #failMode: FailMode;
  #deadlineMs: number;

  constructor(opts: FirewallOptions) {
    this.#o = opts;
    this.#policy = opts.policy;
    this.#failMode = opts.failMode;
    this.#deadlineMs = opts.deadlineMs;
    this.#now = opts.now ?? Date.now;
    this.#sweep = setInterval(() => {
      void Promise.all(this.#execute(this.#policy.sweep(this.#now()), undefined));
    }, opts.sweepMs ?? 1000);
    this.#sweep.unref();
  }

  get policy(): Policy {
    return this.#policy;
  }

  /** SIGHUP: a new policy takes over for new calls only if the caller swaps it; settings apply now. */
  reconfigure(opts: { failMode: FailMode; deadlineMs: number }): void {
    this.#failMode = opts.failMode;
    this.#deadlineMs = opts.deadlineMs;
  }

  close(): void {
    if (this.#sweep) clearInterval(this.#sweep);
    this.#sweep = undefined;
  }

  passing(ev: GateEvent): GateDecision {
    const source = transportAddress(ev.source);
    const destination = transportAddress(ev.destination);
    const result = this.#policy.handle({
      type: 'sip',
      message: ev.message,
      ...(source ? { source } : {}),
      ...(destination ? { destination } : {}),
      ...(ev.disposition ? { disposition: ev.disposition } : {}),
      ...(ev.branch ? { branch: ev.branch } : {}),
      now: this.#now(),
    });
    const pending = this.#execute(result, ev.message);
    const actions = result.actions;
    const m = ev.message;
    // Only a response that opens (or re-opens) holes is held: 18x with SDP or 2xx.
    if (m.isRequest || m.status < 180 || pending.length === 0) return { actions };
    return { actions, hold: this.#hold(pending, m) };
  }

  ended(ev: {
    readonly request: SipMessage;
    readonly outcome: 'timeout' | 'transport-error' | 'cancelled' | 'lost';
    readonly branch?: string;
  }): void {
    const result = this.#policy.handle({
      type: 'transaction-ended',
      request: ev.request,
      outcome: ev.outcome,
      ...(ev.branch ? { branch: ev.branch } : {}),
      now: this.#now(),
    });
    void Promise.all(this.#execute(result, undefined));
  }

  /** Sends every intent; returns the promises of the SETs (opens and refreshes). */
  #execute(result: PolicyResult, msg: SipMessage | undefined): Promise<boolean>[] {
    const log = this.#o.logger;
    for (const r of result.refusals) {
      this.#o.metrics.pinholes.inc({ outcome: 'refused' });
      log.info(
        { code: r.code, detail: r.detail, callId: r.dialog?.callId ?? msg?.callId() },
        'pinhole refused by policy',
      );
    }
    const sets: Promise<boolean>[] = [];
    for (const intent of result.intents) {
      switch (intent.kind) {
        case 'open':
        case 'refresh':
          sets.push(this.#set(intent));
          break;
        case 'close':
          void this.#release(intent);
          break;
      }
    }
    return sets;
  }

  async #set(intent: Extract<Intent, { kind: 'open' | 'refresh' }>): Promise<boolean> {
    const started = process.hrtime.bigint();
    try {
      const r = await this.#o.fcp.set(toFcpPme(intent.pme), {
        timer: intent.timerSec,
        // Refreshes come from the policy (session timers); without them the hole expires.
        keepAlive: false,
      });
      this.#o.metrics.fcpLatency.observe(Number(process.hrtime.bigint() - started) / 1e9);
      if (r.ok) {
        this.#o.metrics.pinholes.inc({ outcome: intent.kind === 'open' ? 'opened' : 'refreshed' });
        this.#o.logger.debug(
          {
            key: intent.key,
            reason: intent.reason,
            timer: intent.timerSec,
            callId: intent.dialog.callId,
          },
          intent.kind === 'open' ? 'pinhole opened' : 'pinhole refreshed',
        );
      } else {
        this.#o.metrics.pinholes.inc({ outcome: 'failed' });
        this.#o.logger.warn(
          {
            key: intent.key,
            outcomes: r.outcomes.map(
              (o) => `${o.server} ${o.kind} ${o.status ?? ''} ${o.reason ?? ''}`,
            ),
          },
          'pinhole SET not accepted',
        );
      }
      return r.ok;
    } catch (err) {
      this.#o.metrics.pinholes.inc({ outcome: 'failed' });
      this.#o.logger.warn({ key: intent.key, err: (err as Error).message }, 'pinhole SET failed');
      return false;
    }
  }

  async #release(intent: Extract<Intent, { kind: 'close' }>): Promise<void> {
    const started = process.hrtime.bigint();
    try {
      const r = await this.#o.fcp.release(toFcpPme(intent.pme));
      this.#o.metrics.fcpLatency.observe(Number(process.hrtime.bigint() - started) / 1e9);
      this.#o.metrics.pinholes.inc({ outcome: r.ok ? 'closed' : 'failed' });
      this.#o.logger.debug(
        { key: intent.key, reason: intent.reason, callId: intent.dialog.callId, ok: r.ok },
        'pinhole closed',
      );
    } catch (err) {
      this.#o.metrics.pinholes.inc({ outcome: 'failed' });
      this.#o.logger.warn(
        { key: intent.key, err: (err as Error).message },
        'pinhole RELEASE failed',
      );
    }
  }

  /** Settles when every SET is acknowledged, or at the deadline with the fail mode's verdict. */
  #hold(pending: Promise<boolean>[], m: SipMessage): Promise<'relay' | 'fail'> {
    const failMode = this.#failMode;
    const verdictOnFailure: 'relay' | 'fail' = failMode === 'open' ? 'relay' : 'fail';
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#o.logger.warn(
          { callId: m.callId(), status: m.status, deadlineMs: this.#deadlineMs, failMode },
          'pinholes not acknowledged before the deadline',
        );
        resolve(verdictOnFailure);
      }, this.#deadlineMs);
      void Promise.all(pending).then((oks) => {
        clearTimeout(timer);
        if (oks.every(Boolean)) {
          resolve('relay');
          return;
        }
        this.#o.logger.warn(
          { callId: m.callId(), status: m.status, failMode },
          'pinholes refused by the firewall',
        );
        resolve(verdictOnFailure);
      });
    });
  }
}
