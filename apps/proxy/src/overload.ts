/**
 * Overload control: when more requests arrive than the proxy can handle, it refuses a share of
 * the new ones (out-of-dialog requests: new calls, registrations) with `503 Overloaded` (and a
 * `Retry-After` only when configured, see proxy-core.ts), and keeps serving the calls it has
 * (in-dialog requests, ACK, CANCEL, OPTIONS to the proxy itself and every response always pass). Without it a proxy past its capacity collapses: the
 * datagrams wait in the kernel's receive queue longer than the SIP retransmission timer, every
 * party retransmits, the retransmissions lengthen the queue, and nearly every call fails (RFC
 * 5390 §4: congestion collapse). Seen here: one worker offered 1.2 times what it carries failed
 * 70 % of its calls over 10 s.
 *
 * The signal is the one that precedes the collapse: the bytes waiting in the kernel's receive
 * queue of the proxy's UDP sockets, read from `/proc/net/udp` (and `udp6`) for this process's
 * own sockets (matched by inode). The queue only grows while requests arrive faster than they
 * are handled; it is what makes them late, and a full buffer drops them. The threshold is
 * `queueBytes` (the kernel's accounting, about 1.3 KB per datagram of a call), or half a
 * socket's receive buffer when that is smaller. Off by default: bytes are not time. 1 MiB is
 * some 800 datagrams, 100 to 200 ms of one worker's work at the rates the bench reaches, short
 * of the 500 ms after which SIP retransmits; but two workers sharing two CPUs with other
 * processes keep a standing queue of that size at rates they carry without a failed call, and
 * refused up to 15 % of those calls (apps/proxy/BENCHMARKS.md, run 15). A delay measured in
 * time (a probe datagram through the queue) would serve both; it is not built yet.
 *
 * The control law, one reading every `intervalMs` (50 ms), `fill` = the fullest socket's queue
 * over its threshold:
 *  - fill >= 1 and not lower than at the last reading: the refused share rises by 0.1 times
 *    the fill, at most 0.5 (readings come later when the process is saturated, and the queue
 *    grows fast: a share that rose by a fixed step reached 1 only after the queue was full);
 *  - fill < 0.5: it falls to 0.75 times itself less 0.02 (from 1 to 0 in nine readings: a
 *    slow fall kept refusing calls for seconds after a short stall had passed);
 *  - otherwise (in between, or a long queue that is shrinking): it holds.
 * A request is refused with the current share as its probability, so the share settles near
 * the part of the offered load the proxy cannot carry. TCP is not watched (a stream pushes back
 * on its sender by itself).
 */
import { readFileSync } from 'node:fs';
import { readdir, readlink } from 'node:fs/promises';

/** A reading of one socket from `/proc/net/udp`: its local port, queued and dropped bytes. */
export interface UdpQueue {
  readonly port: number;
  readonly inode: string;
  /** Bytes held in the receive queue (the kernel's accounting: buffers, not payload). */
  readonly queued: number;
  readonly drops: number;
}

/** The rows of `/proc/net/udp` or `/proc/net/udp6` whose inode is in `inodes`. */
export function parseProcUdp(text: string, inodes: ReadonlySet<string>): UdpQueue[] {
  const out: UdpQueue[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
    if (f.length < 13 || !f[0]!.endsWith(':')) continue;
    const inode = f[9]!;
    if (!inodes.has(inode)) continue;
    const local = f[1]!;
    const port = parseInt(local.slice(local.lastIndexOf(':') + 1), 16);
    const q = f[4]!;
    const queued = parseInt(q.slice(q.indexOf(':') + 1), 16);
    const drops = Number(f[f.length - 1]);
    if (!Number.isFinite(port) || !Number.isFinite(queued)) continue;
    out.push({ port, inode, queued, drops: Number.isFinite(drops) ? drops : 0 });
  }
  return out;
}

