/**
 * FcpClient: the FCP/1.0 client the proxy and the sidecar use. One persistent connection per
 * configured server, pipelined requests, a deadline per request, reconnect with backoff, and
 * the rules it owns kept alive and re-installed when a server lost them (spec §5.9, §6 #30):
 * after every reconnect, and whenever a keep-alive is answered 200 instead of 201.
 *
 * Every operation goes to every configured server. Results are values: `set()` etc. resolve with
 * per-server outcomes and `ok`; they reject only for invalid arguments or a closed client.
 * `203 Not My Route` counts as success without state (spec §6 #28): that server is neither
 * refreshed nor released for that rule.
 */
import { EventEmitter } from 'node:events';
import type { PortRange } from './backend.js';
import { FcpUdpConnection, type UdpConnectionOptions } from './udp-connection.js';
import {
  FcpConnection,
  type ClientTransport,
  type ConnectionOptions,
  type ServerEndpoint,
  type UnsequencedRequest,
} from './connection.js';
import { FcpError, FcpErrorCode } from './errors.js';
import { ExpiryQueue, systemTimers, type TimerApi } from './expiry-queue.js';
import { formatAddress, parseAddress } from './ip.js';
import {
  canonicalPme,
  pmeKey,
  toPme,
  type FcpAction,
  type Pme,
  type PmeInput,
  type SetOptions,
} from './pme.js';
import type { FcpRequest, QueryRuleView } from './request.js';
import type { DecodedResponse, NatBinding } from './response.js';
import { FcpStatus, isSuccess } from './status.js';

export interface FcpClientOptions {
  /** One or more servers; each rule goes to each. */
  readonly servers: readonly ServerEndpoint[];
  /** Deadline per request, ms. Default 2000. */
  readonly requestTimeoutMs?: number | undefined;
  /** Keep owned rules alive automatically. Default true (per rule: `set(..., {keepAlive})`). */
  readonly keepAlive?: boolean | undefined;
  /** Refresh after this fraction of TIMER; clamped to ≤ 0.5 (spec §6.1). Default 0.5. */
  readonly refreshRatio?: number | undefined;
  readonly connection?: ConnectionOptions | undefined;
  /** Retransmission of requests to `transport: 'udp'` servers. */
  readonly udp?: UdpConnectionOptions | undefined;
  /** Clock and timers (tests). */
  readonly timers?: TimerApi | undefined;
}

export interface SetParams {
  /** Default `pass`. The client always sends ACTION (spec §6 #11). */
  readonly action?: FcpAction | undefined;
  /** Seconds; default 60. Always sent (spec §6 #12). 0 = never expires. */
  readonly timer?: number | undefined;
  readonly log?: number | undefined;
  readonly reflexive?: boolean | undefined;
  /** Keep this rule alive until `release()`. Default: the client's `keepAlive`. */
  readonly keepAlive?: boolean | undefined;
}

export type OutcomeKind =
  | 'installed'
  | 'refreshed'
  | 'changed'
  | 'not-my-route'
  | 'released'
  | 'gone'
  | 'ok'
  | 'refused'
  | 'failed';

export interface ServerOutcome {
  /** `tcp:host:port` */
  readonly server: string;
  readonly kind: OutcomeKind;
  /** FCP status, when the server answered. */
  readonly status?: number | undefined;
  readonly reason?: string | undefined;
  /** Transport failures (timeout, connection) and refusals. */
  readonly error?: FcpError | undefined;
  readonly nat?: NatBinding | undefined;
  readonly rules?: readonly QueryRuleView[] | undefined;
}

export interface FcpResult {
  /** True when every server succeeded (2xx; for RELEASE also "already gone"). */
  readonly ok: boolean;
  readonly outcomes: readonly ServerOutcome[];
}

export interface NatParams {
  /** Private address of the endpoint. */
  readonly srcIp: string;
  readonly srcPort: number | PortRange;
  readonly proto: 6 | 17 | 'tcp' | 'udp';
}

export interface ClientResponseEvent {
  readonly server: string;
  readonly method: FcpRequest['method'];
  readonly status: number | undefined;
  readonly latencyMs: number;
  /** `user`, `keepalive` or `reinstall`. */
  readonly origin: RequestOrigin;
  readonly key: string | undefined;
  readonly error: FcpError | undefined;
}

export type RequestOrigin = 'user' | 'keepalive' | 'reinstall';

