/**
 * One long-lived channel to the kernel's nftables: a persistent `nft -i` child process.
 *
 * Each script is one nft transaction (atomic: all of it or none of it). nft's interactive line
 * editor reads stdin one byte at a time (one read(2) per byte, about 2.5 us each), so a script is
 * not typed in: it is written to a fresh file (O_EXCL, mode 0600, on tmpfs when /dev/shm
 * exists) and the line sent is `include "<file>"`, which nft reads with its fast scanner, still
 * inside the same long-lived process and the same transaction; the file is removed as soon as
 * nft answered. A one-element SET costs ~60 typed bytes instead of ~250. Scripts up to
 * `inlineMax` bytes (default 0) are typed inline instead.
 *
 * nft prints nothing on success and only errors on stderr, so completion is detected with a
 * sentinel: after every script the channel sends a line holding only a unique word, which nft
 * rejects with a syntax error that echoes the word. Everything printed on stderr before the
 * sentinel's error belongs to the script.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface NftChannelOptions {
  /** Command and leading arguments, e.g. `['nft']` or `['ip', 'netns', 'exec', 'ns1', 'nft']`. */
  readonly argv: readonly string[];
  /** Scripts up to this many bytes are typed inline; longer ones go through `include`. Default 0. */
  readonly inlineMax?: number;
  /** Directory for script files; default /dev/shm when present, else the OS tmpdir. */
  readonly scratchParent?: string;
  /** Replace the nft process after this many transactions (its line history grows); default 1000. */
  readonly recycleAfter?: number;
  /** Deadline for one transaction. */
  readonly timeoutMs?: number;
}

/**
 * Closes a child's stdin and waits for it to exit; kills it if it has not exited within 2 s.
 * Shared by the nft CLI channel and the netlink helper channel.
 */
export async function endChild(child: ChildProcessWithoutNullStreams): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
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
  /** Scripts up to this length are typed inline; Infinity once includes proved not to work. */
  #inlineMax: number;
  readonly #timeoutMs: number;
  readonly #scratchParent: string | undefined;
  /** Script file names: `<dir>/pinhole-nft-<pid>-<random>-<n>.nft`, resolved on first use. */
  #filePrefix: string | undefined;
  readonly #recycleAfter: number;
  #child: ChildProcessWithoutNullStreams | undefined;
  /** Transactions sent to the current child. */
  #sinceSpawn = 0;
  #stderr = '';
  #pending: Pending | undefined;
  #seq = 0;
  #closed = false;
  #chain: Promise<unknown> = Promise.resolve();

  constructor(o: NftChannelOptions) {
    this.#argv = o.argv;
    this.#inlineMax = o.inlineMax ?? 0;
    this.#scratchParent = o.scratchParent;
    this.#timeoutMs = o.timeoutMs ?? 15_000;
    this.#recycleAfter = Math.max(1, o.recycleAfter ?? 1000);
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
    this.#chain = p
      .then(
        () => this.#maybeRecycle(),
        () => undefined,
      )
      .catch(() => undefined);
    return p;
  }

  /**
   * `nft -i` keeps every line it reads in libedit's history, and looking up the newest entry
   * walks the whole list: measured, nft's CPU per transaction grows by ~0.06 ms per 1,000
   * transactions. So after `recycleAfter` transactions the child is retired (EOF on its stdin:
   * it finishes and exits) and a fresh one is started and warmed up right away, while the
   * channel is idle, so the next transaction does not pay for the start.
   */
  #maybeRecycle(): Promise<void> | undefined {
    const old = this.#child;
    if (this.#closed || old === undefined || this.#sinceSpawn < this.#recycleAfter) return;
    this.#child = undefined;
    const kill = setTimeout(() => old.kill('SIGKILL'), 5000);
    kill.unref();
    old.once('exit', () => clearTimeout(kill));
    old.stdin.end();
    return this.#runNow(undefined).then(
      () => undefined,
      () => undefined,
    );
  }

  /** Runs a script and throws NftError with nft's message when it fails. */
  async exec(script: string): Promise<void> {
    const err = await this.run(script);
    if (err !== '') throw new NftError(err.trim());
  }

  #spawn(): ChildProcessWithoutNullStreams {
    const [cmd, ...args] = this.#argv;
    if (cmd === undefined) throw new NftError('empty nft command');
    // nft -i loads $HOME/.nft.history at start and appends every line it read at exit: the
    // daemon's file grew without bound and every start read all of it back. With HOME set to a
    // device that is not a directory, both fail (silently) and nothing is kept.
    const child = spawn(cmd, [...args, '-i'], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, HOME: '/dev/null' },
    });
    this.#stderr = '';
    this.#sinceSpawn = 0;
    child.stdout.resume();
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      if (this.#child !== child) return;
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

  /** Sends `script` (undefined: only the sentinel, to warm up a fresh child). */
  #runNow(script: string | undefined): Promise<string> {
    if (this.#closed) return Promise.reject(new NftError('nft channel closed'));
    const child = this.#child ?? this.#spawn();
    const token = `${SENTINEL_PREFIX}${++this.#seq}`;
    let line: string;
    let file: string | undefined;
    const flat =
      script !== undefined && script.length <= this.#inlineMax
        ? script.trim().split('\n').join('; ')
        : '';
    if (script === undefined) {
      line = '';
    } else if (flat !== '' && flat.length <= this.#inlineMax) {
      line = flat;
    } else {
      file = `${this.#prefix()}${this.#seq}.nft`;
      try {
        // A fresh name (O_EXCL: never follows a planted link), readable by this user only.
        writeFileSync(file, script, { mode: 0o600, flag: 'wx' });
      } catch {
        // No writable scratch directory: type every script from now on (slower, still correct).
        this.#inlineMax = Infinity;
        return this.#runNow(script);
      }
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
      if (script !== undefined) this.#sinceSpawn++;
      child.stdin.write(line === '' ? `${token}\n` : `${line}\n${token}\n`);
    });
    if (file === undefined) return done;
    // nft has read the file before it answers the sentinel.
    const f = file;
    return done.then(
      (err) => {
        rmSync(f, { force: true });
        // nft runs where our scratch directory does not exist (another mount namespace, e.g.
        // a command entering a container): nothing was applied; type scripts from now on.
        if (script !== undefined && err.includes(`File not found: ${f}`)) {
          this.#inlineMax = Infinity;
          return this.#runNow(script);
        }
        return err;
      },
      (e: unknown) => {
        rmSync(f, { force: true });
        throw e;
      },
    );
  }

  #prefix(): string {
    if (this.#filePrefix !== undefined) return this.#filePrefix;
    let dir = this.#scratchParent;
    if (dir === undefined) {
      try {
        accessSync('/dev/shm', constants.W_OK);
        dir = statSync('/dev/shm').isDirectory() ? '/dev/shm' : tmpdir();
      } catch {
        dir = tmpdir();
      }
    }
    this.#filePrefix = join(dir, `pinhole-nft-${process.pid}-${randomBytes(6).toString('hex')}-`);
    return this.#filePrefix;
  }

  /** Ends the child process after the transactions already queued. */
  async close(): Promise<void> {
    await this.#chain;
    this.#closed = true;
    const child = this.#child;
    this.#child = undefined;
    if (child) await endChild(child);
  }
}
