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
import { basename } from 'node:path';
import type {
  FirewallBackend,
  FirewallRule,
  InstalledRule,
  PortRange,
  RuleMeta,
} from '@pinhole/fcp';
import { NftChannel, NftError } from './nft-channel.js';
import {
  NetlinkChannel,
  builtAddonPath,
  builtHelperPath,
  type MessageResult,
} from './nfnl-channel.js';
import {
  commentUserdata,
  describeError,
  emptyNewSetElem,
  holeKeyBytes,
  type SetElemMessage,
} from './nfnl.js';
import {
  MAX_COMMENT,
  adoptElements,
  allWantedChains,
  elementText,
  encodeComment,
  parseListing,
  HOLE_SETS,
  MAX_SHARDS,
  ruleElements,
  setupScript,
  shardSetName,
  unsupportedReason,
  type HoleSet,
  type NftHook,
  type RuleElements,
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
  /**
   * Split a burst (at least 64 operations queued while nft was idle) into two transactions
   * that then alternate: nft applies one while the other's requests are answered and their
   * successors come back. Default false: it helps when nft and the daemon each have a CPU, and
   * costs transactions when they share one.
   */
  readonly splitBursts?: boolean | undefined;
  /**
   * How set elements of the hash sets reach the kernel: `netlink` (one netlink batch per
   * transaction: in this process through the built addon, else through the `pinhole-nfnl` helper
   * process), `cli` through the `nft -i` channel. Default: netlink when one of the two works,
   * else cli with a warning. An explicit `netlink` makes a netlink channel that cannot start an
   * error of `open()`.
   */
  readonly channel?: NftChannelKind | undefined;
  /**
   * The helper's argv. Given, the helper process is used instead of the in-process addon.
   * Default: `nftCommand` with its last word replaced by the built helper.
   */
  readonly helperCommand?: readonly string[] | undefined;
  readonly logger?: BackendLogger | undefined;
  /** Called after every transaction with its size and duration (metrics). */
  readonly onTransaction?: ((ops: number, ms: number, ok: boolean) => void) | undefined;
  /** Wall clock (ms); injectable for tests. */
  readonly now?: (() => number) | undefined;
  /**
   * Daemons sharing the table (default 1) and this one's index (default 0): it writes only its
   * own shard's sets, adopts only their elements at `open()`, and the chains look at every
   * shard's sets. For several workers of one proxy, each with its own embedded fcpd.
   */
  readonly shards?: number | undefined;
  readonly shard?: number | undefined;
}

export const DEFAULT_MARK = 0x00100000;

export type NftChannelKind = 'netlink' | 'cli';

/** After this many consecutive failures of the netlink channel, the backend uses the nft CLI. */
const NETLINK_MAX_FAILURES = 3;
/**
 * Most set-element messages in one netlink batch: ~250 B each (a 2-port hole with its comment),
 * so a batch stays near 256 KiB and its acks (36 B each) far below the socket buffers.
 */
const NETLINK_MAX_MESSAGES = 1024;

/** A hash-set operation in netlink form: the keys and the comment, encoded once. */
interface NlForm {
  readonly keys: Buffer;
  readonly keyLen: number;
  /** nft userdata with the comment (install only). */
  readonly userdata: Buffer | undefined;
}

/** `splitBursts`: a burst of at least twice this many operations is split in two. */
const MIN_SPLIT = 32;

interface Op {
  readonly kind: 'install' | 'remove';
  readonly rule: FirewallRule;
  /** The kernel set (this shard's name of the hole set). */
  readonly set: string;
  /** Element keys in nft syntax. */
  readonly keys: readonly string[];
  /** Install only: TIMER (0 = no timeout) and the element comment. */
  readonly timerSec: number;
  readonly comment: string;
  /**
   * The fast form assumes the kernel state we believe in (install: the element is absent;
   * remove: it is present). Not for a refresh, or a removal close to the kernel expiry: those
   * always take the safe form.
   */
  readonly fastIsSafe: boolean;
  /** Set for exact (hash set) holes: what the netlink channel sends. */
  readonly nl: NlForm | undefined;
  readonly resolve: () => void;
  readonly reject: (e: Error) => void;
}

