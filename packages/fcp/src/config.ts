/**
 * Server configuration: the types a daemon fills in (from flags or a JSON file), defaults, and
 * `validateServerConfig`, which names the offending field (`FcpError.field`, code
 * `FCP_ERR_CONFIG`). Everything is fail-closed: without `policy.protectedNetworks` no SET passes.
 */
import type { SecureContextOptions, TlsOptions } from 'node:tls';
import type { PortRange } from './backend.js';
import { FcpError, FcpErrorCode } from './errors.js';
import { parseAddress, parsePrefix, type ParsedPrefix } from './ip.js';
import type { FcpAction } from './pme.js';
import type { ResponseStyle } from './response.js';

export interface ListenerConfig {
  readonly transport: 'tcp' | 'udp' | 'tls';
  /** Address to bind, e.g. `127.0.0.1` or `::1`. */
  readonly host: string;
  /** 0 asks the OS for a free port (tests). 12345 is the reference port. */
  readonly port: number;
  /**
   * For `tls`: key, cert, ca... Client certificates are requested and verified against `ca`
   * unless `requestCert`/`rejectUnauthorized` say otherwise. A client with a verified
   * certificate is admitted whatever its address; its owner name is `cert:<subject CN>`.
   */
  readonly tls?: (TlsOptions & SecureContextOptions) | undefined;
}

export interface PolicyConfig {
  /** Networks holes may lead into (destination must lie inside one). Default: none (fail closed). */
  readonly protectedNetworks?: readonly string[] | undefined;
  /** IP protocols a SET may name. Default `[6, 17]`. */
  readonly allowedProtocols?: readonly number[] | undefined;
  /** Destination port ranges that may be opened. Default `[[1024, 65535]]`. */
  readonly allowedPorts?: readonly PortRange[] | undefined;
  /** Destination ports never opened, even inside `allowedPorts` (SIP, FCP, SSH...). */
  readonly protectedPorts?: readonly (number | PortRange)[] | undefined;
  /** The firewall's own addresses or networks: never a destination. */
  readonly ownAddresses?: readonly string[] | undefined;
  /** Narrowest allowed destination prefix for IPv4. Default 32 (one host). */
  readonly minDestinationPrefixV4?: number | undefined;
  /** Same for IPv6. Default 128. */
  readonly minDestinationPrefixV6?: number | undefined;
  /** Most destination ports one rule may span. Default 256. */
  readonly maxDestinationPorts?: number | undefined;
  /** Largest TIMER accepted, seconds. Default 86400. */
  readonly maxTimerSec?: number | undefined;
  /** Whether TIMER=0 (never expires) is accepted. Default false. */
  readonly allowForever?: boolean | undefined;
  /** TIMER of a new rule whose SET has none. Default 60 (spec §2.8). */
  readonly defaultTimerSec?: number | undefined;
  /** Actions a SET may ask for (`none` = ACTION omitted). Default all four. */
  readonly allowedActions?: readonly (FcpAction | 'none')[] | undefined;
}

export interface LimitsConfig {
  /** Live rules per client (owner). Default 10000. Beyond: 403. */
  readonly maxRulesPerClient?: number | undefined;
  /** Sustained requests per second per client address; 0 = unlimited. Default 1000. */
  readonly ratePerSec?: number | undefined;
  /** Burst size of the rate limiter. Default 2 × ratePerSec. */
  readonly rateBurst?: number | undefined;
  /** Concurrent TCP/TLS connections. Default 1024; extra connections are closed. */
  readonly maxConnections?: number | undefined;
  /** Bytes of one request. Default 8192. */
  readonly maxRequestBytes?: number | undefined;
  /** Pipelined requests in progress per connection before reading pauses. Default 1024. */
  readonly maxInflightPerConnection?: number | undefined;
  /** A request left incomplete this long (ms) gets 400 and the connection is closed. Default 30000; 0 = never. */
  readonly partialRequestTimeoutMs?: number | undefined;
  /** How long UDP replies are kept for retransmissions, ms. Default 30000. */
  readonly udpReplyCacheMs?: number | undefined;
  /** Bound on cached UDP replies. Default 10000. */
  readonly udpReplyCacheEntries?: number | undefined;
}

