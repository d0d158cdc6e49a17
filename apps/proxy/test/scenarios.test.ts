/**
 * Every sipp scenario pair, UAC against UAS directly on loopback (no proxy): the scenario files
 * are consistent with each other before they are used to prove anything about the proxy.
 */
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { describe, expect, it } from 'vitest';
import { systemTestGate } from '@pinhole/testkit';
import { SCENARIOS } from './harness.js';

async function freePort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  const p = s.address().port;
  s.close();
  return p;
}

function sipp(args: readonly string[]): Promise<{ code: number | null; out: string }> {
  const child = spawn('sipp', [...args, '-nostdin', '-timeout', '20s', '-timeout_error'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const keep = (d: Buffer): void => {
    out = (out + d.toString()).slice(-4000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  return new Promise((resolve) => {
    const t = setTimeout(() => child.kill('SIGKILL'), 25_000);
    child.once('exit', (code) => {
      clearTimeout(t);
      resolve({ code, out });
    });
  });
}

const PAIRS: readonly [string, string][] = [
  ['uac-basic.xml', 'uas-basic.xml'],
  ['uac-basic.xml', 'uas-early-media.xml'],
  ['uac-fork.xml', 'uas-basic.xml'],
  ['uac-cancel.xml', 'uas-ring.xml'],
  ['uac-486.xml', 'uas-486.xml'],
  ['uac-session-timer.xml', 'uas-session-timer.xml'],
  ['uac-session-timer-norefresh.xml', 'uas-session-timer.xml'],
  ['uac-reinvite-move.xml', 'uas-reinvite.xml'],
  ['uac-bench.xml', 'uas-bench.xml'],
];

describe.runIf(systemTestGate('sipp scenario files', ['sipp']))('sipp scenario files', () => {
  for (const [uacFile, uasFile] of PAIRS) {
    it(`${uacFile} completes against ${uasFile}`, async () => {
      const [up, ump, cp, cmp] = [
        await freePort(),
        await freePort(),
        await freePort(),
        await freePort(),
      ];
      const keys = ['-key', 'se', '90', '-key', 'newport', '40002', '-d', '200'];
      const uasArgs = [
        '-sf',
        `${SCENARIOS}${uasFile}`,
        '-i',
        '127.0.0.1',
        '-p',
        String(up),
        '-mp',
        String(ump),
        '-m',
        '1',
        '-key',
        'mport',
        '40000',
        ...keys,
      ];
      if (uasFile === 'uas-bench.xml') uasArgs.push('-inf', `${SCENARIOS}bench-ports.csv`);
      const uas = sipp(uasArgs);
      await new Promise((r) => setTimeout(r, 300));
      const uac = await sipp([
        `127.0.0.1:${up}`,
        '-sf',
        `${SCENARIOS}${uacFile}`,
        '-i',
        '127.0.0.1',
        '-p',
        String(cp),
        '-mp',
        String(cmp),
        '-m',
        '1',
        '-s',
        'svc',
        '-key',
        'mport',
        '40010',
        ...keys,
      ]);
      const uasR = await uas;
      expect(uac.code, uac.out).toBe(0);
      expect(uasR.code, uasR.out).toBe(0);
    });
  }
});
