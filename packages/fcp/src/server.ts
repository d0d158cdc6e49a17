/**
 * FcpServer: the FCP/1.0 server core, independent of any firewall. It speaks the protocol over
 * TCP, UDP and TLS, owns the rule table (identity = canonical PME), checks the client ACL, rate
 * and quota limits and the safety policy, runs every rule's TIMER on one timer, answers QUERY
 * and keeps QUERYNAT reservations. Firewall work goes through a `FirewallBackend`; a SET is
 * answered only after `backend.install` resolved.
 */
import * as dgram from 'node:dgram';
import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import * as tls from 'node:tls';
import type { FirewallBackend, FirewallRule, PortRange } from './backend.js';
import { validateServerConfig, type FcpServerConfig, type ResolvedServerConfig } from './config.js';
import { FcpError, FcpErrorCode } from './errors.js';
import { ExpiryQueue, systemTimers, type TimerApi } from './expiry-queue.js';
import {
  formatAddress,
  normalizeClientAddress,
  parseAddress,
  prefixContains,
  prefixOverlaps,
  type ParsedPrefix,
} from './ip.js';
import { localLink } from './local-link.js';
import { policyViolation } from './policy.js';
import {
  fromFirewallRule,
  inexpressibleMembers,
  pmeKey,
  pmeMatches,
  toFirewallRule,
  type Pme,
  type SetOptions,
} from './pme.js';
import { RequestFramer } from './request-framer.js';
import {
  parseRequest,
  type FcpRequest,
  type NatSpec,
  type RequestParseResult,
  type SetRequest,
} from './request.js';
import { encodeResponse, type FcpResponse, type NatBinding } from './response.js';
import { FcpStatus } from './status.js';

