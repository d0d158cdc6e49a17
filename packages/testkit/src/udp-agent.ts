/**
 * A UDP agent running inside a network namespace: a small Node script (started with
 * `ip netns exec <ns> node -e ...`) that binds receivers and sends datagrams on command. Commands
 * and events are JSON lines on its stdin / stdout, so one process serves a whole test.
 */
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Netns } from './netns.js';

// Runs in the child. Plain JavaScript; no dependencies.
const AGENT_SOURCE = `
const dgram = require('node:dgram');
const rl = require('node:readline').createInterface({ input: process.stdin });
const socks = new Map();
const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
rl.on('line', (line) => {
  let c; try { c = JSON.parse(line); } catch { return; }
  if (c.op === 'bind') {
    const s = dgram.createSocket(c.address.includes(':') ? 'udp6' : 'udp4');
    s.on('error', (e) => out({ id: c.id, error: String(e.message) }));
    s.on('message', (m, r) => out({ ev: 'msg', port: s.address().port, from: r.address, fromPort: r.port, data: m.toString('utf8') }));
    s.bind(c.port, c.address, () => { socks.set(s.address().port, s); out({ id: c.id, port: s.address().port }); });
  } else if (c.op === 'send') {
    const s = dgram.createSocket(c.host.includes(':') ? 'udp6' : 'udp4');
    const done = (e) => { out({ id: c.id, error: e ? String(e.message) : undefined }); s.close(); };
    s.on('error', done);
    const go = () => s.send(Buffer.from(c.data), c.port, c.host, (e) => done(e));
    if (c.fromPort) s.bind(c.fromPort, go); else go();
  } else if (c.op === 'exit') { process.exit(0); }
});
rl.on('close', () => process.exit(0));
`;

export interface UdpMessage {
  readonly port: number;
  readonly from: string;
  readonly fromPort: number;
  readonly data: string;
}

interface Reply {
  readonly id?: number;
  readonly port?: number;
  readonly error?: string;
  readonly ev?: string;
}

export class UdpAgent {
  readonly ns: Netns;
  readonly #child: ChildProcess;
  readonly #waiting = new Map<number, (r: Reply) => void>();
  readonly #messages: UdpMessage[] = [];
  #listeners: (() => void)[] = [];
  #id = 0;

  private constructor(ns: Netns, child: ChildProcess) {
    this.ns = ns;
    this.#child = child;
    const rl = createInterface({ input: child.stdout! });
    rl.on('line', (line) => {
      let r: Reply & Partial<UdpMessage>;
      try {
        r = JSON.parse(line) as Reply & Partial<UdpMessage>;
      } catch {
        return;
      }
      if (r.ev === 'msg') {
        this.#messages.push(r as UdpMessage);
        for (const l of this.#listeners) l();
      } else if (r.id !== undefined) {
        this.#waiting.get(r.id)?.(r);
        this.#waiting.delete(r.id);
      }
    });
    child.on('exit', () => {
      for (const [, w] of this.#waiting) w({ error: 'agent exited' });
      this.#waiting.clear();
    });
  }

  /** Starts an agent inside `ns` (killed with the namespace at cleanup). */
  static start(ns: Netns): UdpAgent {
    const child = ns.spawn(process.execPath, ['-e', AGENT_SOURCE]);
    return new UdpAgent(ns, child);
  }

  #call(cmd: object): Promise<Reply> {
    const id = ++this.#id;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.#waiting.delete(id);
        reject(new Error('udp agent did not answer within 10 s'));
      }, 10_000);
      this.#waiting.set(id, (r) => {
        clearTimeout(t);
        if (r.error) reject(new Error(r.error));
        else resolve(r);
      });
      this.#child.stdin!.write(JSON.stringify({ ...cmd, id }) + '\n');
    });
  }

  /** Binds a receiving socket; port 0 lets the OS choose. Resolves with the bound port. */
  async bind(address: string, port = 0): Promise<number> {
    const r = await this.#call({ op: 'bind', address, port });
    return r.port ?? 0;
  }

  /** Sends one datagram from an ephemeral (or the given) source port. */
  async send(host: string, port: number, data: string, fromPort?: number): Promise<void> {
    await this.#call({ op: 'send', host, port, data, fromPort });
  }

  /** Everything received so far. */
  get messages(): readonly UdpMessage[] {
    return this.#messages;
  }

  /** Resolves true once a datagram with this payload has arrived, false after `timeoutMs`. */
  waitFor(data: string, timeoutMs: number): Promise<boolean> {
    if (this.#messages.some((m) => m.data === data)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.#messages.some((m) => m.data === data)) finish(true);
      };
      const finish = (v: boolean): void => {
        clearTimeout(t);
        this.#listeners = this.#listeners.filter((l) => l !== check);
        resolve(v);
      };
      const t = setTimeout(() => finish(false), timeoutMs);
      this.#listeners.push(check);
    });
  }

  async close(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        this.#child.kill('SIGKILL');
        resolve();
      }, 2000);
      this.#child.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      this.#child.stdin!.end();
    });
  }
}

let probeSeq = 0;

/**
 * Does UDP from `sender` reach `receiver` at `host:port`? Sends a fresh probe every
 * `intervalMs` up to `attempts` times and answers true at the first arrival; false when none
 * arrived within `attempts * intervalMs` (bounded in count and time).
 */
export async function udpReaches(
  sender: UdpAgent,
  receiver: UdpAgent,
  host: string,
  port: number,
  opts: { attempts?: number; intervalMs?: number; fromPort?: number } = {},
): Promise<boolean> {
  const attempts = opts.attempts ?? 5;
  const intervalMs = opts.intervalMs ?? 100;
  const tag = `probe-${process.pid}-${++probeSeq}`;
  for (let i = 0; i < attempts; i++) {
    await sender.send(host, port, tag, opts.fromPort);
    if (await receiver.waitFor(tag, intervalMs)) return true;
  }
  return receiver.waitFor(tag, intervalMs);
}

/** Polls `cond` until it is true, at most `attempts` times `intervalMs` apart. */
export async function eventually(
  cond: () => Promise<boolean> | boolean,
  attempts = 50,
  intervalMs = 100,
): Promise<boolean> {
  for (let i = 0; i < attempts; i++) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  return false;
}
