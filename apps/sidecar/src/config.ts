/**
 * Sidecar configuration: a JSON file and command-line flags (flags win; a repeatable flag given
 * on the command line replaces the file's list). Every error names the field or flag.
 */
import { readFileSync } from 'node:fs';
import { validateConfig as validatePolicyConfig, type PolicyConfigInput } from '@pinhole/policy';
import { SidecarConfigError } from './errors.js';
import { parseIp, parseNetwork } from '@pinhole/policy';
import type { ServerAddress } from './normalizer.js';

export interface TransportAddress {
  readonly transport: 'udp' | 'tcp';
  readonly host: string;
  readonly port: number;
}

export type SourcePolicyName = 'any' | 'sdp' | 'contact' | 'signalling';
const SOURCE_POLICIES: readonly SourcePolicyName[] = ['any', 'sdp', 'contact', 'signalling'];

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
const LOG_LEVELS: readonly LogLevel[] = [
  'trace',
  'debug',
  'info',
  'warn',
  'error',
  'fatal',
  'silent',
];

/** A protected network as configured (`--protected 10.0.0.0/8`; host bits must be zero). */
export interface Cidr {
  /** Canonical text of the network address. */
  readonly address: string;
  readonly family: 4 | 6;
  readonly prefix: number;
}

export interface SidecarConfig {
  /** HEP listeners (at least one). */
  readonly hep: readonly TransportAddress[];
  /** Firewall-control daemons (each rule goes to each); empty: no pinhole control. */
  readonly fcp: readonly TransportAddress[];
  readonly protected: readonly Cidr[];
  /** Who may send through a hole (as the proxy's `--source-policy`). */
  readonly sourcePolicy: SourcePolicyName;
  /** TIMER of an established call without session-timer refreshes, seconds. */
  readonly maxCallSeconds: number;
  /** What a pinhole the firewall did not acknowledge means (the copy has passed: logging). */
  readonly failMode: 'open' | 'closed';
  /** The policy input (protected networks, source policy, lifetimes, further settings). */
  readonly policy: PolicyConfigInput;
  /** Capture agent ids accepted; empty accepts all. */
  readonly captureIds: readonly number[];
  readonly authKey: string | undefined;
  /** The SIP server's own addresses (at least one). */
  readonly serverAddresses: readonly ServerAddress[];
  readonly metrics: TransportAddress | undefined;
  readonly twinWaitMs: number;
  readonly dedupWindowMs: number;
  readonly maxDedupEntries: number;
  readonly tcpMaxConnections: number;
  readonly tcpIdleTimeoutMs: number;
  readonly tcpOnGarbage: 'close' | 'resync';
  readonly logLevel: LogLevel;
}

/** Parses `udp:0.0.0.0:9060`, `tcp:[::1]:9060`. */
export function parseTransportAddress(
  field: string,
  text: unknown,
  allowed: readonly ('udp' | 'tcp')[],
): TransportAddress {
  if (typeof text !== 'string')
    throw new SidecarConfigError(field, 'must be a string like udp:0.0.0.0:9060');
  const colon = text.indexOf(':');
  const transport = text.slice(0, colon);
  if (colon === -1 || !(allowed as readonly string[]).includes(transport)) {
    throw new SidecarConfigError(
      field,
      `${JSON.stringify(text)} must start with ${allowed.map((a) => `${a}:`).join(' or ')}`,
    );
  }
  const hp = parseHostPort(field, text.slice(colon + 1), true);
  return { transport: transport as 'udp' | 'tcp', host: hp.address, port: hp.port ?? 0 };
}

