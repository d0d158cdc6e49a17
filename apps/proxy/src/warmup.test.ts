import dgram from 'node:dgram';
import net from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { FcpClient } from '@pinhole/fcp';
import { Policy } from '@pinhole/policy';
import { parseArgs, configFromObject, DEFAULT_CONFIG } from './config.js';
import { ProxyMetrics } from './metrics.js';
import { warmUp } from './warmup.js';

afterEach(() => {
  vi.restoreAllMocks();
});

describe('warmUp', () => {
  it('runs whole calls through parser and policy, within its count bound', () => {
    const handle = vi.spyOn(Policy.prototype, 'handle');
    const r = warmUp({ maxCalls: 20, budgetMs: 60_000 });
    expect(r.calls).toBe(20);
    // INVITE, 100, 180, 200, ACK, BYE, 200: every message parsed, validated and fed.
    expect(r.messages).toBe(20 * 7);
    expect(handle).toHaveBeenCalledTimes(20 * 7);
    // The offer/answer really opens (and the BYE closes) holes in the private policy.
    const intents = handle.mock.results.reduce(
      (n, x) => n + (x.value as ReturnType<Policy['handle']>).intents.length,
      0,
    );
    expect(intents).toBeGreaterThan(0);
    expect(r.ms).toBeGreaterThanOrEqual(0);
  });

  it('stops at its time budget', () => {
    // A budget of 0 ms ends the warm-up after its first call whatever the machine's speed.
    const r = warmUp({ maxCalls: 1_000_000, budgetMs: 0 });
    expect(r.calls).toBe(1);
    expect(r.messages).toBe(7);
  });

  it('sends nothing and counts nothing', () => {
    const udpSend = vi.spyOn(dgram.Socket.prototype, 'send');
    const udpCreate = vi.spyOn(dgram, 'createSocket');
    const tcpWrite = vi.spyOn(net.Socket.prototype, 'write');
    const tcpConnect = vi.spyOn(net.Socket.prototype, 'connect');
    const fcpSet = vi.spyOn(FcpClient.prototype, 'set');
    const fcpRelease = vi.spyOn(FcpClient.prototype, 'release');
    const fcpQuery = vi.spyOn(FcpClient.prototype, 'query');
    const metrics = new ProxyMetrics({ transactions: () => 0, registrations: () => 0 });
    const proxyLines = (): string[] =>
      metrics.registry
        .render()
        .split('\n')
        .filter((l) => l.startsWith('pinhole_proxy_'));
    const before = proxyLines();
    const r = warmUp({ maxCalls: 10, budgetMs: 60_000 });
    expect(r.messages).toBe(70);
    for (const spy of [udpSend, udpCreate, tcpWrite, tcpConnect, fcpSet, fcpRelease, fcpQuery]) {
      expect(spy).not.toHaveBeenCalled();
    }
    expect(proxyLines()).toEqual(before);
    for (const l of proxyLines()) expect(l).toMatch(/ 0$/);
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
});
