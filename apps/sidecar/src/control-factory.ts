/**
 * Chooses the pinhole control for a configuration: the engine (transaction layer, policy, FCP
 * client) when FCP servers are configured, otherwise the unwired control that only logs.
 */
import { FcpClient } from '@pinhole/fcp';
import { Policy } from '@pinhole/policy';
import type { SidecarConfig } from './config.js';
import type { ControlLogger } from '@pinhole/control';
import { createEngineControlMetrics, EnginePinholeControl } from './engine-control.js';
import type { MetricsRegistry } from '@pinhole/metrics';
import { UnwiredPinholeControl, type PinholeControl } from './seam.js';

export interface ControlFactoryDeps {
  readonly logger: ControlLogger;
  /** Logs FCP connection events; default `logger`. */
  readonly fcpLogger?: ControlLogger;
  readonly registry: MetricsRegistry;
  /** How often expired policy state is swept (ms, default 1000). */
  readonly sweepMs?: number;
}

export function createPinholeControl(
  config: SidecarConfig,
  deps: ControlFactoryDeps,
): PinholeControl {
  if (config.fcp.length === 0) return new UnwiredPinholeControl(deps.logger);
  const fcp = new FcpClient({
    servers: config.fcp.map((s) => ({ host: s.host, port: s.port })),
    // Holes live as long as the policy's TIMER unless the policy refreshes them.
    keepAlive: false,
  });
  const fcpLog = deps.fcpLogger ?? deps.logger;
  fcp.on('connect', (e) => fcpLog.info(e, 'FCP server connected'));
  fcp.on('disconnect', (e) =>
    fcpLog.warn({ server: e.server, err: e.error?.message }, 'FCP server disconnected'),
  );
  fcp.on('state-lost', (e) => fcpLog.warn(e, 'FCP server lost its rules'));
  return new EnginePinholeControl({
    policy: new Policy(config.policy),
    fcp,
    metrics: createEngineControlMetrics(deps.registry),
    logger: deps.logger,
    failMode: config.failMode,
    ...(deps.sweepMs !== undefined ? { sweepMs: deps.sweepMs } : {}),
  });
}