function parseHostPort(
  field: string,
  text: string,
  portRequired: boolean,
): { address: string; port: number | undefined } {
  let host: string;
  let port: string | undefined;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close === -1) throw new SidecarConfigError(field, `unclosed [ in ${JSON.stringify(text)}`);
    host = text.slice(1, close);
    const rest = text.slice(close + 1);
    if (rest.length > 0) {
      if (!rest.startsWith(':'))
        throw new SidecarConfigError(field, `bad port in ${JSON.stringify(text)}`);
      port = rest.slice(1);
    }
  } else {
    const colons = text.split(':').length - 1;
    if (colons === 1) {
      host = text.slice(0, text.indexOf(':'));
      port = text.slice(text.indexOf(':') + 1);
    } else {
      // No colon: an IPv4 address or name alone. Several: a bare IPv6 address (no port).
      host = text;
    }
  }
  const ip = parseIp(host);
  if (!ip) throw new SidecarConfigError(field, `${JSON.stringify(host)} is not an IP address`);
  if (port === undefined) {
    if (portRequired) throw new SidecarConfigError(field, `${JSON.stringify(text)} needs a port`);
    return { address: ip.text, port: undefined };
  }
  if (!/^[0-9]{1,5}$/.test(port) || Number(port) > 65535) {
    throw new SidecarConfigError(field, `port must be 0..65535: ${JSON.stringify(port)}`);
  }
  return { address: ip.text, port: Number(port) };
}

/** Parses `198.18.0.1`, `198.18.0.1:5060`, `[2001:db8::1]:5060` or `2001:db8::1`. */
export function parseServerAddress(field: string, text: unknown): ServerAddress {
  if (typeof text !== 'string')
    throw new SidecarConfigError(field, 'must be a string like 198.18.0.1:5060');
  const hp = parseHostPort(field, text, false);
  if (hp.port === 0) throw new SidecarConfigError(field, 'port 0 is not a SIP server port');
  return hp.port === undefined ? { address: hp.address } : { address: hp.address, port: hp.port };
}

function int(field: string, v: unknown, min: number, max: number): number {
  const n = typeof v === 'string' && /^-?[0-9]+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    throw new SidecarConfigError(
      field,
      `must be an integer in ${min}..${max}, got ${JSON.stringify(v)}`,
    );
  }
  return n;
}

function list(field: string, v: unknown): unknown[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new SidecarConfigError(field, 'must be an array');
  return v as unknown[];
}

/** The raw (unvalidated) shape of the JSON file and of the flags. */
export interface RawSidecarConfig {
  hep?: unknown;
  fcp?: unknown;
  protected?: unknown;
  sourcePolicy?: unknown;
  maxCallSeconds?: unknown;
  failMode?: unknown;
  policy?: unknown;
  captureIds?: unknown;
  authKey?: unknown;
  serverAddresses?: unknown;
  metrics?: unknown;
  twinWaitMs?: unknown;
  dedupWindowMs?: unknown;
  maxDedupEntries?: unknown;
  tcp?: unknown;
  logLevel?: unknown;
}

const KNOWN_KEYS = new Set([
  'hep',
  'fcp',
  'protected',
  'sourcePolicy',
  'maxCallSeconds',
  'failMode',
  'policy',
  'captureIds',
  'authKey',
  'serverAddresses',
  'metrics',
  'twinWaitMs',
  'dedupWindowMs',
  'maxDedupEntries',
  'tcp',
  'logLevel',
]);

