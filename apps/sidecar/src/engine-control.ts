/**
 * The real pinhole control behind the seam: observations drive an observer-mode transaction
 * layer (which notices what no single copy says: a branch that timed out), settled messages
 * drive the policy, and the policy's intents become FCP SET/RELEASE requests.
 *
 * The intent-to-FCP mapping follows apps/proxy/src/firewall.ts (same PME conversion, TIMER from
 * the policy, keep-alive off so a hole without session-timer refreshes expires). It is kept
 * small here on purpose and should move into one shared package used by both apps.
 *
 * The sidecar cannot hold a message: the 200 OK has already left the SIP server when its copy
 * arrives. `answerToAckSeconds` measures the window from a 2xx/18x copy's arrival to the last of
 * its pinholes being acknowledged; media sent in that window meets a closed firewall.
 */
import type { Intent, Pme, Policy, PolicyResult } from '@pinhole/policy';
import type { SipMessage } from '@pinhole/sip';
import { TransactionLayer, type TransactionEvent } from '@pinhole/transaction';
import type { Counter, Gauge, Histogram, MetricsRegistry } from './metrics.js';
import type { MediaSource, SipObservation } from './observation.js';
import { observedHop } from './observed-hop.js';
import type { PinholeControl } from './seam.js';

/** What the control needs of an FCP client (`FcpClient` of @pinhole/fcp fits). */
export interface FcpPort {
  set(
    pme: FcpPmeInput,
    params: { timer?: number; keepAlive?: boolean },
  ): Promise<{ readonly ok: boolean; readonly outcomes: readonly FcpOutcomeLike[] }>;
  release(
    pme: FcpPmeInput,
  ): Promise<{ readonly ok: boolean; readonly outcomes: readonly FcpOutcomeLike[] }>;
  close(): void;
}

export interface FcpOutcomeLike {
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

/** `open`: a failed SET is logged and counted; `closed`: also logged at error level. */
export type FailMode = 'open' | 'closed';

export interface ControlLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface EngineControlMetrics {
  /** labels: outcome (opened|refreshed|closed|refused|failed). */
  readonly pinholes: Counter;
  readonly callsTracked: Gauge;
  /** Seconds per FCP request, labels: method (set|release). */
  readonly fcpLatency: Histogram;
  /** Seconds from an answer copy's arrival to its pinholes being acknowledged. */
  readonly answerToAck: Histogram;
}

export function createEngineControlMetrics(registry: MetricsRegistry): EngineControlMetrics {
  const buckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
  return {
    pinholes: registry.counter(
      'pinhole_sidecar_pinholes_total',
      'Pinhole operations by outcome (opened, refreshed, closed, refused by policy, failed at the firewall).',
      ['outcome'],
    ),
    callsTracked: registry.gauge('pinhole_sidecar_calls_tracked', 'Calls the policy tracks.'),
    fcpLatency: registry.histogram(
      'pinhole_sidecar_fcp_latency_seconds',
      'Seconds per FCP request until every server answered.',
      ['method'],
      buckets,
    ),
    answerToAck: registry.histogram(
      'pinhole_sidecar_answer_to_pinhole_seconds',
      'Seconds from the arrival of an 18x/2xx copy to its pinholes being acknowledged: the window in which media may meet a closed firewall.',
      [],
      buckets,
    ),
  };
}

export interface EngineControlOptions {
  readonly policy: Policy;
  readonly fcp: FcpPort;
  readonly metrics: EngineControlMetrics;
  readonly logger: ControlLogger;
  readonly failMode?: FailMode;
  /** How often expired policy state is swept (ms, default 1000). */
  readonly sweepMs?: number;
  /** Same clock as the normalizer's (`receivedAtMs`), ms. Default Date.now. */
  readonly now?: () => number;
  /** Observer-mode layer; default a new one on the system clock. */
  readonly layer?: TransactionLayer;
}

function prefixText(p: { address: string; prefix: number }, family: 4 | 6): string {
  return p.prefix === (family === 4 ? 32 : 128) ? p.address : `${p.address}/${p.prefix}`;
}

/** The FCP packet-matching expression of a policy hole (as the proxy's `toFcpPme`). */
export function toFcpPme(pme: Pme): FcpPmeInput {
  return {
    proto: pme.proto,
    ...(pme.source ? { src: prefixText(pme.source, pme.family) } : {}),
    dst: prefixText(pme.destination, pme.family),
    dstPort: pme.destinationPort,
  };
}

const MAX_BRANCHES = 10_000;

export class EnginePinholeControl implements PinholeControl {
  readonly name = 'transaction+policy+fcp';
  readonly drivesFirewall = true;
  readonly layer: TransactionLayer;
  readonly #o: EngineControlOptions;
  readonly #now: () => number;
  readonly #failMode: FailMode;
  #sweep: NodeJS.Timeout | undefined;
  /** Response key -> the client branch it arrived on (from the received copy's top Via). */
  readonly #branches = new Map<string, string>();
  readonly #inflight = new Set<Promise<unknown>>();
  #closed = false;

