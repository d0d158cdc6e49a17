import * as dgram from 'node:dgram';
import * as net from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { FakeTimers, once, ScriptedServer, seqOf, settle } from '../test/helpers.js';
import { FcpClient, isNoMatchingRuleReason } from './client.js';
import type { FcpServerConfig } from './config.js';
import { MemoryBackend } from './memory-backend.js';
import { FcpServer } from './server.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function serverConfig(port = 0, extra: Partial<FcpServerConfig> = {}): FcpServerConfig {
  return {
    listen: [{ transport: 'tcp', host: '127.0.0.1', port }],
    policy: { protectedNetworks: ['198.18.0.0/16'], ownAddresses: ['198.18.0.1'] },
    limits: { ratePerSec: 0 },
    ...extra,
  };
}

async function startServer(
  port = 0,
  backend = new MemoryBackend(),
  extra: Partial<FcpServerConfig> = {},
) {
  const server = new FcpServer(serverConfig(port, extra), backend);
  await server.start();
  cleanups.push(() => server.stop());
  return { server, backend, port: server.addresses()[0]?.port ?? 0 };
}

function client(ports: number[], extra: Partial<ConstructorParameters<typeof FcpClient>[0]> = {}) {
  const c = new FcpClient({
    servers: ports.map((port) => ({ host: '127.0.0.1', port })),
    connection: { reconnect: { initialDelayMs: 20, maxDelayMs: 200 } },
    ...extra,
  });
  cleanups.push(() => c.close());
  return c;
}

const rule = (n: number) => ({ proto: 'udp' as const, dst: '198.18.0.2', dstPort: 20000 + n });