/** Validates a raw configuration object (the parsed JSON file merged with flags). */
export function validateConfig(raw: unknown): SidecarConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new SidecarConfigError('config', 'must be a JSON object');
  }
  const r = raw as RawSidecarConfig & Record<string, unknown>;
  for (const k of Object.keys(r)) {
    if (!KNOWN_KEYS.has(k)) throw new SidecarConfigError(k, 'unknown configuration field');
  }
  const hep = list('hep', r.hep).map((v, i) =>
    parseTransportAddress(`hep[${i}]`, v, ['udp', 'tcp']),
  );
  if (hep.length === 0)
    throw new SidecarConfigError(
      'hep',
      'at least one HEP listener is needed (e.g. udp:0.0.0.0:9060)',
    );
  const serverAddresses = list('serverAddresses', r.serverAddresses).map((v, i) =>
    parseServerAddress(`serverAddresses[${i}]`, v),
  );
  if (serverAddresses.length === 0) {
    throw new SidecarConfigError(
      'serverAddresses',
      "the SIP server's own address is needed to tell received copies from sent ones",
    );
  }
  const prot = list('protected', r.protected).map((v, i) => {
    if (typeof v !== 'string')
      throw new SidecarConfigError(`protected[${i}]`, 'must be a CIDR string');
    const c = parseNetwork(v);
    if (!c.ok) throw new SidecarConfigError(`protected[${i}]`, c.reason);
    const cidr: Cidr = {
      address: c.network.address.text,
      family: c.network.address.family,
      prefix: c.network.prefix,
    };
    return cidr;
  });
  const captureIds = list('captureIds', r.captureIds).map((v, i) =>
    int(`captureIds[${i}]`, v, 0, 0xffffffff),
  );
  let authKey: string | undefined;
  if (r.authKey !== undefined) {
    if (typeof r.authKey !== 'string' || r.authKey.length === 0) {
      throw new SidecarConfigError('authKey', 'must be a non-empty string');
    }
    authKey = r.authKey;
  }
  const tcp = r.tcp === undefined ? {} : r.tcp;
  if (typeof tcp !== 'object' || tcp === null || Array.isArray(tcp)) {
    throw new SidecarConfigError('tcp', 'must be an object');
  }
  const t = tcp as Record<string, unknown>;
  for (const k of Object.keys(t)) {
    if (!['maxConnections', 'idleTimeoutMs', 'onGarbage'].includes(k)) {
      throw new SidecarConfigError(`tcp.${k}`, 'unknown configuration field');
    }
  }
  const onGarbage = t.onGarbage ?? 'close';
  if (onGarbage !== 'close' && onGarbage !== 'resync') {
    throw new SidecarConfigError('tcp.onGarbage', 'must be "close" or "resync"');
  }
  // A single string is accepted for one server (the file format before `fcp` was a list).
  const fcp = (typeof r.fcp === 'string' ? [r.fcp] : list('fcp', r.fcp)).map((v, i) =>
    parseTransportAddress(`fcp[${i}]`, v, ['tcp']),
  );
  if (fcp.length > 0 && prot.length === 0) {
    throw new SidecarConfigError(
      'protected',
      'pinhole control (fcp) needs the protected networks behind the firewall',
    );
  }
  const sourcePolicy = r.sourcePolicy ?? 'any';
  if (
    typeof sourcePolicy !== 'string' ||
    !(SOURCE_POLICIES as readonly string[]).includes(sourcePolicy)
  ) {
    throw new SidecarConfigError('sourcePolicy', `must be one of ${SOURCE_POLICIES.join(', ')}`);
  }
  const failMode = r.failMode ?? 'open';
  if (failMode !== 'open' && failMode !== 'closed') {
    throw new SidecarConfigError('failMode', 'must be "open" or "closed"');
  }
  const maxCallSeconds =
    r.maxCallSeconds === undefined ? 7200 : int('maxCallSeconds', r.maxCallSeconds, 1, 7 * 86400);
  let extra: Record<string, unknown> = {};
  if (r.policy !== undefined) {
    let p: unknown = r.policy;
    if (typeof p === 'string') {
      try {
        p = JSON.parse(p);
      } catch (err) {
        throw new SidecarConfigError('policy', `is not JSON: ${(err as Error).message}`);
      }
    }
    if (typeof p !== 'object' || p === null || Array.isArray(p)) {
      throw new SidecarConfigError('policy', 'must be an object of @pinhole/policy settings');
    }
    extra = p as Record<string, unknown>;
  }
  const policy: PolicyConfigInput = {
    ...(extra as Partial<PolicyConfigInput>),
    protectedNetworks: prot.map((c) => `${c.address}/${c.prefix}`),
    source: sourcePolicy as SourcePolicyName,
    ...(extra.maxCallLifetimeSec === undefined ? { maxCallLifetimeSec: maxCallSeconds } : {}),
  };
  if (fcp.length > 0) {
    const checked = validatePolicyConfig(policy);
    if (!checked.ok) {
      const first = checked.errors[0];
      throw new SidecarConfigError(
        `policy${first?.field ? `.${first.field}` : ''}`,
        first?.message ?? 'invalid policy settings',
      );
    }
  }
  const logLevel = r.logLevel ?? 'info';
  if (typeof logLevel !== 'string' || !(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new SidecarConfigError('logLevel', `must be one of ${LOG_LEVELS.join(', ')}`);
  }
  return {
    hep,
    fcp,
    protected: prot,
    sourcePolicy: sourcePolicy as SourcePolicyName,
    maxCallSeconds,
    failMode,
    policy,
    captureIds,
    authKey,
    serverAddresses,
    metrics:
      r.metrics === undefined ? undefined : parseTransportAddress('metrics', r.metrics, ['tcp']),
    twinWaitMs: r.twinWaitMs === undefined ? 200 : int('twinWaitMs', r.twinWaitMs, 0, 10_000),
    dedupWindowMs:
      r.dedupWindowMs === undefined
        ? 32_000
        : int('dedupWindowMs', r.dedupWindowMs, 1_000, 600_000),
    maxDedupEntries:
      r.maxDedupEntries === undefined
        ? 100_000
        : int('maxDedupEntries', r.maxDedupEntries, 1, 10_000_000),
    tcpMaxConnections:
      t.maxConnections === undefined ? 64 : int('tcp.maxConnections', t.maxConnections, 1, 10_000),
    tcpIdleTimeoutMs:
      t.idleTimeoutMs === undefined
        ? 300_000
        : int('tcp.idleTimeoutMs', t.idleTimeoutMs, 0, 86_400_000),
    tcpOnGarbage: onGarbage,
    logLevel: logLevel as LogLevel,
  };
}

