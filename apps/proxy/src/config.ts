/**
 * The proxy's configuration: a JSON file and command-line flags, validated into one immutable
 * `ProxyConfig`. Every error names the field (or flag) it is about.
 */
import { isIP } from 'node:net';
import { readFileSync } from 'node:fs';
import { MAX_SHARDS } from '@pinhole/fcpd';
import { ConfigError } from './errors.js';

export type TransportName = 'udp' | 'tcp';

/** One socket to listen on. `host` has no brackets; `family` follows from it. */
export interface ListenAddress {
  readonly transport: TransportName;
  readonly host: string;
  readonly port: number;
  readonly family: 4 | 6;
}

/** A static route: where requests for a domain, a number prefix, or anything else go. */
export interface RouteRule {
  readonly kind: 'default' | 'domain' | 'prefix';
  /** Domain (lower case) or number prefix (as written, `+` kept); `''` for the default. */
  readonly match: string;
  /** The next hop as a SIP URI, e.g. `sip:192.0.2.10:5060;transport=tcp`. */
  readonly target: string;
}

export interface FcpServerAddress {
  readonly transport: 'tcp';
  readonly host: string;
  readonly port: number;
}

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** RFC 4028 / source policy options passed to @pinhole/policy. */
export type SourcePolicy = 'any' | 'sdp' | 'contact' | 'signalling';
export type FailMode = 'open' | 'closed';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface ProxyConfig {
  readonly listen: readonly ListenAddress[];
  /** Address put in Via and Record-Route when a listener is bound to a wildcard address. */
  readonly advertise: string | undefined;
  readonly routes: readonly RouteRule[];
  /** FCP servers; empty = start an embedded fcpd in this process. */
  readonly fcp: readonly FcpServerAddress[];
  /** Networks behind the firewall (CIDR); holes only ever lead into these. */
  readonly protected: readonly string[];
  readonly sourcePolicy: SourcePolicy;
  readonly failMode: FailMode;
  /** How long a media-enabling response may wait for its pinholes, milliseconds. */
  readonly pinholeDeadlineMs: number;
  /** Hole lifetime when no session timer is negotiated, seconds. */
  readonly maxCallSeconds: number;
  /** Domains this proxy is the registrar for; empty = any domain. */
  readonly domains: readonly string[];
  readonly registrar: {
    readonly minExpires: number;
    readonly maxExpires: number;
    readonly defaultExpires: number;
    readonly maxContacts: number;
  };
  /** Timer C (RFC 3261 §16.6 item 11), milliseconds; greater than 3 minutes by the RFC. */
  readonly timerCMs: number;
  readonly workers: number;
  readonly metrics: HostPort | undefined;
  readonly logLevel: LogLevel;
  /**
   * Further @pinhole/policy settings (its `PolicyConfigInput` fields: `openOn`, `ports`,
   * `sessionTimer`, `sessionTimerMarginSec`, ...), validated by the policy. `protected`,
   * `sourcePolicy` and `maxCallSeconds` above take precedence over the same fields here.
   */
  readonly policy: Readonly<Record<string, unknown>>;
  /**
   * Run synthetic calls through the parser and the policy at start-up, before listening, so the
   * first real calls do not wait for V8 to compile the hot paths (see warmup.ts). Default true.
   */
  readonly warmup: boolean;
  /**
   * The warm-up's budget, milliseconds of CPU time: no synthetic call starts once the process has
   * used this much, nor after four times this much wall time (the calls in flight then get a
   * quarter of it more to finish). 0..10000; default 2000.
   */
  readonly warmupMs: number;
  /**
   * Overload control (see overload.ts): while a UDP listener's kernel receive queue holds
   * `queueBytes` or more (0 = off; at most half its buffer counts), a growing share of new
   * out-of-dialog requests is refused with 503 (and `Retry-After: retryAfter` seconds when not 0).
   * Defaults 0 (off) and 0; 1 MiB suits one worker (see README.md, "Overload control").
   */
  readonly overload: { readonly queueBytes: number; readonly retryAfter: number };
}

export const DEFAULT_LISTEN: readonly ListenAddress[] = [
  { transport: 'udp', host: '127.0.0.1', port: 5060, family: 4 },
  { transport: 'tcp', host: '127.0.0.1', port: 5060, family: 4 },
];

