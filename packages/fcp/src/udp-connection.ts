/**
 * FCP over UDP, client side (spec §1: one datagram = one request, the reply goes back to the
 * datagram's source). UDP loses and reorders datagrams, so replies are matched by SEQ, and a
 * request is retransmitted with the same SEQ (spec §6 #32: 0.5 s, doubling, at most 4 sends);
 * the server's reply cache makes the retransmission of a RELEASE safe.
 */
import * as dgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import type { ConnectionEvents, ServerEndpoint, UnsequencedRequest } from './connection.js';
import { FcpError, FcpErrorCode } from './errors.js';
import type { TimerApi } from './expiry-queue.js';
import { parseAddress } from './ip.js';
import { encodeRequestWithSeq, type FcpRequest } from './request.js';
import { ResponseDecoder, type DecodedResponse, type ResponseBodyKind } from './response.js';

export interface UdpConnectionOptions {
  /** First retransmission after this many ms, then doubling. Default 500. */
  readonly retransmitMs?: number | undefined;
  /** Sends per request, the first included. Default 4. */
  readonly maxSends?: number | undefined;
}

interface Pending {
  readonly seq: number;
  readonly method: FcpRequest['method'];
  readonly wire: Buffer;
  readonly resolve: (r: DecodedResponse) => void;
  readonly reject: (e: FcpError) => void;
  deadline: unknown;
  retransmit: unknown;
  sends: number;
}

const MAX_SEQ = 999_999_999;

function bodyKind(method: FcpRequest['method']): ResponseBodyKind {
  return method === 'QUERY' ? 'query' : method === 'QUERYNAT' ? 'nat' : 'none';
}

export class FcpUdpConnection extends EventEmitter<ConnectionEvents> {
  readonly endpoint: ServerEndpoint;
  readonly name: string;
  readonly #timers: TimerApi;
  readonly #socket: dgram.Socket;
  readonly #pending = new Map<number, Pending>();
  readonly #retransmitMs: number;
  readonly #maxSends: number;
  #bound = false;
  #closed = false;
  #seq = 0;
  readonly #waiting: Pending[] = [];

  constructor(endpoint: ServerEndpoint, timers: TimerApi, options: UdpConnectionOptions = {}) {
    super();
    this.endpoint = endpoint;
    this.name = `udp:${endpoint.host}:${endpoint.port}`;
    this.#timers = timers;
    this.#retransmitMs = options.retransmitMs ?? 500;
    this.#maxSends = options.maxSends ?? 4;
    const family = parseAddress(endpoint.host)?.family === 6 ? 'udp6' : 'udp4';
    this.#socket = dgram.createSocket(family);
    this.#socket.on('error', () => {});
    this.#socket.on('message', (msg, rinfo) => {
      if (rinfo.port === endpoint.port) this.#onDatagram(msg);
    });
    this.#socket.bind(0, () => {
      if (this.#closed) return;
      this.#bound = true;
      for (const p of this.#waiting.splice(0)) this.#send(p);
      this.emit('connect', { reconnected: false });
    });
  }

  get connected(): boolean {
    return this.#bound && !this.#closed;
  }

  request(req: UnsequencedRequest, deadlineMs: number): Promise<DecodedResponse> {
    if (this.#closed) {
      return Promise.reject(new FcpError(FcpErrorCode.CLOSED, `${this.name}: client closed`));
    }
    this.#seq = this.#seq >= MAX_SEQ ? 1 : this.#seq + 1;
    const seq = this.#seq;
    const wire = Buffer.from(encodeRequestWithSeq(req, seq), 'latin1');
    return new Promise<DecodedResponse>((resolve, reject) => {
      const p: Pending = {
        seq,
        method: req.method,
        wire,
        resolve,
        reject,
        deadline: undefined,
        retransmit: undefined,
        sends: 0,
      };
      p.deadline = this.#timers.setTimeout(() => {
        this.#finish(p);
        reject(
          new FcpError(FcpErrorCode.TIMEOUT, `${this.name}: no answer to ${p.method} SEQ=${seq}`),
        );
      }, deadlineMs);
      this.#pending.set(seq, p);
      if (this.#bound) this.#send(p);
      else this.#waiting.push(p);
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const p of [...this.#pending.values()]) {
      this.#finish(p);
      p.reject(new FcpError(FcpErrorCode.CLOSED, `${this.name}: client closed`));
    }
    this.#socket.close();
  }

  #send(p: Pending): void {
    if (this.#closed || !this.#pending.has(p.seq)) return;
    p.sends++;
    this.#socket.send(p.wire, this.endpoint.port, this.endpoint.host, () => {});
    if (p.sends < this.#maxSends) {
      const delay = this.#retransmitMs * 2 ** (p.sends - 1);
      p.retransmit = this.#timers.setTimeout(() => this.#send(p), delay);
    }
  }

  #finish(p: Pending): void {
    this.#pending.delete(p.seq);
    this.#timers.clearTimeout(p.deadline);
    if (p.retransmit !== undefined) this.#timers.clearTimeout(p.retransmit);
  }

  #onDatagram(msg: Buffer): void {
    const text = msg.toString('latin1');
    const m = /^\s*FCP\s*=\s*\S+\s+SEQ\s*=\s*(\d{1,10})/i.exec(text);
    let p: Pending | undefined;
    if (m?.[1]) p = this.#pending.get(Number(m[1]));
    // A reply without SEQ (or SEQ=0) can only be matched when one request is outstanding.
    if (!p && (!m || m[1] === '0') && this.#pending.size === 1) {
      p = this.#pending.values().next().value;
    }
    if (!p) {
      this.emit('junk', { line: text.split(/\r?\n/)[0] ?? '' });
      return;
    }
    const kind = bodyKind(p.method);
    const decoder = new ResponseDecoder(() => kind);
    const events = [...decoder.push(msg), ...decoder.push('\r\n')];
    const resp = events.find((e) => e.kind === 'response');
    if (resp?.kind !== 'response') {
      this.emit('protocol-error', { detail: `unreadable UDP reply to SEQ=${p.seq}` });
      return;
    }
    this.#finish(p);
    p.resolve(resp.response);
  }
}