  constructor(opts: EngineControlOptions) {
    this.#o = opts;
    this.#now = opts.now ?? Date.now;
    this.#failMode = opts.failMode ?? 'open';
    this.layer = opts.layer ?? new TransactionLayer({ mode: 'observer' });
    this.layer.on('branchFailed', (e) => this.#branchFailed(e));
    this.#sweep = setInterval(() => {
      this.#track(Promise.all(this.#execute(this.#o.policy.sweep(this.#now()), undefined)));
    }, opts.sweepMs ?? 1000);
    this.#sweep.unref();
  }

  get policy(): Policy {
    return this.#o.policy;
  }

  observe(o: SipObservation): void {
    if (this.#closed) return;
    try {
      this.layer.observe(o.message, observedHop(o));
    } catch (err) {
      this.#o.logger.debug({ err: (err as Error).message, seq: o.seq }, 'observer layer refused');
    }
    const m = o.message;
    if (!m.isRequest && o.kind === 'received-by-server') {
      const branch = m.topVia()?.branch;
      if (branch !== undefined) {
        if (this.#branches.size >= MAX_BRANCHES) {
          const oldest = this.#branches.keys().next();
          if (oldest.done !== true) this.#branches.delete(oldest.value);
        }
        this.#branches.set(o.key, branch);
      }
    }
  }

  settle(o: SipObservation, source: MediaSource): void {
    if (this.#closed) return;
    const m = o.message;
    const branch = this.#branches.get(o.key);
    this.#branches.delete(o.key);
    let result: PolicyResult;
    try {
      result = this.#o.policy.handle({
        type: 'sip',
        message: m,
        source: { address: o.src.address, port: o.src.port, transport: o.transport },
        destination: { address: o.dst.address, port: o.dst.port, transport: o.transport },
        ...(branch !== undefined ? { branch } : {}),
        now: this.#now(),
      });
    } catch (err) {
      this.#o.logger.warn({ err: (err as Error).message, seq: o.seq }, 'policy failed');
      return;
    }
    const sets = this.#execute(result, m);
    this.#updateCalls();
    if (!m.isRequest && m.status >= 180 && sets.length > 0) {
      const arrived = o.receivedAtMs;
      this.#track(
        Promise.all(sets).then((oks) => {
          if (oks.every(Boolean)) {
            this.#o.metrics.answerToAck.observe(Math.max(0, this.#now() - arrived) / 1000);
          }
          this.#o.logger.debug(
            { callId: m.callId(), status: m.status, source, ok: oks.every(Boolean) },
            'answer pinholes settled',
          );
        }),
      );
    }
  }

  /** Waits for the FCP requests in flight (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.#inflight.size > 0) await Promise.all([...this.#inflight]);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#sweep) clearInterval(this.#sweep);
    this.#sweep = undefined;
    await this.idle();
    this.layer.close();
    // Holes stay until their TIMER runs out (keep-alive is off): a restarted sidecar that
    // starts in the middle of calls opens them again on the next refresh it sees.
    this.#o.fcp.close();
  }

  #branchFailed(e: TransactionEvent): void {
    if (this.#closed || e.outcome?.kind !== 'timeout' || !e.branch) return;
    const request: SipMessage = e.branch.request;
    if (!request.isRequest || request.method !== 'INVITE') return;
    const branch = request.topVia()?.branch;
    const result = this.#o.policy.handle({
      type: 'transaction-ended',
      request,
      outcome: 'timeout',
      ...(branch !== undefined ? { branch } : {}),
      now: this.#now(),
    });
    this.#track(Promise.all(this.#execute(result, request)));
    this.#updateCalls();
  }

  #updateCalls(): void {
    this.#o.metrics.callsTracked.set(this.#o.policy.stats().calls);
  }

  #track(p: Promise<unknown>): void {
    this.#inflight.add(p);
    void p.finally(() => this.#inflight.delete(p));
  }

  /** Sends every intent; returns the promises of the SETs (opens and refreshes). */
  #execute(result: PolicyResult, msg: SipMessage | undefined): Promise<boolean>[] {
    for (const r of result.refusals) {
      this.#o.metrics.pinholes.inc({ outcome: 'refused' });
      this.#o.logger.info(
        { code: r.code, detail: r.detail, callId: r.dialog?.callId ?? msg?.callId() },
        'pinhole refused by policy',
      );
    }
    const sets: Promise<boolean>[] = [];
    for (const intent of result.intents) {
      switch (intent.kind) {
        case 'open':
        case 'refresh': {
          const p = this.#set(intent);
          this.#track(p);
          sets.push(p);
          break;
        }
        case 'close':
          this.#track(this.#release(intent));
          break;
      }
    }
    return sets;
  }

  async #set(intent: Extract<Intent, { kind: 'open' | 'refresh' }>): Promise<boolean> {
    const started = performance.now();
    let ok = false;
    let detail: unknown;
    try {
      const r = await this.#o.fcp.set(toFcpPme(intent.pme), {
        timer: intent.timerSec,
        // Refreshes come from the policy (session timers); without them the hole expires.
        keepAlive: false,
      });
      this.#o.metrics.fcpLatency.observe((performance.now() - started) / 1000, { method: 'set' });
      ok = r.ok;
      detail = r.outcomes.map((x) => `${x.server} ${x.kind} ${x.status ?? ''} ${x.reason ?? ''}`);
    } catch (err) {
      detail = (err as Error).message;
    }
    if (ok) {
      this.#o.metrics.pinholes.inc({ outcome: intent.kind === 'open' ? 'opened' : 'refreshed' });
      this.#o.logger.debug(
        { key: intent.key, reason: intent.reason, timer: intent.timerSec },
        intent.kind === 'open' ? 'pinhole opened' : 'pinhole refreshed',
      );
    } else {
      this.#o.metrics.pinholes.inc({ outcome: 'failed' });
      const fields = { key: intent.key, callId: intent.dialog.callId, detail };
      // The message has already passed: fail mode can only decide how loudly to say so.
      if (this.#failMode === 'closed') this.#o.logger.error(fields, 'pinhole SET failed');
      else this.#o.logger.warn(fields, 'pinhole SET failed');
    }
    return ok;
  }

  async #release(intent: Extract<Intent, { kind: 'close' }>): Promise<void> {
    const started = performance.now();
    try {
      const r = await this.#o.fcp.release(toFcpPme(intent.pme));
      this.#o.metrics.fcpLatency.observe((performance.now() - started) / 1000, {
        method: 'release',
      });
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
}
