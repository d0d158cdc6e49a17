import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { afterEach, describe, expect, it } from 'vitest';
import { parseListen } from './config.js';
import {
  datagramBytes,
  makeListener,
  SOCKET_BUFFER_BYTES,
  Transports,
  udpInbound,
  type Inbound,
} from './transport.js';
import { until } from '../test/core-harness.js';

const opened: Transports[] = [];
afterEach(async () => {
  for (const t of opened.splice(0)) await t.close();
});

function make(): { t: Transports; got: Inbound[] } {
  const got: Inbound[] = [];
  const t = new Transports({ onMessage: (m) => got.push(m) });
  opened.push(t);
  return { t, got };
}

const OPTIONS = 'OPTIONS sip:x@y SIP/2.0\r\nContent-Length: 0\r\n\r\n';

describe('transport', () => {
  it('receives UDP on IPv4 and IPv6 listeners and asks for 4 MiB buffers', async () => {
    const { t, got } = make();
    const [u4, u6] = await t.listen([
      parseListen('l', 'udp:127.0.0.1:0'),
      parseListen('l', 'udp:[::1]:0'),
    ]);
    expect(u4!.port).toBeGreaterThan(0);
    expect(u4!.recvBufferBytes).toBeGreaterThan(0);
    expect(SOCKET_BUFFER_BYTES).toBe(4 * 1024 * 1024);
    const c4 = createSocket('udp4');
    const c6 = createSocket('udp6');
    c4.send(OPTIONS, u4!.port, '127.0.0.1');
    c6.send(OPTIONS, u6!.port, '::1');
    await until(() => got.length === 2);
    c4.close();
    c6.close();
    expect(got.map((g) => g.listener.family).sort()).toEqual([4, 6]);
    expect(got[0]!.bytes?.toString()).toBe(OPTIONS);
  });

  it('frames TCP input and answers over the same connection', async () => {
    const { t, got } = make();
    const [l] = await t.listen([parseListen('l', 'tcp:127.0.0.1:0')]);
    const sock = connect(l!.port, '127.0.0.1');
    let reply = '';
    sock.on('data', (d) => (reply += d.toString()));
    await new Promise((r) => sock.once('connect', r));
    sock.write(OPTIONS.slice(0, 10));
    sock.write(OPTIONS.slice(10) + OPTIONS);
    await until(() => got.length === 2);
    expect(got).toHaveLength(2);
    // Framed and parsed by @pinhole/sip's stream parser, split anywhere.
    expect(got.map((g) => g.parsed?.ok)).toEqual([true, true]);
    expect(t.send(Buffer.from('SIP/2.0 200 OK\r\n\r\n'), got[0]!.peer)).toBe(true);
    await until(() => reply.length > 0);
    expect(reply).toBe('SIP/2.0 200 OK\r\n\r\n');
    sock.destroy();
  });

  it('opens an outbound TCP connection and receives on it', async () => {
    const a = make();
    const b = make();
    const [la] = await a.t.listen([parseListen('l', 'tcp:127.0.0.1:0')]);
    await b.t.listen([parseListen('l', 'tcp:127.0.0.1:0')]);
    b.t.send(Buffer.from(OPTIONS), { transport: 'tcp', address: '127.0.0.1', port: la!.port });
    await until(() => a.got.length === 1);
    a.t.send(Buffer.from(OPTIONS), a.got[0]!.peer);
    await until(() => b.got.length === 1);
    const parsed = b.got[0]!.parsed;
    expect(parsed?.ok && parsed.message.method).toBe('OPTIONS');
  });

  it('workers: a shared UDP listener gets a private socket that sends and receives for this worker only', async () => {
    const got: Inbound[] = [];
    const t = new Transports({ onMessage: (m) => got.push(m) }, { shared: true });
    opened.push(t);
    const [l] = await t.listen([parseListen('l', 'udp:127.0.0.1:0')]);
    const own = t.privateFor(l!);
    expect(own).toBeDefined();
    expect(own!.port).not.toBe(l!.port);
    expect(own!.index).toBe(l!.index);
    expect(t.privateListeners).toEqual([own]);
    expect(t.listeners).toEqual([l]); // not announced as a listener
    const peer = createSocket('udp4');
    await new Promise<void>((r) => peer.bind(0, '127.0.0.1', r));
    const from: number[] = [];
    peer.on('message', (_m, rinfo) => from.push(rinfo.port));
    const port = peer.address().port;
    expect(
      t.send(Buffer.from(OPTIONS), { transport: 'udp', address: '127.0.0.1', port }, own),
    ).toBe(true);
    await until(() => from.length === 1);
    expect(from).toEqual([own!.port]);
    peer.send(OPTIONS, own!.port, '127.0.0.1');
    await until(() => got.length === 1);
    expect(got[0]!.listener).toBe(own);
    peer.close();
  });

  it('reports a handler exception instead of throwing out of the socket', async () => {
    const errors: string[] = [];
    const t = new Transports({
      onMessage: () => {
        throw new Error('boom');
      },
      onError: (e) => errors.push(e.message),
    });
    opened.push(t);
    const [l] = await t.listen([parseListen('l', 'udp:127.0.0.1:0')]);
    const c = createSocket('udp4');
    c.send('garbage', l!.port, '127.0.0.1');
    await until(() => errors.length > 0);
    c.close();
    expect(errors[0]).toMatch(/boom/);
  });
});

