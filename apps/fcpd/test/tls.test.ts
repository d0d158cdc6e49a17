/**
 * `--listen tls:...` with `--tls-cert/--tls-key/--tls-ca`: the daemon as a process, certificates
 * made by openssl for the test (a CA, a server certificate for 127.0.0.1, a client certificate
 * CN=proxy-1), the pipelined FcpClient over TLS. Memory backend: no root needed.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FcpClient } from '@pinhole/fcp';
import { systemTestsRequired } from '@pinhole/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, stopDaemon, type RunningDaemon } from './helpers.js';

const hasOpenssl = spawnSync('openssl', ['version']).status === 0;
if (!hasOpenssl) {
  if (systemTestsRequired()) throw new Error('fcpd TLS: openssl is required to make certificates');
  console.warn('skipping fcpd TLS tests: openssl not found');
}

describe.runIf(hasOpenssl)('pinhole-fcpd with --listen tls: and client certificates', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pinhole-fcpd-tls-'));
  const f = (name: string): string => join(dir, name);
  const pem = (name: string): string => readFileSync(f(name), 'utf8');
  const ossl = (...args: string[]): void => {
    execFileSync('openssl', args, { stdio: 'ignore' });
  };
  const daemons: RunningDaemon[] = [];
  const clients: FcpClient[] = [];

  /** Key + certificate signed by the test CA. */
  const issue = (name: string, cn: string, san?: string): void => {
    ossl(
      ...['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'],
      ...['-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/CN=${cn}`],
    );
    writeFileSync(
      f(`${name}.ext`),
      san ? `subjectAltName=${san}\n` : 'basicConstraints=CA:FALSE\n',
    );
    ossl(
      ...['x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.pem'), '-CAkey', f('ca.key')],
      ...['-CAcreateserial', '-out', f(`${name}.pem`), '-days', '1', '-extfile', f(`${name}.ext`)],
    );
  };

  beforeAll(() => {
    ossl(
      ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'],
      ...['-keyout', f('ca.key'), '-out', f('ca.pem'), '-subj', '/CN=pinhole-test-ca'],
      ...['-days', '1'],
    );
    issue('server', '127.0.0.1', 'IP:127.0.0.1');
    issue('client', 'proxy-1');
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    for (const d of daemons) await stopDaemon(d, 'SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });

  const start = async (withCa: boolean, acl?: string): Promise<number> => {
    const d = await startDaemon([
      ...(acl ? ['--allow-client', acl] : []),
      ...['--listen', 'tls:127.0.0.1:0', '--backend', 'memory', '--protected', '198.19.0.0/16'],
      ...['--tls-cert', f('server.pem'), '--tls-key', f('server.key')],
      ...(withCa ? ['--tls-ca', f('ca.pem')] : []),
    ]);
    daemons.push(d);
    expect(d.server).toMatch(/^tls:127\.0\.0\.1:\d+$/);
    return Number(d.server.split(':').pop());
  };

  const client = (port: number, cert: boolean): FcpClient => {
    const c = new FcpClient({
      servers: [
        {
          host: '127.0.0.1',
          port,
          transport: 'tls',
          tls: {
            ca: pem('ca.pem'),
            ...(cert ? { cert: pem('client.pem'), key: pem('client.key') } : {}),
          },
        },
      ],
      keepAlive: false,
      requestTimeoutMs: 3000,
      connection: { reconnect: { initialDelayMs: 50, maxDelayMs: 200 } },
    });
    clients.push(c);
    return c;
  };

  it('opens and releases a hole for a client with a certificate the CA signed', async () => {
    // The ACL does not include loopback: the verified certificate admits the client.
    const port = await start(true, '198.18.0.0/15');
    const c = client(port, true);
    await c.ready();
    const pme = { proto: 'udp' as const, dst: '198.19.7.7', dstPort: [40000, 40001] as const };
    const set = await c.set({ ...pme, dstPort: [40000, 40001] }, { timer: 30 });
    expect(set.ok).toBe(true);
    expect(set.outcomes[0]?.status).toBe(200);
    const q = await c.query();
    expect(q.outcomes[0]?.rules?.length).toBe(1);
    expect((await c.release({ ...pme, dstPort: [40000, 40001] })).ok).toBe(true);
  });

  it('refuses a client without a certificate when --tls-ca is given', async () => {
    const port = await start(true);
    const c = client(port, false);
    // The handshake fails every time: never connected, the request times out or fails.
    const r = await c.set({ proto: 'udp', dst: '198.19.7.8', dstPort: 40000 }, { timer: 30 });
    expect(r.ok).toBe(false);
    expect(r.outcomes[0]?.kind).toBe('failed');
    expect(c.connected).toBe(false);
  });

  it('without --tls-ca asks no certificate: encryption only, the address ACL decides', async () => {
    const port = await start(false);
    const c = client(port, false);
    await c.ready();
    const r = await c.set({ proto: 'udp', dst: '198.19.7.9', dstPort: 40000 }, { timer: 30 });
    expect(r.outcomes[0]?.status).toBe(200);
  });
});