describe('FcpClient against FcpServer over loopback TCP', () => {
  it('pipelines many requests on one connection and correlates every answer', async () => {
    const { server, port } = await startServer();
    const c = client([port]);
    const results = await Promise.all(
      Array.from({ length: 300 }, (_, i) => c.set(rule(i), { timer: 30 })),
    );
    expect(results.every((r) => r.ok && r.outcomes[0]?.kind === 'installed')).toBe(true);
    expect(server.liveRules).toBe(300);
    expect(server.stats().connections).toBe(1);
    expect(c.ownedRules).toBe(300);
    const again = await c.set(rule(0), { timer: 30 });
    expect(again.outcomes[0]?.kind).toBe('refreshed');
    const q = await c.query({ proto: 'udp', dst: '198.18.0.2', dstPort: 20007 });
    expect(q.outcomes[0]?.rules?.map((r) => r.options)).toEqual([{ action: 'pass', timer: 30 }]);
    const rel = await Promise.all(Array.from({ length: 300 }, (_, i) => c.release(rule(i))));
    expect(rel.every((r) => r.ok && r.outcomes[0]?.kind === 'released')).toBe(true);
    expect(server.liveRules).toBe(0);
    expect(c.ownedRules).toBe(0);
  });

  it('reconnects after the server restarts and re-installs every rule it owns', async () => {
    const first = await startServer();
    const c = client([first.port]);
    for (let i = 0; i < 5; i++) expect((await c.set(rule(i), { timer: 60 })).ok).toBe(true);
    await first.server.stop();
    // A fresh server with an empty firewall on the same port: all state is gone.
    const second = await startServer(first.port, new MemoryBackend());
    const reinstall = await once<{ rules: number; failed: number }>(c, 'reinstall');
    expect(reinstall).toMatchObject({ rules: 5, failed: 0 });
    expect(second.server.liveRules).toBe(5);
    expect(second.backend.size).toBe(5);
  });

  it('fails a request after its deadline, drops the stuck connection and recovers', async () => {
    let silent = true;
    const fake = await ScriptedServer.start((req) =>
      silent ? undefined : `FCP=1.0 SEQ=${seqOf(req)} 200 OK\r\n`,
    );
    cleanups.push(() => fake.stop());
    const c = client([fake.port], { requestTimeoutMs: 200 });
    const timeout = once(c, 'timeout');
    const r = await c.set(rule(1));
    await timeout;
    expect(r.ok).toBe(false);
    expect(r.outcomes[0]?.error?.code).toBe('FCP_ERR_TIMEOUT');
    silent = false;
    await once(c, 'connect');
    // The rule is still owned (the failure was transient) and is re-sent after the reconnect.
    expect(c.ownedRules).toBe(1);
    const ok = await c.set(rule(2));
    expect(ok.ok).toBe(true);
  });

  it('re-installs everything when a keep-alive is answered 200 instead of 201', async () => {
    const timers = new FakeTimers();
    const fake = await ScriptedServer.start((req) => `FCP=1.0 SEQ=${seqOf(req)} 200 OK\r\n`);
    cleanups.push(() => fake.stop());
    const c = client([fake.port], { timers });
    await c.ready();
    await c.set(rule(1), { timer: 30 });
    await c.set(rule(2), { timer: 40 });
    expect(fake.requests).toHaveLength(2);
    const lost = once<{ reason: string }>(c, 'state-lost');
    const sweep = once<{ rules: number }>(c, 'reinstall');
    timers.advance(15_000); // rule 1 due at TIMER/2
    expect(await lost).toEqual({ server: c.servers[0], reason: 'keepalive-200' });
    expect((await sweep).rules).toBe(1);
    const sets = fake.requests.filter((r) => r.startsWith('SET'));
    expect(sets).toHaveLength(4);
    expect(sets[3]).toContain('DSTPORT=20002;');
    expect(sets[3]).toContain('SOPT ACTION=pass; TIMER=40;');
  });

  it('keeps a rule alive at half its TIMER until it is released', async () => {
    const timers = new FakeTimers();
    const fake = await ScriptedServer.start((req) =>
      req.includes(' SEQ=1\r\n')
        ? 'FCP=1.0 SEQ=1 200 OK\r\n'
        : `FCP=1.0 SEQ=${seqOf(req)} 201 Keeping Alive\r\n`,
    );
    cleanups.push(() => fake.stop());
    const c = client([fake.port], { timers });
    await c.ready();
    await c.set(rule(1), { timer: 20 });
    for (let i = 0; i < 3; i++) {
      const resp = once(c, 'response');
      timers.advance(10_000);
      await resp;
    }
    expect(fake.requests.filter((r) => r.startsWith('SET'))).toHaveLength(4);
    await c.release(rule(1));
    timers.advance(60_000);
    await settle();
    expect(fake.requests.filter((r) => r.startsWith('SET'))).toHaveLength(4);
    expect(fake.requests.at(-1)).toMatch(/^RELEASE /);
  });

  it('sends each rule to every server; 203 is success without state, not released', async () => {
    const a = await startServer();
    const b = await startServer(0, new MemoryBackend(), {
      internalNetworks: ['198.18.0.0/15'],
    });
    const c = client([a.port, b.port]);
    const pme = { proto: 'udp' as const, src: '198.19.0.9', dst: '198.18.0.2', dstPort: 30000 };
    const r = await c.set(pme, { timer: 30 });
    expect(r.ok).toBe(true);
    expect(r.outcomes.map((o) => o.kind)).toEqual(['installed', 'not-my-route']);
    expect(a.server.liveRules).toBe(1);
    expect(b.server.liveRules).toBe(0);
    const rel = await c.release(pme);
    expect(rel.outcomes.map((o) => o.kind)).toEqual(['released', 'ok']);
    expect(b.server.stats().requests.RELEASE).toBeUndefined();
  });

  it('reports refusals as values with the status and reason', async () => {
    const { port } = await startServer();
    const c = client([port]);
    const r = await c.set({ proto: 'udp', dst: '203.0.113.5', dstPort: 40000 });
    expect(r.ok).toBe(false);
    expect(r.outcomes[0]).toMatchObject({ kind: 'refused', status: 403 });
    expect(r.outcomes[0]?.reason).toContain('not inside a protected network');
    expect(r.outcomes[0]?.error?.code).toBe('FCP_ERR_STATUS');
    expect(c.ownedRules).toBe(0);
  });

  it('ignores an fcpd-style banner and accepts one-line replies', async () => {
    const fake = await ScriptedServer.start((req) =>
      req.startsWith('QUERYNAT')
        ? `FCP=1.0 SEQ=${seqOf(req)} 200 OK\nIP=198.18.0.1 PORT=40000-40001\r\n`
        : `FCP=1.0 SEQ=${seqOf(req)} 200 OK\r\n`,
    );
    fake.greeting = 'fcpd v0.1 - GPLed\nWelcome Pilgrim.\n';
    cleanups.push(() => fake.stop());
    const c = client([fake.port]);
    const junk: string[] = [];
    c.on('junk', (j) => junk.push(j.line));
    const n = await c.queryNat({ srcIp: '10.0.0.7', srcPort: [3333, 3334], proto: 'udp' });
    expect(n.outcomes[0]?.nat).toEqual({ ip: '198.18.0.1', ports: [40000, 40001] });
    expect((await c.set(rule(1))).ok).toBe(true);
    expect(junk).toEqual(['fcpd v0.1 - GPLed', 'Welcome Pilgrim.']);
  });

  it('drops the connection when SEQ and order disagree', async () => {
    const fake = await ScriptedServer.start((req) => `FCP=1.0 SEQ=${seqOf(req) + 100} 200 OK\r\n`);
    cleanups.push(() => fake.stop());
    const c = client([fake.port]);
    const err = once<{ detail: string }>(c, 'protocol-error');
    const r = await c.set(rule(1));
    expect(r.outcomes[0]?.error?.code).toBe('FCP_ERR_PROTOCOL');
    expect((await err).detail).toContain('does not match');
  });

  it('rejects invalid arguments synchronously and everything after close()', async () => {
    const { port } = await startServer();
    const c = client([port]);
    await expect(c.set({ proto: 'udp', dst: '300.1.1.1' })).rejects.toMatchObject({
      code: 'FCP_ERR_INVALID_ARGUMENT',
    });
    c.close();
    await expect(c.query()).rejects.toMatchObject({ code: 'FCP_ERR_CLOSED' });
  });
});

