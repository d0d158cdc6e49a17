import * as net from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { FakeTimers, RawPeer, settle, udpExchange } from '../test/helpers.js';
import type { FcpServerConfig } from './config.js';
import { MemoryBackend } from './memory-backend.js';
import { FcpServer, type FcpClientInfo } from './server.js';

const POLICY = {
  protectedNetworks: ['198.18.0.0/16'],
  ownAddresses: ['198.18.0.1'],
  protectedPorts: [5060, [12340, 12349]] as (number | [number, number])[],
  maxTimerSec: 3600,
};

function config(extra: Partial<FcpServerConfig> = {}): FcpServerConfig {
  return {
    listen: [
      { transport: 'tcp', host: '127.0.0.1', port: 0 },
      { transport: 'udp', host: '127.0.0.1', port: 0 },
    ],
    policy: POLICY,
    ...extra,
  };
}

const PME = 'PME PROTO=17; SRCIP=198.19.5.5; DSTIP=198.18.0.2; DSTPORT=40000-40001;';
const set = (seq: number, sopt = 'ACTION=pass; TIMER=30;', pme = PME): string =>
  `SET FCP=1.0 SEQ=${seq}\r\n${pme}\r\nSOPT ${sopt}\r\n\r\n`;
const release = (seq: number, pme = PME): string => `RELEASE FCP=1.0 SEQ=${seq}\r\n${pme}\r\n\r\n`;

const servers: FcpServer[] = [];
const peers: RawPeer[] = [];

async function startServer(
  cfg: FcpServerConfig = config(),
  backend = new MemoryBackend(),
  timers?: FakeTimers,
): Promise<{ server: FcpServer; tcp: number; udp: number; backend: MemoryBackend }> {
  const server = new FcpServer(cfg, backend, timers ? { timers } : {});
  servers.push(server);
  await server.start();
  const addrs = server.addresses();
  return {
    server,
    backend,
    tcp: addrs.find((a) => a.transport === 'tcp')?.port ?? 0,
    udp: addrs.find((a) => a.transport === 'udp')?.port ?? 0,
  };
}

async function peer(port: number): Promise<RawPeer> {
  const p = await RawPeer.connect(port);
  peers.push(p);
  return p;
}

afterEach(async () => {
  for (const p of peers.splice(0)) p.close();
  for (const s of servers.splice(0)) await s.stop();
});

const local: FcpClientInfo = {
  address: '127.0.0.1',
  port: 1,
  transport: 'tcp',
  owner: '127.0.0.1',
  authenticated: false,
};
const other: FcpClientInfo = { ...local, address: '127.0.0.2', owner: '127.0.0.2' };

