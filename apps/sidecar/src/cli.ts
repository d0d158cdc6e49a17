#!/usr/bin/env node
/**
 * pinhole-sidecar: receives the HEP capture stream of a SIP server, decodes and de-duplicates it
 * into SIP observations, and drives pinholes through the seam in seam.ts when FCP servers are
 * configured (EnginePinholeControl); without them it only logs.
 */
import { parse } from '@pinhole/sip';
import { pino } from 'pino';
import { parseArgs, USAGE } from './config.js';
import { createPinholeControl } from './control-factory.js';
import { createSidecarMetrics } from './sidecar-metrics.js';
import { Sidecar } from './sidecar.js';

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`pinhole-sidecar: ${(err as Error).message}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const config = args.config;
  const log = pino({ name: 'pinhole-sidecar', level: config.logLevel });
  const metrics = createSidecarMetrics();
  const control = createPinholeControl(config, {
    logger: log.child({ component: 'control' }),
    fcpLogger: log.child({ component: 'fcp-client' }),
    registry: metrics.registry,
  });
  if (control.drivesFirewall) {
    log.info(
      {
        control: control.name,
        fcp: config.fcp.map((s) => `${s.transport}:${s.host}:${s.port}`),
        protected: config.protected.map((c) => `${c.address}/${c.prefix}`),
        sourcePolicy: config.sourcePolicy,
        failMode: config.failMode,
      },
      'pinhole control wired: transaction layer (observer), policy and FCP client',
    );
  } else {
    log.warn(
      'pinhole control is not wired: no FCP server is configured (--fcp), so the sidecar decodes, de-duplicates and logs SIP observations and serves metrics, but opens no pinholes',
    );
  }
  if (config.captureIds.length === 0) {
    log.warn('no --capture-id configured: HEP from every capture agent is accepted');
  }
  const sidecar = new Sidecar(config, {
    parse,
    control,
    metrics,
    logger: log.child({ component: 'hep' }),
  });
  // Signal handlers go in before the listeners, so a signal during start-up still stops cleanly.
  let signalled: string | undefined;
  let onSignal: (sig: string) => void = (sig) => {
    signalled = sig;
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  let stopping = false;
  const stopped = new Promise<number>((resolve) => {
    onSignal = (sig: string): void => {
      // A repeated signal while stopping is ignored (the close is bounded).
      if (stopping) return;
      stopping = true;
      log.info({ signal: sig }, 'stopping');
      sidecar.close().then(
        () => resolve(0),
        (err: unknown) => {
          log.error({ err }, 'error while stopping');
          resolve(1);
        },
      );
    };
  });
  try {
    const at = await sidecar.start();
    log.info(
      {
        hep: at.hep.map((h) => `${h.transport}:${h.host}:${h.port}`),
        metrics: at.metrics ? `http://${at.metrics.host}:${at.metrics.port}/metrics` : undefined,
        serverAddresses: config.serverAddresses.map(
          (s) => `${s.address}${s.port ? `:${s.port}` : ''}`,
        ),
      },
      'pinhole-sidecar listening',
    );
  } catch (err) {
    log.fatal({ err }, 'pinhole-sidecar failed to start');
    return 1;
  }
  if (signalled !== undefined) onSignal(signalled);
  return await stopped;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`pinhole-sidecar: ${String(err)}\n`);
    process.exit(1);
  },
);
