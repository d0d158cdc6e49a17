/**
 * Timer values (RFC 3261 §17 and Table 4, RFC 6026 §8.11 for L and M) and the injectable clock.
 * Every duration in milliseconds.
 */

/** The base timers a deployment may tune. */
export interface TimerConfig {
  /** RTT estimate (RFC 3261 §17.1.1.1: "T1 is an estimate of the round-trip time (RTT), and it defaults to 500 ms"). */
  readonly T1: number;
  /** Maximum retransmit interval for non-INVITE requests and INVITE responses (default 4 s). */
  readonly T2: number;
  /** Maximum duration a message will remain in the network (default 5 s). */
  readonly T4: number;
  /** Proxy INVITE transaction timeout, Timer C (RFC 3261 §16.6 step 11: "The timer MUST be larger than 3 minutes"). */
  readonly C: number;
  /** How long an INVITE server transaction waits for the TU before sending 100 Trying itself (200 ms). */
  readonly trying: number;
}

export const DEFAULT_TIMER_CONFIG: TimerConfig = Object.freeze({
  T1: 500,
  T2: 4_000,
  T4: 5_000,
  // "larger than 3 minutes": one second more than three minutes.
  C: 181_000,
  trying: 200,
});

/**
 * The derived timers for one transport reliability. A retransmission timer (A, E, G) is
 * `undefined` over a reliable transport: it is not started at all.
 */
export interface TimerValues {
  readonly T1: number;
  readonly T2: number;
  readonly T4: number;
  readonly A: number | undefined;
  readonly B: number;
  readonly C: number;
  readonly D: number;
  readonly E: number | undefined;
  readonly F: number;
  readonly G: number | undefined;
  readonly H: number;
  readonly I: number;
  readonly J: number;
  readonly K: number;
  readonly L: number;
  readonly M: number;
  readonly trying: number;
  /** RFC 3261 §9.1: wait 64*T1 for the final response to a cancelled request. */
  readonly cancel: number;
}

/** Merges partial settings over the defaults and checks them (programmer input, so it throws). */
export function timerConfig(partial: Partial<TimerConfig> = {}): TimerConfig {
  const c = { ...DEFAULT_TIMER_CONFIG, ...partial };
  for (const [name, value] of Object.entries(c)) {
    if (!Number.isFinite(value) || value < 0) throw new RangeError(`timer ${name} must be >= 0`);
  }
  if (c.T1 <= 0) throw new RangeError('T1 must be > 0');
  return c;
}

/** Derives every §17 timer from T1/T2/T4 and the transport's reliability (RFC 3261 Table 4). */
export function timerValues(config: TimerConfig, reliable: boolean): TimerValues {
  const { T1, T2, T4 } = config;
  const t64 = 64 * T1;
  return {
    T1,
    T2,
    T4,
    // §17.1.1.2: "If an unreliable transport is being used, the client transaction MUST start
    // timer A with a value of T1. If a reliable transport is being used, the client transaction
    // SHOULD NOT start timer A"
    A: reliable ? undefined : T1,
    // §17.1.1.2: "For any transport, the client transaction MUST start timer B with a value of 64*T1"
    B: t64,
    C: config.C,
    // §17.1.1.2: "The client transaction SHOULD start timer D ... with a value of at least 32
    // seconds for unreliable transports, and a value of zero seconds for reliable transports."
    D: reliable ? 0 : Math.max(32_000, t64),
    // §17.1.2.2: "If an unreliable transport is in use, the client transaction MUST set timer E to fire in T1 seconds."
    E: reliable ? undefined : T1,
    // §17.1.2.2: "the client transaction MUST set timer F to fire in 64*T1 seconds"
    F: t64,
    // §17.2.1: "If an unreliable transport is being used, the server transaction MUST start timer G"
    G: reliable ? undefined : T1,
    // §17.2.1: "timer H MUST be set to fire in 64*T1 seconds for all transports"
    H: t64,
    // §17.2.1: "timer I ... with a value of T4 seconds for unreliable transports, and zero seconds for reliable transports"
    I: reliable ? 0 : T4,
    // §17.2.2: "Timer J ... with a value of 64*T1 seconds for unreliable transports, and zero seconds for reliable transports"
    J: reliable ? 0 : t64,
    // §17.1.2.2: "timer K ... with a value of T4 seconds for unreliable transports, and zero seconds for reliable transports"
    K: reliable ? 0 : T4,
    // RFC 6026 §8.7 and §8.11: Timer L and Timer M are 64*T1 for every transport.
    L: t64,
    M: t64,
    trying: config.trying,
    cancel: t64,
  };
}

