#!/usr/bin/env node
/**
 * `pinhole-proxy`: the SIP proxy that opens and closes firewall pinholes. With `--workers N` > 1
 * the primary process forks N worker processes that run the proxy on shared sockets (see
 * dispatch.ts and README.md, "Workers"); when no `--fcp` is given, each worker embeds its own
 * fcpd, writing its own shard of the one nftables table the primary sets up.
 */
import cluster from 'node:cluster';
import { randomBytes } from 'node:crypto';
import { pino, type Logger } from 'pino';
import {
  embeddedBackendName,
  prepareEmbeddedTable,
  startApp,
  warnEmbedded,
  type AppHandle,
} from './app.js';
import { parseArgs, usage, type ProxyConfig } from './config.js';
import type { RegisterRequest } from './registrar.js';

type ToWorker =
  | { readonly t: 'peers'; readonly ports: readonly number[] }
  | { readonly t: 'register'; readonly req: RegisterRequest }
  | { readonly t: 'reload'; readonly argv: readonly string[] };
type FromWorker =
  | { readonly t: 'ready'; readonly port: number | undefined; readonly listen: readonly string[] }
  | { readonly t: 'register'; readonly req: RegisterRequest };

function describeListeners(app: AppHandle): string[] {
  return app.proxy.listeners.map(
    (l) => `${l.transport}:${l.host.includes(':') ? `[${l.host}]` : l.host}:${l.port}`,
  );
}

function loadConfig(argv: readonly string[], log: Logger | undefined): ProxyConfig | undefined {
  try {
    const opts = parseArgs(argv);
    if (opts.help) {
      process.stdout.write(usage());
      process.exit(0);
    }
    return opts.config;
  } catch (err) {
    const e = err as { code?: string; message: string };
    if (log) log.error({ err: e.message }, 'invalid configuration');
    else process.stderr.write(`pinhole-proxy: ${e.message}\n`);
    return undefined;
  }
}

async function single(argv: readonly string[]): Promise<void> {
  const config = loadConfig(argv, undefined);
  if (!config) process.exit(2);
  const log = pino({ level: config.logLevel, base: { app: 'pinhole-proxy' } });
  let app: AppHandle;
  try {
    app = await startApp({ config, logger: log });
  } catch (err) {
    log.fatal(
      { err: (err as Error).message, code: (err as { code?: string }).code },
      'start failed',
    );
    process.exit(1);
  }
  const where = describeListeners(app);
  log.info(
    { listen: where, fcp: app.backend, metrics: app.proxy.metricsPort },
    `pinhole-proxy listening on ${where.join(', ')}`,
  );
  process.stderr.write(
    `pinhole-proxy: listening on ${where.join(', ')}; firewall: ${app.backend === 'remote' ? 'remote FCP' : `embedded fcpd (${app.backend} backend)`}\n`,
  );
  let stopping = false;
  const stop = (sig: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal: sig }, 'shutting down');
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    void app.stop().then(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    const next = loadConfig(argv, log);
    if (!next) return;
    app
      .reload(next)
      .catch((err: unknown) => log.error({ err: (err as Error).message }, 'reload failed'));
  });
}