export const DEFAULT_CONFIG: ProxyConfig = {
  listen: DEFAULT_LISTEN,
  advertise: undefined,
  routes: [],
  fcp: [],
  protected: [],
  sourcePolicy: 'any',
  failMode: 'closed',
  pinholeDeadlineMs: 1000,
  maxCallSeconds: 7200,
  domains: [],
  registrar: { minExpires: 60, maxExpires: 7200, defaultExpires: 3600, maxContacts: 10 },
  timerCMs: 181_000,
  workers: 1,
  metrics: undefined,
  logLevel: 'info',
  policy: {},
  warmup: true,
  warmupMs: 2000,
  overload: { queueBytes: 0, retryAfter: 0 },
};

const SOURCE_POLICIES: readonly SourcePolicy[] = ['any', 'sdp', 'contact', 'signalling'];
const FAIL_MODES: readonly FailMode[] = ['open', 'closed'];
const LOG_LEVELS: readonly LogLevel[] = [
  'fatal',
  'error',
  'warn',
  'info',
  'debug',
  'trace',
  'silent',
];

function parsePort(field: string, text: string, allowZero: boolean): number {
  if (!/^\d{1,5}$/.test(text)) throw new ConfigError(field, `bad port "${text}"`);
  const port = Number(text);
  if (port > 65535 || (!allowZero && port === 0)) {
    throw new ConfigError(field, `port ${port} out of range`);
  }
  return port;
}

/**
 * Splits `host:port`, `[v6]:port` or `host` (with `defaultPort`). The host must be an IP address
 * unless `allowName` is set.
 */
export function parseHostPort(
  field: string,
  text: string,
  defaultPort: number | undefined,
  allowName = false,
): HostPort {
  let host: string;
  let portText: string | undefined;
  if (text.startsWith('[')) {
    const end = text.indexOf(']');
    if (end < 0) throw new ConfigError(field, `unclosed "[" in "${text}"`);
    host = text.slice(1, end);
    const rest = text.slice(end + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) throw new ConfigError(field, `unexpected "${rest}" after "]"`);
      portText = rest.slice(1);
    }
    if (isIP(host) !== 6) throw new ConfigError(field, `"${host}" is not an IPv6 address`);
  } else {
    const colons = text.split(':').length - 1;
    if (colons > 1) {
      throw new ConfigError(field, `IPv6 addresses need brackets: "[${text}]:port"`);
    }
    const i = text.lastIndexOf(':');
    host = i < 0 ? text : text.slice(0, i);
    portText = i < 0 ? undefined : text.slice(i + 1);
    if (host === '') throw new ConfigError(field, `missing host in "${text}"`);
    if (isIP(host) === 0 && !(allowName && /^[A-Za-z0-9.-]+$/.test(host))) {
      throw new ConfigError(field, `"${host}" is not an IP address`);
    }
  }
  let port: number;
  if (portText === undefined) {
    if (defaultPort === undefined) throw new ConfigError(field, `missing port in "${text}"`);
    port = defaultPort;
  } else {
    port = parsePort(field, portText, true);
  }
  return { host: host.toLowerCase(), port };
}

/** `udp:0.0.0.0:5060`, `tcp:[::1]:5060`, `udp:127.0.0.1` (port 5060). Port 0 asks the OS. */
export function parseListen(field: string, text: string): ListenAddress {
  const i = text.indexOf(':');
  const transport = i < 0 ? '' : text.slice(0, i).toLowerCase();
  if (transport !== 'udp' && transport !== 'tcp') {
    throw new ConfigError(field, `expected udp:HOST:PORT or tcp:HOST:PORT, got "${text}"`);
  }
  const { host, port } = parseHostPort(field, text.slice(i + 1), 5060);
  return { transport, host, port, family: isIP(host) === 6 ? 6 : 4 };
}

/** `tcp:127.0.0.1:12345` or `127.0.0.1:12345` (FCP is TCP; 12345 is its reference port). */
export function parseFcp(field: string, text: string): FcpServerAddress {
  let rest = text;
  const m = /^([a-z]+):(?!\d+$)/i.exec(text);
  if (m) {
    if (m[1]!.toLowerCase() !== 'tcp') throw new ConfigError(field, `FCP runs over tcp only`);
    rest = text.slice(m[0].length);
  }
  const { host, port } = parseHostPort(field, rest, 12345, true);
  if (port === 0) throw new ConfigError(field, 'port 0 is not a server port');
  return { transport: 'tcp', host, port };
}

function checkSipUri(field: string, uri: string): void {
  if (!/^sips?:[^\s<>]+$/i.test(uri)) {
    throw new ConfigError(field, `"${uri}" is not a sip: or sips: URI`);
  }
}

