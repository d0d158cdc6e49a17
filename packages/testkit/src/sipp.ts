import type { Netns } from './netns.js';

export interface SippResult {
  readonly code: number | null;
  /** The last 3,000 characters sipp printed (stdout and stderr). */
  readonly output: string;
}

/**
 * Runs sipp inside a namespace, bounded by sipp's own `-timeout` (a timeout is an error) and a
 * hard kill 5 s after it.
 */
export function sipp(
  ns: Netns,
  args: readonly string[],
  hardTimeoutMs = 60_000,
): Promise<SippResult> {
  const child = ns.spawn('sipp', [
    ...args,
    '-nostdin',
    '-timeout',
    `${Math.ceil(hardTimeoutMs / 1000)}s`,
    '-timeout_error',
  ]);
  let output = '';
  const keep = (d: Buffer): void => {
    output = (output + d.toString()).slice(-8000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return new Promise((resolve) => {
    const t = setTimeout(() => child.kill('SIGKILL'), hardTimeoutMs + 5000);
    child.once('exit', (code) => {
      clearTimeout(t);
      resolve({ code, output: output.slice(-3000) });
    });
  });
}