export const USAGE = `usage: pinhole-sidecar [--config FILE] [flags]

  --config FILE            JSON configuration (flags override it)
  --hep udp:HOST:PORT      HEP listener; repeatable; tcp:HOST:PORT for HEP over TCP
  --server-address A[:P]   the SIP server's own address; repeatable; required
  --capture-id N           accept HEP only from this capture agent id; repeatable
  --auth-key KEY           require this HEP auth key (chunk 0x000e)
  --auth-key-file FILE     read the auth key from FILE (keeps it out of the process list)
  --fcp tcp:HOST:PORT      firewall-control daemon; repeatable (each rule goes to each);
                           without it the sidecar only decodes and logs (no pinholes)
  --protected CIDR         protected network behind the firewall; repeatable; needed with --fcp
  --source-policy P        who may send through a hole: any (default), sdp, contact, signalling
  --max-call-seconds N     hole TIMER of a call without session timers (default 7200)
  --fail-mode M            open (default) or closed: how loudly a failed pinhole is reported
                           (the sidecar only sees copies and cannot hold or fail a call)
  --policy JSON            further @pinhole/policy settings, e.g. '{"earlyTimerSec":120}'
  --metrics tcp:HOST:PORT  serve Prometheus metrics at http://HOST:PORT/metrics
  --twin-wait-ms N         wait this long for the sent copy of a received message (default 200)
  --log-level LEVEL        trace, debug, info (default), warn, error, fatal, silent
  --help                   this text
`;

