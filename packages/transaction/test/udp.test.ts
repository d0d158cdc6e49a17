/**
 * Integration over real loopback UDP sockets: a UAC, a stateful forking-capable proxy and a UAS,
 * each a TransactionLayer on the system clock with T1 = 40 ms.
 */
import { createSocket, type Socket } from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, serialize, type SipMessage } from '@pinhole/sip';
import type { Address, Transport } from '../src/address.js';
import { TransactionLayer, type TransactionLayerOptions } from '../src/layer.js';
import type { ServerTransaction } from '../src/proxy.js';
import { newBranch } from '../src/messages.js';

const TIMERS = { T1: 40, T2: 320, T4: 400 };

class UdpTransport implements Transport {
  readonly socket: Socket = createSocket('udp4');
  layer: TransactionLayer | undefined;
  /** Drops the next `n` datagrams received whose first line starts with `prefix`. */
  dropNext: { prefix: string; n: number } | undefined;
  received: string[] = [];

  async bind(): Promise<Address> {
    await new Promise<void>((resolve, reject) => {
      this.socket.once('error', reject);
      this.socket.bind(0, '127.0.0.1', () => resolve());
    });
    this.socket.on('message', (buf, rinfo) => {
      const firstLine = buf.toString('latin1', 0, Math.min(buf.length, 80)).split('\r\n')[0] ?? '';
      if (
        this.dropNext !== undefined &&
        this.dropNext.n > 0 &&
        firstLine.startsWith(this.dropNext.prefix)
      ) {
        this.dropNext.n--;
        return;
      }
      this.received.push(firstLine);
      const r = parse(buf);
      if (!r.ok || this.layer === undefined) return;
      this.layer.receive(r.message, { transport: 'UDP', host: rinfo.address, port: rinfo.port });
    });
    return this.address;
  }

  get address(): Address {
    const a = this.socket.address();
    return { transport: 'UDP', host: a.address, port: a.port };
  }

