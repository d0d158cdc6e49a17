/**
 * The stateful proxy core (RFC 3261 §16) on top of @pinhole/transaction. The transaction layer
 * (active mode) owns every §17 machine, the response contexts (forking, Timer C, best-response
 * selection, CANCEL, 100 Trying); this core does what §16 leaves to the element: validation,
 * Max-Forwards, loop detection, Route/Request-URI processing, Record-Route, the location service
 * and static routes, stateless forwarding of ACKs of 2xx, of CANCELs matching nothing and of
 * responses matching no transaction, and failing a call when the firewall says so.
 *
 * The media gate (the firewall module) sees each request before it is forwarded (its policy
 * actions may reject it or add headers) and attaches itself to the layer's events: it holds the
 * responses that enable media, and may replace one by a failure (fail-closed).
 */
import { isIP } from 'node:net';
import { lookup } from 'node:dns/promises';
import { networkInterfaces } from 'node:os';
import {
  buildResponse,
  buildResponseFromPartial,
  parse,
  parseUri,
  serialize,
  validate,
  type ParseResult,
  type SipMessage,
  type SipUri,
} from '@pinhole/sip';
import {
  MAGIC_COOKIE,
  reasonPhrase,
  TransactionLayer,
  type Address,
  type ClientTransaction,
  type HoldDecision,
  type ServerTransaction,
  type SerializedMessage,
  type TransactionError,
} from '@pinhole/transaction';
import type { ProxyConfig, TransportName } from './config.js';
import { ProxyError, ProxyErrorCode } from './errors.js';
import type { ProxyMetrics } from './metrics.js';
import { canonicalAor, Registrar, type RegisterRequest } from './registrar.js';
import { StaticRouter } from './routing.js';
import {
  fnv1a,
  hostText,
  nextHopOf,
  randomToken,
  responseTarget,
  stampVia,
  topViaText,
  type NextHop,
} from './sip-util.js';
import type { Inbound, Listener, Peer } from './transport.js';

export interface Logger {
  /** pino's: lets the core skip building debug records nobody will see. */
  isLevelEnabled?(level: string): boolean;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/** What the core asks of the transport layer. */
export interface CoreTransport {
  send(bytes: Buffer | Uint8Array, peer: Peer, via?: Listener): boolean;
  readonly listeners: readonly Listener[];
  listenerFor(transport: TransportName, address: string): Listener | undefined;
  /** Workers: this worker's own sockets (also this proxy, for Via checks). */
  readonly privateListeners?: readonly Listener[];
  /** Workers: the socket forwarded requests leave from, so their responses come back here. */
  privateFor?(listener: Listener): Listener | undefined;
  /** A read barrier for the layer's retransmission timers (`Transports.afterInput`). */
  afterInput?(fn: () => void): void;
}

/** A request about to be forwarded (or an ACK relayed statelessly), as the media gate sees it. */
export interface GateEvent {
  readonly message: SipMessage;
  readonly source?: Peer;
  readonly destination?: Peer;
}

export type GateAction =
  | { readonly kind: 'set-header' | 'add-header'; readonly name: string; readonly value: string }
  | {
      readonly kind: 'reject';
      readonly status: number;
      readonly reason: string;
      readonly headers: readonly { readonly name: string; readonly value: string }[];
    };

export interface GateDecision {
  readonly actions: readonly GateAction[];
}

/** What the core offers the media gate when it attaches to the transaction layer. */
export interface ProxyHooks {
  /**
   * Fail-closed: the call of this server transaction fails instead of relaying `response`. The
   * callee's side is ended (CANCEL of pending branches, ACK and BYE for a 2xx) and the decision
   * returned replaces the held response upstream (503) or drops it when the caller already has
   * its final answer. Idempotent: later responses of a failed call are dropped.
   */
  failCall(
    server: ServerTransaction,
    response: SipMessage,
    branch: ClientTransaction | undefined,
  ): HoldDecision;
  /**
   * True once the call of this server transaction was failed; with a response, also when that
   * response's dialog (a fork answered after another fork's 2xx went through) was failed.
   */
  isFailed(server: ServerTransaction, response?: SipMessage): boolean;
  /** The transport address as the core's peers name it. */
  peerOf(address: Address | undefined): Peer | undefined;
  /**
   * When the proxy read the message it is handling now (`performance.now()`: the transport's
   * `readAt`, else the core's `receive`); undefined outside the handling of a received message
   * (a local response, a timer).
   */
  receivedAt(): number | undefined;
  /**
   * Counts the pinhole step of a held response into the proxy's metrics (`pinholeStep`,
   * `pinholeStepRecent`): from `receivedAt` to the decision that relays or fails it.
   */
  observeStep(seconds: number): void;
}

/** The firewall module's view of the proxy (see firewall.ts). */
export interface MediaGate {
  /** A request about to be forwarded, before it is copied per branch: policy actions. */
  request(ev: GateEvent): GateDecision;
  /** Registers the gate's listeners on the layer; returns a function that removes them. */
  attach(layer: TransactionLayer, hooks: ProxyHooks): () => void;
}

/** A gate that opens nothing (tests, or a proxy without a firewall). */
export const NO_GATE: MediaGate = {
  request: () => ({ actions: [] }),
  attach: () => () => undefined,
};

export interface ProxyCoreOptions {
  readonly config: ProxyConfig;
  readonly transport: CoreTransport;
  readonly metrics: ProxyMetrics;
  readonly logger: Logger;
  readonly gate?: MediaGate;
  readonly registrar?: Registrar;
  /** Workers: called after a REGISTER changed the location service, to replicate it. */
  readonly onRegister?: (req: RegisterRequest) => void;
  /** Overload control (overload.ts): refuses a share of new out-of-dialog requests with 503. */
  readonly overload?: LoadShedder;
  /** The transaction table's bound (default the layer's, 100,000); past it a stateless 503. */
  readonly maxTransactions?: number;
}

/** What the core asks of overload control. */
export interface LoadShedder {
  /** True when this new out-of-dialog request is to be refused. */
  shed(): boolean;
  readonly retryAfterSec: number;
}

const UPPER = /[A-Z]/;

function ipOf(host: string): string {
  // Per message and per Via: no regular-expression replace, no copy of a lower-case literal.
  let h = host;
  if (h.charCodeAt(0) === 0x5b) h = h.slice(1);
  if (h.charCodeAt(h.length - 1) === 0x5d) h = h.slice(0, -1);
  return UPPER.test(h) ? h.toLowerCase() : h;
}

function transportName(t: string): TransportName {
  return t === 'UDP' ? 'udp' : t.toUpperCase() === 'TCP' ? 'tcp' : 'udp';
}

/**
 * The layer's upper-case name of a transport: a constant (`toUpperCase` makes a new string per
 * call, and each transaction keeps its addresses for up to 64*T1).
 */
function layerTransport(t: TransportName): string {
  return t === 'udp' ? 'UDP' : 'TCP';
}

/**
 * A failed call (`whole`: the caller got a 503) or, after another fork's 2xx went through, only
 * some of its forks; `hungUp`: To tags of the callee answers already ACKed and hung up.
 */
interface FailedCall {
  whole: boolean;
  readonly hungUp: Set<string>;
}

/** How long a failed call is remembered (the callee's 2xx retransmissions stop within 64*T1). */
const FAILED_MEMORY_MS = 40_000;

export class ProxyCore {
  #config: ProxyConfig;
  #router: StaticRouter;
  readonly layer: TransactionLayer;
  /** See `ProxyHooks.receivedAt`. */
  #receivedAt: number | undefined;
  readonly #transport: CoreTransport;
  readonly #metrics: ProxyMetrics;
  readonly #log: Logger;
  #gate: MediaGate;
  #detach: () => void;
  readonly registrar: Registrar;
  /**
   * The ports at which each address is this proxy (for Route, Request-URI and Via checks); -1
   * stands for "no port given" (5060).
   */
  #self = new Map<string, Set<number>>();
  #counter = 0;
  readonly #dns = new Map<string, string>();
  #sweep: NodeJS.Timeout | undefined;
  readonly #onRegister: ((req: RegisterRequest) => void) | undefined;
  readonly #overload: LoadShedder | undefined;
  readonly #debug: boolean;
  readonly #failed = new Map<ServerTransaction, FailedCall>();
  /** CANCELs forwarded statelessly (§16.10), whose retransmissions are forwarded again. */
  readonly #statelessCancels = new Map<ServerTransaction, { dest: Peer; bytes: Buffer }>();
  /**
   * The layer listeners that serve #statelessCancels, registered only while it holds one (they
   * would otherwise see every request and every destroyed transaction for nothing).
   */
  #cancelWatch: (() => void) | undefined;