describe('FcpServer rule table semantics (spec §3.2, §5)', () => {
  it('answers 200 new, 201 keep-alive, 202 changed, QUERY, 200 release, 400 unknown', async () => {
    const { tcp, backend } = await startServer();
    const p = await peer(tcp);
    p.send(set(1) + set(2, 'ACTION=pass; TIMER=45;') + set(3, 'ACTION=drop;'));
    p.send('QUERY FCP=1.0 SEQ=4\r\n\r\n' + release(8) + release(9));
    const r = await p.replies(6);
    expect(r).toEqual([
      'FCP=1.0 SEQ=1 200 OK\r\n\r\n',
      'FCP=1.0 SEQ=2 201 Keeping Alive\r\n\r\n',
      'FCP=1.0 SEQ=3 202 Rule Changed\r\n\r\n',
      'FCP=1.0 SEQ=4 200 OK\r\nPME PROTO=17; SRCIP=198.19.5.5; DSTIP=198.18.0.2; DSTPORT=40000-40001; SOPT ACTION=drop; TIMER=45;\r\n\r\n',
      'FCP=1.0 SEQ=8 200 OK\r\n\r\n',
      'FCP=1.0 SEQ=9 400 Bad Request: no matching rule found to release\r\n\r\n',
    ]);
    expect(backend.size).toBe(0);
  });

  it('answers only after the backend installed the rule', async () => {
    const backend = new MemoryBackend({ latencyMs: 30 });
    const { server } = await startServer(config(), backend);
    const reply = server.handle(set(1), local);
    await settle();
    expect(backend.size).toBe(0);
    expect(await reply).toBe('FCP=1.0 SEQ=1 200 OK\r\n\r\n');
    expect(backend.size).toBe(1);
  });

  it('treats host mask, p-p and the flat v0.16 form as the same rule (identity = canonical PME)', async () => {
    const { server } = await startServer();
    expect(await server.handle(set(1), local)).toContain(' 200 OK');
    const flat =
      'SET FCP=1.0 SEQ=2 PROTO=17 SRCIP=198.19.5.5/255.255.255.255 DSTIP=198.18.0.2 DSTPORT=40000-40001 ACTION=pass TIMER=30\n\n';
    expect(await server.handle(flat, local)).toContain(' 201 Keeping Alive');
    expect(server.liveRules).toBe(1);
  });

  it('answers 403 to a non-owner refresh, change or release (§6 #14)', async () => {
    const { server } = await startServer();
    await server.handle(set(1), local);
    expect(await server.handle(set(2), other)).toContain(' 403 Forbidden');
    expect(await server.handle(release(3), other)).toContain(' 403 Forbidden');
    expect(server.liveRules).toBe(1);
  });

  it('answers 203 Not My Route when both ends are on the same side and stores nothing', async () => {
    const { server } = await startServer();
    const inside = 'PME PROTO=17; SRCIP=198.18.0.7; DSTIP=198.18.0.2; DSTPORT=40000;';
    expect(await server.handle(set(1, undefined, inside), local)).toContain(' 203 Not My Route');
    expect(server.liveRules).toBe(0);
  });

  it('answers 501 for what it cannot enforce', async () => {
    const { server } = await startServer();
    expect(await server.handle(set(1, 'ACTION=pass; REFLEXIVE=yes;'), local)).toContain(' 501 ');
    const syn = 'PME PROTO=6; DSTIP=198.18.0.2; DSTPORT=40000; TCPSYNALLOWED=no;';
    expect(await server.handle(set(2, undefined, syn), local)).toContain(' 501 ');
    const backend = new MemoryBackend({ unsupported: () => 'no such thing' });
    const s2 = await startServer(
      config({ listen: [{ transport: 'tcp', host: '127.0.0.1', port: 0 }] }),
      backend,
    );
    expect(await s2.server.handle(set(3), local)).toBe(
      'FCP=1.0 SEQ=3 501 Not Implemented: no such thing\r\n\r\n',
    );
  });

  it('answers 500 when the backend fails and keeps no state', async () => {
    const { server, backend } = await startServer();
    backend.failNext = 1;
    expect(await server.handle(set(1), local)).toContain(' 500 Internal Server Error');
    expect(server.liveRules).toBe(0);
    expect(await server.handle(set(2), local)).toContain(' 200 OK');
  });

  it('answers 503 for another version, 400 with detail for garbage, 402 for a missing value', async () => {
    const { server } = await startServer();
    expect(await server.handle('SET FCP=2.0 SEQ=13\r\n\r\n', local)).toBe(
      'FCP=1.0 SEQ=13 503 Version Not Supported: 2.0\r\n\r\n',
    );
    expect(await server.handle('SET FCP=1.0 SEQ=14\r\nPME FOO=bar;\r\n\r\n', local)).toBe(
      'FCP=1.0 SEQ=14 400 Bad Request: unknown token "FOO=bar"\r\n\r\n',
    );
    expect(await server.handle('SET FCP=1.0 SEQ=15\r\nPME PROTO=;\r\n\r\n', local)).toContain(
      ' 402 Invalid Control State Field Value',
    );
  });

  it('writes the published two-line layout when configured', async () => {
    const { server } = await startServer(config({ responseStyle: 'abnf' }));
    expect(await server.handle(set(395), local)).toBe('FCP=1.0 SEQ=395\r\n200 OK\r\n\r\n');
  });
});

