/**
 * sipp calls through the proxy on loopback: UDP, TCP, parallel forking to two registered
 * contacts, and `--workers 2` with the real CLI, where the FCP server's rule count shows that
 * every call's BYE reached the worker that opened its holes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { FcpdHandle } from '@pinhole/fcpd';
import { systemTestGate } from '@pinhole/testkit';
import { pino } from 'pino';
import { startApp, type AppHandle } from '../src/app.js';
import { parseArgs } from '../src/config.js';
import { CLI, SCENARIOS, startMemoryFcpd } from './harness.js';

async function freePort(kind: 'udp' | 'tcp'): Promise<number> {
  if (kind === 'udp') {
    const s = createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
    const p = s.address().port;
    s.close();
    return p;
  }
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const a = srv.address();
  const p = typeof a === 'object' && a ? a.port : 0;
  await new Promise((r) => srv.close(r));
  return p;
}

function sipp(
  args: readonly string[],
  timeoutS = 30,
): Promise<{ code: number | null; out: string }> {
  const child = spawn('sipp', [...args, '-nostdin', '-timeout', `${timeoutS}s`, '-timeout_error'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const keep = (d: Buffer): void => {
    out = (out + d.toString()).slice(-6000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  return new Promise((resolve) => {
    const t = setTimeout(() => child.kill('SIGKILL'), (timeoutS + 5) * 1000);
    child.once('exit', (code) => {
      clearTimeout(t);
      resolve({ code, out });
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A sipp UAS on 127.0.0.1:`port` playing `scenario`, with a free media port. */
async function uasSipp(
  scenario: string,
  port: number,
  transport: 'udp' | 'tcp',
  extra: readonly string[],
): Promise<{ code: number | null; out: string }> {
  return sipp([
    ...(transport === 'tcp' ? ['-t', 't1'] : []),
    '-sf',
    `${SCENARIOS}${scenario}`,
    '-i',
    '127.0.0.1',
    '-p',
    String(port),
    '-mp',
    String(await freePort('udp')),
    ...extra,
  ]);
}

/** A sipp UAC on free ports calling bob through the proxy at 127.0.0.1:`proxyPort`. */
async function uacSipp(
  proxyPort: number,
  scenario: string,
  transport: 'udp' | 'tcp',
  extra: readonly string[],
): Promise<{ code: number | null; out: string }> {
  return sipp([
    `127.0.0.1:${proxyPort}`,
    ...(transport === 'tcp' ? ['-t', 't1'] : []),
    '-sf',
    `${SCENARIOS}${scenario}`,
    '-i',
    '127.0.0.1',
    '-p',
    String(await freePort(transport)),
    '-mp',
    String(await freePort('udp')),
    '-s',
    'bob',
    ...extra,
  ]);
}