/** `default=sip:…`, `domain:example.com=sip:…`, `prefix:+4930=sip:…`. */
export function parseRoute(field: string, text: string): RouteRule {
  const eq = text.indexOf('=');
  if (eq < 0) throw new ConfigError(field, `expected MATCH=sip:URI, got "${text}"`);
  const match = text.slice(0, eq).trim();
  const target = text.slice(eq + 1).trim();
  checkSipUri(field, target);
  if (match === 'default' || match === '*') return { kind: 'default', match: '', target };
  const colon = match.indexOf(':');
  const kind = colon < 0 ? '' : match.slice(0, colon).toLowerCase();
  const value = match.slice(colon + 1);
  if (kind === 'domain') {
    if (!/^[A-Za-z0-9.-]+$/.test(value) && isIP(value.replace(/^\[|\]$/g, '')) === 0) {
      throw new ConfigError(field, `bad domain "${value}"`);
    }
    return { kind: 'domain', match: value.toLowerCase().replace(/^\[|\]$/g, ''), target };
  }
  if (kind === 'prefix') {
    if (!/^\+?[0-9*#]+$/.test(value)) throw new ConfigError(field, `bad number prefix "${value}"`);
    return { kind: 'prefix', match: value, target };
  }
  throw new ConfigError(field, `expected default, domain:NAME or prefix:DIGITS, got "${match}"`);
}

/** IPv4 or IPv6 network in CIDR notation; a bare address is a host route. */
export function parseCidr(field: string, text: string): string {
  const slash = text.indexOf('/');
  const addr = slash < 0 ? text : text.slice(0, slash);
  const fam = isIP(addr);
  if (fam === 0) throw new ConfigError(field, `"${addr}" is not an IP address`);
  const max = fam === 4 ? 32 : 128;
  if (slash < 0) return `${addr.toLowerCase()}/${max}`;
  const lenText = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > max) {
    throw new ConfigError(field, `bad prefix length "/${lenText}"`);
  }
  return `${addr.toLowerCase()}/${Number(lenText)}`;
}

function intIn(field: string, v: unknown, min: number, max: number): number {
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(field, `expected an integer in ${min}..${max}, got ${JSON.stringify(v)}`);
  }
  return n;
}

/** Overload control's threshold: 0 (off), or 16 KiB and more (a smaller one refuses always). */
function queueBytesOf(field: string, v: unknown): number {
  const n = intIn(field, v, 0, 2 ** 30);
  if (n > 0 && n < 16_384) {
    throw new ConfigError(field, `expected 0 (off) or at least 16384 bytes, got ${n}`);
  }
  return n;
}

/** A nested object of the file (`registrar`, `overload`): only the fields `known` has. */
function fieldsOf(field: string, v: unknown, known: object): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new ConfigError(field, 'expected object');
  }
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!Object.hasOwn(known, k)) throw new ConfigError(`${field}.${k}`, 'unknown field');
  }
  return o;
}

function oneOf<T extends string>(field: string, v: unknown, allowed: readonly T[]): T {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    throw new ConfigError(field, `expected one of ${allowed.join('|')}, got ${JSON.stringify(v)}`);
  }
  return v as T;
}

function stringList(field: string, v: unknown): string[] {
  if (typeof v === 'string') return [v];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) {
    throw new ConfigError(field, 'expected a string or an array of strings');
  }
  return v;
}

const FILE_FIELDS = new Set([
  'listen',
  'advertise',
  'routes',
  'fcp',
  'protected',
  'sourcePolicy',
  'failMode',
  'pinholeDeadlineMs',
  'maxCallSeconds',
  'domains',
  'registrar',
  'timerCMs',
  'workers',
  'metrics',
  'logLevel',
  'policy',
  'warmup',
  'warmupMs',
  'overload',
]);