describe('FcpServer TIMER expiry (§5.2)', () => {
  it('deletes a rule when TIMER runs out without keep-alive, and a keep-alive restarts it', async () => {
    const timers = new FakeTimers();
    const { server, backend } = await startServer(
      config(),
      new MemoryBackend({ now: () => timers.now() }),
      timers,
    );
    await server.handle(set(1, 'ACTION=pass; TIMER=30;'), local);
    timers.advance(20_000);
    expect(await server.handle(set(2, 'ACTION=pass;'), local)).toContain('201');
    timers.advance(20_000);
    await settle();
    expect(server.liveRules).toBe(1);
    timers.advance(11_000);
    await settle();
    expect(server.liveRules).toBe(0);
    expect(backend.size).toBe(0);
    expect(server.stats().expired).toBe(1);
    // After expiry the same SET creates a fresh rule → 200 (the client's "state lost" signal).
    expect(await server.handle(set(3), local)).toContain(' 200 OK');
  });

  it('reports the current TIMER in QUERY and keeps it on a keep-alive without TIMER (§6 #12)', async () => {
    const { server } = await startServer();
    await server.handle(set(1, 'ACTION=pass; TIMER=100;'), local);
    await server.handle(set(2, 'ACTION=pass;'), local);
    expect(await server.handle('QUERY FCP=1.0 SEQ=3\r\n\r\n', local)).toContain('TIMER=100;');
  });
});

describe('FcpServer restart: adopts the backend rules with their owner and remaining lifetime', () => {
  it('a restarted server knows the rule (201), and QUERY lists it', async () => {
    const backend = new MemoryBackend();
    const a = await startServer(config(), backend);
    await a.server.handle(set(1, 'ACTION=pass; TIMER=600;'), local);
    await a.server.stop();
    const b = await startServer(config(), backend);
    expect(b.server.liveRules).toBe(1);
    const rule = b.server.rules()[0];
    expect(rule?.owner).toBe('127.0.0.1');
    expect(rule?.expiresAt).toBeGreaterThan(Date.now() + 590_000);
    expect(await b.server.handle(set(2, 'ACTION=pass; TIMER=600;'), local)).toContain('201');
  });
});

describe('FcpServer NAT (§5.5)', () => {
  it('answers the client its own address and ports without masquerading (§4.2)', async () => {
    const { server } = await startServer();
    expect(
      await server.handle(
        'QUERYNAT FCP=1.0 SEQ=101\r\nSRCIP=217.130.254.3; SRCPORT=2222-2223; PROTO=17;\r\n\r\n',
        local,
      ),
    ).toBe('FCP=1.0 SEQ=101 200 OK\r\nIP=217.130.254.3 PORT=2222-2223\r\n\r\n');
  });

  it('reserves, repeats and releases a block on the public address when masquerading', async () => {
    const { server } = await startServer(
      config({
        nat: { masquerade: ['10.0.0.0/8'], publicAddress: '198.18.0.1', portRange: [40000, 40009] },
      }),
    );
    const q = 'QUERYNAT FCP=1.0 SEQ=10\r\nSRCIP=10.0.0.7; SRCPORT=3333-3334; PROTO=17;\r\n\r\n';
    expect(await server.handle(q, local)).toBe(
      'FCP=1.0 SEQ=10 200 OK\r\nIP=198.18.0.1 PORT=40000-40001\r\n\r\n',
    );
    expect(await server.handle(q, local)).toContain('PORT=40000-40001');
    const q2 = 'QUERYNAT FCP=1.0 SEQ=11\r\nSRCIP=10.0.0.8; SRCPORT=5000; PROTO=17;\r\n\r\n';
    expect(await server.handle(q2, local)).toContain('PORT=40002\r\n');
    const rel = 'RELEASENAT FCP=1.0 SEQ=12\r\nSRCIP=10.0.0.7; SRCPORT=3333; PROTO=17;\r\n\r\n';
    expect(await server.handle(rel, local)).toContain(' 200 OK');
    expect(await server.handle(rel, local)).toContain(' 400 Bad Request: No such NAT reservation');
  });
});

