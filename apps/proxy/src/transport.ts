/**
 * UDP and TCP transport (RFC 3261 §18) over several listen addresses, IPv4 and IPv6. Delivers
 * each received message as bytes with where it came from; sends bytes to a peer, over the
 * connection a request arrived on when there is one (§18.2.2) or a new one.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { lookup as dnsLookup, type LookupOneOptions } from 'node:dns';
import { createServer, connect, isIP, type Server, type Socket as TcpSocket } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { ListenAddress, TransportName } from './config.js';
import { ProxyError, ProxyErrorCode } from './errors.js';
import { SipStreamParser, type ParseResult } from '@pinhole/sip';
import { PROBE_BYTES, ReadBarrier, type BarrierTarget } from './read-barrier.js';

/**
 * A received datagram as a Buffer made in JavaScript: a view of the same memory, no copy. Node
 * makes a datagram's Buffer in C++, where it gets a different hidden class from every Buffer
 * made in JavaScript (the warm-up's synthetic messages, a stream's frames, the loopback
 * dispatch's payloads). Code V8 optimised for one class is thrown away ("wrong map") the
 * first time it meets the other, so each process's first live calls would run the parser and
 * the core unoptimised while V8 compiled them again; with one class, the warm-up's compiled
 * code serves the live traffic as it is.
 */
export function datagramBytes(bytes: Buffer): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * A received datagram as the core gets it: its bytes as `datagramBytes` makes them, read now.
 * The transport's sockets and the warm-up's scripted peers both make theirs here (one shape).
 */
export function udpInbound(bytes: Buffer, peer: Peer, listener: Listener): Inbound {
  return { bytes: datagramBytes(bytes), peer, listener, readAt: performance.now() };
}

/** Socket buffers: Kamailio's first failure at high rates was datagrams dropped at its socket. */
export const SOCKET_BUFFER_BYTES: number = 4 * 1024 * 1024;

export interface Peer {
  readonly transport: TransportName;
  readonly address: string;
  readonly port: number;
}

/** A bound listener with its real port and the address put in Via and Record-Route. */
export interface Listener {
  readonly transport: TransportName;
  readonly host: string;
  readonly port: number;
  readonly family: 4 | 6;
  /** IP for Via / Record-Route (the bound host, or the advertised one for a wildcard bind). */
  readonly advertise: string;
  /** The receive buffer the kernel granted (UDP), bytes. */
  readonly recvBufferBytes?: number;
  /** Position in the configured `listen` list (the same in every worker). */
  readonly index: number;
}

/**
 * A received message: a datagram's `bytes` (parsed by the core), or a message framed and parsed
 * from a stream (`parsed`, with its bytes for the worker dispatch).
 */
export interface Inbound {
  readonly bytes?: Buffer;
  readonly parsed?: ParseResult;
  readonly peer: Peer;
  readonly listener: Listener;
  /**
   * Workers: the message came over a TCP connection held by this sibling worker (it passed the
   * message to its Call-ID's owner); sends to the peer go back through that worker.
   */
  readonly remoteWorker?: number;
  /**
   * When the transport read the message (`performance.now()`): the datagram off its socket, or
   * the TCP segment that completed it; a message a sibling worker passed on, when its owner read
   * it from the loopback socket. The pinhole step of a held response counts from here.
   */
  readonly readAt?: number;
}

/**
 * A listener record. Every listener is made here, in one property order with every property
 * set, so that they all share one hidden class (the warm-up's too: code V8 optimised for one
 * serves the others).
 */
export function makeListener(
  transport: TransportName,
  host: string,
  port: number,
  family: 4 | 6,
  advertise: string,
  index: number,
  recvBufferBytes: number | undefined,
): Listener {
  return { transport, host, port, family, advertise, recvBufferBytes, index };
}

export interface TransportEvents {
  onMessage(msg: Inbound): void;
  /** A stream that cannot be framed, a refused connection, a send error. Never throws. */
  onError?(err: { peer?: Peer; message: string }): void;
  /** Something an operator should see (logged at warn), once per cause. */
  onWarning?(message: string): void;
  /**
   * Workers: takes a message another worker owns, or one of this worker that must wait for what
   * siblings passed on before it (returns true when it took it).
   */
  intercept?(msg: Inbound, listenerIndex: number): boolean;
  /**
   * Workers: bytes for a TCP peer whose connection another worker holds (`worker`). Returns
   * false when they could not be passed on.
   */
  relay?(bytes: Buffer | Uint8Array, peer: Peer, worker: number): boolean;
}

export interface TransportOptions {
  /** IP for Via/Record-Route when bound to 0.0.0.0 or ::. */
  readonly advertise?: string | undefined;
  readonly maxMessageBytes?: number;
  /** Idle TCP connections are closed after this long (default 10 min). */
  readonly tcpIdleMs?: number;
  /** Workers: bind non-exclusively so node:cluster shares each socket among the workers. */
  readonly shared?: boolean;
}

function wildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::';
}

/** The first non-internal address of a family, for a wildcard bind without --advertise. */
export function defaultAdvertise(family: 4 | 6): string {
  const ifs = networkInterfaces();
  for (const list of Object.values(ifs)) {
    for (const a of list ?? []) {
      if (a.internal) continue;
      if ((family === 4 && a.family === 'IPv4') || (family === 6 && a.family === 'IPv6')) {
        if (family === 6 && a.address.startsWith('fe80')) continue;
        return a.address;
      }
    }
  }
  return family === 4 ? '127.0.0.1' : '::1';
}

function peerKey(p: { address: string; port: number }): string {
  return `${p.address}|${p.port}`;
}

interface UdpBinding {
  readonly socket: UdpSocket;
  readonly listener: Listener;
}

interface TcpBinding {
  readonly server: Server;
  readonly listener: Listener;
}

/**
 * The UDP sockets' name lookup: an address literal (every send of the proxy: peers are
 * addresses) answers at once, where `dns.lookup` defers each send by a tick (a `nextTick` and a
 * lookup per datagram). Names still go to `dns.lookup`.
 */
function literalFirstLookup(
  hostname: string,
  options: LookupOneOptions,
  callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void,
): void {
  const family = isIP(hostname);
  if (family !== 0) callback(null, hostname, family);
  else dnsLookup(hostname, options, callback);
}

export class Transports {
  readonly #events: TransportEvents;
  readonly #opts: TransportOptions;
  readonly #udp: UdpBinding[] = [];
  /**
   * Workers: one private UDP socket per UDP listener (same address, its own port), from which
   * this worker sends the requests it forwards. Their Via names it, so the responses come
   * straight back to this worker instead of to whichever worker reads the shared socket.
   */
  readonly #private: UdpBinding[] = [];
  readonly #tcp: TcpBinding[] = [];
  /** Open TCP connections by remote address and port (inbound and outbound). */
  readonly #conns = new Map<string, { socket: TcpSocket; listener: Listener }>();
  /** Workers: TCP peers whose connection a sibling holds, by remote address and port. */
  readonly #remote = new Map<string, number>();
  #closed = false;
  /** See `afterInput`. */
  readonly #barrier: ReadBarrier;