/** The inodes of this process's sockets (`/proc/self/fd/N -> socket:[inode]`). */
export async function ownSocketInodes(): Promise<Set<string>> {
  const out = new Set<string>();
  let fds: string[];
  try {
    fds = await readdir('/proc/self/fd');
  } catch {
    return out;
  }
  for (const fd of fds) {
    try {
      const target = await readlink(`/proc/self/fd/${fd}`);
      const m = /^socket:\[(\d+)\]$/.exec(target);
      if (m) out.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

/** A watched UDP socket: its local port and the receive buffer the kernel granted, bytes. */
export interface WatchedSocket {
  readonly port: number;
  readonly recvBufferBytes: number;
}

/** A socket's threshold: `queueBytes`, or half its receive buffer when that is smaller. */
export function thresholdOf(socket: WatchedSocket, queueBytes: number): number {
  return Math.min(queueBytes, socket.recvBufferBytes / 2);
}

/** The sockets whose receive buffer makes their threshold smaller than `queueBytes`. */
export function cappedSockets(
  sockets: readonly WatchedSocket[],
  queueBytes: number,
): WatchedSocket[] {
  return queueBytes > 0 ? sockets.filter((x) => thresholdOf(x, queueBytes) < queueBytes) : [];
}

export interface OverloadSettings {
  /** Threshold: bytes in a socket's receive queue; 0 = off. */
  readonly queueBytes: number;
  /** Seconds in the 503's `Retry-After`; 0: no `Retry-After`. */
  readonly retryAfterSec: number;
}

export interface OverloadGuardOptions {
  readonly settings: OverloadSettings;
  /** The sockets to watch (re-read when the listeners change). */
  readonly sockets: () => readonly WatchedSocket[];
  readonly intervalMs?: number;
  /** The fullest socket's queue over its threshold (tests; default: /proc/net/udp{,6}). */
  readonly read?: () => Promise<number | undefined>;
  readonly random?: () => number;
  /** The refused share changed (metrics, logs). */
  readonly onChange?: (ratio: number, fill: number) => void;
  /** The queues cannot be read (no /proc, sockets not found): nothing is refused meanwhile. */
  readonly onBlind?: (why: string) => void;
}

/** Rise per reading, times the fill (a queue twice the threshold raises the share twice as fast). */
export const OVERLOAD_STEP_UP = 0.1;
/** The most the share rises at one reading. */
export const OVERLOAD_MAX_STEP_UP = 0.5;
/** Fall per reading once the queue is short: the share times this, less OVERLOAD_STEP_DOWN. */
export const OVERLOAD_DECAY = 0.75;
export const OVERLOAD_STEP_DOWN = 0.02;

/**
 * The next refused share from the last one and the last two readings (the control law above).
 */
export function nextRatio(ratio: number, fill: number, previousFill: number): number {
  // Rounded to hundredths: the way down ends at exactly 0.
  if (fill >= 1 && fill >= previousFill) {
    const step = Math.min(OVERLOAD_MAX_STEP_UP, OVERLOAD_STEP_UP * fill);
    return Math.min(1, Math.round((ratio + step) * 100) / 100);
  }
  if (fill < 0.5) {
    return Math.max(0, Math.round((ratio * OVERLOAD_DECAY - OVERLOAD_STEP_DOWN) * 100) / 100);
  }
  return ratio;
}

export class OverloadGuard {
  readonly #o: OverloadGuardOptions;
  #settings: OverloadSettings;
  #timer: NodeJS.Timeout | undefined;
  #ratio = 0;
  #fill = 0;
  /** The reading in progress, which an explicit `tick()` waits for. */
  #inflight: Promise<void> | undefined;
  /** Bumped by `stop()`: a reading that began before it is discarded. */
  #epoch = 0;
  #inodes: Set<string> | undefined;
  #watched: readonly WatchedSocket[] | undefined;
  /** Threshold by port, for #watched and #thresholdsFor. */
  #thresholds = new Map<number, number>();
  #thresholdsFor = -1;
  #blind = false;

  constructor(opts: OverloadGuardOptions) {
    this.#o = opts;
    this.#settings = opts.settings;
  }

  /** The share of new requests refused now, 0..1. */
  get ratio(): number {
    return this.#ratio;
  }

  /** The fullest watched socket's queue over its threshold at the last reading. */
  get fill(): number {
    return this.#fill;
  }

  /** Seconds in the 503's `Retry-After`; 0: none. */
  get retryAfterSec(): number {
    return this.#settings.retryAfterSec;
  }

  /** True when this new request is to be refused. */
  shed(): boolean {
    return this.#ratio > 0 && (this.#o.random ?? Math.random)() < this.#ratio;
  }

  start(): void {
    if (this.#timer !== undefined || this.#settings.queueBytes <= 0) return;
    this.#timer = setInterval(() => void this.#begin(), this.#o.intervalMs ?? 50);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#epoch++;
    this.#set(0, 0);
  }

  /** SIGHUP: new settings; 0 stops watching. */
  configure(settings: OverloadSettings): void {
    this.#settings = settings;
    if (settings.queueBytes <= 0) this.stop();
    else this.start();
  }

  /** The listeners changed: their sockets' inodes are looked up again. */
  socketsChanged(): void {
    this.#inodes = undefined;
  }

  /** One reading and one step of the control law, after the one in progress (tests). */
  async tick(): Promise<void> {
    const current = this.#inflight;
    if (current !== undefined) await current;
    await this.#begin();
  }

  /** A reading, unless one is in progress (a slow one: skip a beat rather than pile up). */
  #begin(): Promise<void> {
    if (this.#inflight === undefined) {
      this.#inflight = this.#tick().finally(() => (this.#inflight = undefined));
    }
    return this.#inflight;
  }

  async #tick(): Promise<void> {
    const epoch = this.#epoch;
    let fill: number | undefined;
    let blind = false;
    try {
      fill = await (this.#o.read ?? (() => this.#readProc()))();
    } catch {
      blind = true; // unreadable: no signal, no refusals
    }
    // Turned off (or restarted) while reading: that reading belongs to the old settings.
    if (epoch !== this.#epoch) return;
    if (blind) this.#set(0, 0);
    else if (fill !== undefined) this.#set(nextRatio(this.#ratio, fill, this.#fill), fill);
  }

  #set(ratio: number, fill: number): void {
    const changed = ratio !== this.#ratio;
    this.#ratio = ratio;
    this.#fill = fill;
    if (changed) this.#o.onChange?.(ratio, fill);
  }

  async #readProc(): Promise<number | undefined> {
    const watched = this.#o.sockets();
    if (watched.length === 0) return undefined;
    if (this.#inodes === undefined || this.#watched !== watched) {
      const inodes = await ownSocketInodes();
      // None found (no /proc/self/fd, out of descriptors): look again at the next reading.
      if (inodes.size === 0) this.#noSignal('no socket of this process in /proc/self/fd');
      this.#inodes = inodes;
      this.#watched = watched;
      this.#thresholds.clear();
    }
    const inodes = this.#inodes;
    const thresholds = this.#thresholds;
    if (this.#thresholdsFor !== this.#settings.queueBytes || thresholds.size === 0) {
      // Once per socket set and setting (the cache is cleared with the inodes).
      thresholds.clear();
      for (const s of watched) thresholds.set(s.port, thresholdOf(s, this.#settings.queueBytes));
      this.#thresholdsFor = this.#settings.queueBytes;
    }
    let fill = 0;
    let rows = 0;
    for (const file of ['/proc/net/udp', '/proc/net/udp6']) {
      let text: string;
      try {
        // Synchronous: a few hundred bytes per socket of this network namespace, generated by
        // the kernel; read at once, it is the queue as it is now, not after the thread pool
        // and the datagrams the event loop handles meanwhile.
        text = readFileSync(file, 'latin1');
      } catch {
        continue;
      }
      for (const q of parseProcUdp(text, inodes)) {
        const t = thresholds.get(q.port);
        if (t === undefined || t <= 0) continue;
        rows++;
        fill = Math.max(fill, q.queued / t);
      }
    }
    if (rows === 0) {
      this.#inodes = undefined; // the sockets were replaced: find them again
      this.#noSignal('no watched socket in /proc/net/udp');
    }
    this.#blind = false;
    return fill;
  }

  /** No reading: no refusals, and one warning until a reading succeeds again. */
  #noSignal(why: string): never {
    if (!this.#blind) this.#o.onBlind?.(why);
    this.#blind = true;
    throw new Error(why);
  }
}
