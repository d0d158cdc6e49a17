/**
 * The stateful proxy core (RFC 3261 §16) with its server and client transactions (§17, with the
 * RFC 6026 Accepted states), specialised for a proxy: one server transaction per received
 * request, one client transaction per branch, response context and best-response selection,
 * CANCEL and non-2xx ACK hop by hop, 2xx ACK and in-dialog requests routed by the route set.
 * Every message relayed is shown to the media gate first (the firewall module); a response that
 * enables media may be held until its pinholes are acknowledged.
 */
import { isIP } from 'node:net';
import { lookup } from 'node:dns/promises';
import { networkInterfaces } from 'node:os';
import { parse, serialize, validate, parseUri, type SipMessage, type SipUri } from '@pinhole/sip';
import type { ProxyConfig, TransportName } from './config.js';
import type { ProxyMetrics } from './metrics.js';
import { canonicalAor, Registrar, type RegisterRequest } from './registrar.js';
import { StaticRouter } from './routing.js';
import {
  buildCancel,
  buildLocalResponse,
  buildNon2xxAck,
  fnv1a,
  hostText,
  MAGIC_COOKIE,
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
}

/** A message passing this hop, as the media gate sees it. */
export interface GateEvent {
  readonly message: SipMessage;
  readonly source?: Peer;
  readonly destination?: Peer;
  readonly disposition?: 'relayed' | 'absorbed';
  /** Client branch a response arrived on. */
  readonly branch?: string;
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
  /** Relay only once this settles: `relay`, or `fail` (pinholes not confirmed, fail-closed). */
  readonly hold?: Promise<'relay' | 'fail'>;
}

/** The firewall module's view of the proxy (see firewall.ts). */
export interface MediaGate {
  passing(ev: GateEvent): GateDecision;
  ended(ev: {
    readonly request: SipMessage;
    readonly outcome: 'timeout' | 'transport-error' | 'cancelled' | 'lost';
    readonly branch?: string;
  }): void;
}

/** A gate that opens nothing (tests, or a proxy without a firewall). */
export const NO_GATE: MediaGate = {
  passing: () => ({ actions: [] }),
  ended: () => undefined,
};

const T1 = 500;
const T2 = 4000;
const T4 = 5000;

type ServerState = 'proceeding' | 'completed' | 'confirmed' | 'accepted' | 'terminated';
type ClientState = 'calling' | 'proceeding' | 'completed' | 'accepted' | 'terminated';

interface ServerTxn {
  readonly key: string;
  readonly request: SipMessage;
  readonly isInvite: boolean;
  readonly source: Peer;
  readonly listener: Listener;
  readonly reliable: boolean;
  state: ServerState;
  /** Last response sent upstream, for request retransmissions (and Timer G). */
  lastResponse: Buffer | undefined;
  lastStatus: number;
  finalSent: boolean;
  branches: ClientTxn[];
  best: SipMessage | undefined;
  /** A local final response waiting for the branches (e.g. 408 on Timer C). */
  cancelled: boolean;
  /** The relay of a response held for its pinholes; later responses wait behind it. */
  chain: Promise<void> | undefined;
  /** Fail-closed gave up on this call: nothing more is relayed upstream. */
  failed: boolean;
  /** The best locally generated final (a branch that timed out or could not be sent). */
  bestLocal: { status: number; reason: string | undefined } | undefined;
  timer: NodeJS.Timeout | undefined;
  retrans: NodeJS.Timeout | undefined;
  toTag: string;
}

interface ClientTxn {
  readonly branch: string;
  readonly server: ServerTxn | undefined;
  readonly request: SipMessage;
  readonly bytes: Buffer;
  readonly dest: Peer;
  readonly via: Listener | undefined;
  readonly isInvite: boolean;
  readonly reliable: boolean;
  state: ClientState;
  provisional: boolean;
  cancelWanted: boolean;
  cancelSent: boolean;
  final: number;
  timerA: NodeJS.Timeout | undefined;
  timerB: NodeJS.Timeout | undefined;
  timerC: NodeJS.Timeout | undefined;
  interval: number;
  /** Stashed ACK for retransmitted non-2xx finals. */
  ack: Buffer | undefined;
}

export interface ProxyCoreOptions {
  readonly config: ProxyConfig;
  readonly transport: CoreTransport;
  readonly metrics: ProxyMetrics;
  readonly logger: Logger;
  readonly gate?: MediaGate;
  readonly registrar?: Registrar;
  /** Workers: called after a REGISTER changed the location service, to replicate it. */
  readonly onRegister?: (req: RegisterRequest) => void;
}

function ipOf(host: string): string {
  return host.replace(/^\[|\]$/g, '').toLowerCase();
}

export class ProxyCore {
  #config: ProxyConfig;
  #router: StaticRouter;
  readonly #transport: CoreTransport;
  readonly #metrics: ProxyMetrics;
  readonly #log: Logger;
  #gate: MediaGate;
  readonly registrar: Registrar;
  readonly #servers = new Map<string, ServerTxn>();
  readonly #clients = new Map<string, ClientTxn>();
  /** `host:port` strings that are this proxy (for Route and Request-URI checks). */
  #self = new Set<string>();
  #counter = 0;
  readonly #dns = new Map<string, string>();
  #sweep: NodeJS.Timeout | undefined;
  readonly #onRegister: ((req: RegisterRequest) => void) | undefined;
  readonly #debug: boolean;

