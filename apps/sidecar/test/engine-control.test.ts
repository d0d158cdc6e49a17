/**
 * EnginePinholeControl against a real FcpServer (MemoryBackend) on loopback: the mirrored copies
 * of a proxied call open holes on the 183/200 and close them on the BYE; CANCEL and 486 close the
 * early holes; a branch that times out in the observer-mode transaction layer (fake clock) becomes
 * a policy `transaction-ended` and closes the early holes of that branch only.
 */
import { FcpClient, FcpServer, MemoryBackend } from '@pinhole/fcp';
import { Policy } from '@pinhole/policy';
import { parse } from '@pinhole/sip';
import { FakeClock as TxnClock, TransactionLayer } from '@pinhole/transaction';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createEngineControlMetrics, EnginePinholeControl } from '../src/engine-control.js';
import { MetricsRegistry } from '@pinhole/metrics';
import { CaptureNormalizer } from '../src/normalizer.js';
import { silentLogger } from '../src/receiver.js';
import { AGENT, CALLEE, FakeClock, hepPacket, SERVER, sip, UA } from './support/proxy-copies.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const quietLogger = { ...silentLogger, warn: () => undefined, error: () => undefined };

const sdp = (addr: string, port: number): string =>
  `v=0\r\no=- 1 1 IN IP4 ${addr}\r\ns=-\r\nc=IN IP4 ${addr}\r\nt=0 0\r\nm=audio ${port} RTP/AVP 0\r\n`;

const VIA_UA = (b: string) => `SIP/2.0/UDP 198.18.0.10:5060;branch=${b}`;
const VIA_UA_R = (b: string) => `SIP/2.0/UDP 198.18.0.10:5060;branch=${b};received=198.18.0.10`;
const VIA_SRV = (b: string) => `SIP/2.0/UDP 198.18.0.1:5060;branch=${b}`;

/** A request from the UA through the server to the callee: [received copy, sent copy]. */
function request(
  callId: string,
  start: string,
  cseq: string,
  b: string,
  extra: { toTag?: string; body?: string } = {},
): [string, string] {
  return [
    sip({ start, vias: [VIA_UA(b)], cseq, callId, ...extra }),
    sip({ start, vias: [VIA_SRV(`${b}s`), VIA_UA_R(b)], cseq, callId, rr: true, ...extra }),
  ];
}

/** A response from the callee through the server to the UA: [received copy, sent copy]. */
function response(
  callId: string,
  start: string,
  cseq: string,
  b: string,
  extra: { toTag?: string; body?: string } = {},
): [string, string] {
  return [
    sip({ start, vias: [VIA_SRV(`${b}s`), VIA_UA_R(b)], cseq, callId, rr: true, ...extra }),
    sip({ start, vias: [VIA_UA_R(b)], cseq, callId, rr: true, ...extra }),
  ];
}

async function setup(sweepMs?: number) {
  const backend = new MemoryBackend();
  const server = new FcpServer(
    {
      listen: [{ transport: 'tcp', host: '127.0.0.1', port: 0 }],
      policy: { protectedNetworks: ['198.18.0.0/16'], ownAddresses: ['198.18.0.1'] },
      limits: { ratePerSec: 0 },
    },
    backend,
  );
  await server.start();
  cleanups.push(() => server.stop());
  const port = server.addresses()[0]?.port ?? 0;
  const fcp = new FcpClient({ servers: [{ host: '127.0.0.1', port }] });
  const clock = new FakeClock();
  const txnClock = new TxnClock();
  const metrics = createEngineControlMetrics(new MetricsRegistry());
  const control = new EnginePinholeControl({
    // Only the callee's side (198.18.0.16/28) is behind the firewall: holes point at 198.18.0.20.
    policy: new Policy({ protectedNetworks: ['198.18.0.16/28'] }),
    fcp,
    metrics,
    logger: quietLogger,
    now: clock.now,
    layer: new TransactionLayer({ mode: 'observer', clock: txnClock }),
    ...(sweepMs !== undefined ? { sweepMs } : {}),
  });
  cleanups.push(() => control.close());
  const n = new CaptureNormalizer({
    serverAddresses: [SERVER],
    parse,
    clock,
    onObservation: (o) => control.observe(o),
    onSettle: (o, s) => control.settle(o, s),
  });
  /** Feeds a request (UA -> server -> callee) or response (callee -> server -> UA) pair. */
  const fwd = async ([inCopy, outCopy]: [string, string]) => {
    n.push(hepPacket(inCopy, UA, SERVER), AGENT);
    n.push(hepPacket(outCopy, SERVER, CALLEE), AGENT);
    await control.idle();
  };
  const back = async ([inCopy, outCopy]: [string, string]) => {
    n.push(hepPacket(inCopy, CALLEE, SERVER), AGENT);
    n.push(hepPacket(outCopy, SERVER, UA), AGENT);
    await control.idle();
  };
  const dsts = () =>
    server
      .rules()
      .map((r) => JSON.stringify(r))
      .join('\n');
  /** Feeds one copy: `src` -> `dst`. */
  const push = async (payload: string, src: typeof UA, dst: typeof UA) => {
    n.push(hepPacket(payload, src, dst), AGENT);
    await control.idle();
  };
  /** Moves the transaction layer's clock (Timer C, the cancel wait) and waits for FCP. */
  const advanceTimers = async (ms: number) => {
    txnClock.advance(ms);
    await control.idle();
  };
  return { server, control, metrics, clock, fwd, back, dsts, push, advanceTimers };
}

