/**
 * Policy configuration: what a deployment may say, the defaults, and validation whose errors name
 * the field. `validateConfig` takes `unknown` (a parsed config file) and never throws;
 * `resolveConfig` throws a `PolicyError` with code `POLICY_ERR_CONFIG` for programmatic use.
 */
import { PolicyError, PolicyErrorCode, type ConfigIssue } from './errors.js';
import { ipv4Bounds, parseIp, parseNetwork, type IpAddress, type IpNetwork } from './ip.js';

/** Who may send through a hole (see README, "Source policy"). */
export type SourcePolicy = 'any' | 'sdp' | 'contact' | 'signalling';
/** When holes open: once the answer is known (default), or already on the offer with a short TIMER. */
export type OpenOn = 'answer' | 'offer';
/** Close a dialog's holes when its BYE passes (`request`) or when the BYE is answered (`response`). */
export type CloseOnBye = 'request' | 'response';
/**
 * RFC 4028 handling: `observe` reads what the user agents negotiate; `insert` also adds
 * Session-Expires to INVITEs without one (§8.1) and to 2xx whose UAS ignored it while the UAC
 * supports timers (§8.2); `require` additionally refuses INVITEs from user agents without timer
 * support (421 with `Require: timer`).
 */
export type SessionTimerMode = 'observe' | 'insert' | 'require';
export type MediaProtocol = 'udp' | 'tcp';
/** What to do when the source policy names a source that is unknown or unusable. */
export type SourceFallback = 'any' | 'refuse';

/** The configuration as written by a user: everything but the protected networks is optional. */
export interface PolicyConfigInput {
  /** Networks behind the firewall (CIDR, IPv4 or IPv6). Holes only ever point into these. */
  readonly protectedNetworks: readonly string[];
  /** The firewall's own addresses: never a hole destination. */
  readonly firewallAddresses?: readonly string[];
  /** Allowed destination ports, inclusive (default 1024..65535). */
  readonly ports?: { readonly min?: number; readonly max?: number };
  /** Allowed transport protocols of holes (default `['udp']`). */
  readonly protocols?: readonly MediaProtocol[];
  /** Default `any`. */
  readonly source?: SourcePolicy;
  /** Default `any`: an unknown source leaves the hole open to any sender. */
  readonly sourceFallback?: SourceFallback;
  /** Prefix length applied to a source address (default 32 for IPv4, 128 for IPv6). */
  readonly sourcePrefix?: { readonly ipv4?: number; readonly ipv6?: number };
  /** Default `answer`. */
  readonly openOn?: OpenOn;
  /** TIMER of a hole opened on an offer before its answer (default 32 s). */
  readonly offerTimerSec?: number;
  /** TIMER of early-media holes before the 2xx (default 300 s; refreshed by later 18x). */
  readonly earlyTimerSec?: number;
  /** TIMER of an established call without negotiated session timers (default 14400 s). */
  readonly maxCallLifetimeSec?: number;
  /** Added to the negotiated session interval to make the TIMER (default 32 s). */
  readonly sessionTimerMarginSec?: number;
  /** Upper bound of any TIMER sent (default 86400 s). */
  readonly maxTimerSec?: number;
  /** Default `request`. */
  readonly closeOnBye?: CloseOnBye;
  readonly sessionTimer?: {
    /** Default `observe`. */
    readonly mode?: SessionTimerMode;
    /** Session-Expires inserted into INVITEs without one (default 1800 s). */
    readonly intervalSec?: number;
    /** This hop's Min-SE: requests below it are answered 422 when they support timers (default 90 s). */
    readonly minSESec?: number;
  };
  /** Media streams (m-lines) pinholed per call (default 8). */
  readonly maxStreamsPerCall?: number;
  /** Holes per dialog (default 32). */
  readonly maxHolesPerDialog?: number;
  /** Calls tracked at once; new calls beyond are refused (default 100000). */
  readonly maxCalls?: number;
}

