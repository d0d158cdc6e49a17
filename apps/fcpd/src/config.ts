/**
 * The daemon's configuration: the JSON config file, the command-line flags that override it,
 * and validation whose errors name the field (`FcpdConfigError.field`, e.g. `nft.mode` or
 * `--media-ports`). The FCP server part (`policy`, `limits`, `nat`, ...) is checked again by
 * @pinhole/fcp's `validateServerConfig`, which names its fields the same way.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { parseArgs } from 'node:util';
import type {
  FcpServerConfig,
  LimitsConfig,
  ListenerConfig,
  NatConfig,
  PolicyConfig,
  PortRange,
} from '@pinhole/fcp';
import { MAX_SHARDS, type NftHook, type NftMode } from './nft-ruleset.js';

export class FcpdConfigError extends Error {
  readonly code = 'FCPD_ERR_CONFIG' as const;
  readonly field: string;
  constructor(field: string, message: string) {
    super(`${field}: ${message}`);
    this.name = 'FcpdConfigError';
    this.field = field;
  }
}

export type BackendName = 'nftables' | 'memory';

export interface NftConfig {
  /** `standalone` (default) or `mark`. */
  readonly mode?: NftMode | undefined;
  /** Table name in family inet; default `pinhole`. */
  readonly table?: string | undefined;
  /** Hooks to gate/mark; default `['forward']`; add `input` when the firewall host itself is protected. */
  readonly hooks?: readonly NftHook[] | undefined;
  /** Mark bits for `mark` mode; default 0x00100000. */
  readonly mark?: number | undefined;
  /** How to run nft (argv); default `['nft']`. */
  readonly command?: readonly string[] | undefined;
  /**
   * Split a burst of operations that arrives while nft is idle into two transactions that then
   * alternate (nft applies one while the other's clients are answered). Default false: it pays
   * only when nft and the daemon have a CPU each (see BENCHMARKS.md).
   */
  readonly splitBursts?: boolean | undefined;
  /**
   * How set elements reach the kernel: `netlink` (a netlink socket, in process through the
   * pinhole-nfnl.node addon or in the pinhole-nfnl helper process) or `cli` (the `nft -i`
   * channel). Default: netlink when one of the two is built and starts, else cli with a warning;
   * an explicit `netlink` that cannot start stops the daemon's start instead.
   */
  readonly channel?: 'netlink' | 'cli' | undefined;
  /**
   * The helper process's argv; set, the helper is used instead of the in-process addon. Default:
   * `command` with its last word replaced by the built helper.
   */
  readonly helperCommand?: readonly string[] | undefined;
  /**
   * Daemons sharing the table, each writing its own sets (default 1), and this daemon's index
   * among them (`shard`, default 0). The chains look at every shard's sets; a daemon adds and
   * deletes only its own elements. For several workers of one proxy with an fcpd each.
   */
  readonly shards?: number | undefined;
  readonly shard?: number | undefined;
}

export interface MetricsConfig {
  readonly host: string;
  /** 0 = ask the OS. */
  readonly port: number;
}

/** Everything `startFcpd` needs. Only `protected` has no usable default. */
export interface FcpdConfig {
  /** Default: `tcp:127.0.0.1:12345`. */
  readonly listen?: readonly ListenerConfig[] | undefined;
  /** Default `nftables`. */
  readonly backend?: BackendName | undefined;
  /** Networks holes may lead into (policy) and that standalone mode gates. */
  readonly protected?: readonly string[] | undefined;
  /** FCP client ACL; default loopback only. */
  readonly allowClients?: readonly string[] | undefined;
  /** Ports holes may open and standalone mode gates; default 1024-65535. */
  readonly mediaPorts?: PortRange | undefined;
  /** Prometheus endpoint; none by default. */
  readonly metrics?: MetricsConfig | undefined;
  readonly nft?: NftConfig | undefined;
  /** Passed to the FCP server core (see @pinhole/fcp); `protectedNetworks` and `allowedPorts`
   * default to `protected` and `mediaPorts`. */
  readonly policy?: PolicyConfig | undefined;
  readonly limits?: LimitsConfig | undefined;
  readonly nat?: NatConfig | undefined;
  readonly internalNetworks?: readonly string[] | undefined;
  readonly notMyRoute?: boolean | undefined;
  readonly responseStyle?: FcpServerConfig['responseStyle'];
  readonly queryScope?: FcpServerConfig['queryScope'];
  readonly banner?: string | undefined;
  /** pino level; default `info`. */
  readonly logLevel?: string | undefined;
}

