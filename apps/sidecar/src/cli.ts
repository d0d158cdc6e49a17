#!/usr/bin/env node
/**
 * pinhole-sidecar: receives the HEP capture stream of a SIP server, decodes and de-duplicates it
 * into SIP observations, and (once wired) drives pinholes through the seam in seam.ts.
 */
import { pino } from 'pino';
import { parseArgs, USAGE } from './config.js';
import type { SipParser } from './observation.js';
import { UnwiredPinholeControl } from './seam.js';
import { Sidecar } from './sidecar.js';

async function loadSipParser(): Promise<SipParser | undefined> {
  // @pinhole/sip's `parse` is being finished in parallel; look it up at run time so this CLI
  // builds against the type contract alone and starts working as soon as `parse` is exported.
  const mod = (await import('@pinhole/sip')) as unknown as Record<string, unknown>;
  const parse = mod.parse;
  return typeof parse === 'function' ? (parse as SipParser) : undefined;
}

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
  const parse = await loadSipParser();
  if (!parse) {
    log.fatal('@pinhole/sip does not export parse yet: build it (npm run build -w @pinhole/sip)');
    return 1;
  }
  const control = new UnwiredPinholeControl(log.child({ component: 'control' }));
  if (!control.drivesFirewall) {
    log.warn(
      { fcp: config.fcp ? `${config.fcp.host}:${config.fcp.port}` : undefined },
      'pinhole control is not wired yet: the sidecar decodes, de-duplicates and logs SIP observations and serves metrics, but opens no pinholes',
    );
  }
  if (config.captureIds.length === 0) {
    log.warn('no --capture-id configured: HEP from every capture agent is accepted');
  }
  const sidecar = new Sidecar(config, {
    parse,
    control,
    logger: log.child({ component: 'hep' }),
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
  return await new Promise<number>((resolve) => {
    const stop = (sig: string): void => {
      log.info({ signal: sig }, 'stopping');
      sidecar.close().then(
        () => resolve(0),
        (err: unknown) => {
          log.error({ err }, 'error while stopping');
          resolve(1);
        },
      );
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`pinhole-sidecar: ${String(err)}\n`);
    process.exit(1);
  },
);
