/**
 * One persistent FCP connection to one server (TCP, TLS, or a local link to a server in this
 * process): pipelined requests correlated in
 * order and cross-checked against SEQ (spec §6 #29: SEQ=0 or no SEQ is accepted, the order
 * decides), a deadline per request, and reconnection with exponential backoff. Used by FcpClient.
 */
import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import { FcpError, FcpErrorCode } from './errors.js';
import type { TimerApi } from './expiry-queue.js';
import { encodeRequestWithSeq, type FcpRequest } from './request.js';
import { ResponseDecoder, type DecodedResponse, type ResponseBodyKind } from './response.js';

/** A request before its SEQ is assigned. */
export type UnsequencedRequest = FcpRequest extends infer R
  ? R extends FcpRequest
    ? Omit<R, 'seq'>
    : never
  : never;

export interface ServerEndpoint {
  readonly host: string;
  readonly port: number;
  /**
   * Default `tcp`. `udp`: one datagram per request, retransmitted (FcpUdpConnection). `local`:
   * a server in this process, reached through `connect` (no socket; `host` only names it).
   */
  readonly transport?: 'tcp' | 'tls' | 'udp' | 'local' | undefined;
  /** For `tls`: ca, cert, key, servername... */
  readonly tls?: tls.ConnectionOptions | undefined;
  /**
   * For `local`: opens a connection to the server, e.g. `() => server.connectLocal()` of an
   * `FcpServer` in this process. Called again to reconnect; may throw while the server is down.
   */
  readonly connect?: (() => Duplex) | undefined;
}

export interface ReconnectOptions {
  /** First delay, ms. Default 100. */
  readonly initialDelayMs?: number | undefined;
  /** Cap, ms. Default 10000. */
  readonly maxDelayMs?: number | undefined;
  /** Default 2. */
  readonly factor?: number | undefined;
  /** Random spread ±fraction. Default 0.2. */
  readonly jitter?: number | undefined;
}

export interface ConnectionOptions {
  readonly reconnect?: ReconnectOptions | undefined;
  /** Requests waiting for a connection. Default 10000; beyond, requests fail at once. */
  readonly maxQueued?: number | undefined;
  readonly maxResponseLineBytes?: number | undefined;
}

/** What FcpClient needs from a transport (FcpConnection for TCP/TLS, FcpUdpConnection). */
export interface ClientTransport extends EventEmitter<ConnectionEvents> {
  readonly name: string;
  readonly connected: boolean;
  request(req: UnsequencedRequest, deadlineMs: number): Promise<DecodedResponse>;
  close(): void;
}

export interface ConnectionEvents {
  connect: [{ reconnected: boolean }];
  disconnect: [{ error: Error | undefined }];
  'reconnect-scheduled': [{ delayMs: number; attempt: number }];
  junk: [{ line: string }];
  'protocol-error': [{ detail: string }];
}

interface Pending {
  readonly seq: number;
  readonly method: FcpRequest['method'];
  readonly wire: string;
  readonly sentAt: number;
  readonly resolve: (r: DecodedResponse) => void;
  readonly reject: (e: FcpError) => void;
  timer: unknown;
  /** Deadline passed; the answer (if any) is dropped when it arrives. */
  abandoned: boolean;
  written: boolean;
}

const MAX_SEQ = 999_999_999;

function bodyKind(method: FcpRequest['method']): ResponseBodyKind {
  return method === 'QUERY' ? 'query' : method === 'QUERYNAT' ? 'nat' : 'none';
}

export class FcpConnection extends EventEmitter<ConnectionEvents> {
  readonly endpoint: ServerEndpoint;
  readonly name: string;
  readonly #timers: TimerApi;
  readonly #reconnect: Required<{ [K in keyof ReconnectOptions]: number }>;
  readonly #maxQueued: number;
  readonly #maxLine: number;
  #socket: Duplex | undefined;
  #open = false;
  #closed = false;
  #everConnected = false;
  #attempt = 0;
  #reconnectTimer: unknown;
  #seq = 0;
  /** Written, awaiting answers, in order. */
  readonly #outstanding: Pending[] = [];
  readonly #writeBuf: string[] = [];
  #writeScheduled = false;
  /** Not yet written (no connection). */
  readonly #queue: Pending[] = [];