export interface NatConfig {
  /** Client-side networks that are masqueraded (QUERYNAT reserves ports for them). */
  readonly masquerade: readonly string[];
  /** The outer address reservations are made on. */
  readonly publicAddress: string;
  /** Pool of outer ports. Default `[40000, 49999]`. */
  readonly portRange?: PortRange | undefined;
  /** Lifetime of an unused reservation, seconds (≥ 30). Default 30. */
  readonly reservationSec?: number | undefined;
}

export interface FcpServerConfig {
  readonly listen: readonly ListenerConfig[];
  /** Client networks admitted (others get 401). Default loopback only. */
  readonly allowClients?: readonly string[] | undefined;
  readonly policy?: PolicyConfig | undefined;
  readonly limits?: LimitsConfig | undefined;
  /**
   * Networks on the inside, for `203 Not My Route` (spec §5.6): when SRCIP and DSTIP are both
   * inside, or both outside, nothing crosses the firewall. Default: `policy.protectedNetworks`.
   */
  readonly internalNetworks?: readonly string[] | undefined;
  /** Answer 203 for same-zone rules. Default true. */
  readonly notMyRoute?: boolean | undefined;
  readonly nat?: NatConfig | undefined;
  /** `fcpd` one-line replies (default) or the published two-line `abnf` layout. */
  readonly responseStyle?: ResponseStyle | undefined;
  /** QUERY lists every client's rules (`all`, like fcpd; default) or only the asker's (`own`). */
  readonly queryScope?: 'all' | 'own' | undefined;
  /** Text sent on TCP accept (fcpd sends one); default none. */
  readonly banner?: string | undefined;
}

export interface ResolvedPolicy {
  readonly protectedNetworks: readonly ParsedPrefix[];
  readonly allowedProtocols: ReadonlySet<number>;
  readonly allowedPorts: readonly PortRange[];
  readonly protectedPorts: readonly PortRange[];
  readonly ownAddresses: readonly ParsedPrefix[];
  readonly minDestinationPrefixV4: number;
  readonly minDestinationPrefixV6: number;
  readonly maxDestinationPorts: number;
  readonly maxTimerSec: number;
  readonly allowForever: boolean;
  readonly defaultTimerSec: number;
  readonly allowedActions: ReadonlySet<FcpAction | 'none'>;
}

export interface ResolvedLimits {
  readonly maxRulesPerClient: number;
  readonly ratePerSec: number;
  readonly rateBurst: number;
  readonly maxConnections: number;
  readonly maxRequestBytes: number;
  readonly maxInflightPerConnection: number;
  readonly partialRequestTimeoutMs: number;
  readonly udpReplyCacheMs: number;
  readonly udpReplyCacheEntries: number;
}

export interface ResolvedNat {
  readonly masquerade: readonly ParsedPrefix[];
  readonly publicAddress: string;
  readonly portRange: PortRange;
  readonly reservationSec: number;
}

export interface ResolvedServerConfig {
  readonly listen: readonly ListenerConfig[];
  readonly allowClients: readonly ParsedPrefix[];
  readonly policy: ResolvedPolicy;
  readonly limits: ResolvedLimits;
  readonly internalNetworks: readonly ParsedPrefix[];
  readonly notMyRoute: boolean;
  readonly nat: ResolvedNat | undefined;
  readonly responseStyle: ResponseStyle;
  readonly queryScope: 'all' | 'own';
  readonly banner: string | undefined;
}

function bad(field: string, message: string): FcpError {
  return new FcpError(FcpErrorCode.CONFIG, `${field}: ${message}`, { field });
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function optObj(v: unknown, field: string): Record<string, unknown> {
  if (v === undefined) return {};
  if (!isObj(v)) throw bad(field, 'must be an object');
  return v;
}

function intField(v: unknown, field: string, min: number, max: number, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw bad(field, `must be an integer ${min}..${max}`);
  }
  return v;
}

function boolField(v: unknown, field: string, dflt: boolean): boolean {
  if (v === undefined) return dflt;
  if (typeof v !== 'boolean') throw bad(field, 'must be true or false');
  return v;
}