/** V8's own hidden-class comparison (natives syntax is parsed only once the flag is set). */
function sameMap(a: unknown, b: unknown): boolean {
  setFlagsFromString('--allow-natives-syntax');
  // The one way to reach V8's natives syntax: a function compiled after the flag is set.
  return (
    // eslint-disable-next-line @typescript-eslint/no-implied-eval
    (new Function('a', 'b', 'return %HaveSameMap(a, b)') as (x: unknown, y: unknown) => boolean)(
      a,
      b,
    )
  );
}

describe('datagramBytes', () => {
  it('gives a datagram the hidden class of Buffers made in JavaScript, as a view of the same memory', async () => {
    const s = createSocket('udp4');
    try {
      await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
      const got = new Promise<Buffer>((r) => s.once('message', (b) => r(b)));
      s.send(Buffer.from('INVITE'), s.address().port, '127.0.0.1');
      const raw = await got;
      const view = datagramBytes(raw);
      expect(view.toString('latin1')).toBe('INVITE');
      view[0] = 0x69;
      expect(raw.toString('latin1')).toBe('iNVITE');
      // Node 20 makes a datagram's Buffer with another hidden class than `raw`'s JavaScript
      // siblings; the view has theirs, whatever Node does.
      expect(sameMap(view, Buffer.from('INVITE', 'latin1'))).toBe(true);
    } finally {
      s.close();
    }
  });

  it('is what the transport delivers', async () => {
    const { t, got } = make();
    const [l] = await t.listen([parseListen('l', 'udp:127.0.0.1:0')]);
    const c = createSocket('udp4');
    try {
      c.send(OPTIONS, l!.port, '127.0.0.1');
      await until(() => got.length === 1);
    } finally {
      c.close();
    }
    expect(got[0]!.bytes?.toString()).toBe(OPTIONS);
    expect(sameMap(got[0]!.bytes, Buffer.from('x', 'latin1'))).toBe(true);
    expect(got[0]!.readAt).toBeGreaterThan(0);
    expect(got[0]!.readAt).toBeLessThanOrEqual(performance.now());
    // The warm-up's scripted datagrams are made by the same function: one hidden class.
    const scripted = udpInbound(Buffer.from('x'), got[0]!.peer, got[0]!.listener);
    expect(sameMap(got[0], scripted)).toBe(true);
  });

  it("makes every listener with one hidden class, the warm-up's too", async () => {
    const { t } = make();
    const [u, c] = await t.listen([
      parseListen('l', 'udp:127.0.0.1:0'),
      parseListen('l', 'tcp:127.0.0.1:0'),
    ]);
    expect(u!.recvBufferBytes).toBeGreaterThan(0);
    expect(c!.recvBufferBytes).toBeUndefined();
    const warm = makeListener('udp', '198.18.0.1', 5060, 4, '198.18.0.1', 0, SOCKET_BUFFER_BYTES);
    expect(sameMap(u, c)).toBe(true);
    expect(sameMap(u, warm)).toBe(true);
  });
});
