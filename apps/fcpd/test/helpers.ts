/** Test helpers: run the built daemon and fcpctl, possibly inside a network namespace. */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Netns } from '@pinhole/testkit';

export const CLI: string = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
export const FCPCTL: string = fileURLToPath(new URL('../dist/fcpctl.js', import.meta.url));

export interface RunningDaemon {
  readonly child: ChildProcess;
  /** `tcp:127.0.0.1:PORT` of the first listener. */
  readonly server: string;
  readonly metrics: string | undefined;
  /** Every JSON log line so far. */
  readonly logs: Record<string, unknown>[];
  /** Resolves with the exit code (or signal name). */
  readonly exited: Promise<number | string>;
}

/** Starts `pinhole-fcpd` (in `ns` if given) and waits for its "started" log line (10 s max). */
export function startDaemon(args: readonly string[], ns?: Netns): Promise<RunningDaemon> {
  const child = ns
    ? ns.spawn(process.execPath, [CLI, ...args])
    : spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, sig) => resolve(code ?? sig ?? -1)),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`fcpd did not start: ${stderr}`)), 10_000);
    void exited.then((c) => {
      clearTimeout(timer);
      reject(new Error(`fcpd exited (${c}) before starting: ${stderr}`));
    });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let rec: Record<string, unknown>;
      try {
        rec = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      logs.push(rec);
      if (rec.msg === 'pinhole-fcpd started') {
        clearTimeout(timer);
        const listen = rec.listen as string[];
        resolve({
          child,
          server: listen[0] ?? '',
          metrics: rec.metrics as string | undefined,
          logs,
          exited,
        });
      }
    });
  });
}

export interface CtlResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `pinhole-fcpctl` (in `ns` if given) and resolves whatever its exit code. */
export function fcpctl(args: readonly string[], ns?: Netns): Promise<CtlResult> {
  const [cmd, ...rest] = ns
    ? ns.argv(process.execPath, FCPCTL, ...args)
    : [process.execPath, FCPCTL, ...args];
  return new Promise((resolve) => {
    execFile(cmd ?? '', rest, { timeout: 15_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Stops a daemon with a signal and resolves with its exit code. */
export async function stopDaemon(
  d: RunningDaemon,
  signal: NodeJS.Signals = 'SIGTERM',
): Promise<number | string> {
  if (d.child.exitCode !== null || d.child.signalCode !== null) return d.exited;
  d.child.kill(signal);
  return d.exited;
}