function arrField(v: unknown, field: string): unknown[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) throw bad(field, 'must be an array');
  return v as unknown[];
}

function prefixes(v: unknown, field: string, dflt: readonly string[]): ParsedPrefix[] {
  const list = arrField(v, field) ?? dflt;
  return list.map((x, i) => {
    if (typeof x !== 'string') throw bad(`${field}[${i}]`, 'must be a string like 10.0.0.0/8');
    const p = parsePrefix(x);
    if (typeof p === 'string') throw bad(`${field}[${i}]`, p);
    return p;
  });
}

function range(v: unknown, field: string): PortRange {
  if (typeof v === 'number') v = [v, v];
  if (
    !Array.isArray(v) ||
    v.length !== 2 ||
    !v.every((n) => typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 65535) ||
    (v[0] as number) > (v[1] as number)
  ) {
    throw bad(field, 'must be a port or [low, high] with 0 <= low <= high <= 65535');
  }
  return [v[0] as number, v[1] as number];
}

function ranges(v: unknown, field: string, dflt: PortRange[]): PortRange[] {
  const list = arrField(v, field);
  return list ? list.map((x, i) => range(x, `${field}[${i}]`)) : dflt;
}

const ACTIONS = ['pass', 'drop', 'reject', 'none'] as const;

/**
 * Checks a configuration (typically parsed JSON, hence `unknown`) and fills in defaults.
 * Throws `FcpError` with code `FCP_ERR_CONFIG` and `field` (a dotted path) on the first error.
 */