/** A minimal structured logger (pino-compatible call shape). Libraries never import pino. */
export interface FcpLogger {
  debug?(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

const silentLogger: FcpLogger = { info: () => {}, warn: () => {}, error: () => {} };

/** `local`: a client in this process, through `connectLocal()` (no socket). */
export type FcpTransport = 'tcp' | 'udp' | 'tls' | 'local';

/** Who sent a request. */
export interface FcpClientInfo {
  /** Normalised peer address (IPv4-mapped IPv6 becomes IPv4). */
  readonly address: string;
  readonly port: number;
  readonly transport: FcpTransport;
  /** Rule owner: the address, or `cert:<CN>` for a verified TLS client certificate. */
  readonly owner: string;
  /** True for a verified TLS client certificate. */
  readonly authenticated: boolean;
}

/** A live rule as the server holds it. */
export interface ServerRule {
  readonly key: string;
  readonly pme: Pme;
  /** Options of the last SET (TIMER excluded). */
  readonly options: SetOptions;
  /** The TIMER currently in force, seconds; 0 = never expires. */
  readonly timerSec: number;
  readonly owner: string;
  /** Absolute expiry (ms since epoch), undefined = never. */
  readonly expiresAt: number | undefined;
  readonly firewallRule: FirewallRule;
}

export interface RequestEventInfo {
  readonly method: FcpRequest['method'] | 'INVALID';
  readonly status: number;
  readonly seq: number;
  readonly latencyMs: number;
  readonly client: FcpClientInfo;
  readonly detail: string | undefined;
}

export interface RuleEventInfo {
  readonly key: string;
  readonly owner: string;
  readonly timerSec: number;
}

/** Events of FcpServer, for logs and metrics. */
export interface FcpServerEvents {
  /** Every answered request (status and latency). */
  request: [RequestEventInfo];
  'rule-added': [RuleEventInfo];
  'rule-refreshed': [RuleEventInfo];
  'rule-changed': [RuleEventInfo];
  'rule-released': [RuleEventInfo];
  'rule-expired': [RuleEventInfo];
  'rule-adopted': [RuleEventInfo];
  /** A SET refused by the safety policy (403). */
  'policy-refused': [{ client: FcpClientInfo; key: string; reason: string }];
  'quota-exceeded': [{ client: FcpClientInfo; limit: number }];
  'rate-limited': [{ client: FcpClientInfo }];
  unauthorized: [{ address: string; transport: FcpTransport }];
  'backend-error': [{ op: 'install' | 'remove' | 'open'; key: string; error: unknown }];
  /** A connection closed because of a protocol violation (over-long request...). */
  'protocol-error': [{ client: FcpClientInfo; detail: string }];
  connection: [FcpClientInfo];
  disconnect: [FcpClientInfo];
  'connection-refused': [{ address: string; reason: string }];
}

export interface FcpServerStats {
  readonly liveRules: number;
  readonly connections: number;
  readonly natReservations: number;
  /** requests[method][status] = count; `INVALID` for requests that did not parse. */
  readonly requests: Readonly<Record<string, Readonly<Record<number, number>>>>;
  readonly policyRefusals: number;
  readonly quotaRefusals: number;
  readonly rateLimited: number;
  readonly unauthorized: number;
  readonly backendErrors: number;
  readonly expired: number;
}

export interface FcpServerOptions {
  readonly logger?: FcpLogger | undefined;
  /** Clock and timer functions (tests). */
  readonly timers?: TimerApi | undefined;
}

export interface BoundAddress {
  readonly transport: FcpTransport;
  readonly host: string;
  readonly port: number;
}

interface RuleRecord {
  key: string;
  pme: Pme;
  options: SetOptions;
  timerSec: number;
  owner: string;
  expiresAt: number | undefined;
  fw: FirewallRule;
  /** The NAT reservation this rule adopted (spec §5.5), if any. */
  natKey?: string | undefined;
}

interface Reservation {
  key: string;
  proto: number;
  srcIp: string;
  srcPorts: PortRange;
  binding: NatBinding;
  owner: string;
  /** Key of the rule that adopted it; while set, the reservation lives as long as the rule. */
  rule: string | undefined;
}

interface Bucket {
  tokens: number;
  last: number;
}

interface UdpCacheEntry {
  at: number;
  text: string;
  reply: string | undefined;
}

const MAX_RATE_BUCKETS = 100_000;

function sameOptions(a: SetOptions, b: SetOptions): boolean {
  // Spec §6 #13: any SOPT value other than TIMER that differs is a change (202).
  const icmp = (x: SetOptions): string =>
    x.icmpMessage ? `${x.icmpMessage.type}:${x.icmpMessage.code ?? ''}` : '';
  return (
    (a.action ?? 'none') === (b.action ?? 'none') &&
    (a.reflexive ?? false) === (b.reflexive ?? false) &&
    (a.priorityClass ?? 0) === (b.priorityClass ?? 0) &&
    (a.log ?? 0) === (b.log ?? 0) &&
    a.tosModifier === b.tosModifier &&
    icmp(a) === icmp(b)
  );
}

/** The options without TIMER: the members present, in one shape (no object rest/spread). */
function withoutTimer(o: SetOptions): SetOptions {
  const r: { -readonly [K in keyof SetOptions]: SetOptions[K] } = {};
  if (o.action !== undefined) r.action = o.action;
  if (o.reflexive !== undefined) r.reflexive = o.reflexive;
  if (o.priorityClass !== undefined) r.priorityClass = o.priorityClass;
  if (o.log !== undefined) r.log = o.log;
  if (o.tosModifier !== undefined) r.tosModifier = o.tosModifier;
  if (o.icmpMessage !== undefined) r.icmpMessage = o.icmpMessage;
  return r;
}

export class FcpServer extends EventEmitter<FcpServerEvents> {
  readonly config: ResolvedServerConfig;
  readonly backend: FirewallBackend;
  readonly #log: FcpLogger;
  readonly #timers: TimerApi;
  readonly #rules = new Map<string, RuleRecord>();
  readonly #ownerCounts = new Map<string, number>();
  /** Locked keys, each with its FIFO of waiting operations. */
  readonly #locks = new Map<string, (() => void)[]>();
  /** Resolved by #unlock when the last lock is released (stop() waits for it). */
  #locksIdle: (() => void) | undefined;
  readonly #expiry: ExpiryQueue<string>;
  readonly #reservations = new Map<string, Reservation>();
  readonly #natExpiry: ExpiryQueue<string>;
  readonly #usedNatPorts = new Map<number, Set<number>>();
  readonly #buckets = new Map<string, Bucket>();
  readonly #udpCache = new Map<string, UdpCacheEntry>();
  readonly #tcpServers: net.Server[] = [];
  readonly #udpSockets: dgram.Socket[] = [];
  readonly #sockets = new Set<Duplex>();
  readonly #bound: BoundAddress[] = [];
  readonly #requests: Record<string, Record<number, number>> = {};
  #counters = {
    policyRefusals: 0,
    quotaRefusals: 0,
    rateLimited: 0,
    unauthorized: 0,
    backendErrors: 0,
    expired: 0,
  };
  #state: 'new' | 'starting' | 'running' | 'stopped' = 'new';

  /** Validates `config` (throws `FCP_ERR_CONFIG` naming the field). */
  constructor(config: FcpServerConfig, backend: FirewallBackend, options: FcpServerOptions = {}) {
    super();
    this.config = validateServerConfig(config);
    this.backend = backend;
    this.#log = options.logger ?? silentLogger;
    this.#timers = options.timers ?? systemTimers;
    this.#expiry = new ExpiryQueue((key) => this.#onExpire(key), this.#timers);
    this.#natExpiry = new ExpiryQueue((key) => this.#onNatExpire(key), this.#timers);
  }

  /** Adopts the backend's rules, then binds every listener. */
  async start(): Promise<void> {
    if (this.#state !== 'new') throw new Error('FcpServer.start() called twice');
    this.#state = 'starting';
    const installed = await this.backend.open();
    const now = this.#timers.now();
    for (const ir of installed) {
      const pme = fromFirewallRule(ir.rule);
      if (!pme) {
        this.#log.warn({ key: ir.rule.key }, 'backend rule not understood; left alone');
        continue;
      }
      const key = pmeKey(pme);
      const action = ir.rule.action === 'none' ? undefined : ir.rule.action;
      const rec: RuleRecord = {
        key,
        pme,
        options: action ? { action } : {},
        timerSec: ir.meta.timerSec,
        owner: ir.meta.owner,
        expiresAt: ir.remainingMs === undefined ? undefined : now + Math.max(0, ir.remainingMs),
        fw: ir.rule,
      };
      this.#rules.set(key, rec);
      this.#countOwner(rec.owner, 1);
      if (rec.expiresAt !== undefined) this.#expiry.set(key, rec.expiresAt);
      this.emit('rule-adopted', { key, owner: rec.owner, timerSec: rec.timerSec });
    }
    if (installed.length > 0) {
      this.#log.info({ adopted: this.#rules.size }, 'adopted rules held by the backend');
    }
    try {
      for (const l of this.config.listen) await this.#listen(l);
    } catch (err) {
      await this.stop({ closeBackend: false });
      throw err;
    }
    this.#state = 'running';
  }

  /** The addresses actually bound (port 0 resolved), in `listen` order. */
  addresses(): readonly BoundAddress[] {
    return [...this.#bound];
  }

  /**
   * Closes listeners and connections and stops the timers. Rules stay in the backend (their
   * firewall timeouts keep running). Closes the backend unless `closeBackend: false`.
   */
  async stop(options: { closeBackend?: boolean } = {}): Promise<void> {
    if (this.#state === 'stopped') return;
    this.#state = 'stopped';
    this.#expiry.close();
    this.#natExpiry.close();
    for (const s of this.#sockets) s.destroy();
    await Promise.all([
      ...this.#tcpServers.map((s) => new Promise<void>((r) => s.close(() => r()))),
      ...this.#udpSockets.map((s) => new Promise<void>((r) => s.close(() => r()))),
    ]);
    if (this.#locks.size > 0) await new Promise<void>((r) => (this.#locksIdle = r));
    if (options.closeBackend !== false) await this.backend.close();
  }

  #accepting(): boolean {
    return this.#state === 'running' || this.#state === 'starting';
  }

  get liveRules(): number {
    return this.#rules.size;
  }

  /** A snapshot of the rule table. */
  rules(): ServerRule[] {
    return [...this.#rules.values()].map((r) => ({
      key: r.key,
      pme: r.pme,
      options: r.options,
      timerSec: r.timerSec,
      owner: r.owner,
      expiresAt: r.expiresAt,
      firewallRule: r.fw,
    }));
  }

  stats(): FcpServerStats {
    const requests: Record<string, Record<number, number>> = {};
    for (const [m, codes] of Object.entries(this.#requests)) requests[m] = { ...codes };
    return {
      liveRules: this.#rules.size,
      connections: this.#sockets.size,
      natReservations: this.#reservations.size,
      requests,
      ...this.#counters,
    };
  }

  /**
   * Handles one request text from `client` (what the listeners do for each framed request) and
   * returns the encoded reply. Never rejects.
   */
  async handle(text: string, client: FcpClientInfo): Promise<string> {
    return encodeResponse(
      await this.#process(parseRequest(text), client),
      this.config.responseStyle,
    );
  }

  /** True if the ACL admits `address` (or the client is TLS-authenticated). */
  isAllowed(address: string, authenticated = false): boolean {
    if (authenticated) return true;
    const ip = parseAddress(normalizeClientAddress(address));
    if (!ip) return false;
    const host: ParsedPrefix = { ...ip, prefix: ip.family === 4 ? 32 : 128 };
    return this.config.allowClients.some((n) => prefixContains(n, host));
  }

  // -------------------------------------------------------------------------------------------
  // Listeners

  async #listen(l: ResolvedServerConfig['listen'][number]): Promise<void> {
    if (l.transport === 'udp') {
      const ip = parseAddress(l.host);
      const sock = dgram.createSocket(ip?.family === 6 ? 'udp6' : 'udp4');
      sock.on('message', (msg, rinfo) => this.#onDatagram(sock, msg, rinfo));
      sock.on('error', (err) => this.#log.error({ err }, 'udp socket error'));
      await new Promise<void>((resolve, reject) => {
        sock.once('error', reject);
        sock.bind(l.port, l.host, () => {
          sock.off('error', reject);
          resolve();
        });
      });
      this.#udpSockets.push(sock);
      this.#bound.push({ transport: 'udp', host: l.host, port: sock.address().port });
      return;
    }
    const server =
      l.transport === 'tls'
        ? tls.createServer({ requestCert: true, rejectUnauthorized: true, ...l.tls }, (s) =>
            this.#onConnection(s, 'tls'),
          )
        : net.createServer((s) => this.#onConnection(s, 'tcp'));
    server.on('error', (err: Error) => this.#log.error({ err }, 'listener error'));
    if (server instanceof tls.Server) {
      server.on('tlsClientError', (err: Error) =>
        this.#log.warn({ err: err.message }, 'TLS handshake failed'),
      );
    }
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(l.port, l.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.#tcpServers.push(server);
    const addr = server.address();
    this.#bound.push({
      transport: l.transport,
      host: l.host,
      port: typeof addr === 'object' && addr ? addr.port : l.port,
    });
  }

  /**
   * A connection from a client in this same process (the proxy's embedded fcpd): the client's
   * end of a local link (see local-link.ts; give it to `FcpClient` as the endpoint's `connect`).
   * This server serves the other end exactly as a TCP connection from 127.0.0.1: same ACL,
   * owner, limits and replies. Throws when the server is not running.
   */
  connectLocal(): Duplex {
    if (!this.#accepting()) {
      throw new FcpError(FcpErrorCode.CLOSED, 'FCP server is not running');
    }
    const [client, server] = localLink();
    this.#onConnection(server, 'local', '127.0.0.1');
    return client;
  }

  #onConnection(
    socket: Duplex,
    transport: 'tcp' | 'tls' | 'local',
    remote: string | undefined = (socket as net.Socket).remoteAddress,
  ): void {
    socket.on('error', () => {});
    if (remote === undefined || !this.#accepting()) {
      socket.destroy();
      return;
    }
    const address = normalizeClientAddress(remote);
    if (this.#sockets.size >= this.config.limits.maxConnections) {
      this.emit('connection-refused', { address, reason: 'too many connections' });
      socket.destroy();
      return;
    }
    let owner = address;
    let authenticated = false;
    if (socket instanceof tls.TLSSocket && socket.authorized) {
      const cn = socket.getPeerCertificate()?.subject?.CN;
      authenticated = true;
      owner = `cert:${Array.isArray(cn) ? cn.join(',') : (cn ?? address)}`;
    }
    const client: FcpClientInfo = {
      address,
      port: socket instanceof net.Socket ? (socket.remotePort ?? 0) : 0,
      transport,
      owner,
      authenticated,
    };
    this.#sockets.add(socket);
    if (socket instanceof net.Socket) socket.setNoDelay(true);
    this.emit('connection', client);
    socket.on('close', () => {
      this.#sockets.delete(socket);
      this.emit('disconnect', client);
    });
    if (!this.isAllowed(address, authenticated)) {
      // fcpd answers 401 before parsing, with SEQ=0; we also close: nothing else will succeed.
      this.#counters.unauthorized++;
      this.emit('unauthorized', { address, transport });
      this.#countRequest('INVALID', FcpStatus.UNAUTHORIZED);
      socket.end(this.#unauthorizedReply(0));
      return;
    }
    if (this.config.banner !== undefined) socket.write(`${this.config.banner}\r\n`);
    this.#serveStream(socket, client);
  }

  #unauthorizedReply(seq: number): string {
    return encodeResponse(
      {
        seq,
        status: FcpStatus.UNAUTHORIZED,
        detail: 'your address is not in the access control list',
      },
      this.config.responseStyle,
    );
  }

  #serveStream(socket: Duplex, client: FcpClientInfo): void {
    const framer = new RequestFramer({ maxRequestBytes: this.config.limits.maxRequestBytes });
    const maxInflight = this.config.limits.maxInflightPerConnection;
    interface Slot {
      reply: string | undefined;
      close: boolean;
    }
    const queue: Slot[] = [];
    // Spec §6 #31: per-connection in-order processing. SET and RELEASE run concurrently (the
    // per-key lock keeps one rule's operations in order, and backends batch concurrent calls);
    // any other request is a barrier: it waits for everything before it, and everything after
    // it waits for it, so a pipelined QUERY sees the effect of the SETs before it.
    // SET/RELEASE since the last barrier are counted in an epoch; a barrier waits for its epoch
    // to drain and for the barrier before it. With no barrier pending, a SET or RELEASE starts
    // at once (no promise hop), so every request of one TCP segment reaches the backend in the
    // same turn and is batched together.
    interface Epoch {
      pending: number;
      drained: (() => void) | undefined;
    }
    let epoch: Epoch = { pending: 0, drained: undefined };
    let gate: Promise<unknown> | undefined;
    const run = (text: string): Promise<FcpResponse> => {
      const parsed = parseRequest(text);
      const method = parsed.kind === 'request' ? parsed.request.method : undefined;
      if (method === 'SET' || method === 'RELEASE') {
        const e = epoch;
        e.pending++;
        const p =
          gate === undefined
            ? this.#process(parsed, client)
            : gate.then(() => this.#process(parsed, client));
        const done = (): void => {
          if (--e.pending === 0) e.drained?.();
        };
        p.then(done, done);
        return p;
      }
      const prev = epoch;
      epoch = { pending: 0, drained: undefined };
      const drained = prev.pending === 0 ? undefined : new Promise<void>((r) => (prev.drained = r));
      const before = gate;
      const wait = before && drained ? Promise.all([before, drained]) : (before ?? drained);
      const p =
        wait === undefined
          ? this.#process(parsed, client)
          : wait.then(() => this.#process(parsed, client));
      gate = p;
      const clear = (): void => {
        if (gate === p) gate = undefined;
      };
      p.then(clear, clear);
      return p;
    };
    let ending = false;
    let paused = false;
    let draining = false;
    let flushScheduled = false;
    const flushNow = (): void => {
      flushScheduled = false;
      // Replies ready by now go out in one write (one syscall), in request order.
      let out = '';
      let n = 0;
      while (!ending && n < queue.length && queue[n]?.reply !== undefined) {
        const slot = queue[n++] as Slot;
        if (slot.close) {
          ending = true;
          socket.end(out + (slot.reply as string));
          out = '';
          break;
        }
        out += slot.reply as string;
      }
      queue.splice(0, n);
      // A peer that does not read its replies must not grow our memory: stop reading until
      // the kernel took what we wrote.
      if (out !== '' && !socket.destroyed && !socket.write(out) && !draining) {
        draining = true;
        socket.pause();
        socket.once('drain', () => {
          draining = false;
          if (!paused) socket.resume();
        });
      }
      if (paused && queue.length < maxInflight) {
        paused = false;
        if (!draining) socket.resume();
      }
    };
    const flush = (): void => {
      if (flushScheduled) return;
      flushScheduled = true;
      // After the promise reactions now queued (every reply settled by this run of code goes
      // in the same write), before any other I/O callback. Not setImmediate: in a process that
      // also reads a UDP socket (the proxy with its embedded fcpd), libuv hands over a burst
      // of up to 32 datagrams before it runs the immediates, and the replies waited for it.
      process.nextTick(flushNow);
    };
    // A request that stays incomplete (slow or stalled sender) must not hold the slot forever.
    const partialMs = this.config.limits.partialRequestTimeoutMs;
    let partialTimer: unknown;
    const clearPartial = (): void => {
      if (partialTimer !== undefined) this.#timers.clearTimeout(partialTimer);
      partialTimer = undefined;
    };
    socket.on('close', clearPartial);
    const onPartialTimeout = (): void => {
      partialTimer = undefined;
      if (ending) return;
      const detail = `request incomplete after ${partialMs} ms`;
      this.#countRequest('INVALID', FcpStatus.BAD_REQUEST);
      this.emit('protocol-error', { client, detail });
      queue.push({
        reply: encodeResponse(
          { seq: 0, status: FcpStatus.BAD_REQUEST, detail },
          this.config.responseStyle,
        ),
        close: true,
      });
      flush();
    };
    socket.on('data', (chunk: Buffer) => {
      if (ending) return;
      let progressed = false;
      for (const ev of framer.push(chunk)) {
        switch (ev.kind) {
          case 'request': {
            progressed = true;
            const slot: Slot = { reply: undefined, close: false };
            queue.push(slot);
            void run(ev.text).then((resp) => {
              slot.reply = encodeResponse(resp, this.config.responseStyle);
              flush();
            });
            break;
          }
          case 'quit':
            queue.push({ reply: 'closing connection...\r\n', close: true });
            break;
          case 'too-long': {
            const detail = `request exceeds ${ev.limit} bytes`;
            this.#countRequest('INVALID', FcpStatus.BAD_REQUEST);
            this.emit('protocol-error', { client, detail });
            queue.push({
              reply: encodeResponse(
                { seq: 0, status: FcpStatus.BAD_REQUEST, detail },
                this.config.responseStyle,
              ),
              close: true,
            });
            break;
          }
        }
      }
      flush();
      // The clock runs from the first byte of the oldest incomplete request.
      if (framer.pendingBytes === 0 || progressed) clearPartial();
      if (framer.pendingBytes > 0 && partialTimer === undefined && partialMs > 0) {
        partialTimer = this.#timers.setTimeout(onPartialTimeout, partialMs);
      }
      if (!paused && queue.length >= maxInflight) {
        paused = true;
        socket.pause();
      }
    });
  }

  #onDatagram(sock: dgram.Socket, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (!this.#accepting()) return;
    const address = normalizeClientAddress(rinfo.address);
    const client: FcpClientInfo = {
      address,
      port: rinfo.port,
      transport: 'udp',
      owner: address,
      authenticated: false,
    };
    const send = (text: string): void => {
      sock.send(text, rinfo.port, rinfo.address, () => {});
    };
    if (!this.isAllowed(address)) {
      this.#counters.unauthorized++;
      this.emit('unauthorized', { address, transport: 'udp' });
      this.#countRequest('INVALID', FcpStatus.UNAUTHORIZED);
      send(this.#unauthorizedReply(0));
      return;
    }
    // One datagram = one request; the empty line is optional (spec §1).
    const framer = new RequestFramer({ maxRequestBytes: this.config.limits.maxRequestBytes });
    const events = [...framer.push(msg), ...framer.push(Buffer.from('\r\n\r\n'))];
    const requests = events.filter((e) => e.kind === 'request');
    let parsed: RequestParseResult;
    if (events.some((e) => e.kind === 'too-long')) {
      parsed = fakeError(`request exceeds ${this.config.limits.maxRequestBytes} bytes`);
    } else if (requests.length !== 1 || requests[0]?.kind !== 'request') {
      if (events.length === 1 && events[0]?.kind === 'quit') return;
      parsed = fakeError(requests.length === 0 ? 'empty request' : 'one request per datagram');
    } else {
      parsed = parseRequest(requests[0].text);
    }
    const seq =
      parsed.kind === 'request' ? parsed.request.seq : parsed.kind === 'error' ? parsed.seq : 0;
    const text = msg.toString('latin1');
    const cacheKey = `${address}|${rinfo.port}|${seq}`;
    const useCache = this.config.limits.udpReplyCacheMs > 0 && seq > 0;
    if (useCache) {
      const hit = this.#udpCache.get(cacheKey);
      if (
        hit &&
        hit.text === text &&
        this.#timers.now() - hit.at < this.config.limits.udpReplyCacheMs
      ) {
        // A retransmission: replay the answer (RELEASE is not idempotent, spec §6 #32).
        if (hit.reply !== undefined) send(hit.reply);
        return;
      }
    }
    const entry: UdpCacheEntry = { at: this.#timers.now(), text, reply: undefined };
    if (useCache) this.#cacheUdp(cacheKey, entry);
    void this.#process(parsed, client).then((resp) => {
      const reply = encodeResponse(resp, this.config.responseStyle);
      entry.reply = reply;
      send(reply);
    });
  }

  #cacheUdp(key: string, entry: UdpCacheEntry): void {
    const cache = this.#udpCache;
    cache.delete(key);
    cache.set(key, entry);
    const now = this.#timers.now();
    const ttl = this.config.limits.udpReplyCacheMs;
    for (const [k, v] of cache) {
      if (cache.size <= this.config.limits.udpReplyCacheEntries && now - v.at < ttl) break;
      cache.delete(k);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Request processing

  async #process(parsed: RequestParseResult, client: FcpClientInfo): Promise<FcpResponse> {
    const started = performance.now();
    let method: RequestEventInfo['method'] = 'INVALID';
    let resp: FcpResponse;
    try {
      switch (parsed.kind) {
        case 'quit':
          resp = { seq: 0, status: FcpStatus.BAD_REQUEST, detail: 'QUIT is only valid on TCP' };
          break;
        case 'error':
          method = parsed.method ?? 'INVALID';
          resp = { seq: parsed.seq, status: parsed.status, detail: parsed.detail };
          break;
        case 'request':
          method = parsed.request.method;
          resp = this.#rateLimited(client)
            ? {
                seq: parsed.request.seq,
                status: FcpStatus.SERVICE_UNAVAILABLE,
                detail: 'request rate limit exceeded, retry later',
              }
            : await this.#dispatch(parsed.request, client);
          break;
      }
    } catch (err) {
      // Programming errors must not take the daemon down or leak to other clients.
      this.#log.error({ err }, 'internal error while handling a request');
      resp = {
        seq: parsed.kind === 'request' ? parsed.request.seq : 0,
        status: FcpStatus.INTERNAL_ERROR,
      };
    }
    this.#countRequest(method, resp.status);
    if (this.listenerCount('request') === 0) return resp;
    this.emit('request', {
      method,
      status: resp.status,
      seq: resp.seq,
      latencyMs: performance.now() - started,
      client,
      detail: resp.detail,
    });
    return resp;
  }

  #countRequest(method: string, status: number): void {
    const m = (this.#requests[method] ??= {});
    m[status] = (m[status] ?? 0) + 1;
  }

  #rateLimited(client: FcpClientInfo): boolean {
    const rate = this.config.limits.ratePerSec;
    if (rate === 0) return false;
    const burst = this.config.limits.rateBurst;
    const now = this.#timers.now();
    let b = this.#buckets.get(client.address);
    if (!b) {
      if (this.#buckets.size >= MAX_RATE_BUCKETS) this.#buckets.clear();
      b = { tokens: burst, last: now };
      this.#buckets.set(client.address, b);
    }
    b.tokens = Math.min(burst, b.tokens + ((now - b.last) / 1000) * rate);
    b.last = now;
    if (b.tokens < 1) {
      this.#counters.rateLimited++;
      this.emit('rate-limited', { client });
      return true;
    }
    b.tokens -= 1;
    return false;
  }

  #dispatch(req: FcpRequest, client: FcpClientInfo): Promise<FcpResponse> {
    switch (req.method) {
      case 'SET':
        return this.#set(req, client);
      case 'RELEASE': {
        const key = pmeKey(req.pme);
        return this.#withKey(key, () => this.#release(key, req.seq, client));
      }
      case 'QUERY':
        return Promise.resolve(this.#query(req.seq, req.pme, client));
      case 'QUERYNAT':
        return Promise.resolve(this.#queryNat(req.seq, req.nat, client));
      case 'RELEASENAT':
        return Promise.resolve(this.#releaseNat(req.seq, req.nat, client));
    }
  }

  /**
   * Serialises operations on one rule key; different keys run concurrently (backends batch).
   * The uncontended case (nearly every request) allocates no promise of its own.
   */
  #withKey<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const waiters = this.#locks.get(key);
    if (waiters !== undefined) {
      return new Promise<void>((r) => waiters.push(r)).then(() => this.#locked(key, fn));
    }
    this.#locks.set(key, []);
    return this.#locked(key, fn);
  }

  #locked<T>(key: string, fn: () => Promise<T>): Promise<T> {
    let p: Promise<T>;
    try {
      p = fn();
    } catch (e) {
      this.#unlock(key);
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
    const unlock = (): void => this.#unlock(key);
    p.then(unlock, unlock);
    return p;
  }

  /** Hands the key to the next waiting operation, or frees it. */
  #unlock(key: string): void {
    const next = this.#locks.get(key)?.shift();
    if (next) {
      next();
      return;
    }
    this.#locks.delete(key);
    if (this.#locks.size === 0 && this.#locksIdle) {
      const idle = this.#locksIdle;
      this.#locksIdle = undefined;
      idle();
    }
  }

  #zone(p: ParsedPrefix): 'local' | 'internal' | 'external' {
    if (this.config.policy.ownAddresses.some((o) => prefixOverlaps(o, p))) return 'local';
    if (this.config.internalNetworks.some((n) => prefixContains(n, p))) return 'internal';
    return 'external';
  }

  #set(req: SetRequest, client: FcpClientInfo): Promise<FcpResponse> {
    const { seq, pme, options } = req;
    const notImpl = (detail: string): Promise<FcpResponse> =>
      Promise.resolve({ seq, status: FcpStatus.NOT_IMPLEMENTED, detail });
    // Options the server core does not implement are refused rather than silently dropped.
    if (options.reflexive) {
      return notImpl('REFLEXIVE=yes is not implemented; send the mirror rule as its own SET');
    }
    if (options.priorityClass) return notImpl('priority classes are not configured');
    if (options.tosModifier !== undefined) return notImpl('TOS modification is not implemented');
    if (options.icmpMessage) return notImpl('ICMPMESSAGE is not implemented');
    const inexpressible = inexpressibleMembers(pme);
    if (inexpressible.length > 0) {
      return notImpl(`${inexpressible.join(', ')} cannot be enforced by this server`);
    }
    // §5.6: both addresses given and on the same side → 203, nothing installed or stored.
    if (
      this.config.notMyRoute &&
      pme.src &&
      pme.dst &&
      this.#zone(pme.src) === this.#zone(pme.dst)
    ) {
      return Promise.resolve({
        seq,
        status: FcpStatus.NOT_MY_ROUTE,
        detail: 'source and destination are on the same side of the firewall',
      });
    }
    const key = pmeKey(pme);
    return this.#withKey(key, () => this.#setLocked(key, req, client));
  }

  async #setLocked(key: string, req: SetRequest, client: FcpClientInfo): Promise<FcpResponse> {
    const { seq, pme, options } = req;
    const policy = this.config.policy;
    const existing = this.#rules.get(key);
    // §6 #12: a keep-alive without TIMER keeps the rule's current TIMER.
    const timerSec = options.timer ?? existing?.timerSec ?? policy.defaultTimerSec;
    const violation = policyViolation(policy, pme, options, timerSec);
    if (violation) {
      this.#counters.policyRefusals++;
      this.emit('policy-refused', { client, key, reason: violation });
      this.#log.warn({ client: client.owner, key, reason: violation }, 'SET refused by policy');
      return { seq, status: FcpStatus.FORBIDDEN, detail: violation };
    }
    const fw = toFirewallRule(pme, options.action, key);
    const unsupported = this.backend.unsupported(fw);
    if (unsupported !== undefined) {
      return { seq, status: FcpStatus.NOT_IMPLEMENTED, detail: unsupported };
    }
    const meta = { owner: client.owner, timerSec };
    if (existing) {
      // §6 #14: refresh/change by a non-owner → 403.
      if (existing.owner !== client.owner) {
        return { seq, status: FcpStatus.FORBIDDEN, detail: 'the rule belongs to another client' };
      }
      const same = sameOptions(existing.options, options);
      try {
        if (!same && existing.fw.action !== fw.action) await this.backend.remove(existing.fw);
        await this.backend.install(fw, meta);
      } catch (error) {
        return this.#backendFailure('install', key, seq, error);
      }
      existing.options = withoutTimer(options);
      existing.timerSec = timerSec;
      existing.fw = fw;
      this.#arm(existing);
      const info = { key, owner: client.owner, timerSec };
      if (same) {
        this.emit('rule-refreshed', info);
        return { seq, status: FcpStatus.KEEPING_ALIVE };
      }
      this.emit('rule-changed', info);
      return { seq, status: FcpStatus.RULE_CHANGED };
    }
    const held = this.#ownerCounts.get(client.owner) ?? 0;
    const limit = this.config.limits.maxRulesPerClient;
    if (held >= limit) {
      this.#counters.quotaRefusals++;
      this.emit('quota-exceeded', { client, limit });
      return {
        seq,
        status: FcpStatus.FORBIDDEN,
        detail: `quota exceeded: client holds ${held} live rules (limit ${limit})`,
      };
    }
    // Reserve the quota slot before the asynchronous install so pipelined SETs cannot overshoot.
    this.#countOwner(client.owner, 1);
    try {
      await this.backend.install(fw, meta);
    } catch (error) {
      this.#countOwner(client.owner, -1);
      return this.#backendFailure('install', key, seq, error);
    }
    const rec: RuleRecord = {
      key,
      pme,
      options: withoutTimer(options),
      timerSec,
      owner: client.owner,
      expiresAt: undefined,
      fw,
    };
    this.#rules.set(key, rec);
    this.#arm(rec);
    this.#adoptReservation(rec);
    this.emit('rule-added', { key, owner: client.owner, timerSec });
    return { seq, status: FcpStatus.OK };
  }

  #backendFailure(op: 'install' | 'remove', key: string, seq: number, error: unknown): FcpResponse {
    this.#counters.backendErrors++;
    this.emit('backend-error', { op, key, error });
    this.#log.error({ op, key, err: error }, 'firewall backend failed');
    const detail = `firewall backend ${op} failed`;
    return { seq, status: FcpStatus.INTERNAL_ERROR, detail };
  }

  #arm(rec: RuleRecord): void {
    if (rec.timerSec === 0) {
      rec.expiresAt = undefined;
      this.#expiry.delete(rec.key);
    } else {
      rec.expiresAt = this.#timers.now() + rec.timerSec * 1000;
      this.#expiry.set(rec.key, rec.expiresAt);
    }
  }

  #countOwner(owner: string, delta: number): void {
    const n = (this.#ownerCounts.get(owner) ?? 0) + delta;
    if (n <= 0) this.#ownerCounts.delete(owner);
    else this.#ownerCounts.set(owner, n);
  }

  async #release(key: string, seq: number, client: FcpClientInfo): Promise<FcpResponse> {
    const rec = this.#rules.get(key);
    if (!rec) {
      return { seq, status: FcpStatus.BAD_REQUEST, detail: 'no matching rule found to release' };
    }
    if (rec.owner !== client.owner) {
      return { seq, status: FcpStatus.FORBIDDEN, detail: 'the rule belongs to another client' };
    }
    try {
      await this.backend.remove(rec.fw);
    } catch (error) {
      return this.#backendFailure('remove', key, seq, error);
    }
    this.#drop(rec);
    this.#releaseAdopted(rec, false);
    this.emit('rule-released', { key, owner: rec.owner, timerSec: rec.timerSec });
    return { seq, status: FcpStatus.OK };
  }

  #drop(rec: RuleRecord): void {
    this.#rules.delete(rec.key);
    this.#expiry.delete(rec.key);
    this.#countOwner(rec.owner, -1);
  }

