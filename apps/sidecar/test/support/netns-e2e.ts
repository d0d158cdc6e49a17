/**
 * Helpers for the namespace end-to-end test: JSON-logging processes (pinhole-sidecar,
 * pinhole-fcpd) and sipp, each run inside a namespace and bounded in time.
 */
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Netns } from '@pinhole/testkit';

export const SCENARIOS: string = fileURLToPath(
  new URL('../../../proxy/test/scenarios/', import.meta.url),
);
/** Scenarios of the sidecar's own (variants the proxy's tests do not need). */
export const OWN_SCENARIOS: string = fileURLToPath(new URL('../scenarios/', import.meta.url));
export const SIDECAR_CLI: string = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
export const FCPD_CLI: string = fileURLToPath(
  new URL('../../../fcpd/dist/cli.js', import.meta.url),
);

export interface LogLine {
  readonly time: number;
  readonly msg: string;
  readonly [k: string]: unknown;
}

/** A process in a namespace whose stdout is pino JSON lines (collected) and stderr kept. */
export class JsonLogProcess {
  readonly child: ChildProcess;
  readonly lines: LogLine[] = [];
  readonly stderr: string[] = [];

  constructor(ns: Netns, cmd: string, args: readonly string[]) {
    this.child = ns.spawn(cmd, args);
    createInterface({ input: this.child.stdout! }).on('line', (l) => {
      try {
        this.lines.push(JSON.parse(l) as LogLine);
      } catch {
        this.stderr.push(l);
      }
    });
    createInterface({ input: this.child.stderr! }).on('line', (l) => {
      if (this.stderr.length < 2000) this.stderr.push(l);
    });
  }

  /** The first log line matching, or undefined after `timeoutMs` (polled every 20 ms). */
  async waitFor(pred: (l: LogLine) => boolean, timeoutMs = 10_000): Promise<LogLine | undefined> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const found = this.lines.find(pred);
      if (found) return found;
      if (Date.now() >= end || this.child.exitCode !== null) return undefined;
      await sleep(20);
    }
  }

  async stop(): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode;
    const exited = new Promise<number | null>((r) => this.child.once('exit', (c) => r(c)));
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 8000);
    const code = await exited;
    clearTimeout(t);
    return code;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Pinholes in the fcpd's nftables table (elements of its non-`protected` sets); -1 if none. */
export async function holeCount(ns: Netns): Promise<number> {
  try {
    const { stdout } = await ns.exec('nft', ['-j', 'list', 'table', 'inet', 'pinhole']);
    const j = JSON.parse(stdout) as { nftables: { set?: { name: string; elem?: unknown[] } }[] };
    let n = 0;
    for (const o of j.nftables) {
      if (o.set && !o.set.name.startsWith('protected')) n += o.set.elem?.length ?? 0;
    }
    return n;
  } catch {
    return -1;
  }
}
