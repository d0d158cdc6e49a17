import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { fileURLToPath } from 'node:url';
import { parse } from '@pinhole/sip';
import { FcpServer, MemoryBackend } from '@pinhole/fcp';
import { afterEach, describe, expect, it } from 'vitest';
import { validateConfig } from '../src/config.js';
import { encodeHep } from '../src/hep-encode.js';
import type { MediaSource, SipObservation } from '../src/observation.js';
import type { PinholeControl } from '../src/seam.js';
import { Sidecar } from '../src/sidecar.js';
import { call, CALLEE, SERVER, UA } from './support/proxy-copies.js';

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

class RecordingControl implements PinholeControl {
  readonly name = 'recording';
  readonly drivesFirewall = false;
  observed: SipObservation[] = [];
  settled: { o: SipObservation; source: MediaSource }[] = [];
  closed = false;
  observe(o: SipObservation): void {
    this.observed.push(o);
  }
  settle(o: SipObservation, source: MediaSource): void {
    this.settled.push({ o, source });
  }
  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
}

describe('Sidecar', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('runs HEP in -> observations -> the pinhole control seam, and serves metrics', async () => {
    const control = new RecordingControl();
    const config = validateConfig({
      hep: ['udp:127.0.0.1:0', 'tcp:127.0.0.1:0'],
      serverAddresses: ['198.18.0.1:5060'],
      captureIds: [2001],
      metrics: 'tcp:127.0.0.1:0',
    });
    const sidecar = new Sidecar(config, { parse, control });
    cleanups.push(() => sidecar.close());
    const at = await sidecar.start();
    expect(at.hep.map((h) => h.transport)).toEqual(['udp', 'tcp']);
    const udp = at.hep[0];
    const tx = createSocket('udp4');
    cleanups.push(() => void tx.close());
    const send = (payload: string, src: typeof UA, dst: typeof UA, captureId = 2001) =>
      tx.send(
        encodeHep({
          srcAddress: src.address,
          dstAddress: dst.address,
          srcPort: src.port,
          dstPort: dst.port,
          captureId,
          payload,
        }),
        udp?.port ?? 0,
        '127.0.0.1',
      );
    send(call.inviteIn, UA, SERVER);
    send(call.inviteOut(), SERVER, CALLEE);
    send(call.inviteOut(), SERVER, CALLEE, 9999);
    await until(
      () => control.observed.length === 2 && control.settled.length === 1,
      'two observations',
    );
    expect(control.observed.map((o) => [o.kind, o.copy])).toEqual([
      ['received-by-server', 'first'],
      ['sent-by-server', 'twin'],
    ]);
    expect(control.settled[0]?.source).toBe('sent-copy');
    const text = await (await fetch(`http://127.0.0.1:${at.metrics?.port ?? 0}/metrics`)).text();
    expect(text).toContain(
      'pinhole_sidecar_hep_packets_total{transport="udp",type="sip",outcome="accepted"} 2',
    );
    expect(text).toContain(
      'pinhole_sidecar_hep_packets_total{transport="udp",type="sip",outcome="unknown_capture_id"} 1',
    );
    expect(text).toContain(
      'pinhole_sidecar_sip_observations_total{kind="sent-by-server",copy="twin"} 1',
    );
    await sidecar.close();
    expect(control.closed).toBe(true);
  });

  it('fails to start with SIDECAR_ERR_LISTEN on a port in use, and releases what it bound', async () => {
    const busy = createSocket('udp4');
    await new Promise<void>((r) => busy.bind(0, '127.0.0.1', () => r()));
    cleanups.push(() => void busy.close());
    const config = validateConfig({
      hep: ['tcp:127.0.0.1:0', `udp:127.0.0.1:${busy.address().port}`],
      serverAddresses: ['198.18.0.1'],
    });
    const control = new RecordingControl();
    const sidecar = new Sidecar(config, { parse, control });
    await expect(sidecar.start()).rejects.toMatchObject({ code: 'SIDECAR_ERR_LISTEN' });
    expect(control.closed).toBe(true);
  });
});

describe('pinhole-sidecar CLI', () => {
  const cli = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

  function run(args: string[], untilLine?: RegExp) {
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    return new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      if (untilLine) {
        let sent = false;
        child.stdout.on('data', () => {
          if (!sent && untilLine.test(out)) {
            sent = true;
            child.kill('SIGTERM');
          }
        });
      }
      child.on('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, out, err });
      });
    });
  }

  it('prints usage for --help', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    expect(r.out).toContain('--server-address');
  });

  it('exits 2 naming the bad flag', async () => {
    const r = await run(['--hep', 'udp:0.0.0.0:9060']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('serverAddresses');
    const r2 = await run(['--hep', 'udp:nowhere:1', '--server-address', '198.18.0.1']);
    expect(r2.err).toContain('--hep[0]');
  });

  it('starts without --fcp, says pinhole control is not wired, and stops on SIGTERM', async () => {
    const r = await run(
      ['--hep', 'udp:127.0.0.1:0', '--server-address', '198.18.0.1:5060', '--capture-id', '1'],
      /pinhole-sidecar listening/,
    );
    expect(r.out).toContain('pinhole control is not wired: no FCP server is configured');
    expect(r.out).toContain('pinhole-sidecar listening');
    expect(r.code).toBe(0);
  });

  it('wires pinhole control with --fcp and --protected, connects to the FCP server, and stops', async () => {
    const server = new FcpServer(
      {
        listen: [{ transport: 'tcp', host: '127.0.0.1', port: 0 }],
        policy: { protectedNetworks: ['198.18.0.0/16'], ownAddresses: ['198.18.0.1'] },
        limits: { ratePerSec: 0 },
      },
      new MemoryBackend(),
    );
    await server.start();
    try {
      const port = server.addresses()[0]?.port ?? 0;
      const r = await run(
        [
          '--hep',
          'udp:127.0.0.1:0',
          '--server-address',
          '198.18.0.1:5060',
          '--fcp',
          `tcp:127.0.0.1:${port}`,
          '--protected',
          '198.18.0.16/28',
        ],
        /FCP server connected/,
      );
      expect(r.out).toContain('pinhole control wired');
      expect(r.out).not.toContain('pinhole control is not wired');
      expect(r.out).toContain('FCP server connected');
      expect(r.code).toBe(0);
    } finally {
      await server.stop();
    }
  });
});