  #onExpire(key: string): void {
    void this.#withKey(key, async () => {
      const rec = this.#rules.get(key);
      if (!rec || rec.expiresAt === undefined || rec.expiresAt > this.#timers.now()) return;
      this.#drop(rec);
      this.#releaseAdopted(rec, true);
      this.#counters.expired++;
      this.emit('rule-expired', { key, owner: rec.owner, timerSec: rec.timerSec });
      try {
        await this.backend.remove(rec.fw);
      } catch (error) {
        this.#counters.backendErrors++;
        this.emit('backend-error', { op: 'remove', key, error });
      }
    });
  }

  #query(seq: number, filter: Pme | undefined, client: FcpClientInfo): FcpResponse {
    const own = this.config.queryScope === 'own';
    const rules = [];
    for (const r of this.#rules.values()) {
      if (own && r.owner !== client.owner) continue;
      if (filter && !pmeMatches(filter, r.pme)) continue;
      rules.push({ pme: r.pme, options: { ...r.options, timer: r.timerSec } });
    }
    return { seq, status: FcpStatus.OK, rules };
  }

  #masqueraded(ip: string): boolean {
    const nat = this.config.nat;
    const a = parseAddress(ip);
    if (!nat || !a) return false;
    const host: ParsedPrefix = { ...a, prefix: a.family === 4 ? 32 : 128 };
    return nat.masquerade.some((n) => prefixContains(n, host));
  }

  #queryNat(seq: number, spec: NatSpec, client: FcpClientInfo): FcpResponse {
    const nat = this.config.nat;
    if (!nat || !this.#masqueraded(spec.srcIp)) {
      // §4.2: without masquerading the server answers the client's own address and ports.
      return { seq, status: FcpStatus.OK, nat: { ip: spec.srcIp, ports: spec.srcPorts } };
    }
    const key = `${spec.proto}|${spec.srcIp}|${spec.srcPorts[0]}`;
    const existing = this.#reservations.get(key);
    const ttl = nat.reservationSec * 1000;
    if (existing && existing.srcPorts[1] === spec.srcPorts[1]) {
      if (existing.owner !== client.owner) {
        return {
          seq,
          status: FcpStatus.FORBIDDEN,
          detail: 'the reservation belongs to another client',
        };
      }
      this.#natExpiry.set(key, this.#timers.now() + ttl);
      return { seq, status: FcpStatus.OK, nat: existing.binding };
    }
    if (existing) {
      return {
        seq,
        status: FcpStatus.BAD_REQUEST,
        detail: 'a different range is reserved for this port',
      };
    }
    const size = spec.srcPorts[1] - spec.srcPorts[0] + 1;
    const used = this.#usedNatPorts.get(spec.proto) ?? new Set<number>();
    const [lo, hi] = nat.portRange;
    let start = -1;
    for (let p = lo; p + size - 1 <= hi && start === -1; p++) {
      let free = true;
      for (let q = p; q < p + size; q++) {
        if (used.has(q)) {
          free = false;
          p = q;
          break;
        }
      }
      if (free) start = p;
    }
    if (start === -1) {
      return { seq, status: FcpStatus.INTERNAL_ERROR, detail: 'no free NAT ports' };
    }
    for (let q = start; q < start + size; q++) used.add(q);
    this.#usedNatPorts.set(spec.proto, used);
    const r: Reservation = {
      key,
      proto: spec.proto,
      srcIp: spec.srcIp,
      srcPorts: spec.srcPorts,
      binding: { ip: nat.publicAddress, ports: [start, start + size - 1] },
      owner: client.owner,
      rule: undefined,
    };
    this.#reservations.set(key, r);
    this.#natExpiry.set(key, this.#timers.now() + ttl);
    return { seq, status: FcpStatus.OK, nat: r.binding };
  }

  #releaseNat(seq: number, spec: NatSpec, client: FcpClientInfo): FcpResponse {
    if (!this.#masqueraded(spec.srcIp)) return { seq, status: FcpStatus.OK };
    // §2.4: releasing the lowest port of a range frees the whole range.
    const key = `${spec.proto}|${spec.srcIp}|${spec.srcPorts[0]}`;
    const r = this.#reservations.get(key);
    if (!r) return { seq, status: FcpStatus.BAD_REQUEST, detail: 'No such NAT reservation' };
    if (r.owner !== client.owner) {
      return {
        seq,
        status: FcpStatus.FORBIDDEN,
        detail: 'the reservation belongs to another client',
      };
    }
    this.#natExpiry.delete(key);
    const adopter = r.rule === undefined ? undefined : this.#rules.get(r.rule);
    if (adopter) adopter.natKey = undefined;
    this.#freeReservation(r);
    return { seq, status: FcpStatus.OK };
  }

  /**
   * Spec §5.5 step 3 with §6 #19: a new rule whose PROTO, SRCIP (a host) and SRCPORT range equal
   * a reservation of the same owner adopts it; the reservation then lives as long as the rule.
   */
  #adoptReservation(rec: RuleRecord): void {
    const { proto, src, srcPorts } = rec.pme;
    if (!this.config.nat || proto === undefined || !src || !srcPorts) return;
    if (src.prefix !== (src.family === 4 ? 32 : 128)) return;
    const resKey = `${proto}|${formatAddress(src)}|${srcPorts[0]}`;
    const r = this.#reservations.get(resKey);
    if (!r || r.rule !== undefined || r.srcPorts[1] !== srcPorts[1] || r.owner !== rec.owner)
      return;
    r.rule = rec.key;
    rec.natKey = resKey;
    this.#natExpiry.delete(resKey);
  }

  /** §5.5 step 4: released → the reservation goes back to its timer; expired → freed with it. */
  #releaseAdopted(rec: RuleRecord, expired: boolean): void {
    const resKey = rec.natKey;
    if (resKey === undefined) return;
    rec.natKey = undefined;
    const r = this.#reservations.get(resKey);
    if (!r || r.rule !== rec.key) return;
    r.rule = undefined;
    if (expired) this.#freeReservation(r);
    else {
      const ttl = (this.config.nat?.reservationSec ?? 30) * 1000;
      this.#natExpiry.set(resKey, this.#timers.now() + ttl);
    }
  }

  #onNatExpire(key: string): void {
    const r = this.#reservations.get(key);
    if (r) this.#freeReservation(r);
  }

  #freeReservation(r: Reservation): void {
    this.#reservations.delete(r.key);
    const used = this.#usedNatPorts.get(r.proto);
    for (let q = r.binding.ports[0]; q <= r.binding.ports[1]; q++) used?.delete(q);
  }
}

function fakeError(detail: string): RequestParseResult {
  return {
    kind: 'error',
    code: 'FCP_ERR_BAD_REQUEST',
    status: FcpStatus.BAD_REQUEST,
    detail,
    seq: 0,
    method: undefined,
  };
}