/** The validated configuration with every default applied and every address parsed. */
export interface PolicyConfig {
  readonly protectedNetworks: readonly IpNetwork[];
  readonly firewallAddresses: readonly IpAddress[];
  /** Network and directed-broadcast addresses of protected IPv4 networks (prefix ≤ 30). */
  readonly broadcastAddresses: readonly IpAddress[];
  readonly ports: { readonly min: number; readonly max: number };
  readonly protocols: readonly MediaProtocol[];
  readonly source: SourcePolicy;
  readonly sourceFallback: SourceFallback;
  readonly sourcePrefix: { readonly ipv4: number; readonly ipv6: number };
  readonly openOn: OpenOn;
  readonly offerTimerSec: number;
  readonly earlyTimerSec: number;
  readonly maxCallLifetimeSec: number;
  readonly sessionTimerMarginSec: number;
  readonly maxTimerSec: number;
  readonly closeOnBye: CloseOnBye;
  readonly sessionTimer: {
    readonly mode: SessionTimerMode;
    readonly intervalSec: number;
    readonly minSESec: number;
  };
  readonly maxStreamsPerCall: number;
  readonly maxHolesPerDialog: number;
  readonly maxCalls: number;
}

export const DEFAULTS = {
  ports: { min: 1024, max: 65535 },
  protocols: ['udp'] as readonly MediaProtocol[],
  source: 'any' as SourcePolicy,
  sourceFallback: 'any' as SourceFallback,
  sourcePrefix: { ipv4: 32, ipv6: 128 },
  openOn: 'answer' as OpenOn,
  offerTimerSec: 32,
  earlyTimerSec: 300,
  maxCallLifetimeSec: 14400,
  sessionTimerMarginSec: 32,
  maxTimerSec: 86400,
  closeOnBye: 'request' as CloseOnBye,
  sessionTimer: { mode: 'observe' as SessionTimerMode, intervalSec: 1800, minSESec: 90 },
  maxStreamsPerCall: 8,
  maxHolesPerDialog: 32,
  maxCalls: 100000,
} as const;

export type ConfigResult =
  | { readonly ok: true; readonly config: PolicyConfig }
  | { readonly ok: false; readonly errors: readonly ConfigIssue[] };