type Flag = { key: keyof RawSidecarConfig | 'authKeyFile'; repeat: boolean };
const FLAGS: Readonly<Record<string, Flag>> = {
  '--hep': { key: 'hep', repeat: true },
  '--server-address': { key: 'serverAddresses', repeat: true },
  '--capture-id': { key: 'captureIds', repeat: true },
  '--auth-key': { key: 'authKey', repeat: false },
  '--auth-key-file': { key: 'authKeyFile', repeat: false },
  '--fcp': { key: 'fcp', repeat: true },
  '--protected': { key: 'protected', repeat: true },
  '--source-policy': { key: 'sourcePolicy', repeat: false },
  '--max-call-seconds': { key: 'maxCallSeconds', repeat: false },
  '--fail-mode': { key: 'failMode', repeat: false },
  '--policy': { key: 'policy', repeat: false },
  '--metrics': { key: 'metrics', repeat: false },
  '--twin-wait-ms': { key: 'twinWaitMs', repeat: false },
  '--log-level': { key: 'logLevel', repeat: false },
};

export type ArgsResult =
  { readonly help: true } | { readonly help: false; readonly config: SidecarConfig };

/** Parses command-line arguments (and the `--config` file they name). */
export function parseArgs(
  argv: readonly string[],
  readFile: (path: string) => string = (p) => readFileSync(p, 'utf8'),
): ArgsResult {
  const fromFlags: Record<string, unknown> = {};
  let file: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] ?? '';
    if (a === '--help' || a === '-h') return { help: true };
    const eq = a.indexOf('=');
    const name = a.startsWith('--') && eq !== -1 ? a.slice(0, eq) : a;
    let value: string | undefined = a.startsWith('--') && eq !== -1 ? a.slice(eq + 1) : undefined;
    if (name !== '--config' && FLAGS[name] === undefined) {
      throw new SidecarConfigError(name, 'unknown flag (see --help)');
    }
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined) throw new SidecarConfigError(name, 'needs a value');
    }
    if (name === '--config') {
      file = value;
      continue;
    }
    const f = FLAGS[name];
    if (!f) continue;
    if (f.repeat) {
      const prev = fromFlags[f.key];
      fromFlags[f.key] = [...(Array.isArray(prev) ? (prev as unknown[]) : []), value];
    } else {
      fromFlags[f.key] = value;
    }
  }
  let base: Record<string, unknown> = {};
  if (file !== undefined) {
    let text: string;
    try {
      text = readFile(file);
    } catch (err) {
      throw new SidecarConfigError('--config', `cannot read ${file}: ${(err as Error).message}`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw new SidecarConfigError('--config', `${file} is not JSON: ${(err as Error).message}`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new SidecarConfigError('--config', `${file} must hold a JSON object`);
    }
    base = parsed as Record<string, unknown>;
  }
  const merged: Record<string, unknown> = { ...base, ...fromFlags };
  if (merged.authKeyFile !== undefined) {
    const field = 'authKeyFile' in fromFlags ? '--auth-key-file' : 'authKeyFile';
    if (merged.authKey !== undefined) {
      throw new SidecarConfigError(field, 'give the auth key or a file holding it, not both');
    }
    if (typeof merged.authKeyFile !== 'string') {
      throw new SidecarConfigError(field, 'must be a file path');
    }
    let key: string;
    try {
      key = readFile(merged.authKeyFile);
    } catch (err) {
      throw new SidecarConfigError(
        field,
        `cannot read ${merged.authKeyFile}: ${(err as Error).message}`,
      );
    }
    // One trailing line end is the file's, not the key's.
    merged.authKey = key.replace(/\r?\n$/, '');
    if (merged.authKey === '') throw new SidecarConfigError(field, 'the file holds an empty key');
    delete merged.authKeyFile;
  }
  try {
    return { help: false, config: validateConfig(merged) };
  } catch (err) {
    // Name the flag when the bad value came from one (`--server-address[0]`, not the JSON key).
    if (err instanceof SidecarConfigError) {
      const root = /^[A-Za-z]+/.exec(err.field)?.[0] ?? '';
      const flag = Object.entries(FLAGS).find(([, f]) => f.key === root)?.[0];
      if (flag !== undefined && root in fromFlags) {
        const rest = err.field.slice(root.length);
        throw new SidecarConfigError(`${flag}${rest}`, err.message.slice(err.field.length + 2));
      }
    }
    throw err;
  }
}
