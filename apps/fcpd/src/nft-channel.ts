/**
 * One long-lived channel to the kernel's nftables: a persistent `nft -i` child process.
 *
 * Each script is one nft transaction (atomic: all of it or none of it). A script is sent as a
 * single input line when short; a long one is written to a private file and the line is
 * `include "<file>"` (nft's interactive line editor reads stdin one byte at a time, which costs
 * about 2.5 us per byte; `include` makes nft read the file with its fast scanner, still inside
 * the same long-lived process and the same transaction).
 *
 * nft prints nothing on success and only errors on stderr, so completion is detected with a
 * sentinel: after every script the channel sends a line holding only a unique word, which nft
 * rejects with a syntax error that echoes the word. Everything printed on stderr before the
 * sentinel's error belongs to the script.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface NftChannelOptions {
  /** Command and leading arguments, e.g. `['nft']` or `['ip', 'netns', 'exec', 'ns1', 'nft']`. */
  readonly argv: readonly string[];
  /** Scripts longer than this go through `include`. */
  readonly inlineMax?: number;
  /** Deadline for one transaction. */
  readonly timeoutMs?: number;
}

export class NftError extends Error {
  readonly code = 'FCPD_ERR_NFT' as const;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NftError';
  }
}

interface Pending {
  readonly token: string;
  readonly resolve: (err: string) => void;
  readonly reject: (e: Error) => void;
  readonly timer: NodeJS.Timeout;
}

const SENTINEL_PREFIX = 'phsync';

export class NftChannel {
  readonly #argv: readonly string[];
  readonly #inlineMax: number;
  readonly #timeoutMs: number;
  #child: ChildProcessWithoutNullStreams | undefined;
  #stderr = '';
  #pending: Pending | undefined;
  #seq = 0;
  #closed = false;
  #chain: Promise<unknown> = Promise.resolve();

  constructor(o: NftChannelOptions) {
    this.#argv = o.argv;
    this.#inlineMax = o.inlineMax ?? 2048;
    this.#timeoutMs = o.timeoutMs ?? 15_000;
  }

  /**
   * Runs one script as one transaction. Resolves with nft's error text ('' on success); rejects
   * only when the channel itself failed (nft died, timed out, or the channel is closed).
   * Scripts run strictly one after another.
   */
  run(script: string): Promise<string> {
    const p = this.#chain.then(
      () => this.#runNow(script),
      () => this.#runNow(script),
    );
    this.#chain = p.catch(() => undefined);
    return p;
  }

  /** Runs a script and throws NftError with nft's message when it fails. */
  async exec(script: string): Promise<void> {
    const err = await this.run(script);
    if (err !== '') throw new NftError(err.trim());
  }

  #spawn(): ChildProcessWithoutNullStreams {
    const [cmd, ...args] = this.#argv;
    if (cmd === undefined) throw new NftError('empty nft command');
    const child = spawn(cmd, [...args, '-i'], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#stderr = '';
    child.stdout.resume();
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      this.#stderr += d;
      this.#check();
    });
    child.stdin.on('error', () => undefined);
    const onGone = (why: string): void => {
      if (this.#child !== child) return;
      this.#child = undefined;
      const p = this.#pending;
      this.#pending = undefined;
      if (p) {
        clearTimeout(p.timer);
        p.reject(new NftError(`nft ${why}: ${this.#stderr.trim().slice(0, 500)}`));
      }
    };
    child.on('error', (e) => onGone(`could not run (${e.message})`));
    child.on('exit', (code, sig) => onGone(`exited (${sig ?? code ?? '?'})`));
    this.#child = child;
    return child;
  }

  #check(): void {
    const p = this.#pending;
    if (!p) return;
    const marker = `\n${p.token}\n`;
    const at = this.#stderr.indexOf(marker);
    if (at === -1) return;
    // Text before the sentinel, minus the sentinel's own "Error: syntax error ..." line.
    const before = this.#stderr.slice(0, at);
    const headerStart = before.lastIndexOf('Error:');
    const own = headerStart === -1 ? before : before.slice(0, headerStart);
    // Skip the sentinel's caret line.
    const caretEnd = this.#stderr.indexOf('\n', at + marker.length);
    if (caretEnd === -1) return;
    this.#stderr = this.#stderr.slice(caretEnd + 1);
    this.#pending = undefined;
    clearTimeout(p.timer);
    p.resolve(own);
  }

  #runNow(script: string): Promise<string> {
    if (this.#closed) return Promise.reject(new NftError('nft channel closed'));
    const child = this.#child ?? this.#spawn();
    const token = `${SENTINEL_PREFIX}${++this.#seq}`;
    let line: string;
    let file: string | undefined;
    const flat = script.trim().split('\n').join('; ');
    if (flat.length <= this.#inlineMax) {
      line = flat;
    } else {
      // A fresh name opened with O_EXCL (flag wx), readable by root only, removed right after.
      file = join(tmpdir(), `pinhole-nft-${process.pid}-${randomBytes(6).toString('hex')}.nft`);
      writeFileSync(file, script, { mode: 0o600, flag: 'wx' });
      line = `include "${file}"`;
    }
    const done = new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.#pending?.token !== token) return;
        this.#pending = undefined;
        reject(new NftError(`nft did not answer within ${this.#timeoutMs} ms`));
        // Detach first: the next transaction gets a fresh process, and this one's exit must not
        // be blamed on it.
        if (this.#child === child) this.#child = undefined;
        child.kill('SIGKILL');
      }, this.#timeoutMs);
      this.#pending = { token, resolve, reject, timer };
      child.stdin.write(`${line}\n${token}\n`);
    });
    if (file === undefined) return done;
    const f = file;
    return done.finally(() => rmSync(f, { force: true }));
  }

  /** Ends the child process after the transactions already queued. */
  async close(): Promise<void> {
    await this.#chain;
    this.#closed = true;
    const child = this.#child;
    this.#child = undefined;
    if (child) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          child.kill('SIGKILL');
          resolve();
        }, 2000);
        child.once('exit', () => {
          clearTimeout(t);
          resolve();
        });
        child.stdin.end();
      });
    }
  }
}
