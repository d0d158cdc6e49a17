import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { parseListen } from './config.js';
import { callIdOf, ownerOf, WorkerDispatch } from './dispatch.js';
import { Transports, type Inbound } from './transport.js';
import { CALLER as PEER, LISTENER, until } from '../test/core-harness.js';

describe('worker dispatch', () => {
  it('finds the Call-ID in long and compact form without a full parse', () => {
    const long = Buffer.from(
      'INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCall-ID:  abc@h \r\nCSeq: 1 INVITE\r\n\r\n',
    );
    const compact = Buffer.from('SIP/2.0 200 OK\r\nv: SIP/2.0/UDP h\r\ni: xyz\r\n\r\n');
    expect(callIdOf(long)).toBe('abc@h');
    expect(callIdOf(compact)).toBe('xyz');
  });

  it('does not look into the body', () => {
    const m = Buffer.from('OPTIONS sip:a SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\nCall-ID: body\r\n');
    expect(callIdOf(m)).toBeUndefined();
  });

  it('gives every Call-ID one owner, spread over the workers', () => {
    const owners = new Map<number, number>();
    for (let i = 0; i < 1000; i++) {
      const o = ownerOf(`call-${i}@198.18.0.2`, 4);
      expect(o).toBe(ownerOf(`call-${i}@198.18.0.2`, 4));
      owners.set(o, (owners.get(o) ?? 0) + 1);
    }
    expect([...owners.keys()].sort()).toEqual([0, 1, 2, 3]);
    for (const n of owners.values()) expect(n).toBeGreaterThan(150);
  });
});