/**
 * The next interval of a doubling retransmission timer. Timer A doubles without a cap
 * (§17.1.1.2: "the request is retransmitted with intervals that double after each
 * transmission"); Timers E and G cap at T2 (§17.1.2.2: "the interval doubles until it reaches
 * T2"; §17.2.1: "reset with a value of MIN(2*T1, T2)").
 */
export function nextInterval(current: number, cap?: number): number {
  const doubled = current * 2;
  return cap === undefined ? doubled : Math.min(doubled, cap);
}

/** Opaque timer handle of a {@link Clock}. */
export type TimerHandle = unknown;

/** Time and timers, injected so tests run on a fake clock. */
export interface Clock {
  now(): number;
  setTimer(delayMs: number, callback: () => void): TimerHandle;
  clearTimer(handle: TimerHandle): void;
}

/** The real clock: `Date.now` and unref'd Node timers (the layer never keeps a process alive). */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(delayMs, callback) {
    const t = setTimeout(callback, delayMs);
    t.unref();
    return t;
  },
  clearTimer(handle) {
    clearTimeout(handle as ReturnType<typeof setTimeout>);
  },
};

const noop = (): void => undefined;

interface FakeTimer {
  readonly at: number;
  readonly seq: number;
  /** Dropped on clear, so a cleared timer waiting in the heap retains nothing. */
  callback: () => void;
  cancelled: boolean;
}

/**
 * A deterministic clock for tests and benchmarks: time moves only through `advance`/`runAll`.
 * Timers due at the same instant fire in the order they were set.
 */
export class FakeClock implements Clock {
  #now: number;
  #seq = 0;
  #heap: FakeTimer[] = [];
  #live = 0;

  constructor(start = 0) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimer(delayMs: number, callback: () => void): TimerHandle {
    const t: FakeTimer = {
      at: this.#now + Math.max(0, delayMs),
      seq: this.#seq++,
      callback,
      cancelled: false,
    };
    this.#push(t);
    this.#live++;
    return t;
  }

  clearTimer(handle: TimerHandle): void {
    const t = handle as FakeTimer;
    if (!t.cancelled) {
      t.cancelled = true;
      t.callback = noop;
      this.#live--;
    }
  }

  /** Number of timers set and neither fired nor cleared. */
  pending(): number {
    return this.#live;
  }

  /** Moves time forward by `ms`, firing every timer due on the way, in order. */
  advance(ms: number): void {
    this.advanceTo(this.#now + ms);
  }

  advanceTo(target: number): void {
    for (;;) {
      const top = this.#heap[0];
      if (top === undefined || top.at > target) break;
      this.#pop();
      if (top.cancelled) continue;
      top.cancelled = true;
      this.#live--;
      this.#now = top.at;
      top.callback();
    }
    if (target > this.#now) this.#now = target;
  }

  /** Fires timers until none is left, at most `limit` of them; returns how many fired. */
  runAll(limit = 1_000_000): number {
    let fired = 0;
    while (fired < limit) {
      const top = this.#heap[0];
      if (top === undefined) break;
      this.#pop();
      if (top.cancelled) continue;
      top.cancelled = true;
      this.#live--;
      if (top.at > this.#now) this.#now = top.at;
      top.callback();
      fired++;
    }
    return fired;
  }

  #less(a: FakeTimer, b: FakeTimer): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  #push(t: FakeTimer): void {
    const h = this.#heap;
    h.push(t);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = h[p] as FakeTimer;
      if (!this.#less(t, parent)) break;
      h[i] = parent;
      i = p;
    }
    h[i] = t;
  }

  #pop(): void {
    const h = this.#heap;
    const last = h.pop();
    if (last === undefined || h.length === 0) return;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= h.length) break;
      const r = l + 1;
      const left = h[l] as FakeTimer;
      const right = h[r];
      const c = right !== undefined && this.#less(right, left) ? r : l;
      const child = h[c] as FakeTimer;
      if (!this.#less(child, last)) break;
      h[i] = child;
      i = c;
    }
    h[i] = last;
  }
}
