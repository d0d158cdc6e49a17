/**
 * NftablesBackend: holes as elements of nftables sets with per-element timeouts, in one table the
 * daemon owns (default `inet pinhole`). See nft-ruleset.ts for the table layout and README.md for
 * the two modes.
 *
 * Concurrency: install/remove calls are queued; whenever the channel to nft is idle, everything
 * queued becomes ONE transaction. If that transaction fails, the operations are retried in their
 * always-valid form, bisected until the failing ones stand alone, so one bad rule never fails its
 * neighbours.
 */
import { execFile } from 'node:child_process';
import type {
  FirewallBackend,
  FirewallRule,
  InstalledRule,
  PortRange,
  RuleMeta,
} from '@pinhole/fcp';
import { NftChannel, NftError } from './nft-channel.js';
import {
  MAX_COMMENT,
  adoptElements,
  allWantedChains,
  elementText,
  encodeComment,
  parseListing,
  ruleElements,
  setupScript,
  unsupportedReason,
  type NftHook,
  type NftMode,
} from './nft-ruleset.js';

export interface BackendLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface NftablesBackendOptions {
  /** Table name in family inet; default `pinhole`. */
  readonly table?: string | undefined;
  /** Default `standalone`. */
  readonly mode?: NftMode | undefined;
  /** Hooks to gate or mark; default `['forward']`. */
  readonly hooks?: readonly NftHook[] | undefined;
  /** Protected networks in CIDR notation (standalone mode gates traffic toward them). */
  readonly protected: readonly string[];
  /** Destination ports gated in standalone mode; default 1024-65535. */
  readonly mediaPorts?: PortRange | undefined;
  /** Mark bits set in `mark` mode; default 0x00100000. */
  readonly mark?: number | undefined;
  /** How to run nft; default `['nft']`. */
  readonly nftCommand?: readonly string[] | undefined;
  /** Most operations in one transaction; default 4000. */
  readonly maxBatch?: number | undefined;
  readonly logger?: BackendLogger | undefined;
  /** Called after every transaction with its size and duration (metrics). */
  readonly onTransaction?: ((ops: number, ms: number, ok: boolean) => void) | undefined;
  /** Wall clock (ms); injectable for tests. */
  readonly now?: (() => number) | undefined;
}

export const DEFAULT_MARK = 0x00100000;

interface Op {
  readonly kind: 'install' | 'remove';
  readonly rule: FirewallRule;
  readonly meta: RuleMeta | undefined;
  /** The short form assumes the kernel state we believe in; the safe form works in any state. */
  readonly fast: string;
  readonly safe: string;
  readonly resolve: () => void;
  readonly reject: (e: Error) => void;
}

export class NftablesBackend implements FirewallBackend {
  readonly name = 'nftables';
  readonly enforces = true;
  readonly table: string;
  readonly mode: NftMode;
  readonly #o: NftablesBackendOptions;
  readonly #channel: NftChannel;
  readonly #argv: readonly string[];
  readonly #now: () => number;
  /** Rules we believe the kernel holds, with their expiry (ms, Infinity = never). */
  readonly #present = new Map<string, number>();
  #queue: Op[] = [];
  #flushing = false;
  #opened = false;
  #closed = false;
  #idle: (() => void)[] = [];

  constructor(o: NftablesBackendOptions) {
    this.#o = o;
    this.table = o.table ?? 'pinhole';
    this.mode = o.mode ?? 'standalone';
    if (!/^[A-Za-z][A-Za-z0-9_]{0,30}$/.test(this.table)) {
      throw new NftError(`invalid nft table name: ${this.table}`);
    }
    this.#argv = o.nftCommand ?? ['nft'];
    this.#channel = new NftChannel({ argv: this.#argv });
    this.#now = o.now ?? Date.now;
  }

  unsupported(rule: FirewallRule): string | undefined {
    return unsupportedReason(rule);
  }