async function primary(argv: readonly string[], config: ProxyConfig): Promise<void> {
  const log = pino({ level: config.logLevel, base: { app: 'pinhole-proxy', role: 'primary' } });
  const fcpEnv = config.fcp.map((s) => `${s.host}:${s.port}`).join(',');
  const n = config.workers;
  // No --fcp: every worker embeds an fcpd (its SETs answered in its own process, as with one
  // worker), each writing its own shard of the table, set up here once for all of them.
  let embedded: 'nftables' | 'memory' | undefined;
  if (config.fcp.length === 0) {
    embedded = embeddedBackendName();
    warnEmbedded(config, log, embedded);
    if (embedded === 'nftables') {
      try {
        await prepareEmbeddedTable(config, log, n);
      } catch (err) {
        log.fatal({ err: (err as Error).message }, 'start failed: the nftables table');
        process.exit(1);
      }
    }
  }
  const token = randomBytes(12).toString('hex');
  const ports: (number | undefined)[] = new Array<number | undefined>(n).fill(undefined);
  const workers = [...Array(n).keys()].map((i) =>
    cluster.fork({
      PINHOLE_WORKER: String(i),
      PINHOLE_WORKERS: String(n),
      PINHOLE_TOKEN: token,
      PINHOLE_FCP: fcpEnv,
      PINHOLE_EMBEDDED: embedded ?? '',
    }),
  );
  let stopping = false;
  workers.forEach((w, i) => {
    w.on('message', (m: FromWorker) => {
      if (m.t === 'ready') {
        ports[i] = m.port;
        if (ports.every((p) => p !== undefined)) {
          for (const x of workers) x.send({ t: 'peers', ports } satisfies ToWorker);
          log.info(
            { listen: m.listen, workers: n },
            `pinhole-proxy listening on ${m.listen.join(', ')} with ${n} workers`,
          );
          const fw =
            embedded === undefined
              ? 'remote FCP'
              : `an embedded fcpd in each worker (${embedded} backend)`;
          process.stderr.write(
            `pinhole-proxy: listening on ${m.listen.join(', ')} with ${n} workers; firewall: ${fw}\n`,
          );
        }
      } else if (m.t === 'register') {
        workers.forEach((x, j) => {
          if (j !== i) x.send({ t: 'register', req: m.req } satisfies ToWorker);
        });
      }
    });
    w.on('exit', (code) => {
      if (!stopping) {
        log.error({ worker: i, code }, 'worker died; shutting down');
        stop('worker-exit', 1);
      }
    });
  });
  // A worker that died (a failed start, a crash) makes the whole proxy exit non-zero.
  const stop = (sig: string, exitCode = 0): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal: sig }, 'shutting down workers');
    for (const w of workers) w.process.kill('SIGTERM');
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    void Promise.all(
      workers.map((w) => new Promise((r) => (w.isDead() ? r(0) : w.once('exit', r)))),
    ).then(() => process.exit(exitCode));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    if (!loadConfig(argv, log)) return;
    for (const w of workers) w.send({ t: 'reload', argv } satisfies ToWorker);
  });
}

async function worker(argv: readonly string[], config: ProxyConfig): Promise<void> {
  const index = Number(process.env.PINHOLE_WORKER);
  const count = Number(process.env.PINHOLE_WORKERS);
  const log = pino({ level: config.logLevel, base: { app: 'pinhole-proxy', worker: index } });
  const fcpServers = (process.env.PINHOLE_FCP ?? '')
    .split(',')
    .filter(Boolean)
    .map((s) => {
      const i = s.lastIndexOf(':');
      return { host: s.slice(0, i), port: Number(s.slice(i + 1)) };
    });
  const send = (m: FromWorker): void => {
    process.send?.(m);
  };
  // Metrics: one endpoint per worker, on the configured port plus the worker index.
  const cfg: ProxyConfig = config.metrics
    ? {
        ...config,
        metrics: {
          host: config.metrics.host,
          port: config.metrics.port === 0 ? 0 : config.metrics.port + index,
        },
      }
    : config;
  const embedded = process.env.PINHOLE_EMBEDDED;
  let app: AppHandle;
  try {
    app = await startApp({
      config: cfg,
      logger: log,
      fcpServers,
      ...(embedded === 'nftables' || embedded === 'memory'
        ? { embeddedBackend: embedded, embeddedShard: { index, count } }
        : {}),
      worker: {
        index,
        count,
        token: process.env.PINHOLE_TOKEN ?? '',
        onRegister: (req) => send({ t: 'register', req }),
      },
    });
  } catch (err) {
    // The primary sees the exit and stops the other workers.
    log.fatal(
      { err: (err as Error).message, code: (err as { code?: string }).code },
      'start failed',
    );
    process.exit(1);
  }
  process.on('message', (m: ToWorker) => {
    switch (m.t) {
      case 'peers':
        app.proxy.dispatch?.setPeers(m.ports);
        break;
      case 'register':
        app.proxy.core.registrar.register(m.req);
        break;
      case 'reload': {
        const next = loadConfig(m.argv, log);
        if (next) {
          app
            .reload(next)
            .catch((err: unknown) => log.error({ err: (err as Error).message }, 'reload failed'));
        }
        break;
      }
    }
  });
  process.on('SIGTERM', () => {
    void app.stop().then(() => process.exit(0));
  });
  process.on('SIGINT', () => undefined);
  process.on('SIGHUP', () => undefined);
  send({ t: 'ready', port: app.proxy.dispatchPort, listen: describeListeners(app) });
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (cluster.isWorker) {
    const config = loadConfig(argv, undefined);
    if (!config) process.exit(2);
    await worker(argv, config);
    return;
  }
  const config = loadConfig(argv, undefined);
  if (!config) process.exit(2);
  if (config.workers > 1) await primary(argv, config);
  else await single(argv);
}

void main();