describe('FcpClient over UDP (spec §6 #32)', () => {
  it('sets, queries and releases through a UDP listener', async () => {
    const server = new FcpServer(
      {
        listen: [{ transport: 'udp', host: '127.0.0.1', port: 0 }],
        policy: { protectedNetworks: ['198.18.0.0/16'] },
      },
      new MemoryBackend(),
    );
    await server.start();
    cleanups.push(() => server.stop());
    const c = new FcpClient({
      servers: [{ host: '127.0.0.1', port: server.addresses()[0]?.port ?? 0, transport: 'udp' }],
      keepAlive: false,
    });
    cleanups.push(() => c.close());
    expect((await c.set(rule(1), { timer: 30 })).outcomes[0]?.kind).toBe('installed');
    expect((await c.set(rule(1), { timer: 30 })).outcomes[0]?.kind).toBe('refreshed');
    const q = await c.query();
    expect(q.outcomes[0]?.rules).toHaveLength(1);
    expect((await c.release(rule(1))).outcomes[0]?.kind).toBe('released');
    expect(server.liveRules).toBe(0);
  });

  it('retransmits with the same SEQ when a datagram is lost', async () => {
    const timers = new FakeTimers();
    const sock = dgram.createSocket('udp4');
    const seen: string[] = [];
    sock.on('message', (m, r) => {
      const text = m.toString('latin1');
      seen.push(text);
      // Drop the first copy; answer the retransmission.
      if (seen.length >= 2)
        sock.send(`FCP=1.0 SEQ=${seqOf(text)} 200 OK\r\n\r\n`, r.port, r.address);
    });
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
    cleanups.push(() => {
      sock.close();
    });
    const c = new FcpClient({
      servers: [{ host: '127.0.0.1', port: sock.address().port, transport: 'udp' }],
      keepAlive: false,
      timers,
    });
    cleanups.push(() => c.close());
    await c.ready();
    const pending = c.set(rule(1));
    for (let i = 0; i < 50 && seen.length < 1; i++) await settle();
    timers.advance(500);
    const r = await pending;
    expect(r.outcomes[0]?.kind).toBe('installed');
    expect(seen).toHaveLength(2);
    expect(seen[1]).toBe(seen[0]);
  });
});

describe('FcpClient against a server writing the published two-line layout', () => {
  it('decodes SET, QUERY and QUERYNAT replies in the ABNF layout', async () => {
    const { port } = await startServer(0, new MemoryBackend(), {
      responseStyle: 'abnf',
      queryScope: 'own',
    });
    const c = client([port]);
    expect((await c.set(rule(1), { timer: 30 })).outcomes[0]?.kind).toBe('installed');
    expect((await c.set(rule(2), { timer: 40, action: 'drop' })).outcomes[0]?.kind).toBe(
      'installed',
    );
    const q = await c.query();
    expect(q.outcomes[0]?.rules?.map((r) => r.options)).toEqual([
      { action: 'pass', timer: 30 },
      { action: 'drop', timer: 40 },
    ]);
    const n = await c.queryNat({ srcIp: '198.19.0.5', srcPort: 5004, proto: 'udp' });
    expect(n.outcomes[0]?.nat).toEqual({ ip: '198.19.0.5', ports: [5004, 5004] });
    expect((await c.release(rule(2))).outcomes[0]?.kind).toBe('released');
  });
});

