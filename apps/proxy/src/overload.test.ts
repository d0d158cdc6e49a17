import { afterEach, describe, expect, it } from 'vitest';
import { parseArgs } from './config.js';
import {
  OVERLOAD_MAX_STEP_UP,
  OverloadGuard,
  cappedSockets,
  nextRatio,
  parseProcUdp,
  thresholdOf,
  type OverloadGuardOptions,
} from './overload.js';
import { startProxy, type RunningProxy } from './proxy.js';
import {
  bye,
  closeCores,
  invite,
  quiet,
  sendWhileBlocked,
  setup,
  tick,
  CALLER,
} from '../test/core-harness.js';

const PROC_UDP = [
  '   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops',
  '  123: 010112C6:13C4 00000000:0000 07 00000000:00621600 00:00000000 00000000     0        0 53421 2 ffff8a0b4c2e1000 1130',
  '  124: 0100007F:A1B2 00000000:0000 07 00000000:00000A00 00:00000000 00000000     0        0 53422 2 ffff8a0b4c2e1400 0',
  '  125: 00000000:13C4 00000000:0000 07 00000000:00FFFFFF 00:00000000 00000000     0        0 99999 2 ffff8a0b4c2e1800 7',
  'garbage line',
  '',
].join('\n');

const PROC_UDP6 = [
  '  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops',
  '   17: 00000000000000000000000001000000:13C4 00000000000000000000000000000000:0000 07 00000000:00002000 00:00000000 00000000     0        0 60001 2 ffff8a0b4c2e2000 0',
  '',
].join('\n');

describe('parseProcUdp', () => {
  it("reads the port, queued bytes and drops of this process's sockets only (by inode)", () => {
    expect(parseProcUdp(PROC_UDP, new Set(['53421', '53422']))).toEqual([
      { port: 5060, inode: '53421', queued: 0x621600, drops: 1130 },
      { port: 0xa1b2, inode: '53422', queued: 0xa00, drops: 0 },
    ]);
    expect(parseProcUdp(PROC_UDP6, new Set(['60001']))).toEqual([
      { port: 5060, inode: '60001', queued: 0x2000, drops: 0 },
    ]);
    expect(parseProcUdp(PROC_UDP, new Set())).toEqual([]);
    expect(parseProcUdp('', new Set(['53421']))).toEqual([]);
  });
});

describe('thresholds', () => {
  it('is queueBytes, or half the receive buffer the kernel granted when that is smaller', () => {
    const big = { port: 5060, recvBufferBytes: 8 << 20 };
    const capped = { port: 5070, recvBufferBytes: 425_984 }; // 2 × the default rmem_max
    expect(thresholdOf(big, 1 << 20)).toBe(1 << 20);
    expect(thresholdOf(capped, 1 << 20)).toBe(212_992);
    expect(cappedSockets([big, capped], 1 << 20)).toEqual([capped]);
    expect(cappedSockets([big, capped], 65_536)).toEqual([]);
    expect(cappedSockets([big, capped], 0)).toEqual([]); // off: nothing to warn about
  });
});

describe('the control law (nextRatio)', () => {
  it('rises with a long queue that is not shrinking, in proportion to the fill, capped', () => {
    expect(nextRatio(0, 1, 0)).toBe(0.1);
    expect(nextRatio(0, 3, 1)).toBe(0.3);
    expect(nextRatio(0.2, 50, 3)).toBe(0.2 + OVERLOAD_MAX_STEP_UP);
    expect(nextRatio(0.9, 4, 2)).toBe(1);
  });

  it('holds while a long queue shrinks, and between half the threshold and the threshold', () => {
    expect(nextRatio(0.6, 2, 3)).toBe(0.6);
    expect(nextRatio(0.6, 0.7, 0.2)).toBe(0.6);
  });

  it('falls once the queue is short, and reaches exactly 0', () => {
    let r = 1;
    const seen: number[] = [];
    for (let i = 0; i < 20 && r > 0; i++) seen.push((r = nextRatio(r, 0.1, 0.1)));
    expect(seen[0]).toBe(0.73);
    expect(seen.at(-1)).toBe(0);
    expect(seen.length).toBe(9);
    for (let i = 1; i < seen.length; i++) expect(seen[i]).toBeLessThan(seen[i - 1]!);
  });
});

function guardOf(
  fills: (number | undefined | Error)[],
  extra: Partial<OverloadGuardOptions> = {},
): { guard: OverloadGuard; changes: [number, number][] } {
  const changes: [number, number][] = [];
  const guard = new OverloadGuard({
    settings: { queueBytes: 1024, retryAfterSec: 5 },
    sockets: () => [{ port: 5060, recvBufferBytes: 1 << 20 }],
    read: () => {
      const f = fills.shift();
      return f instanceof Error ? Promise.reject(f) : Promise.resolve(f);
    },
    onChange: (r, f) => changes.push([r, f]),
    ...extra,
  });
  return { guard, changes };
}