  send(message: SipMessage, destination: Address): Promise<void> {
    return new Promise((resolve, reject) => {
      this.socket.send(serialize(message), destination.port, destination.host, (err) =>
        err ? reject(err) : resolve(),
      );
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}

async function waitFor(what: string, check: () => boolean, ms = 20_000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

function text(lines: string[]): SipMessage {
  const r = parse(lines.join('\r\n'));
  if (!r.ok) throw new Error(r.error.reason);
  return r.message;
}

describe('over loopback UDP: UAC -> stateful proxy -> UAS', () => {
  const uacT = new UdpTransport();
  const proxyT = new UdpTransport();
  const uasT = new UdpTransport();
  let uac: TransactionLayer;
  let proxy: TransactionLayer;
  let uas: TransactionLayer;
  let proxyAddr: Address;
  let uasAddr: Address;
  let uacAddr: Address;
  const holdLog: string[] = [];
  const uasServers: ServerTransaction[] = [];
  const uacResponses: SipMessage[] = [];
  const uasAcks: SipMessage[] = [];

  beforeAll(async () => {
    [uacAddr, proxyAddr, uasAddr] = await Promise.all([uacT.bind(), proxyT.bind(), uasT.bind()]);
    const base = (t: UdpTransport): TransactionLayerOptions => ({
      transport: t,
      timers: TIMERS,
      sentBy: () => `${t.address.host}:${t.address.port}`,
    });
    uac = new TransactionLayer(base(uacT));
    proxy = new TransactionLayer({
      ...base(proxyT),
      trying: 'immediate',
      user: {
        request(txn) {
          const copy = txn.request.clone();
          copy.decrementMaxForwards();
          proxy.proxy(txn).forward(copy, uasAddr);
        },
        ack(message) {
          // §16.11-style stateless forwarding of the ACK of a 2xx.
          const copy = message.clone();
          copy.prependVia(`SIP/2.0/UDP ${proxyAddr.host}:${proxyAddr.port};branch=${newBranch()}`);
          void proxyT.send(copy, uasAddr);
        },
      },
    });
    uas = new TransactionLayer({
      ...base(uasT),
      user: { request: (t) => void uasServers.push(t) },
    });
    uas.on('ackReceived', (e) => {
      if (e.message !== undefined) uasAcks.push(e.message);
    });
    uac.on('responseReceived', (e) => {
      if (e.message !== undefined) uacResponses.push(e.message);
    });
    // The firewall hook: hold every final response until a (simulated) pinhole is open.
    proxy.on('finalRelayed', async (e) => {
      holdLog.push(`hold ${e.message?.status}`);
      await new Promise((r) => setTimeout(r, 20));
      holdLog.push(`open ${e.message?.status}`);
    });
    uacT.layer = uac;
    proxyT.layer = proxy;
    uasT.layer = uas;
  });

  afterAll(async () => {
    for (const l of [uac, proxy, uas]) l.close();
    await Promise.all([uacT.close(), proxyT.close(), uasT.close()]);
  });

  it('completes INVITE/180/200/ACK and BYE/200, recovering a lost INVITE by Timer A', async () => {
    uasT.dropNext = { prefix: 'INVITE', n: 1 };
    const invite = text([
      `INVITE sip:bob@${uasAddr.host}:${uasAddr.port} SIP/2.0`,
      `Via: SIP/2.0/UDP ${uacAddr.host}:${uacAddr.port};branch=${newBranch()}`,
      'Max-Forwards: 70',
      'From: <sip:alice@example.com>;tag=a1',
      'To: <sip:bob@example.com>',
      'Call-ID: udp-call-1',
      'CSeq: 1 INVITE',
      `Contact: <sip:alice@${uacAddr.host}:${uacAddr.port}>`,
      'Content-Type: application/sdp',
      'Content-Length: 4',
      '',
      'v=0\n',
    ]);
    uac.sendRequest(invite, proxyAddr);
    await waitFor('the INVITE at the UAS', () => uasServers.length === 1);
    const server = uasServers[0];
    if (server === undefined) throw new Error('no server transaction at the UAS');
    uas.reply(server, 180, 'Ringing', [], {});
    await waitFor('180 at the UAC', () => uacResponses.some((r) => r.status === 180));
    const ok = uas.reply(server, 200, 'OK', [], { retransmit2xx: true });
    await waitFor('200 at the UAC', () => uacResponses.some((r) => r.status === 200));
    expect(holdLog.slice(0, 2)).toEqual(['hold 200', 'open 200']);
    // The UAC core acknowledges the 2xx itself (a transaction of its own, §13.2.2.4).
    void uacT.send(
      text([
        `ACK sip:bob@${uasAddr.host}:${uasAddr.port} SIP/2.0`,
        `Via: SIP/2.0/UDP ${uacAddr.host}:${uacAddr.port};branch=${newBranch()}`,
        'Max-Forwards: 70',
        'From: <sip:alice@example.com>;tag=a1',
        `To: <sip:bob@example.com>;tag=${ok.to()?.tag ?? ''}`,
        'Call-ID: udp-call-1',
        'CSeq: 1 ACK',
        'Content-Length: 0',
        '',
        '',
      ]),
      proxyAddr,
    );
    await waitFor('ACK at the UAS', () => uasAcks.length === 1);
    expect(server.state).toBe('accepted');
    // The INVITE was lost once and retransmitted; retransmissions never made a second
    // transaction (how many copies arrived depends on scheduling, so it is not asserted).
    expect(uasT.dropNext?.n).toBe(0);
    expect(uasT.received.filter((l) => l.startsWith('INVITE')).length).toBeGreaterThanOrEqual(1);
    expect(uasServers.filter((t) => t.method === 'INVITE')).toHaveLength(1);

    const byesAtUas = (): ServerTransaction[] => uasServers.filter((t) => t.method === 'BYE');
    uac.sendRequest(
      text([
        `BYE sip:bob@${uasAddr.host}:${uasAddr.port} SIP/2.0`,
        `Via: SIP/2.0/UDP ${uacAddr.host}:${uacAddr.port};branch=${newBranch()}`,
        'Max-Forwards: 70',
        'From: <sip:alice@example.com>;tag=a1',
        `To: <sip:bob@example.com>;tag=${ok.to()?.tag ?? ''}`,
        'Call-ID: udp-call-1',
        'CSeq: 2 BYE',
        'Content-Length: 0',
        '',
        '',
      ]),
      proxyAddr,
    );
    await waitFor('BYE at the UAS', () => byesAtUas().length === 1);
    const bye = byesAtUas()[0];
    if (bye === undefined) throw new Error('no BYE');
    uas.reply(bye, 200);
    await waitFor('200 to BYE at the UAC', () =>
      uacResponses.some((r) => r.status === 200 && r.method === 'BYE'),
    );

    // Every machine ends: Timer L/M/J/K at 64*T1 = 2.56 s at most.
    await waitFor('all transactions gone', () => uac.size + proxy.size + uas.size === 0, 30_000);
  });
});