describe('FcpClient rules without keep-alive', () => {
  it('forgets a rule whose TIMER ran out, so a reconnect does not re-create it', async () => {
    const timers = new FakeTimers();
    const fake = await ScriptedServer.start((req) => `FCP=1.0 SEQ=${seqOf(req)} 200 OK\r\n`);
    cleanups.push(() => fake.stop());
    const c = client([fake.port], { timers, keepAlive: false });
    await c.ready();
    await c.set(rule(1), { timer: 30 });
    await c.set(rule(2), { timer: 90 });
    expect(c.ownedRules).toBe(2);
    timers.advance(31_000);
    expect(c.ownedRules).toBe(1);
    timers.advance(60_000);
    await settle();
    expect(c.ownedRules).toBe(0);
    expect(fake.requests.filter((r) => r.startsWith('SET'))).toHaveLength(2);
  });
});

describe('FcpClient.release(): only "no matching rule" is gone (spec §3.2, §5.4)', () => {
  it('is gone (ok) when FcpServer no longer holds the rule', async () => {
    const { server, port } = await startServer();
    const c = client([port]);
    expect((await c.set(rule(1), { timer: 30 })).ok).toBe(true);
    // Another client on the same address (the owner) releases it first: at the server it is gone.
    const other = client([port]);
    expect((await other.release(rule(1))).outcomes[0]?.kind).toBe('released');
    expect(server.liveRules).toBe(0);
    const r = await c.release(rule(1));
    expect(r.ok).toBe(true);
    expect(r.outcomes[0]).toMatchObject({ kind: 'gone', status: 400, error: undefined });
    expect(r.outcomes[0]?.reason).toMatch(/no matching rule found to release/i);
    expect(c.ownedRules).toBe(0);
    // Never set at all: the same answer.
    expect((await c.release(rule(2))).outcomes[0]?.kind).toBe('gone');
  });

  it('is a refusal (not ok) when FcpServer answers another 400', async () => {
    // An over-long request gets `400 Bad Request: request exceeds 64 bytes` (then a close).
    const { port } = await startServer(0, new MemoryBackend(), {
      limits: { ratePerSec: 0, maxRequestBytes: 64 },
    });
    const c = client([port]);
    const r = await c.release({
      proto: 'udp',
      src: '203.0.113.7',
      dst: '198.18.0.2',
      dstPort: [40000, 40001],
    });
    expect(r.ok).toBe(false);
    expect(r.outcomes[0]).toMatchObject({ kind: 'refused', status: 400 });
    expect(r.outcomes[0]?.reason).toContain('request exceeds 64 bytes');
    expect(r.outcomes[0]?.error).toMatchObject({ code: 'FCP_ERR_STATUS', status: 400 });
  });

  // Replies to RELEASE as fcpd and variants of it write them (spec §3.1, §4.3, §6 #2 and #4).
  const gone: [string, (seq: number) => string][] = [
    [
      'fcpd one-line',
      (s) => `FCP=1.0 SEQ=${s} 400 Bad Request: no matching rule found to release\r\n`,
    ],
    ['LF only', (s) => `FCP=1.0 SEQ=${s} 400 Bad Request: no matching rule found to release\n`],
    [
      'upper case',
      (s) => `FCP=1.0 SEQ=${s} 400 BAD REQUEST: NO MATCHING RULE FOUND TO RELEASE\r\n`,
    ],
    ['glued to the reason', (s) => `FCP=1.0 SEQ=${s} 400 Bad Requestno matching rule found\r\n`],
    ['extra whitespace', (s) => `FCP=1.0 SEQ=${s} 400  Bad Request:  No\tMatching  Rule \r\n`],
    ['SEQ=0', () => `FCP=1.0 SEQ=0 400 Bad Request: no matching rule found to release\r\n`],
    [
      'published two-line layout',
      (s) => `FCP=1.0 SEQ=${s}\r\n400 Bad Request: no matching rule found to release\r\n\r\n`,
    ],
    ['bare status line', () => `400 Bad Request: no matching rule found to release\n\r\n`],
  ];
  const refused: [string, (seq: number) => string][] = [
    ['unknown token', (s) => `FCP=1.0 SEQ=${s} 400 Bad Request: unknown token "FOO"\r\n`],
    ['bare misplaced token', () => `400 Bad Request: misplaced token "34"\n\r\n`],
    ['no reason text', (s) => `FCP=1.0 SEQ=${s} 400\r\n`],
    ['plain reason phrase', (s) => `FCP=1.0 SEQ=${s} 400 Bad Request\r\n`],
    [
      'bad field',
      (s) => `FCP=1.0 SEQ=${s} 400 Bad Request: TIMER must be 1 .. 1000000 seconds\r\n`,
    ],
    ['a NAT miss', (s) => `FCP=1.0 SEQ=${s} 400 Bad Request: No such NAT reservation\r\n`],
  ];

  async function releaseAgainst(answer: (seq: number) => string) {
    const fake = await ScriptedServer.start((req) =>
      req.startsWith('RELEASE') ? answer(seqOf(req)) : `FCP=1.0 SEQ=${seqOf(req)} 200 OK\r\n`,
    );
    cleanups.push(() => fake.stop());
    const c = client([fake.port]);
    expect((await c.set(rule(1))).ok).toBe(true);
    const r = await c.release(rule(1));
    expect(c.ownedRules).toBe(0);
    return r;
  }

  it.each(gone)('%s: gone, ok', async (_name, answer) => {
    const r = await releaseAgainst(answer);
    expect(r.ok).toBe(true);
    expect(r.outcomes[0]).toMatchObject({ kind: 'gone', status: 400, error: undefined });
  });

  it.each(refused)('%s: refused, not ok', async (_name, answer) => {
    const r = await releaseAgainst(answer);
    expect(r.ok).toBe(false);
    expect(r.outcomes[0]).toMatchObject({ kind: 'refused', status: 400 });
    expect(r.outcomes[0]?.error?.code).toBe('FCP_ERR_STATUS');
  });

  it('matches the reason by its words, in any case', () => {
    expect(isNoMatchingRuleReason('Bad Request: no matching rule found to release')).toBe(true);
    expect(isNoMatchingRuleReason('bad request: NO MATCHING RULE')).toBe(true);
    expect(isNoMatchingRuleReason('Bad Request: unknown token "rule"')).toBe(false);
    expect(isNoMatchingRuleReason('')).toBe(false);
  });
});

