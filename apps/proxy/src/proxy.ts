/**
 * Assembles one proxy process: transports, the proxy core, the registrar, metrics and (when
 * given) the firewall module. `startProxy` returns a handle with where it listens, `reload` for
 * SIGHUP and `stop` for SIGTERM.
 */
import { sameListeners, type ProxyConfig } from './config.js';
import { ProxyMetrics, serveMetrics, type MetricsEndpoint } from './metrics.js';
import { NO_GATE, ProxyCore, type Logger, type MediaGate } from './proxy-core.js';
import { WorkerDispatch } from './dispatch.js';
import { cappedSockets, OverloadGuard, type WatchedSocket } from './overload.js';
import type { RegisterRequest } from './registrar.js';
import { Transports, type Listener } from './transport.js';

export interface RunningProxy {
  readonly listeners: readonly Listener[];
  readonly core: ProxyCore;
  readonly metrics: ProxyMetrics;
  /** Bound metrics address, when metrics are on. */
  readonly metricsPort: number | undefined;
  /** Workers: the loopback port siblings forward datagrams to, and where to set theirs. */
  readonly dispatch: WorkerDispatch | undefined;
  readonly dispatchPort: number | undefined;
  /** Overload control of the UDP listeners (overload.ts). */
  readonly overload: OverloadGuard;
  reload(config: ProxyConfig): Promise<void>;
  stop(): Promise<void>;
}

export interface StartOptions {
  readonly config: ProxyConfig;
  readonly logger: Logger;
  readonly gate?: MediaGate;
  /** Metrics to count into (the app shares one object with the firewall module). */
  readonly metrics?: ProxyMetrics;
  /** Workers: this worker's index, the worker count and the cluster's secret. */
  readonly worker?: {
    readonly index: number;
    readonly count: number;
    readonly token: string;
    readonly onRegister: (req: RegisterRequest) => void;
  };
}

export async function startProxy(opts: StartOptions): Promise<RunningProxy> {
  let config = opts.config;
  const log = opts.logger;
  const holder: { core: ProxyCore | undefined; dispatch: WorkerDispatch | undefined } = {
    core: undefined,
    dispatch: undefined,
  };
  const transports = new Transports(
    {
      onMessage: (m) => holder.core?.receive(m),
      onError: (e) => log.debug({ peer: e.peer, err: e.message }, 'transport error'),
      onWarning: (message) => log.warn({}, message),
      intercept: (m, i) => holder.dispatch?.intercept(m, i) ?? false,
      relay: (bytes, peer, worker) => holder.dispatch?.relay(bytes, peer, worker) ?? false,
    },
    { advertise: config.advertise, shared: opts.worker !== undefined },
  );
  let listeners = await transports.listen(config.listen);
  let dispatchPort: number | undefined;
  if (opts.worker && opts.worker.count > 1) {
    holder.dispatch = new WorkerDispatch({
      index: opts.worker.index,
      count: opts.worker.count,
      token: opts.worker.token,
      deliver: (m) => transports.deliver(m),
      listenerAt: (i) => listeners.find((l) => l.index === i),
      writeExisting: (bytes, peer) => transports.writeExisting(bytes, peer),
      onWarning: (message) => log.warn({}, message),
      onError: (message) => log.debug({ err: message }, 'worker dispatch error'),
    });
    dispatchPort = await holder.dispatch.start();
  }
  // Overload control watches every UDP socket this process reads: the listeners and, in a
  // worker, its own sockets that responses come back to and its loopback socket.
  let overloaded = false;
  let watched: { of: readonly Listener[]; sockets: WatchedSocket[] } | undefined;
  const watchedSockets = (): WatchedSocket[] => {
    if (watched?.of !== listeners) {
      const sockets = [...listeners, ...transports.privateListeners]
        .filter((l) => l.transport === 'udp' && (l.recvBufferBytes ?? 0) > 0)
        .map((l) => ({ port: l.port, recvBufferBytes: l.recvBufferBytes! }));
      // A worker: messages its siblings pass on wait in its loopback socket's queue.
      const d = holder.dispatch?.socketInfo;
      if (d !== undefined) sockets.push(d);
      watched = { of: listeners, sockets };
    }
    return watched.sockets;
  };
  const overload = new OverloadGuard({
    settings: { queueBytes: config.overload.queueBytes, retryAfterSec: config.overload.retryAfter },
    sockets: watchedSockets,
    onBlind: (why) =>
      log.warn({ why }, 'overload control cannot read the receive queues: refusing nothing'),
    onChange: (ratio, fill) => {
      log.debug({ refusedShare: ratio, queueFill: fill }, 'overload control');
      // One line when an overload episode starts and one when it ends.
      if (ratio > 0 && !overloaded) {
        overloaded = true;
        log.warn(
          { queueFill: Math.round(fill * 1000) / 1000, refusedShare: ratio },
          'overloaded: refusing a share of new requests with 503',
        );
      } else if (ratio === 0 && overloaded) {
        overloaded = false;
        log.info(
          { queueFill: Math.round(fill * 1000) / 1000 },
          'overload over: accepting every new request',
        );
      }
    },
  });
  const metrics =
    opts.metrics ??
    new ProxyMetrics({
      transactions: () => holder.core?.transactionCount ?? 0,
      registrations: () => holder.core?.registrar.size ?? 0,
      overloadShare: () => overload.ratio,
    });
  const core = new ProxyCore({
    overload,
    config,
    transport: transports,
    metrics,
    logger: log,
    gate: opts.gate ?? NO_GATE,
    ...(opts.worker ? { onRegister: opts.worker.onRegister } : {}),
  });
  holder.core = core;
  // The kernel grants at most twice net.core.rmem_max of the 4 MiB the sockets ask for.
  const warnCapped = (queueBytes: number): void => {
    const capped = cappedSockets(watchedSockets(), queueBytes);
    if (capped.length === 0) return;
    log.warn(
      { queueBytes, ports: capped.map((x) => x.port), recvBufferBytes: capped[0]!.recvBufferBytes },
      'overload control: receive buffer smaller than twice the threshold; half the buffer is the threshold',
    );
  };
  overload.start();
  warnCapped(config.overload.queueBytes);
  let metricsServer: MetricsEndpoint | undefined;
  let metricsPort: number | undefined;
  if (config.metrics) {
    metricsServer = await serveMetrics(metrics.registry, config.metrics.host, config.metrics.port);
    metricsPort = metricsServer.port;
  }
  const running: RunningProxy = {
    get listeners() {
      return listeners;
    },
    core,
    metrics,
    metricsPort,
    dispatch: holder.dispatch,
    dispatchPort,
    overload,
    async reload(next: ProxyConfig): Promise<void> {
      if (!sameListeners(config.listen, next.listen)) {
        // Listeners change only when their set changed; open transactions lose their sockets.
        await transports.close();
        listeners = await transports.listen(next.listen);
        core.refreshSelf();
        overload.socketsChanged();
      }
      config = next;
      core.reconfigure(next);
      overload.configure({
        queueBytes: next.overload.queueBytes,
        retryAfterSec: next.overload.retryAfter,
      });
      warnCapped(next.overload.queueBytes);
    },
    async stop(): Promise<void> {
      overload.stop();
      holder.dispatch?.close();
      core.close();
      await transports.close();
      if (metricsServer) await metricsServer.close();
    },
  };
  return running;
}
