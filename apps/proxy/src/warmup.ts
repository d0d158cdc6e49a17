/**
 * Start-up warm-up: before the proxy listens, synthetic calls of the bench flow (INVITE with SDP,
 * 100, 180, 200 with SDP, ACK, BYE, 200) run through the same code a live call runs through, so
 * that V8 has compiled and optimised it before the first real call arrives: a private
 * `ProxyCore` (parse, validate, the `@pinhole/transaction` layer and its server and client
 * transactions, routing, Via and Record-Route handling, serialisation), a private firewall
 * module and `@pinhole/control` controller with a private `@pinhole/policy` instance, holds of
 * the 200 until its SETs are answered, and FCP: every SET and RELEASE goes through a private
 * `FcpClient` over the same in-process link the live client uses, to a private embedded fcpd
 * (`startFcpd` with no listener, on a memory backend: the request handling, rule table and
 * backend wrapper the embedded fcpd runs, short of its nftables backend; `WarmupFcp`).
 *
 * Nothing leaves the process: the core's transport is the scripted caller and callee of
 * scripted-calls.ts, the FCP client's only server is the private fcpd (no socket, no request to
 * the real fcpd, no hole: it binds nothing and keeps its rules in memory), and the core, the
 * firewall module, the controller and the private fcpd count into private registries and log to
 * silent loggers; all of it is closed and dropped at the end, its timers cleared. The synthetic
 * addresses are from 198.18.0.0/15 (RFC 2544 benchmarking): the callee's side, 198.19.0.0/16,
 * plays the protected network.
 *
 * Bounded: at most `maxCalls` calls are started; none once the process has used `budgetMs` of
 * CPU time since the warm-up began (all its threads, V8's compiler threads included), nor after
 * four times `budgetMs` of wall time; the calls in flight then get at most a quarter of the
 * budget (at least 50 ms) of wall time to finish before everything is closed. A CPU-time budget
 * does the same amount of warming on a busy machine as on an idle one (where the cold start
 * would hurt more), and the wall-time cap still bounds the start-up. The calls are paced in
 * small batches with a turn of the event loop between them, so that the code V8 optimises in the
 * background is installed during the warm-up.
 */
import { FcpClient } from '@pinhole/fcp';
import { startFcpd, type FcpdHandle } from '@pinhole/fcpd';
import { PinholeController } from '@pinhole/control';
import { pino } from 'pino';
import { EMBEDDED_LIMITS, localEndpoint } from './embedded.js';
import { Policy, type PolicyConfigInput } from '@pinhole/policy';
import type { ProxyConfig } from './config.js';
import { controlMetrics, Firewall } from './firewall.js';
import { ProxyMetrics } from './metrics.js';
import { ProxyCore, type Logger } from './proxy-core.js';
import { ScriptedCalls } from './scripted-calls.js';
import { makeListener, SOCKET_BUFFER_BYTES, type Listener, type Peer } from './transport.js';

export interface WarmupOptions {
  /** The live configuration: the core and the firewall module run with its settings. */
  readonly config: ProxyConfig;
  /** Calls started at most. Default 20,000. */
  readonly maxCalls?: number;
  /**
   * No call is started once the process has used this many milliseconds of CPU time, or after
   * four times as many of wall time. Default `config.warmupMs`.
   */
  readonly budgetMs?: number;
  /** Policy settings to decide under (the live ones); networks are replaced by synthetic ones. */
  readonly policy?: PolicyConfigInput;
}

export interface WarmupResult {
  /** Calls that completed (BYE answered). */
  readonly calls: number;
  /** Datagrams the private core received and sent. */
  readonly messages: number;
  /** FCP requests the private fcpd answered. */
  readonly fcpRequests: number;
  /** Wall time, milliseconds. */
  readonly ms: number;
  /** CPU time of the process (all threads) meanwhile, milliseconds. */
  readonly cpuMs: number;
}

const PROXY = '198.18.0.1';
/** Made as the transport makes its listeners (one hidden class: see `makeListener`). */
const LISTENER: Listener = makeListener('udp', PROXY, 5060, 4, PROXY, 0, SOCKET_BUFFER_BYTES);
const CALLER: Peer = { transport: 'udp', address: '198.18.0.10', port: 5061 };
const CALLEE: Peer = { transport: 'udp', address: '198.19.0.20', port: 5060 };
/** Calls started per event-loop turn, and the most in flight at once. */
const BATCH = 16;
const MAX_PENDING = 256;
/** The wall-time cap, as a multiple of the CPU-time budget. */
const WALL_FACTOR = 4;

/** A logger that logs nothing (the warm-up's private core; the benches). */
export const silent: Logger = {
  isLevelEnabled: () => false,
  info: () => undefined,
  warn: () => undefined,
  debug: () => undefined,
  error: () => undefined,
};

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

const WARM_PROTECTED = ['198.19.0.0/16'];

