/**
 * Worker dispatch (`workers` > 1). Every worker receives on the same UDP sockets (node:cluster
 * shares the bound handle), so the kernel hands a datagram to whichever worker reads first. Each
 * Call-ID has one owner, `fnv1a(Call-ID) mod N`; a worker that reads a datagram it does not own
 * passes it, with the original source address, to the owner over a loopback socket. The owner
 * answers through the shared socket, so replies leave from the public port. Retransmissions,
 * CANCELs, ACKs and in-dialog requests carry the Call-ID of their call and so reach the worker
 * holding its transactions and policy state. See README.md, "Workers".
 */
import { createSocket, type Socket } from 'node:dgram';
import { fnv1a } from './sip-util.js';
import type { Inbound, Listener, Peer } from './transport.js';

const LF = 0x0a;
const CR = 0x0d;

/** The Call-ID of a raw message (`Call-ID:` or compact `i:`), found without a full parse. */
export function callIdOf(bytes: Buffer): string | undefined {
  const n = Math.min(bytes.length, 16_384);
  let i = 0;
  while (i < n) {
    const nl = bytes.indexOf(LF, i);
    if (nl < 0 || nl >= n) return undefined;
    const start = nl + 1;
    if (start < n && (bytes[start] === CR || bytes[start] === LF)) return undefined; // end of head
    const c = bytes[start]! | 0x20;
    if (c === 0x63 /* c */ || c === 0x69 /* i */) {
      const end = bytes.indexOf(LF, start);
      const line = bytes.toString('latin1', start, end < 0 ? n : end);
      const colon = line.indexOf(':');
      if (colon > 0) {
        const name = line.slice(0, colon).trim().toLowerCase();
        if (name === 'call-id' || name === 'i') return line.slice(colon + 1).trim();
      }
    }
    i = start;
  }
  return undefined;
}

export function ownerOf(callId: string, workers: number): number {
  return parseInt(fnv1a([callId]), 16) % workers;
}

const MAGIC = 'PHFWD1';

export interface DispatchOptions {
  readonly index: number;
  readonly count: number;
  /** Shared secret of the cluster: loopback datagrams without it are ignored. */
  readonly token: string;
  /** Delivers a message this worker owns (forwarded by a sibling). */
  deliver(msg: Inbound): void;
  /** Listener by its index in the configuration (the same in every worker). */
  listenerAt(index: number): Listener | undefined;
}

export class WorkerDispatch {
  readonly #o: DispatchOptions;
  #socket: Socket | undefined;
  #peers: readonly number[] = [];
  forwarded = 0;

  constructor(opts: DispatchOptions) {
    this.#o = opts;
  }

  /** Binds the loopback socket siblings forward to; returns its port. */
  async start(): Promise<number> {
    const s = createSocket({ type: 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
    await new Promise<void>((resolve) =>
      s.bind({ address: '127.0.0.1', port: 0, exclusive: true }, resolve),
    );
    s.on('message', (buf, rinfo) => {
      if (rinfo.address !== '127.0.0.1' || !this.#peers.includes(rinfo.port)) return;
      this.#receive(buf);
    });
    s.on('error', () => undefined);
    this.#socket = s;
    return s.address().port;
  }

  /** The loopback ports of every worker, by worker index. */
  setPeers(ports: readonly number[]): void {
    this.#peers = ports;
  }

  /**
   * Called for every datagram read from a shared socket: true when it belongs to another
   * worker and was passed on.
   */
  intercept(msg: Inbound, listenerIndex: number): boolean {
    if (this.#o.count <= 1 || this.#peers.length !== this.#o.count || !this.#socket) return false;
    if (msg.bytes === undefined) return false;
    const callId = callIdOf(msg.bytes);
    if (callId === undefined) return false;
    const owner = ownerOf(callId, this.#o.count);
    if (owner === this.#o.index) return false;
    const head = Buffer.from(
      `${MAGIC} ${this.#o.token} ${listenerIndex} ${msg.peer.transport} ${msg.peer.address} ${msg.peer.port}\n`,
      'latin1',
    );
    this.#socket.send(Buffer.concat([head, msg.bytes]), this.#peers[owner], '127.0.0.1');
    this.forwarded++;
    return true;
  }

  #receive(buf: Buffer): void {
    const nl = buf.indexOf(LF);
    if (nl < 0 || nl > 200) return;
    const parts = buf.toString('latin1', 0, nl).split(' ');
    if (parts.length !== 6 || parts[0] !== MAGIC || parts[1] !== this.#o.token) return;
    const listener = this.#o.listenerAt(Number(parts[2]));
    if (!listener) return;
    const peer: Peer = {
      transport: parts[3] === 'tcp' ? 'tcp' : 'udp',
      address: parts[4]!,
      port: Number(parts[5]),
    };
    this.#o.deliver({ bytes: buf.subarray(nl + 1), peer, listener });
  }

  close(): void {
    this.#socket?.close();
    this.#socket = undefined;
  }
}