  constructor(opts: ProxyCoreOptions) {
    this.#onRegister = opts.onRegister;
    this.#debug = opts.logger.isLevelEnabled?.('debug') ?? true;
    this.#config = opts.config;
    this.#router = new StaticRouter(opts.config.routes);
    this.#transport = opts.transport;
    this.#metrics = opts.metrics;
    this.#log = opts.logger;
    this.#gate = opts.gate ?? NO_GATE;
    this.registrar =
      opts.registrar ??
      new Registrar({
        minExpires: opts.config.registrar.minExpires,
        maxExpires: opts.config.registrar.maxExpires,
        defaultExpires: opts.config.registrar.defaultExpires,
        maxContacts: opts.config.registrar.maxContacts,
      });
    this.#sweep = setInterval(() => this.registrar.sweep(), 10_000);
    this.#sweep.unref();
    this.refreshSelf();
  }

  /** Live server transactions (metrics gauge). */
  get transactionCount(): number {
    return this.#servers.size;
  }

  get clientTransactionCount(): number {
    return this.#clients.size;
  }

  setGate(gate: MediaGate): void {
    this.#gate = gate;
  }

  /** SIGHUP: new routes and settings; the registrar's bindings stay. */
  reconfigure(config: ProxyConfig): void {
    this.#config = config;
    this.#router = new StaticRouter(config.routes);
    this.refreshSelf();
  }

  /** Recomputes which addresses are this proxy (after listeners change). */
  refreshSelf(): void {
    const self = new Set<string>();
    for (const l of this.#transport.listeners) {
      const addrs = [l.advertise, l.host];
      if (l.host === '0.0.0.0' || l.host === '::') {
        for (const list of Object.values(networkInterfaces())) {
          for (const a of list ?? []) addrs.push(a.address);
        }
      }
      for (const a of addrs) {
        self.add(`${ipOf(a)}:${l.port}`);
        if (l.port === 5060) self.add(`${ipOf(a)}:`);
      }
    }
    this.#self = self;
  }