describe('OverloadGuard', () => {
  it('refuses nothing until a reading says the queue is long, then the share it computed', async () => {
    let draw = 0.15;
    const { guard, changes } = guardOf([0.2, 2, 2.5, 0.1], { random: () => draw });
    expect(guard.shed()).toBe(false);
    await guard.tick();
    expect(guard.ratio).toBe(0);
    expect(guard.shed()).toBe(false);
    await guard.tick();
    expect(guard.ratio).toBe(0.2);
    expect(guard.fill).toBe(2);
    expect(guard.shed()).toBe(true); // 0.15 < 0.2
    draw = 0.25;
    expect(guard.shed()).toBe(false);
    await guard.tick();
    expect(guard.ratio).toBe(0.45);
    await guard.tick();
    expect(guard.ratio).toBe(0.32);
    expect(changes).toEqual([
      [0.2, 2],
      [0.45, 2.5],
      [0.32, 0.1],
    ]);
  });

  it('refuses nothing when the queue cannot be read, and when turned off', async () => {
    const { guard } = guardOf([3, new Error('no /proc'), 3]);
    await guard.tick();
    expect(guard.ratio).toBeGreaterThan(0);
    await guard.tick();
    expect(guard.ratio).toBe(0);
    await guard.tick();
    expect(guard.ratio).toBeGreaterThan(0);
    guard.configure({ queueBytes: 0, retryAfterSec: 9 });
    expect(guard.ratio).toBe(0);
    expect(guard.retryAfterSec).toBe(9);
    expect(guard.shed()).toBe(false);
  });

  it('discards a reading that was in progress when it was turned off', async () => {
    let release!: (fill: number) => void;
    const guard = new OverloadGuard({
      settings: { queueBytes: 1024, retryAfterSec: 0 },
      sockets: () => [{ port: 5060, recvBufferBytes: 1 << 20 }],
      read: () => new Promise<number>((r) => (release = r)),
    });
    const reading = guard.tick();
    await tick(1);
    guard.configure({ queueBytes: 0, retryAfterSec: 0 });
    release(5);
    await reading;
    expect(guard.ratio).toBe(0);
    expect(guard.shed()).toBe(false);
  });

  it('waits for the reading in progress before an explicit one', async () => {
    const fills = [2, 3];
    let release: (() => void) | undefined;
    const guard = new OverloadGuard({
      settings: { queueBytes: 1024, retryAfterSec: 0 },
      sockets: () => [{ port: 5060, recvBufferBytes: 1 << 20 }],
      read: () =>
        new Promise<number>((r) => {
          const f = fills.shift()!;
          if (release === undefined) release = () => r(f);
          else r(f);
        }),
    });
    const first = guard.tick();
    const second = guard.tick();
    await tick(1);
    release!();
    await Promise.all([first, second]);
    expect(guard.fill).toBe(3); // two readings, not one
    expect(guard.ratio).toBe(0.5);
  });

  it('reads nothing without sockets to watch', async () => {
    const guard = new OverloadGuard({
      settings: { queueBytes: 1024, retryAfterSec: 5 },
      sockets: () => [],
    });
    await guard.tick();
    expect(guard.ratio).toBe(0);
    expect(guard.fill).toBe(0);
  });
});