describe('FcpServer transports', () => {
  it('answers a UDP datagram without empty line, and replays the cached reply for a retransmission', async () => {
    const { udp, server } = await startServer();
    const first = await udpExchange(udp, [set(78)], 1);
    expect(first).toEqual(['FCP=1.0 SEQ=78 200 OK\r\n\r\n']);
    const rel = `RELEASE FCP=1.0 SEQ=79\n${PME}\n`;
    const replies = await udpExchange(udp, [rel, rel], 2);
    // RELEASE is not idempotent: the retransmission must get the same 200, not a 400.
    expect(replies).toEqual(['FCP=1.0 SEQ=79 200 OK\r\n\r\n', 'FCP=1.0 SEQ=79 200 OK\r\n\r\n']);
    expect(server.liveRules).toBe(0);
  });

  it('closes the connection after QUIT', async () => {
    const { tcp } = await startServer();
    const p = await peer(tcp);
    p.send('quit\r\n');
    await p.until(() => false).catch(() => undefined);
    expect(p.data).toBe('closing connection...\r\n');
    expect(p.closed).toBe(true);
  });

  it('answers the requests of one segment in one write, in order', async () => {
    const { tcp } = await startServer();
    const p = await peer(tcp);
    const writes = vi.spyOn(net.Socket.prototype, 'write');
    try {
      const pme = (i: number) => `PME PROTO=17; DSTIP=198.18.0.${10 + i}; DSTPORT=40000;`;
      p.send([1, 2, 3, 4].map((i) => set(i, 'ACTION=pass; TIMER=30;', pme(i))).join(''));
      await p.until((d) => d.includes('SEQ=4 '));
      const serverWrites = writes.mock.contexts.filter((s) => (s as net.Socket).localPort === tcp);
      expect(serverWrites).toHaveLength(1);
      expect(p.data.match(/SEQ=\d/g)).toEqual(['SEQ=1', 'SEQ=2', 'SEQ=3', 'SEQ=4']);
    } finally {
      writes.mockRestore();
    }
  });

  it('sends the banner when configured, and the client may pipeline behind it', async () => {
    const { tcp } = await startServer(config({ banner: 'pinhole fcp' }));
    const p = await peer(tcp);
    p.send('QUERY FCP=1.0 SEQ=1\r\n\r\n');
    await p.until((d) => d.endsWith('\r\n\r\n'));
    expect(p.data).toBe('pinhole fcp\r\nFCP=1.0 SEQ=1 200 OK\r\n\r\n');
  });
});

describe('FcpServer slow senders', () => {
  it('answers 400 and closes when a request stays incomplete', async () => {
    const timers = new FakeTimers();
    const { tcp } = await startServer(
      config({ limits: { partialRequestTimeoutMs: 30_000 } }),
      new MemoryBackend(),
      timers,
    );
    const p = await peer(tcp);
    p.send('QUERY FCP=1.0 SEQ=1\r\n\r\nSET FCP=1.0 SEQ=2\r\nPME PRO');
    await p.replies(1);
    timers.advance(29_000);
    p.send('TO=17;');
    await settle();
    expect(p.closed).toBe(false);
    timers.advance(1_000);
    await p.until(() => p.closed);
    expect(p.data).toBe(
      'FCP=1.0 SEQ=1 200 OK\r\n\r\nFCP=1.0 SEQ=0 400 Bad Request: request incomplete after 30000 ms\r\n\r\n',
    );
  });
});

