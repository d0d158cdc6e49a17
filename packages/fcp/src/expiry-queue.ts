/**
 * Deadlines for many keys with ONE timer: an indexed binary min-heap (O(log n) insert, update,
 * delete) and a single `setTimeout` armed for the earliest deadline. 100,000 live rules cost
 * 100,000 small heap entries and one timer, not 100,000 timers.
 */

export interface TimerApi {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemTimers: TimerApi = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

interface Entry<K> {
  key: K;
  at: number;
  index: number;
}

/** setTimeout's maximum delay; longer deadlines re-arm on wake-up. */
const MAX_DELAY = 2_147_483_647;

export class ExpiryQueue<K> {
  readonly #heap: Entry<K>[] = [];
  readonly #byKey = new Map<K, Entry<K>>();
  readonly #timers: TimerApi;
  readonly #onExpire: (key: K) => void;
  #handle: unknown;
  #armedAt = Number.POSITIVE_INFINITY;
  #closed = false;

  constructor(onExpire: (key: K) => void, timers: TimerApi = systemTimers) {
    this.#onExpire = onExpire;
    this.#timers = timers;
  }

  get size(): number {
    return this.#heap.length;
  }

  has(key: K): boolean {
    return this.#byKey.has(key);
  }

  /** Absolute deadline of `key`, if scheduled. */
  deadline(key: K): number | undefined {
    return this.#byKey.get(key)?.at;
  }

  /** Schedules (or reschedules) `key` to expire at absolute time `at` (ms). */
  set(key: K, at: number): void {
    const e = this.#byKey.get(key);
    if (e) {
      const old = e.at;
      e.at = at;
      if (at < old) this.#up(e.index);
      else this.#down(e.index);
    } else {
      const entry: Entry<K> = { key, at, index: this.#heap.length };
      this.#heap.push(entry);
      this.#byKey.set(key, entry);
      this.#up(entry.index);
    }
    this.#arm();
  }

  delete(key: K): boolean {
    const removed = this.#remove(key);
    if (removed) this.#arm();
    return removed;
  }

  #remove(key: K): boolean {
    const e = this.#byKey.get(key);
    if (!e) return false;
    this.#byKey.delete(key);
    const last = this.#heap.pop();
    if (last && last !== e) {
      this.#heap[e.index] = last;
      last.index = e.index;
      this.#up(last.index);
      this.#down(last.index);
    }
    return true;
  }

  /** Stops the timer; entries are dropped. */
  close(): void {
    this.#closed = true;
    if (this.#handle !== undefined) this.#timers.clearTimeout(this.#handle);
    this.#handle = undefined;
    this.#heap.length = 0;
    this.#byKey.clear();
  }

  #arm(): void {
    if (this.#closed) return;
    const top = this.#heap[0];
    const at = top ? top.at : Number.POSITIVE_INFINITY;
    if (at === this.#armedAt) return;
    if (this.#handle !== undefined) this.#timers.clearTimeout(this.#handle);
    this.#handle = undefined;
    this.#armedAt = at;
    if (!top) return;
    const delay = Math.min(MAX_DELAY, Math.max(0, at - this.#timers.now()));
    this.#handle = this.#timers.setTimeout(() => this.#fire(), delay);
  }

  #fire(): void {
    this.#handle = undefined;
    this.#armedAt = Number.POSITIVE_INFINITY;
    const now = this.#timers.now();
    // Bound the work per wake-up so a mass expiry does not block the event loop for long.
    for (let n = 0; n < 10_000; n++) {
      const top = this.#heap[0];
      if (!top || top.at > now || this.#closed) break;
      this.#remove(top.key);
      this.#onExpire(top.key);
    }
    this.#arm();
  }

  #less(a: number, b: number): boolean {
    return (this.#heap[a]?.at ?? 0) < (this.#heap[b]?.at ?? 0);
  }

  #swap(a: number, b: number): void {
    const h = this.#heap;
    const ea = h[a];
    const eb = h[b];
    if (!ea || !eb) return;
    h[a] = eb;
    h[b] = ea;
    eb.index = a;
    ea.index = b;
  }

  #up(i: number): void {
    let c = i;
    while (c > 0) {
      const p = (c - 1) >> 1;
      if (!this.#less(c, p)) break;
      this.#swap(c, p);
      c = p;
    }
  }

  #down(i: number): void {
    const n = this.#heap.length;
    let c = i;
    for (;;) {
      const l = 2 * c + 1;
      const r = l + 1;
      let m = c;
      if (l < n && this.#less(l, m)) m = l;
      if (r < n && this.#less(r, m)) m = r;
      if (m === c) break;
      this.#swap(c, m);
      c = m;
    }
  }
}
