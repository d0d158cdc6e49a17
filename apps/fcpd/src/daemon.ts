/**
 * `startFcpd(config)`: the daemon as a library call — an FCP server (from @pinhole/fcp) on the
 * chosen backend, JSON logs, and a Prometheus endpoint. No process-global side effects: no
 * signal handlers, no process.exit (cli.ts owns those), so apps/proxy can embed it.
 */
import {
  FcpServer,
  MemoryBackend,
  type BoundAddress,
  type FcpServerConfig,
  type FirewallBackend,
  type FirewallRule,
  type InstalledRule,
  type RuleMeta,
} from '@pinhole/fcp';
import { pino, type Logger } from 'pino';
import { FcpdConfigError, type FcpdConfig } from './config.js';
import {
  LATENCY_BUCKETS,
  Registry,
  registerProcessMetrics,
  serveMetrics,
  type Counter,
  type CounterChild,
  type Histogram,
  type HistogramChild,
  type MetricsEndpoint,
} from '@pinhole/metrics';
import { NftablesBackend } from './nftables-backend.js';

export interface StartOptions {
  /** A pino logger (e.g. a child of the embedding app's); default: JSON to stdout. */
  readonly logger?: Logger | undefined;
  /** Use this backend instead of building one from `config.backend` (tests, embedding). */
  readonly backend?: FirewallBackend | undefined;
}

export interface FcpdHandle {
  /** The FCP listeners actually bound (port 0 resolved), in `listen` order. */
  readonly addresses: readonly BoundAddress[];
  /** The metrics endpoint, when configured. */
  readonly metricsAddress: { readonly host: string; readonly port: number } | undefined;
  readonly server: FcpServer;
  readonly backend: FirewallBackend;
  readonly registry: Registry;
  /** Stops listening and closes the backend. Rules stay in the firewall; their timers run on. */
  close(): Promise<void>;
}

/** Times every backend call for the metrics. */
class InstrumentedBackend implements FirewallBackend {
  readonly inner: FirewallBackend;
  readonly #latency: Readonly<Record<'open' | 'install' | 'remove', HistogramChild>>;
  readonly #errors: Counter;