/** Timer C (181 s, RFC 3261 §16.6 step 11) plus the §9.1 wait for the cancelled branch (64*T1). */
const TIMER_C_MS = 181_000;
const CANCEL_WAIT_MS = 64 * 500;

describe('EnginePinholeControl with a real FCP server', () => {
  it('opens holes on the 183 and 200 copies and closes them after the BYE', async () => {
    const { server, control, metrics, fwd, back, dsts } = await setup();
    const id = 'ec-1@198.18.0.10';
    await fwd(
      request(id, 'INVITE sip:bob@198.18.0.20 SIP/2.0', '1 INVITE', 'z9hG4bKi1', {
        body: sdp('198.18.0.10', 40000),
      }),
    );
    expect(server.rules()).toHaveLength(0);
    await back(
      response(id, 'SIP/2.0 183 Session Progress', '1 INVITE', 'z9hG4bKi1', {
        toTag: 'tb',
        body: sdp('198.18.0.20', 30000),
      }),
    );
    expect(server.rules().length).toBeGreaterThan(0);
    expect(dsts()).toContain('198.18.0.20');
    await back(
      response(id, 'SIP/2.0 200 OK', '1 INVITE', 'z9hG4bKi1', {
        toTag: 'tb',
        body: sdp('198.18.0.20', 30000),
      }),
    );
    await fwd(
      request(id, 'ACK sip:bob@198.18.0.20 SIP/2.0', '1 ACK', 'z9hG4bKa1', { toTag: 'tb' }),
    );
    expect(server.rules().length).toBeGreaterThan(0);
    expect(metrics.pinholes.value({ outcome: 'opened' })).toBeGreaterThan(0);
    // The gauge follows the policy on every sweep (once a second by default).
    control.controller.sweep();
    expect(metrics.callsTracked.value()).toBe(1);
    await fwd(
      request(id, 'BYE sip:bob@198.18.0.20 SIP/2.0', '2 BYE', 'z9hG4bKb1', { toTag: 'tb' }),
    );
    await back(response(id, 'SIP/2.0 200 OK', '2 BYE', 'z9hG4bKb1', { toTag: 'tb' }));
    expect(server.rules()).toHaveLength(0);
    expect(metrics.pinholes.value({ outcome: 'closed' })).toBeGreaterThan(0);
    expect(metrics.pinholes.value({ outcome: 'failed' })).toBe(0);
    expect(metrics.answerToAck.count()).toBeGreaterThan(0);
  });

  it.each([
    { end: 'CANCEL', n: 2, cancel: true, final: 'SIP/2.0 487 Request Terminated' },
    { end: 'a 486', n: 3, cancel: false, final: 'SIP/2.0 486 Busy Here' },
  ])('$end closes the early holes', async ({ n, cancel, final }) => {
    const { server, fwd, back } = await setup();
    const id = `ec-${n}@198.18.0.10`;
    const branch = `z9hG4bKi${n}`;
    const toTag = `t${n}`;
    const inv = 'INVITE sip:bob@198.18.0.20 SIP/2.0';
    await fwd(request(id, inv, '1 INVITE', branch, { body: sdp('198.18.0.10', 40000 + 2 * n) }));
    await back(
      response(id, 'SIP/2.0 183 Session Progress', '1 INVITE', branch, {
        toTag,
        body: sdp('198.18.0.20', 30000 + 2 * n),
      }),
    );
    expect(server.rules().length).toBeGreaterThan(0);
    if (cancel) {
      await fwd(request(id, 'CANCEL sip:bob@198.18.0.20 SIP/2.0', '1 CANCEL', branch));
    }
    await back(response(id, final, '1 INVITE', branch, { toTag }));
    expect(server.rules()).toHaveLength(0);
  });

  it('the sweep releases early holes whose TIMER passed without a final response', async () => {
    const { server, metrics, clock, fwd, back } = await setup(5);
    const id = 'ec-4@198.18.0.10';
    const inv = 'INVITE sip:bob@198.18.0.20 SIP/2.0';
    await fwd(request(id, inv, '1 INVITE', 'z9hG4bKi4', { body: sdp('198.18.0.10', 40006) }));
    await back(
      response(id, 'SIP/2.0 183 Session Progress', '1 INVITE', 'z9hG4bKi4', {
        toTag: 'te',
        body: sdp('198.18.0.20', 30006),
      }),
    );
    expect(server.rules().length).toBeGreaterThan(0);
    // Past the early-media TIMER (300 s by default) on the control's clock.
    clock.t += 301_000;
    for (
      let i = 0;
      i < 200 && (server.rules().length > 0 || metrics.pinholes.value({ outcome: 'closed' }) === 0);
      i++
    ) {
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(server.rules()).toHaveLength(0);
    expect(metrics.pinholes.value({ outcome: 'closed' })).toBeGreaterThan(0);
  });

  it('a branch that times out after a 183 (no final response ever seen) becomes transaction-ended and closes its early holes', async () => {
    const { server, metrics, control, fwd, push, advanceTimers } = await setup();
    const id = 'ec-5@198.18.0.10';
    const inv = 'INVITE sip:bob@198.18.0.20 SIP/2.0';
    await fwd(request(id, inv, '1 INVITE', 'z9hG4bKi5', { body: sdp('198.18.0.10', 40008) }));
    const [early183In, early183Out] = response(
      id,
      'SIP/2.0 183 Session Progress',
      '1 INVITE',
      'z9hG4bKi5',
      { toTag: 'tf', body: sdp('198.18.0.20', 30008) },
    );
    await push(early183In, CALLEE, SERVER);
    await push(early183Out, SERVER, UA);
    expect(server.rules().length).toBeGreaterThan(0);
    const handle = vi.spyOn(control.policy, 'handle');
    const policyEvents = (): string[] =>
      handle.mock.calls.map(([ev]) =>
        ev.type === 'transaction-ended' ? `${ev.type} ${ev.outcome}` : ev.type,
      );
    // §16.7 step 2 reset Timer C on the 183; just before it (and the cancel wait) runs out the
    // branch is alive and its holes stay.
    await advanceTimers(TIMER_C_MS - 1000);
    expect(server.rules().length).toBeGreaterThan(0);
    expect(policyEvents()).toEqual([]);
    // §16.8: Timer C fires in Proceeding; the proxy would CANCEL. No CANCEL, 487 or other final
    // response is ever mirrored, so the observer's §9.1 wait ends the branch with a timeout.
    await advanceTimers(1000 + CANCEL_WAIT_MS + 1000);
    expect(policyEvents()).toEqual(['transaction-ended timeout']);
    expect(server.rules()).toHaveLength(0);
    expect(metrics.pinholes.value({ outcome: 'closed' })).toBeGreaterThan(0);
    expect(metrics.pinholes.value({ outcome: 'failed' })).toBe(0);
  });

  it('a 183 that arrives after its branch timed out here (Timer B, no 100 mirrored) opens holes that the revived branch closes at its own timeout', async () => {
    const { server, metrics, control, fwd, push, advanceTimers } = await setup();
    const id = 'ec-5b@198.18.0.10';
    const inv = 'INVITE sip:bob@198.18.0.20 SIP/2.0';
    await fwd(request(id, inv, '1 INVITE', 'z9hG4bKi5b', { body: sdp('198.18.0.10', 40010) }));
    const handle = vi.spyOn(control.policy, 'handle');
    const ended = (): number =>
      handle.mock.calls.filter(([ev]) => ev.type === 'transaction-ended').length;
    // §17.1.1.2 Timer B (64*T1) in Calling: the observer tells the policy the branch timed out.
    await advanceTimers(CANCEL_WAIT_MS + 1000);
    expect(ended()).toBe(1);
    // The element's branch was alive all along: its 183 arrives late and opens the holes.
    const [early183In, early183Out] = response(
      id,
      'SIP/2.0 183 Session Progress',
      '1 INVITE',
      'z9hG4bKi5b',
      { toTag: 'tg', body: sdp('198.18.0.20', 30010) },
    );
    await push(early183In, CALLEE, SERVER);
    await push(early183Out, SERVER, UA);
    expect(server.rules().length).toBeGreaterThan(0);
    expect(control.layer.stats.branchesRevived).toBe(1);
    // The revived branch's Timer C and §9.1 wait end it: the holes close then, not at the
    // policy's 300 s early-media sweep (none runs here: the control's clock stands still).
    await advanceTimers(TIMER_C_MS - 1000);
    expect(server.rules().length).toBeGreaterThan(0);
    await advanceTimers(1000 + CANCEL_WAIT_MS + 1000);
    expect(ended()).toBe(2);
    expect(server.rules()).toHaveLength(0);
    expect(metrics.pinholes.value({ outcome: 'failed' })).toBe(0);
  });

  it('of two forked branches with early media, the one that times out closes only its own holes', async () => {
    const { server, push, advanceTimers } = await setup();
    const id = 'ec-6@198.18.0.10';

    const CALLEE2 = { address: '198.18.0.21', port: 5060 };
    const start = 'INVITE sip:bob@198.18.0.20 SIP/2.0';
    const offer = sdp('198.18.0.10', 40010);
    // The server forks the INVITE to two contacts (server branches ...s1 and ...s2).
    const [inviteIn] = request(id, start, '1 INVITE', 'z9hG4bKi6', { body: offer });
    await push(inviteIn, UA, SERVER);
    for (const [b, dst] of [
      ['s1', CALLEE],
      ['s2', CALLEE2],
    ] as const) {
      await push(
        sip({
          start,
          vias: [VIA_SRV(`z9hG4bKi6${b}`), VIA_UA_R('z9hG4bKi6')],
          cseq: '1 INVITE',
          callId: id,
          rr: true,
          body: offer,
        }),
        SERVER,
        dst,
      );
    }
    const early = (b: string, tag: string, addr: string, port: number): [string, string] => [
      sip({
        start: 'SIP/2.0 183 Session Progress',
        vias: [VIA_SRV(`z9hG4bKi6${b}`), VIA_UA_R('z9hG4bKi6')],
        cseq: '1 INVITE',
        callId: id,
        toTag: tag,
        rr: true,
        body: sdp(addr, port),
      }),
      sip({
        start: 'SIP/2.0 183 Session Progress',
        vias: [VIA_UA_R('z9hG4bKi6')],
        cseq: '1 INVITE',
        callId: id,
        toTag: tag,
        rr: true,
        body: sdp(addr, port),
      }),
    ];
    const [a183In, a183Out] = early('s1', 'ta', '198.18.0.20', 30010);
    await push(a183In, CALLEE, SERVER);
    await push(a183Out, SERVER, UA);
    // The second branch answers 30 s later (before its Timer B, 64*T1, would end it): its Timer
    // C restarts 30 s after the first one's.
    await advanceTimers(30_000);
    const [b183In, b183Out] = early('s2', 'tb', '198.18.0.21', 30012);
    await push(b183In, CALLEE2, SERVER);
    await push(b183Out, SERVER, UA);
    const rules = () => server.rules().map((r) => JSON.stringify(r));
    expect(rules().some((r) => r.includes('198.18.0.20'))).toBe(true);
    expect(rules().some((r) => r.includes('198.18.0.21'))).toBe(true);
    // The first branch times out (Timer C and the cancel wait after its 183)...
    await advanceTimers(TIMER_C_MS + CANCEL_WAIT_MS - 30_000 + 1000);
    expect(rules().some((r) => r.includes('198.18.0.20'))).toBe(false);
    expect(rules().some((r) => r.includes('198.18.0.21'))).toBe(true);
    // ...and 30 s later the second one.
    await advanceTimers(30_000);
    expect(server.rules()).toHaveLength(0);
  });
});
