import { describe, expect, it } from 'vitest';
import { FakeTimers } from '../test/helpers.js';
import { ExpiryQueue } from './expiry-queue.js';

describe('ExpiryQueue: many deadlines, one timer', () => {
  it('fires keys in deadline order, honours updates and deletes', () => {
    const timers = new FakeTimers();
    const fired: string[] = [];
    const q = new ExpiryQueue<string>((k) => fired.push(k), timers);
    const t0 = timers.now();
    q.set('a', t0 + 300);
    q.set('b', t0 + 100);
    q.set('c', t0 + 200);
    q.set('d', t0 + 50);
    q.set('b', t0 + 400); // refreshed
    q.delete('d');
    timers.advance(250);
    expect(fired).toEqual(['c']);
    timers.advance(1000);
    expect(fired).toEqual(['c', 'a', 'b']);
    expect(q.size).toBe(0);
  });

  it('keeps heap order under random operations (checked against a sorted model)', () => {
    const timers = new FakeTimers();
    const fired: number[] = [];
    const q = new ExpiryQueue<number>((k) => fired.push(k), timers);
    const model = new Map<number, number>();
    let x = 7;
    const rnd = (n: number): number => {
      x = (x * 1103515245 + 12345) & 0x7fffffff;
      return x % n;
    };
    const base = timers.now();
    for (let i = 0; i < 5000; i++) {
      const k = rnd(800);
      if (rnd(4) === 0) {
        q.delete(k);
        model.delete(k);
      } else {
        const at = base + 1 + rnd(100_000);
        q.set(k, at);
        model.set(k, at);
      }
    }
    expect(q.size).toBe(model.size);
    timers.advance(200_000);
    const expected = [...model].sort((a, b) => a[1] - b[1]).map(([k]) => k);
    expect(fired.map((k) => model.get(k))).toEqual(expected.map((k) => model.get(k)));
    expect(new Set(fired)).toEqual(new Set(expected));
  });

  it('uses at most one pending timer whatever the number of keys', () => {
    const timers = new FakeTimers();
    let armed = 0;
    let cleared = 0;
    const counting = {
      now: () => timers.now(),
      setTimeout: (fn: () => void, ms: number) => {
        armed++;
        return timers.setTimeout(fn, ms);
      },
      clearTimeout: (h: unknown) => {
        cleared++;
        timers.clearTimeout(h);
      },
    };
    const q = new ExpiryQueue<number>(() => {}, counting);
    // Increasing deadlines: the earliest never changes, so the timer is armed once.
    for (let i = 0; i < 100_000; i++) q.set(i, timers.now() + 60_000 + i);
    expect(armed - cleared).toBe(1);
    expect(armed).toBe(1);
  });
});
