/**
 * HEP receivers: UDP (one datagram is one HEP packet) and TCP (a stream framed by the HEP
 * length). Both hand raw packets to one `HepIngress`, which decodes, filters (capture agent id,
 * auth key) and counts. Nothing a peer sends can throw out of a socket handler.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import { timingSafeEqual } from 'node:crypto';
import { decodeHep, hepProtocolName, type HepDecodeOptions, type HepPacket } from './hep.js';
import { HepStreamFramer, type HepStreamOptions } from './hep-stream.js';
import type { HepOutcome, SidecarMetrics } from './sidecar-metrics.js';

/** Where a HEP packet came from (the capture agent, not the SIP endpoints inside it). */
export interface HepSource {
  readonly transport: 'udp' | 'tcp';
  readonly address: string;
  readonly port: number;
}

/** Minimal logger the components take (pino fits). */
export interface SidecarLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const silentLogger: SidecarLogger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

export interface HepIngressOptions {
  /** Capture agent ids accepted; empty or undefined accepts every id. */
  readonly captureIds?: readonly number[];
  /** When set, packets must carry this auth key (chunk 0x000e) exactly. */
  readonly authKey?: string;
  readonly decode?: HepDecodeOptions;
  readonly metrics: SidecarMetrics;
  readonly logger?: SidecarLogger;
  /** Receives every accepted packet. Exceptions it throws are caught and logged. */
  readonly onPacket: (packet: HepPacket, source: HepSource) => void;
}

/** Decodes, filters and counts raw HEP packets from any transport. */
export class HepIngress {
  readonly #ids: ReadonlySet<number> | undefined;
  readonly #key: Buffer | undefined;
  readonly #opts: HepIngressOptions;
  readonly #log: SidecarLogger;

  constructor(options: HepIngressOptions) {
    this.#opts = options;
    this.#ids =
      options.captureIds && options.captureIds.length > 0 ? new Set(options.captureIds) : undefined;
    this.#key = options.authKey !== undefined ? Buffer.from(options.authKey, 'utf8') : undefined;
    this.#log = options.logger ?? silentLogger;
  }

  /** Handles one raw packet; returns the outcome (also counted in the metrics). */
  handle(bytes: Uint8Array, source: HepSource): Exclude<HepOutcome, 'stream_garbage'> {
    const m = this.#opts.metrics;
    const r = decodeHep(bytes, this.#opts.decode);
    if (!r.ok) {
      m.hepPackets.inc({ transport: source.transport, type: 'unknown', outcome: 'decode_error' });
      m.hepDecodeErrors.inc({ code: r.error.code });
      this.#log.debug(
        { code: r.error.code, reason: r.error.reason, from: `${source.address}:${source.port}` },
        'HEP packet dropped',
      );
      return 'decode_error';
    }
    const p = r.packet;
    const type = hepProtocolName(p.protocolType);
    if (this.#ids && (p.captureId === undefined || !this.#ids.has(p.captureId))) {
      m.hepPackets.inc({ transport: source.transport, type, outcome: 'unknown_capture_id' });
      return 'unknown_capture_id';
    }
    if (this.#key && !keyMatches(this.#key, p.authKey)) {
      m.hepPackets.inc({ transport: source.transport, type, outcome: 'bad_auth_key' });
      return 'bad_auth_key';
    }
    m.hepPackets.inc({ transport: source.transport, type, outcome: 'accepted' });
    if (p.timeSeconds !== undefined && p.timeSeconds > 0) {
      const lag = Date.now() / 1000 - (p.timeSeconds + (p.timeMicros ?? 0) / 1e6);
      // Beyond an hour either way the agent's clock is simply wrong: not a lag worth recording.
      if (lag < 3600 && lag > -3600) m.captureLag.observe(Math.max(0, lag));
    }
    try {
      this.#opts.onPacket(p, source);
    } catch (err) {
      this.#log.error({ err }, 'HEP packet handler failed');
    }
    return 'accepted';
  }
}

function keyMatches(expected: Buffer, got: Uint8Array | undefined): boolean {
  if (!got || got.length !== expected.length) return false;
  return timingSafeEqual(expected, got);
}

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