const TOP_KEYS = new Set([
  'listen',
  'backend',
  'protected',
  'allowClients',
  'mediaPorts',
  'metrics',
  'nft',
  'policy',
  'limits',
  'nat',
  'internalNetworks',
  'notMyRoute',
  'responseStyle',
  'queryScope',
  'banner',
  'logLevel',
]);
const NFT_KEYS = new Set([
  'mode',
  'table',
  'hooks',
  'mark',
  'command',
  'splitBursts',
  'channel',
  'helperCommand',
  'shards',
  'shard',
]);
const LOG_LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `tcp:127.0.0.1:12345`, `udp:[::1]:12345`. */
export function parseEndpoint(
  text: string,
  field: string,
  transports: readonly string[] = ['tcp', 'udp'],
): { transport: string; host: string; port: number } {
  const m = /^([a-z]+):(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(text);
  const host = m?.[2] ?? m?.[3];
  const port = Number(m?.[4]);
  if (!m || host === undefined || !transports.includes(m[1] ?? '')) {
    throw new FcpdConfigError(
      field,
      `expected ${transports.join('|')}:<address>:<port> (IPv6 in brackets), got "${text}"`,
    );
  }
  if (isIP(host) === 0) throw new FcpdConfigError(field, `"${host}" is not an IP address`);
  if (!(port >= 0 && port <= 65535)) throw new FcpdConfigError(field, 'port must be 0..65535');
  return { transport: m[1] ?? '', host, port };
}

/** `1024-65535`, `40000`, or `[lo, hi]`. */
export function parsePortRange(v: unknown, field: string): PortRange {
  let r: unknown[] | undefined;
  if (typeof v === 'number') r = [v, v];
  else if (typeof v === 'string') {
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(v.trim());
    if (m) r = [Number(m[1]), Number(m[2] ?? m[1])];
  } else if (Array.isArray(v)) r = v;
  const ok =
    r?.length === 2 &&
    r.every((n) => typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 65535) &&
    (r[0] as number) <= (r[1] as number);
  if (!ok || !r) throw new FcpdConfigError(field, 'must be a port range like 1024-65535');
  return [r[0] as number, r[1] as number];
}

/** Checks `a.b.c.d/len` or `v6/len` (a bare address means one host). */
export function checkCidr(v: unknown, field: string): string {
  if (typeof v !== 'string') throw new FcpdConfigError(field, 'must be a string like 10.0.0.0/8');
  const [addr, len, extra] = v.split('/');
  const fam = isIP(addr ?? '');
  if (fam === 0 || extra !== undefined) {
    throw new FcpdConfigError(field, `"${v}" is not an address or network`);
  }
  const max = fam === 4 ? 32 : 128;
  if (len !== undefined && !(/^\d{1,3}$/.test(len) && Number(len) <= max)) {
    throw new FcpdConfigError(field, `prefix length must be 0..${max}`);
  }
  return v;
}

function strList(v: unknown, field: string): string[] {
  if (!Array.isArray(v)) throw new FcpdConfigError(field, 'must be an array');
  return v.map((x, i) => checkCidr(x, `${field}[${i}]`));
}

/** PEM material for `tls:` listeners given as strings (from --tls-cert/--tls-key/--tls-ca). */
export interface TlsMaterial {
  readonly cert: string;
  readonly key: string;
  /** CA of the client certificates; without it, TLS without client certificates. */
  readonly ca?: string | undefined;
}

function listener(v: unknown, field: string, tls?: TlsMaterial): ListenerConfig {
  if (typeof v === 'string') {
    const e = parseEndpoint(v, field, tls ? ['tcp', 'udp', 'tls'] : ['tcp', 'udp']);
    if (e.transport === 'tls' && tls) {
      return {
        transport: 'tls',
        host: e.host,
        port: e.port,
        tls:
          tls.ca !== undefined
            ? // Client certificates are requested and must chain to this CA.
              { cert: tls.cert, key: tls.key, ca: tls.ca }
            : // Encryption and server authentication only; the address ACL decides.
              { cert: tls.cert, key: tls.key, requestCert: false, rejectUnauthorized: false },
      };
    }
    return { transport: e.transport as 'tcp' | 'udp', host: e.host, port: e.port };
  }
  if (isObj(v)) return v as unknown as ListenerConfig; // checked by validateServerConfig
  throw new FcpdConfigError(field, 'must be "tcp:host:port", "udp:host:port" or an object');
}

/**
 * Checks a parsed JSON config file (or any object) and returns it typed. Unknown keys are
 * errors (a typo must not silently fall back to a default).
 */
export function validateFcpdConfig(input: unknown, origin = ''): FcpdConfig {
  const f = (name: string): string => `${origin}${name}`;
  if (!isObj(input)) throw new FcpdConfigError(f('(root)'), 'must be a JSON object');
  for (const k of Object.keys(input)) {
    if (!TOP_KEYS.has(k)) throw new FcpdConfigError(f(k), 'unknown setting');
  }
  const out: Record<string, unknown> = {};
  if (input.listen !== undefined) {
    if (!Array.isArray(input.listen) || input.listen.length === 0) {
      throw new FcpdConfigError(f('listen'), 'must be a non-empty array');
    }
    out.listen = input.listen.map((l, i) => listener(l, f(`listen[${i}]`)));
  }
  if (input.backend !== undefined) {
    if (input.backend !== 'nftables' && input.backend !== 'memory') {
      throw new FcpdConfigError(f('backend'), 'must be "nftables" or "memory"');
    }
    out.backend = input.backend;
  }
  if (input.protected !== undefined) out.protected = strList(input.protected, f('protected'));
  if (input.allowClients !== undefined) {
    out.allowClients = strList(input.allowClients, f('allowClients'));
  }
  if (input.internalNetworks !== undefined) {
    out.internalNetworks = strList(input.internalNetworks, f('internalNetworks'));
  }
  if (input.mediaPorts !== undefined) {
    out.mediaPorts = parsePortRange(input.mediaPorts, f('mediaPorts'));
  }
  if (input.metrics !== undefined) {
    if (typeof input.metrics === 'string') {
      const e = parseEndpoint(input.metrics, f('metrics'), ['tcp']);
      out.metrics = { host: e.host, port: e.port };
    } else if (
      isObj(input.metrics) &&
      typeof input.metrics.host === 'string' &&
      isIP(input.metrics.host) !== 0 &&
      typeof input.metrics.port === 'number' &&
      Number.isInteger(input.metrics.port) &&
      input.metrics.port >= 0 &&
      input.metrics.port <= 65535
    ) {
      out.metrics = { host: input.metrics.host, port: input.metrics.port };
    } else {
      throw new FcpdConfigError(f('metrics'), 'must be "tcp:host:port" or { host, port }');
    }
  }
  if (input.nft !== undefined) out.nft = nftConfig(input.nft, f('nft'));
  for (const k of ['policy', 'limits', 'nat'] as const) {
    if (input[k] !== undefined) {
      if (!isObj(input[k])) throw new FcpdConfigError(f(k), 'must be an object');
      out[k] = input[k];
    }
  }
  if (input.notMyRoute !== undefined) {
    if (typeof input.notMyRoute !== 'boolean') {
      throw new FcpdConfigError(f('notMyRoute'), 'must be true or false');
    }
    out.notMyRoute = input.notMyRoute;
  }
  if (input.responseStyle !== undefined) {
    if (input.responseStyle !== 'fcpd' && input.responseStyle !== 'abnf') {
      throw new FcpdConfigError(f('responseStyle'), 'must be "fcpd" or "abnf"');
    }
    out.responseStyle = input.responseStyle;
  }
  if (input.queryScope !== undefined) {
    if (input.queryScope !== 'all' && input.queryScope !== 'own') {
      throw new FcpdConfigError(f('queryScope'), 'must be "all" or "own"');
    }
    out.queryScope = input.queryScope;
  }
  if (input.banner !== undefined) {
    if (typeof input.banner !== 'string')
      throw new FcpdConfigError(f('banner'), 'must be a string');
    out.banner = input.banner;
  }
  if (input.logLevel !== undefined) {
    if (typeof input.logLevel !== 'string' || !LOG_LEVELS.has(input.logLevel)) {
      throw new FcpdConfigError(f('logLevel'), `must be one of ${[...LOG_LEVELS].join(', ')}`);
    }
    out.logLevel = input.logLevel;
  }
  return out;
}

function parseMark(v: unknown, field: string): number {
  const n =
    typeof v === 'number'
      ? v
      : typeof v === 'string' && /^(0x[0-9a-f]+|\d+)$/i.test(v)
        ? Number(v)
        : NaN;
  if (!Number.isInteger(n) || n <= 0 || n > 0xffffffff) {
    throw new FcpdConfigError(field, 'must be a non-zero 32-bit mark like 0x00100000');
  }
  return n;
}

function nftConfig(v: unknown, field: string): NftConfig {
  if (!isObj(v)) throw new FcpdConfigError(field, 'must be an object');
  for (const k of Object.keys(v)) {
    if (!NFT_KEYS.has(k)) throw new FcpdConfigError(`${field}.${k}`, 'unknown setting');
  }
  const out: Record<string, unknown> = {};
  if (v.mode !== undefined) {
    if (v.mode !== 'standalone' && v.mode !== 'mark') {
      throw new FcpdConfigError(`${field}.mode`, 'must be "standalone" or "mark"');
    }
    out.mode = v.mode;
  }
  if (v.table !== undefined) {
    if (typeof v.table !== 'string' || !/^[A-Za-z][A-Za-z0-9_]{0,30}$/.test(v.table)) {
      throw new FcpdConfigError(`${field}.table`, 'must be a name like "pinhole"');
    }
    out.table = v.table;
  }
  if (v.hooks !== undefined) {
    if (
      !Array.isArray(v.hooks) ||
      v.hooks.length === 0 ||
      !v.hooks.every((h) => h === 'forward' || h === 'input') ||
      new Set(v.hooks).size !== v.hooks.length
    ) {
      throw new FcpdConfigError(`${field}.hooks`, 'must be a list of "forward" and/or "input"');
    }
    out.hooks = v.hooks;
  }
  if (v.mark !== undefined) out.mark = parseMark(v.mark, `${field}.mark`);
  if (v.splitBursts !== undefined) {
    if (typeof v.splitBursts !== 'boolean') {
      throw new FcpdConfigError(`${field}.splitBursts`, 'must be true or false');
    }
    out.splitBursts = v.splitBursts;
  }
  if (v.channel !== undefined) {
    if (v.channel !== 'netlink' && v.channel !== 'cli') {
      throw new FcpdConfigError(`${field}.channel`, 'must be "netlink" or "cli"');
    }
    out.channel = v.channel;
  }
  if (v.shards !== undefined) {
    if (
      typeof v.shards !== 'number' ||
      !Number.isInteger(v.shards) ||
      v.shards < 1 ||
      v.shards > MAX_SHARDS
    ) {
      throw new FcpdConfigError(`${field}.shards`, `must be an integer from 1 to ${MAX_SHARDS}`);
    }
    out.shards = v.shards;
  }
  if (v.shard !== undefined) {
    const n = (out.shards as number | undefined) ?? 1;
    if (typeof v.shard !== 'number' || !Number.isInteger(v.shard) || v.shard < 0 || v.shard >= n) {
      throw new FcpdConfigError(
        `${field}.shard`,
        `must be an integer from 0 to ${n - 1} (nft.shards - 1)`,
      );
    }
    out.shard = v.shard;
  }
  for (const key of ['command', 'helperCommand'] as const) {
    const c = v[key];
    if (c === undefined) continue;
    if (!Array.isArray(c) || c.length === 0 || !c.every((x) => typeof x === 'string' && x !== '')) {
      throw new FcpdConfigError(`${field}.${key}`, 'must be a non-empty list of strings');
    }
    out[key] = c;
  }
  return out;
}

export const USAGE = `Usage: pinhole-fcpd [options]

  --config FILE             JSON config file (flags override it)
  --listen tcp|udp|tls:ADDR:PORT  FCP listener (repeatable; default tcp:127.0.0.1:12345)
  --tls-cert FILE           PEM certificate (chain) of tls: listeners
  --tls-key FILE            PEM private key of tls: listeners
  --tls-ca FILE             PEM CA of FCP client certificates; with it, clients must present a
                            certificate it signed (owner cert:<CN>), without it none is asked
  --backend nftables|memory firewall backend (default nftables; memory enforces nothing)
  --protected CIDR          network holes may lead into (repeatable; required)
  --allow-client CIDR       FCP client ACL (repeatable; default loopback only)
  --media-ports LO-HI       ports holes may open / standalone mode gates (default 1024-65535)
  --metrics tcp:ADDR:PORT   Prometheus metrics endpoint (default off)
  --nft-mode standalone|mark  how the table fits the site's ruleset (default standalone)
  --nft-table NAME          owned table in family inet (default pinhole)
  --nft-hook forward|input  hooks to gate or mark (repeatable; default forward)
  --nft-mark 0xMARK         mark bits in mark mode (default 0x00100000)
  --nft-channel netlink|cli how set elements reach the kernel (default netlink, in process
                            or through the pinhole-nfnl helper, falling back to the nft CLI)
  --log-level LEVEL         fatal|error|warn|info|debug|trace|silent (default info)
  --check                   validate the configuration, print it and exit
  -h, --help                this help
`;

export interface CliOptions {
  readonly config: FcpdConfig;
  readonly help: boolean;
  readonly check: boolean;
}

/** Parses argv (without node and script) and the config file it names; flags win. */
export function parseCli(
  argv: readonly string[],
  readFile: (path: string, enc: 'utf8') => string = readFileSync,
): CliOptions {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        config: { type: 'string' },
        listen: { type: 'string', multiple: true },
        'tls-cert': { type: 'string' },
        'tls-key': { type: 'string' },
        'tls-ca': { type: 'string' },
        backend: { type: 'string' },
        protected: { type: 'string', multiple: true },
        'allow-client': { type: 'string', multiple: true },
        'media-ports': { type: 'string' },
        metrics: { type: 'string' },
        'nft-mode': { type: 'string' },
        'nft-table': { type: 'string' },
        'nft-hook': { type: 'string', multiple: true },
        'nft-mark': { type: 'string' },
        'nft-channel': { type: 'string' },
        'log-level': { type: 'string' },
        check: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    throw new FcpdConfigError('(flags)', (e as Error).message);
  }
  const v = parsed.values;
  let file: Record<string, unknown> = {};
  if (v.config !== undefined) {
    let text: string;
    try {
      text = readFile(v.config, 'utf8');
    } catch (e) {
      throw new FcpdConfigError('--config', `cannot read ${v.config}: ${(e as Error).message}`);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      throw new FcpdConfigError(
        '--config',
        `${v.config} is not valid JSON: ${(e as Error).message}`,
      );
    }
    file = validateFcpdConfig(json) as Record<string, unknown>;
  }
  const flags: Record<string, unknown> = {};
  const pem = (flag: string, path: string | undefined): string | undefined => {
    if (path === undefined) return undefined;
    let text: string;
    try {
      text = readFile(path, 'utf8');
    } catch (e) {
      throw new FcpdConfigError(flag, `cannot read ${path}: ${(e as Error).message}`);
    }
    if (!text.includes('-----BEGIN ')) throw new FcpdConfigError(flag, `${path} is not PEM`);
    return text;
  };
  const cert = pem('--tls-cert', v['tls-cert']);
  const key = pem('--tls-key', v['tls-key']);
  const ca = pem('--tls-ca', v['tls-ca']);
  const wantsTls = (v.listen ?? []).some((l) => l.startsWith('tls:'));
  if (wantsTls && (cert === undefined || key === undefined)) {
    throw new FcpdConfigError(
      cert === undefined ? '--tls-cert' : '--tls-key',
      'a tls: listener needs --tls-cert and --tls-key',
    );
  }
  if (!wantsTls && (cert ?? key ?? ca) !== undefined) {
    throw new FcpdConfigError('--tls-cert', 'TLS files given but no --listen tls:ADDR:PORT');
  }
  const tls = cert !== undefined && key !== undefined ? { cert, key, ca } : undefined;
  if (v.listen) flags.listen = v.listen.map((l) => listener(l, '--listen', tls));
  if (v.backend !== undefined) {
    if (v.backend !== 'nftables' && v.backend !== 'memory') {
      throw new FcpdConfigError('--backend', 'must be nftables or memory');
    }
    flags.backend = v.backend;
  }
  if (v.protected) flags.protected = v.protected.map((p) => checkCidr(p, '--protected'));
  if (v['allow-client']) {
    flags.allowClients = v['allow-client'].map((p) => checkCidr(p, '--allow-client'));
  }
  if (v['media-ports'] !== undefined) {
    flags.mediaPorts = parsePortRange(v['media-ports'], '--media-ports');
  }
  if (v.metrics !== undefined) {
    const e = parseEndpoint(v.metrics, '--metrics', ['tcp']);
    flags.metrics = { host: e.host, port: e.port };
  }
  if (v['log-level'] !== undefined) {
    if (!LOG_LEVELS.has(v['log-level'])) {
      throw new FcpdConfigError('--log-level', `must be one of ${[...LOG_LEVELS].join(', ')}`);
    }
    flags.logLevel = v['log-level'];
  }
  const nft: Record<string, unknown> = { ...((file.nft as object | undefined) ?? {}) };
  if (v['nft-mode'] !== undefined) {
    if (v['nft-mode'] !== 'standalone' && v['nft-mode'] !== 'mark') {
      throw new FcpdConfigError('--nft-mode', 'must be standalone or mark');
    }
    nft.mode = v['nft-mode'];
  }
  if (v['nft-table'] !== undefined) {
    const name = v['nft-table'].replace(/^inet\s+/, '');
    if (!/^[A-Za-z][A-Za-z0-9_]{0,30}$/.test(name)) {
      throw new FcpdConfigError('--nft-table', 'must be a table name like pinhole (family inet)');
    }
    nft.table = name;
  }
  if (v['nft-hook']) {
    const hooks = v['nft-hook'];
    if (!hooks.every((h) => h === 'forward' || h === 'input')) {
      throw new FcpdConfigError('--nft-hook', 'must be forward or input');
    }
    nft.hooks = [...new Set(hooks)];
  }
  if (v['nft-mark'] !== undefined) nft.mark = parseMark(v['nft-mark'], '--nft-mark');
  if (v['nft-channel'] !== undefined) {
    if (v['nft-channel'] !== 'netlink' && v['nft-channel'] !== 'cli') {
      throw new FcpdConfigError('--nft-channel', 'must be netlink or cli');
    }
    nft.channel = v['nft-channel'];
  }
  const config = { ...file, ...flags, ...(Object.keys(nft).length > 0 ? { nft } : {}) };
  return { config: config, help: v.help === true, check: v.check === true };
}