describe('FcpClient write coalescing', () => {
  it('sends the requests issued in one turn in one write; a later turn gets its own', async () => {
    // A server that counts the 'data' chunks it receives and answers every request.
    let chunks = 0;
    const fake = await ScriptedServer.start((req) => `FCP=1.0 SEQ=${seqOf(req)} 200 OK\r\n`);
    fake.server.prependListener('connection', (s: net.Socket) => s.on('data', () => chunks++));
    cleanups.push(() => fake.stop());
    const c = client([fake.port]);
    await c.ready();
    const writes = vi.spyOn(net.Socket.prototype, 'write');
    cleanups.push(() => writes.mockRestore());
    const clientWrites = () =>
      writes.mock.contexts.filter((s) => (s as net.Socket).remotePort === fake.port).length;
    // A proxy opening RTP and RTCP holes for both directions of a call: 4 requests, one turn.
    const call = await Promise.all([
      c.set(rule(1), { timer: 30 }),
      c.set(rule(2), { timer: 30 }),
      c.set(rule(3), { timer: 30 }),
      c.release(rule(4)),
    ]);
    expect(call.map((r) => r.outcomes[0]?.kind)).toEqual([
      'installed',
      'installed',
      'installed',
      'released',
    ]);
    expect(fake.requests).toHaveLength(4);
    expect(fake.requests.map(seqOf)).toEqual([1, 2, 3, 4]);
    expect(clientWrites()).toBe(1);
    expect(chunks).toBe(1);
    // A single request in a later turn is written on its own, in that turn.
    expect((await c.set(rule(5), { timer: 30 })).ok).toBe(true);
    expect(clientWrites()).toBe(2);
    expect(chunks).toBe(2);
  });

  it('writes before the event loop runs its immediates (no wait behind other I/O)', async () => {
    // In the proxy, libuv hands over a burst of UDP datagrams before it runs the immediates: a
    // SET held for the next immediate waited for the whole burst to be processed.
    const fake = await ScriptedServer.start((req) => `FCP=1.0 SEQ=${seqOf(req)} 200 OK\r\n`);
    cleanups.push(() => fake.stop());
    const c = client([fake.port]);
    await c.ready();
    const writes = vi.spyOn(net.Socket.prototype, 'write');
    cleanups.push(() => writes.mockRestore());
    const clientWrites = () =>
      writes.mock.contexts.filter((s) => (s as net.Socket).remotePort === fake.port).length;
    let writtenBeforeImmediate: boolean | undefined;
    setImmediate(() => (writtenBeforeImmediate = clientWrites() === 1));
    const set = c.set(rule(1), { timer: 30 });
    expect((await set).ok).toBe(true);
    expect(writtenBeforeImmediate).toBe(true);
  });
});
