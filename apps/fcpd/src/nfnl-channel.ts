/**
 * The direct kernel channel for set elements: each batch goes to the kernel over a
 * NETLINK_NETFILTER socket, and the kernel's acknowledgement of every message comes back. No nft
 * CLI on this path: no process per batch, no cache refresh, no parser. Two ways to reach the
 * socket, with the same exchange (native/nfnl-core.h):
 *
 *  - in process (the default): the `pinhole-nfnl.node` addon does the sendto(2) and recv(2) on
 *    the daemon's own thread. nf_tables applies a batch inside sendto(2), so the call returns
 *    with the acks and nothing waits on another process;
 *  - the `pinhole-nfnl` helper process, over pipes, for when nft runs through a wrapper the
 *    addon cannot imitate (`sudo nft`) or `nft.helperCommand` asks for it.
 *
 * Batches run one at a time. If the channel fails (the helper died or stopped answering, the
 * socket failed), the batch in flight is rejected with an `NftError` (its outcome is unknown:
 * the caller retries it in a form that is correct in any kernel state) and the next batch starts
 * a new helper or opens a new socket.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { endChild, NftError } from './nft-channel.js';
import {
  ReplyDecoder,
  encodeBatchFrame,
  errnoName,
  type AckRecord,
  type SetElemMessage,
} from './nfnl.js';

/** The addon's functions (native/pinhole-nfnl-addon.c). */
interface NfnlAddon {
  open(netns?: string): number;
  run(fd: number, batch: Buffer, id: number, timeoutMs: number): Buffer;
  close(fd: number): void;
}

/** A file built by `npm run build` into dist/, found from src/ (tests) or dist/. */
function built(name: string, mode: number): string | undefined {
  for (const rel of [`./${name}`, `../dist/${name}`]) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    try {
      accessSync(p, mode);
      return p;
    } catch {
      // next candidate
    }
  }
  return undefined;
}

/** The helper binary built by `npm run build` (dist/pinhole-nfnl), or undefined. */
export function builtHelperPath(): string | undefined {
  return built('pinhole-nfnl', constants.X_OK);
}

/** The addon built by `npm run build` (dist/pinhole-nfnl.node), or undefined. */
export function builtAddonPath(): string | undefined {
  return built('pinhole-nfnl.node', constants.R_OK);
}

let addon: NfnlAddon | undefined;

function loadAddon(): NfnlAddon {
  if (addon !== undefined) return addon;
  const path = builtAddonPath();
  if (path === undefined) {
    throw new NftError(
      'the netlink addon pinhole-nfnl.node is not built (no C compiler or Node headers at build time?)',
    );
  }
  try {
    addon = createRequire(import.meta.url)(path) as NfnlAddon;
  } catch (e) {
    throw new NftError(`the netlink addon could not be loaded: ${(e as Error).message}`);
  }
  return addon;
}

/**
 * How long the in-process exchange may wait for acks that are not queued yet. nf_tables queues
 * them inside sendto(2); the wait blocks the daemon's thread, so it is short.
 */
const IN_PROCESS_WAIT_MS = 2000;

export interface NetlinkChannelOptions {
  /**
   * The helper's argv, e.g. `['/…/pinhole-nfnl']` or `['ip', 'netns', 'exec', 'ns1',
   * '/…/pinhole-nfnl']`. Not used in process.
   */
  readonly argv?: readonly string[] | undefined;
  /**
   * Run in this process through the addon, with the socket in the network namespace at `netns`
   * (a path such as `/run/netns/fw`), or in this process's own namespace without it.
   */
  readonly inProcess?: { readonly netns?: string | undefined } | undefined;
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
  readonly #inProcess: { readonly netns?: string | undefined } | undefined;
  /** In process: the netlink socket, once open. */
  #fd: number | undefined;
  readonly #timeoutMs: number;
  #child: ChildProcessWithoutNullStreams | undefined;
  #ready: Promise<void> | undefined;
  #stderr = '';
  #pending: Pending | undefined;
  #id = 0;
  #seq = Math.floor(Math.random() * 0x10000000);
  #closed = false;
  #chain: Promise<unknown> = Promise.resolve();
  /** Helper processes started, or sockets opened in process (1 after a clean start). */
  starts = 0;

  constructor(o: NetlinkChannelOptions) {
    this.#argv = o.argv ?? [];
    this.#inProcess = o.inProcess;
    this.#timeoutMs = o.timeoutMs ?? 15_000;
  }

