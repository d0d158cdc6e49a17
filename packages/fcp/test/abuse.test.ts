import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FcpClient } from '../src/client.js';
import type { FcpServerConfig } from '../src/config.js';
import { MemoryBackend } from '../src/memory-backend.js';
import { FcpServer } from '../src/server.js';
import { RawPeer, udpExchange } from './helpers.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function start(extra: Partial<FcpServerConfig> = {}) {
  const backend = new MemoryBackend();
  const server = new FcpServer(
    {
      listen: [
        { transport: 'tcp', host: '127.0.0.1', port: 0 },
        { transport: 'udp', host: '127.0.0.1', port: 0 },
      ],
      policy: {
        protectedNetworks: ['198.18.0.0/16'],
        ownAddresses: ['198.18.0.1'],
        protectedPorts: [5060, 12345],
        maxTimerSec: 3600,
      },
      ...extra,
    },
    backend,
  );
  await server.start();
  cleanups.push(() => server.stop());
  const port = (t: string): number => server.addresses().find((a) => a.transport === t)?.port ?? 0;
  return { server, backend, tcp: port('tcp'), udp: port('udp') };
}

async function peer(port: number): Promise<RawPeer> {
  const p = await RawPeer.connect(port);
  cleanups.push(() => p.close());
  return p;
}

function newClient(port: number): FcpClient {
  const c = new FcpClient({ servers: [{ host: '127.0.0.1', port }], requestTimeoutMs: 120_000 });
  cleanups.push(() => c.close());
  return c;
}

const SET = (seq: number, pme: string, sopt = 'ACTION=pass; TIMER=30;') =>
  `SET FCP=1.0 SEQ=${seq}\r\nPME ${pme}\r\nSOPT ${sopt}\r\n\r\n`;

describe('abuse: the server decides what may be opened', () => {
  it('answers 401 to a client outside the ACL and closes; the request has no effect', async () => {
    const { server, tcp, udp } = await start({ allowClients: ['10.0.0.0/8'] });
    const p = await peer(tcp);
    p.send(SET(1, 'PROTO=17; DSTIP=198.18.0.2; DSTPORT=40000;'));
    await p.until(() => p.closed);
    expect(p.data).toBe(
      'FCP=1.0 SEQ=0 401 Unauthorized: your address is not in the access control list\r\n\r\n',
    );
    const viaUdp = await udpExchange(
      udp,
      [SET(2, 'PROTO=17; DSTIP=198.18.0.2; DSTPORT=40000;')],
      1,
    );
    expect(viaUdp[0]).toContain(' 401 Unauthorized');
    expect(server.liveRules).toBe(0);
    expect(server.stats().unauthorized).toBe(2);
  });

  it.each([
    [
      'a destination outside the protected networks',
      { dst: '192.0.2.10', dstPort: 40000 },
      'not inside a protected network',
    ],
    ['the firewall itself', { dst: '198.18.0.1', dstPort: 40000 }, 'firewall itself'],
    ['a wildcard destination address', { dstPort: 40000 }, 'no wildcard destination address'],
    [
      'a destination network wider than a host',
      { dst: '198.18.0.0/24', dstPort: 40000 },
      'wider than /32',
    ],
    ['a wildcard destination port', { dst: '198.18.0.2' }, 'no wildcard destination port'],
    ['a port below 1024', { dst: '198.18.0.2', dstPort: 22 }, 'outside the allowed port ranges'],
    ['a protected port', { dst: '198.18.0.2', dstPort: 5060 }, 'protected port'],
    [
      'a range covering a protected port',
      { dst: '198.18.0.2', dstPort: [12300, 12400] as [number, number] },
      'protected port',
    ],
    [
      'too wide a port range',
      { dst: '198.18.0.2', dstPort: [20000, 30000] as [number, number] },
      'spans more than',
    ],
  ])('refuses %s with 403 and a reason', async (_n, pme, reason) => {
    const { server, tcp } = await start();
    const refused: string[] = [];
    server.on('policy-refused', (e) => refused.push(e.reason));
    const c = newClient(tcp);
    const r = await c.set({ proto: 'udp', ...pme }, { timer: 30 });
    expect(r.outcomes[0]).toMatchObject({ kind: 'refused', status: 403 });
    expect(r.outcomes[0]?.reason).toContain(reason);
    expect(refused).toHaveLength(1);
    expect(server.liveRules).toBe(0);
    expect(server.stats().policyRefusals).toBe(1);
  });

  it('refuses a protocol that is not allowed, TIMER=0 and a TIMER over the maximum', async () => {
    const { server } = await start();
    const who = {
      address: '127.0.0.1',
      port: 1,
      transport: 'tcp' as const,
      owner: '127.0.0.1',
      authenticated: false,
    };
    expect(await server.handle(SET(1, 'PROTO=50; DSTIP=198.18.0.2;'), who)).toContain(
      '403 Forbidden: PROTO=50 is not allowed',
    );
    expect(
      await server.handle(
        SET(2, 'PROTO=17; DSTIP=198.18.0.2; DSTPORT=40000;', 'ACTION=pass; TIMER=0;'),
        who,
      ),
    ).toContain('403 Forbidden: TIMER=0');
    expect(
      await server.handle(
        SET(3, 'PROTO=17; DSTIP=198.18.0.2; DSTPORT=40000;', 'ACTION=pass; TIMER=7200;'),
        who,
      ),
    ).toContain('403 Forbidden: TIMER=7200 exceeds');
  });

  it('answers an over-long request with 400 and closes; other clients do not notice', async () => {
    const { tcp } = await start();
    const bystander = newClient(tcp);
    await bystander.ready();
    const p = await peer(tcp);
    p.send(`SET FCP=1.0 SEQ=1\r\nPME ${'PROTO=17; '.repeat(2000)}`);
    await p.until(() => p.closed);
    expect(p.data).toBe('FCP=1.0 SEQ=0 400 Bad Request: request exceeds 8192 bytes\r\n\r\n');
    const ok = await bystander.set({ proto: 'udp', dst: '198.18.0.2', dstPort: 40000 });
    expect(ok.ok).toBe(true);
  });

  it('answers garbage bytes with 400 per request and keeps serving', async () => {
    const { server, tcp } = await start();
    const p = await peer(tcp);
    const garbage = Buffer.alloc(4000);
    let x = 12345;
    for (let i = 0; i < garbage.length; i++) {
      x = (x * 1103515245 + 12345) & 0x7fffffff;
      garbage[i] = x & 0xff;
    }
    p.send(garbage);
    p.send('\r\n\r\n\0\0\0\xff\r\n\r\nQUERY FCP=1.0 SEQ=99\r\n\r\n');
    await p.until((d) => d.includes('SEQ=99 200 OK') || p.closed);
    const replies = p.data.split('\r\n\r\n').filter((r) => r !== '');
    for (const r of replies.slice(0, -1)) expect(r).toMatch(/^FCP=1\.0 SEQ=\d+ 40[02] /);
    expect(replies.at(-1)).toBe('FCP=1.0 SEQ=99 200 OK');
    expect(server.stats().requests.INVALID?.[400]).toBeGreaterThan(0);
  });

  it('holds one client to its quota: 10,000 pipelined SETs, the ones beyond get 403', async () => {
    const { server, backend, tcp } = await start({
      limits: { maxRulesPerClient: 1000, ratePerSec: 0 },
    });
    const c = newClient(tcp);
    const results = await Promise.all(
      Array.from({ length: 10_000 }, (_, i) =>
        c.set(
          { proto: 'udp', dst: `198.18.${1 + (i >> 8)}.${i & 0xff}`, dstPort: 40000 },
          { timer: 60, keepAlive: false },
        ),
      ),
    );
    const kinds = new Map<string, number>();
    for (const r of results) {
      const k = `${r.outcomes[0]?.kind}:${r.outcomes[0]?.status}`;
      kinds.set(k, (kinds.get(k) ?? 0) + 1);
    }
    expect(Object.fromEntries(kinds)).toEqual({ 'installed:200': 1000, 'refused:403': 9000 });
    expect(results.at(-1)?.outcomes[0]?.reason).toContain('quota exceeded');
    expect(server.liveRules).toBe(1000);
    expect(backend.size).toBe(1000);
    expect(server.stats().quotaRefusals).toBe(9000);
  });

  it('rate-limits one client with 502 and a reason; the next second it is served again', async () => {
    const { server } = await start({ limits: { ratePerSec: 5, rateBurst: 5 } });
    const who = {
      address: '127.0.0.1',
      port: 1,
      transport: 'tcp' as const,
      owner: '127.0.0.1',
      authenticated: false,
    };
    const replies = [];
    for (let i = 0; i < 8; i++)
      replies.push(await server.handle(`QUERY FCP=1.0 SEQ=${i}\r\n\r\n`, who));
    expect(replies.filter((r) => r.includes(' 200 OK'))).toHaveLength(5);
    expect(replies.at(-1)).toContain('502 Service Unavailable: request rate limit exceeded');
  });
});

