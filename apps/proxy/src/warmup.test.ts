import dgram from 'node:dgram';
import net from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { PinholeController } from '@pinhole/control';
import { FcpClient, FcpServer } from '@pinhole/fcp';
import { Policy } from '@pinhole/policy';
import { TransactionLayer } from '@pinhole/transaction';
import { startApp, type AppHandle } from './app.js';
import { parseArgs, configFromObject, DEFAULT_CONFIG } from './config.js';
import { Firewall } from './firewall.js';
import { ProxyCore } from './proxy-core.js';
import { warmUp, WarmupFcp } from './warmup.js';

const { config } = parseArgs(['--protected', '198.19.0.0/16']);

afterEach(() => {
  vi.restoreAllMocks();
});

describe('warmUp', () => {
  it('runs whole calls through the core, the transaction layer, the firewall module, the policy and the FCP client and server, within its count bound', async () => {
    const receive = vi.spyOn(ProxyCore.prototype, 'receive');
    const layer = vi.spyOn(TransactionLayer.prototype, 'receive');
    const gate = vi.spyOn(Firewall.prototype, 'request');
    const control = vi.spyOn(PinholeController.prototype, 'handle');
    const hold = vi.spyOn(PinholeController.prototype, 'hold');
    const policy = vi.spyOn(Policy.prototype, 'handle');
    const set = vi.spyOn(FcpClient.prototype, 'set');
    const release = vi.spyOn(FcpClient.prototype, 'release');
    const r = await warmUp({ config, maxCalls: 20, budgetMs: 60_000 });
    expect(r.calls).toBe(20);
    // Into the core: INVITE, 180, 200, ACK, BYE, 200; out of it: 100, INVITE, 180, 200, ACK,
    // BYE, 200.
    expect(receive).toHaveBeenCalledTimes(20 * 6);
    expect(layer).toHaveBeenCalledTimes(20 * 6);
    expect(r.messages).toBe(20 * 13);
    // The INVITE, the ACK and the BYE pass the gate; the 180 and the 200 are held by the
    // controller, the 200 until its two SETs (RTP and RTCP) are answered.
    expect(gate).toHaveBeenCalledTimes(20 * 3);
    expect(control.mock.calls.length).toBeGreaterThanOrEqual(20 * 5);
    expect(hold).toHaveBeenCalled();
    expect(policy).toHaveBeenCalled();
    // Two SETs when the 200 opens the holes, two RELEASEs when the BYE closes them: sent by an
    // FcpClient to a private fcpd over the in-process link, each one answered.
    expect(r.fcpRequests).toBe(20 * 4);
    expect(set).toHaveBeenCalledTimes(20 * 2);
    expect(release).toHaveBeenCalledTimes(20 * 2);
    for (const c of [...set.mock.contexts, ...release.mock.contexts]) {
      expect((c as FcpClient).servers).toEqual(['local:warm-up']);
    }
    expect(r.ms).toBeGreaterThanOrEqual(0);
  });

  it('starts no call after its budget', async () => {
    const r = await warmUp({ config, maxCalls: 1_000_000, budgetMs: 0 });
    expect(r.calls).toBe(0);
    expect(r.messages).toBe(0);
  });

  it('counts its budget in CPU time, capped at four times as much wall time', async () => {
    // A process that gets no CPU (here: the CPU clock stands still) stops at the wall-time cap.
    vi.spyOn(process, 'cpuUsage').mockReturnValue({ user: 0, system: 0 });
    const r = await warmUp({ config, maxCalls: 1_000_000, budgetMs: 50 });
    expect(r.cpuMs).toBe(0);
    expect(r.messages).toBeGreaterThan(0);
    // Started until 4 × 50 ms had passed, then drained for at most max(50, 50 / 4) ms.
    expect(r.ms).toBeGreaterThanOrEqual(200);
  });

  it('sends nothing, counts nothing, and leaves no timer or handle behind', async () => {
    const udpSend = vi.spyOn(dgram.Socket.prototype, 'send');
    const udpCreate = vi.spyOn(dgram, 'createSocket');
    const tcpWrite = vi.spyOn(net.Socket.prototype, 'write');
    const tcpConnect = vi.spyOn(net.Socket.prototype, 'connect');
    const tcpListen = vi.spyOn(net.Server.prototype, 'listen');
    const fcpSet = vi.spyOn(FcpClient.prototype, 'set');
    const fcpQuery = vi.spyOn(FcpClient.prototype, 'query');
    const coreClose = vi.spyOn(ProxyCore.prototype, 'close');
    const layerClose = vi.spyOn(TransactionLayer.prototype, 'close');
    const controlClose = vi.spyOn(PinholeController.prototype, 'close');
    const serverStop = vi.spyOn(FcpServer.prototype, 'stop');
    const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
    await turn(); // what earlier tests left to run once
    const handles = process.getActiveResourcesInfo().sort();
    const r = await warmUp({ config, maxCalls: 10, budgetMs: 60_000 });
    await turn();
    expect(r.calls).toBe(10);
    for (const spy of [udpSend, udpCreate, tcpWrite, tcpConnect, tcpListen, fcpQuery]) {
      expect(spy).not.toHaveBeenCalled();
    }
    // The only FCP client used is the warm-up's own, on its in-process link.
    expect(fcpSet).toHaveBeenCalled();
    for (const c of fcpSet.mock.contexts) {
      expect((c as FcpClient).servers).toEqual(['local:warm-up']);
    }
    // Transaction timers (Timer D, J, K …: unref'd), the controller's sweep and the FCP server's
    // expiry timers: the private core, its transaction layer, the controller and the server are
    // closed, and the layer holds no transaction any more.
    expect(coreClose).toHaveBeenCalledTimes(1);
    expect(layerClose).toHaveBeenCalledTimes(1);
    expect((layerClose.mock.contexts[0] as TransactionLayer).size).toBe(0);
    expect(controlClose).toHaveBeenCalledTimes(1);
    expect(serverStop).toHaveBeenCalledTimes(1);
    // Nothing that keeps the process alive is left (earlier tests' timers may have ended
    // meanwhile: no kind of resource may be more numerous than before).
    const count = (list: string[]): Map<string, number> =>
      list.reduce((m, k) => m.set(k, (m.get(k) ?? 0) + 1), new Map<string, number>());
    const before = count(handles);
    for (const [kind, n] of count(process.getActiveResourcesInfo())) {
      expect({ kind, n }).toEqual({ kind, n: Math.min(n, before.get(kind) ?? 0) });
    }
  });

  it('answers SETs and RELEASEs through a real FCP client and a private fcpd with no listener', async () => {
    const tcpListen = vi.spyOn(net.Server.prototype, 'listen');
    const udpCreate = vi.spyOn(dgram, 'createSocket');
    const w = await WarmupFcp.start(['198.19.0.0/16']);
    expect(w.client.servers).toEqual(['local:warm-up']);
    const pme = { proto: 17, dst: '198.19.0.20', dstPort: 20000 };
    const set = await w.client.set(pme, { timer: 60, keepAlive: false });
    expect(set.ok).toBe(true);
    expect(set.outcomes.map((o) => o.status)).toEqual([200]);
    // Again: the server's rule table has it (a refresh).
    const again = await w.client.set(pme, { timer: 60, keepAlive: false });
    expect(again.outcomes.map((o) => o.status)).toEqual([201]);
    const rel = await w.client.release(pme);
    expect(rel.ok).toBe(true);
    expect(rel.outcomes.map((o) => o.status)).toEqual([200]);
    // A hole outside the protected networks is refused, as the real server would.
    const out = await w.client.set(
      { proto: 17, dst: '192.0.2.1', dstPort: 20000 },
      { timer: 60, keepAlive: false },
    );
    expect(out.ok).toBe(false);
    expect(w.requests).toBe(4);
    expect(tcpListen).not.toHaveBeenCalled();
    expect(udpCreate).not.toHaveBeenCalled();
    const stop = vi.spyOn(FcpServer.prototype, 'stop');
    await w.close();
    expect(stop).toHaveBeenCalledTimes(1);
  });
});