const TOP_LEVEL_KEYS = new Set([
  'protectedNetworks',
  'firewallAddresses',
  'ports',
  'protocols',
  'source',
  'sourceFallback',
  'sourcePrefix',
  'openOn',
  'offerTimerSec',
  'earlyTimerSec',
  'maxCallLifetimeSec',
  'sessionTimerMarginSec',
  'maxTimerSec',
  'closeOnBye',
  'sessionTimer',
  'maxStreamsPerCall',
  'maxHolesPerDialog',
  'maxCalls',
]);

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Validates a configuration object (e.g. parsed JSON). Every problem is reported with its field. */
export function validateConfig(input: unknown): ConfigResult {
  const errors: ConfigIssue[] = [];
  const err = (field: string, message: string): void => {
    errors.push({ field, message });
  };
  if (!isRecord(input)) {
    return { ok: false, errors: [{ field: '', message: 'configuration must be an object' }] };
  }
  for (const k of Object.keys(input)) if (!TOP_LEVEL_KEYS.has(k)) err(k, 'unknown field');

  const int = (field: string, v: unknown, def: number, min: number, max: number): number => {
    if (v === undefined) return def;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      err(field, `must be an integer in ${min}..${max}`);
      return def;
    }
    return v;
  };
  const oneOf = <T extends string>(field: string, v: unknown, def: T, allowed: readonly T[]): T => {
    if (v === undefined) return def;
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
      err(field, `must be one of ${allowed.map((a) => `"${a}"`).join(', ')}`);
      return def;
    }
    return v as T;
  };
  const strings = (field: string, v: unknown): string[] => {
    if (v === undefined) return [];
    if (!Array.isArray(v)) {
      err(field, 'must be an array of strings');
      return [];
    }
    const out: string[] = [];
    v.forEach((s: unknown, i) => {
      if (typeof s !== 'string') err(`${field}[${i}]`, 'must be a string');
      else out.push(s);
    });
    return out;
  };

  // Protected networks: required and non-empty, or no hole could ever be opened.
  const protectedNetworks: IpNetwork[] = [];
  if (input.protectedNetworks === undefined) {
    err('protectedNetworks', 'is required (the networks behind the firewall)');
  } else {
    const list = strings('protectedNetworks', input.protectedNetworks);
    if (Array.isArray(input.protectedNetworks) && list.length === 0 && errors.length === 0) {
      err('protectedNetworks', 'must list at least one network');
    }
    list.forEach((s, i) => {
      const r = parseNetwork(s);
      if (!r.ok) err(`protectedNetworks[${i}]`, r.reason);
      else if (r.network.prefix === 0) {
        err(`protectedNetworks[${i}]`, 'a /0 network would make every address protected');
      } else protectedNetworks.push(r.network);
    });
  }

  const firewallAddresses: IpAddress[] = [];
  strings('firewallAddresses', input.firewallAddresses).forEach((s, i) => {
    const a = parseIp(s);
    if (!a) err(`firewallAddresses[${i}]`, `"${s}" is not an IPv4 or IPv6 address`);
    else firewallAddresses.push(a);
  });

  let ports: { min: number; max: number } = { ...DEFAULTS.ports };
  if (input.ports !== undefined) {
    if (!isRecord(input.ports)) err('ports', 'must be an object { min, max }');
    else {
      for (const k of Object.keys(input.ports)) {
        if (k !== 'min' && k !== 'max') err(`ports.${k}`, 'unknown field');
      }
      const min = int('ports.min', input.ports.min, DEFAULTS.ports.min, 1, 65535);
      const max = int('ports.max', input.ports.max, DEFAULTS.ports.max, 1, 65535);
      if (min > max) err('ports', `min (${min}) must not exceed max (${max})`);
      ports = { min, max };
    }
  }

  let protocols: MediaProtocol[] = [...DEFAULTS.protocols];
  if (input.protocols !== undefined) {
    const list = strings('protocols', input.protocols);
    protocols = [];
    list.forEach((p, i) => {
      if (p !== 'udp' && p !== 'tcp') err(`protocols[${i}]`, 'must be "udp" or "tcp"');
      else if (!protocols.includes(p)) protocols.push(p);
    });
  }

  const source = oneOf('source', input.source, DEFAULTS.source, [
    'any',
    'sdp',
    'contact',
    'signalling',
  ]);
  const sourceFallback = oneOf('sourceFallback', input.sourceFallback, DEFAULTS.sourceFallback, [
    'any',
    'refuse',
  ]);
  let sourcePrefix: { ipv4: number; ipv6: number } = { ...DEFAULTS.sourcePrefix };
  if (input.sourcePrefix !== undefined) {
    if (!isRecord(input.sourcePrefix)) err('sourcePrefix', 'must be an object { ipv4, ipv6 }');
    else {
      for (const k of Object.keys(input.sourcePrefix)) {
        if (k !== 'ipv4' && k !== 'ipv6') err(`sourcePrefix.${k}`, 'unknown field');
      }
      sourcePrefix = {
        ipv4: int('sourcePrefix.ipv4', input.sourcePrefix.ipv4, 32, 8, 32),
        ipv6: int('sourcePrefix.ipv6', input.sourcePrefix.ipv6, 128, 16, 128),
      };
    }
  }
  const openOn = oneOf('openOn', input.openOn, DEFAULTS.openOn, ['answer', 'offer']);
  const maxTimerSec = int('maxTimerSec', input.maxTimerSec, DEFAULTS.maxTimerSec, 1, 1_000_000);
  const offerTimerSec = int(
    'offerTimerSec',
    input.offerTimerSec,
    DEFAULTS.offerTimerSec,
    1,
    1_000_000,
  );
  const earlyTimerSec = int(
    'earlyTimerSec',
    input.earlyTimerSec,
    DEFAULTS.earlyTimerSec,
    1,
    1_000_000,
  );
  const maxCallLifetimeSec = int(
    'maxCallLifetimeSec',
    input.maxCallLifetimeSec,
    DEFAULTS.maxCallLifetimeSec,
    1,
    1_000_000,
  );
  const sessionTimerMarginSec = int(
    'sessionTimerMarginSec',
    input.sessionTimerMarginSec,
    DEFAULTS.sessionTimerMarginSec,
    0,
    3600,
  );
  for (const [field, v] of [
    ['offerTimerSec', offerTimerSec],
    ['earlyTimerSec', earlyTimerSec],
    ['maxCallLifetimeSec', maxCallLifetimeSec],
  ] as const) {
    if (v > maxTimerSec) err(field, `must not exceed maxTimerSec (${maxTimerSec})`);
  }
  const closeOnBye = oneOf('closeOnBye', input.closeOnBye, DEFAULTS.closeOnBye, [
    'request',
    'response',
  ]);

  let sessionTimer: { mode: SessionTimerMode; intervalSec: number; minSESec: number } = {
    ...DEFAULTS.sessionTimer,
  };
  if (input.sessionTimer !== undefined) {
    if (!isRecord(input.sessionTimer)) err('sessionTimer', 'must be an object');
    else {
      const st = input.sessionTimer;
      for (const k of Object.keys(st)) {
        if (k !== 'mode' && k !== 'intervalSec' && k !== 'minSESec') {
          err(`sessionTimer.${k}`, 'unknown field');
        }
      }
      // RFC 4028 §4: Min-SE "MUST NOT be less than 90 seconds".
      const minSESec = int('sessionTimer.minSESec', st.minSESec, 90, 90, 1_000_000);
      const intervalSec = int('sessionTimer.intervalSec', st.intervalSec, 1800, 90, 1_000_000);
      if (intervalSec < minSESec) {
        err('sessionTimer.intervalSec', `must not be below sessionTimer.minSESec (${minSESec})`);
      }
      sessionTimer = {
        mode: oneOf('sessionTimer.mode', st.mode, DEFAULTS.sessionTimer.mode, [
          'observe',
          'insert',
          'require',
        ]),
        intervalSec,
        minSESec,
      };
    }
  }

  const maxStreamsPerCall = int(
    'maxStreamsPerCall',
    input.maxStreamsPerCall,
    DEFAULTS.maxStreamsPerCall,
    1,
    256,
  );
  const maxHolesPerDialog = int(
    'maxHolesPerDialog',
    input.maxHolesPerDialog,
    DEFAULTS.maxHolesPerDialog,
    1,
    4096,
  );
  const maxCalls = int('maxCalls', input.maxCalls, DEFAULTS.maxCalls, 1, 10_000_000);

  if (errors.length > 0) return { ok: false, errors };

  const broadcastAddresses: IpAddress[] = [];
  for (const n of protectedNetworks) {
    if (n.address.family === 4 && n.prefix <= 30) {
      const b = ipv4Bounds(n);
      if (b) broadcastAddresses.push(b[0], b[1]);
    }
  }
  return {
    ok: true,
    config: {
      protectedNetworks,
      firewallAddresses,
      broadcastAddresses,
      ports,
      protocols,
      source,
      sourceFallback,
      sourcePrefix,
      openOn,
      offerTimerSec,
      earlyTimerSec,
      maxCallLifetimeSec,
      sessionTimerMarginSec,
      maxTimerSec,
      closeOnBye,
      sessionTimer,
      maxStreamsPerCall,
      maxHolesPerDialog,
      maxCalls,
    },
  };
}

/** Like `validateConfig`, but throws `PolicyError` (`POLICY_ERR_CONFIG`) listing every issue. */
export function resolveConfig(input: unknown): PolicyConfig {
  const r = validateConfig(input);
  if (r.ok) return r.config;
  const text = r.errors.map((e) => `${e.field || '(root)'}: ${e.message}`).join('; ');
  throw new PolicyError(PolicyErrorCode.config, `invalid policy configuration: ${text}`, {
    issues: r.errors,
  });
}