  /** `nft -j -n list table` once, as a separate short-lived process (start-up only). `-n` skips
   * the protocol-name lookup per element (a third of the listing's system time). */
  #list(): Promise<string | undefined> {
    const [cmd, ...args] = this.#argv;
    return new Promise((resolve, reject) => {
      execFile(
        cmd ?? 'nft',
        [...args, '-j', '-n', 'list', 'table', 'inet', this.table],
        { maxBuffer: 1 << 30 },
        (err, stdout, stderr) => {
          if (!err) return resolve(stdout);
          if (/No such file or directory/.test(stderr)) return resolve(undefined);
          reject(new NftError(`nft list table failed: ${stderr.trim() || err.message}`));
        },
      );
    });
  }

  async open(): Promise<readonly InstalledRule[]> {
    if (this.#opened) throw new NftError('backend already opened');
    const started = performance.now();
    const before = await this.#list();
    const listing = before === undefined ? { chains: [], elements: [] } : parseListing(before);
    const now = this.#now();
    const { rules, foreign } = adoptElements(listing.elements, now);
    if (foreign.length > 0) {
      this.#o.logger?.warn(
        { table: this.table, count: foreign.length },
        'elements without a pinhole comment in the owned sets were left alone',
      );
    }
    const ruleset = {
      table: this.table,
      mode: this.mode,
      hooks: this.#o.hooks ?? ['forward'],
      protected: this.#o.protected,
      mediaPorts: this.#o.mediaPorts ?? [1024, 65535],
      mark: this.#o.mark ?? DEFAULT_MARK,
    } as const;
    await this.#channel.exec(setupScript(ruleset, listing.chains));
    for (const r of rules) {
      this.#present.set(r.rule.key, r.remainingMs === undefined ? Infinity : now + r.remainingMs);
    }
    this.#opened = true;
    this.#o.logger?.info(
      {
        table: `inet ${this.table}`,
        mode: this.mode,
        adopted: rules.length,
        chains: allWantedChains(ruleset),
        ms: Math.round(performance.now() - started),
      },
      'nftables table ready',
    );
    return rules;
  }

  install(rule: FirewallRule, meta: RuleMeta): Promise<void> {
    const why = unsupportedReason(rule);
    if (why !== undefined) return Promise.reject(new NftError(why));
    const { set, keys } = ruleElements(rule);
    const now = this.#now();
    const expiresAt = meta.timerSec > 0 ? now + meta.timerSec * 1000 : undefined;
    const comment = encodeComment({
      owner: meta.owner,
      timerSec: meta.timerSec,
      expiresAt,
      srcPorts: rule.srcPorts,
      dstPorts: rule.dstPorts,
    });
    if (comment.length > MAX_COMMENT) {
      return Promise.reject(new NftError('owner too long to store in an nft comment'));
    }
    const t = `inet ${this.table} ${set}`;
    const add = `add element ${t} { ${keys.map((k) => elementText(k, meta.timerSec, comment)).join(', ')} }`;
    const bare = keys.join(', ');
    // Refresh: add (no-op if present) + delete + add in one transaction restarts the kernel
    // timer and rewrites the comment; nft 1.0.6 cannot update an element's timeout in place.
    const safe = `add element ${t} { ${bare} }\ndelete element ${t} { ${bare} }\n${add}`;
    // A rule never seen is installed with a plain add; anything we may have installed before
    // (even if the kernel may have expired it) takes the refresh form.
    const known = this.#present.has(rule.key);
    this.#present.set(rule.key, expiresAt ?? Infinity);
    return this.#enqueue('install', rule, meta, known ? safe : add, safe);
  }

  remove(rule: FirewallRule): Promise<void> {
    if (unsupportedReason(rule) !== undefined) return Promise.resolve();
    const { set, keys } = ruleElements(rule);
    const t = `inet ${this.table} ${set}`;
    const bare = keys.join(', ');
    const del = `delete element ${t} { ${bare} }`;
    const safe = `add element ${t} { ${bare} }\n${del}`;
    const exp = this.#present.get(rule.key);
    this.#present.delete(rule.key);
    // Close to its kernel expiry the element may already be gone: use the safe form.
    const sure = exp !== undefined && exp - this.#now() > 1000;
    return this.#enqueue('remove', rule, undefined, sure ? del : safe, safe);
  }

  #enqueue(
    kind: Op['kind'],
    rule: FirewallRule,
    meta: RuleMeta | undefined,
    fast: string,
    safe: string,
  ): Promise<void> {
    if (!this.#opened || this.#closed) {
      return Promise.reject(new NftError(this.#closed ? 'backend closed' : 'backend not opened'));
    }
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ kind, rule, meta, fast, safe, resolve, reject });
      if (!this.#flushing) {
        // Start after the current synchronous run: every call made in this turn (all requests
        // of one TCP segment reach the backend in the same turn) goes into the same transaction.
        this.#flushing = true;
        queueMicrotask(() => void this.#flush());
      }
    });
  }

  async #flush(): Promise<void> {
    this.#flushing = true;
    try {
      while (this.#queue.length > 0) {
        const max = this.#o.maxBatch ?? 4000;
        const batch = this.#queue.slice(0, max);
        this.#queue = this.#queue.slice(max);
        await this.#runBatch(batch);
      }
    } finally {
      this.#flushing = false;
      for (const f of this.#idle.splice(0)) f();
    }
  }

  /**
   * Runs operations as one transaction. If nft refuses it (an element expired behind our back,
   * or one rule is bad), the operations are retried in their always-valid form, split in halves
   * until the refused ones stand alone: k bad operations among n cost O(k log n) transactions.
   */
  async #runBatch(batch: Op[], safe = false): Promise<void> {
    const t0 = performance.now();
    let err: string;
    try {
      err = await this.#channel.run(
        batch.map((op) => (safe ? op.safe : op.fast)).join('\n') + '\n',
      );
    } catch (e) {
      this.#o.onTransaction?.(batch.length, performance.now() - t0, false);
      for (const op of batch) op.reject(e as Error);
      return;
    }
    this.#o.onTransaction?.(batch.length, performance.now() - t0, err === '');
    if (err === '') {
      for (const op of batch) op.resolve();
      return;
    }
    if (!safe) return this.#runBatch(batch, true);
    if (batch.length === 1) {
      const op = batch[0] as Op;
      if (op.kind === 'install') this.#present.delete(op.rule.key);
      op.reject(new NftError(`nft refused ${op.kind} of ${op.rule.key}: ${err.trim()}`));
      return;
    }
    const half = Math.ceil(batch.length / 2);
    await this.#runBatch(batch.slice(0, half), true);
    await this.#runBatch(batch.slice(half), true);
  }

  /** Waits for queued operations, then ends the nft process. Rules stay in the kernel. */
  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#flushing) await new Promise<void>((r) => this.#idle.push(r));
    this.#closed = true;
    await this.#channel.close();
  }
}