  #isSelf(host: string, port: number | undefined): boolean {
    const h = ipOf(host);
    return (
      this.#self.has(`${h}:${port ?? ''}`) || (port === undefined && this.#self.has(`${h}:5060`))
    );
  }

  close(): void {
    if (this.#sweep) clearInterval(this.#sweep);
    for (const s of this.#servers.values()) this.#clearServer(s);
    for (const c of this.#clients.values()) this.#clearClient(c);
    this.#servers.clear();
    this.#clients.clear();
  }

  // ---------------------------------------------------------------------------------------------
  // Input

  /** Entry point for every received message. Never throws. */
  receive(inb: Inbound): void {
    const r = parse(inb.bytes);
    if (!r.ok) {
      this.#badMessage(inb, r.error.reason, r.error.partial);
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
      this.#onRequest(msg, inb);
    } else {
      const v = validate(msg);
      if (!v.ok) {
        // RFC 4475 §3.1.2.5 and friends: a malformed response is discarded.
        this.#metrics.badMessages.inc({ outcome: 'dropped' });
        return;
      }
      this.#onResponse(msg, inb);
    }
  }

  /** A message that did not parse: 400 when it can be answered, silence otherwise. */
  #badMessage(
    inb: Inbound,
    reason: string,
    partial:
      | {
          method?: string;
          via?: readonly string[];
          callId?: string;
          cseq?: string;
          from?: string;
          to?: string;
        }
      | undefined,
  ): void {
    const p = partial;
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
    const lines = [`SIP/2.0 400 ${reason.replace(/[\r\n]+/g, ' ').slice(0, 200)}`];
    for (const v of p.via) lines.push(`Via: ${v}`);
    lines.push(
      `From: ${p.from}`,
      `To: ${p.to}`,
      `Call-ID: ${p.callId}`,
      `CSeq: ${p.cseq}`,
      'Content-Length: 0',
      '',
      '',
    );
    this.#log.info({ peer: inb.peer, reason }, 'unparsable request answered 400');
    this.#transport.send(Buffer.from(lines.join('\r\n')), inb.peer, inb.listener);
    this.#metrics.responses.inc({ code: 400 });
  }

  /** Answers without a transaction, to the source (§18.2.2 with rport semantics). */
  #replyStateless(
    req: SipMessage,
    inb: Inbound,
    status: number,
    reason?: string,
    headers?: readonly (readonly [string, string])[],
  ): void {
    const text = buildLocalResponse(req, status, {
      ...(reason !== undefined ? { reason } : {}),
      toTag: randomToken(),
      ...(headers ? { headers } : {}),
    });
    this.#transport.send(Buffer.from(text), inb.peer, inb.listener);
    this.#metrics.responses.inc({ code: status });
  }

  // ---------------------------------------------------------------------------------------------
  // Requests

  #serverKey(msg: SipMessage, method: string): string | undefined {
    const via = msg.topVia();
    if (!via) return undefined;
    const m = method === 'ACK' ? 'INVITE' : method;
    if (via.branch?.startsWith(MAGIC_COOKIE)) {
      return `${via.branch}|${via.host}|${via.port ?? ''}|${m}`;
    }
    // RFC 2543 fallback (§17.2.3): Request-URI, tags, Call-ID, CSeq number and top Via.
    return `2543|${msg.requestUri}|${msg.from()?.tag ?? ''}|${msg.callId() ?? ''}|${msg.cseq()?.seq ?? ''}|${topViaText(msg) ?? ''}|${m}`;
  }

  #onRequest(msg: SipMessage, inb: Inbound): void {
    const method = msg.method.toUpperCase();
    const via = msg.topVia()!;
    const stamped = stampVia(via, topViaText(msg) ?? '', inb.peer.address, inb.peer.port);
    if (stamped !== undefined) {
      msg.removeTopVia();
      msg.prependVia(stamped);
    }
    const key = this.#serverKey(msg, method);
    if (key === undefined) return;

    if (method === 'ACK') {
      const st = this.#servers.get(key);
      if (st && st.isInvite) {
        // §17.2.1: an ACK for a non-2xx final ends the server transaction here (hop by hop).
        if (st.state === 'completed') {
          st.state = 'confirmed';
          this.#clearRetrans(st);
          this.#armServerEnd(st, st.reliable ? 0 : T4);
        }
        if (st.state !== 'accepted') return;
      }
      this.#forwardAck(msg, inb);
      return;
    }

    const existing = this.#servers.get(key);
    if (existing) {
      // A retransmission: answer with the last response, never forward again (§17.2.1, §17.2.2).
      if (existing.lastResponse) {
        this.#transport.send(existing.lastResponse, existing.source, existing.listener);
      }
      return;
    }

    if (method === 'CANCEL') {
      this.#onCancel(msg, inb);
      return;
    }

    const st: ServerTxn = {
      key,
      request: msg,
      isInvite: method === 'INVITE',
      source: inb.peer,
      listener: inb.listener,
      reliable: inb.peer.transport === 'tcp',
      state: 'proceeding',
      lastResponse: undefined,
      lastStatus: 0,
      finalSent: false,
      branches: [],
      best: undefined,
      cancelled: false,
      chain: undefined,
      failed: false,
      bestLocal: undefined,
      timer: undefined,
      retrans: undefined,
      toTag: randomToken(),
    };
    this.#servers.set(key, st);
    // A guard: no server transaction outlives Timer C plus 64*T1, whatever happens.
    st.timer = setTimeout(() => this.#destroyServer(st), this.#config.timerCMs + 64 * T1 + 5000);

    if (st.isInvite) {
      // §16.2: a stateful proxy SHOULD send 100 Trying right away for an INVITE.
      this.#respondLocal(st, 100);
    }

    // §16.3 step 3: Max-Forwards 0 is not forwarded.
    const mf = msg.maxForwards();
    if (mf !== undefined && mf <= 0) {
      this.#respondLocal(st, 483);
      return;
    }
    // §16.3 step 4: loop detection by the branch we would compute.
    const loopHash = this.#loopHash(msg);
    for (const v of msg.via()) {
      if (this.#isSelf(v.host, v.port) && v.branch?.startsWith(`${MAGIC_COOKIE}-ph${loopHash}.`)) {
        this.#respondLocal(st, 482);
        return;
      }
    }
    this.#route(st, msg, inb, loopHash);
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

  #route(st: ServerTxn, msg: SipMessage, inb: Inbound, loopHash: string): void {
    this.#preprocessRoutes(msg);
    const method = msg.method.toUpperCase();
    const ruri = msg.requestUriParsed();
    if (!ruri) {
      this.#respondLocal(st, 400, 'Bad Request-URI');
      return;
    }
    const routes = msg.route();
    const inDialog = msg.to()?.tag !== undefined;
    // Requests with a Route left go there (loose routing; pre-loaded or in-dialog route set).
    if (routes.length > 0) {
      this.#forward(st, msg, [{ uri: undefined }], inb, loopHash, inDialog);
      return;
    }
    // The Request-URI names this proxy (its address and port) or a domain it serves.
    const ours =
      this.#isSelf(ruri.host, ruri.port) || this.#config.domains.includes(ipOf(ruri.host));
    if (method === 'REGISTER' && ours) {
      this.#register(st, msg, inb);
      return;
    }
    if (inDialog) {
      // In-dialog without Route: the Request-URI is the remote target (§16.5).
      if (this.#isSelf(ruri.host, ruri.port)) {
        this.#respondLocal(st, 481);
        return;
      }
      this.#forward(st, msg, [{ uri: undefined }], inb, loopHash, true);
      return;
    }
    if (method === 'OPTIONS' && ours && ruri.user === undefined) {
      this.#respondLocal(st, 200);
      return;
    }
    // Location service first for our domains, then static routes.
    if (ours && ruri.user !== undefined) {
      const aor = canonicalAor('sip', ruri.user, ruri.host);
      const bindings = this.registrar.lookup(aor);
      if (bindings.length > 0) {
        this.#forward(
          st,
          msg,
          bindings.map((b) => ({ uri: b.uri })),
          inb,
          loopHash,
          false,
        );
        return;
      }
      const rule = this.#router.lookup(ruri);
      if (!rule) {
        this.#respondLocal(st, this.registrar.known(aor) ? 480 : 404);
        return;
      }
      // The Request-URI named this proxy: retarget to the route, keeping the user.
      const target = parseUri(rule.target);
      if ('code' in target) {
        this.#respondLocal(st, 500, 'Bad route target');
        return;
      }
      const uri =
        target.user === undefined && ruri.user !== undefined
          ? withUser(rule.target, ruri.rawUser ?? ruri.user)
          : rule.target;
      this.#forward(st, msg, [{ uri }], inb, loopHash, false);
      return;
    }
    if (ours) {
      this.#respondLocal(st, 404);
      return;
    }
    const rule = this.#router.lookup(ruri);
    if (rule) {
      // Another domain: the route is the next hop (outbound proxy), the Request-URI stays.
      this.#forward(st, msg, [{ uri: undefined, nextHop: rule.target }], inb, loopHash, false);
      return;
    }
    this.#forward(st, msg, [{ uri: undefined }], inb, loopHash, false);
  }

  #register(st: ServerTxn, msg: SipMessage, inb: Inbound): void {
    const to = msg.to();
    const cseq = msg.cseq();
    const callId = msg.callId();
    if (!to || !cseq || callId === undefined) {
      this.#respondLocal(st, 400);
      return;
    }
    if (to.uri.scheme !== 'sip' && to.uri.scheme !== 'sips') {
      this.#respondLocal(st, 404, 'Not Found (AOR scheme)');
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
      source: { transport: inb.peer.transport, address: inb.peer.address, port: inb.peer.port },
    };
    const r = this.registrar.register(req);
    switch (r.status) {
      case 200:
        if (req.star || req.contacts.length > 0) this.#onRegister?.(req);
        this.#respondLocal(st, 200, undefined, [
          ...r.bindings.map((b): [string, string] => [
            'Contact',
            `<${b.uri}>;expires=${b.expires}`,
          ]),
          ['Date', new Date().toUTCString()],
        ]);
        return;
      case 423:
        this.#respondLocal(st, 423, r.reason, [['Min-Expires', String(r.minExpires)]]);
        return;
      case 400:
      case 500:
        this.#respondLocal(st, r.status, r.reason);
        return;
    }
  }

  /** Resolves a next hop to an address (IP literals directly, names through the resolver). */
  async #resolve(hop: NextHop): Promise<Peer | undefined> {
    const h = ipOf(hop.host);
    if (isIP(h) !== 0) return { transport: hop.transport, address: h, port: hop.port };
    let ip = this.#dns.get(h);
    if (ip === undefined) {
      try {
        ip = (await lookup(h)).address;
        if (this.#dns.size > 1000) this.#dns.clear();
        this.#dns.set(h, ip);
      } catch {
        return undefined;
      }
    }
    return { transport: hop.transport, address: ip, port: hop.port };
  }

  #forward(
    st: ServerTxn,
    msg: SipMessage,
    targets: readonly { uri: string | undefined; nextHop?: string }[],
    inb: Inbound,
    loopHash: string,
    inDialog: boolean,
  ): void {
    const method = msg.method.toUpperCase();
    // Policy actions (headers to add, or a rejection) come before the request is copied.
    const decision = this.#gate.passing({ message: msg, source: inb.peer });
    for (const a of decision.actions) {
      if (a.kind === 'reject') {
        this.#respondLocal(
          st,
          a.status,
          a.reason,
          a.headers.map((h): [string, string] => [h.name, h.value]),
        );
        return;
      }
      if (a.kind === 'set-header') msg.setHeader(a.name, a.value);
      else msg.addHeader(a.name, a.value);
    }
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
      const hop = hopUri ? nextHopOf(hopUri, inb.peer.transport) : undefined;
      if (!hop) {
        this.#respondLocal(st, 416);
        return;
      }
      void this.#resolve(hop).then((dest) => {
        if (!dest) {
          this.#branchLocalFinal(st, 503, 'Next hop does not resolve');
          return;
        }
        this.#sendBranch(st, out, dest, inb, loopHash, inDialog, method);
      });
    }
  }

  #sendBranch(
    st: ServerTxn,
    out: SipMessage,
    dest: Peer,
    inb: Inbound,
    loopHash: string,
    inDialog: boolean,
    method: string,
  ): void {
    if (st.state === 'terminated' || (st.finalSent && !st.isInvite)) return;
    const outListener = this.#transport.listenerFor(dest.transport, dest.address);
    if (!outListener) {
      this.#branchLocalFinal(st, 503, `No ${dest.transport} listener`);
      return;
    }
    // §16.6 item 4: Record-Route with lr on dialog-creating requests (twice when the request
    // changes transport or address family, so each side sees an address it can reach).
    if (!inDialog && (method === 'INVITE' || method === 'SUBSCRIBE' || method === 'REFER')) {
      const rrIn = recordRouteFor(inb.listener);
      const rrOut = recordRouteFor(outListener);
      if (rrIn !== rrOut) out.prependRecordRoute(rrIn);
      out.prependRecordRoute(rrOut);
    }
    const branch = `${MAGIC_COOKIE}-ph${loopHash}.${(++this.#counter).toString(36)}`;
    const proto = outListener.transport.toUpperCase();
    out.prependVia(
      `SIP/2.0/${proto} ${hostText(outListener.advertise)}:${outListener.port};branch=${branch};rport`,
    );
    const bytes = serialize(out);
    const ct: ClientTxn = {
      branch,
      server: st,
      request: out,
      bytes,
      dest,
      via: outListener,
      isInvite: method === 'INVITE',
      reliable: dest.transport === 'tcp',
      state: 'calling',
      provisional: false,
      cancelWanted: st.cancelled,
      cancelSent: false,
      final: 0,
      timerA: undefined,
      timerB: undefined,
      timerC: undefined,
      interval: T1,
      ack: undefined,
    };
    this.#clients.set(branch, ct);
    st.branches.push(ct);
    if (this.#debug) this.#log.debug({ callId: out.callId(), method, dest }, 'request forwarded');
    if (!this.#transport.send(bytes, dest, outListener)) {
      this.#clientFailed(ct, 'transport-error');
      return;
    }
    if (!ct.reliable) {
      ct.timerA = setTimeout(() => this.#retransmitRequest(ct), T1);
    }
    // Timer B / F: 64*T1 without a final response (for INVITE: without any response).
    ct.timerB = setTimeout(() => this.#clientTimeout(ct), 64 * T1);
    if (ct.isInvite) {
      ct.timerC = setTimeout(() => this.#timerC(ct), this.#config.timerCMs);
    }
  }

  #retransmitRequest(ct: ClientTxn): void {
    ct.timerA = undefined;
    if (ct.state !== 'calling' && !(ct.state === 'proceeding' && !ct.isInvite)) return;
    this.#transport.send(ct.bytes, ct.dest, ct.via);
    // Timer A doubles without cap (INVITE); Timer E is capped at T2 (and T2 once proceeding).
    ct.interval = ct.isInvite ? ct.interval * 2 : Math.min(ct.interval * 2, T2);
    if (!ct.isInvite && ct.state === 'proceeding') ct.interval = T2;
    ct.timerA = setTimeout(() => this.#retransmitRequest(ct), ct.interval);
  }

  #clientTimeout(ct: ClientTxn): void {
    ct.timerB = undefined;
    if (ct.state === 'calling' || (!ct.isInvite && ct.state === 'proceeding')) {
      this.#clientFailed(ct, 'timeout');
    }
  }

  /** §16.8 Timer C. */
  #timerC(ct: ClientTxn): void {
    ct.timerC = undefined;
    if (ct.state !== 'calling' && ct.state !== 'proceeding') return;
    const st = ct.server;
    if (ct.provisional) {
      ct.cancelWanted = true;
      this.#sendCancel(ct);
      // Answer the caller now with 408, as a proxy whose call attempt timed out does; the
      // 487 that comes back is absorbed.
      if (st && !st.finalSent) {
        this.#gate.ended({ request: ct.request, outcome: 'timeout', branch: ct.branch });
        this.#respondLocal(st, 408);
      }
    } else {
      this.#clientFailed(ct, 'timeout');
    }
  }

  #clientFailed(ct: ClientTxn, outcome: 'timeout' | 'transport-error'): void {
    this.#clearClient(ct);
    ct.state = 'terminated';
    this.#clients.delete(ct.branch);
    this.#gate.ended({ request: ct.request, outcome, branch: ct.branch });
    ct.final = outcome === 'timeout' ? 408 : 503;
    const st = ct.server;
    if (st) this.#afterBranchFinal(st, undefined, ct.final);
  }

  /** A branch ended with a locally generated final response (e.g. unresolvable next hop). */
  #branchLocalFinal(st: ServerTxn, status: number, reason: string): void {
    if (st.branches.length === 0) {
      this.#respondLocal(st, status, reason);
      return;
    }
    this.#afterBranchFinal(st, undefined, status, reason);
  }

  #sendCancel(ct: ClientTxn): void {
    if (ct.cancelSent || !ct.isInvite) return;
    if (!ct.provisional) return; // §9.1: wait for a provisional response first.
    ct.cancelSent = true;
    const bytes = Buffer.from(buildCancel(ct.request));
    this.#transport.send(bytes, ct.dest, ct.via);
    // The CANCEL has its own (non-INVITE) transaction; its 200 is absorbed by branch match.
    const cancelBranch = ct.branch;
    const cancelTxn: ClientTxn = {
      ...ct,
      request: ct.request,
      bytes,
      isInvite: false,
      state: 'calling',
      interval: T1,
      timerA: undefined,
      timerB: undefined,
      timerC: undefined,
      final: 0,
      ack: undefined,
      server: undefined,
      branch: `${cancelBranch}|CANCEL`,
    };
    this.#clients.set(cancelTxn.branch, cancelTxn);
    if (!cancelTxn.reliable) {
      cancelTxn.timerA = setTimeout(() => this.#retransmitRequest(cancelTxn), T1);
    }
    cancelTxn.timerB = setTimeout(() => {
      this.#clearClient(cancelTxn);
      this.#clients.delete(cancelTxn.branch);
    }, 64 * T1);
  }

  #onCancel(msg: SipMessage, inb: Inbound): void {
    const inviteKey = this.#serverKey(msg, 'INVITE');
    const st = inviteKey ? this.#servers.get(inviteKey) : undefined;
    // §16.10: the CANCEL is answered here (200), and pending branches are cancelled.
    if (!st) {
      this.#replyStateless(msg, inb, 481);
      return;
    }
    this.#replyStateless(msg, inb, 200);
    this.#gate.passing({ message: msg, source: inb.peer });
    st.cancelled = true;
    if (st.finalSent) return;
    for (const ct of st.branches) {
      if (ct.state === 'calling' || ct.state === 'proceeding') {
        ct.cancelWanted = true;
        this.#sendCancel(ct);
      }
    }
  }

  /** 2xx ACKs and ACKs without a transaction: forwarded statelessly by the route set (§16.11). */
  #forwardAck(msg: SipMessage, inb: Inbound): void {
    this.#preprocessRoutes(msg);
    const mf = msg.maxForwards();
    if (mf !== undefined && mf <= 0) return;
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
    const hop = hopUri ? nextHopOf(hopUri, inb.peer.transport) : undefined;
    if (!hop || this.#isSelf(hop.host, hop.port)) return;
    // A stateless branch: the same for retransmissions of this ACK (§16.11).
    const branch = `${MAGIC_COOKIE}-phs${fnv1a([msg.topVia()?.branch, msg.callId(), String(msg.cseq()?.seq)])}`;
    void this.#resolve(hop).then((dest) => {
      if (!dest) return;
      const l = this.#transport.listenerFor(dest.transport, dest.address);
      if (!l) return;
      msg.prependVia(
        `SIP/2.0/${l.transport.toUpperCase()} ${hostText(l.advertise)}:${l.port};branch=${branch};rport`,
      );
      this.#gate.passing({ message: msg, source: inb.peer, destination: dest });
      this.#transport.send(serialize(msg), dest, l);
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Responses

  #onResponse(msg: SipMessage, inb: Inbound): void {
    const status = msg.status;
    this.#metrics.responses.inc({ code: status });
    const via = msg.topVia();
    if (!via || !this.#isSelf(via.host, via.port)) return; // not sent by us: discard (§16.7)
    const branch = via.branch ?? '';
    const method = msg.cseq()?.method.toUpperCase() ?? '';
    const ct = this.#clients.get(method === 'CANCEL' ? `${branch}|CANCEL` : branch);
    if (!ct) {
      // §16.7 / RFC 6026: a 2xx with no transaction (a retransmission after Accepted timed
      // out) is forwarded statelessly; anything else is dropped.
      if (status >= 200 && status < 300 && method === 'INVITE') this.#forwardStateless(msg);
      return;
    }
    if (method === 'CANCEL') {
      if (status >= 200) {
        this.#clearClient(ct);
        this.#clients.delete(ct.branch);
      }
      return;
    }
    const st = ct.server;
    if (status < 200) {
      if (ct.state === 'calling') ct.state = 'proceeding';
      if (ct.isInvite) {
        if (ct.timerA) clearTimeout(ct.timerA);
        ct.timerA = undefined;
        if (ct.timerB) clearTimeout(ct.timerB);
        ct.timerB = undefined;
      }
      ct.provisional = true;
      if (ct.cancelWanted) this.#sendCancel(ct);
      if (status === 100) return; // §16.7 step 5: 100 is not forwarded.
      // §16.8: Timer C is reset by every provisional response.
      if (ct.timerC) {
        clearTimeout(ct.timerC);
        ct.timerC = setTimeout(() => this.#timerC(ct), this.#config.timerCMs);
      }
      if (st && !st.finalSent) this.#relay(st, msg, inb, ct);
      return;
    }
    // Final response.
    if (ct.state === 'completed' || ct.state === 'terminated') {
      // Retransmitted non-2xx final: the ACK again (§17.1.1.2).
      if (ct.ack) this.#transport.send(ct.ack, ct.dest, ct.via);
      return;
    }
    if (ct.state === 'accepted') {
      // RFC 6026: 2xx retransmissions pass through to the caller.
      if (status < 300 && st) this.#relayUpstream(st, msg, inb, false);
      return;
    }
    this.#clearClient(ct);
    ct.final = status;
    if (ct.isInvite && status >= 300) {
      ct.ack = Buffer.from(buildNon2xxAck(ct.request, msg));
      this.#transport.send(ct.ack, ct.dest, ct.via);
      ct.state = 'completed';
      setTimeout(
        () => {
          ct.state = 'terminated';
          this.#clients.delete(ct.branch);
        },
        ct.reliable ? 0 : 32_000,
      ).unref();
    } else if (ct.isInvite) {
      ct.state = 'accepted';
      setTimeout(() => {
        ct.state = 'terminated';
        this.#clients.delete(ct.branch);
      }, 64 * T1).unref();
    } else {
      ct.state = 'completed';
      setTimeout(
        () => {
          ct.state = 'terminated';
          this.#clients.delete(ct.branch);
        },
        ct.reliable ? 0 : T4,
      ).unref();
    }
    if (!st) return;
    if (status < 300) {
      if (st.isInvite) {
        // §16.7 step 10: a 2xx to an INVITE cancels every other pending branch.
        for (const other of st.branches) {
          if (other !== ct && (other.state === 'calling' || other.state === 'proceeding')) {
            other.cancelWanted = true;
            this.#sendCancel(other);
            this.#gate.ended({ request: other.request, outcome: 'lost', branch: other.branch });
          }
        }
        this.#relay(st, msg, inb, ct);
      } else if (!st.finalSent) {
        this.#relay(st, msg, inb, ct);
      }
      return;
    }
    this.#afterBranchFinal(st, msg, status, undefined, ct);
  }

  /** §16.7 steps 6–7: keep the best final response until every branch has one. */
  #afterBranchFinal(
    st: ServerTxn,
    msg: SipMessage | undefined,
    status: number,
    reason?: string,
    ct?: ClientTxn,
  ): void {
    if (msg) {
      const best = st.best;
      if (!best || rank(status) < rank(best.status)) st.best = msg;
      if (ct) {
        // The branch's early dialog ends (its holes close) even when the response is not relayed.
        this.#gate.passing({ message: msg, disposition: 'absorbed', branch: ct.branch });
      }
    } else if (!st.best && (!st.bestLocal || rank(status) < rank(st.bestLocal.status))) {
      st.bestLocal = { status, reason };
    }
    if (st.finalSent) return;
    if (status >= 600 && st.isInvite) {
      for (const other of st.branches) {
        if (other.state === 'calling' || other.state === 'proceeding') {
          other.cancelWanted = true;
          this.#sendCancel(other);
        }
      }
    }
    const pending = st.branches.some((b) => b.state === 'calling' || b.state === 'proceeding');
    if (pending && status < 600) return;
    if (st.best) {
      this.#relay(st, st.best, undefined, undefined);
    } else {
      const local = st.bestLocal ?? { status: 408, reason: undefined };
      this.#respondLocal(st, local.status, local.reason);
    }
  }

  /** Relays a response upstream after the media gate has seen (and maybe held) it. */
  #relay(
    st: ServerTxn,
    msg: SipMessage,
    inb: Inbound | undefined,
    ct: ClientTxn | undefined,
  ): void {
    const status = msg.status;
    if (status >= 200) {
      if (!st.isInvite || status >= 300) st.finalSent = true;
      else st.finalSent = true;
    }
    msg.removeTopVia();
    // The pinhole step: from here (policy, SETs, their acknowledgements) to the relay.
    const held = process.hrtime.bigint();
    const decision = this.#gate.passing({
      message: msg,
      ...(inb ? { source: inb.peer } : {}),
      destination: st.source,
      ...(ct ? { branch: ct.branch } : {}),
    });
    for (const a of decision.actions) {
      if (a.kind === 'set-header') msg.setHeader(a.name, a.value);
      else if (a.kind === 'add-header') msg.addHeader(a.name, a.value);
    }
    // Responses leave in the order they arrived: one held for its pinholes holds the later ones.
    const prev = st.chain;
    if (!decision.hold && !prev) {
      this.#sendUpstream(st, msg);
      return;
    }
    const hold = decision.hold ?? Promise.resolve<'relay' | 'fail'>('relay');
    const next = Promise.all([prev, hold]).then(([, verdict]) => {
      if (decision.hold) {
        const sec = Number(process.hrtime.bigint() - held) / 1e9;
        this.#metrics.pinholeWait.observe(sec);
        this.#metrics.pinholeWaitRecent.observe(sec);
      }
      if (st.failed) return;
      if (verdict === 'relay') {
        this.#sendUpstream(st, msg);
        return;
      }
      this.#log.warn(
        { callId: msg.callId(), status },
        'pinholes not confirmed in time: failing the call (fail-mode closed)',
      );
      st.failed = true;
      this.#failCall(st, msg, ct);
    });
    st.chain = next;
    void next.then(() => {
      if (st.chain === next) st.chain = undefined;
    });
  }

  /** Fail-closed: the media-enabling response is not relayed; the call fails with 503. */
  #failCall(st: ServerTxn, msg: SipMessage, ct: ClientTxn | undefined): void {
    if (msg.status >= 200 && msg.status < 300 && ct) {
      // The callee answered: acknowledge and hang up its side (§12.2.1.1 route set of the 2xx).
      this.#hangUpCallee(msg, ct);
    } else if (ct) {
      ct.cancelWanted = true;
      this.#sendCancel(ct);
    }
    if (st.state === 'proceeding' || st.state === 'accepted') {
      st.finalSent = false;
      st.state = 'proceeding';
      this.#respondLocal(st, 503, 'Pinhole Not Confirmed');
    }
  }

  #hangUpCallee(ok: SipMessage, ct: ClientTxn): void {
    const contact = ok.contacts()[0];
    if (!contact) return;
    const rr = ok.recordRoute();
    // The callee's route set as seen from here: the Record-Route entries below ours, reversed
    // order is the caller's view; from the proxy toward the callee it is the entries above ours.
    const ourIdx = rr.findIndex((r) => this.#isSelf(r.uri.host, r.uri.port));
    const toward = ourIdx > 0 ? rr.slice(0, ourIdx).reverse() : [];
    const base = (method: string, seq: number): string =>
      [
        `${method} ${contact.uri.raw} SIP/2.0`,
        `Via: SIP/2.0/${ct.dest.transport.toUpperCase()} ${hostText(ct.via?.advertise ?? '127.0.0.1')}:${ct.via?.port ?? 5060};branch=${MAGIC_COOKIE}-phx${randomToken()}`,
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
    this.#transport.send(Buffer.from(base('ACK', seq)), ct.dest, ct.via);
    this.#transport.send(Buffer.from(base('BYE', seq + 1)), ct.dest, ct.via);
  }

  #sendUpstream(st: ServerTxn, msg: SipMessage): void {
    const bytes = serialize(msg);
    this.#transport.send(bytes, st.source, st.listener);
    if (this.#debug) {
      this.#log.debug(
        { callId: msg.callId(), status: msg.status, method: st.request.method },
        'response relayed',
      );
    }
    this.#metrics.responses.inc({ code: msg.status });
    this.#afterSend(st, bytes, msg.status);
  }

  /** A 2xx retransmission with no transaction (or in Accepted): relayed by its Via. */
  #relayUpstream(st: ServerTxn, msg: SipMessage, _inb: Inbound, _viaGate: boolean): void {
    msg.removeTopVia();
    this.#transport.send(serialize(msg), st.source, st.listener);
  }

  #forwardStateless(msg: SipMessage): void {
    msg.removeTopVia();
    const next = msg.topVia();
    if (!next) return;
    const hop = responseTarget(next);
    const h = ipOf(hop.host);
    if (isIP(h) === 0 || h === '255.255.255.255') return; // never to a name or broadcast
    const dest: Peer = { transport: hop.transport, address: h, port: hop.port };
    this.#transport.send(serialize(msg), dest, this.#transport.listenerFor(dest.transport, h));
  }

  #respondLocal(
    st: ServerTxn,
    status: number,
    reason?: string,
    headers?: readonly (readonly [string, string])[],
  ): void {
    if (st.finalSent && status >= 200) return;
    const text = buildLocalResponse(st.request, status, {
      ...(reason !== undefined ? { reason } : {}),
      toTag: st.toTag,
      ...(headers ? { headers } : {}),
    });
    const bytes = Buffer.from(text);
    if (this.#debug) {
      this.#log.debug(
        { callId: st.request.callId(), status, method: st.request.method },
        'local response',
      );
    }
    if (status >= 200) {
      st.finalSent = true;
      // Cancel any branch still pending: the caller has its answer.
      for (const ct of st.branches) {
        if (ct.state === 'calling' || ct.state === 'proceeding') {
          ct.cancelWanted = true;
          this.#sendCancel(ct);
        }
      }
      if (st.isInvite) {
        const r = parse(bytes);
        if (r.ok) this.#gate.passing({ message: r.message, destination: st.source });
      }
    }
    this.#transport.send(bytes, st.source, st.listener);
    this.#metrics.responses.inc({ code: status });
    this.#afterSend(st, bytes, status);
  }

  /** Server transaction bookkeeping after a response went upstream. */
  #afterSend(st: ServerTxn, bytes: Buffer, status: number): void {
    st.lastResponse = bytes;
    st.lastStatus = status;
    if (status < 200) return;
    if (st.isInvite && status < 300) {
      // RFC 6026 Accepted: absorb INVITE retransmissions for Timer L.
      st.state = 'accepted';
      this.#armServerEnd(st, 64 * T1);
      return;
    }
    if (st.isInvite) {
      // §17.2.1 Completed: Timer G retransmits the final response until the ACK, Timer H ends.
      st.state = 'completed';
      if (!st.reliable) {
        let interval = T1;
        const g = (): void => {
          if (st.state !== 'completed' || !st.lastResponse) return;
          this.#transport.send(st.lastResponse, st.source, st.listener);
          interval = Math.min(interval * 2, T2);
          st.retrans = setTimeout(g, interval);
        };
        st.retrans = setTimeout(g, interval);
      }
      this.#armServerEnd(st, 64 * T1);
      return;
    }
    st.state = 'completed';
    this.#armServerEnd(st, st.reliable ? 0 : 64 * T1);
  }

  #armServerEnd(st: ServerTxn, ms: number): void {
    if (st.timer) clearTimeout(st.timer);
    st.timer = setTimeout(() => this.#destroyServer(st), ms);
  }

  #destroyServer(st: ServerTxn): void {
    this.#clearServer(st);
    st.state = 'terminated';
    if (this.#servers.get(st.key) === st) this.#servers.delete(st.key);
    if (st.isInvite && !st.finalSent) {
      this.#gate.ended({ request: st.request, outcome: 'timeout' });
    }
  }

  #clearServer(st: ServerTxn): void {
    if (st.timer) clearTimeout(st.timer);
    if (st.retrans) clearTimeout(st.retrans);
    st.timer = undefined;
    st.retrans = undefined;
  }

  #clearRetrans(st: ServerTxn): void {
    if (st.retrans) clearTimeout(st.retrans);
    st.retrans = undefined;
  }

  #clearClient(ct: ClientTxn): void {
    if (ct.timerA) clearTimeout(ct.timerA);
    if (ct.timerB) clearTimeout(ct.timerB);
    if (ct.timerC) clearTimeout(ct.timerC);
    ct.timerA = ct.timerB = ct.timerC = undefined;
  }
}

/** §16.7 step 6: 6xx first, then the lowest class; 5xx ranked after 4xx and 3xx. */
function rank(status: number): number {
  if (status >= 600) return 0;
  if (status >= 500) return 5000 + status;
  return status * 10;
}

function recordRouteFor(l: Listener): string {
  const t = l.transport === 'tcp' ? ';transport=tcp' : '';
  return `<sip:${hostText(l.advertise)}:${l.port}${t};lr>`;
}

function withUser(target: string, user: string): string {
  return target.replace(/^(sips?:)/i, `$1${user}@`);
}
