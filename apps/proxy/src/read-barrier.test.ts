import { createSocket, type Socket } from 'node:dgram';
import { parse } from '@pinhole/sip';
import { afterEach, describe, expect, it } from 'vitest';
import { parseArgs, parseListen } from './config.js';
import { startProxy, type RunningProxy } from './proxy.js';
import { PROBE_BYTES, ReadBarrier, type ReadBarrierOptions } from './read-barrier.js';
import { Transports, type Inbound } from './transport.js';
import { answer, invite, quiet, sendWhileBlocked, until } from '../test/core-harness.js';

/** A socket that records the probes instead of sending them (unit tests of the rounds). */
function fakeSocket(): { socket: Socket; sent: Buffer[] } {
  const sent: Buffer[] = [];
  const socket = { send: (b: Buffer) => void sent.push(Buffer.from(b)) } as unknown as Socket;
  return { socket, sent };
}

/** The end of this turn of the event loop, when a round's probes leave. */
const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A barrier over one recording socket. */
function oneSocket(opts: Partial<ReadBarrierOptions> = {}): {
  barrier: ReadBarrier;
  sent: Buffer[];
} {
  const a = fakeSocket();
  const barrier = new ReadBarrier({
    targets: () => [{ socket: a.socket, address: 'x', port: 1 }],
    ...opts,
  });
  return { barrier, sent: a.sent };
}