  constructor(endpoint: ServerEndpoint, timers: TimerApi, options: ConnectionOptions = {}) {
    super();
    this.endpoint = endpoint;
    this.name =
      endpoint.transport === 'local'
        ? `local:${endpoint.host}`
        : `${endpoint.transport ?? 'tcp'}:${endpoint.host}:${endpoint.port}`;
    this.#timers = timers;
    const r = options.reconnect ?? {};
    this.#reconnect = {
      initialDelayMs: r.initialDelayMs ?? 100,
      maxDelayMs: r.maxDelayMs ?? 10_000,
      factor: r.factor ?? 2,
      jitter: r.jitter ?? 0.2,
    };
    this.#maxQueued = options.maxQueued ?? 10_000;
    this.#maxLine = options.maxResponseLineBytes ?? 65_536;
    this.#connect();
  }

  get connected(): boolean {
    return this.#open;
  }

  /** Requests written and not yet answered (including abandoned ones). */
  get inFlight(): number {
    return this.#outstanding.length;
  }

  /**
   * Sends a request (now, or when connected) and resolves with the decoded response, whatever
   * its status. Rejects with FCP_ERR_TIMEOUT, FCP_ERR_CONNECTION, FCP_ERR_PROTOCOL or
   * FCP_ERR_CLOSED.
   */
  request(req: UnsequencedRequest, deadlineMs: number): Promise<DecodedResponse> {
    if (this.#closed) {
      return Promise.reject(new FcpError(FcpErrorCode.CLOSED, `${this.name}: client closed`));
    }
    this.#seq = this.#seq >= MAX_SEQ ? 1 : this.#seq + 1;
    const seq = this.#seq;
    const wire = encodeRequestWithSeq(req, seq);
    return new Promise<DecodedResponse>((resolve, reject) => {
      const p: Pending = {
        seq,
        method: req.method,
        wire,
        sentAt: this.#timers.now(),
        resolve,
        reject,
        timer: undefined,
        abandoned: false,
        written: false,
      };
      p.timer = this.#timers.setTimeout(() => this.#onDeadline(p), deadlineMs);
      if (this.#open && this.#socket) {
        this.#write(p);
      } else if (this.#queue.length >= this.#maxQueued) {
        this.#timers.clearTimeout(p.timer);
        reject(new FcpError(FcpErrorCode.CONNECTION, `${this.name}: not connected, queue full`));
      } else {
        this.#queue.push(p);
      }
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#reconnectTimer !== undefined) this.#timers.clearTimeout(this.#reconnectTimer);
    this.#failAll(new FcpError(FcpErrorCode.CLOSED, `${this.name}: client closed`), true);
    this.#socket?.destroy();
    this.#socket = undefined;
    this.#open = false;
  }

  #write(p: Pending): void {
    p.written = true;
    this.#outstanding.push(p);
    if (this.endpoint.transport === 'local') {
      // No syscall to save: the server reads it now, in this turn.
      this.#socket?.write(p.wire);
      return;
    }
    // Coalesce the requests issued in this run of code (a callback and the promise reactions
    // it starts) into one write, one syscall. Not setImmediate: in a process that also reads a
    // UDP socket (the proxy), libuv hands over a burst of up to 32 datagrams before it runs
    // the immediates, so a SET waited for the whole burst to be processed (a few ms).
    this.#writeBuf.push(p.wire);
    if (!this.#writeScheduled) {
      this.#writeScheduled = true;
      process.nextTick(() => {
        this.#writeScheduled = false;
        const data = this.#writeBuf.join('');
        this.#writeBuf.length = 0;
        if (data !== '') this.#socket?.write(data);
      });
    }
  }

  #connect(): void {
    if (this.#closed) return;
    const { host, port, connect } = this.endpoint;
    const decoder = new ResponseDecoder(
      (i) => {
        const p = this.#outstanding[i];
        return p ? bodyKind(p.method) : 'none';
      },
      { maxLineBytes: this.#maxLine },
    );
    const onUp = (): void => {
      if (this.#closed) return;
      this.#open = true;
      this.#attempt = 0;
      const reconnected = this.#everConnected;
      this.#everConnected = true;
      if (socket instanceof net.Socket) socket.setNoDelay(true);
      for (const p of this.#queue.splice(0)) this.#write(p);
      this.emit('connect', { reconnected });
    };
    let socket: Duplex;
    if (this.endpoint.transport === 'local') {
      try {
        if (connect === undefined) throw new Error('no connect function for a local server');
        socket = connect();
      } catch (e) {
        // The server is not running (yet, or any more): try again later, as after a refused
        // TCP connection.
        this.emit('protocol-error', { detail: `${this.name}: ${(e as Error).message}` });
        this.#scheduleReconnect();
        return;
      }
      // Up at once; announced after the caller has attached its listeners.
      queueMicrotask(onUp);
    } else {
      socket =
        this.endpoint.transport === 'tls'
          ? tls.connect({ host, port, ...this.endpoint.tls }, onUp)
          : net.connect({ host, port }, onUp);
    }
    this.#socket = socket;
    socket.setEncoding('latin1');
    let error: Error | undefined;
    socket.on('error', (e) => {
      error = e;
    });
    socket.on('data', (chunk: string) => {
      if (socket.destroyed) return;
      for (const ev of decoder.push(chunk)) {
        switch (ev.kind) {
          case 'response':
            this.#onResponse(ev.response, socket);
            break;
          case 'junk':
            this.emit('junk', { line: ev.line });
            break;
          case 'too-long':
            this.#protocolError(socket, `response line over ${ev.limit} bytes`);
            break;
        }
        if (this.#socket !== socket || socket.destroyed) return;
      }
    });
    socket.on('close', () => {
      if (this.#socket !== socket) return;
      this.#socket = undefined;
      this.#writeBuf.length = 0;
      const wasOpen = this.#open;
      this.#open = false;
      this.#failAll(
        new FcpError(FcpErrorCode.CONNECTION, `${this.name}: connection lost`, { cause: error }),
        false,
      );
      if (wasOpen) this.emit('disconnect', { error });
      this.#scheduleReconnect();
    });
  }

  #scheduleReconnect(): void {
    if (this.#closed) return;
    const r = this.#reconnect;
    const base = Math.min(r.maxDelayMs, r.initialDelayMs * r.factor ** this.#attempt);
    const delayMs = Math.max(0, Math.round(base * (1 + (Math.random() * 2 - 1) * r.jitter)));
    this.#attempt++;
    this.emit('reconnect-scheduled', { delayMs, attempt: this.#attempt });
    this.#reconnectTimer = this.#timers.setTimeout(() => {
      this.#reconnectTimer = undefined;
      this.#connect();
    }, delayMs);
  }

  #onResponse(resp: DecodedResponse, socket: Duplex): void {
    const p = this.#outstanding.shift();
    if (!p) {
      this.#protocolError(socket, `unsolicited response (status ${resp.status})`);
      return;
    }
    if (resp.seq !== undefined && resp.seq !== 0 && resp.seq !== p.seq) {
      // Order and SEQ disagree: the stream cannot be trusted any more.
      this.#outstanding.unshift(p);
      this.#protocolError(socket, `response SEQ=${resp.seq} does not match request SEQ=${p.seq}`);
      return;
    }
    this.#timers.clearTimeout(p.timer);
    if (!p.abandoned) p.resolve(resp);
  }

  #protocolError(socket: Duplex, detail: string): void {
    this.emit('protocol-error', { detail });
    for (const p of this.#outstanding.splice(0)) this.#fail(p, FcpErrorCode.PROTOCOL, detail);
    socket.destroy();
  }

  #onDeadline(p: Pending): void {
    if (p.abandoned) return;
    p.abandoned = true;
    p.reject(
      new FcpError(FcpErrorCode.TIMEOUT, `${this.name}: no answer to ${p.method} SEQ=${p.seq}`),
    );
    const qi = this.#queue.indexOf(p);
    if (qi !== -1) {
      this.#queue.splice(qi, 1);
      return;
    }
    // Answers come in order: if the oldest request is overdue, the server is stuck. Drop the
    // connection so later requests are not stuck behind it; the reconnect re-installs state.
    if (this.#outstanding[0] === p) this.#socket?.destroy();
  }

  #fail(p: Pending, code: FcpErrorCode, detail: string, cause?: Error): void {
    this.#timers.clearTimeout(p.timer);
    if (p.abandoned) return;
    p.abandoned = true;
    p.reject(new FcpError(code, `${this.name}: ${detail}`, { cause }));
  }

  #failAll(err: FcpError, includeQueued: boolean): void {
    const victims = this.#outstanding.splice(0);
    if (includeQueued) victims.push(...this.#queue.splice(0));
    for (const p of victims) {
      this.#timers.clearTimeout(p.timer);
      if (p.abandoned) continue;
      p.abandoned = true;
      p.reject(err);
    }
  }

  /** Time the oldest outstanding request was sent (for diagnostics). */
  oldestSentAt(): number | undefined {
    return this.#outstanding[0]?.sentAt;
  }
}
