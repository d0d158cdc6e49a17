/**
 * The direct kernel channel for set elements: one long-lived `pinhole-nfnl` helper process
 * (native/pinhole-nfnl.c) that sends each batch over a NETLINK_NETFILTER socket and returns the
 * kernel's acknowledgement of every message. No nft CLI on this path: no process per batch, no
 * cache refresh, no parser; a one-element SET costs one write to a pipe, one sendto(2) and one
 * recv(2).
 *
 * Batches run one at a time. If the helper dies or stops answering, the batch in flight is
 * rejected with an `NftError` (its outcome is unknown: the caller retries it in a form that is
 * correct in any kernel state) and the next batch starts a new helper.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { endChild, NftError } from './nft-channel.js';
import {
  ReplyDecoder,
  encodeBatchFrame,
  errnoName,
  type AckRecord,
  type SetElemMessage,
} from './nfnl.js';

export interface NetlinkChannelOptions {
  /** The helper's argv, e.g. `['/…/pinhole-nfnl']` or `['ip', 'netns', 'exec', 'ns1', '/…/pinhole-nfnl']`. */
  readonly argv: readonly string[];
  /** Deadline for one batch (and for the helper's start); default 15 s. */
  readonly timeoutMs?: number | undefined;
}

/** The kernel's answer to one message of a batch, in message order. */
export interface MessageResult {
  /** 0 = accepted, else a positive errno. In a batch with any error nothing was applied. */
  readonly errno: number;
  readonly offset: number | undefined;
}

interface Pending {
  readonly id: number;
  readonly firstSeq: number;
  readonly count: number;
  readonly resolve: (r: MessageResult[]) => void;
  readonly reject: (e: Error) => void;
  readonly timer: NodeJS.Timeout;
}

export class NetlinkChannel {
  readonly #argv: readonly string[];
  readonly #timeoutMs: number;
  #child: ChildProcessWithoutNullStreams | undefined;
  #ready: Promise<void> | undefined;
  #stderr = '';
  #pending: Pending | undefined;
  #id = 0;
  #seq = Math.floor(Math.random() * 0x10000000);
  #closed = false;
  #chain: Promise<unknown> = Promise.resolve();
  /** Helper processes started (1 after a clean start; more after deaths). */
  starts = 0;

  constructor(o: NetlinkChannelOptions) {
    this.#argv = o.argv;
    this.#timeoutMs = o.timeoutMs ?? 15_000;
  }

  /** Starts the helper (if not running) and waits for its ready frame. */
  start(): Promise<void> {
    if (this.#closed) return Promise.reject(new NftError('netlink channel closed'));
    if (this.#child !== undefined && this.#ready !== undefined) return this.#ready;
    const [cmd, ...args] = this.#argv;
    if (cmd === undefined) return Promise.reject(new NftError('empty netlink helper command'));
    this.starts++;
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#child = child;
    this.#stderr = '';
    const decoder = new ReplyDecoder();
    let onReady: (() => void) | undefined;
    let failStart: ((e: Error) => void) | undefined;
    this.#ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        gone(`did not start within ${this.#timeoutMs} ms`);
        child.kill('SIGKILL');
      }, this.#timeoutMs);
      onReady = () => {
        clearTimeout(timer);
        onReady = undefined;
        resolve();
      };
      failStart = (e: Error) => {
        clearTimeout(timer);
        onReady = undefined;
        reject(e);
      };
    });
    const gone = (why: string): void => {
      if (this.#child !== child) return;
      this.#child = undefined;
      this.#ready = undefined;
      const err = new NftError(
        `netlink helper ${why}${this.#stderr.trim() === '' ? '' : `: ${this.#stderr.trim().slice(0, 300)}`}`,
      );
      failStart?.(err);
      failStart = undefined;
      const p = this.#pending;
      this.#pending = undefined;
      if (p) {
        clearTimeout(p.timer);
        p.reject(err);
      }
    };
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      if (this.#stderr.length < 4096) this.#stderr += d;
    });
    child.stdin.on('error', () => undefined);
    child.on('error', (e) => gone(`could not run (${e.message})`));
    child.on('exit', (code, sig) => gone(`exited (${sig ?? code ?? '?'})`));
    child.stdout.on('data', (chunk: Buffer) => {
      if (this.#child !== child) return;
      for (const r of decoder.push(chunk)) {
        if (r.id === 0 && onReady !== undefined) {
          failStart = undefined;
          onReady();
          continue;
        }
        this.#settle(r.id, r.records);
      }
    });
    // A start failure is reported to whoever awaits it; nobody else must see it as unhandled.
    this.#ready.catch(() => undefined);
    return this.#ready;
  }

  #settle(id: number, records: readonly AckRecord[]): void {
    const p = this.#pending;
    if (p?.id !== id) return;
    this.#pending = undefined;
    clearTimeout(p.timer);
    const out: (MessageResult | undefined)[] = new Array<MessageResult | undefined>(p.count);
    let answered = 0;
    for (const r of records) {
      if (r.seq === 0 || r.seq === p.firstSeq) {
        // The channel or the batch as a whole failed: outcome unknown or nothing applied.
        p.reject(new NftError(`netlink batch failed (${errnoName(r.errno)})`));
        return;
      }
      const i = r.seq - p.firstSeq - 1;
      if (i >= 0 && i < p.count && out[i] === undefined) {
        out[i] = { errno: r.errno, offset: r.offset };
        answered++;
      }
    }
    // Every message asked for an ACK: one without an answer means the outcome is unknown.
    if (answered !== p.count) {
      p.reject(new NftError(`netlink helper answered ${answered} of ${p.count} messages`));
      return;
    }
    p.resolve(out as MessageResult[]);
  }

  /**
   * Sends one batch (set-element messages of `table`, without BEGIN/END) and resolves with
   * the kernel's answer to each message. Rejects with NftError when the channel failed (the
   * helper died, timed out, or could not talk to the kernel): the outcome is then unknown.
   */
  run(table: string, messages: readonly SetElemMessage[]): Promise<MessageResult[]> {
    const p = this.#chain.then(
      () => this.#runNow(table, messages),
      () => this.#runNow(table, messages),
    );
    this.#chain = p.catch(() => undefined);
    return p;
  }

  async #runNow(table: string, messages: readonly SetElemMessage[]): Promise<MessageResult[]> {
    if (this.#closed) throw new NftError('netlink channel closed');
    if (messages.length === 0) return [];
    await this.start();
    const child = this.#child;
    if (child === undefined) throw new NftError('netlink helper is not running');
    const id = (this.#id = this.#id >= 0xfffffffe ? 1 : this.#id + 1);
    const firstSeq = this.#seq;
    this.#seq = (this.#seq + messages.length + 2) % 0x7fffffff || 1;
    const frame = encodeBatchFrame(id, table, messages, firstSeq);
    return new Promise<MessageResult[]>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.#pending?.id !== id) return;
        this.#pending = undefined;
        reject(new NftError(`netlink helper did not answer within ${this.#timeoutMs} ms`));
        if (this.#child === child) {
          this.#child = undefined;
          this.#ready = undefined;
        }
        child.kill('SIGKILL');
      }, this.#timeoutMs);
      this.#pending = { id, firstSeq, count: messages.length, resolve, reject, timer };
      child.stdin.write(frame);
    });
  }

  /** The running helper's pid (tests). */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Ends the helper after the batches already queued. */
  async close(): Promise<void> {
    await this.#chain;
    this.#closed = true;
    const child = this.#child;
    this.#child = undefined;
    this.#ready = undefined;
    if (child) await endChild(child);
  }
}
