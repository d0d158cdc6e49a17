/**
 * FcpClient against an FcpServer in the same process through a local link (no socket): the same
 * FCP/1.0 text, the same answers as over TCP, the same ACL, and reconnection when the server
 * comes back.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { FcpClient } from './client.js';
import type { FcpServerConfig } from './config.js';
import { localLink } from './local-link.js';
import { MemoryBackend } from './memory-backend.js';
import { FcpServer } from './server.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function config(extra: Partial<FcpServerConfig> = {}): FcpServerConfig {
  return {
    // The server needs no listener of its own for local clients; one on loopback shows that
    // both kinds of clients share its rule table.
    listen: [{ transport: 'tcp', host: '127.0.0.1', port: 0 }],
    policy: { protectedNetworks: ['198.18.0.0/16'], ownAddresses: ['198.18.0.1'] },
    limits: { ratePerSec: 0 },
    ...extra,
  };
}

async function startServer(extra: Partial<FcpServerConfig> = {}): Promise<FcpServer> {
  const server = new FcpServer(config(extra), new MemoryBackend());
  await server.start();
  cleanups.push(() => server.stop());
  return server;
}

function localClient(connect: () => ReturnType<FcpServer['connectLocal']>): FcpClient {
  const c = new FcpClient({
    servers: [{ host: 'embedded', port: 0, transport: 'local', connect }],
    connection: { reconnect: { initialDelayMs: 20, maxDelayMs: 100 } },
  });
  cleanups.push(() => c.close());
  return c;
}

const rule = (n: number) => ({ proto: 'udp' as const, dst: '198.18.0.2', dstPort: 20000 + n });

describe('local link', () => {
  it('carries bytes both ways at once, and ending one end closes the other', async () => {
    const [a, b] = localLink();
    const got: string[] = [];
    b.setEncoding('latin1');
    b.on('data', (d: string) => got.push(d));
    let polled = false;
    setImmediate(() => (polled = true));
    a.write('SET FCP=1.0 SEQ=1\r\n');
    await new Promise<void>((r) => process.nextTick(r));
    // Delivered in the same turn, before the event loop polls for I/O again.
    expect(got).toEqual(['SET FCP=1.0 SEQ=1\r\n']);
    expect(polled).toBe(false);
    b.write('FCP=1.0 SEQ=1 200 OK\r\n');
    a.setEncoding('latin1');
    const back = await new Promise<string>((r) => a.once('data', r));
    expect(back).toBe('FCP=1.0 SEQ=1 200 OK\r\n');
    const closed = new Promise<void>((r) => b.once('close', () => r()));
    a.end();
    await closed;
    expect(a.destroyed || a.writableEnded).toBe(true);
  });
});

describe('FcpClient against FcpServer in this process (transport local)', () => {
  it('answers SET, keep-alive, QUERY and RELEASE as over TCP, in one shared rule table', async () => {
    const server = await startServer();
    const c = localClient(() => server.connectLocal());
    await c.ready();
    expect(c.servers).toEqual(['local:embedded']);
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => c.set(rule(i), { timer: 30 })),
    );
    expect(results.every((r) => r.ok && r.outcomes[0]?.kind === 'installed')).toBe(true);
    expect(server.liveRules).toBe(50);
    expect((await c.set(rule(0), { timer: 30 })).outcomes[0]?.kind).toBe('refreshed');
    const q = await c.query(rule(7));
    expect(q.outcomes[0]?.rules?.length).toBe(1);
    // A local client is the loopback client 127.0.0.1 (owner, limits): its rules are listed so.
    expect(server.rules().find((r) => r.key.includes('DSTPORT=20007;'))?.owner).toBe('127.0.0.1');
    // The server's policy applies as to any client: 403 outside the protected networks.
    const refused = await c.set({ proto: 'udp', dst: '192.0.2.9', dstPort: 30000 }, { timer: 30 });
    expect(refused.ok).toBe(false);
    expect(refused.outcomes[0]?.status).toBe(403);
    await Promise.all(Array.from({ length: 50 }, (_, i) => c.release(rule(i))));
    expect(server.liveRules).toBe(0);
    expect(server.stats().connections).toBe(1);
  });

  it('serves local clients of a server that has no listener at all', async () => {
    const server = await startServer({ listen: [] });
    expect(server.addresses()).toEqual([]);
    const c = localClient(() => server.connectLocal());
    await c.ready();
    expect((await c.set(rule(1), { timer: 30 })).ok).toBe(true);
    expect(server.liveRules).toBe(1);
    await c.release(rule(1));
    expect(server.liveRules).toBe(0);
  });

  it('answers a SET before the event loop runs its immediates (no wait behind other I/O)', async () => {
    // In the proxy, libuv hands over a burst of UDP datagrams before it runs the immediates: a
    // reply held for the next immediate waited for the whole burst. It must not wait at all.
    const server = await startServer();
    const c = localClient(() => server.connectLocal());
    await c.ready();
    for (let i = 0; i < 3; i++) {
      let polled = false;
      setImmediate(() => (polled = true));
      const r = await c.set(rule(i), { timer: 30 });
      expect(r.ok).toBe(true);
      expect(polled).toBe(false);
    }
  });

  it('is refused (401) when the ACL does not admit loopback', async () => {
    const server = await startServer({ allowClients: ['198.18.0.0/16'] });
    const c = localClient(() => server.connectLocal());
    await c.ready();
    const r = await c.set(rule(1), { timer: 30 });
    expect(r.ok).toBe(false);
    expect(r.outcomes[0]?.status).toBe(401);
    expect(server.liveRules).toBe(0);
  });

  it('reconnects when the server comes back, and re-installs what it owns', async () => {
    let server = await startServer();
    const c = localClient(() => server.connectLocal());
    await c.ready();
    expect((await c.set(rule(1), { timer: 30 })).ok).toBe(true);
    const lost = new Promise<void>((r) => c.once('disconnect', () => r()));
    await server.stop();
    await lost;
    // While it is down, connecting throws: the client retries with backoff.
    expect(() => server.connectLocal()).toThrow(/not running/);
    server = await startServer();
    const reinstalled = new Promise<void>((r) => c.once('reinstall', () => r()));
    await reinstalled;
    expect(server.liveRules).toBe(1);
    expect(c.connected).toBe(true);
  });
});
