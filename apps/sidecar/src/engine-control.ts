/**
 * The real pinhole control behind the seam: observations drive an observer-mode transaction
 * layer (which notices what no single copy says: a branch that timed out), settled messages and
 * branch timeouts go to @pinhole/control's `PinholeController`, which asks the policy and turns
 * its intents into FCP SET/RELEASE requests (the executor the proxy uses too).
 *
 * The sidecar cannot hold a message: the 200 OK has already left the SIP server when its copy
 * arrives. `answerToAck` measures the window from a 2xx/18x copy's arrival to the last of its
 * pinholes being acknowledged; media sent in that window meets a closed firewall.
 */
import {
  PinholeController,
  type ControlLogger,
  type FailMode,
  type FcpPort,
} from '@pinhole/control';
import type { Counter, Gauge, Histogram, MetricsRegistry } from '@pinhole/metrics';
import type { Policy } from '@pinhole/policy';
import type { SipMessage } from '@pinhole/sip';
import { TransactionLayer, type TransactionEvent } from '@pinhole/transaction';
import type { MediaSource, SipObservation } from './observation.js';
import { observedHop } from './observed-hop.js';
import type { PinholeControl } from './seam.js';

export interface EngineControlMetrics {
  /** labels: outcome (opened|refreshed|closed|expired|refused|failed). */
  readonly pinholes: Counter;
  /** Calls the policy tracks (updated on every sweep, once a second by default). */
  readonly callsTracked: Gauge;
  /** Seconds per FCP request, labels: method (set|release). */
  readonly fcpLatency: Histogram;
  /** Seconds from an answer copy's arrival to its pinholes being acknowledged. */
  readonly answerToAck: Histogram;
}

export function createEngineControlMetrics(registry: MetricsRegistry): EngineControlMetrics {
  const buckets = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
  ];
  return {
    pinholes: registry.counter(
      'pinhole_sidecar_pinholes_total',
      'Pinhole operations by outcome (opened, refreshed, closed, expired: already gone at the firewall, refused by policy, failed at the firewall).',
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
  /** The FCP client (`FcpClient` of @pinhole/fcp fits); closed by `close()`. */
  readonly fcp: FcpPort & { close(): void };
  readonly metrics: EngineControlMetrics;
  readonly logger: ControlLogger;
  /** The sidecar cannot fail a call: `closed` only logs a failed SET at error instead of warn. */
  readonly failMode?: FailMode;
  /** How often expired policy state is swept (ms, default 1000). */
  readonly sweepMs?: number;
  /** Same clock as the normalizer's (`receivedAtMs`), ms. Default Date.now. */
  readonly now?: () => number;
  /** Observer-mode layer; default a new one on the system clock. */
  readonly layer?: TransactionLayer;
}

const MAX_BRANCHES = 10_000;

export class EnginePinholeControl implements PinholeControl {
  readonly name = 'transaction+policy+fcp';
  readonly drivesFirewall = true;
  readonly layer: TransactionLayer;
  /** The shared executor (policy in, FCP out). */
  readonly controller: PinholeController;
  readonly #o: EngineControlOptions;
  readonly #now: () => number;
  /** Response key -> the client branch it arrived on (from the received copy's top Via). */
  readonly #branches = new Map<string, string>();
  /** Answer bookkeeping (the window measure and its log line) not yet finished. */
  readonly #answers = new Set<Promise<void>>();
  #closed = false;

  constructor(opts: EngineControlOptions) {
    this.#o = opts;
    this.#now = opts.now ?? Date.now;
    const m = opts.metrics;
    this.controller = new PinholeController({
      policy: opts.policy,
      fcp: opts.fcp,
      logger: opts.logger,
      metrics: {
        pinhole: (outcome) => m.pinholes.inc({ outcome }),
        fcpLatency: (method, seconds) => m.fcpLatency.observe(seconds, { method }),
        callsTracked: (calls) => m.callsTracked.set(calls),
      },
      failMode: opts.failMode ?? 'open',
      sweepMs: opts.sweepMs ?? 1000,
      now: this.#now,
      // Refreshes come from the policy (session timers); without them the hole expires.
      keepAlive: false,
    });
    this.layer = opts.layer ?? new TransactionLayer({ mode: 'observer' });
    this.layer.on('branchFailed', (e) => this.#branchFailed(e));
  }

  get policy(): Policy {
    return this.controller.policy;
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
    const exec = this.controller.handle({
      type: 'sip',
      message: m,
      source: { address: o.src.address, port: o.src.port, transport: o.transport },
      destination: { address: o.dst.address, port: o.dst.port, transport: o.transport },
      ...(branch !== undefined ? { branch } : {}),
      now: this.#now(),
    });
    if (!m.isRequest && m.status >= 180 && exec.sets.length > 0) {
      const arrived = o.receivedAtMs;
      const done = this.controller.settled(exec).then((ok) => {
        if (ok) this.#o.metrics.answerToAck.observe(Math.max(0, this.#now() - arrived) / 1000);
        this.#o.logger.debug(
          { callId: m.callId(), status: m.status, source, ok },
          'answer pinholes settled',
        );
      });
      this.#answers.add(done);
      void done.finally(() => this.#answers.delete(done));
    }
  }

  /** Waits for the FCP requests in flight and the bookkeeping of answers (tests, shutdown). */
  async idle(): Promise<void> {
    for (let i = 0; i < 100 && (this.controller.inFlight > 0 || this.#answers.size > 0); i++) {
      await this.controller.idle();
      await Promise.all([...this.#answers]);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Stops the sweep and waits for requests in flight; releases nothing: holes stay until their
    // TIMER runs out (keep-alive is off), and a restarted sidecar that starts in the middle of
    // calls opens them again on the next refresh it sees.
    await this.controller.close();
    await Promise.all([...this.#answers]);
    this.layer.close();
    this.#o.fcp.close();
  }

  #branchFailed(e: TransactionEvent): void {
    if (this.#closed || e.outcome?.kind !== 'timeout' || !e.branch) return;
    const request: SipMessage = e.branch.request;
    if (!request.isRequest || request.method !== 'INVITE') return;
    const branch = request.topVia()?.branch;
    this.controller.handle({
      type: 'transaction-ended',
      request,
      outcome: 'timeout',
      ...(branch !== undefined ? { branch } : {}),
      now: this.#now(),
    });
  }
}