  constructor(opts: ProxyCoreOptions) {
    this.#onRegister = opts.onRegister;
    this.#overload = opts.overload;
    this.#debug = opts.logger.isLevelEnabled?.('debug') ?? true;
    this.#config = opts.config;
    this.#router = new StaticRouter(opts.config.routes);
    this.#transport = opts.transport;
    this.#metrics = opts.metrics;
    this.#log = opts.logger;
    this.registrar =
      opts.registrar ??
      new Registrar({
        minExpires: opts.config.registrar.minExpires,
        maxExpires: opts.config.registrar.maxExpires,
        defaultExpires: opts.config.registrar.defaultExpires,
        maxContacts: opts.config.registrar.maxContacts,
      });
    const transport = opts.transport;
    this.layer = new TransactionLayer({
      transport: {
        send: (message, destination) => this.#send(message, destination),
        sendSerialized: (message, destination) => this.#sendSerialized(message, destination),
        ...(transport.afterInput !== undefined
          ? { afterInput: (fn: () => void) => transport.afterInput?.(fn) }
          : {}),
      },
      sentBy: (transport, destination) => this.#sentBy(transport, destination),
      // §16.2: "a stateful proxy ... SHOULD generate a 100 (Trying) response" at once: a late
      // 100 makes the caller retransmit, which costs more than the 100.
      trying: 'immediate',
      timers: { C: opts.config.timerCMs },
      // A full transaction table is an overload too: its 503 carries the overload control's
      // Retry-After, none by default (see `#refuseForOverload`).
      tableFullRetryAfter: () => this.#config.overload.retryAfter,
      ...(opts.maxTransactions !== undefined ? { maxTransactions: opts.maxTransactions } : {}),
      // Holds end at the media gate's own deadline; this is only the layer's safety net.
      holdDeadlineMs: 61_000,
      user: {
        request: (server) => this.#onRequest(server),
        ack: (message, source) => this.#forwardAck(message, source),
        response: (message) => this.#forwardStatelessResponse(message),
      },
      onError: (err) => this.#layerError(err),
    });
    this.#gate = opts.gate ?? NO_GATE;
    this.#detach = this.#gate.attach(this.layer, this.#hooks());
    this.#sweep = setInterval(() => this.registrar.sweep(), 10_000);
    this.#sweep.unref();
    this.refreshSelf();
  }

  /** Live server transactions (metrics gauge). */
  get transactionCount(): number {
    let n = 0;
    for (const t of this.layer.transactions()) if (t.kind === 'ist' || t.kind === 'nist') n++;
    return n;
  }