/** Validates a configuration object (the parsed JSON file) over the defaults. */
export function configFromObject(obj: unknown, base: ProxyConfig = DEFAULT_CONFIG): ProxyConfig {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
    throw new ConfigError('(config)', 'expected a JSON object');
  }
  const o = obj as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!FILE_FIELDS.has(k)) throw new ConfigError(k, 'unknown field');
  }
  const c: { -readonly [K in keyof ProxyConfig]: ProxyConfig[K] } = { ...base };
  if (o.listen !== undefined) {
    c.listen = stringList('listen', o.listen).map((s, i) => parseListen(`listen[${i}]`, s));
  }
  if (o.advertise !== undefined) {
    if (typeof o.advertise !== 'string' || isIP(o.advertise) === 0) {
      throw new ConfigError('advertise', 'expected an IP address');
    }
    c.advertise = o.advertise;
  }
  if (o.routes !== undefined) {
    const r = o.routes;
    if (!Array.isArray(r)) throw new ConfigError('routes', 'expected an array');
    c.routes = r.map((x: unknown, i) => {
      const f = `routes[${i}]`;
      if (typeof x === 'string') return parseRoute(f, x);
      if (typeof x === 'object' && x !== null) {
        const { match, target } = x as { match?: unknown; target?: unknown };
        if (typeof match !== 'string') throw new ConfigError(`${f}.match`, 'expected a string');
        if (typeof target !== 'string') throw new ConfigError(`${f}.target`, 'expected a string');
        return parseRoute(f, `${match}=${target}`);
      }
      throw new ConfigError(f, 'expected "MATCH=URI" or { match, target }');
    });
  }
  if (o.fcp !== undefined) {
    c.fcp = stringList('fcp', o.fcp).map((s, i) => parseFcp(`fcp[${i}]`, s));
  }
  if (o.protected !== undefined) {
    c.protected = stringList('protected', o.protected).map((s, i) =>
      parseCidr(`protected[${i}]`, s),
    );
  }
  if (o.sourcePolicy !== undefined) {
    c.sourcePolicy = oneOf('sourcePolicy', o.sourcePolicy, SOURCE_POLICIES);
  }
  if (o.failMode !== undefined) c.failMode = oneOf('failMode', o.failMode, FAIL_MODES);
  if (o.pinholeDeadlineMs !== undefined) {
    c.pinholeDeadlineMs = intIn('pinholeDeadlineMs', o.pinholeDeadlineMs, 1, 60_000);
  }
  if (o.maxCallSeconds !== undefined) {
    c.maxCallSeconds = intIn('maxCallSeconds', o.maxCallSeconds, 1, 7 * 86400);
  }
  if (o.domains !== undefined) {
    c.domains = stringList('domains', o.domains).map((d) => d.toLowerCase());
  }
  if (o.registrar !== undefined) {
    const reg = { ...c.registrar };
    const ro = fieldsOf('registrar', o.registrar, reg);
    if (ro.minExpires !== undefined) {
      reg.minExpires = intIn('registrar.minExpires', ro.minExpires, 0, 2 ** 31);
    }
    if (ro.maxExpires !== undefined) {
      reg.maxExpires = intIn('registrar.maxExpires', ro.maxExpires, 1, 2 ** 31);
    }
    if (ro.defaultExpires !== undefined) {
      reg.defaultExpires = intIn('registrar.defaultExpires', ro.defaultExpires, 1, 2 ** 31);
    }
    if (ro.maxContacts !== undefined) {
      reg.maxContacts = intIn('registrar.maxContacts', ro.maxContacts, 1, 1000);
    }
    if (reg.minExpires > reg.maxExpires) {
      throw new ConfigError('registrar.minExpires', 'greater than registrar.maxExpires');
    }
    c.registrar = reg;
  }
  if (o.overload !== undefined) {
    const ov = { ...c.overload };
    const ro = fieldsOf('overload', o.overload, ov);
    if (ro.queueBytes !== undefined)
      ov.queueBytes = queueBytesOf('overload.queueBytes', ro.queueBytes);
    if (ro.retryAfter !== undefined) {
      ov.retryAfter = intIn('overload.retryAfter', ro.retryAfter, 0, 3600);
    }
    c.overload = ov;
  }
  if (o.timerCMs !== undefined) c.timerCMs = intIn('timerCMs', o.timerCMs, 1000, 3_600_000);
  if (o.workers !== undefined) c.workers = intIn('workers', o.workers, 1, 256);
  if (o.metrics !== undefined) {
    c.metrics =
      o.metrics === null || o.metrics === false
        ? undefined
        : parseMetrics(
            'metrics',
            typeof o.metrics === 'string' ? o.metrics : JSON.stringify(o.metrics),
          );
  }
  if (o.logLevel !== undefined) c.logLevel = oneOf('logLevel', o.logLevel, LOG_LEVELS);
  if (o.policy !== undefined) {
    if (typeof o.policy !== 'object' || o.policy === null || Array.isArray(o.policy)) {
      throw new ConfigError('policy', 'expected an object of @pinhole/policy settings');
    }
    c.policy = o.policy as Record<string, unknown>;
  }
  if (o.warmup !== undefined) {
    if (typeof o.warmup !== 'boolean') throw new ConfigError('warmup', 'expected true or false');
    c.warmup = o.warmup;
  }
  if (o.warmupMs !== undefined) c.warmupMs = intIn('warmupMs', o.warmupMs, 0, 10_000);
  return c;
}

