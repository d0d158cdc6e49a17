import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeHep } from '../src/hep-encode.js';
import type { HepPacket } from '../src/hep.js';
import { HepIngress, HepTcpReceiver, HepUdpReceiver, type HepSource } from '../src/receiver.js';
import { MetricsServer } from '@pinhole/metrics';
import { createSidecarMetrics, type SidecarMetrics } from '../src/sidecar-metrics.js';
import { call } from './support/proxy-copies.js';

const pkt = (captureId: number, authKey?: string) =>
  encodeHep({
    srcAddress: '198.18.0.10',
    dstAddress: '198.18.0.1',
    srcPort: 5060,
    dstPort: 5060,
    captureId,
    payload: call.inviteIn,
    ...(authKey !== undefined ? { authKey } : {}),
  });

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('HEP receivers on loopback', () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  function setup(opts: { captureIds?: number[]; authKey?: string } = {}) {
    const metrics: SidecarMetrics = createSidecarMetrics();
    const got: { p: HepPacket; s: HepSource }[] = [];
    const ingress = new HepIngress({ ...opts, metrics, onPacket: (p, s) => got.push({ p, s }) });
    return { metrics, got, ingress };
  }

  it('UDP: one datagram is one packet; unknown capture ids, bad keys and garbage are counted and dropped', async () => {
    const { metrics, got, ingress } = setup({ captureIds: [2001], authKey: 'k3y' });
    const rx = new HepUdpReceiver(ingress);
    cleanups.push(() => rx.close());
    const at = await rx.listen({ host: '127.0.0.1', port: 0 });
    const tx = createSocket('udp4');
    cleanups.push(() => void tx.close());
    for (const b of [
      pkt(2001, 'k3y'),
      pkt(2002, 'k3y'),
      pkt(2001, 'wrong'),
      pkt(2001),
      Buffer.from('HEP3junk'),
      pkt(2001, 'k3y'),
    ]) {
      tx.send(b, at.port, '127.0.0.1');
    }
    const total = () =>
      ['accepted', 'unknown_capture_id', 'bad_auth_key'].reduce(
        (n, o) => n + metrics.hepPackets.value({ transport: 'udp', type: 'sip', outcome: o }),
        0,
      ) + metrics.hepPackets.value({ transport: 'udp', type: 'unknown', outcome: 'decode_error' });
    await until(() => total() === 6, 'six datagrams');
    expect(got).toHaveLength(2);
    expect(got[0]?.s.transport).toBe('udp');
    expect(got[0]?.s.address).toBe('127.0.0.1');
    expect(
      metrics.hepPackets.value({ transport: 'udp', type: 'sip', outcome: 'unknown_capture_id' }),
    ).toBe(1);
    expect(
      metrics.hepPackets.value({ transport: 'udp', type: 'sip', outcome: 'bad_auth_key' }),
    ).toBe(2);
    expect(metrics.hepDecodeErrors.value({ code: 'HEP_ERR_BAD_LENGTH' })).toBe(1);
  });

  it('TCP: packets split byte by byte and several per write are framed; garbage closes the connection', async () => {
    const { metrics, got, ingress } = setup();
    const rx = new HepTcpReceiver(ingress, metrics);
    cleanups.push(() => rx.close());
    const at = await rx.listen({ host: '127.0.0.1', port: 0 });
    const sock = connect(at.port, '127.0.0.1');
    cleanups.push(() => void sock.destroy());
    await new Promise<void>((r) => sock.once('connect', () => r()));
    sock.setNoDelay(true);
    const one = pkt(1);
    for (const byte of one) sock.write(Uint8Array.of(byte));
    sock.write(Buffer.concat([pkt(2), pkt(3), pkt(4).subarray(0, 10)]));
    sock.write(pkt(4).subarray(10));
    await until(() => got.length === 4, 'four packets');
    expect(got.map((g) => g.p.captureId)).toEqual([1, 2, 3, 4]);
    expect(metrics.hepTcpConnections.value()).toBe(1);
    const closed = new Promise<void>((r) => sock.once('close', () => r()));
    sock.write('GET /metrics HTTP/1.1\r\n\r\n');
    await closed;
    await until(() => metrics.hepTcpConnections.value() === 0, 'connection count back to 0');
    expect(
      metrics.hepPackets.value({ transport: 'tcp', type: 'unknown', outcome: 'stream_garbage' }),
    ).toBe(1);
  });

  it('TCP: refuses connections beyond maxConnections', async () => {
    const { metrics, ingress } = setup();
    const rx = new HepTcpReceiver(ingress, metrics, { maxConnections: 1 });
    cleanups.push(() => rx.close());
    const at = await rx.listen({ host: '127.0.0.1', port: 0 });
    const a = connect(at.port, '127.0.0.1');
    cleanups.push(() => void a.destroy());
    await new Promise<void>((r) => a.once('connect', () => r()));
    await until(() => rx.connections === 1, 'first connection');
    const b = connect(at.port, '127.0.0.1');
    cleanups.push(() => void b.destroy());
    b.on('error', () => undefined);
    await new Promise<void>((r) => b.once('close', () => r()));
    expect(rx.connections).toBe(1);
  });

  it('records the capture lag from the HEP timestamp, ignoring absent and absurd stamps', () => {
    const { metrics, ingress } = setup();
    const stamped = (timeSeconds: number) =>
      encodeHep({
        srcAddress: '198.18.0.10',
        dstAddress: '198.18.0.1',
        srcPort: 5060,
        dstPort: 5060,
        timeSeconds,
        payload: call.inviteIn,
      });
    const src = { transport: 'udp', address: '127.0.0.1', port: 1 } as const;
    ingress.handle(stamped(Math.floor(Date.now() / 1000) - 1), src);
    ingress.handle(stamped(Math.floor(Date.now() / 1000) + 5), src); // agent clock ahead: 0
    ingress.handle(stamped(1), src); // 1970: a broken clock, not a lag
    ingress.handle(pkt(1), src); // no timestamp chunk value
    expect(metrics.captureLag.count()).toBe(2);
    expect(metrics.registry.render()).toMatch(
      /pinhole_sidecar_hep_capture_lag_seconds_bucket\{le="0.0005"\} 1\n/,
    );
  });

  it('serves the metrics in the Prometheus text format', async () => {
    const { metrics, ingress } = setup();
    ingress.handle(pkt(1), { transport: 'udp', address: '127.0.0.1', port: 1 });
    const server = new MetricsServer(metrics.registry);
    cleanups.push(() => server.close());
    const at = await server.listen('127.0.0.1', 0);
    const res = await fetch(`http://127.0.0.1:${at.port}/metrics`);
    expect(res.headers.get('content-type')).toContain('version=0.0.4');
    const text = await res.text();
    expect(text).toContain('# TYPE pinhole_sidecar_hep_packets_total counter');
    expect(text).toContain(
      'pinhole_sidecar_hep_packets_total{transport="udp",type="sip",outcome="accepted"} 1',
    );
    expect((await fetch(`http://127.0.0.1:${at.port}/nothing-here`)).status).toBe(404);
  });
});