  get clientTransactionCount(): number {
    return this.layer.size - this.transactionCount;
  }

  setGate(gate: MediaGate): void {
    this.#detach();
    this.#gate = gate;
    this.#detach = gate.attach(this.layer, this.#hooks());
  }

  /** SIGHUP: new routes and settings; the registrar's bindings stay. */
  reconfigure(config: ProxyConfig): void {
    this.#config = config;
    this.#router = new StaticRouter(config.routes);
    this.refreshSelf();
  }

  /** Recomputes which addresses are this proxy (after listeners change). */
  refreshSelf(): void {
    const self = new Map<string, Set<number>>();
    for (const l of [...this.#transport.listeners, ...(this.#transport.privateListeners ?? [])]) {
      const addrs = [l.advertise, l.host];
      if (l.host === '0.0.0.0' || l.host === '::') {
        for (const list of Object.values(networkInterfaces())) {
          for (const a of list ?? []) addrs.push(a.address);
        }
      }
      for (const a of addrs) {
        const key = ipOf(a);
        let ports = self.get(key);
        if (ports === undefined) self.set(key, (ports = new Set()));
        ports.add(l.port);
        if (l.port === 5060) ports.add(-1);
      }
    }
    this.#self = self;
  }

  #isSelf(host: string, port: number | undefined): boolean {
    const ports = this.#self.get(ipOf(host));
    if (ports === undefined) return false;
    return ports.has(port ?? -1);
  }

  close(): void {
    if (this.#sweep) clearInterval(this.#sweep);
    this.#detach();
    this.layer.close();
    this.#failed.clear();
    this.#statelessCancels.clear();
    this.#unwatchCancels();
  }

  // ---------------------------------------------------------------------------------------------
  // The transport seen by the layer

  #addressOf(inb: Inbound): Address {
    return {
      transport: layerTransport(inb.peer.transport),
      host: inb.peer.address,
      port: inb.peer.port,
      connectionId: inb.listener.index,
    };
  }

  #peerOf(a: Address | undefined): Peer | undefined {
    return a === undefined
      ? undefined
      : { transport: transportName(a.transport), address: ipOf(a.host), port: a.port };
  }