export interface FcpClientEvents {
  connect: [{ server: string; reconnected: boolean }];
  disconnect: [{ server: string; error: Error | undefined }];
  'reconnect-scheduled': [{ server: string; delayMs: number; attempt: number }];
  /** Every request outcome (answer or failure): for logs and metrics. */
  response: [ClientResponseEvent];
  /** A request got no answer in time. */
  timeout: [{ server: string; method: FcpRequest['method']; key: string | undefined }];
  /** The server lost its state (keep-alive answered 200, or reconnect); a re-install follows. */
  'state-lost': [{ server: string; reason: 'keepalive-200' | 'reconnect' }];
  /** A re-install sweep finished. */
  reinstall: [{ server: string; rules: number; failed: number }];
  /** A keep-alive was refused (4xx/5xx); the rule is no longer refreshed on that server. */
  'keepalive-refused': [{ server: string; key: string; status: number; reason: string }];
  /** Text from the server that belongs to no response (fcpd banner...). */
  junk: [{ server: string; line: string }];
  'protocol-error': [{ server: string; detail: string }];
}

type ServerState = 'installed' | 'pending' | 'stateless' | 'refused';

interface OwnedRule {
  readonly key: string;
  pme: Pme;
  options: SetOptions;
  keepAlive: boolean;
  /** Per server index. */
  readonly state: ServerState[];
}

/**
 * True when the reason of a 400 answering RELEASE says the rule does not exist: fcpd's and
 * FcpServer's `Bad Request: no matching rule found to release` (spec §3.2, §4.3, §5.4).
 * Matched case-insensitively on the words `no matching rule`, with any run of whitespace between
 * them, anywhere in the reason: this tolerates fcpd's quirks (text glued to the reason phrase
 * without a separator, spec §3.1 and §6 #4; the bare `400 ...` line without `FCP=`/`SEQ=`, which
 * the decoder already accepts) and a reason phrase in another case. fcpd's tokenizer never puts
 * whitespace inside a quoted token (`unknown token "..."`), so a syntax error cannot match.
 */
export function isNoMatchingRuleReason(reason: string): boolean {
  return /no\s+matching\s+rule/i.test(reason);
}

function outcomeOf(
  server: string,
  r: DecodedResponse,
  method: FcpRequest['method'],
): ServerOutcome {
  const status = r.status;
  if (isSuccess(status)) {
    let kind: OutcomeKind = 'ok';
    if (method === 'SET') {
      kind =
        status === FcpStatus.KEEPING_ALIVE
          ? 'refreshed'
          : status === FcpStatus.RULE_CHANGED
            ? 'changed'
            : status === FcpStatus.NOT_MY_ROUTE
              ? 'not-my-route'
              : 'installed';
    } else if (method === 'RELEASE') kind = 'released';
    return { server, status, reason: r.reason, kind, nat: r.nat, rules: r.rules };
  }
  return {
    server,
    status,
    reason: r.reason,
    kind: 'refused',
    error: new FcpError(FcpErrorCode.STATUS, `${server}: ${status} ${r.reason}`, { status }),
  };
}

export class FcpClient extends EventEmitter<FcpClientEvents> {
  readonly #conns: ClientTransport[];
  readonly #timers: TimerApi;
  readonly #timeoutMs: number;
  readonly #keepAlive: boolean;
  readonly #ratio: number;
  readonly #owned = new Map<string, OwnedRule>();
  readonly #refresh: ExpiryQueue<string>;
  readonly #sweeping = new Set<number>();
  #closed = false;