  constructor(events: TransportEvents, opts: TransportOptions = {}) {
    this.#events = events;
    this.#opts = opts;
    this.#barrier = new ReadBarrier({
      targets: () => this.#barrierTargets(),
      onError: (err) =>
        this.#events.onError?.({ message: `read barrier: ${(err as Error).message}` }),
      onFirstTimeout: () =>
        this.#events.onWarning?.(
          'read barrier: a probe to its own socket did not come back in 1 s (a full receive ' +
            'buffer, or a firewall dropping what the proxy sends to itself): retransmissions ' +
            'waited that long',
        ),
    });
  }

  /**
   * Calls `fn` once the UDP datagrams this process had received when it was called have been
   * read (`Transport.afterInput` of @pinhole/transaction; see read-barrier.ts): retransmission
   * timers wait on it, so a response already in a socket buffer stops a needless retransmission.
   */
  afterInput(fn: () => void): void {
    if (this.#closed) fn();
    else this.#barrier.wait(fn);
  }

  /** The probe rounds so far and those released by their timeout (tests, diagnostics). */
  get barrierStats(): { readonly probes: number; readonly timeouts: number } {
    return this.#barrier.stats;
  }

  /** Sockets only this process reads: the listeners alone, or a worker's private sockets. */
  #barrierTargets(): BarrierTarget[] {
    const own = this.#opts.shared === true ? this.#private : this.#udp;
    return own.map((b) => ({
      socket: b.socket,
      address: wildcard(b.listener.host)
        ? b.listener.family === 6
          ? '::1'
          : '127.0.0.1'
        : b.listener.host,
      port: b.listener.port,
    }));
  }

  get listeners(): Listener[] {
    return [...this.#udp.map((u) => u.listener), ...this.#tcp.map((t) => t.listener)];
  }

  /** Workers: the private sockets (see `privateFor`). Empty without `shared`. */
  get privateListeners(): Listener[] {
    return this.#private.map((u) => u.listener);
  }

  /** Workers: the private socket of a shared UDP listener, for forwarded requests. */
  privateFor(listener: Listener): Listener | undefined {
    if (listener.transport !== 'udp') return undefined;
    return this.#private.find((u) => u.listener.index === listener.index)?.listener;
  }

  async listen(addrs: readonly ListenAddress[]): Promise<Listener[]> {
    this.#closed = false;
    const out: Listener[] = [];
    for (const [i, a] of addrs.entries()) {
      out.push(a.transport === 'udp' ? await this.#listenUdp(a, i) : await this.#listenTcp(a, i));
    }
    return out;
  }

  #advertise(a: ListenAddress): string {
    if (!wildcard(a.host)) return a.host;
    const adv = this.#opts.advertise;
    if (adv !== undefined && isIP(adv) === a.family) return adv;
    return defaultAdvertise(a.family);
  }

  async #bindUdp(a: ListenAddress, port: number, exclusive: boolean): Promise<UdpSocket> {
    const socket = createSocket({
      type: a.family === 6 ? 'udp6' : 'udp4',
      ipv6Only: a.family === 6,
      recvBufferSize: SOCKET_BUFFER_BYTES,
      sendBufferSize: SOCKET_BUFFER_BYTES,
      lookup: literalFirstLookup,
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', (err) =>
        reject(
          new ProxyError(ProxyErrorCode.LISTEN, `cannot listen on udp:${a.host}:${port}`, {
            cause: err,
          }),
        ),
      );
      socket.bind({ address: a.host, port, exclusive }, () => resolve());
    });
    socket.removeAllListeners('error');
    socket.on('error', (err) => this.#events.onError?.({ message: `udp: ${err.message}` }));
    return socket;
  }

  async #listenUdp(a: ListenAddress, index: number): Promise<Listener> {
    const socket = await this.#bindUdp(a, a.port, this.#opts.shared !== true);
    let recv: number | undefined;
    try {
      recv = socket.getRecvBufferSize();
    } catch {
      recv = undefined;
    }
    const listener = makeListener(
      'udp',
      a.host,
      socket.address().port,
      a.family,
      this.#advertise(a),
      index,
      recv,
    );
    const intercept = this.#events.intercept?.bind(this.#events);
    const barrier = this.#barrier;
    socket.on('message', (bytes, rinfo) => {
      if (bytes.length === PROBE_BYTES && barrier.take(bytes)) return;
      const msg = udpInbound(
        bytes,
        { transport: 'udp', address: rinfo.address, port: rinfo.port },
        listener,
      );
      if (intercept?.(msg, index)) return;
      this.#deliver(msg);
    });
    this.#udp.push({ socket, listener });
    if (this.#opts.shared === true) {
      const own = await this.#bindUdp(a, 0, true);
      const privateListener = makeListener(
        'udp',
        a.host,
        own.address().port,
        a.family,
        listener.advertise,
        index,
        recv,
      );
      own.on('message', (bytes, rinfo) => {
        if (bytes.length === PROBE_BYTES && barrier.take(bytes)) return;
        this.#deliver(
          udpInbound(
            bytes,
            { transport: 'udp', address: rinfo.address, port: rinfo.port },
            privateListener,
          ),
        );
      });
      this.#private.push({ socket: own, listener: privateListener });
    }
    return listener;
  }

  async #listenTcp(a: ListenAddress, index: number): Promise<Listener> {
    const server = createServer({ noDelay: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) =>
        reject(
          new ProxyError(ProxyErrorCode.LISTEN, `cannot listen on tcp:${a.host}:${a.port}`, {
            cause: err,
          }),
        ),
      );
      server.listen({ host: a.host, port: a.port, ipv6Only: a.family === 6 }, () => resolve());
    });
    server.removeAllListeners('error');
    const addr = server.address();
    const listener = makeListener(
      'tcp',
      a.host,
      typeof addr === 'object' && addr ? addr.port : a.port,
      a.family,
      this.#advertise(a),
      index,
      undefined,
    );
    server.on('connection', (socket) => this.#adopt(socket, listener));
    server.on('error', (err) => this.#events.onError?.({ message: `tcp: ${err.message}` }));
    this.#tcp.push({ server, listener });
    return listener;
  }

  /** Hands a message to the handler (also used for messages forwarded by another worker). */
  deliver(msg: Inbound): void {
    if (msg.remoteWorker !== undefined && msg.peer.transport === 'tcp') {
      const key = peerKey(msg.peer);
      // Bounded: the oldest mapping goes first (its connection is the likeliest to be gone).
      this.#remote.delete(key);
      if (this.#remote.size >= 10_000) {
        const oldest = this.#remote.keys().next();
        if (oldest.done !== true) this.#remote.delete(oldest.value);
      }
      this.#remote.set(key, msg.remoteWorker);
    }
    this.#deliver(msg);
  }

  /**
   * Workers: writes bytes a sibling passed back on an open TCP connection of this process.
   * Never opens a connection (the peer's port is a client's ephemeral port).
   */
  writeExisting(bytes: Buffer | Uint8Array, peer: Peer): boolean {
    const existing = this.#conns.get(peerKey(peer));
    if (!existing || this.#closed) return false;
    existing.socket.write(bytes);
    return true;
  }

  #deliver(msg: Inbound): void {
    try {
      this.#events.onMessage(msg);
    } catch (err) {
      // Wire input never throws out of a socket handler.
      this.#events.onError?.({ peer: msg.peer, message: `handler: ${(err as Error).message}` });
    }
  }

  #adopt(socket: TcpSocket, listener: Listener): void {
    const address = (socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    const peer: Peer = { transport: 'tcp', address, port: socket.remotePort ?? 0 };
    const key = peerKey(peer);
    this.#conns.set(key, { socket, listener });
    // RFC 3261 §18.3 framing by Content-Length, parsed in the same pass.
    const parser = new SipStreamParser(
      this.#opts.maxMessageBytes !== undefined
        ? { maxMessageBytes: this.#opts.maxMessageBytes }
        : {},
    );
    socket.setNoDelay(true);
    socket.setTimeout(this.#opts.tcpIdleMs ?? 600_000, () => socket.destroy());
    const intercept = this.#events.intercept?.bind(this.#events);
    socket.on('data', (chunk: Buffer) => {
      const readAt = performance.now();
      for (const parsed of parser.push(chunk)) {
        const msg: Inbound = { parsed, peer, listener, readAt };
        if (intercept?.(msg, listener.index)) continue;
        this.#deliver(msg);
      }
      const failed = parser.failed;
      if (failed !== undefined) {
        // No way to find the next message: the connection cannot be used any more.
        this.#events.onError?.({ peer, message: `tcp framing: ${failed.reason}` });
        socket.destroy();
      }
    });
    socket.on('error', (err) => this.#events.onError?.({ peer, message: err.message }));
    socket.on('close', () => {
      if (this.#conns.get(key)?.socket === socket) this.#conns.delete(key);
    });
  }

  /** The listener a message to this peer leaves from (same transport and family). */
  listenerFor(transport: TransportName, address: string): Listener | undefined {
    const fam = isIP(address) === 6 ? 6 : 4;
    const list = transport === 'udp' ? this.#udp : this.#tcp;
    return (list.find((b) => b.listener.family === fam) ?? list[0])?.listener;
  }

  /**
   * Sends one message. `via` picks the UDP socket (responses leave from the socket their request
   * arrived on). Errors are reported through `onError` and as `false`, never thrown.
   */
  send(bytes: Buffer | Uint8Array, peer: Peer, via?: Listener): boolean {
    if (this.#closed) return false;
    if (peer.transport === 'udp') {
      const fam = isIP(peer.address) === 6 ? 6 : 4;
      const b =
        (via &&
          (this.#udp.find((u) => u.listener === via && u.listener.family === fam) ??
            this.#private.find((u) => u.listener === via && u.listener.family === fam))) ??
        this.#udp.find((u) => u.listener.family === fam);
      if (!b) {
        this.#events.onError?.({ peer, message: `no udp${fam} listener to send from` });
        return false;
      }
      b.socket.send(bytes, peer.port, peer.address, (err) => {
        if (err) this.#events.onError?.({ peer, message: `udp send: ${err.message}` });
      });
      return true;
    }
    const existing = this.#conns.get(peerKey(peer));
    if (existing) {
      existing.socket.write(bytes);
      return true;
    }
    const holder = this.#remote.get(peerKey(peer));
    if (holder !== undefined && this.#events.relay) {
      return this.#events.relay(bytes, peer, holder);
    }
    const listener = this.listenerFor('tcp', peer.address);
    if (!listener) {
      this.#events.onError?.({ peer, message: 'no tcp listener' });
      return false;
    }
    const socket = connect({ host: peer.address, port: peer.port, noDelay: true });
    socket.on('error', (err) => this.#events.onError?.({ peer, message: err.message }));
    // Writes before `connect` completes are queued by Node.
    this.#conns.set(peerKey(peer), { socket, listener });
    socket.once('connect', () => {
      this.#conns.delete(peerKey(peer));
      this.#adopt(socket, listener);
    });
    socket.write(bytes);
    return true;
  }

  async close(): Promise<void> {
    // Waiting retransmissions go now, from the sockets still open (before a reload rebinds them:
    // a send on a closed transport would fail their transactions).
    this.#barrier.close();
    this.#closed = true;
    for (const { socket } of this.#conns.values()) socket.destroy();
    this.#conns.clear();
    this.#remote.clear();
    await Promise.all([
      ...[...this.#udp, ...this.#private].map(
        (u) => new Promise<void>((r) => u.socket.close(() => r())),
      ),
      ...this.#tcp.map((t) => new Promise<void>((r) => t.server.close(() => r()))),
    ]);
    this.#udp.length = 0;
    this.#private.length = 0;
    this.#tcp.length = 0;
  }
}
