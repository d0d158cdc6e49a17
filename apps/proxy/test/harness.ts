/**
 * Test harness for the end-to-end tests: the proxy binary and sipp run inside namespaces, the
 * proxy's JSON log lines are collected, and a media streamer records what it sent.
 */
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { sipp, type Netns, type SippResult } from '@pinhole/testkit';

export const SCENARIOS: string = fileURLToPath(new URL('./scenarios/', import.meta.url));
export const CLI: string = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

export interface LogLine {
  readonly time: number;
  readonly msg: string;
  readonly [k: string]: unknown;
}

export class ProxyProcess {
  readonly child: ChildProcess;
  readonly lines: LogLine[] = [];
  readonly stderr: string[] = [];
  #waiters: (() => void)[] = [];

  constructor(ns: Netns, args: readonly string[]) {
    this.child = ns.spawn(process.execPath, [CLI, ...args]);
    createInterface({ input: this.child.stdout! }).on('line', (l) => {
      try {
        this.lines.push(JSON.parse(l) as LogLine);
      } catch {
        return;
      }
      for (const w of this.#waiters) w();
    });
    createInterface({ input: this.child.stderr! }).on('line', (l) => this.stderr.push(l));
  }

  /** Resolves with the first log line matching, or undefined after `timeoutMs`. */
  waitFor(pred: (l: LogLine) => boolean, timeoutMs = 10_000): Promise<LogLine | undefined> {
    const found = this.lines.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve) => {
      const check = (): void => {
        const f = this.lines.find(pred);
        if (f) done(f);
      };
      const done = (v: LogLine | undefined): void => {
        clearTimeout(t);
        this.#waiters = this.#waiters.filter((w) => w !== check);
        resolve(v);
      };
      const t = setTimeout(() => done(undefined), timeoutMs);
      this.#waiters.push(check);
    });
  }

  find(pred: (l: LogLine) => boolean): LogLine[] {
    return this.lines.filter(pred);
  }

  async stop(): Promise<number | null> {
    if (this.child.exitCode !== null) return this.child.exitCode;
    const exited = new Promise<number | null>((r) => this.child.once('exit', (c) => r(c)));
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 8000);
    const code = await exited;
    clearTimeout(t);
    return code;
  }
}

/** UAS in `ns` on ip:5060, SDP media port `mport`. */
export function uas(
  ns: Netns,
  ip: string,
  scenario: string,
  extra: readonly string[] = [],
  timeoutMs = 60_000,
): Promise<SippResult> {
  return sipp(
    ns,
    ['-sf', `${SCENARIOS}${scenario}`, '-i', ip, '-p', '5060', '-mp', '16000', '-m', '1', ...extra],
    timeoutMs,
  );
}

/** UAC in `ns` calling `callee` through the proxy at `proxy`. */
export function uac(
  ns: Netns,
  ip: string,
  proxy: string,
  scenario: string,
  extra: readonly string[] = [],
  timeoutMs = 60_000,
): Promise<SippResult> {
  const port = extra.includes('-p') ? [] : ['-p', '5060'];
  const service = extra.includes('-s') ? [] : ['-s', 'callee'];
  const mp = extra.includes('-mp') ? [] : ['-mp', extra.includes('-p') ? '16200' : '16000'];
  return sipp(
    ns,
    [
      proxy,
      '-sf',
      `${SCENARIOS}${scenario}`,
      '-i',
      ip,
      ...port,
      ...mp,
      '-m',
      '1',
      ...service,
      ...extra,
    ],
    timeoutMs,
  );
}

const STREAMER = `
const dgram = require('node:dgram');
const [host, port, ms, every] = process.argv.slice(1);
const s = dgram.createSocket('udp4');
const sent = [];
let seq = 0;
const end = Date.now() + Number(ms);
const tick = () => {
  if (Date.now() >= end) {
    process.stdout.write(JSON.stringify(sent) + '\\n');
    s.close();
    return;
  }
  const t = Date.now();
  const n = ++seq;
  sent.push([n, t]);
  s.send('rtp ' + n + ' ' + t, Number(port), host);
  setTimeout(tick, Number(every));
};
tick();
`;

/** Sends `rtp <seq> <time>` every `everyMs` for `ms`; resolves with [seq, sendTime] pairs. */
export function stream(
  ns: Netns,
  host: string,
  port: number,
  ms: number,
  everyMs = 2,
): Promise<[number, number][]> {
  const child = ns.spawn(process.execPath, [
    '-e',
    STREAMER,
    host,
    String(port),
    String(ms),
    String(everyMs),
  ]);
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve) => {
    child.once('exit', () => {
      try {
        resolve(JSON.parse(out) as [number, number][]);
      } catch {
        resolve([]);
      }
    });
  });
}

/** Number of pinhole set elements in the firewall namespace's `inet pinhole` table. */
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

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