  /** `in-process` (the addon on this thread) or `helper` (the pinhole-nfnl process). */
  get mode(): 'in-process' | 'helper' {
    return this.#inProcess === undefined ? 'helper' : 'in-process';
  }

  /** Starts the helper (if not running) and waits for its ready frame; in process, opens the socket. */
  start(): Promise<void> {
    if (this.#closed) return Promise.reject(new NftError('netlink channel closed'));
    if (this.#inProcess !== undefined) {
      try {
        this.#openSocket(this.#inProcess.netns);
        return Promise.resolve();
      } catch (e) {
        return Promise.reject(e instanceof Error ? e : new NftError(String(e)));
      }
    }
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

  #openSocket(netns: string | undefined): void {
    if (this.#fd !== undefined) return;
    const a = loadAddon();
    try {
      this.#fd = a.open(netns);
    } catch (e) {
      throw new NftError(
        `netlink socket${netns === undefined ? '' : ` in ${netns}`}: ${(e as Error).message}`,
      );
    }
    this.starts++;
  }

  #settle(id: number, records: readonly AckRecord[]): void {
    const p = this.#pending;
    if (p?.id !== id) return;
    this.#pending = undefined;
    clearTimeout(p.timer);
    try {
      p.resolve(collect(records, p.firstSeq, p.count));
    } catch (e) {
      p.reject(e as Error);
    }
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
    if (this.#inProcess !== undefined) return this.#runInProcess(table, messages);
    const child = this.#child;
    if (child === undefined) throw new NftError('netlink helper is not running');
    const { id, firstSeq, frame } = this.#frame(table, messages);
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

  /** The next batch's frame, with a new request id and sequence numbers. */
  #frame(
    table: string,
    messages: readonly SetElemMessage[],
  ): { id: number; firstSeq: number; frame: Buffer } {
    const id = (this.#id = this.#id >= 0xfffffffe ? 1 : this.#id + 1);
    const firstSeq = this.#seq;
    this.#seq = (this.#seq + messages.length + 2) % 0x7fffffff || 1;
    return { id, firstSeq, frame: encodeBatchFrame(id, table, messages, firstSeq) };
  }

  #runInProcess(table: string, messages: readonly SetElemMessage[]): MessageResult[] {
    const fd = this.#fd;
    if (fd === undefined) throw new NftError('netlink socket is not open');
    const { id, firstSeq, frame } = this.#frame(table, messages);
    const wait = Math.min(this.#timeoutMs, IN_PROCESS_WAIT_MS);
    const [reply] = new ReplyDecoder().push(loadAddon().run(fd, frame.subarray(8), id, wait));
    try {
      return collect(reply?.records ?? [], firstSeq, messages.length);
    } catch (e) {
      if (reply?.records[0]?.seq === 0) {
        // The socket failed (lost acks, a timeout): the next batch starts on a new one, so
        // that no late ack of this batch can be read as another's.
        this.#fd = undefined;
        loadAddon().close(fd);
      }
      throw e;
    }
  }

  /** The running helper's pid (tests). */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Ends the helper (closes the socket) after the batches already queued. */
  async close(): Promise<void> {
    await this.#chain;
    this.#closed = true;
    if (this.#fd !== undefined) {
      loadAddon().close(this.#fd);
      this.#fd = undefined;
    }
    const child = this.#child;
    this.#child = undefined;
    this.#ready = undefined;
    if (child) await endChild(child);
  }
}

/**
 * The results of a batch of `count` messages whose BEGIN had sequence `firstSeq`, in message
 * order, from the acks received. Throws an NftError when the channel or the batch as a whole
 * failed, or a message went unanswered: the outcome is then unknown or nothing was applied.
 */
function collect(records: readonly AckRecord[], firstSeq: number, count: number): MessageResult[] {
  const out: (MessageResult | undefined)[] = new Array<MessageResult | undefined>(count);
  let answered = 0;
  for (const r of records) {
    if (r.seq === 0 || r.seq === firstSeq) {
      throw new NftError(`netlink batch failed (${errnoName(r.errno)})`);
    }
    const i = r.seq - firstSeq - 1;
    if (i >= 0 && i < count && out[i] === undefined) {
      out[i] = { errno: r.errno, offset: r.offset };
      answered++;
    }
  }
  // Every message asked for an ACK: one without an answer means the outcome is unknown.
  if (answered !== count) {
    throw new NftError(`netlink channel answered ${answered} of ${count} messages`);
  }
  return out as MessageResult[];
}
