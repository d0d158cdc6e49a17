/**
 * A child process whose stdout is JSON log lines (pino's format: one object per line with `time`
 * and `msg`), collected as they arrive so a test can wait for a line and read what a daemon said.
 * stderr, and stdout lines that are not JSON objects, are kept as text. Memory is bounded: past
 * the limits the oldest entries are dropped (and counted).
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Netns } from './netns.js';

/** One JSON log line. `msg` is '' when the object had none. */
export interface LogLine {
  readonly time: number;
  readonly msg: string;
  readonly [k: string]: unknown;
}

export interface JsonLogProcessOptions {
  /** Log lines kept (default 100,000); older ones are dropped first. */
  readonly maxLines?: number;
  /** Text lines kept (stderr and non-JSON stdout; default 2,000). */
  readonly maxTextLines?: number;
}

export class JsonLogProcess {
  readonly child: ChildProcess;
  /** JSON log lines in arrival order (the oldest dropped past `maxLines`). */
  readonly lines: LogLine[] = [];
  /** stderr lines and stdout lines that were not JSON objects. */
  readonly stderr: string[] = [];
  /** Resolves with the exit code (null when killed by a signal) once the process has exited. */
  readonly exited: Promise<number | null>;
  #dropped = 0;
  /** stdout has ended: no further log line can arrive. */
  #ended = false;
  #waiters = new Set<() => void>();
  readonly #maxLines: number;
  readonly #maxText: number;

  /** Wraps a spawned child whose stdout and stderr are pipes. */
  constructor(child: ChildProcess, options: JsonLogProcessOptions = {}) {
    this.child = child;
    this.#maxLines = options.maxLines ?? 100_000;
    this.#maxText = options.maxTextLines ?? 2_000;
    this.exited = new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode);
      else child.once('exit', (code) => resolve(code));
    });
    // Waiters learn when stdout ends (after the last line), so they stop waiting for lines that
    // cannot come.
    if (child.stdout) {
      createInterface({ input: child.stdout })
        .on('line', (l) => this.#onStdout(l))
        .on('close', () => {
          this.#ended = true;
          this.#wake();
        });
    } else {
      void this.exited.then(() => {
        this.#ended = true;
        this.#wake();
      });
    }
    if (child.stderr) {
      createInterface({ input: child.stderr }).on('line', (l) => this.#text(l));
    }
  }

  /** Spawns `cmd args` on this host. */
  static spawn(
    cmd: string,
    args: readonly string[] = [],
    options: JsonLogProcessOptions & { readonly spawn?: SpawnOptions } = {},
  ): JsonLogProcess {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options.spawn });
    return new JsonLogProcess(child, options);
  }

  /** Spawns `cmd args` inside a namespace (killed with it at cleanup). */
  static inNetns(
    ns: Netns,
    cmd: string,
    args: readonly string[] = [],
    options: JsonLogProcessOptions = {},
  ): JsonLogProcess {
    return new JsonLogProcess(ns.spawn(cmd, args), options);
  }

  /** Log lines dropped because `maxLines` was reached (indexes into `lines` shift by as many). */
  get dropped(): number {
    return this.#dropped;
  }

  /** True once the process has exited. */
  get done(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }

  /** Log lines matching `pred`, from index `from` of `lines` on. */
  find(pred: (l: LogLine) => boolean, from = 0): LogLine[] {
    return this.lines.slice(from).filter(pred);
  }

  /**
   * The first log line matching `pred` (from index `from` of `lines` on, e.g. `lines.length`
   * taken before an action), as soon as it arrives; undefined after `timeoutMs`, or once stdout
   * has ended without one.
   */
  waitFor(
    pred: (l: LogLine) => boolean,
    timeoutMs = 10_000,
    from = 0,
  ): Promise<LogLine | undefined> {
    const look = (): LogLine | undefined => {
      for (let i = Math.max(0, from); i < this.lines.length; i++) {
        const l = this.lines[i];
        if (l !== undefined && pred(l)) return l;
      }
      return undefined;
    };
    const now = look();
    if (now !== undefined || this.#ended) return Promise.resolve(now);
    return new Promise((resolve) => {
      const finish = (v: LogLine | undefined): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve(v);
      };
      const check = (): void => {
        const found = look();
        if (found !== undefined || this.#ended) finish(found);
      };
      const timer = setTimeout(() => finish(look()), timeoutMs);
      this.#waiters.add(check);
    });
  }

  /**
   * Sends `signal` (SIGTERM), then SIGKILL if the process has not exited after `killAfterMs`;
   * resolves with the exit code (null when a signal ended it).
   */
  async stop(signal: NodeJS.Signals = 'SIGTERM', killAfterMs = 8_000): Promise<number | null> {
    if (this.done) return this.child.exitCode;
    this.child.kill(signal);
    const t = setTimeout(() => this.child.kill('SIGKILL'), killAfterMs);
    const code = await this.exited;
    clearTimeout(t);
    return code;
  }

  #onStdout(l: string): void {
    let v: unknown;
    try {
      v = JSON.parse(l);
    } catch {
      this.#text(l);
      return;
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      this.#text(l);
      return;
    }
    const o = v as Record<string, unknown>;
    const line: LogLine = {
      ...o,
      time: typeof o.time === 'number' ? o.time : Date.now(),
      msg: typeof o.msg === 'string' ? o.msg : '',
    };
    this.lines.push(line);
    if (this.lines.length > this.#maxLines) {
      this.lines.shift();
      this.#dropped++;
    }
    this.#wake();
  }

  #text(l: string): void {
    this.stderr.push(l);
    if (this.stderr.length > this.#maxText) this.stderr.shift();
  }

  #wake(): void {
    for (const w of [...this.#waiters]) w();
  }
}