describe.runIf(systemTestGate('proxy loopback calls', ['sipp']))(
  'sipp calls through the proxy on loopback',
  () => {
    const apps: AppHandle[] = [];
    const children: ChildProcess[] = [];
    const daemons: FcpdHandle[] = [];
    const dirs: string[] = [];

    afterAll(async () => {
      for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
      for (const a of apps) await a.stop();
      for (const d of daemons) await d.close();
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    });

    async function app(args: string[]): Promise<AppHandle> {
      const { config } = parseArgs(args);
      const a = await startApp({
        config,
        logger: pino({ level: 'silent' }),
        embeddedBackend: 'memory',
      });
      apps.push(a);
      return a;
    }

    it.each(['udp', 'tcp'] as const)('relays a call over %s', async (transport) => {
      const uasPort = await freePort(transport);
      const a = await app([
        '--listen',
        `${transport}:127.0.0.1:0`,
        ...(transport === 'tcp' ? ['--listen', 'udp:127.0.0.1:0'] : []),
        '--route',
        `default=sip:127.0.0.1:${uasPort}${transport === 'tcp' ? ';transport=tcp' : ''}`,
        '--protected',
        '198.19.0.0/16',
      ]);
      const port = a.proxy.listeners[0]!.port;
      const uas = uasSipp('uas-basic.xml', uasPort, transport, [
        '-m',
        '1',
        '-key',
        'mport',
        '40000',
      ]);
      await sleep(300);
      const uac = await uacSipp(port, 'uac-basic.xml', transport, [
        '-m',
        '1',
        '-key',
        'mport',
        '40010',
        '-d',
        '100',
      ]);
      expect(uac.code, uac.out).toBe(0);
      expect((await uas).code).toBe(0);
      expect(a.proxy.metrics.requests.get({ method: 'INVITE' })).toBe(1);
      expect(a.proxy.metrics.requests.get({ method: 'BYE' })).toBe(1);
      // The embedded fcpd is reached over the in-process link (its one connection). Loopback
      // media needs no hole; the namespace tests open holes through this link.
      expect(a.fcp.servers).toEqual(['local:embedded']);
      expect(a.fcpd!.server.stats().connections).toBe(1);
    });

    it('forks in parallel to two registered contacts; the answer wins and the other branch is cancelled', async () => {
      const a = await app(['--listen', 'udp:127.0.0.1:0', '--protected', '198.19.0.0/16']);
      const port = a.proxy.listeners[0]!.port;
      const [p1, p2] = [await freePort('udp'), await freePort('udp')];
      // REGISTER two contacts for bob.
      const reg = createSocket('udp4');
      await new Promise<void>((r) => reg.bind(0, '127.0.0.1', r));
      const answer = new Promise<string>((r) => reg.once('message', (m) => r(m.toString())));
      const rp = reg.address().port;
      reg.send(
        [
          `REGISTER sip:127.0.0.1:${port} SIP/2.0`,
          `Via: SIP/2.0/UDP 127.0.0.1:${rp};branch=z9hG4bKreg1`,
          'Max-Forwards: 70',
          `From: <sip:bob@127.0.0.1>;tag=r1`,
          `To: <sip:bob@127.0.0.1>`,
          'Call-ID: reg-fork-1',
          'CSeq: 1 REGISTER',
          `Contact: <sip:bob@127.0.0.1:${p1}>, <sip:bob@127.0.0.1:${p2}>;q=0.5`,
          'Expires: 600',
          'Content-Length: 0',
          '',
          '',
        ].join('\r\n'),
        port,
        '127.0.0.1',
      );
      const ok = await answer;
      reg.close();
      expect(ok).toMatch(/^SIP\/2\.0 200/);
      expect(ok.match(/\r\nContact: /g)).toHaveLength(2);
      expect(a.proxy.core.registrar.size).toBe(2);

      const answering = uasSipp('uas-basic.xml', p1, 'udp', ['-m', '1', '-key', 'mport', '40000']);
      const ringing = uasSipp('uas-fork-loser.xml', p2, 'udp', [
        '-m',
        '1',
        '-key',
        'mport',
        '40002',
      ]);
      await sleep(300);
      const uac = await uacSipp(port, 'uac-fork.xml', 'udp', [
        '-m',
        '1',
        '-key',
        'mport',
        '40010',
        '-d',
        '300',
      ]);
      expect(uac.code, uac.out).toBe(0);
      expect((await answering).code).toBe(0);
      const r = await ringing;
      expect(r.code, r.out).toBe(0);
      expect(a.proxy.metrics.requests.get({ method: 'CANCEL' })).toBe(0); // the proxy's own CANCEL
    });

    it.each(['udp', 'tcp'] as const)(
      'with --workers 2 over %s, every call state stays with one worker: all holes opened are closed',
      async (transport) => {
        const fcpd = await startMemoryFcpd();
        daemons.push(fcpd);
        const fcp = fcpd.addresses[0]!;
        const [port, uasPort] = [await freePort(transport), await freePort(transport)];
        const tcp = transport === 'tcp';
        const proxy = spawn(
          process.execPath,
          [
            CLI,
            '--listen',
            `${transport}:127.0.0.1:${port}`,
            ...(tcp ? ['--listen', `udp:127.0.0.1:${await freePort('udp')}`] : []),
            '--route',
            `default=sip:127.0.0.1:${uasPort}${tcp ? ';transport=tcp' : ''}`,
            '--fcp',
            `tcp:${fcp.host}:${fcp.port}`,
            '--protected',
            '198.19.0.0/16',
            '--workers',
            '2',
            '--log-level',
            'warn',
          ],
          { stdio: ['ignore', 'pipe', 'pipe'] },
        );
        children.push(proxy);
        let err = '';
        proxy.stderr.on('data', (d: Buffer) => (err += d.toString()));
        for (let i = 0; i < 100 && !/listening/.test(err); i++) await sleep(100);
        expect(err).toMatch(/with 2 workers/);

        const calls = 40;
        const dir = mkdtempSync(join(tmpdir(), 'pinhole-workers-'));
        dirs.push(dir);
        const csv = join(dir, 'ports.csv');
        writeFileSync(
          csv,
          `SEQUENTIAL\n${[...Array(calls).keys()].map((i) => `${30000 + 2 * i};198.19.1.2;`).join('\n')}\n`,
        );
        const uas = uasSipp('uas-bench.xml', uasPort, transport, [
          '-inf',
          csv,
          '-m',
          String(calls),
        ]);
        await sleep(300);
        let maxRules = 0;
        const poll = setInterval(() => (maxRules = Math.max(maxRules, fcpd.server.liveRules)), 20);
        // Over TCP every call shares the UAC's one connection, held by one worker: the calls the
        // other worker owns are passed to it and its answers come back to the holder.
        const uac = await uacSipp(port, 'uac-bench.xml', transport, [
          '-key',
          'mport',
          '41000',
          '-r',
          '20',
          '-m',
          String(calls),
          '-d',
          '500',
        ]);
        clearInterval(poll);
        const uasR = await uas;
        expect(uasR.code, uasR.out).toBe(0);
        expect(uac.code, uac.out).toBe(0);
        expect(maxRules).toBeGreaterThan(0);
        // Every BYE reached the worker holding its call: no hole is left behind.
        for (let i = 0; i < 50 && fcpd.server.liveRules > 0; i++) await sleep(100);
        expect(fcpd.server.liveRules).toBe(0);
        proxy.kill('SIGTERM');
        const code = await new Promise((r) => proxy.once('exit', r));
        expect(code).toBe(0);
      },
      60_000,
    );
  },
);
