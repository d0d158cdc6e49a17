/**
 * Static routing: where a request goes when the location service has no binding for it. A number
 * prefix (longest wins) beats a domain (exact, then the closest parent domain), which beats the
 * default next hop.
 */
import type { RouteRule } from './config.js';

/** What routing needs from a Request-URI (a subset of @pinhole/sip's `SipUri`). */
export interface RoutableUri {
  readonly scheme: string;
  readonly user: string | undefined;
  readonly host: string;
}

/** Visual separators RFC 3966 allows inside a telephone number. */
const VISUAL_SEPARATORS = /[-.()\s]/g;

/** The dialled number of a URI: the `tel:` number or a `sip:` user that looks like one. */
export function dialledNumber(uri: RoutableUri): string | undefined {
  const raw = uri.scheme === 'tel' ? (uri.user ?? uri.host) : uri.user;
  if (raw === undefined) return undefined;
  // `sip:+4930123;phone-context=…@host`: the number ends at the first parameter.
  const digits = raw.split(';')[0]!.replace(VISUAL_SEPARATORS, '');
  return /^\+?[0-9*#]+$/.test(digits) ? digits : undefined;
}

export class StaticRouter {
  readonly #prefixes: RouteRule[];
  readonly #domains: Map<string, RouteRule>;
  readonly #default: RouteRule | undefined;

  constructor(rules: readonly RouteRule[]) {
    this.#prefixes = rules
      .filter((r) => r.kind === 'prefix')
      .sort((a, b) => b.match.length - a.match.length);
    this.#domains = new Map();
    for (const r of rules) {
      if (r.kind === 'domain' && !this.#domains.has(r.match)) this.#domains.set(r.match, r);
    }
    this.#default = rules.find((r) => r.kind === 'default');
  }

  /** The rule for this Request-URI, or undefined when nothing (not even a default) applies. */
  lookup(uri: RoutableUri): RouteRule | undefined {
    const number = dialledNumber(uri);
    if (number !== undefined) {
      for (const r of this.#prefixes) if (number.startsWith(r.match)) return r;
    }
    if (uri.scheme !== 'tel') {
      let host = uri.host.toLowerCase();
      for (let i = 0; i < 16; i++) {
        const r = this.#domains.get(host);
        if (r) return r;
        const dot = host.indexOf('.');
        if (dot < 0) break;
        host = host.slice(dot + 1);
      }
    }
    return this.#default;
  }

  get hasDefault(): boolean {
    return this.#default !== undefined;
  }
}