describe('warm-up in the app', () => {
  const apps: AppHandle[] = [];
  afterEach(async () => {
    for (const a of apps.splice(0)) await a.stop();
  });

  it('runs before listening and leaves the live metrics, the FCP server and the log untouched', async () => {
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString().split('\n').filter(Boolean)) {
          lines.push(JSON.parse(l) as Record<string, unknown>);
        }
        done();
      },
    });
    const udpSend = vi.spyOn(dgram.Socket.prototype, 'send');
    const fcpSet = vi.spyOn(FcpClient.prototype, 'set');
    const fcpRelease = vi.spyOn(FcpClient.prototype, 'release');
    const { config: c } = parseArgs([
      '--listen',
      'udp:127.0.0.1:0',
      '--route',
      'default=sip:127.0.0.1:9',
      '--protected',
      '198.19.0.0/16',
      '--warmup-ms',
      '200',
    ]);
    const app = await startApp({
      config: c,
      logger: pino({ level: 'debug' }, sink),
      embeddedBackend: 'memory',
    });
    apps.push(app);
    const done = lines.filter((l) => l.msg === 'warm-up done');
    expect(done).toHaveLength(1);
    expect(done[0]!.calls).toBeGreaterThan(0);
    expect(done[0]!.fcpRequests).toBeGreaterThan(0);
    // Not one line about a synthetic call, even at debug level.
    expect(lines.filter((l) => JSON.stringify(l).includes('warm-up@'))).toEqual([]);
    expect(udpSend).not.toHaveBeenCalled();
    // FCP requests went only to the warm-up's private fcpd, never through the live client.
    for (const c of [...fcpSet.mock.contexts, ...fcpRelease.mock.contexts]) {
      expect(c).not.toBe(app.fcp);
      expect((c as FcpClient).servers).toEqual(['local:warm-up']);
    }
    const counted = app.proxy.metrics
      .render()
      .split('\n')
      .filter((l) => l.startsWith('pinhole_proxy_') && !/ 0$/.test(l));
    expect(counted).toEqual([]);
    // The embedded fcpd saw no request.
    const fcpdRequests = app
      .fcpd!.registry.render()
      .split('\n')
      .filter((l) => l.startsWith('fcpd_requests_total') && !/ 0$/.test(l));
    expect(fcpdRequests).toEqual([]);
    expect(app.proxy.core.transactionCount).toBe(0);
  });
});

describe('warmup configuration', () => {
  it('is on by default, off with --no-warmup or "warmup": false', () => {
    expect(DEFAULT_CONFIG.warmup).toBe(true);
    expect(parseArgs([]).config.warmup).toBe(true);
    expect(parseArgs(['--no-warmup']).config.warmup).toBe(false);
    expect(configFromObject({ warmup: false }).warmup).toBe(false);
    expect(() => configFromObject({ warmup: 'no' })).toThrow(/warmup/);
  });

  it('takes its time budget from warmupMs / --warmup-ms, 0..10000, default 2000', () => {
    expect(DEFAULT_CONFIG.warmupMs).toBe(2000);
    expect(parseArgs(['--warmup-ms', '2500']).config.warmupMs).toBe(2500);
    expect(configFromObject({ warmupMs: 0 }).warmupMs).toBe(0);
    expect(() => parseArgs(['--warmup-ms', '10001'])).toThrow(/warmup-ms/);
    expect(() => configFromObject({ warmupMs: -1 })).toThrow(/warmupMs/);
    expect(() => configFromObject({ warmupMs: 1.5 })).toThrow(/warmupMs/);
  });
});
