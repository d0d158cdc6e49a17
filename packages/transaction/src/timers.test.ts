import { describe, expect, it } from 'vitest';
import {
  DEFAULT_TIMER_CONFIG,
  FakeClock,
  nextInterval,
  timerConfig,
  timerValues,
} from './timers.js';

describe('timer values (RFC 3261 Table 4, RFC 6026)', () => {
  const udp = timerValues(DEFAULT_TIMER_CONFIG, false);
  const tcp = timerValues(DEFAULT_TIMER_CONFIG, true);

  it('T1 defaults to 500 ms, T2 to 4 s, T4 to 5 s', () => {
    expect([udp.T1, udp.T2, udp.T4]).toEqual([500, 4000, 5000]);
  });

  it('MUST start timer A with a value of T1 over an unreliable transport and SHOULD NOT start it over a reliable one', () => {
    expect(udp.A).toBe(500);
    expect(tcp.A).toBeUndefined();
  });

  it('sets B, F, H, L and M to 64*T1 for every transport', () => {
    for (const t of [udp, tcp]) {
      expect([t.B, t.F, t.H, t.L, t.M]).toEqual([32000, 32000, 32000, 32000, 32000]);
    }
  });

  it('sets Timer D to at least 32 seconds for unreliable transports and zero for reliable ones', () => {
    expect(udp.D).toBe(32000);
    expect(tcp.D).toBe(0);
    expect(timerValues(timerConfig({ T1: 1000 }), false).D).toBe(64000);
  });

  it('sets I and K to T4, J to 64*T1 over UDP, and all three to zero over TCP', () => {
    expect([udp.I, udp.J, udp.K]).toEqual([5000, 32000, 5000]);
    expect([tcp.I, tcp.J, tcp.K]).toEqual([0, 0, 0]);
  });

  it('does not start E or G over a reliable transport', () => {
    expect([udp.E, udp.G]).toEqual([500, 500]);
    expect([tcp.E, tcp.G]).toEqual([undefined, undefined]);
  });

  it('makes Timer C larger than 3 minutes', () => {
    expect(udp.C).toBeGreaterThan(180_000);
  });

  it('derives every timer from a configured T1/T2/T4', () => {
    const t = timerValues(timerConfig({ T1: 100, T2: 800, T4: 1000 }), false);
    expect([t.A, t.B, t.E, t.G, t.H, t.I, t.J, t.K]).toEqual([
      100, 6400, 100, 100, 6400, 1000, 6400, 1000,
    ]);
  });

  it('rejects a non-positive T1 or a negative timer', () => {
    expect(() => timerConfig({ T1: 0 })).toThrow(RangeError);
    expect(() => timerConfig({ T4: -1 })).toThrow(RangeError);
  });

  it('doubles Timer A without a cap and caps E and G at T2', () => {
    const a = [500];
    const g = [500];
    for (let i = 0; i < 6; i++) {
      a.push(nextInterval(a.at(-1) ?? 0));
      g.push(nextInterval(g.at(-1) ?? 0, 4000));
    }
    expect(a).toEqual([500, 1000, 2000, 4000, 8000, 16000, 32000]);
    expect(g).toEqual([500, 1000, 2000, 4000, 4000, 4000, 4000]);
  });
});

describe('FakeClock', () => {
  it('fires timers in time order, ties in the order set', () => {
    const c = new FakeClock();
    const order: string[] = [];
    c.setTimer(20, () => order.push('b'));
    c.setTimer(10, () => order.push('a'));
    c.setTimer(20, () => order.push('c'));
    c.advance(15);
    expect(order).toEqual(['a']);
    expect(c.now()).toBe(15);
    c.advance(5);
    expect(order).toEqual(['a', 'b', 'c']);
  });

  it('does not fire cleared timers and counts pending ones', () => {
    const c = new FakeClock();
    let fired = 0;
    const h = c.setTimer(10, () => fired++);
    c.setTimer(10, () => fired++);
    expect(c.pending()).toBe(2);
    c.clearTimer(h);
    c.clearTimer(h);
    expect(c.pending()).toBe(1);
    c.runAll();
    expect(fired).toBe(1);
    expect(c.pending()).toBe(0);
  });

  it('fires timers set by callbacks at their own time', () => {
    const c = new FakeClock();
    const at: number[] = [];
    c.setTimer(10, () => {
      at.push(c.now());
      c.setTimer(5, () => at.push(c.now()));
    });
    c.advance(100);
    expect(at).toEqual([10, 15]);
  });
});
