/**
 * The firewall module: the proxy's media gate, a listener on @pinhole/transaction's events that
 * drives @pinhole/control. Every message passing the proxy becomes a policy event; the policy's
 * intents become FCP requests (SET to open or refresh, RELEASE to close) on the FCP client's
 * persistent connections. A response that enables media (18x or 2xx whose SDP opens holes) is
 * held by its holdable event until its SETs are acknowledged or the deadline passes, after which
 * the fail mode decides: `open` relays anyway, `closed` fails the call (the held response is
 * replaced by a 503 upstream; the callee's side is cancelled or hung up).
 *
 * Events used: `provisionalRelayed` / `finalRelayed` (holdable: policy, header actions, hold),
 * `responseReceived` (a branch's 3xx-6xx, absorbed into the response context: its early dialog
 * ends), `cancelReceived`, `branchFailed` (timeouts, transport errors, aborted branches become
 * policy `transaction-ended` events) and, on a relayed 2xx, the other pending branches of the
 * context are reported `lost`.
 */
import type { FailMode } from './config.js';
import type { ProxyMetrics } from './metrics.js';
import type { GateDecision, GateEvent, Logger, MediaGate, ProxyHooks } from './proxy-core.js';
import type { Peer } from './transport.js';
import type { HoldVerdict, PinholeController } from '@pinhole/control';
import type { TransactionOutcome } from '@pinhole/policy';
import type { SipMessage } from '@pinhole/sip';
import type {
  ClientTransaction,
  HoldDecision,
  ServerTransaction,
  TransactionEvent,
  TransactionLayer,
} from '@pinhole/transaction';

export { toFcpPme } from '@pinhole/control';
export type { FcpPmeInput, FcpPort } from '@pinhole/control';

export interface FirewallOptions {
  readonly control: PinholeController;
  readonly logger: Logger;
}

function transportAddress(
  p: Peer | undefined,
): { address: string; port: number; transport: string } | undefined {
  if (p === undefined) return undefined;
  // The policy's transport names are upper case (a constant, not a string built per message).
  const t = p.transport === 'udp' ? 'UDP' : 'TCP';
  return { address: p.address, port: p.port, transport: t };
}

/** The Via branch of the request a client transaction sent (what the policy keys forks by). */
function branchId(t: ClientTransaction | undefined): string | undefined {
  return t?.request.topVia()?.branch;
}

export class Firewall implements MediaGate {
  readonly #control: PinholeController;
  readonly #log: Logger;
  /** The last hold of each server transaction: a later response is decided after it. */
  readonly #chains = new Map<ServerTransaction, Promise<unknown>>();

  constructor(opts: FirewallOptions) {
    this.#control = opts.control;
    this.#log = opts.logger;
  }

  get control(): PinholeController {
    return this.#control;
  }

  get failMode(): FailMode {
    return this.#control.failMode;
  }

  /** SIGHUP: fail mode and deadline apply to holds that start from now on. */
  reconfigure(opts: { failMode: FailMode; deadlineMs: number }): void {
    this.#control.reconfigure(opts);
  }

