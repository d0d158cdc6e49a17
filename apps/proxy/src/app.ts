/**
 * The whole program in one process: the policy, the FCP client (to the configured servers, or to
 * an fcpd embedded in this process), the firewall module and the proxy. Used by the CLI (and by
 * each worker when `workers` > 1) and by tests.
 */
import { execFileSync } from 'node:child_process';
import { FcpClient, type ServerEndpoint } from '@pinhole/fcp';
import { EMBEDDED_LIMITS, localEndpoint } from './embedded.js';
import { NftablesBackend, startFcpd, type FcpdHandle } from '@pinhole/fcpd';
import { warmUp } from './warmup.js';
import { Policy, PolicyError, type PolicyConfigInput } from '@pinhole/policy';
import type { Logger as PinoLogger } from 'pino';
import type { ProxyConfig } from './config.js';
import { ConfigError } from './errors.js';
import { PinholeController } from '@pinhole/control';
import { controlMetrics, Firewall } from './firewall.js';
import { ProxyMetrics } from './metrics.js';
import { startProxy, type RunningProxy } from './proxy.js';
import type { RegisterRequest } from './registrar.js';

/** Networks protected when none is configured: the private ranges (RFC 1918, RFC 4193). */
export const DEFAULT_PROTECTED: readonly string[] = [
  '10.0.0.0/8',
  '172.16.0.0/12',
  '192.168.0.0/16',
  'fc00::/7',
];

export interface AppHandle {
  readonly proxy: RunningProxy;
  readonly firewall: Firewall;
  readonly fcp: FcpClient;
  /** The embedded daemon, when no FCP server was configured. */
  readonly fcpd: FcpdHandle | undefined;
  /** `nftables` or `memory` for an embedded daemon; `remote` otherwise. */
  readonly backend: string;
  reload(config: ProxyConfig): Promise<void>;
  stop(): Promise<void>;
}

export interface AppOptions {
  readonly config: ProxyConfig;
  readonly logger: PinoLogger;
  /** Force the embedded daemon's backend (tests); default: nftables when root and nft exist. */
  readonly embeddedBackend?: 'nftables' | 'memory';
  /**
   * Workers with embedded fcpds: this worker's shard of the nftables table (`index` of
   * `count`); the primary has set the table up for `count` shards (`prepareEmbeddedTable`).
   */
  readonly embeddedShard?: { readonly index: number; readonly count: number };
  /** Workers: the FCP servers given to the primary (`--fcp`; none: embed one), and the worker identity. */
  readonly fcpServers?: readonly { host: string; port: number }[];
  readonly worker?: {
    readonly index: number;
    readonly count: number;
    readonly token: string;
    readonly onRegister: (req: RegisterRequest) => void;
  };
}

