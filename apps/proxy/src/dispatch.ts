/**
 * Worker dispatch (`workers` > 1). Every worker receives on the same UDP sockets (node:cluster
 * shares the bound handle), so the kernel hands a datagram to whichever worker reads first. Each
 * Call-ID has one owner, `fnv1a(Call-ID) mod N`; a worker that reads a datagram it does not own
 * passes it, with the original source address, to the owner over a loopback socket. The owner
 * answers through the shared socket, so replies leave from the public port. Retransmissions,
 * CANCELs, ACKs and in-dialog requests carry the Call-ID of their call and so reach the worker
 * holding its transactions and policy state. See README.md, "Workers".
 *
 * Order: a message this worker reads from a shared socket and owns waits, before it is
 * handled, until the loopback socket has been read up to then (a read barrier, read-barrier.ts).
 * Without that, a caller's BYE read here directly overtook the ACK a sibling had read 500 ms
 * earlier and passed on, while this worker's loopback queue was long: the callee got the BYE
 * before the ACK. Through the barrier, the two queues are handled in the order they were filled,
 * as one shared queue would be (up to the messages read in the same turn of the event loop, whose
 * order between the two queues is not known).
 *
 * TCP: a connection lives in the worker that accepted (or opened) it and cannot move. A message
 * read on it whose Call-ID another worker owns is passed to the owner like a datagram, with the
 * index of the worker holding the connection; what the owner then sends to that peer (responses,
 * in-dialog requests) comes back over the loopback socket and is written on the connection.
 */
import { createSocket, type Socket } from 'node:dgram';
import { serialize } from '@pinhole/sip';
import { PROBE_BYTES, ReadBarrier } from './read-barrier.js';
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

/** A message for its owner: `PHFWD1 token listener transport address port [holder]`. */
const MAGIC = 'PHFWD1';
/** Bytes for a TCP connection the receiving worker holds: `PHTCP1 token address port`. */
const MAGIC_TCP = 'PHTCP1';

export interface DispatchOptions {
  readonly index: number;
  readonly count: number;
  /** Shared secret of the cluster: loopback datagrams without it are ignored. */
  readonly token: string;
  /** Delivers a message this worker owns (forwarded by a sibling). */
  deliver(msg: Inbound): void;
  /** Listener by its index in the configuration (the same in every worker). */
  listenerAt(index: number): Listener | undefined;
  /** Writes bytes on an open TCP connection of this worker; false when there is none. */
  writeExisting?(bytes: Buffer, peer: Peer): boolean;
  /** Something an operator should see (a probe of the order barrier lost), once. */
  onWarning?(message: string): void;
  /** A message handler threw after waiting on the order barrier. */
  onError?(message: string): void;
}

export class WorkerDispatch {
  readonly #o: DispatchOptions;
  #socket: Socket | undefined;
  #peers: readonly number[] = [];
  /** Messages read from a shared socket wait on it for what siblings passed on before them. */
  #barrier: ReadBarrier | undefined;
  forwarded = 0;
  /** Messages of this worker read from a shared socket that waited for the loopback queue. */
  ordered = 0;
  /** TCP bytes passed back to the worker holding the connection. */
  relayed = 0;

  constructor(opts: DispatchOptions) {
    this.#o = opts;
  }