describe('TCP Call-ID dispatch between workers', () => {
  const opened: { close(): unknown }[] = [];
  afterEach(async () => {
    for (const o of opened.splice(0).reverse()) await o.close();
  });

  /** A worker: its transports (listening on TCP) and its dispatch socket. */
  async function worker(index: number, got: Inbound[]) {
    const holder: { d: WorkerDispatch | undefined } = { d: undefined };
    const t = new Transports({
      onMessage: (m) => got.push(m),
      intercept: (m, i) => holder.d?.intercept(m, i) ?? false,
      relay: (bytes, peer, w) => holder.d?.relay(bytes, peer, w) ?? false,
    });
    opened.push(t);
    const listeners = await t.listen([parseListen('l', 'tcp:127.0.0.1:0')]);
    const d = new WorkerDispatch({
      index,
      count: 2,
      token: 'secret',
      deliver: (m) => t.deliver(m),
      listenerAt: () => listeners[0],
      writeExisting: (bytes, peer) => t.writeExisting(bytes, peer),
    });
    holder.d = d;
    opened.push(d);
    return { t, d, port: await d.start(), listener: listeners[0]! };
  }

  it("passes a message to its Call-ID's owner, which answers over the connection the holder keeps", async () => {
    const gotA: Inbound[] = [];
    const gotB: Inbound[] = [];
    const a = await worker(0, gotA);
    const b = await worker(1, gotB);
    a.d.setPeers([a.port, b.port]);
    b.d.setPeers([a.port, b.port]);
    // A Call-ID that worker 1 owns, sent on a connection worker 0 accepted.
    let callId = '';
    for (let i = 0; callId === '' && i < 100; i++) {
      if (ownerOf(`tcp-${i}@198.18.0.2`, 2) === 1) callId = `tcp-${i}@198.18.0.2`;
    }
    const request = [
      'OPTIONS sip:b@127.0.0.1 SIP/2.0',
      'Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKtcpd',
      'Max-Forwards: 70',
      'From: <sip:a@127.0.0.1>;tag=1',
      'To: <sip:b@127.0.0.1>',
      `Call-ID: ${callId}`,
      'CSeq: 1 OPTIONS',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n');
    const client = connect(a.listener.port, '127.0.0.1');
    opened.push({ close: () => client.destroy() });
    let reply = '';
    client.on('data', (d: Buffer) => (reply += d.toString('latin1')));
    await new Promise((r) => client.once('connect', r));
    client.write(request);
    await until(() => gotB.length === 1);
    expect(gotA).toHaveLength(0);
    const m = gotB[0]!;
    expect(m.remoteWorker).toBe(0);
    expect(m.peer.transport).toBe('tcp');
    expect(m.bytes?.toString('latin1')).toBe(request);
    // The owner answers the peer: it has no such connection, so the bytes go back to worker 0.
    expect(b.t.send(Buffer.from('SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n'), m.peer)).toBe(true);
    await until(() => reply.length > 0);
    expect(reply).toBe('SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n');
    expect(b.d.relayed).toBe(1);
    expect(a.d.forwarded).toBe(1);
  });
});

describe('UDP dispatch between workers keeps the order of a call', () => {
  const opened: WorkerDispatch[] = [];
  afterEach(() => {
    for (const d of opened.splice(0)) d.close();
  });

  function dispatch(index: number, got: string[]): WorkerDispatch {
    const d = new WorkerDispatch({
      index,
      count: 2,
      token: 'secret',
      deliver: (m) => got.push(m.bytes!.toString('latin1').split(' ')[0]!),
      listenerAt: () => LISTENER,
    });
    opened.push(d);
    return d;
  }

  /**
   * Two started workers and a call worker 1 owns; `read(w, method)` is worker w reading one of
   * the call's requests from the shared socket.
   */
  async function pair() {
    const gotA: string[] = [];
    const gotB: string[] = [];
    const a = dispatch(0, gotA);
    const b = dispatch(1, gotB);
    const ports = [await a.start(), await b.start()];
    a.setPeers(ports);
    b.setPeers(ports);
    let callId = '';
    for (let i = 0; callId === '' && i < 100; i++) {
      if (ownerOf(`udp-${i}@198.18.0.2`, 2) === 1) callId = `udp-${i}@198.18.0.2`;
    }
    const read = (w: WorkerDispatch, method: string): boolean =>
      w.intercept(
        {
          bytes: Buffer.from(`${method} sip:b@198.19.0.2 SIP/2.0\r\nCall-ID: ${callId}\r\n\r\n`),
          peer: PEER,
          listener: LISTENER,
        },
        0,
      );
    return { a, b, gotA, gotB, read };
  }

  it('a message its owner reads directly waits for the one a sibling passed on before it', async () => {
    const { a, b, gotA, gotB, read } = await pair();
    // Worker 0 reads the caller's ACK and passes it on; before worker 1 has read it from its
    // loopback socket, worker 1 reads the caller's BYE itself from the shared socket.
    expect(read(a, 'ACK')).toBe(true);
    expect(read(b, 'BYE')).toBe(true);
    expect(gotB).toEqual([]);
    await until(() => gotB.length === 2);
    expect(gotB).toEqual(['ACK', 'BYE']);
    expect(a.forwarded).toBe(1);
    expect(b.ordered).toBe(1);
    expect(gotA).toEqual([]);
  });

  it('a message read later in the same turn of the event loop also waits for what was passed on before it', async () => {
    const { a, b, gotB, read } = await pair();
    // Worker 1 reads an INFO (its round opens), worker 0 passes on the ACK, then worker 1 reads
    // the BYE in the same turn: the round's probe leaves at the end of the turn, after the ACK.
    read(b, 'INFO');
    read(a, 'ACK');
    read(b, 'BYE');
    await until(() => gotB.length === 3);
    expect(gotB.indexOf('ACK')).toBeLessThan(gotB.indexOf('BYE'));
  });

  it('a message still waiting when the worker stops is handled', async () => {
    const got: string[] = [];
    const a = dispatch(0, got);
    const b = dispatch(1, []);
    const ports = [await a.start(), await b.start()];
    a.setPeers(ports);
    let callId = '';
    for (let i = 0; callId === '' && i < 100; i++) {
      if (ownerOf(`stop-${i}@198.18.0.2`, 2) === 0) callId = `stop-${i}@198.18.0.2`;
    }
    const bye = Buffer.from(`BYE sip:b SIP/2.0\r\nCall-ID: ${callId}\r\n\r\n`);
    expect(a.intercept({ bytes: bye, peer: PEER, listener: LISTENER }, 0)).toBe(true);
    a.close();
    expect(got).toEqual(['BYE']);
  });
});