function nftUsable(): boolean {
  if (process.getuid?.() !== 0) return false;
  try {
    execFileSync('nft', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The policy configuration from the proxy's: its own fields win over `policy`. */
export function policyInput(
  config: ProxyConfig,
  firewallAddresses: readonly string[],
): PolicyConfigInput {
  const prot = protectedNetworks(config);
  const extra = config.policy as Partial<PolicyConfigInput>;
  return {
    ...extra,
    protectedNetworks: prot,
    firewallAddresses: [...new Set([...(extra.firewallAddresses ?? []), ...firewallAddresses])],
    source: config.sourcePolicy,
    ...(extra.maxCallLifetimeSec === undefined
      ? { maxCallLifetimeSec: config.maxCallSeconds }
      : {}),
  };
}

export function buildPolicy(config: ProxyConfig, firewallAddresses: readonly string[]): Policy {
  try {
    return new Policy(policyInput(config, firewallAddresses));
  } catch (err) {
    if (err instanceof PolicyError) {
      const first = err.issues[0];
      throw new ConfigError(
        `policy${first?.field ? `.${first.field}` : ''}`,
        first?.message ?? err.message,
      );
    }
    throw err;
  }
}

/** The protected networks (policy and embedded fcpd): `--protected`, else the private ranges. */
function protectedNetworks(config: ProxyConfig): readonly string[] {
  return config.protected.length > 0 ? config.protected : DEFAULT_PROTECTED;
}

/** The embedded fcpd's backend: nftables when running as root with `nft`, else memory. */
export function embeddedBackendName(): 'nftables' | 'memory' {
  return nftUsable() ? 'nftables' : 'memory';
}

/**
 * Workers (`workers` > 1) each embed an fcpd writing its own shard of the one nftables table.
 * The primary sets the table up for all of them before it forks them (a worker's setup then
 * finds every chain and set in place): a one-shot backend that lists, sets up and closes,
 * adopting nothing (its shard-0 rules are the first worker's to adopt).
 */
export async function prepareEmbeddedTable(
  config: ProxyConfig,
  logger: PinoLogger,
  shards: number,
): Promise<void> {
  const b = new NftablesBackend({
    protected: protectedNetworks(config),
    shards,
    channel: 'cli',
    logger: logger.child({ component: 'nftables' }),
  });
  try {
    await b.open();
  } finally {
    await b.close();
  }
}

/** What an embedded fcpd's operator must know: defaulted protected networks, no enforcement. */
export function warnEmbedded(
  config: ProxyConfig,
  logger: PinoLogger,
  backend: 'nftables' | 'memory',
): void {
  if (config.protected.length === 0) {
    logger.warn(
      { protected: DEFAULT_PROTECTED },
      'no --protected networks given: protecting the private address ranges',
    );
  }
  if (backend === 'memory') {
    logger.warn(
      'embedded fcpd uses the MEMORY backend: pinholes are tracked but NOTHING is enforced ' +
        '(run as root with nft installed for the nftables backend, or give --fcp)',
    );
  }
}

/** Starts the embedded fcpd (no `--fcp` given): nftables when possible, else memory. */
export async function startEmbeddedFcpd(
  config: ProxyConfig,
  logger: PinoLogger,
  forced?: 'nftables' | 'memory',
  shard?: { readonly index: number; readonly count: number },
): Promise<{
  fcpd: FcpdHandle;
  backend: string;
  /** Its loopback TCP listener (for `pinhole-fcpctl`); none in a worker (`shard` given). */
  server: { host: string; port: number } | undefined;
}> {
  const backend = forced ?? embeddedBackendName();
  const prot = protectedNetworks(config);
  // With several workers the primary has said these once.
  if (shard === undefined) warnEmbedded(config, logger, backend);
  const fcpd = await startFcpd(
    {
      // A worker's fcpd has no socket: a listen(0) in a cluster worker is the primary's shared
      // port, which would hand each fcpctl connection to a random worker's shard.
      listen: shard === undefined ? [{ transport: 'tcp', host: '127.0.0.1', port: 0 }] : [],
      backend: backend === 'nftables' ? 'nftables' : 'memory',
      protected: prot,
      logLevel: config.logLevel,
      limits: EMBEDDED_LIMITS,
      ...(shard !== undefined && backend === 'nftables'
        ? { nft: { shards: shard.count, shard: shard.index } }
        : {}),
    },
    { logger: logger.child({ component: 'fcpd' }) },
  );
  const a = fcpd.addresses[0];
  logger.info(
    {
      fcp: a ? `tcp:${a.host}:${a.port}` : 'in-process link only',
      backend,
      ...(shard ? { shard: shard.index } : {}),
    },
    'embedded fcpd started',
  );
  return { fcpd, backend, server: a ? { host: a.host, port: a.port } : undefined };
}

export async function startApp(opts: AppOptions): Promise<AppHandle> {
  const { config, logger } = opts;
  let fcpd: FcpdHandle | undefined;
  let backend = 'remote';
  let servers: readonly ServerEndpoint[] =
    opts.fcpServers ?? config.fcp.map((s) => ({ host: s.host, port: s.port }));
  if (servers.length === 0) {
    const e = await startEmbeddedFcpd(config, logger, opts.embeddedBackend, opts.embeddedShard);
    fcpd = e.fcpd;
    backend = e.backend;
    // The embedded fcpd is in this process: talk to it over a local link, not loopback TCP, so
    // a SET is answered in the turn that sent it (no kernel round trip, no event-loop poll
    // between the 200 and its relay). With several workers each has its own (cli.ts).
    const server = e.fcpd.server;
    servers = [localEndpoint('embedded', server)];
  }
  const fcp = new FcpClient({ servers, keepAlive: false });
  const fcpLog = logger.child({ component: 'fcp-client' });
  fcp.on('disconnect', (e) =>
    fcpLog.warn({ server: e.server, err: e.error?.message }, 'FCP server disconnected'),
  );
  fcp.on('connect', (e) =>
    fcpLog.info({ server: e.server, reconnected: e.reconnected }, 'FCP server connected'),
  );
  fcp.on('state-lost', (e) => fcpLog.warn(e, 'FCP server lost its rules; re-installing'));
  try {
    await fcp.ready(5000);
  } catch (err) {
    fcpLog.warn({ err: (err as Error).message }, 'FCP server not reachable yet; will retry');
  }

  const holder: { proxy: RunningProxy | undefined } = { proxy: undefined };
  const metrics = new ProxyMetrics({
    transactions: () => holder.proxy?.core.transactionCount ?? 0,
    registrations: () => holder.proxy?.core.registrar.size ?? 0,
    overloadShare: () => holder.proxy?.overload.ratio ?? 0,
  });
  // The embedded fcpd has no metrics endpoint of its own: its fcpd_* series (requests, backend
  // and nftables transaction latency, refusals, rules) are served with the proxy's. Its process
  // series would repeat the proxy's, so they are left out. startFcpd makes every series it has
  // before it returns, so one pass finds them all.
  if (fcpd) {
    for (const m of fcpd.registry.metrics())
      if (m.name.startsWith('fcpd_')) metrics.registry.register(m);
  }
  const addrs = config.listen.map((l) => l.host).filter((h) => h !== '0.0.0.0' && h !== '::');
  if (config.advertise) addrs.push(config.advertise);
  const policy = buildPolicy(config, addrs);
  const proxyLog = logger.child({ component: 'proxy' });
  const firewallLog = logger.child({ component: 'firewall' });
  const control = new PinholeController({
    policy,
    fcp,
    logger: firewallLog,
    metrics: controlMetrics(metrics),
    failMode: config.failMode,
    deadlineMs: config.pinholeDeadlineMs,
  });
  const firewall = new Firewall({ control, logger: firewallLog });
  if (config.warmup) {
    // Before listening: nothing is sent, nothing is counted (see warmup.ts).
    const w = await warmUp({ config, policy: policyInput(config, addrs) });
    proxyLog.info(
      {
        calls: w.calls,
        messages: w.messages,
        fcpRequests: w.fcpRequests,
        ms: Math.round(w.ms),
        cpuMs: Math.round(w.cpuMs),
      },
      'warm-up done',
    );
  }
  const proxy = await startProxy({
    config,
    logger: proxyLog,
    gate: firewall,
    metrics,
    ...(opts.worker ? { worker: opts.worker } : {}),
  });
  holder.proxy = proxy;
  let current = config;
  return {
    proxy,
    firewall,
    fcp,
    fcpd,
    backend,
    async reload(next: ProxyConfig): Promise<void> {
      // Validate everything before changing anything.
      const nextPolicy = policyInput(next, addrs);
      buildPolicy(next, addrs);
      await proxy.reload(next);
      firewall.reconfigure({ failMode: next.failMode, deadlineMs: next.pinholeDeadlineMs });
      // The policy settings too: live calls are re-decided under them (holes the new rules
      // forbid close, newly allowed ones open).
      const exec = control.reconfigurePolicy(nextPolicy);
      if (exec.result.intents.length > 0) {
        logger.info(
          { intents: exec.result.intents.length },
          'policy reconfigured: live calls re-decided',
        );
      }
      current = next;
      logger.info({ routes: current.routes.length }, 'configuration reloaded');
    },
    async stop(): Promise<void> {
      await proxy.stop();
      await firewall.close();
      fcp.close();
      if (fcpd) await fcpd.close();
    },
  };
}
