/** Starts the repository's Kamailio configuration on loopback for a test, and stops it. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const KAMAILIO_CFG: string = fileURLToPath(
  new URL('../../kamailio/kamailio.cfg', import.meta.url),
);

/** A UDP port that was free a moment ago (Kamailio needs a number on its command line). */
export async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export interface RunningKamailio {
  readonly port: number;
  readonly log: () => string;
  stop(): Promise<void>;
}

export async function startKamailio(opts: {
  hepPort: number;
  captureId: number;
  authKey?: string;
  /** Send HEP over TCP instead of UDP. */
  hepOverTcp?: boolean;
}): Promise<RunningKamailio> {
  const port = await freeUdpPort();
  const dir = mkdtempSync(join(tmpdir(), 'pinhole-kamailio-'));
  const args = [
    '-f',
    KAMAILIO_CFG,
    '-DD',
    '-E',
    '-l',
    `udp:127.0.0.1:${port}`,
    ...(opts.hepOverTcp === true ? ['-l', `tcp:127.0.0.1:${port}`, '-A', 'WITH_TCP'] : []),
    '-w',
    dir,
    '-Y',
    dir,
    '-A',
    `HEP_URI="sip:127.0.0.1:${opts.hepPort}${opts.hepOverTcp === true ? ';transport=tcp' : ''}"`,
    '-A',
    `HEP_CAPTURE_ID=${opts.captureId}`,
    ...(opts.authKey !== undefined ? ['-A', `HEP_AUTH_KEY="${opts.authKey}"`] : []),
  ];
  // Its own process group, so stop() reaches the worker processes it forks too.
  const child: ChildProcess = spawn('kamailio', args, {
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: true,
  });
  let log = '';
  child.stderr?.on('data', (d: Buffer) => {
    if (log.length < 200_000) log += d.toString('utf8');
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    port,
    log: () => log,
    async stop() {
      const pid = child.pid;
      if (pid !== undefined && child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(-pid, 'SIGTERM');
        } catch {
          // already gone
        }
        const killed = await Promise.race([
          exited.then(() => true),
          new Promise<boolean>((r) => setTimeout(() => r(false), 3000)),
        ]);
        if (!killed) {
          try {
            process.kill(-pid, 'SIGKILL');
          } catch {
            // already gone
          }
          await exited;
        }
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