  constructor(inner: FirewallBackend, latency: Histogram, errors: Counter) {
    this.inner = inner;
    // One bound series per operation: no label lookup per call.
    this.#latency = {
      open: latency.labels({ op: 'open' }),
      install: latency.labels({ op: 'install' }),
      remove: latency.labels({ op: 'remove' }),
    };
    this.#errors = errors;
  }

  get name(): string {
    return this.inner.name;
  }

  get enforces(): boolean {
    return this.inner.enforces;
  }

  unsupported(rule: FirewallRule): string | undefined {
    return this.inner.unsupported(rule);
  }

  #timed<T>(op: 'open' | 'install' | 'remove', fn: () => Promise<T>): Promise<T> {
    const t0 = performance.now();
    let p: Promise<T>;
    try {
      p = fn();
    } catch (e) {
      p = Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
    const h = this.#latency[op];
    p.then(
      () => h.observe((performance.now() - t0) / 1000),
      () => {
        h.observe((performance.now() - t0) / 1000);
        this.#errors.inc({ op });
      },
    );
    return p;
  }

  open(): Promise<readonly InstalledRule[]> {
    return this.#timed('open', () => this.inner.open());
  }

  install(rule: FirewallRule, meta: RuleMeta): Promise<void> {
    return this.#timed('install', () => this.inner.install(rule, meta));
  }

  remove(rule: FirewallRule): Promise<void> {
    return this.#timed('remove', () => this.inner.remove(rule));
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

const DEFAULT_LISTEN = [{ transport: 'tcp', host: '127.0.0.1', port: 12345 }] as const;

/** The FCP server part of the daemon's configuration. */
export function serverConfigOf(config: FcpdConfig): FcpServerConfig {
  const mediaPorts = config.mediaPorts ?? [1024, 65535];
  return {
    listen: config.listen ?? DEFAULT_LISTEN,
    allowClients: config.allowClients,
    policy: {
      ...config.policy,
      protectedNetworks: config.policy?.protectedNetworks ?? config.protected ?? [],
      allowedPorts: config.policy?.allowedPorts ?? [mediaPorts],
    },
    limits: config.limits,
    nat: config.nat,
    internalNetworks: config.internalNetworks,
    notMyRoute: config.notMyRoute,
    responseStyle: config.responseStyle,
    queryScope: config.queryScope,
    banner: config.banner,
  };
}

function buildBackend(config: FcpdConfig, log: Logger, registry: Registry): FirewallBackend {
  const kind = config.backend ?? 'nftables';
  switch (kind) {
    case 'memory':
      return new MemoryBackend();
    case 'nftables': {
      const tx = registry.histogram(
        'fcpd_nft_transaction_seconds',
        'Duration of one nftables transaction through the nft channel',
      );
      const txOps = registry.counter(
        'fcpd_nft_operations_total',
        'Rule operations sent to nftables, by transaction outcome',
      );
      const txCount = registry.counter('fcpd_nft_transactions_total', 'nftables transactions');
      return new NftablesBackend({
        table: config.nft?.table,
        mode: config.nft?.mode,
        hooks: config.nft?.hooks,
        mark: config.nft?.mark,
        nftCommand: config.nft?.command,
        splitBursts: config.nft?.splitBursts,
        channel: config.nft?.channel,
        helperCommand: config.nft?.helperCommand,
        shards: config.nft?.shards,
        shard: config.nft?.shard,
        protected: config.protected ?? [],
        mediaPorts: config.mediaPorts,
        logger: log.child({ component: 'nftables' }),
        onTransaction: (ops, ms, ok) => {
          tx.observe(ms / 1000);
          txOps.inc({ outcome: ok ? 'ok' : 'failed' }, ops);
          txCount.inc({ outcome: ok ? 'ok' : 'failed' });
        },
      });
    }
  }
}

/**
 * Starts the daemon: opens the backend (adopting rules already in the firewall), binds the FCP
 * listeners and the metrics endpoint. Throws `FcpdConfigError` / `FcpError` (code
 * `FCP_ERR_CONFIG`, with `field`) on bad configuration.
 */
export async function startFcpd(
  config: FcpdConfig,
  options: StartOptions = {},
): Promise<FcpdHandle> {
  const log =
    options.logger ?? pino({ level: config.logLevel ?? 'info', base: { app: 'pinhole-fcpd' } });
  if ((config.protected ?? []).length === 0 && config.policy?.protectedNetworks === undefined) {
    if ((config.backend ?? 'nftables') !== 'memory') {
      throw new FcpdConfigError('protected', 'name at least one protected network (--protected)');
    }
    // The memory backend is a demo: without --protected it accepts holes toward anything.
    log.warn(
      {},
      'no --protected network given: the memory backend accepts holes toward any address',
    );
    config = { ...config, protected: ['0.0.0.0/0', '::/0'] };
  }
  const registry = new Registry();
  const requests = registry.counter(
    'fcpd_requests_total',
    'FCP requests answered, by method and code',
    ['method', 'code'],
  );
  const reqLatency = registry.histogram(
    'fcpd_request_duration_seconds',
    'Time from a complete request to its answer, by method',
    ['method'],
    LATENCY_BUCKETS,
  );
  const backendLatency = registry.histogram(
    'fcpd_backend_duration_seconds',
    'Duration of firewall backend calls, by operation',
    ['op'],
    LATENCY_BUCKETS,
  );
  const backendErrors = registry.counter(
    'fcpd_backend_errors_total',
    'Failed backend calls, by operation',
    ['op'],
  );
  const ruleEvents = registry.counter(
    'fcpd_rule_events_total',
    'Rule life-cycle events, by event',
    ['event'],
  );
  const refusals = registry.counter(
    'fcpd_refusals_total',
    'Requests refused for safety, by reason',
  );

  const backend = new InstrumentedBackend(
    options.backend ?? buildBackend(config, log, registry),
    backendLatency,
    backendErrors,
  );
  const server = new FcpServer(serverConfigOf(config), backend, {
    logger: log.child({ component: 'fcp' }),
  });
  registry.gauge('fcpd_live_rules', 'Rules currently installed', () => server.liveRules);
  registry.gauge('fcpd_connections', 'Open FCP connections', () => server.stats().connections);
  registry.gauge(
    'fcpd_nat_reservations',
    'Live QUERYNAT reservations',
    () => server.stats().natReservations,
  );
  registry.gauge('fcpd_backend_enforces', '1 if the backend enforces rules (0 for memory)', () =>
    backend.enforces ? 1 : 0,
  );
  registerProcessMetrics(registry);

  const rlog = log.child({ component: 'rules' });
  // Bound series per method and per (method, code), made on first use: the request event fires
  // for every request, so no label object or key string is built per request.
  const byMethod = new Map<string, { latency: HistogramChild; codes: Map<number, CounterChild> }>();
  server.on('request', (e) => {
    let m = byMethod.get(e.method);
    if (m === undefined) {
      m = { latency: reqLatency.labels({ method: e.method }), codes: new Map() };
      byMethod.set(e.method, m);
    }
    let c = m.codes.get(e.status);
    if (c === undefined) {
      c = requests.labels({ method: e.method, code: String(e.status) });
      m.codes.set(e.status, c);
    }
    c.inc();
    m.latency.observe(e.latencyMs / 1000);
  });
  for (const ev of [
    'rule-added',
    'rule-refreshed',
    'rule-changed',
    'rule-released',
    'rule-expired',
    'rule-adopted',
  ] as const) {
    const event = ev.slice(5);
    const counted = ruleEvents.labels({ event });
    server.on(ev, (info) => {
      counted.inc();
      // No log object is built per rule event unless debug logging is on.
      if (rlog.isLevelEnabled('debug')) {
        rlog.debug({ event, key: info.key, owner: info.owner, timer: info.timerSec }, ev);
      }
    });
  }
  // The server core logs policy refusals and backend failures itself.
  server.on('policy-refused', () => refusals.inc({ reason: 'policy' }));
  server.on('quota-exceeded', (e) => {
    refusals.inc({ reason: 'quota' });
    rlog.warn({ client: e.client.address, limit: e.limit }, 'client rule quota exceeded');
  });
  server.on('rate-limited', (e) => {
    refusals.inc({ reason: 'rate' });
    rlog.warn({ client: e.client.address }, 'client rate-limited');
  });
  server.on('unauthorized', (e) => {
    refusals.inc({ reason: 'acl' });
    rlog.warn({ client: e.address, transport: e.transport }, 'client not in the ACL');
  });
  server.on('protocol-error', (e) => {
    refusals.inc({ reason: 'protocol' });
    rlog.warn({ client: e.client.address, detail: e.detail }, 'connection closed: protocol error');
  });
  server.on('connection-refused', (e) => {
    refusals.inc({ reason: 'connections' });
    rlog.warn({ client: e.address, reason: e.reason }, 'connection refused');
  });

  if (!backend.enforces) {
    log.warn(
      { backend: backend.name },
      `THE ${backend.name.toUpperCase()} BACKEND ENFORCES NOTHING: FCP requests are answered but no firewall is programmed`,
    );
  }
  await server.start();
  let metricsServer: MetricsEndpoint | undefined;
  let metricsAddress: FcpdHandle['metricsAddress'];
  if (config.metrics) {
    try {
      const m = await serveMetrics(registry, config.metrics.host, config.metrics.port, {
        name: 'pinhole-fcpd',
      });
      metricsServer = m;
      metricsAddress = { host: m.host, port: m.port };
    } catch (e) {
      await server.stop();
      throw e;
    }
  }
  const addresses = server.addresses();
  log.info(
    {
      backend: backend.name,
      enforces: backend.enforces,
      listen: addresses.map((a) => `${a.transport}:${a.host}:${a.port}`),
      metrics: metricsAddress ? `${metricsAddress.host}:${metricsAddress.port}` : undefined,
      liveRules: server.liveRules,
    },
    'pinhole-fcpd started',
  );
  let closing: Promise<void> | undefined;
  return {
    addresses,
    metricsAddress,
    server,
    backend: backend.inner,
    registry,
    close: () => {
      closing ??= (async () => {
        const live = server.liveRules;
        await server.stop();
        if (metricsServer) await metricsServer.close();
        log.info({ liveRules: live }, 'pinhole-fcpd stopped; rules stay in the firewall');
      })();
      return closing;
    },
  };
}