/**
 * An operation as nft script text. The safe form works in any kernel state: a refresh is add
 * (no-op if present) + delete + add, a removal add + delete. Built only for the CLI channel.
 */
function opText(op: Op, table: string, safe: boolean): string {
  const t = `inet ${table} ${op.set}`;
  const bare = op.keys.join(', ');
  const add =
    op.kind === 'install'
      ? `add element ${t} { ${op.keys.map((k) => elementText(k, op.timerSec, op.comment)).join(', ')} }`
      : undefined;
  if (!safe && !op.fastIsSafe) return add ?? `delete element ${t} { ${bare} }`;
  const addBare = `add element ${t} { ${bare} }`;
  const del = `delete element ${t} { ${bare} }`;
  return add === undefined ? `${addBare}\n${del}` : `${addBare}\n${del}\n${add}`;
}

/** A set-element message without timeout or comment (a delete, or the add of a safe pair). */
function plainElem(
  kind: 'new' | 'del',
  set: SetElemMessage['set'],
  f: { readonly keys: SetElemMessage['keys']; readonly keyLen: SetElemMessage['keyLen'] },
): SetElemMessage {
  return { kind, set, keys: f.keys, keyLen: f.keyLen, timeoutMs: 0, userdata: undefined };
}

export class NftablesBackend implements FirewallBackend {
  readonly name = 'nftables';
  readonly enforces = true;
  readonly table: string;
  readonly mode: NftMode;
  readonly shard: number;
  readonly shards: number;
  readonly #o: NftablesBackendOptions;
  /** Kernel names of this shard's sets. */
  readonly #names: Record<HoleSet, string>;
  readonly #channel: NftChannel;
  /** The netlink channel while it is in use; undefined = everything through the nft CLI. */
  #nl: NetlinkChannel | undefined;
  #nlFailures = 0;
  readonly #argv: readonly string[];
  readonly #now: () => number;
  /** Rules we believe the kernel holds, with their expiry (ms, Infinity = never). */
  readonly #present = new Map<string, number>();
  /** `<set> <element key>` → the rule key whose hole it is (exact hash elements only). */
  readonly #elements = new Map<string, string>();
  #lastRule: FirewallRule | undefined;
  #lastElements: RuleElements | undefined;
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
    this.shards = o.shards ?? 1;
    this.shard = o.shard ?? 0;
    if (!Number.isInteger(this.shards) || this.shards < 1 || this.shards > MAX_SHARDS) {
      throw new NftError(`invalid nft shards: ${this.shards} (1..${MAX_SHARDS})`);
    }
    if (!Number.isInteger(this.shard) || this.shard < 0 || this.shard >= this.shards) {
      throw new NftError(`invalid nft shard: ${this.shard} (0..${this.shards - 1})`);
    }
    const names = {} as Record<HoleSet, string>;
    for (const set of HOLE_SETS) names[set] = shardSetName(set, this.shard);
    this.#names = names;
    this.#argv = o.nftCommand ?? ['nft'];
    this.#channel = new NftChannel({ argv: this.#argv });
    this.#now = o.now ?? Date.now;
  }

  /** The channel set elements of the hash sets take now (after `open()`). */
  get channel(): NftChannelKind {
    return this.#nl === undefined ? 'cli' : 'netlink';
  }

  /** With the netlink channel: whether it runs in this process or through the helper. */
  get netlinkMode(): 'in-process' | 'helper' | undefined {
    return this.#nl?.mode;
  }

  unsupported(rule: FirewallRule): string | undefined {
    return unsupportedReason(rule) ?? this.#overlap(rule);
  }

  /**
   * Two rules whose holes expand to the same kernel element (e.g. DSTPORT=40000-40001 and
   * DSTPORT=40001 toward the same address) would share it: removing one would close the
   * other's hole, and a restart would give the element to one of them only. Such a second rule
   * is refused (the server answers 501 with this reason) while the first one lives.
   */
  #overlap(rule: FirewallRule): string | undefined {
    const { keys } = this.#elementsOf(rule);
    for (const k of keys) {
      const owner = this.#elements.get(k);
      if (owner !== undefined && owner !== rule.key) {
        return `overlaps the live rule "${owner}" (they would share the kernel element ${k})`;
      }
    }
    return undefined;
  }

  // Element keys are unique across the sets (each set's key has its own shape: address family,
  // source or not, ranges in w4/w6), so the key text alone identifies the element.
  #own(rule: FirewallRule, keys: readonly string[]): void {
    for (const k of keys) this.#elements.set(k, rule.key);
  }

  #disown(rule: FirewallRule, keys: readonly string[]): void {
    for (const k of keys) {
      if (this.#elements.get(k) === rule.key) this.#elements.delete(k);
    }
  }

  /**
   * `ruleElements` of the rule the server is working on: it asks `unsupported()` and then calls
   * `install()` with the same (immutable) rule object, which would otherwise expand it twice or
   * three times.
   */
  #elementsOf(rule: FirewallRule): RuleElements {
    if (this.#lastRule === rule && this.#lastElements !== undefined) return this.#lastElements;
    const e = ruleElements(rule);
    this.#lastRule = rule;
    this.#lastElements = e;
    return e;
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
    const listing =
      before === undefined ? { chains: [], sets: [], elements: [] } : parseListing(before);
    const now = this.#now();
    const { rules, foreign } = adoptElements(
      listing.elements.filter((e) => e.shard === this.shard),
      now,
    );
    if (foreign.length > 0) {
      this.#o.logger?.warn(
        { table: this.table, count: foreign.length },
        'elements without a pinhole comment in the owned sets were left alone',
      );
    }
    const dropped = listing.elements.filter((e) => e.shard >= this.shards).length;
    if (dropped > 0) {
      this.#o.logger?.warn(
        { table: this.table, shards: this.shards, elements: dropped },
        'deleting the hole sets of shards beyond nft.shards, and the holes in them',
      );
    }
    const ruleset = {
      table: this.table,
      mode: this.mode,
      hooks: this.#o.hooks ?? ['forward'],
      protected: this.#o.protected,
      mediaPorts: this.#o.mediaPorts ?? [1024, 65535],
      mark: this.#o.mark ?? DEFAULT_MARK,
      shards: this.shards,
    } as const;
    await this.#channel.exec(setupScript(ruleset, listing.chains, listing.sets));
    const channel = await this.#openNetlink();
    for (const r of rules) {
      this.#present.set(r.rule.key, r.remainingMs === undefined ? Infinity : now + r.remainingMs);
      this.#own(r.rule, ruleElements(r.rule).keys);
    }
    this.#opened = true;
    this.#o.logger?.info(
      {
        table: `inet ${this.table}`,
        mode: this.mode,
        ...(this.shards > 1 ? { shard: this.shard, shards: this.shards } : {}),
        adopted: rules.length,
        chains: allWantedChains(ruleset),
        channel,
        ...(this.#nl === undefined ? {} : { netlink: this.#nl.mode }),
        ms: Math.round(performance.now() - started),
      },
      'nftables table ready',
    );
    return rules;
  }

  /**
   * Opens the netlink channel and checks it end to end (an empty NEWSETELEM on h4d must be
   * acknowledged), unless the CLI channel was chosen: in this process when the addon is built,
   * nft.helperCommand is not set and nft runs plainly or through `ip netns exec NAME` (the
   * socket is then made in that namespace); else through the helper process. Returns the channel
   * in use.
   */
  async #openNetlink(): Promise<NftChannelKind> {
    if (this.#o.channel === 'cli') return 'cli';
    const explicit = this.#o.channel === 'netlink';
    const tried: string[] = [];
    const netns = commandNetns(this.#argv);
    if (this.#o.helperCommand === undefined && netns !== undefined) {
      if (builtAddonPath() === undefined) {
        tried.push('the netlink addon pinhole-nfnl.node is not built');
      } else {
        const why = await this.#tryNetlink(
          new NetlinkChannel({ inProcess: { netns: netns === '' ? undefined : netns } }),
        );
        if (why === undefined) return 'netlink';
        tried.push(`in process: ${why}`);
      }
    }
    let argv = this.#o.helperCommand;
    if (argv === undefined) {
      const helper = builtHelperPath();
      if (helper !== undefined) {
        // `nft` or a wrapper ending in nft (`ip netns exec ns nft`, `sudo nft`): same wrapper.
        const last = this.#argv[this.#argv.length - 1];
        argv =
          last !== undefined && basename(last) === 'nft'
            ? [...this.#argv.slice(0, -1), helper]
            : [helper];
      }
    }
    if (argv === undefined) {
      tried.push('the netlink helper pinhole-nfnl is not built (no C compiler at build time?)');
    } else {
      const why = await this.#tryNetlink(new NetlinkChannel({ argv }));
      if (why === undefined) return 'netlink';
      tried.push(`helper: ${why}`);
    }
    const why = tried.join('; ');
    if (explicit) {
      // open() fails: nothing may keep running behind it.
      await this.#channel.close();
      throw new NftError(`nft.channel netlink unavailable: ${why}`);
    }
    this.#o.logger?.warn({ reason: why }, 'netlink channel unavailable: using the nft CLI channel');
    return 'cli';
  }

  /** Starts `nl` and probes it; keeps it and returns undefined, or closes it and says why. */
  async #tryNetlink(nl: NetlinkChannel): Promise<string | undefined> {
    let why: string;
    try {
      await nl.start();
      const [probe] = await nl.run(this.table, [emptyNewSetElem(this.#names.h4d)]);
      if (probe !== undefined && probe.errno === 0) {
        this.#nl = nl;
        return undefined;
      }
      why = `the kernel refused the probe: ${describeError('new', this.table, this.#names.h4d, probe?.errno ?? 0, probe?.offset)}`;
    } catch (e) {
      why = (e as Error).message;
    }
    await nl.close();
    return why;
  }

  install(rule: FirewallRule, meta: RuleMeta): Promise<void> {
    const why = unsupportedReason(rule) ?? this.#overlap(rule);
    if (why !== undefined) return Promise.reject(new NftError(why));
    const { set, keys } = this.#elementsOf(rule);
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
    // A rule never seen is installed with a plain add; anything we may have installed before
    // (even if the kernel may have expired it) takes the refresh form, which really restarts the
    // kernel timer and rewrites the comment (nft 1.0.6 cannot update a timeout in place).
    const known = this.#present.has(rule.key);
    this.#present.set(rule.key, expiresAt ?? Infinity);
    this.#own(rule, keys);
    return this.#enqueue(
      'install',
      rule,
      this.#names[set],
      keys,
      meta.timerSec,
      comment,
      known,
      this.#nlForm(rule, set, comment),
    );
  }

  remove(rule: FirewallRule): Promise<void> {
    if (unsupportedReason(rule) !== undefined) return Promise.resolve();
    const { set, keys } = this.#elementsOf(rule);
    const exp = this.#present.get(rule.key);
    this.#present.delete(rule.key);
    this.#disown(rule, keys);
    // Close to its kernel expiry the element may already be gone: use the safe form.
    const sure = exp !== undefined && exp - this.#now() > 1000;
    return this.#enqueue(
      'remove',
      rule,
      this.#names[set],
      keys,
      0,
      '',
      !sure,
      this.#nlForm(rule, set, undefined),
    );
  }

  /**
   * The netlink form of a hash-set operation (undefined for interval sets, or for keys that do
   * not encode: such an operation goes to nft, which reports what is wrong with it).
   */
  #nlForm(rule: FirewallRule, set: HoleSet, comment: string | undefined): NlForm | undefined {
    if (set[0] !== 'h' || rule.dst === undefined) return undefined;
    try {
      const { keys: kb, keyLen } = holeKeyBytes(
        rule.src?.address,
        rule.dst.address,
        rule.proto,
        rule.dstPorts ?? [0, 65535],
      );
      return {
        keys: kb,
        keyLen,
        userdata: comment === undefined ? undefined : commentUserdata(comment),
      };
    } catch {
      return undefined;
    }
  }

  #enqueue(
    kind: Op['kind'],
    rule: FirewallRule,
    set: string,
    keys: readonly string[],
    timerSec: number,
    comment: string,
    fastIsSafe: boolean,
    nl: NlForm | undefined,
  ): Promise<void> {
    if (!this.#opened || this.#closed) {
      return Promise.reject(new NftError(this.#closed ? 'backend closed' : 'backend not opened'));
    }
    return new Promise<void>((resolve, reject) => {
      // A literal of one shape (no spread): this runs for every operation.
      this.#queue.push({
        kind,
        rule,
        set,
        keys,
        timerSec,
        comment,
        fastIsSafe,
        nl,
        resolve,
        reject,
      });
      if (!this.#flushing) {
        // Start after the current synchronous run: every call made in this turn (all requests
        // of one TCP segment reach the backend in the same turn) goes into the same transaction.
        this.#flushing = true;
        queueMicrotask(() => void this.#flush());
      }
    });
  }

  #take(): Op[] {
    const max = this.#o.maxBatch ?? 4000;
    if (this.#queue.length <= max) {
      const all = this.#queue;
      this.#queue = [];
      return all;
    }
    const batch = this.#queue.slice(0, max);
    this.#queue = this.#queue.slice(max);
    return batch;
  }

  /**
   * Sends a batch: hash-set operations through the netlink channel when it is in use, the rest
   * (interval sets, or everything) as one nft script. Resolves with the error text ('' when
   * every part was applied); a failed netlink channel is reported as an error text too, so the
   * operations are retried in their safe form (correct whatever the kernel applied).
   */
  #send(batch: Op[], safe: boolean): { batch: Op[]; p: Promise<string>; t0: number } {
    const t0 = performance.now();
    const nl = this.#nl;
    let script = '';
    if (nl === undefined) {
      for (const op of batch) script += opText(op, this.table, safe) + '\n';
      return { batch, p: this.#channel.run(script), t0 };
    }
    const msgs: SetElemMessage[] = [];
    for (const op of batch) {
      const f = op.nl;
      if (f === undefined) {
        script += opText(op, this.table, safe) + '\n';
        continue;
      }
      const { set } = op;
      if (safe || op.fastIsSafe) msgs.push(plainElem('new', set, f), plainElem('del', set, f));
      else if (op.kind === 'remove') msgs.push(plainElem('del', set, f));
      if (op.kind === 'install') {
        msgs.push({
          kind: 'new',
          set,
          keys: f.keys,
          keyLen: f.keyLen,
          timeoutMs: op.timerSec * 1000,
          userdata: f.userdata,
        });
      }
    }
    const viaNl =
      msgs.length === 0
        ? undefined
        : this.#runNetlink(nl, msgs).then(
            (res) => {
              this.#nlFailures = 0;
              return this.#nlErrors(msgs, res);
            },
            (e: unknown) => this.#nlFailed(nl, e as Error),
          );
    const viaCli = script === '' ? undefined : this.#channel.run(script);
    const p =
      viaNl === undefined
        ? (viaCli ?? Promise.resolve(''))
        : viaCli === undefined
          ? viaNl
          : Promise.all([viaNl, viaCli]).then(([a, b]) => a + b);
    return { batch, p, t0 };
  }

  /**
   * Sends the messages as kernel batches of at most NETLINK_MAX_MESSAGES (a batch and its acks
   * must fit the netlink socket's buffers). Each batch is atomic; a failure in one is retried
   * with the rest in the safe form, which is correct whatever the other batches applied.
   */
  #runNetlink(nl: NetlinkChannel, msgs: readonly SetElemMessage[]): Promise<MessageResult[]> {
    if (msgs.length <= NETLINK_MAX_MESSAGES) return nl.run(this.table, msgs);
    const parts: Promise<MessageResult[]>[] = [];
    for (let i = 0; i < msgs.length; i += NETLINK_MAX_MESSAGES) {
      parts.push(nl.run(this.table, msgs.slice(i, i + NETLINK_MAX_MESSAGES)));
    }
    return Promise.all(parts).then((r) => r.flat());
  }

  #nlErrors(msgs: readonly SetElemMessage[], res: readonly MessageResult[]): string {
    let err = '';
    for (let i = 0; i < res.length; i++) {
      const r = res[i] as MessageResult;
      const m = msgs[i];
      if (r.errno === 0 || m === undefined) continue;
      err += `netlink: ${describeError(m.kind, this.table, m.set, r.errno, r.offset)}\n`;
    }
    return err;
  }

  /** The helper died or stopped answering: the next batch restarts it; repeated failures make
   * the backend fall back to the nft CLI. */
  #nlFailed(nl: NetlinkChannel, e: Error): string {
    this.#nlFailures++;
    if (this.#nlFailures >= NETLINK_MAX_FAILURES && this.#nl === nl) {
      this.#nl = undefined;
      void nl.close();
      this.#o.logger?.warn(
        { reason: e.message, failures: this.#nlFailures },
        'netlink channel failed repeatedly: using the nft CLI channel from now on',
      );
    } else {
      this.#o.logger?.warn({ reason: e.message }, 'netlink channel failed; retrying');
    }
    return `netlink channel failed: ${e.message}\n`;
  }

  /**
   * One transaction at a time, with no gap: when one succeeds, the operations queued meanwhile
   * are sent as the next one BEFORE the finished ones are settled, so nft works on the next
   * batch while the daemon answers this one's requests (they are on different keys: the server
   * holds a rule's lock until its operation settled).
   */
  async #flush(): Promise<void> {
    this.#flushing = true;
    try {
      const burst = this.#queue.length;
      const first =
        this.#o.splitBursts === true && burst >= 2 * MIN_SPLIT
          ? this.#queue.splice(0, Math.ceil(burst / 2))
          : this.#take();
      let tx = first.length > 0 ? this.#send(first, false) : undefined;
      while (tx !== undefined) {
        const cur = tx;
        tx = undefined;
        let err: string;
        try {
          err = await cur.p;
        } catch (e) {
          this.#o.onTransaction?.(cur.batch.length, performance.now() - cur.t0, false);
          for (const op of cur.batch) op.reject(e as Error);
          if (this.#queue.length > 0) tx = this.#send(this.#take(), false);
          continue;
        }
        this.#o.onTransaction?.(cur.batch.length, performance.now() - cur.t0, err === '');
        if (err === '') {
          if (this.#queue.length > 0) tx = this.#send(this.#take(), false);
          for (const op of cur.batch) op.resolve();
          continue;
        }
        await this.#retry(cur.batch);
        if (this.#queue.length > 0) tx = this.#send(this.#take(), false);
      }
    } finally {
      this.#flushing = false;
      for (const f of this.#idle.splice(0)) f();
    }
  }

  /**
   * A refused transaction (an element expired behind our back, or one rule is bad): the
   * operations are retried in their always-valid form, split in halves until the refused ones
   * stand alone: k bad operations among n cost O(k log n) transactions.
   */
  async #retry(batch: Op[]): Promise<void> {
    const { p, t0 } = this.#send(batch, true);
    let err: string;
    try {
      err = await p;
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
    if (batch.length === 1) {
      const op = batch[0] as Op;
      if (op.kind === 'install') {
        this.#present.delete(op.rule.key);
        this.#disown(op.rule, op.keys);
      }
      op.reject(new NftError(`nftables refused ${op.kind} of ${op.rule.key}: ${err.trim()}`));
      return;
    }
    const half = Math.ceil(batch.length / 2);
    await this.#retry(batch.slice(0, half));
    await this.#retry(batch.slice(half));
  }

  /** Waits for queued operations, then ends the nft process. Rules stay in the kernel. */
  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#flushing) await new Promise<void>((r) => this.#idle.push(r));
    this.#closed = true;
    await this.#channel.close();
    await this.#nl?.close();
  }
}

/**
 * The network namespace nft runs in, as the in-process netlink socket must be made: '' for
 * plain `nft` (this process's namespace), `/run/netns/NAME` for `ip netns exec NAME nft`, and
 * undefined for any other wrapper (`sudo nft`), which only the helper process can imitate.
 */
export function commandNetns(argv: readonly string[]): string | undefined {
  const last = argv[argv.length - 1];
  if (last === undefined || basename(last) !== 'nft') return undefined;
  if (argv.length === 1) return '';
  const [ip, netns, exec, name] = argv;
  if (
    argv.length === 5 &&
    ip !== undefined &&
    basename(ip) === 'ip' &&
    netns === 'netns' &&
    exec === 'exec' &&
    name !== undefined &&
    /^[A-Za-z0-9_.-]+$/.test(name) &&
    name !== '.' &&
    name !== '..'
  ) {
    return `/run/netns/${name}`;
  }
  return undefined;
}