function parseMetrics(field: string, text: string): HostPort {
  const rest = text.replace(/^tcp:/i, '');
  if (/^[a-z]+:/i.test(rest) && !/^\[/.test(rest) && isIP(rest.split(':')[0]!) === 0) {
    throw new ConfigError(field, 'metrics are served over tcp (HTTP)');
  }
  return parseHostPort(field, rest, 9464);
}

export interface CliOptions {
  readonly config: ProxyConfig;
  readonly configFile: string | undefined;
  readonly help: boolean;
}

const FLAG_HELP = `Usage: pinhole-proxy [options]

  --config FILE               JSON configuration file (flags override its fields)
  --listen udp:HOST:PORT      listen address (repeatable; tcp: too; IPv6 as [::1])
                              default: udp:127.0.0.1:5060 and tcp:127.0.0.1:5060
  --advertise IP              address for Via/Record-Route when listening on 0.0.0.0 / ::
  --route MATCH=URI           static route (repeatable): default=sip:192.0.2.10,
                              domain:example.com=sip:..., prefix:+4930=sip:...
  --domain NAME               a domain this registrar serves (repeatable; default: any)
  --fcp tcp:HOST:PORT         FCP server (repeatable); none = embedded fcpd
  --protected CIDR            network behind the firewall (repeatable)
  --source-policy P           any|sdp|contact|signalling (default any)
  --fail-mode M               open|closed: when pinholes are not confirmed in time (default closed)
  --pinhole-deadline-ms N     how long a response waits for its pinholes (default 1000)
  --max-call-seconds N        hole lifetime without session timers (default 7200)
  --timer-c-ms N              proxy INVITE timeout, Timer C (default 181000)
  --workers N                 worker processes (default 1; at most 64 without --fcp)
  --metrics tcp:HOST:PORT     Prometheus metrics endpoint (default off)
  --log-level L               fatal|error|warn|info|debug|trace|silent (default info)
  --policy JSON               further @pinhole/policy settings, e.g. '{"openOn":"offer"}'
  --no-warmup                 skip the start-up warm-up (synthetic calls run in-process)
  --warmup-ms N               the warm-up's budget, ms of CPU time (default 2000, at most
                              10000; never more than 4x as much wall time)
  --overload-queue-bytes N    refuse a share of new requests (503) while a UDP socket's
                              receive queue holds N bytes (default 0 = off; 1048576 suits
                              one worker, see the README)
  --overload-retry-after S    Retry-After of those 503s and of a full transaction
                              table's, seconds (default 0: none; an upstream proxy then
                              stops sending anything for S seconds)
  --help                      this text
`;

export function usage(): string {
  return FLAG_HELP;
}

/**
 * Parses command-line arguments. A repeatable flag given on the command line replaces the
 * file's list for that field; scalar flags override the file's value.
 */
export function parseArgs(
  argv: readonly string[],
  readFile: (path: string) => string = (p) => readFileSync(p, 'utf8'),
): CliOptions {
  const lists: Record<string, string[]> = {};
  const scalars: Record<string, string> = {};
  let configFile: string | undefined;
  let help = false;
  let noWarmup = false;
  const repeatable = new Set(['listen', 'route', 'fcp', 'protected', 'domain']);
  const scalar = new Set([
    'advertise',
    'source-policy',
    'fail-mode',
    'pinhole-deadline-ms',
    'max-call-seconds',
    'timer-c-ms',
    'workers',
    'metrics',
    'log-level',
    'overload-queue-bytes',
    'overload-retry-after',
    'policy',
    'warmup-ms',
  ]);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || arg === '-h') {
      help = true;
      continue;
    }
    if (arg === '--no-warmup') {
      noWarmup = true;
      continue;
    }
    if (!arg.startsWith('--')) throw new ConfigError(arg, 'unexpected argument');
    let name = arg.slice(2);
    let value: string | undefined;
    const eq = name.indexOf('=');
    if (eq >= 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    if (name !== 'config' && !repeatable.has(name) && !scalar.has(name)) {
      throw new ConfigError(`--${name}`, 'unknown flag (see --help)');
    }
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined) throw new ConfigError(`--${name}`, 'missing value');
    }
    if (name === 'config') configFile = value;
    else if (repeatable.has(name)) (lists[name] ??= []).push(value);
    else scalars[name] = value;
  }
  let config = DEFAULT_CONFIG;
  if (configFile !== undefined) {
    let text: string;
    try {
      text = readFile(configFile);
    } catch (err) {
      throw new ConfigError('--config', `cannot read ${configFile}: ${(err as Error).message}`);
    }
    let obj: unknown;
    try {
      obj = JSON.parse(text);
    } catch (err) {
      throw new ConfigError('--config', `${configFile} is not JSON: ${(err as Error).message}`);
    }
    config = configFromObject(obj);
  }
  const c: { -readonly [K in keyof ProxyConfig]: ProxyConfig[K] } = { ...config };
  if (lists.listen) c.listen = lists.listen.map((s) => parseListen('--listen', s));
  if (lists.route) c.routes = lists.route.map((s) => parseRoute('--route', s));
  if (lists.fcp) c.fcp = lists.fcp.map((s) => parseFcp('--fcp', s));
  if (lists.protected) c.protected = lists.protected.map((s) => parseCidr('--protected', s));
  if (lists.domain) c.domains = lists.domain.map((s) => s.toLowerCase());
  const s = scalars;
  if (s.advertise !== undefined) {
    if (isIP(s.advertise) === 0) throw new ConfigError('--advertise', 'expected an IP address');
    c.advertise = s.advertise;
  }
  if (s['source-policy'] !== undefined) {
    c.sourcePolicy = oneOf('--source-policy', s['source-policy'], SOURCE_POLICIES);
  }
  if (s['fail-mode'] !== undefined) c.failMode = oneOf('--fail-mode', s['fail-mode'], FAIL_MODES);
  if (s['pinhole-deadline-ms'] !== undefined) {
    c.pinholeDeadlineMs = intIn('--pinhole-deadline-ms', s['pinhole-deadline-ms'], 1, 60_000);
  }
  if (s['max-call-seconds'] !== undefined) {
    c.maxCallSeconds = intIn('--max-call-seconds', s['max-call-seconds'], 1, 7 * 86400);
  }
  if (s['timer-c-ms'] !== undefined) {
    c.timerCMs = intIn('--timer-c-ms', s['timer-c-ms'], 1000, 3_600_000);
  }
  if (s.workers !== undefined) c.workers = intIn('--workers', s.workers, 1, 256);
  if (s.metrics !== undefined) c.metrics = parseMetrics('--metrics', s.metrics);
  if (s['log-level'] !== undefined) c.logLevel = oneOf('--log-level', s['log-level'], LOG_LEVELS);
  if (s.policy !== undefined) {
    let obj: unknown;
    try {
      obj = JSON.parse(s.policy);
    } catch {
      throw new ConfigError('--policy', 'expected a JSON object of @pinhole/policy settings');
    }
    c.policy = configFromObject({ policy: obj }).policy;
  }
  if (s['warmup-ms'] !== undefined) c.warmupMs = intIn('--warmup-ms', s['warmup-ms'], 0, 10_000);
  if (noWarmup) c.warmup = false;
  if (s['overload-queue-bytes'] !== undefined) {
    const queueBytes = queueBytesOf('--overload-queue-bytes', s['overload-queue-bytes']);
    c.overload = { ...c.overload, queueBytes };
  }
  if (s['overload-retry-after'] !== undefined) {
    const retryAfter = intIn('--overload-retry-after', s['overload-retry-after'], 0, 3600);
    c.overload = { ...c.overload, retryAfter };
  }
  if (c.fcp.length === 0 && c.workers > MAX_SHARDS) {
    throw new ConfigError(
      s.workers !== undefined ? '--workers' : 'workers',
      `at most ${MAX_SHARDS} without --fcp (each worker embeds an fcpd writing its own shard of the nftables table)`,
    );
  }
  return { config: c, configFile, help };
}

/** True when two listener lists are the same set (a SIGHUP reload restarts sockets otherwise). */
export function sameListeners(a: readonly ListenAddress[], b: readonly ListenAddress[]): boolean {
  const key = (l: ListenAddress): string => `${l.transport}|${l.host}|${l.port}`;
  const sa = new Set(a.map(key));
  const sb = new Set(b.map(key));
  return sa.size === sb.size && [...sa].every((k) => sb.has(k));
}