  #listenerTo(peer: Peer, index?: string | number): Listener | undefined {
    if (typeof index === 'number') {
      const l = this.#transport.listeners.find(
        (x) => x.index === index && x.transport === peer.transport,
      );
      if (l !== undefined && (isIP(peer.address) === 6) === (l.family === 6)) return l;
    }
    return this.#transport.listenerFor(peer.transport, peer.address);
  }

  #sentBy(transport: string, destination: Address): string {
    const pub = this.#transport.listenerFor(transportName(transport), ipOf(destination.host));
    if (pub === undefined) {
      throw new ProxyError(ProxyErrorCode.TRANSPORT, `no ${transport} listener`);
    }
    // Workers: the Via names this worker's own socket, so responses come straight back here.
    const l = this.#transport.privateFor?.(pub) ?? pub;
    return `${hostText(l.advertise)}:${l.port}`;
  }

  /** Every message the layer sends. A throw is a transport error for its transaction. */
  #send(message: SipMessage, destination: Address): void {
    this.#sendWire(serialize(message), message.isRequest, message.status, destination, message);
  }

  /**
   * The same for a message the layer serialised itself: what a transaction keeps and resends
   * once it only absorbs retransmissions (final responses, forwarded requests, ACKs of non-2xx).
   */
  #sendSerialized(message: SerializedMessage, destination: Address): void {
    // Debug logs name the Call-ID and method as for any send: parse the bytes only then.
    const parsed = this.#debug ? message.parse() : undefined;
    this.#sendWire(message.bytes, message.isRequest, message.status, destination, parsed);
  }

  #sendWire(
    bytes: Uint8Array,
    isRequest: boolean,
    status: number,
    destination: Address,
    message: SipMessage | undefined,
  ): void {
    const peer = this.#peerOf(destination)!;
    if (isIP(peer.address) === 0) {
      // A response by `maddr` naming a host: no resolver on this path (§18.2.2 maddr is rare).
      throw new ProxyError(ProxyErrorCode.TRANSPORT, `not an IP address: ${peer.address}`);
    }
    let via = this.#listenerTo(peer, destination.connectionId);
    // Requests leave from the socket their Via names (a worker's own, see #sentBy).
    if (isRequest && via !== undefined) via = this.#transport.privateFor?.(via) ?? via;
    if (!this.#transport.send(bytes, peer, via)) {
      throw new ProxyError(ProxyErrorCode.TRANSPORT, `cannot send to ${peer.address}`);
    }
    if (isRequest) {
      if (this.#debug) {
        this.#log.debug(
          { callId: message?.callId(), method: message?.method, dest: peer },
          'request forwarded',
        );
      }
      return;
    }
    this.#metrics.responses.inc({ code: status });
    if (this.#debug && status > 100) {
      this.#log.debug(
        { callId: message?.callId(), status, method: message?.cseq()?.method },
        'response relayed',
      );
    }
  }

  #layerError(err: TransactionError): void {
    // Hold deadlines and transport failures are expected under load or with dead peers.
    const level = err.code === 'TXN_ERR_BAD_USAGE' || err.code === 'TXN_ERR_BAD_MESSAGE';
    const cause = err.cause instanceof Error ? err.cause.message : undefined;
    if (level) this.#log.warn({ code: err.code, err: err.message, cause }, 'transaction layer');
    else if (this.#debug) {
      this.#log.debug({ code: err.code, err: err.message, cause }, 'transaction layer');
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Input

  /** Entry point for every received message (datagram bytes or a framed stream message). */
  receive(inb: Inbound): void {
    const outer = this.#receivedAt;
    this.#receivedAt = inb.readAt ?? performance.now();
    try {
      this.#receive(inb);
    } finally {
      this.#receivedAt = outer;
    }
  }

  #receive(inb: Inbound): void {
    const r: ParseResult = inb.parsed ?? parse(inb.bytes ?? Buffer.alloc(0));
    if (!r.ok) {
      this.#badMessage(inb, r);
      return;
    }
    const msg = r.message;
    if (msg.isRequest) {
      this.#metrics.requests.inc({ method: msg.method.toUpperCase() });
      const v = validate(msg, { proxyRequire: [] });
      if (!v.ok) {
        this.#metrics.badMessages.inc({ outcome: msg.method === 'ACK' ? 'dropped' : 'answered' });
        // An ACK is never answered; without any Via line there is nowhere to answer.
        if (msg.method === 'ACK' || !msg.has('via')) return;
        const headers: [string, string][] = [];
        if (v.unsupported && v.unsupported.length > 0) {
          headers.push(['Unsupported', v.unsupported.join(', ')]);
        }
        this.#log.info({ status: v.status, reason: v.reason, peer: inb.peer }, 'invalid request');
        this.#replyStateless(msg, inb, v.status, v.reason, headers);
        return;
      }
      // §18.2.1 / RFC 3581: received and rport, so responses find their way back.
      const via = msg.topVia()!;
      const stamped = stampVia(
        via,
        topViaText(msg) ?? '',
        inb.peer.address,
        inb.peer.port,
        inb.peer.transport === 'udp',
      );
      if (stamped !== undefined) {
        msg.removeTopVia();
        msg.prependVia(stamped);
      }
    } else {
      const v = validate(msg);
      if (!v.ok) {
        // RFC 4475 §3.1.2.5 and friends: a malformed response is discarded.
        this.#metrics.badMessages.inc({ outcome: 'dropped' });
        return;
      }
      this.#metrics.responses.inc({ code: msg.status });
      const via = msg.topVia();
      // §16.7: a response whose top Via is not this proxy's is not ours to handle.
      if (!via || !this.#isSelf(via.host, via.port)) return;
    }
    this.layer.receive(msg, this.#addressOf(inb));
  }

  /** A message that did not parse: 400 when it can be answered, silence otherwise. */
  #badMessage(inb: Inbound, r: Extract<ParseResult, { ok: false }>): void {
    const p = r.error.partial;
    const reason = r.error.reason;
    if (
      !p ||
      p.method === undefined ||
      p.method === 'ACK' ||
      !p.via ||
      p.via.length === 0 ||
      p.callId === undefined ||
      p.cseq === undefined ||
      p.from === undefined ||
      p.to === undefined
    ) {
      this.#metrics.badMessages.inc({ outcome: 'dropped' });
      this.#log.debug({ peer: inb.peer, reason }, 'unanswerable garbage dropped');
      return;
    }
    this.#metrics.badMessages.inc({ outcome: 'answered' });
    let response: SipMessage;
    try {
      response = buildResponseFromPartial(p, 400, cleanPhrase(reason), [], { toTag: false });
    } catch {
      this.#metrics.badMessages.inc({ outcome: 'dropped' });
      return;
    }
    this.#log.info({ peer: inb.peer, reason }, 'unparsable request answered 400');
    this.#transport.send(serialize(response), inb.peer, inb.listener);
    this.#metrics.responses.inc({ code: 400 });
  }

  /** Answers without a transaction, to the source (§18.2.2 with rport semantics). */
  #replyStateless(
    req: SipMessage,
    inb: Inbound,
    status: number,
    reason?: string,
    headers: readonly (readonly [string, string])[] = [],
  ): void {
    let response: SipMessage;
    try {
      response = buildResponse(req, status, cleanPhrase(reason ?? reasonPhrase(status)), headers);
    } catch {
      return;
    }
    this.#transport.send(serialize(response), inb.peer, inb.listener);
    this.#metrics.responses.inc({ code: status });
  }

  // ---------------------------------------------------------------------------------------------
  // Requests (the transaction user)

  #respond(
    server: ServerTransaction,
    status: number,
    reason?: string,
    headers: readonly (readonly [string, string])[] = [],
  ): void {
    if (this.#debug) {
      this.#log.debug(
        { callId: server.request.callId(), status, method: server.request.method },
        'local response',
      );
    }
    this.layer.reply(server, status, cleanPhrase(reason ?? reasonPhrase(status)), headers);
  }

  #onRequest(server: ServerTransaction): void {
    const req = server.request;
    if (this.#overload !== undefined && this.#refuseForOverload(server, req, this.#overload)) {
      return;
    }
    // The layer keeps its request for matching and local responses: work on a copy.
    const msg = req.clone();
    const source = this.#peerOf(server.peer)!;
    if (msg.method.toUpperCase() === 'CANCEL') {
      // The layer answers a CANCEL that matches a transaction; this one matched none.
      this.#forwardStatelessCancel(server, msg, source);
      return;
    }
    // §16.3 step 3: "If the request does not contain a Max-Forwards header field, this check
    // is passed. If the request contains a Max-Forwards header field with a field value greater
    // than zero, the check is passed. If the request contains a Max-Forwards header field with
    // a field value of zero (0), the element MUST NOT forward the request."
    const mf = msg.maxForwards();
    if (mf !== undefined && mf <= 0) {
      this.#respond(server, 483);
      return;
    }
    // §16.3 step 4: loop detection by the branch this proxy would compute.
    const loopHash = this.#loopHash(msg);
    for (const v of msg.via()) {
      if (this.#isSelf(v.host, v.port) && v.branch?.startsWith(`${MAGIC_COOKIE}-ph${loopHash}.`)) {
        this.#respond(server, 482);
        return;
      }
    }
    this.#route(server, msg, source, loopHash);
  }

  /**
   * Overload control: a new out-of-dialog request may be refused at once. The calls already set
   * up keep their in-dialog requests, and a CANCEL ends a call, so both always pass; so does an
   * OPTIONS to the proxy itself (answered locally, cheaply: a load balancer's health check).
   * §21.5.4: "The server is temporarily unable to process the request due to a temporary
   * overloading or maintenance of the server. The server MAY indicate when the client should
   * retry the request in a Retry-After header field." — and a client "SHOULD NOT forward any
   * other requests to that server for the duration specified in the Retry-After", which turns a
   * refusal of a share into a refusal of everything upstream: no Retry-After unless configured.
   */
  #refuseForOverload(server: ServerTransaction, req: SipMessage, ol: LoadShedder): boolean {
    if (!ol.shed() || req.to()?.tag !== undefined) return false;
    const method = req.method.toUpperCase();
    if (method === 'CANCEL') return false;
    if (method === 'OPTIONS') {
      const ruri = req.requestUriParsed();
      if (ruri?.user === undefined && ruri !== undefined && this.#isSelf(ruri.host, ruri.port)) {
        return false;
      }
    }
    this.#metrics.overloadRefused.inc({ method });
    const retry = ol.retryAfterSec;
    this.#respond(server, 503, 'Overloaded', retry > 0 ? [['Retry-After', String(retry)]] : []);
    return true;
  }

  #loopHash(msg: SipMessage): string {
    return fnv1a([
      msg.requestUri,
      msg.from()?.tag,
      msg.to()?.tag,
      msg.callId(),
      String(msg.cseq()?.seq ?? ''),
      msg.getAll('route').join(','),
      msg.get('proxy-require'),
    ]);
  }

  /** §16.4 route information preprocessing. */
  #preprocessRoutes(msg: SipMessage): void {
    const ruri = msg.requestUriParsed();
    const routes = msg.route();
    // Strict-router compatibility: the Request-URI is a value we put in Record-Route; the real
    // Request-URI is the last Route value.
    if (ruri && this.#isSelf(ruri.host, ruri.port) && ruri.params.has('lr') && routes.length > 0) {
      const last = routes[routes.length - 1]!;
      msg.setRequestUri(last.uri.raw);
      const all = msg.getAll('route');
      msg.removeHeader('route');
      for (const v of all.slice(0, -1)) msg.addHeader('Route', v);
      return;
    }
    const top = routes[0];
    if (top && this.#isSelf(top.uri.host, top.uri.port)) msg.removeTopRoute();
  }

  #route(server: ServerTransaction, msg: SipMessage, source: Peer, loopHash: string): void {
    this.#preprocessRoutes(msg);
    const method = msg.method.toUpperCase();
    const ruri = msg.requestUriParsed();
    if (!ruri) {
      this.#respond(server, 400, 'Bad Request-URI');
      return;
    }
    const routes = msg.route();
    const inDialog = msg.to()?.tag !== undefined;
    // Requests with a Route left go there (loose routing; pre-loaded or in-dialog route set).
    if (routes.length > 0) {
      this.#forward(server, msg, [{ uri: undefined }], source, loopHash, inDialog);
      return;
    }
    // The Request-URI names this proxy (its address and port) or a domain it serves.
    const ours =
      this.#isSelf(ruri.host, ruri.port) || this.#config.domains.includes(ipOf(ruri.host));
    if (method === 'REGISTER' && ours) {
      this.#register(server, msg, source);
      return;
    }
    if (inDialog) {
      // In-dialog without Route: the Request-URI is the remote target (§16.5).
      if (this.#isSelf(ruri.host, ruri.port)) {
        this.#respond(server, 481);
        return;
      }
      this.#forward(server, msg, [{ uri: undefined }], source, loopHash, true);
      return;
    }
    if (method === 'OPTIONS' && ours && ruri.user === undefined) {
      this.#respond(server, 200);
      return;
    }
    // Location service first for our domains, then static routes.
    if (ours && ruri.user !== undefined) {
      const aor = canonicalAor('sip', ruri.user, ruri.host);
      const bindings = this.registrar.lookup(aor);
      if (bindings.length > 0) {
        this.#forward(
          server,
          msg,
          bindings.map((b) => ({ uri: b.uri })),
          source,
          loopHash,
          false,
        );
        return;
      }
      const rule = this.#router.lookup(ruri);
      if (!rule) {
        this.#respond(server, this.registrar.known(aor) ? 480 : 404);
        return;
      }
      // The Request-URI named this proxy: retarget to the route, keeping the user.
      const target = parseUri(rule.target);
      if ('code' in target) {
        this.#respond(server, 500, 'Bad route target');
        return;
      }
      const uri =
        target.user === undefined && ruri.user !== undefined
          ? withUser(rule.target, ruri.rawUser ?? ruri.user)
          : rule.target;
      this.#forward(server, msg, [{ uri }], source, loopHash, false);
      return;
    }
    if (ours) {
      this.#respond(server, 404);
      return;
    }
    const rule = this.#router.lookup(ruri);
    if (rule) {
      // Another domain: the route is the next hop (outbound proxy), the Request-URI stays.
      this.#forward(
        server,
        msg,
        [{ uri: undefined, nextHop: rule.target }],
        source,
        loopHash,
        false,
      );
      return;
    }
    this.#forward(server, msg, [{ uri: undefined }], source, loopHash, false);
  }

  #register(server: ServerTransaction, msg: SipMessage, source: Peer): void {
    const to = msg.to();
    const cseq = msg.cseq();
    const callId = msg.callId();
    if (!to || !cseq || callId === undefined) {
      this.#respond(server, 400);
      return;
    }
    if (to.uri.scheme !== 'sip' && to.uri.scheme !== 'sips') {
      this.#respond(server, 404, 'Not Found (AOR scheme)');
      return;
    }
    const aor = canonicalAor('sip', to.uri.user, to.uri.host);
    const req: RegisterRequest = {
      aor,
      contacts: msg.contacts().map((c) => ({ uri: c.uri.raw, expires: c.expires, q: c.q })),
      star: msg.contactStar(),
      expires: msg.expires(),
      callId,
      cseq: cseq.seq,
      source: { transport: source.transport, address: source.address, port: source.port },
    };
    const r = this.registrar.register(req);
    switch (r.status) {
      case 200:
        if (req.star || req.contacts.length > 0) this.#onRegister?.(req);
        this.#respond(server, 200, undefined, [
          ...r.bindings.map((b): [string, string] => [
            'Contact',
            `<${b.uri}>;expires=${b.expires}`,
          ]),
          ['Date', new Date().toUTCString()],
        ]);
        return;
      case 423:
        this.#respond(server, 423, r.reason, [['Min-Expires', String(r.minExpires)]]);
        return;
      case 400:
      case 500:
        this.#respond(server, r.status, r.reason);
        return;
    }
  }

  /** Resolves a next hop: IP literals at once, names through the resolver (cached). */
  #resolve(hop: NextHop): Peer | Promise<Peer | undefined> {
    const h = ipOf(hop.host);
    if (isIP(h) !== 0) return { transport: hop.transport, address: h, port: hop.port };
    const cached = this.#dns.get(h);
    if (cached !== undefined) return { transport: hop.transport, address: cached, port: hop.port };
    return lookup(h).then(
      (r) => {
        if (this.#dns.size > 1000) this.#dns.clear();
        this.#dns.set(h, r.address);
        return { transport: hop.transport, address: r.address, port: hop.port };
      },
      () => undefined,
    );
  }

  #forward(
    server: ServerTransaction,
    msg: SipMessage,
    targets: readonly { uri: string | undefined; nextHop?: string }[],
    source: Peer,
    loopHash: string,
    inDialog: boolean,
  ): void {
    // Policy actions (headers to add, or a rejection) come before the request is copied.
    const decision = this.#gate.request({ message: msg, source });
    for (const a of decision.actions) {
      if (a.kind === 'reject') {
        this.#respond(
          server,
          a.status,
          a.reason,
          a.headers.map((h): [string, string] => [h.name, h.value]),
        );
        return;
      }
      if (a.kind === 'set-header') msg.setHeader(a.name, a.value);
      else msg.addHeader(a.name, a.value);
    }
    const ctx = this.layer.proxy(server);
    let outstanding = targets.length;
    let failure: { status: number; reason: string } | undefined;
    /** When no branch could be created at all, the caller gets the reason. */
    const done = (fail?: { status: number; reason: string }): void => {
      if (fail !== undefined && failure === undefined) failure = fail;
      if (--outstanding > 0 || ctx.branches.length > 0 || !server.pending) return;
      // A CANCEL that came while a next hop was being resolved: the request was terminated.
      const f = ctx.cancelled
        ? { status: 487, reason: reasonPhrase(487) }
        : (failure ?? { status: 503, reason: reasonPhrase(503) });
      this.#respond(server, f.status, f.reason);
    };
    for (const t of targets) {
      const out = targets.length > 1 ? msg.clone() : msg;
      if (t.uri !== undefined) out.setRequestUri(t.uri);
      out.decrementMaxForwards();
      let hopUri: SipUri | undefined;
      const route = out.route()[0];
      if (route) {
        if (!route.uri.params.has('lr')) {
          // §16.6 item 6: a strict router next: it gets the Request-URI as its last Route.
          const ruri = out.requestUri;
          out.removeTopRoute();
          out.addHeader('Route', `<${ruri}>`);
          out.setRequestUri(route.uri.raw);
        }
        hopUri = route.uri;
      } else if (t.nextHop !== undefined) {
        const u = parseUri(t.nextHop);
        hopUri = 'code' in u ? undefined : u;
      } else {
        hopUri = out.requestUriParsed();
      }
      const hop = hopUri ? nextHopOf(hopUri, source.transport) : undefined;
      if (!hop) {
        done({ status: 416, reason: reasonPhrase(416) });
        continue;
      }
      const dest = this.#resolve(hop);
      if (!(dest instanceof Promise)) {
        done(this.#sendBranch(server, out, dest, source, loopHash, inDialog));
        continue;
      }
      void dest.then((d) =>
        done(
          d === undefined
            ? { status: 503, reason: 'Next hop does not resolve' }
            : this.#sendBranch(server, out, d, source, loopHash, inDialog),
        ),
      );
    }
  }

  /** Creates one branch; returns why it could not, if it could not. */
  #sendBranch(
    server: ServerTransaction,
    out: SipMessage,
    dest: Peer,
    source: Peer,
    loopHash: string,
    inDialog: boolean,
  ): { status: number; reason: string } | undefined {
    if (!server.pending) return undefined;
    const method = out.method.toUpperCase();
    const outListener = this.#transport.listenerFor(dest.transport, dest.address);
    if (!outListener) return { status: 503, reason: `No ${dest.transport} listener` };
    // §16.6 item 4: Record-Route with lr on dialog-creating requests (twice when the request
    // changes transport or address family, so each side sees an address it can reach).
    if (!inDialog && (method === 'INVITE' || method === 'SUBSCRIBE' || method === 'REFER')) {
      const inListener = this.#transport.listenerFor(source.transport, source.address);
      const rrOut = recordRouteFor(outListener);
      const rrIn = inListener ? recordRouteFor(inListener) : rrOut;
      if (rrIn !== rrOut) out.prependRecordRoute(rrIn);
      out.prependRecordRoute(rrOut);
    }
    // §16.6 step 8 (the layer adds the Via): the branch carries the loop-detection hash.
    const branch = `${MAGIC_COOKIE}-ph${loopHash}.${(++this.#counter).toString(36)}`;
    const ct = this.layer.proxy(server).forward(
      out,
      {
        transport: layerTransport(dest.transport),
        host: dest.address,
        port: dest.port,
        connectionId: outListener.index,
      },
      { branch, viaParams: ';rport' },
    );
    return ct === undefined ? { status: 503, reason: reasonPhrase(503) } : undefined;
  }

  /** §16.10: "If a response context is not found, ... It MUST statelessly forward the CANCEL request." */
  #forwardStatelessCancel(server: ServerTransaction, msg: SipMessage, source: Peer): void {
    const fwd = this.#statelessRequest(msg, source);
    if (fwd === undefined) {
      // Nowhere to forward it: nobody can have the INVITE it cancels.
      this.#respond(server, 481);
      return;
    }
    void fwd.then((r) => {
      if (r === undefined) {
        if (server.pending) this.#respond(server, 481);
        return;
      }
      // Retransmissions of the CANCEL are absorbed by its server transaction and forwarded again.
      if (server.terminated) return;
      this.#statelessCancels.set(server, r);
      this.#watchCancels();
    });
  }

  #watchCancels(): void {
    if (this.#cancelWatch !== undefined) return;
    const offDestroyed = this.layer.on('transactionDestroyed', (e) => {
      const t = e.transaction as ServerTransaction | undefined;
      if (t === undefined || e.branch !== undefined) return;
      this.#statelessCancels.delete(t);
      if (this.#statelessCancels.size === 0) this.#unwatchCancels();
    });
    const offReceived = this.layer.on('requestReceived', (e) => {
      if (!e.retransmission || e.transaction === undefined) return;
      const fwd = this.#statelessCancels.get(e.transaction as ServerTransaction);
      if (fwd !== undefined) this.#transport.send(fwd.bytes, fwd.dest, this.#listenerTo(fwd.dest));
    });
    this.#cancelWatch = () => {
      offDestroyed();
      offReceived();
    };
  }

  #unwatchCancels(): void {
    this.#cancelWatch?.();
    this.#cancelWatch = undefined;
  }

  /**
   * §16.11 stateless forwarding of a request (ACK of a 2xx, unmatched CANCEL): Route
   * processing, Max-Forwards, a Via whose branch is the same for every retransmission.
   */
  #statelessRequest(
    msg: SipMessage,
    source: Peer,
  ): Promise<{ dest: Peer; bytes: Buffer } | undefined> | undefined {
    this.#preprocessRoutes(msg);
    const mf = msg.maxForwards();
    if (mf !== undefined && mf <= 0) return undefined;
    msg.decrementMaxForwards();
    const route = msg.route()[0];
    let hopUri: SipUri | undefined = route?.uri ?? msg.requestUriParsed();
    if (route && !route.uri.params.has('lr')) {
      const ruri = msg.requestUri;
      msg.removeTopRoute();
      msg.addHeader('Route', `<${ruri}>`);
      msg.setRequestUri(route.uri.raw);
      hopUri = route.uri;
    }
    if (!route && hopUri && this.#isSelf(hopUri.host, hopUri.port)) {
      // The Request-URI names this proxy: route it as the request it belongs to was routed.
      const rule = this.#router.lookup(hopUri);
      if (rule) {
        const u = parseUri(rule.target);
        hopUri = 'code' in u ? undefined : u;
      }
    }
    const hop = hopUri ? nextHopOf(hopUri, source.transport) : undefined;
    if (!hop || this.#isSelf(hop.host, hop.port)) return undefined;
    // §16.11: "the branch parameter ... MUST be the same for each retransmission": a hash of
    // the received request's top Via branch, Call-ID, CSeq and method.
    const branch = `${MAGIC_COOKIE}-phs${fnv1a([msg.topVia()?.branch, msg.callId(), String(msg.cseq()?.seq), msg.method])}`;
    return Promise.resolve(this.#resolve(hop)).then((dest) => {
      if (!dest) return undefined;
      const l = this.#transport.listenerFor(dest.transport, dest.address);
      if (!l) return undefined;
      msg.prependVia(
        `SIP/2.0/${l.transport.toUpperCase()} ${hostText(l.advertise)}:${l.port};branch=${branch};rport`,
      );
      this.#gate.request({ message: msg, source, destination: dest });
      const bytes = serialize(msg);
      this.#transport.send(bytes, dest, l);
      if (this.#debug) {
        this.#log.debug(
          { callId: msg.callId(), method: msg.method, dest },
          'request forwarded statelessly',
        );
      }
      return { dest, bytes };
    });
  }

  /** 2xx ACKs (and ACKs matching nothing): forwarded statelessly by the route set (§16.11). */
  #forwardAck(message: SipMessage, source: Address): void {
    const peer = this.#peerOf(source)!;
    void this.#statelessRequest(message.clone(), peer);
  }

  /**
   * §16.7 step 2: a response matching no client transaction "MUST [be processed] as a stateless
   * proxy": our Via is removed and the response goes where the next Via says (§16.11). Covers a
   * 2xx retransmission after the INVITE client transaction ended (RFC 6026) and the answers to
   * statelessly forwarded CANCELs.
   */
  #forwardStatelessResponse(message: SipMessage): void {
    const via = message.topVia();
    if (!via || !this.#isSelf(via.host, via.port)) return;
    message.removeTopVia();
    const next = message.topVia();
    if (!next) return;
    const hop = responseTarget(next);
    const h = ipOf(hop.host);
    if (isIP(h) === 0 || h === '255.255.255.255') return; // never to a name or broadcast
    const dest: Peer = { transport: hop.transport, address: h, port: hop.port };
    this.#transport.send(serialize(message), dest, this.#transport.listenerFor(dest.transport, h));
  }

  // ---------------------------------------------------------------------------------------------
  // Failing a call (fail-closed)

  #hooks(): ProxyHooks {
    return {
      failCall: (server, response, branch) => this.#failCall(server, response, branch),
      isFailed: (server, response) => {
        const f = this.#failed.get(server);
        if (f === undefined) return false;
        if (f.whole) return true;
        const tag = response?.to()?.tag;
        return tag !== undefined && f.hungUp.has(tag);
      },
      peerOf: (a) => this.#peerOf(a),
      receivedAt: () => this.#receivedAt,
      observeStep: (seconds) => {
        this.#metrics.pinholeStep.observe(seconds);
        this.#metrics.pinholeStepRecent.observe(seconds);
      },
    };
  }

  #failCall(
    server: ServerTransaction,
    response: SipMessage,
    branch: ClientTransaction | undefined,
  ): HoldDecision {
    let failed = this.#failed.get(server);
    if (failed === undefined) {
      failed = { whole: false, hungUp: new Set() };
      this.#failed.set(server, failed);
      setTimeout(() => this.#failed.delete(server), FAILED_MEMORY_MS).unref();
    }
    if (!failed.whole && server.pending) {
      // The caller has no final answer yet: the whole call fails.
      failed.whole = true;
      this.#log.warn(
        { callId: response.callId(), status: response.status },
        'pinholes not confirmed: failing the call (fail-mode closed)',
      );
      // §16.10-style: every pending branch is cancelled; no new branch is created.
      this.layer.contextOf(server)?.cancel();
    }
    // Otherwise another fork's 2xx already went through: only this fork's dialog fails.
    const status = response.status;
    if (status >= 200 && status < 300 && branch !== undefined && !response.isRequest) {
      // The callee answered: acknowledge its 2xx (each retransmission) and hang up once.
      const tag = response.to()?.tag ?? '';
      const first = !failed.hungUp.has(tag);
      failed.hungUp.add(tag);
      this.#hangUpCallee(response, branch, first);
    }
    if (server.pending) {
      return {
        action: 'replace',
        message: buildResponse(server.request, 503, 'Pinhole Not Confirmed'),
      };
    }
    return { action: 'drop' };
  }

  /** ACK (and, the first time, BYE) to a callee whose 2xx is not relayed. */
  #hangUpCallee(ok: SipMessage, branch: ClientTransaction, bye: boolean): void {
    const contact = ok.contacts()[0];
    if (!contact) return;
    const dest = this.#peerOf(branch.peer)!;
    const l = this.#transport.listenerFor(dest.transport, dest.address);
    if (!l) return;
    const rr = ok.recordRoute();
    // The route set toward the callee: the Record-Route entries above ours (the callee's side),
    // nearest first.
    const ourIdx = rr.findIndex((r) => this.#isSelf(r.uri.host, r.uri.port));
    const toward = ourIdx > 0 ? rr.slice(0, ourIdx).reverse() : [];
    const text = (method: string, seq: number, branchId: string): string =>
      [
        `${method} ${contact.uri.raw} SIP/2.0`,
        `Via: SIP/2.0/${dest.transport.toUpperCase()} ${hostText(l.advertise)}:${l.port};branch=${branchId};rport`,
        ...toward.map((r) => `Route: <${r.uri.raw}>`),
        `From: ${ok.get('from') ?? ''}`,
        `To: ${ok.get('to') ?? ''}`,
        `Call-ID: ${ok.get('call-id') ?? ''}`,
        `CSeq: ${seq} ${method}`,
        'Max-Forwards: 70',
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n');
    const seq = ok.cseq()?.seq ?? 1;
    // The ACK of a 2xx is not a transaction: sent as is, again for each retransmitted 2xx.
    this.#transport.send(
      Buffer.from(text('ACK', seq, `${MAGIC_COOKIE}-phx${fnv1a([ok.callId(), ok.to()?.tag])}`)),
      dest,
      l,
    );
    if (!bye) return;
    const r = parse(text('BYE', seq + 1, `${MAGIC_COOKIE}-phx${randomToken()}`));
    if (!r.ok) return;
    // The policy sees the hang-up like any BYE: the dialog's holes close.
    this.#gate.request({ message: r.message, destination: dest });
    // The BYE is a transaction of its own (retransmitted until answered).
    this.layer.sendRequest(r.message, {
      transport: dest.transport.toUpperCase(),
      host: dest.address,
      port: dest.port,
      connectionId: l.index,
    });
  }
}

/** A phrase safe for a status line: no CR/LF, bounded. */
function cleanPhrase(p: string): string {
  return p.replace(/[\r\n]+/g, ' ').slice(0, 200);
}

function recordRouteFor(l: Listener): string {
  const t = l.transport === 'tcp' ? ';transport=tcp' : '';
  return `<sip:${hostText(l.advertise)}:${l.port}${t};lr>`;
}

function withUser(target: string, user: string): string {
  return target.replace(/^(sips?:)/i, `$1${user}@`);
}