  /** A request about to be forwarded (or an ACK forwarded statelessly). */
  request(ev: GateEvent): GateDecision {
    const source = transportAddress(ev.source);
    const destination = transportAddress(ev.destination);
    const exec = this.#control.handle({
      type: 'sip',
      message: ev.message,
      source,
      destination,
      branch: undefined,
      now: this.#control.now(),
    });
    return { actions: exec.result.actions };
  }

  attach(layer: TransactionLayer, hooks: ProxyHooks): () => void {
    const offs = [
      layer.on('provisionalRelayed', (e) => this.#relayed(e, hooks)),
      layer.on('finalRelayed', (e) => this.#relayed(e, hooks, layer)),
      layer.on('responseReceived', (e) => this.#absorbed(e, hooks)),
      layer.on('cancelReceived', (e) => {
        if (e.transaction === undefined || e.message === undefined) return;
        const source = transportAddress(hooks.peerOf(e.source));
        this.#control.handle({
          type: 'sip',
          message: e.message,
          source,
          destination: undefined,
          branch: undefined,
          now: this.#control.now(),
        });
      }),
      layer.on('branchFailed', (e) => this.#branchFailed(e)),
      layer.on('transactionDestroyed', (e) => {
        if (e.branch === undefined && e.transaction !== undefined) {
          this.#chains.delete(e.transaction as ServerTransaction);
        }
      }),
    ];
    return () => {
      for (const off of offs) off();
    };
  }

  /** Waits for the FCP requests in flight (tests, shutdown). */
  idle(): Promise<void> {
    return this.#control.idle();
  }

  close(): Promise<void> {
    return this.#control.close();
  }

  #relayed(
    e: TransactionEvent,
    hooks: ProxyHooks,
    layer?: TransactionLayer,
  ): Promise<HoldDecision | undefined> | undefined {
    const m = e.message;
    if (m === undefined) return undefined;
    const receivedAt = hooks.receivedAt();
    const server = e.transaction as ServerTransaction | undefined;
    const branch = e.branch as ClientTransaction | undefined;
    if (server !== undefined && hooks.isFailed(server, m)) {
      // The call (or this fork's dialog) was failed: nothing more of it goes upstream (a 2xx is
      // ACKed, and hung up once).
      return Promise.resolve(hooks.failCall(server, m, branch));
    }
    const source = transportAddress(hooks.peerOf(e.source));
    const destination = transportAddress(hooks.peerOf(e.destination));
    const id = branchId(branch);
    const exec = this.#control.handle({
      type: 'sip',
      message: m,
      source,
      destination,
      branch: id,
      now: this.#control.now(),
    });
    for (const a of exec.result.actions) {
      if (a.kind === 'set-header') m.setHeader(a.name, a.value);
      else if (a.kind === 'add-header') m.addHeader(a.name, a.value);
    }
    if (layer !== undefined && server !== undefined && m.status >= 200 && m.status < 300) {
      this.#othersLost(layer, server, branch);
    }
    // Only a response that opens (or re-opens) holes is held: 18x with SDP or 2xx.
    const holds = m.status >= 180 && exec.sets.length > 0;
    const prev = server === undefined ? undefined : this.#chains.get(server);
    if (!holds && prev === undefined) return undefined;
    const verdict = holds
      ? this.#control.hold(exec, { context: { callId: m.callId(), status: m.status } })
      : undefined;
    const decide = (v: HoldVerdict | undefined): HoldDecision | undefined => {
      // The pinhole step, read to decision (relay or fail), of a response that was held.
      if (v !== undefined && receivedAt !== undefined) {
        hooks.observeStep((performance.now() - receivedAt) / 1000);
      }
      let d: HoldDecision | undefined;
      if (server !== undefined && hooks.isFailed(server, m)) d = hooks.failCall(server, m, branch);
      else if (v === undefined || v.action === 'relay') return undefined;
      else d = server === undefined ? { action: 'drop' } : hooks.failCall(server, m, branch);
      if (d.action === 'replace') {
        // The caller gets this instead: the policy must know the call failed (its holes close).
        this.#control.handle({
          type: 'sip',
          message: d.message,
          ...(destination ? { destination } : {}),
        });
      }
      return d;
    };
    // One reaction when nothing of this transaction is still held (the usual case).
    const decided =
      prev === undefined
        ? (verdict ?? Promise.resolve(undefined)).then(decide)
        : Promise.all([prev, verdict]).then(([, v]) => decide(v));
    if (server !== undefined) {
      this.#chains.set(server, decided);
      void decided.then(() => {
        if (this.#chains.get(server) === decided) this.#chains.delete(server);
      });
    }
    return decided;
  }

  /** §16.7 step 10 cancels the other pending INVITE branches after a 2xx: their holes go. */
  #othersLost(
    layer: TransactionLayer,
    server: ServerTransaction,
    winner: ClientTransaction | undefined,
  ): void {
    const ctx = layer.contextOf(server);
    if (ctx === undefined) return;
    for (const b of ctx.branches) {
      if (b === winner || b.kind !== 'ict' || !b.pending) continue;
      this.#ended(b.request, 'lost', branchId(b));
    }
  }

  /** A branch's 3xx-6xx: stored by the response context, maybe never relayed. */
  #absorbed(e: TransactionEvent, hooks: ProxyHooks): void {
    const m = e.message;
    if (m === undefined || e.branch === undefined || e.transaction === undefined) return;
    if (m.status < 300 || e.retransmission || m.cseq()?.method.toUpperCase() === 'CANCEL') return;
    const source = transportAddress(hooks.peerOf(e.source));
    const id = branchId(e.branch as ClientTransaction);
    this.#control.handle({
      type: 'sip',
      message: m,
      disposition: 'absorbed',
      source,
      destination: undefined,
      branch: id,
      now: this.#control.now(),
    });
  }

  #branchFailed(e: TransactionEvent): void {
    const branch = e.branch as ClientTransaction | undefined;
    if (branch === undefined || e.outcome === undefined) return;
    if (branch.method.toUpperCase() === 'CANCEL') return;
    let outcome: TransactionOutcome;
    switch (e.outcome.kind) {
      case 'response':
        return; // seen as a response (absorbed or relayed)
      case 'timeout':
        outcome = 'timeout';
        break;
      case 'transport-error':
        outcome = 'transport-error';
        break;
      case 'aborted':
        outcome = 'cancelled';
        break;
    }
    this.#ended(branch.request, outcome, branchId(branch));
  }

  #ended(request: SipMessage, outcome: TransactionOutcome, branch: string | undefined): void {
    this.#log.debug({ callId: request.callId(), outcome }, 'transaction ended');
    this.#control.handle({
      type: 'transaction-ended',
      request,
      outcome,
      branch,
      now: this.#control.now(),
    });
  }
}

/** Adapts the proxy's Prometheus metrics to @pinhole/control's hooks. */
export function controlMetrics(metrics: ProxyMetrics): {
  pinhole(outcome: string): void;
  fcpLatency(method: string, seconds: number): void;
  hold(v: { outcome: string; waitedMs: number }): void;
} {
  return {
    pinhole: (outcome) => metrics.pinholes.inc({ outcome }),
    fcpLatency: (_method, seconds) => metrics.fcpLatency.observe(seconds),
    hold: (v) => {
      if (v.outcome === 'none') return;
      const sec = v.waitedMs / 1000;
      metrics.pinholeWait.observe(sec);
    },
  };
}
