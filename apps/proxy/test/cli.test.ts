/**
 * The `pinhole-proxy` binary: starts from a config file, prints where it listens, applies a
 * changed route on SIGHUP, and exits 0 on SIGTERM. FCP goes to an fcpd with the memory backend
 * started by the test (so nothing touches this machine's firewall).
 */
import { spawn } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, startMemoryFcpd } from './harness.js';

async function udp(): Promise<Socket> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  return s;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function options(n: number, port: number): string {
  return [
    `OPTIONS sip:bob@127.0.0.1:${port} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKcli${n}`,
    'Max-Forwards: 70',
    'From: <sip:alice@127.0.0.1>;tag=c1',
    'To: <sip:bob@127.0.0.1>',
    `Call-ID: cli-${n}`,
    'CSeq: 1 OPTIONS',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
}

describe('pinhole-proxy command line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pinhole-cli-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('starts from a config file, reloads routes on SIGHUP and exits 0 on SIGTERM', async () => {
    const fcpd = await startMemoryFcpd();
    const [a, b, probe] = [await udp(), await udp(), await udp()];
    const got = { a: 0, b: 0 };
    a.on('message', () => got.a++);
    b.on('message', () => got.b++);
    const file = join(dir, 'proxy.json');
    const cfg = (to: Socket): string =>
      JSON.stringify({
        listen: ['udp:127.0.0.1:0'],
        routes: [`default=sip:127.0.0.1:${to.address().port}`],
        fcp: [`tcp:${fcpd.addresses[0]!.host}:${fcpd.addresses[0]!.port}`],
        protected: ['198.19.0.0/16'],
        logLevel: 'info',
      });
    writeFileSync(file, cfg(a));
    const child = spawn(process.execPath, [CLI, '--config', file], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: { msg: string; listen?: string[] }[] = [];
    createInterface({ input: child.stdout }).on('line', (l) => {
      try {
        lines.push(JSON.parse(l) as { msg: string });
      } catch {
        /* not JSON */
      }
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      for (let i = 0; i < 100 && !/listening on udp:/.test(stderr); i++) await sleep(100);
      expect(stderr).toMatch(
        /pinhole-proxy: listening on udp:127\.0\.0\.1:\d+; firewall: remote FCP/,
      );
      const port = Number(/udp:127\.0\.0\.1:(\d+)/.exec(stderr)![1]);

      probe.send(options(1, port), port, '127.0.0.1');
      for (let i = 0; i < 50 && got.a === 0; i++) await sleep(50);
      expect(got).toEqual({ a: 1, b: 0 });

      writeFileSync(file, cfg(b));
      child.kill('SIGHUP');
      for (let i = 0; i < 50 && !lines.some((l) => l.msg === 'configuration reloaded'); i++) {
        await sleep(50);
      }
      expect(lines.some((l) => l.msg === 'configuration reloaded')).toBe(true);
      probe.send(options(2, port), port, '127.0.0.1');
      for (let i = 0; i < 50 && got.b === 0; i++) await sleep(50);
      expect(got.b).toBe(1);

      const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      for (const s of [a, b, probe]) s.close();
      await fcpd.close();
    }
  });

  it('with workers, a worker that cannot start logs why, and the proxy exits 1', async () => {
    const fcpd = await startMemoryFcpd();
    // An address of the benchmarking range that no interface here has: the bind fails.
    const child = spawn(
      process.execPath,
      [
        CLI,
        '--workers',
        '2',
        '--listen',
        'udp:198.18.255.254:5060',
        '--fcp',
        `tcp:127.0.0.1:${fcpd.addresses[0]!.port}`,
        '--protected',
        '198.19.0.0/16',
        '--no-warmup',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const lines: { msg: string; worker?: number; err?: string }[] = [];
    createInterface({ input: child.stdout }).on('line', (l) => {
      try {
        lines.push(JSON.parse(l) as { msg: string });
      } catch {
        /* not JSON */
      }
    });
    try {
      const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
      expect(code).toBe(1);
      const failed = lines.filter((l) => l.msg === 'start failed');
      expect(failed.length).toBeGreaterThan(0);
      expect(failed[0]?.worker).toBeTypeOf('number');
      expect(failed[0]?.err).toMatch(/198\.18\.255\.254|EADDRNOTAVAIL/);
      expect(lines.some((l) => l.msg === 'worker died; shutting down')).toBe(true);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await fcpd.close();
    }
  }, 30_000);

  it('exits 2 and names the field of a bad configuration', async () => {
    const child = spawn(process.execPath, [CLI, '--listen', 'udp:::1:5060'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    expect(code).toBe(2);
    expect(stderr).toMatch(/--listen: IPv6 addresses need brackets/);
  });
});