export function validateServerConfig(input: unknown): ResolvedServerConfig {
  if (!isObj(input)) throw bad('(root)', 'must be an object');
  const listenIn = arrField(input.listen, 'listen');
  // Empty: a server reached only through connectLocal() (an fcpd embedded in one process).
  if (!listenIn) throw bad('listen', 'needs a list of listeners');
  const listen: ListenerConfig[] = listenIn.map((l, i) => {
    const f = `listen[${i}]`;
    if (!isObj(l)) throw bad(f, 'must be an object');
    if (l.transport !== 'tcp' && l.transport !== 'udp' && l.transport !== 'tls') {
      throw bad(`${f}.transport`, 'must be tcp, udp or tls');
    }
    if (typeof l.host !== 'string' || !parseAddress(l.host)) {
      throw bad(`${f}.host`, 'must be an IP address');
    }
    const port = intField(l.port, `${f}.port`, 0, 65535, -1);
    if (port < 0) throw bad(`${f}.port`, 'is required');
    if (l.transport === 'tls' && !isObj(l.tls)) throw bad(`${f}.tls`, 'is required for tls');
    return {
      transport: l.transport,
      host: l.host,
      port,
      ...(isObj(l.tls) ? { tls: l.tls } : {}),
    };
  });
  const allowClients = prefixes(input.allowClients, 'allowClients', ['127.0.0.0/8', '::1']);

  const p = optObj(input.policy, 'policy');
  const protectedNetworks = prefixes(p.protectedNetworks, 'policy.protectedNetworks', []);
  const protoList = arrField(p.allowedProtocols, 'policy.allowedProtocols') ?? [6, 17];
  const allowedProtocols = new Set(
    protoList.map((x, i) => intField(x, `policy.allowedProtocols[${i}]`, 1, 255, 0)),
  );
  const actionList = arrField(p.allowedActions, 'policy.allowedActions') ?? [...ACTIONS];
  const allowedActions = new Set(
    actionList.map((a, i) => {
      if (!ACTIONS.includes(a as (typeof ACTIONS)[number])) {
        throw bad(`policy.allowedActions[${i}]`, 'must be pass, drop, reject or none');
      }
      return a as (typeof ACTIONS)[number];
    }),
  );
  const maxTimerSec = intField(p.maxTimerSec, 'policy.maxTimerSec', 1, 4_294_967_295, 86_400);
  const policy: ResolvedPolicy = {
    protectedNetworks,
    allowedProtocols,
    allowedPorts: ranges(p.allowedPorts, 'policy.allowedPorts', [[1024, 65535]]),
    protectedPorts: ranges(p.protectedPorts, 'policy.protectedPorts', []),
    ownAddresses: prefixes(p.ownAddresses, 'policy.ownAddresses', []),
    minDestinationPrefixV4: intField(
      p.minDestinationPrefixV4,
      'policy.minDestinationPrefixV4',
      1,
      32,
      32,
    ),
    minDestinationPrefixV6: intField(
      p.minDestinationPrefixV6,
      'policy.minDestinationPrefixV6',
      1,
      128,
      128,
    ),
    maxDestinationPorts: intField(
      p.maxDestinationPorts,
      'policy.maxDestinationPorts',
      1,
      65536,
      256,
    ),
    maxTimerSec,
    allowForever: boolField(p.allowForever, 'policy.allowForever', false),
    defaultTimerSec: intField(
      p.defaultTimerSec,
      'policy.defaultTimerSec',
      1,
      maxTimerSec,
      Math.min(60, maxTimerSec),
    ),
    allowedActions,
  };

  const l = optObj(input.limits, 'limits');
  const ratePerSec = intField(l.ratePerSec, 'limits.ratePerSec', 0, 10_000_000, 1000);
  const limits: ResolvedLimits = {
    maxRulesPerClient: intField(
      l.maxRulesPerClient,
      'limits.maxRulesPerClient',
      1,
      10_000_000,
      10_000,
    ),
    ratePerSec,
    rateBurst: intField(
      l.rateBurst,
      'limits.rateBurst',
      1,
      100_000_000,
      Math.max(1, 2 * ratePerSec),
    ),
    maxConnections: intField(l.maxConnections, 'limits.maxConnections', 1, 1_000_000, 1024),
    maxRequestBytes: intField(l.maxRequestBytes, 'limits.maxRequestBytes', 64, 1_048_576, 8192),
    maxInflightPerConnection: intField(
      l.maxInflightPerConnection,
      'limits.maxInflightPerConnection',
      1,
      1_000_000,
      1024,
    ),
    partialRequestTimeoutMs: intField(
      l.partialRequestTimeoutMs,
      'limits.partialRequestTimeoutMs',
      0,
      3_600_000,
      30_000,
    ),
    udpReplyCacheMs: intField(l.udpReplyCacheMs, 'limits.udpReplyCacheMs', 0, 3_600_000, 30_000),
    udpReplyCacheEntries: intField(
      l.udpReplyCacheEntries,
      'limits.udpReplyCacheEntries',
      0,
      10_000_000,
      10_000,
    ),
  };

  let nat: ResolvedNat | undefined;
  if (input.nat !== undefined) {
    const n = optObj(input.nat, 'nat');
    if (typeof n.publicAddress !== 'string' || !parseAddress(n.publicAddress)) {
      throw bad('nat.publicAddress', 'must be an IP address');
    }
    nat = {
      masquerade: prefixes(n.masquerade, 'nat.masquerade', []),
      publicAddress: n.publicAddress,
      portRange: n.portRange === undefined ? [40000, 49999] : range(n.portRange, 'nat.portRange'),
      reservationSec: intField(n.reservationSec, 'nat.reservationSec', 30, 86_400, 30),
    };
  }
  const style = input.responseStyle ?? 'fcpd';
  if (style !== 'fcpd' && style !== 'abnf') throw bad('responseStyle', 'must be fcpd or abnf');
  const scope = input.queryScope ?? 'all';
  if (scope !== 'all' && scope !== 'own') throw bad('queryScope', 'must be all or own');
  if (input.banner !== undefined && typeof input.banner !== 'string') {
    throw bad('banner', 'must be a string');
  }
  return {
    listen,
    allowClients,
    policy,
    limits,
    internalNetworks:
      input.internalNetworks === undefined
        ? protectedNetworks
        : prefixes(input.internalNetworks, 'internalNetworks', []),
    notMyRoute: boolField(input.notMyRoute, 'notMyRoute', true),
    nat,
    responseStyle: style,
    queryScope: scope,
    banner: input.banner,
  };
}