describe('TLS with client certificates', () => {
  it('admits a client with a verified certificate from outside the ACL and names it as owner', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'phfcp-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
    ssl(
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.crt',
      '-days',
      '2',
      '-subj',
      '/CN=test-ca',
    );
    for (const name of ['server', 'proxy1']) {
      ssl(
        'req',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        `${name}.key`,
        '-out',
        `${name}.csr`,
        '-subj',
        `/CN=${name}`,
      );
      ssl(
        'x509',
        '-req',
        '-in',
        `${name}.csr`,
        '-CA',
        'ca.crt',
        '-CAkey',
        'ca.key',
        '-CAcreateserial',
        '-out',
        `${name}.crt`,
        '-days',
        '2',
      );
    }
    const read = (f: string) => readFileSync(join(dir, f));
    const { server } = await start({
      allowClients: ['10.0.0.0/8'], // loopback is NOT in the ACL: only the certificate admits
      listen: [
        {
          transport: 'tls',
          host: '127.0.0.1',
          port: 0,
          tls: { key: read('server.key'), cert: read('server.crt'), ca: read('ca.crt') },
        },
      ],
    });
    const port = server.addresses()[0]?.port ?? 0;
    const c = new FcpClient({
      servers: [
        {
          host: '127.0.0.1',
          port,
          transport: 'tls',
          tls: {
            key: read('proxy1.key'),
            cert: read('proxy1.crt'),
            ca: read('ca.crt'),
            servername: 'server',
            checkServerIdentity: () => undefined,
          },
        },
      ],
    });
    cleanups.push(() => c.close());
    const r = await c.set({ proto: 'udp', dst: '198.18.0.2', dstPort: 40000 });
    expect(r.ok).toBe(true);
    expect(server.rules()[0]?.owner).toBe('cert:proxy1');
  });
});
