import * as dgram from 'node:dgram';
import * as net from 'node:net';
import type { TimerApi } from '../src/expiry-queue.js';

/** A raw TCP peer that collects everything the server sends. */
export class RawPeer {
  readonly socket: net.Socket;
  data = '';
  closed = false;
  readonly #waiters: (() => void)[] = [];

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      this.data += d;
      this.#wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.#wake();
    });
    socket.on('error', () => {});
  }

  static connect(port: number, host = '127.0.0.1'): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const s = net.connect(port, host, () => resolve(new RawPeer(s)));
      s.once('error', reject);
    });
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  /** Waits until `pred(data)` holds or the socket closes (bounded by `ms`). */
  async until(pred: (data: string) => boolean, ms = 5000): Promise<string> {
    const deadline = Date.now() + ms;
    while (!pred(this.data)) {
      if (this.closed) break;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout waiting; got ${JSON.stringify(this.data)}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    return this.data;
  }

  /** Waits for `n` complete replies (each ends with an empty line). */
  async replies(n: number): Promise<string[]> {
    await this.until((d) => d.split('\r\n\r\n').length - 1 >= n);
    return this.data
      .split('\r\n\r\n')
      .slice(0, n)
      .map((x) => `${x}\r\n\r\n`);
  }

  send(text: string | Buffer): void {
    this.socket.write(text);
  }

  close(): void {
    this.socket.destroy();
  }
}

export function udpExchange(port: number, datagrams: string[], expect: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket('udp4');
    const got: string[] = [];
    const t = setTimeout(() => {
      sock.close();
      reject(new Error(`udp timeout, got ${JSON.stringify(got)}`));
    }, 5000);
    sock.on('message', (m) => {
      got.push(m.toString('latin1'));
      if (got.length >= expect) {
        clearTimeout(t);
        sock.close();
        resolve(got);
      }
    });
    sock.bind(0, '127.0.0.1', () => {
      for (const d of datagrams) sock.send(d, port, '127.0.0.1');
    });
  });
}

/** A manual clock: `advance(ms)` fires due timers in order. */
export class FakeTimers implements TimerApi {
  t = 1_000_000;
  #seq = 0;
  readonly #timers = new Map<number, { at: number; fn: () => void }>();

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = ++this.#seq;
    this.#timers.set(id, { at: this.t + ms, fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }

  advance(ms: number): void {
    const end = this.t + ms;
    for (let guard = 0; guard < 100_000; guard++) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.#timers) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      this.#timers.delete(next[0]);
      this.t = Math.max(this.t, next[1].at);
      next[1].fn();
    }
    this.t = end;
  }
}

/** Lets pending promise callbacks run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise<void>((r) => setImmediate(r));
}

/**
 * A scripted FCP server on loopback: `answer(requestText)` returns the reply text, or undefined
 * to stay silent. Records every request.
 */
export class ScriptedServer {
  readonly server: net.Server;
  readonly requests: string[] = [];
  readonly sockets: Set<net.Socket> = new Set();
  answer: (req: string) => string | undefined;
  greeting: string | undefined;

  private constructor(answer: (req: string) => string | undefined) {
    this.answer = answer;
    this.server = net.createServer((s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => {});
      s.setEncoding('latin1');
      if (this.greeting) s.write(this.greeting);
      let buf = '';
      s.on('data', (d: string) => {
        buf += d;
        for (;;) {
          const end = buf.indexOf('\r\n\r\n');
          if (end === -1) break;
          const req = buf.slice(0, end + 4);
          buf = buf.slice(end + 4);
          this.requests.push(req);
          const reply = this.answer(req);
          if (reply !== undefined) s.write(reply);
        }
      });
    });
  }

  static async start(answer: (req: string) => string | undefined): Promise<ScriptedServer> {
    const s = new ScriptedServer(answer);
    await new Promise<void>((r) => s.server.listen(0, '127.0.0.1', r));
    return s;
  }

  get port(): number {
    const a = this.server.address();
    return typeof a === 'object' && a ? a.port : 0;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** SEQ of a request text. */
export function seqOf(req: string): number {
  return Number(/SEQ=(\d+)/.exec(req)?.[1] ?? 0);
}

/** Waits for an event on an emitter (bounded). */
export function once<T>(
  emitter: { once(ev: string, fn: (arg: T) => void): unknown },
  event: string,
  ms = 5000,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
    emitter.once(event, (arg: T) => {
      clearTimeout(t);
      resolve(arg);
    });
  });
}
