/**
 * RFC 3261 §10.3 registrar with an in-memory location service. Pure with respect to SIP messages:
 * the proxy extracts a `RegisterRequest`, this module decides, and the proxy writes the response.
 * The clock is injected.
 */

export interface RegisterContact {
  /** The contact URI as written (without `<>`). */
  readonly uri: string;
  /** `expires` contact parameter, seconds. */
  readonly expires: number | undefined;
  /** `q` parameter, 0..1. */
  readonly q: number | undefined;
}

export interface RegisterRequest {
  /** Address of record, canonical (`sip:alice@example.com`). */
  readonly aor: string;
  readonly contacts: readonly RegisterContact[];
  /** `Contact: *`. */
  readonly star: boolean;
  /** The Expires header, seconds. */
  readonly expires: number | undefined;
  readonly callId: string;
  readonly cseq: number;
  /** Where the REGISTER came from (for NAT: the flow to reach the contact). */
  readonly source: { readonly transport: string; readonly address: string; readonly port: number };
}

export interface Binding {
  readonly uri: string;
  readonly q: number;
  readonly callId: string;
  readonly cseq: number;
  /** Epoch milliseconds at which the binding lapses. */
  readonly expiresAt: number;
  readonly source: RegisterRequest['source'];
}

export type RegisterResult =
  | {
      readonly status: 200;
      /** Every binding of the AOR after the update, with the seconds left. */
      readonly bindings: readonly { readonly uri: string; readonly expires: number }[];
    }
  | { readonly status: 400 | 500; readonly reason: string }
  /** RFC 3261 §10.3 item 7: Interval Too Brief, with the Min-Expires to put in the answer. */
  | { readonly status: 423; readonly reason: string; readonly minExpires: number };

export interface RegistrarOptions {
  readonly minExpires: number;
  readonly maxExpires: number;
  readonly defaultExpires: number;
  readonly maxContacts: number;
  /** Upper bound on AORs held (memory safety). */
  readonly maxAors?: number;
  readonly now?: () => number;
}

/** Canonical AOR of a To URI: scheme, user and host, lower-cased host, no port or parameters. */
export function canonicalAor(scheme: string, user: string | undefined, host: string): string {
  const h = host.includes(':') ? `[${host.toLowerCase()}]` : host.toLowerCase();
  return user === undefined
    ? `${scheme.toLowerCase()}:${h}`
    : `${scheme.toLowerCase()}:${user}@${h}`;
}

/** Contact URIs compare case-insensitively here (RFC 3261 §19.1.4 is finer; see README). */
function contactKey(uri: string): string {
  return uri.toLowerCase();
}

export class Registrar {
  readonly #opts: Required<RegistrarOptions>;
  readonly #aors = new Map<string, Map<string, Binding>>();
  /** AORs that once had a binding: a request for them answers 480, not 404, when none is left. */
  readonly #known = new Set<string>();

  constructor(opts: RegistrarOptions) {
    this.#opts = { maxAors: 100_000, now: Date.now, ...opts };
  }

  /** Applies a REGISTER (RFC 3261 §10.3 steps 6–8). */
  register(req: RegisterRequest): RegisterResult {
    const now = this.#opts.now();
    this.#purge(req.aor, now);
    const current = this.#aors.get(req.aor);
    if (req.star) {
      // §10.3 item 6: "*" is allowed only with Expires: 0 and as the only Contact.
      if (req.contacts.length > 0 || req.expires !== 0) {
        return { status: 400, reason: 'Contact "*" needs Expires: 0 and no other Contact' };
      }
      if (current) {
        for (const b of current.values()) {
          if (b.callId === req.callId && req.cseq <= b.cseq) {
            return { status: 500, reason: 'Out of order CSeq' };
          }
        }
        this.#aors.delete(req.aor);
      }
      return { status: 200, bindings: [] };
    }
    const updates: { key: string; uri: string; q: number; expires: number }[] = [];
    for (const c of req.contacts) {
      let expires = c.expires ?? req.expires ?? this.#opts.defaultExpires;
      // §10.3 item 7: a non-zero duration below the minimum answers 423 with Min-Expires.
      if (expires !== 0 && expires < this.#opts.minExpires) {
        return {
          status: 423,
          reason: 'Interval Too Brief',
          minExpires: this.#opts.minExpires,
        };
      }
      if (expires > this.#opts.maxExpires) expires = this.#opts.maxExpires;
      if (c.q !== undefined && !(c.q >= 0 && c.q <= 1)) {
        return { status: 400, reason: `Bad q value on ${c.uri}` };
      }
      updates.push({ key: contactKey(c.uri), uri: c.uri, q: c.q ?? 1, expires });
    }
    const next = new Map(current ?? []);
    for (const u of updates) {
      const old = next.get(u.key);
      // §10.3 item 8: same Call-ID needs a higher CSeq, else the update fails.
      if (old && old.callId === req.callId && req.cseq <= old.cseq) {
        return { status: 500, reason: 'Out of order CSeq' };
      }
      if (u.expires === 0) {
        next.delete(u.key);
      } else {
        next.set(u.key, {
          uri: u.uri,
          q: u.q,
          callId: req.callId,
          cseq: req.cseq,
          expiresAt: now + u.expires * 1000,
          source: req.source,
        });
      }
    }
    if (next.size > this.#opts.maxContacts) {
      return { status: 400, reason: `More than ${this.#opts.maxContacts} contacts` };
    }
    if (next.size === 0) {
      this.#aors.delete(req.aor);
    } else {
      if (!this.#aors.has(req.aor) && this.#aors.size >= this.#opts.maxAors) {
        return { status: 500, reason: 'Location service full' };
      }
      this.#aors.set(req.aor, next);
      this.#known.add(req.aor);
    }
    return { status: 200, bindings: this.#list(next, now) };
  }

  /** Current bindings of an AOR, highest q first (targets for parallel forking). */
  lookup(aor: string): Binding[] {
    const now = this.#opts.now();
    this.#purge(aor, now);
    const m = this.#aors.get(aor);
    if (!m) return [];
    return [...m.values()].sort((a, b) => b.q - a.q);
  }

  /** Whether this AOR has ever registered (404 vs 480 when no binding is left). */
  known(aor: string): boolean {
    return this.#known.has(aor);
  }

  /** Bindings of an AOR as REGISTER returns them, without changing anything. */
  fetch(aor: string): { uri: string; expires: number }[] {
    const now = this.#opts.now();
    this.#purge(aor, now);
    const m = this.#aors.get(aor);
    return m ? this.#list(m, now) : [];
  }

  /** Live bindings across every AOR (for the metrics gauge). */
  get size(): number {
    let n = 0;
    for (const m of this.#aors.values()) n += m.size;
    return n;
  }

  /** Drops every expired binding; call now and then (the proxy does every few seconds). */
  sweep(): void {
    const now = this.#opts.now();
    for (const aor of [...this.#aors.keys()]) this.#purge(aor, now);
  }

  #purge(aor: string, now: number): void {
    const m = this.#aors.get(aor);
    if (!m) return;
    for (const [k, b] of m) if (b.expiresAt <= now) m.delete(k);
    if (m.size === 0) this.#aors.delete(aor);
  }

  #list(m: ReadonlyMap<string, Binding>, now: number): { uri: string; expires: number }[] {
    return [...m.values()].map((b) => ({
      uri: b.uri,
      expires: Math.max(0, Math.round((b.expiresAt - now) / 1000)),
    }));
  }
}
