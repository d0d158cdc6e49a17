#!/usr/bin/env node
/**
 * pinhole-fcpd: the firewall-control daemon. Signal handling and exit codes live here only;
 * everything else is `startFcpd` (daemon.ts).
 *
 * Exit codes: 0 clean shutdown, 1 runtime failure, 2 bad configuration.
 */
import { parseCli, USAGE } from './config.js';
import { serverConfigOf, startFcpd } from './daemon.js';

function fail(code: number, message: string): never {
  process.stderr.write(`pinhole-fcpd: ${message}\n`);
  process.exit(code);
}

function isConfigError(e: unknown): e is Error & { field?: string } {
  const code = (e as { code?: unknown } | null)?.code;
  return code === 'FCPD_ERR_CONFIG' || code === 'FCP_ERR_CONFIG';
}

async function main(): Promise<void> {
  let cli;
  try {
    cli = parseCli(process.argv.slice(2));
  } catch (e) {
    fail(2, `${(e as Error).message} (see --help)`);
  }
  if (cli.help) {
    process.stdout.write(USAGE);
    return;
  }
  if (cli.check) {
    try {
      // Run the server-side validation too, so field errors from it surface here.
      const { validateServerConfig } = await import('@pinhole/fcp');
      validateServerConfig(serverConfigOf(cli.config));
    } catch (e) {
      fail(2, (e as Error).message);
    }
    process.stdout.write(`${JSON.stringify(cli.config, null, 2)}\n`);
    return;
  }
  let handle;
  try {
    handle = await startFcpd(cli.config);
  } catch (e) {
    if (isConfigError(e)) fail(2, e.message);
    fail(1, `cannot start: ${(e as Error).message}`);
  }
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    // Rules stay in the kernel and their timeouts keep running; a restart adopts them.
    handle.close().then(
      () => process.exit(0),
      (e: unknown) => fail(1, `shutdown after ${signal} failed: ${(e as Error).message}`),
    );
    setTimeout(() => fail(1, 'shutdown took longer than 10 s'), 10_000).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

void main();