  /** Binds the loopback socket siblings forward to; returns its port. */
  async start(): Promise<number> {
    const s = createSocket({ type: 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
    await new Promise<void>((resolve) =>
      s.bind({ address: '127.0.0.1', port: 0, exclusive: true }, resolve),
    );
    const port = s.address().port;
    const barrier = new ReadBarrier({
      targets: () => (this.#socket === s ? [{ socket: s, address: '127.0.0.1', port }] : []),
      // A probe lost to a full loopback queue holds this worker's own messages this long.
      timeoutMs: 1_000,
      onError: (err) => this.#o.onError?.(`order barrier: ${(err as Error).message}`),
      onFirstTimeout: () =>
        this.#o.onWarning?.(
          'worker dispatch: a probe through the loopback socket did not come back in 1 s (a ' +
            'full loopback queue): messages read from the shared socket were handled without ' +
            'waiting for what siblings passed on',
        ),
    });
    s.on('message', (buf, rinfo) => {
      if (buf.length === PROBE_BYTES && barrier.take(buf)) return;
      if (rinfo.address !== '127.0.0.1' || !this.#peers.includes(rinfo.port)) return;
      this.#receive(buf);
    });
    s.on('error', () => undefined);
    this.#socket = s;
    this.#barrier = barrier;
    return port;
  }

  /** The loopback socket's port and receive buffer (overload control watches its queue). */
  get socketInfo(): { port: number; recvBufferBytes: number } | undefined {
    const s = this.#socket;
    if (s === undefined) return undefined;
    try {
      return { port: s.address().port, recvBufferBytes: s.getRecvBufferSize() };
    } catch {
      return undefined;
    }
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
    let callId: string | undefined;
    let bytes: Buffer | undefined;
    if (msg.bytes !== undefined) {
      bytes = msg.bytes;
      callId = callIdOf(bytes);
    } else if (msg.parsed?.ok === true) {
      // A stream message: already parsed; unmodified, it serialises to its own bytes.
      callId = msg.parsed.message.callId();
    }
    if (callId === undefined) return false;
    const owner = ownerOf(callId, this.#o.count);
    if (owner === this.#o.index) {
      const barrier = this.#barrier;
      // A TCP connection keeps its own order; a datagram waits for the loopback queue.
      if (msg.bytes === undefined || barrier === undefined) return false;
      this.ordered++;
      barrier.wait(() => this.#o.deliver(msg));
      return true;
    }
    if (bytes === undefined && msg.parsed?.ok === true) bytes = serialize(msg.parsed.message);
    if (bytes === undefined || bytes.length > 65_000) return false; // one loopback datagram
    const holder = msg.peer.transport === 'tcp' ? ` ${this.#o.index}` : '';
    const head = Buffer.from(
      `${MAGIC} ${this.#o.token} ${listenerIndex} ${msg.peer.transport} ${msg.peer.address} ${msg.peer.port}${holder}\n`,
      'latin1',
    );
    this.#socket.send(Buffer.concat([head, bytes]), this.#peers[owner], '127.0.0.1');
    this.forwarded++;
    return true;
  }

  /**
   * The owner's side: bytes for a TCP peer whose connection `worker` holds. Returns false when
   * they cannot be passed on (no sibling socket, or too large for one datagram).
   */
  relay(bytes: Buffer | Uint8Array, peer: Peer, worker: number): boolean {
    const port = this.#peers[worker];
    if (!this.#socket || port === undefined || bytes.length > 65_000) return false;
    const head = Buffer.from(
      `${MAGIC_TCP} ${this.#o.token} ${peer.address} ${peer.port}\n`,
      'latin1',
    );
    this.#socket.send(Buffer.concat([head, bytes]), port, '127.0.0.1');
    this.relayed++;
    return true;
  }

  #receive(buf: Buffer): void {
    const nl = buf.indexOf(LF);
    if (nl < 0 || nl > 200) return;
    const parts = buf.toString('latin1', 0, nl).split(' ');
    if (parts[1] !== this.#o.token) return;
    if (parts[0] === MAGIC_TCP && parts.length === 4) {
      const peer: Peer = { transport: 'tcp', address: parts[2]!, port: Number(parts[3]) };
      this.#o.writeExisting?.(buf.subarray(nl + 1), peer);
      return;
    }
    if ((parts.length !== 6 && parts.length !== 7) || parts[0] !== MAGIC) return;
    const listener = this.#o.listenerAt(Number(parts[2]));
    if (!listener) return;
    const peer: Peer = {
      transport: parts[3] === 'tcp' ? 'tcp' : 'udp',
      address: parts[4]!,
      port: Number(parts[5]),
    };
    const holder = parts[6] === undefined ? undefined : Number(parts[6]);
    this.#o.deliver({
      bytes: buf.subarray(nl + 1),
      peer,
      listener,
      readAt: performance.now(),
      ...(peer.transport === 'tcp' && holder !== undefined && Number.isInteger(holder)
        ? { remoteWorker: holder }
        : {}),
    });
  }

  close(): void {
    this.#socket?.close();
    this.#socket = undefined;
    // Messages still waiting are handled now (the worker is stopping).
    this.#barrier?.close();
    this.#barrier = undefined;
  }
}