/**
 * The warm-up's FCP path: the live one short of the firewall. A private embedded fcpd
 * (`startFcpd` as the proxy starts its own: the same request handling, rule table, backend
 * wrapper and metrics, here on a `MemoryBackend`, with no listener and a private registry) and
 * an `FcpClient` talking to it over the same in-process link (`connectLocal`, Node streams), so
 * the client's encoder, pipelining and decoder, the link and the server are compiled for the
 * live calls. Nothing reaches the firewall, no socket is opened, and `close()` ends both.
 */
export class WarmupFcp {
  /** Requests answered. */
  requests = 0;
  readonly client: FcpClient;
  readonly #fcpd: FcpdHandle;

  private constructor(fcpd: FcpdHandle) {
    this.#fcpd = fcpd;
    this.client = new FcpClient({
      servers: [localEndpoint('warm-up', fcpd.server)],
      keepAlive: false,
    });
    fcpd.server.on('request', () => this.requests++);
  }

  static async start(protectedNetworks: readonly string[]): Promise<WarmupFcp> {
    const fcpd = await startFcpd(
      {
        listen: [],
        backend: 'memory',
        protected: [...protectedNetworks],
        limits: EMBEDDED_LIMITS,
      },
      // Silent, and no stream of its own to stdout.
      { logger: pino({ level: 'silent' }, { write: () => undefined }) },
    );
    const w = new WarmupFcp(fcpd);
    try {
      await w.client.ready(5000);
    } catch (err) {
      await w.close();
      throw err;
    }
    return w;
  }

  async close(): Promise<void> {
    this.client.close();
    await this.#fcpd.close();
  }
}

/**
 * Runs synthetic calls through a private proxy core, firewall module and controller (see the
 * module comment). Never throws: a failure only ends the warm-up early.
 */
export async function warmUp(opts: WarmupOptions): Promise<WarmupResult> {
  const maxCalls = opts.maxCalls ?? 20_000;
  const budgetMs = opts.budgetMs ?? opts.config.warmupMs;
  const start = performance.now();
  const cpu0 = process.cpuUsage();
  const cpuMs = (): number => {
    const u = process.cpuUsage(cpu0);
    return (u.user + u.system) / 1000;
  };
  const calls = new ScriptedCalls({
    listener: LISTENER,
    caller: CALLER,
    callee: CALLEE,
    calleeMedia: CALLEE.address,
    holdMs: 0,
    tag: 'warm-up',
  });
  let fcp: WarmupFcp | undefined;
  let core: ProxyCore | undefined;
  let control: PinholeController | undefined;
  try {
    fcp = await WarmupFcp.start(WARM_PROTECTED);
    const policy = new Policy({
      ...opts.policy,
      protectedNetworks: WARM_PROTECTED,
      firewallAddresses: [PROXY],
    });
    // Private metrics: the live registry never sees a synthetic call.
    const metrics = new ProxyMetrics({ transactions: () => 0, registrations: () => 0 });
    control = new PinholeController({
      policy,
      fcp: fcp.client,
      logger: silent,
      metrics: controlMetrics(metrics),
      failMode: opts.config.failMode,
      deadlineMs: opts.config.pinholeDeadlineMs,
    });
    const firewall = new Firewall({ control, logger: silent });
    const c = new ProxyCore({
      config: {
        ...opts.config,
        listen: [{ transport: 'udp', host: PROXY, port: 5060, family: 4 }],
        advertise: undefined,
        routes: [{ kind: 'default', match: '', target: `sip:${CALLEE.address}:${CALLEE.port}` }],
        domains: [],
      },
      transport: calls.transport,
      metrics,
      logger: silent,
      gate: firewall,
    });
    core = c;
    calls.attach((inb) => c.receive(inb));
    let started = 0;
    while (
      started < maxCalls &&
      cpuMs() < budgetMs &&
      performance.now() - start < WALL_FACTOR * budgetMs
    ) {
      const n = Math.min(BATCH, MAX_PENDING - calls.pending, maxCalls - started);
      for (let i = 0; i < n; i++) calls.start(started++);
      await turn();
    }
    // The calls in flight finish (each needs a few turns), within a bounded drain.
    const drainUntil = performance.now() + Math.max(50, budgetMs / 4);
    while (calls.pending > 0 && performance.now() < drainUntil) await turn();
  } catch {
    // A warm-up problem must never stop the proxy from starting.
  } finally {
    calls.close();
    core?.close();
    // Holds and FCP requests in flight settle on the private fcpd's next turns; the sweep stops.
    await control?.close().catch(() => undefined);
    await fcp?.close().catch(() => undefined);
  }
  return {
    calls: calls.completed,
    messages: calls.sent + calls.received,
    fcpRequests: fcp?.requests ?? 0,
    ms: performance.now() - start,
    cpuMs: cpuMs(),
  };
}