  constructor(options: FcpClientOptions) {
    super();
    if (options.servers.length === 0) {
      throw new FcpError(FcpErrorCode.INVALID_ARGUMENT, 'servers: at least one is needed');
    }
    this.#timers = options.timers ?? systemTimers;
    this.#timeoutMs = options.requestTimeoutMs ?? 2000;
    this.#keepAlive = options.keepAlive ?? true;
    this.#ratio = Math.min(0.5, Math.max(0.05, options.refreshRatio ?? 0.5));
    this.#refresh = new ExpiryQueue((key) => this.#onRefreshDue(key), this.#timers);
    this.#conns = options.servers.map((ep, i) => {
      const c: ClientTransport =
        ep.transport === 'udp'
          ? new FcpUdpConnection(ep, this.#timers, options.udp)
          : new FcpConnection(ep, this.#timers, options.connection);
      const server = c.name;
      c.on('connect', ({ reconnected }) => {
        this.emit('connect', { server, reconnected });
        if (reconnected) this.emit('state-lost', { server, reason: 'reconnect' });
        // After a reconnect every owned rule is re-sent; on the first connection only those
        // whose SET failed before it (state `pending`).
        if (this.#owned.size > 0) void this.#reinstall(i);
      });
      c.on('disconnect', ({ error }) => this.emit('disconnect', { server, error }));
      c.on('reconnect-scheduled', (e) => this.emit('reconnect-scheduled', { server, ...e }));
      c.on('junk', ({ line }) => this.emit('junk', { server, line }));
      c.on('protocol-error', ({ detail }) => this.emit('protocol-error', { server, detail }));
      return c;
    });
  }

  /** `tcp:host:port` of each server, in configuration order. */
  get servers(): string[] {
    return this.#conns.map((c) => c.name);
  }

  /** Number of rules this client owns (keeps alive / re-installs). */
  get ownedRules(): number {
    return this.#owned.size;
  }

  /** True when every server connection is up. */
  get connected(): boolean {
    return this.#conns.every((c) => c.connected);
  }

  /** Resolves once every server is connected (or rejects after `timeoutMs`). */
  async ready(timeoutMs = 5000): Promise<void> {
    const waits = this.#conns
      .filter((c) => !c.connected)
      .map(
        (c) =>
          new Promise<void>((resolve, reject) => {
            const t = setTimeout(() => {
              c.off('connect', on);
              reject(new FcpError(FcpErrorCode.CONNECTION, `${c.name}: not connected`));
            }, timeoutMs);
            const on = (): void => {
              clearTimeout(t);
              resolve();
            };
            c.once('connect', on);
          }),
      );
    await Promise.all(waits);
  }

  /**
   * Opens (or refreshes, or changes) a rule on every server. The client then owns the rule:
   * it keeps it alive (unless `keepAlive: false`) and re-installs it when a server lost it,
   * until `release()`. A rule every server refused outright is not owned.
   */
  async set(pme: PmeInput | Pme, params: SetParams = {}): Promise<FcpResult> {
    this.#assertOpen();
    const p = toPmeAny(pme);
    const timer = params.timer ?? 60;
    if (!Number.isInteger(timer) || timer < 0 || timer > 4_294_967_295) {
      throw new FcpError(FcpErrorCode.INVALID_ARGUMENT, 'timer: must be 0..4294967295');
    }
    const options: SetOptions = {
      action: params.action ?? 'pass',
      timer,
      ...(params.log !== undefined ? { log: params.log } : {}),
      ...(params.reflexive !== undefined ? { reflexive: params.reflexive } : {}),
    };
    const key = pmeKey(p);
    const outcomes =
      this.#conns.length === 1
        ? [await this.#sendSet(0, key, p, options, 'user')]
        : await Promise.all(this.#conns.map((_c, i) => this.#sendSet(i, key, p, options, 'user')));
    const states = outcomes.map((o) => this.#stateOf(o));
    const previous = this.#owned.get(key);
    if (previous) {
      // A refresh from outside answered 200 instead of 201: that server lost its state (§5.9).
      outcomes.forEach((o, i) => {
        if (o.kind === 'installed' && previous.state[i] === 'installed') {
          this.emit('state-lost', { server: o.server, reason: 'keepalive-200' });
          void this.#reinstall(i, key);
        }
      });
    }
    if (states.every((s) => s === 'refused')) {
      this.#forget(key);
    } else {
      const rule: OwnedRule = {
        key,
        pme: p,
        options,
        keepAlive: params.keepAlive ?? this.#keepAlive,
        state: states,
      };
      this.#owned.set(key, rule);
      this.#schedule(rule);
    }
    return { ok: outcomes.every((o) => o.kind !== 'refused' && o.kind !== 'failed'), outcomes };
  }

  /** Closes a rule on every server that holds it and stops keeping it alive. */
  async release(pme: PmeInput | Pme): Promise<FcpResult> {
    this.#assertOpen();
    const p = toPmeAny(pme);
    const key = pmeKey(p);
    const owned = this.#owned.get(key);
    this.#forget(key);
    const one = async (c: ClientTransport, i: number): Promise<ServerOutcome> => {
      const st = owned?.state[i];
      if (st === 'stateless' || st === 'refused') return { server: c.name, kind: 'ok' };
      const o = await this.#send(i, { method: 'RELEASE', pme: p }, key, 'user');
      // 400 "no matching rule found to release": it expired or the server lost it. The goal
      // is met. Any other 400 (syntax, bad field...) stays a refusal.
      if (o.status === FcpStatus.BAD_REQUEST && isNoMatchingRuleReason(o.reason ?? '')) {
        return { ...o, kind: 'gone', error: undefined };
      }
      return o;
    };
    const first = this.#conns[0];
    const outcomes =
      this.#conns.length === 1 && first
        ? [await one(first, 0)]
        : await Promise.all(this.#conns.map(one));
    return { ok: outcomes.every((o) => o.kind !== 'refused' && o.kind !== 'failed'), outcomes };
  }

  /** Lists rules (all, or those matching `pme`) on every server. */
  async query(pme?: PmeInput | Pme): Promise<FcpResult> {
    this.#assertOpen();
    const p = pme === undefined ? undefined : toPmeAny(pme);
    return this.#all({ method: 'QUERY', pme: p });
  }

  /** Asks which outer address/ports a flow will use (spec §2.4, §5.5). */
  async queryNat(params: NatParams): Promise<FcpResult> {
    this.#assertOpen();
    return this.#all({ method: 'QUERYNAT', nat: natSpec(params) });
  }

  /** Frees a NAT reservation. */
  async releaseNat(params: NatParams): Promise<FcpResult> {
    this.#assertOpen();
    return this.#all({ method: 'RELEASENAT', nat: natSpec(params) });
  }

  /**
   * Closes the connections. Owned rules are NOT released: they expire on the servers after
   * their TIMER (call `release()` first to close them now). Pending requests fail with
   * FCP_ERR_CLOSED.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#refresh.close();
    this.#owned.clear();
    for (const c of this.#conns) c.close();
  }

  // -------------------------------------------------------------------------------------------

  #assertOpen(): void {
    if (this.#closed) throw new FcpError(FcpErrorCode.CLOSED, 'FcpClient is closed');
  }

  async #all(req: UnsequencedRequest): Promise<FcpResult> {
    const outcomes = await Promise.all(
      this.#conns.map((_c, i) => this.#send(i, req, undefined, 'user')),
    );
    return { ok: outcomes.every((o) => o.kind !== 'refused' && o.kind !== 'failed'), outcomes };
  }

  async #send(
    i: number,
    req: UnsequencedRequest,
    key: string | undefined,
    origin: RequestOrigin,
  ): Promise<ServerOutcome> {
    const c = this.#conns[i] as ClientTransport;
    const started = performance.now();
    try {
      const r = await c.request(req, this.#timeoutMs);
      if (this.listenerCount('response') > 0) {
        this.emit('response', {
          server: c.name,
          method: req.method,
          status: r.status,
          latencyMs: performance.now() - started,
          origin,
          key,
          error: undefined,
        });
      }
      return outcomeOf(c.name, r, req.method);
    } catch (e) {
      const error =
        e instanceof FcpError ? e : new FcpError(FcpErrorCode.CONNECTION, String(e), { cause: e });
      if (error.code === FcpErrorCode.TIMEOUT) {
        this.emit('timeout', { server: c.name, method: req.method, key });
      }
      this.emit('response', {
        server: c.name,
        method: req.method,
        status: undefined,
        latencyMs: performance.now() - started,
        origin,
        key,
        error,
      });
      return { server: c.name, kind: 'failed', error };
    }
  }

  #sendSet(
    i: number,
    key: string,
    pme: Pme,
    options: SetOptions,
    origin: RequestOrigin,
  ): Promise<ServerOutcome> {
    return this.#send(i, { method: 'SET', pme, options }, key, origin);
  }

  #stateOf(o: ServerOutcome): ServerState {
    switch (o.kind) {
      case 'installed':
      case 'refreshed':
      case 'changed':
      case 'ok':
      case 'released':
      case 'gone':
        return 'installed';
      case 'not-my-route':
        return 'stateless';
      case 'refused':
        return 'refused';
      case 'failed':
        return 'pending';
    }
  }

  #forget(key: string): void {
    this.#owned.delete(key);
    this.#refresh.delete(key);
  }

  /**
   * Kept-alive rules: due for a refresh at `refreshRatio × TIMER`. Rules the application
   * refreshes itself (`keepAlive: false`): due to be forgotten when their TIMER has run out
   * since the last SET, so a later reconnect does not re-create a hole that already expired.
   */
  #schedule(rule: OwnedRule): void {
    const timer = rule.options.timer ?? 60;
    if (timer === 0) {
      this.#refresh.delete(rule.key);
      return;
    }
    const ratio = rule.keepAlive ? this.#ratio : 1;
    this.#refresh.set(rule.key, this.#timers.now() + timer * 1000 * ratio);
  }

  #onRefreshDue(key: string): void {
    const rule = this.#owned.get(key);
    if (!rule || this.#closed) return;
    if (!rule.keepAlive) {
      this.#owned.delete(key);
      return;
    }
    this.#schedule(rule);
    rule.state.forEach((st, i) => {
      if (st !== 'installed' && st !== 'pending') return;
      void this.#sendSet(i, key, rule.pme, rule.options, 'keepalive').then((o) => {
        if (this.#owned.get(key) !== rule) return;
        this.#afterRefresh(i, rule, o);
      });
    });
  }

  #afterRefresh(i: number, rule: OwnedRule, o: ServerOutcome): void {
    const server = this.#conns[i]?.name ?? '';
    const before = rule.state[i];
    rule.state[i] = this.#stateOf(o);
    if (o.kind === 'refused') {
      this.emit('keepalive-refused', {
        server,
        key: rule.key,
        status: o.status ?? 0,
        reason: o.reason ?? '',
      });
      return;
    }
    // §5.9: a keep-alive answered 200 instead of 201 means the server had lost the rule:
    // it lost everything else too, so re-install every rule this client owns there.
    if (o.kind === 'installed' && before === 'installed') {
      this.emit('state-lost', { server, reason: 'keepalive-200' });
      void this.#reinstall(i, rule.key);
    }
  }

  /** Re-sends SET for every owned rule on server `i` (one sweep at a time per server). */
  async #reinstall(i: number, skipKey?: string): Promise<void> {
    if (this.#sweeping.has(i)) return;
    this.#sweeping.add(i);
    try {
      const rules = [...this.#owned.values()].filter(
        (r) => r.key !== skipKey && (r.state[i] === 'installed' || r.state[i] === 'pending'),
      );
      if (rules.length === 0) return;
      const results = await Promise.all(
        rules.map(async (r) => {
          const o = await this.#sendSet(i, r.key, r.pme, r.options, 'reinstall');
          if (this.#owned.get(r.key) === r) r.state[i] = this.#stateOf(o);
          return o;
        }),
      );
      const failed = results.filter((o) => o.kind === 'refused' || o.kind === 'failed').length;
      this.emit('reinstall', { server: this.#conns[i]?.name ?? '', rules: rules.length, failed });
    } finally {
      this.#sweeping.delete(i);
    }
  }
}

function toPmeAny(pme: PmeInput | Pme): Pme {
  // A Pme carries parsed prefixes (objects); a PmeInput carries strings.
  const isPme =
    (pme as Pme).src?.bytes !== undefined ||
    (pme as Pme).dst?.bytes !== undefined ||
    'srcPorts' in pme ||
    'dstPorts' in pme;
  if (!isPme) return toPme(pme as PmeInput);
  const c = canonicalPme(pme as Pme);
  if (typeof c === 'string') throw new FcpError(FcpErrorCode.INVALID_ARGUMENT, c);
  return c;
}

function natSpec(params: NatParams): { srcIp: string; srcPorts: PortRange; proto: number } {
  const ip = parseAddress(params.srcIp);
  if (!ip) throw new FcpError(FcpErrorCode.INVALID_ARGUMENT, 'srcIp: invalid IP address');
  const r: PortRange =
    typeof params.srcPort === 'number' ? [params.srcPort, params.srcPort] : params.srcPort;
  if (!r.every((n) => Number.isInteger(n) && n >= 0 && n <= 65535) || r[0] > r[1]) {
    throw new FcpError(FcpErrorCode.INVALID_ARGUMENT, 'srcPort: invalid port range');
  }
  const proto = params.proto === 'tcp' ? 6 : params.proto === 'udp' ? 17 : params.proto;
  if (proto !== 6 && proto !== 17) {
    throw new FcpError(FcpErrorCode.INVALID_ARGUMENT, 'proto: must be 6/tcp or 17/udp');
  }
  return { srcIp: formatAddress(ip), srcPorts: [r[0], r[1]], proto };
}