describe('ReadBarrier', () => {
  it('releases the waiters of a round when every socket has its probe back', async () => {
    const a = fakeSocket();
    const b = fakeSocket();
    const barrier = new ReadBarrier({
      targets: () => [
        { socket: a.socket, address: '127.0.0.1', port: 1 },
        { socket: b.socket, address: '127.0.0.1', port: 2 },
      ],
    });
    const done: string[] = [];
    barrier.wait(() => done.push('first'));
    // A waiter of the same turn of the event loop joins the round; its probes leave at the end.
    barrier.wait(() => done.push('same turn'));
    expect(a.sent).toHaveLength(0);
    await turn();
    expect(a.sent).toHaveLength(1);
    expect(a.sent[0]).toHaveLength(PROBE_BYTES);
    // A waiter of a later turn gets a round of its own, without waiting for the first.
    barrier.wait(() => done.push('later'));
    await turn();
    expect(a.sent).toHaveLength(2);
    expect(barrier.take(a.sent[0]!)).toBe(true);
    expect(done).toEqual([]);
    expect(barrier.take(b.sent[0]!)).toBe(true);
    expect(done).toEqual(['first', 'same turn']);
    barrier.take(a.sent[1]!);
    barrier.take(b.sent[1]!);
    expect(done).toEqual(['first', 'same turn', 'later']);
    expect(barrier.stats).toEqual({ probes: 4, timeouts: 0 });
    barrier.close();
  });

  it('does not take a datagram that is not its probe: another token, or not 24 bytes', async () => {
    const a = fakeSocket();
    const mine = new ReadBarrier({ targets: () => [{ socket: a.socket, address: 'x', port: 1 }] });
    const other = new ReadBarrier({ targets: () => [{ socket: a.socket, address: 'x', port: 1 }] });
    let released = false;
    other.wait(() => undefined);
    await turn();
    mine.wait(() => (released = true));
    await turn();
    expect(mine.take(a.sent[0]!)).toBe(false); // the other barrier's probe
    expect(mine.take(Buffer.from('OPTIONS sip:x SIP/2.0\r\n\r\n'))).toBe(false);
    expect(mine.take(Buffer.alloc(PROBE_BYTES))).toBe(false);
    expect(released).toBe(false);
    expect(mine.take(a.sent[1]!)).toBe(true);
    expect(released).toBe(true);
    mine.close();
    other.close();
  });

  it('releases a round whose probe was lost after its timeout, and consumes the late probe', async () => {
    const { barrier, sent } = oneSocket({ timeoutMs: 20 });
    let released = 0;
    barrier.wait(() => released++);
    await new Promise((r) => setTimeout(r, 60));
    expect(released).toBe(1);
    expect(barrier.stats.timeouts).toBe(1);
    barrier.wait(() => released++);
    await turn();
    // The first round's probe, late: consumed, and it does not release the second round.
    expect(barrier.take(sent[0]!)).toBe(true);
    expect(released).toBe(1);
    expect(barrier.take(sent[1]!)).toBe(true);
    expect(released).toBe(2);
    barrier.close();
  });

  it('a round whose probe is back releases the older rounds first (their probes were lost)', async () => {
    const { barrier, sent } = oneSocket({ timeoutMs: 40 });
    const done: number[] = [];
    barrier.wait(() => done.push(1));
    await new Promise((r) => setTimeout(r, 20));
    barrier.wait(() => done.push(2));
    await turn();
    // Round 2's probe comes back while round 1's is still out: both go, in order.
    barrier.take(sent[1]!);
    expect(done).toEqual([1, 2]);
    barrier.close();
  });

  it('does not wait for a socket its probe cannot be sent to (no route to its own address)', async () => {
    const a = fakeSocket();
    const noRoute = {
      send: (_b: Buffer, _p: number, _a: string, cb: (err: Error | null) => void) =>
        setImmediate(() => cb(new Error('send ENETUNREACH ::1'))),
    } as unknown as Socket;
    const barrier = new ReadBarrier({
      targets: () => [
        { socket: a.socket, address: '127.0.0.1', port: 1 },
        { socket: noRoute, address: '::1', port: 1 },
      ],
    });
    let released = false;
    barrier.wait(() => (released = true));
    await turn();
    barrier.take(a.sent[0]!);
    expect(released).toBe(false);
    await turn(); // the failed send's callback
    expect(released).toBe(true);
    expect(barrier.stats.timeouts).toBe(0);
  });

  it('tells of the first round released by its timeout, once', async () => {
    let told = 0;
    const { barrier } = oneSocket({ timeoutMs: 10, onFirstTimeout: () => told++ });
    barrier.wait(() => undefined);
    await new Promise((r) => setTimeout(r, 30));
    barrier.wait(() => undefined);
    await new Promise((r) => setTimeout(r, 30));
    expect(barrier.stats.timeouts).toBe(2);
    expect(told).toBe(1);
  });

  it('runs every waiter when one throws, and reports the error', () => {
    const errors: unknown[] = [];
    const { barrier } = oneSocket({ onError: (e) => errors.push(e) });
    let ran = false;
    barrier.wait(() => {
      throw new Error('boom');
    });
    barrier.wait(() => (ran = true));
    barrier.close(); // close releases the waiters in flight
    expect(ran).toBe(true);
    expect(errors).toHaveLength(1);
  });

  it('without sockets to probe, calls back at once', () => {
    const barrier = new ReadBarrier({ targets: () => [] });
    let ran = false;
    barrier.wait(() => (ran = true));
    expect(ran).toBe(true);
    expect(barrier.stats.probes).toBe(0);
  });
});

const opened: Transports[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const t of opened.splice(0)) await t.close();
  for (const s of sockets.splice(0)) s.close();
});