describe('FcpServer NAT reservation life cycle (§5.5, §6 #19)', () => {
  it('a SET with the same PROTO, SRCIP and SRCPORT adopts the reservation for its lifetime', async () => {
    const timers = new FakeTimers();
    const { server } = await startServer(
      config({
        nat: { masquerade: ['10.0.0.0/8'], publicAddress: '198.18.0.1', portRange: [40000, 40009] },
      }),
      new MemoryBackend({ now: () => timers.now() }),
      timers,
    );
    const q = 'QUERYNAT FCP=1.0 SEQ=1\r\nSRCIP=10.0.0.7; SRCPORT=3333-3334; PROTO=17;\r\n\r\n';
    expect(await server.handle(q, local)).toContain('PORT=40000-40001');
    const pme = 'PME PROTO=17; SRCIP=10.0.0.7; SRCPORT=3333-3334; DSTIP=198.18.0.2; DSTPORT=40000;';
    expect(await server.handle(set(2, 'ACTION=pass; TIMER=600;', pme), local)).toContain('200 OK');
    timers.advance(120_000); // far past the 30 s reservation lifetime
    await settle();
    expect(server.stats().natReservations).toBe(1);
    expect(await server.handle(release(3, pme), local)).toContain('200 OK');
    expect(server.stats().natReservations).toBe(1); // back on its own 30 s timer
    timers.advance(31_000);
    await settle();
    expect(server.stats().natReservations).toBe(0);
  });

  it('an expiring rule frees its reservation with it', async () => {
    const timers = new FakeTimers();
    const { server } = await startServer(
      config({ nat: { masquerade: ['10.0.0.0/8'], publicAddress: '198.18.0.1' } }),
      new MemoryBackend({ now: () => timers.now() }),
      timers,
    );
    await server.handle(
      'QUERYNAT FCP=1.0 SEQ=1\r\nSRCIP=10.0.0.7; SRCPORT=5000; PROTO=17;\r\n\r\n',
      local,
    );
    const pme = 'PME PROTO=17; SRCIP=10.0.0.7; SRCPORT=5000; DSTIP=198.18.0.2; DSTPORT=40000;';
    await server.handle(set(2, 'ACTION=pass; TIMER=60;', pme), local);
    timers.advance(61_000);
    await settle();
    expect(server.liveRules).toBe(0);
    expect(server.stats().natReservations).toBe(0);
  });
});

describe('FcpServer robustness', () => {
  it('handles a pipelined stream sent one byte per write', async () => {
    const { tcp } = await startServer();
    const p = await peer(tcp);
    const wire = set(1) + 'QUERY FCP=1.0 SEQ=2\r\n\r\n' + release(3);
    for (const ch of wire) {
      p.send(ch);
      await new Promise<void>((r) => setImmediate(r));
    }
    const r = await p.replies(3);
    expect(r[0]).toBe('FCP=1.0 SEQ=1 200 OK\r\n\r\n');
    expect(r[1]).toContain('FCP=1.0 SEQ=2 200 OK\r\nPME PROTO=17;');
    expect(r[2]).toBe('FCP=1.0 SEQ=3 200 OK\r\n\r\n');
  });

  it('turns a throwing backend into a 500 for that request only', async () => {
    let explode = true;
    const backend = new MemoryBackend({
      unsupported: () => {
        if (explode) throw new Error('bug in backend');
        return undefined;
      },
    });
    const { server, tcp } = await startServer(config(), backend);
    const p = await peer(tcp);
    p.send(set(1));
    expect(await p.replies(1)).toEqual(['FCP=1.0 SEQ=1 500 Internal Server Error\r\n\r\n']);
    explode = false;
    p.send(set(2));
    expect((await p.replies(2))[1]).toBe('FCP=1.0 SEQ=2 200 OK\r\n\r\n');
    expect(server.liveRules).toBe(1);
  });

  it('counts requests by method and status and reports latency in events', async () => {
    const { server } = await startServer();
    const seen: [string, number][] = [];
    server.on('request', (e) => {
      expect(e.latencyMs).toBeGreaterThanOrEqual(0);
      seen.push([e.method, e.status]);
    });
    await server.handle(set(1), local);
    await server.handle(set(2), local);
    await server.handle('BOGUS\r\n\r\n', local);
    expect(seen).toEqual([
      ['SET', 200],
      ['SET', 201],
      ['INVALID', 400],
    ]);
    expect(server.stats().requests).toEqual({ SET: { 200: 1, 201: 1 }, INVALID: { 400: 1 } });
  });
});