describe('the proxy core under overload', () => {
  afterEach(closeCores);
  const always = { shed: () => true, retryAfterSec: 7 };

  it('answers a new INVITE 503 with Retry-After and does not forward it', async () => {
    const { sent, receive, metrics } = setup([], undefined, undefined, always);
    receive(invite());
    await tick();
    const statuses = sent.map((s) => s.msg.status);
    expect(statuses.at(-1)).toBe(503);
    expect(sent.some((s) => s.msg.isRequest)).toBe(false);
    const r = sent.at(-1)!;
    expect(r.to).toEqual(CALLER);
    expect(r.msg.reason).toBe('Overloaded');
    expect(r.msg.get('retry-after')).toBe('7');
    expect(metrics.render()).toContain('pinhole_proxy_overload_refused_total{method="INVITE"} 1');
    // Its retransmission gets the same 503 from the transaction, not a second decision.
    receive(invite());
    await tick();
    expect(sent.filter((s) => s.msg.status === 503)).toHaveLength(2);
    expect(metrics.render()).toContain('pinhole_proxy_overload_refused_total{method="INVITE"} 1');
  });

  it('still routes in-dialog requests (a BYE ends a call and frees its holes)', async () => {
    const { sent, receive } = setup([], undefined, undefined, always);
    receive(bye('sip:bob@198.19.0.7:5070'));
    await tick();
    expect(sent.find((s) => s.msg.isRequest)?.msg.method).toBe('BYE');
    expect(sent.some((s) => s.msg.status === 503)).toBe(false);
  });

  it('sends no Retry-After unless one is configured, and answers OPTIONS to itself', async () => {
    const { sent, receive } = setup([], undefined, undefined, {
      shed: () => true,
      retryAfterSec: 0,
    });
    receive(invite());
    await tick();
    const r = sent.find((s) => s.msg.status === 503)!;
    expect(r.msg.reason).toBe('Overloaded');
    expect(r.msg.has('retry-after')).toBe(false);
    receive(
      [
        'OPTIONS sip:198.18.0.1:5060 SIP/2.0',
        'Via: SIP/2.0/UDP 198.18.0.2:5062;branch=z9hG4bKopt1',
        'Max-Forwards: 70',
        'From: <sip:lb@198.18.0.2>;tag=o1',
        'To: <sip:198.18.0.1>',
        'Call-ID: options-1@198.18.0.2',
        'CSeq: 1 OPTIONS',
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n'),
    );
    await tick();
    expect(sent.at(-1)!.msg.status).toBe(200);
    expect(sent.at(-1)!.msg.cseq()?.method).toBe('OPTIONS');
  });

  it("answers past a full transaction table with the overload control's Retry-After: none by default, the configured one after a reload", async () => {
    // Room for two transactions: the first call's server and client transactions fill it.
    const h = setup([], undefined, undefined, undefined, 2);
    h.receive(invite());
    h.receive(invite([], 'z9hG4bKc2'));
    await tick();
    const full = h.sent.filter((s) => s.msg.status === 503);
    expect(full).toHaveLength(1);
    expect(full[0]!.msg.has('retry-after')).toBe(false);
    const { config } = parseArgs([
      '--route',
      'default=sip:198.19.0.2:5060',
      '--overload-retry-after',
      '30',
    ]);
    h.core.reconfigure(config);
    h.receive(invite([], 'z9hG4bKc3'));
    await tick();
    const again = h.sent.filter((s) => s.msg.status === 503);
    expect(again.map((s) => s.msg.get('retry-after'))).toEqual([undefined, '30']);
  });

  it('serves everything when overload control says so', async () => {
    const { sent, receive } = setup([], undefined, undefined, {
      shed: () => false,
      retryAfterSec: 7,
    });
    receive(invite());
    await tick();
    expect(sent.find((s) => s.msg.isRequest)?.msg.method).toBe('INVITE');
  });
});

describe('overload control on a real socket', () => {
  let proxy: RunningProxy | undefined;
  afterEach(async () => {
    await proxy?.stop();
    proxy = undefined;
  });

  it("reads the listener's kernel receive queue and starts refusing when it is long", async () => {
    const { config } = parseArgs([
      '--listen',
      'udp:127.0.0.1:0',
      '--route',
      'default=sip:127.0.0.1:9',
      '--overload-queue-bytes',
      '16384',
      '--no-warmup',
    ]);
    proxy = await startProxy({ config, logger: quiet });
    const port = proxy.listeners[0]!.port;
    await proxy.overload.tick(); // finds its socket (inode) while the queue is empty
    expect(proxy.overload.fill).toBe(0);
    expect(proxy.overload.ratio).toBe(0);
    // The event loop is blocked while another process sends: the datagrams wait in the kernel.
    sendWhileBlocked(
      port,
      invite().replace('\r\n\r\n', '\r\nX-Pad: ' + 'x'.repeat(600) + '\r\n\r\n'),
      200,
    );
    await proxy.overload.tick();
    expect(proxy.overload.fill).toBeGreaterThanOrEqual(1);
    expect(proxy.overload.ratio).toBeGreaterThan(0);
    expect(proxy.metrics.render()).toMatch(/pinhole_proxy_overload_refused_share 0\.\d+/);
    // The queue drains; the share comes down to 0 with the readings that follow.
    for (let i = 0; i < 40 && proxy.overload.ratio > 0; i++) {
      await tick(20);
      await proxy.overload.tick();
    }
    expect(proxy.overload.ratio).toBe(0);
  });

  it('rejects an overload setting that is not a byte count, naming the field', () => {
    expect(() => parseArgs(['--overload-queue-bytes', '0.3'])).toThrow(/--overload-queue-bytes/);
    expect(() => parseArgs(['--overload-retry-after', '-1'])).toThrow(/--overload-retry-after/);
    expect(() => parseArgs(['--overload-queue-bytes', '100'])).toThrow(/at least 16384/);
    expect(parseArgs(['--overload-retry-after', '30']).config.overload.retryAfter).toBe(30);
    expect(parseArgs(['--overload-queue-bytes', '0']).config.overload.queueBytes).toBe(0);
  });
});