describe('Transports.afterInput on real sockets', () => {
  it('calls back only after the datagrams queued before it were delivered, and hides its probe', async () => {
    const got: Inbound[] = [];
    const t = new Transports({ onMessage: (m) => got.push(m) });
    opened.push(t);
    const [l] = await t.listen([parseListen('l', 'udp:127.0.0.1:0')]);
    // Another process sends 300 datagrams while this event loop is blocked.
    sendWhileBlocked(l!.port, 'OPTIONS sip:%n@x SIP/2.0\r\n\r\n', 300);
    expect(got).toHaveLength(0);
    const seen = await new Promise<number>((resolve) => t.afterInput(() => resolve(got.length)));
    expect(seen).toBe(300);
    expect(t.barrierStats).toEqual({ probes: 1, timeouts: 0 });
    // Nothing but the 300 reached the handler.
    await new Promise((r) => setTimeout(r, 20));
    expect(got).toHaveLength(300);
  });

  it('probes a wildcard listener through loopback, and in a worker only its private socket', async () => {
    const t = new Transports({ onMessage: () => undefined });
    opened.push(t);
    await t.listen([parseListen('l', 'udp:0.0.0.0:0'), parseListen('l', 'udp:[::]:0')]);
    await new Promise<void>((resolve) => t.afterInput(resolve));
    expect(t.barrierStats).toEqual({ probes: 2, timeouts: 0 });
    const w = new Transports({ onMessage: () => undefined }, { shared: true });
    opened.push(w);
    await w.listen([parseListen('l', 'udp:127.0.0.1:0')]);
    await new Promise<void>((resolve) => w.afterInput(resolve));
    // One probe: to the private socket, not to the listener other workers read too.
    expect(w.barrierStats).toEqual({ probes: 1, timeouts: 0 });
  });

  it('on a reload (close, then listen), a waiting retransmission still leaves', async () => {
    const t = new Transports({ onMessage: () => undefined });
    opened.push(t);
    await t.listen([parseListen('l', 'udp:127.0.0.1:0')]);
    const sink = createSocket('udp4');
    sockets.push(sink);
    await new Promise<void>((r) => sink.bind(0, '127.0.0.1', r));
    let sent: boolean | undefined;
    t.afterInput(() => {
      sent = t.send(Buffer.from('INVITE sip:x SIP/2.0\r\n\r\n'), {
        transport: 'udp',
        address: '127.0.0.1',
        port: sink.address().port,
      });
    });
    await t.close();
    expect(sent).toBe(true);
    await t.listen([parseListen('l', 'udp:127.0.0.1:0')]);
  });

  it('releases waiting callers when it closes, and afterwards calls back at once', async () => {
    const t = new Transports({ onMessage: () => undefined });
    await t.listen([parseListen('l', 'udp:127.0.0.1:0')]);
    let ran = 0;
    t.afterInput(() => ran++);
    await t.close();
    expect(ran).toBe(1);
    t.afterInput(() => ran++);
    expect(ran).toBe(2);
  });
});

describe('the proxy does not retransmit a request whose response waits in its socket', () => {
  let proxy: RunningProxy | undefined;
  afterEach(async () => {
    await proxy?.stop();
    proxy = undefined;
  });

  it('Timer A fires while the 180 is unread: the 180 is read first and the INVITE goes once', async () => {
    const callee = createSocket('udp4');
    const caller = createSocket('udp4');
    sockets.push(callee, caller);
    await new Promise<void>((r) => callee.bind(0, '127.0.0.1', r));
    await new Promise<void>((r) => caller.bind(0, '127.0.0.1', r));
    const invites: Buffer[] = [];
    const upstream: string[] = [];
    caller.on('message', (m) => upstream.push(m.toString('latin1').split('\r\n')[0]!));
    const { config } = parseArgs([
      '--listen',
      'udp:127.0.0.1:0',
      '--route',
      `default=sip:127.0.0.1:${callee.address().port}`,
      '--no-warmup',
    ]);
    proxy = await startProxy({ config, logger: quiet });
    const port = proxy.listeners[0]!.port;
    callee.on('message', (m) => {
      invites.push(m);
      if (invites.length > 1) return;
      // The callee rings at once, but the proxy's event loop is then busy for 700 ms: the 180
      // waits in its socket buffer while Timer A (500 ms) comes due. (The busy wait runs in the
      // send's callback, after this turn's datagrams were taken from the socket, so the 180 is
      // still unread when the timers run.)
      const r = parse(m);
      if (!r.ok) throw new Error(r.error.reason);
      callee.send(answer(r.message, 180, 'Ringing'), port, '127.0.0.1', () => {
        const until = Date.now() + 700;
        while (Date.now() < until) {
          // busy: the proxy cannot read its socket
        }
      });
    });
    caller.send(invite(), port, '127.0.0.1');
    await until(() => upstream.includes('SIP/2.0 180 Ringing'), 100);
    expect(upstream).toContain('SIP/2.0 180 Ringing');
    await new Promise((r) => setTimeout(r, 700)); // past the retransmission Timer A would make
    expect(invites).toHaveLength(1);
  });
});