/** HEP over UDP: each datagram is one packet. */
export class HepUdpReceiver {
  readonly #ingress: HepIngress;
  readonly #log: SidecarLogger;
  #socket: UdpSocket | undefined;

  constructor(ingress: HepIngress, logger: SidecarLogger = silentLogger) {
    this.#ingress = ingress;
    this.#log = logger;
  }

  /** Binds and resolves with the address bound (port 0 picks a free port). */
  async listen(at: ListenAddress): Promise<ListenAddress> {
    const socket = createSocket({ type: at.host.includes(':') ? 'udp6' : 'udp4' });
    this.#socket = socket;
    socket.on('message', (msg, rinfo) => {
      this.#ingress.handle(msg, { transport: 'udp', address: rinfo.address, port: rinfo.port });
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(at.port, at.host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    socket.on('error', (err) => this.#log.error({ err }, 'HEP UDP socket error'));
    const a = socket.address();
    return { host: a.address, port: a.port };
  }

  async close(): Promise<void> {
    const s = this.#socket;
    this.#socket = undefined;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}

export interface HepTcpOptions extends HepStreamOptions {
  /** Most simultaneous connections (default 64); more are closed at once. */
  readonly maxConnections?: number;
  /** A connection idle this long is closed (ms, default 300_000; 0 = never). */
  readonly idleTimeoutMs?: number;
}

/** HEP over TCP: a byte stream framed by the HEP length. */
export class HepTcpReceiver {
  readonly #ingress: HepIngress;
  readonly #metrics: SidecarMetrics;
  readonly #log: SidecarLogger;
  readonly #opts: HepTcpOptions;
  readonly #sockets = new Set<Socket>();
  #server: Server | undefined;

  constructor(
    ingress: HepIngress,
    metrics: SidecarMetrics,
    options: HepTcpOptions = {},
    logger: SidecarLogger = silentLogger,
  ) {
    this.#ingress = ingress;
    this.#metrics = metrics;
    this.#opts = options;
    this.#log = logger;
  }

  get connections(): number {
    return this.#sockets.size;
  }

  async listen(at: ListenAddress): Promise<ListenAddress> {
    const server = createServer((socket) => this.#accept(socket));
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(at.port, at.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.#log.error({ err }, 'HEP TCP server error'));
    const a = server.address();
    if (a === null || typeof a === 'string') throw new Error('HEP TCP server has no address');
    return { host: a.address, port: a.port };
  }

  #accept(socket: Socket): void {
    const max = this.#opts.maxConnections ?? 64;
    if (this.#sockets.size >= max) {
      this.#log.warn({ max }, 'HEP TCP connection refused: too many connections');
      socket.destroy();
      return;
    }
    this.#sockets.add(socket);
    this.#metrics.hepTcpConnections.set(this.#sockets.size);
    const source: HepSource = {
      transport: 'tcp',
      address: socket.remoteAddress ?? '',
      port: socket.remotePort ?? 0,
    };
    const framer = new HepStreamFramer(this.#opts);
    const idle = this.#opts.idleTimeoutMs ?? 300_000;
    if (idle > 0) {
      socket.setTimeout(idle, () => socket.destroy());
    }
    socket.on('data', (chunk: Buffer) => {
      for (const ev of framer.push(chunk)) {
        switch (ev.type) {
          case 'packet':
            this.#ingress.handle(ev.bytes, source);
            break;
          case 'garbage':
            this.#metrics.hepPackets.inc({
              transport: 'tcp',
              type: 'unknown',
              outcome: 'stream_garbage',
            });
            break;
          case 'fatal':
            this.#metrics.hepPackets.inc({
              transport: 'tcp',
              type: 'unknown',
              outcome: 'stream_garbage',
            });
            this.#log.warn(
              { reason: ev.reason, from: `${source.address}:${source.port}` },
              'HEP TCP stream closed',
            );
            socket.destroy();
            return;
        }
      }
    });
    socket.on('error', (err) => this.#log.debug({ err }, 'HEP TCP connection error'));
    socket.on('close', () => {
      this.#sockets.delete(socket);
      this.#metrics.hepTcpConnections.set(this.#sockets.size);
    });
  }

  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const s of this.#sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
