/**
 * A firewall backend that enforces nothing: it remembers the rules it was given, so the server
 * core and the daemon's `--backend memory` run without root. `enforces` is false; the daemon must
 * say so at start. Optionally it can keep its state across server instances (tests of restart
 * adoption) by reusing one MemoryBackend object, and it can inject failures and latency.
 */
import type { FirewallBackend, FirewallRule, InstalledRule, RuleMeta } from './backend.js';

export interface MemoryBackendOptions {
  /** Delay every install/remove by this many ms (simulates a kernel round trip). Default 0. */
  readonly latencyMs?: number | undefined;
  /** Return a reason to declare a rule inexpressible (the server answers 501). */
  readonly unsupported?: ((rule: FirewallRule) => string | undefined) | undefined;
  /** Clock for remaining-lifetime bookkeeping. Default `Date.now`. */
  readonly now?: (() => number) | undefined;
}

interface Stored {
  readonly rule: FirewallRule;
  readonly meta: RuleMeta;
  /** Absolute expiry (ms) as the firewall would apply it, or undefined = never. */
  readonly expiresAt: number | undefined;
}

export class MemoryBackend implements FirewallBackend {
  readonly name = 'memory';
  readonly enforces = false;
  readonly #rules = new Map<string, Stored>();
  readonly #latencyMs: number;
  readonly #unsupported: ((rule: FirewallRule) => string | undefined) | undefined;
  readonly #now: () => number;
  /** Set to make the next install/remove calls reject (tests of 500 handling). */
  failNext = 0;
  installs = 0;
  removes = 0;

  constructor(options: MemoryBackendOptions = {}) {
    this.#latencyMs = options.latencyMs ?? 0;
    this.#unsupported = options.unsupported;
    this.#now = options.now ?? Date.now;
  }

  unsupported(rule: FirewallRule): string | undefined {
    return this.#unsupported?.(rule);
  }

  open(): Promise<readonly InstalledRule[]> {
    const now = this.#now();
    const out: InstalledRule[] = [];
    for (const [key, s] of this.#rules) {
      if (s.expiresAt !== undefined && s.expiresAt <= now) {
        this.#rules.delete(key);
        continue;
      }
      out.push({
        rule: s.rule,
        meta: s.meta,
        remainingMs: s.expiresAt === undefined ? undefined : s.expiresAt - now,
      });
    }
    return Promise.resolve(out);
  }

  async install(rule: FirewallRule, meta: RuleMeta): Promise<void> {
    await this.#delay();
    this.#maybeFail('install');
    this.installs++;
    const expiresAt = meta.timerSec === 0 ? undefined : this.#now() + meta.timerSec * 1000;
    this.#rules.set(rule.key, { rule, meta, expiresAt });
  }

  async remove(rule: FirewallRule): Promise<void> {
    await this.#delay();
    this.#maybeFail('remove');
    this.removes++;
    this.#rules.delete(rule.key);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /** Number of rules held (expired ones included until the next `open`). */
  get size(): number {
    return this.#rules.size;
  }

  has(key: string): boolean {
    return this.#rules.has(key);
  }

  /** A snapshot of what the "firewall" holds. */
  rules(): FirewallRule[] {
    return [...this.#rules.values()].map((s) => s.rule);
  }

  #maybeFail(op: string): void {
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error(`memory backend: injected ${op} failure`);
    }
  }

  #delay(): Promise<void> {
    return this.#latencyMs > 0
      ? new Promise((r) => setTimeout(r, this.#latencyMs))
      : Promise.resolve();
  }
}
