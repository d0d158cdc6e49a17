import { PinholeController, type FcpPmeInput, type FcpPort } from '@pinhole/control';
import { Policy } from '@pinhole/policy';
import type { SipMessage } from '@pinhole/sip';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CALLEE,
  CALLER,
  answer,
  bye,
  closeCores,
  invite,
  quiet,
  sdp,
  setup as coreSetup,
  tick,
} from '../test/core-harness.js';
import { controlMetrics, Firewall, toFcpPme } from './firewall.js';
import { ProxyMetrics } from './metrics.js';

type Answer = 'ok' | 'refuse' | 'never';

class FakeFcp implements FcpPort {
  readonly sets: FcpPmeInput[] = [];
  readonly releases: FcpPmeInput[] = [];
  answer: Answer = 'ok';
  /** SETs for these destination ports are refused whatever `answer` says. */
  readonly refusePorts = new Set<number>();
  readonly #stuck: (() => void)[] = [];
  set(pme: FcpPmeInput) {
    this.sets.push(pme);
    if (this.answer === 'never') {
      return new Promise<{ ok: boolean; outcomes: [] }>((r) =>
        this.#stuck.push(() => r({ ok: false, outcomes: [] })),
      );
    }
    const ok = this.answer === 'ok' && !this.refusePorts.has(pme.dstPort ?? 0);
    return Promise.resolve({
      ok,
      outcomes: [{ server: 'fake', kind: ok ? 'installed' : 'refused' }],
    });
  }
  /** Answers the requests left hanging (so that the controller can close). */
  unstick(): void {
    for (const r of this.#stuck.splice(0)) r();
  }
  release(pme: FcpPmeInput) {
    this.releases.push(pme);
    return Promise.resolve({ ok: true, outcomes: [] });
  }
}

const controls: { control: PinholeController; fcp: FakeFcp }[] = [];
afterEach(async () => {
  closeCores();
  for (const { control, fcp } of controls.splice(0)) {
    fcp.unstick();
    await control.close();
  }
});

function setup(failMode: 'open' | 'closed', answerMode: Answer) {
  const fcp = new FakeFcp();
  fcp.answer = answerMode;
  const metrics = new ProxyMetrics({ transactions: () => 0, registrations: () => 0 });
  const control = new PinholeController({
    policy: new Policy({ protectedNetworks: ['198.19.0.0/16'] }),
    fcp,
    metrics: controlMetrics(metrics),
    logger: quiet,
    failMode,
    deadlineMs: 50,
    sweepMs: 0,
  });
  controls.push({ control, fcp });
  const firewall = new Firewall({ control, logger: quiet });
  const core = coreSetup([], firewall, metrics);
  return { ...core, fcp, metrics, firewall };
}

const isCaller = (p: { address: string; port: number }): boolean =>
  p.address === CALLER.address && p.port === CALLER.port;
const isCallee = (p: { address: string }): boolean => p.address === CALLEE.address;

/** Sends the caller's INVITE with SDP; returns the request forwarded to the callee. */
async function call(h: ReturnType<typeof setup>): Promise<SipMessage> {
  h.receive(invite([], 'z9hG4bKfw1', 70, sdp('198.18.0.2', 41000)));
  await tick();
  return h.sent.find((s) => s.msg.isRequest && s.msg.method === 'INVITE')!.msg;
}

const contact = ['Contact: <sip:bob@198.19.0.2:5060>'];

describe('firewall module on the transaction layer', () => {
  it('holds the 200 with SDP until its SETs are acknowledged, then relays it', async () => {
    const h = setup('closed', 'never');
    const fwd = await call(h);
    h.receive(answer(fwd, 200, 'OK', contact, sdp('198.19.0.2', 40000)), CALLEE);
    await tick();
    // Not relayed while the firewall has not answered.
    expect(h.sent.filter((s) => isCaller(s.to)).map((s) => s.msg.status)).toEqual([100]);
    expect(h.fcp.sets.map((p) => `${p.dst}:${p.dstPort}`).sort()).toEqual([
      '198.19.0.2:40000',
      '198.19.0.2:40001',
    ]);
  });

  it('relays the 200 once the SETs are acknowledged and closes the holes when the BYE passes', async () => {
    const h = setup('closed', 'ok');
    const fwd = await call(h);
    h.receive(answer(fwd, 200, 'OK', contact, sdp('198.19.0.2', 40000)), CALLEE);
    await tick();
    expect(h.sent.filter((s) => isCaller(s.to)).map((s) => s.msg.status)).toEqual([100, 200]);
    expect(h.metrics.pinholes.get({ outcome: 'opened' })).toBe(2);
    expect(h.metrics.pinholeWait.count()).toBe(1);
    // The step spans the wait, from the moment the proxy read the 200.
    expect(h.metrics.pinholeStep.count()).toBe(1);
    expect(h.metrics.pinholeStepRecent.count()).toBe(1);
    expect(h.metrics.pinholeStep.sum()).toBeGreaterThanOrEqual(h.metrics.pinholeWait.sum());
    h.receive(bye(undefined, 'z9hG4bKfwbye'));
    await tick();
    expect(h.fcp.releases.map((p) => p.dstPort).sort()).toEqual([40000, 40001]);
  });

  it('counts a pinhole step only for a response it held', async () => {
    const h = setup('closed', 'ok');
    const fwd = await call(h);
    h.receive(answer(fwd, 180, 'Ringing', contact), CALLEE);
    await tick();
    expect(h.sent.filter((s) => isCaller(s.to)).map((s) => s.msg.status)).toEqual([100, 180]);
    expect(h.metrics.pinholeStep.count()).toBe(0);
    h.receive(answer(fwd, 200, 'OK', contact, sdp('198.19.0.2', 40000)), CALLEE);
    await tick();
    expect(h.metrics.pinholeStep.count()).toBe(1);
  });

  it('fail-closed: a 200 whose SETs are not acknowledged in time fails the call (503 up, ACK and BYE down)', async () => {
    const h = setup('closed', 'never');
    const fwd = await call(h);
    h.receive(answer(fwd, 200, 'OK', contact, sdp('198.19.0.2', 40000)), CALLEE);
    await tick(120);
    const up = h.sent.filter((s) => isCaller(s.to));
    expect(up.map((s) => s.msg.status)).toEqual([100, 503]);
    // The step is counted up to the decision, a failed one too: it spans the whole wait.
    expect(h.metrics.pinholeStep.count()).toBe(1);
    expect(h.metrics.pinholeWait.count()).toBe(1);
    expect(h.metrics.pinholeStep.sum()).toBeGreaterThanOrEqual(h.metrics.pinholeWait.sum());
    expect(h.sent.filter((s) => isCallee(s.to)).map((s) => s.msg.method)).toEqual([
      'INVITE',
      'ACK',
      'BYE',
    ]);
    // The policy heard of the hang-up: the holes it asked for are released (in case the late
    // SETs still go through).
    await tick();
    expect(h.fcp.releases.map((p) => p.dstPort).sort()).toEqual([40000, 40001]);
  });

  it('fail-closed: an early-media 183 the firewall refuses fails the call and cancels the callee', async () => {
    const h = setup('closed', 'refuse');
    const fwd = await call(h);
    h.receive(answer(fwd, 183, 'Session Progress', contact, sdp('198.19.0.2', 40000)), CALLEE);
    await tick();
    expect(h.sent.filter((s) => isCaller(s.to)).map((s) => s.msg.status)).toEqual([100, 503]);
    expect(h.sent.filter((s) => isCallee(s.to)).map((s) => s.msg.method)).toEqual([
      'INVITE',
      'CANCEL',
    ]);
    // The policy saw the 503 the caller got: the early holes are released.
    expect(h.fcp.releases.map((p) => p.dstPort).sort()).toEqual([40000, 40001]);
    // A 200 that crosses the CANCEL is not relayed either: ACKed and hung up.
    h.receive(answer(fwd, 200, 'OK', contact, sdp('198.19.0.2', 40000)), CALLEE);
    await tick();
    expect(h.sent.filter((s) => isCaller(s.to)).map((s) => s.msg.status)).toEqual([100, 503]);
    expect(h.sent.filter((s) => isCallee(s.to)).map((s) => s.msg.method)).toEqual([
      'INVITE',
      'CANCEL',
      'ACK',
      'BYE',
    ]);
  });

  it('fail-open: relays anyway when the firewall refuses, counting the failures', async () => {
    const h = setup('open', 'refuse');
    const fwd = await call(h);
    h.receive(answer(fwd, 200, 'OK', contact, sdp('198.19.0.2', 40000)), CALLEE);
    await tick();
    expect(h.sent.filter((s) => isCaller(s.to)).map((s) => s.msg.status)).toEqual([100, 200]);
    expect(h.metrics.pinholes.get({ outcome: 'failed' })).toBe(2);
  });

  it('closes the early holes of a branch whose final response is absorbed (486)', async () => {
    const h = setup('closed', 'ok');
    const fwd = await call(h);
    h.receive(answer(fwd, 183, 'Session Progress', contact, sdp('198.19.0.2', 40000)), CALLEE);
    await tick();
    expect(h.fcp.sets).toHaveLength(2);
    h.receive(answer(fwd, 486, 'Busy Here'), CALLEE);
    await tick();
    expect(h.sent.filter((s) => isCaller(s.to)).map((s) => s.msg.status)).toEqual([100, 183, 486]);
    expect(h.fcp.releases.map((p) => p.dstPort).sort()).toEqual([40000, 40001]);
  });

  it('fail-closed after another fork answered: only the failing fork is ACKed and hung up', async () => {
    const h = setup('closed', 'ok');
    h.fcp.refusePorts.add(40100);
    for (const c of ['198.19.0.8', '198.19.0.9']) {
      h.receive(
        [
          'REGISTER sip:198.18.0.1 SIP/2.0',
          `Via: SIP/2.0/UDP ${c}:5060;branch=z9hG4bKreg${c}`,
          'Max-Forwards: 70',
          'From: <sip:bob@198.18.0.1>;tag=r',
          'To: <sip:bob@198.18.0.1>',
          `Call-ID: reg-${c}`,
          'CSeq: 1 REGISTER',
          `Contact: <sip:bob@${c}:5060>`,
          'Content-Length: 0',
          '',
          '',
        ].join('\r\n'),
        { transport: 'udp', address: c, port: 5060 },
      );
    }
    h.receive(invite([], 'z9hG4bKfork', 70, sdp('198.18.0.2', 41000)));
    await tick();
    const branches = h.sent.filter((s) => s.msg.isRequest && s.msg.method === 'INVITE');
    expect(branches).toHaveLength(2);
    const [one, two] = branches as [(typeof branches)[0], (typeof branches)[0]];
    const ok1 = answer(
      one.msg,
      200,
      'OK',
      ['Contact: <sip:bob@198.19.0.8:5060>'],
      sdp('198.19.0.8', 40000),
      'f1',
    );
    const ok2 = answer(
      two.msg,
      200,
      'OK',
      ['Contact: <sip:bob@198.19.0.9:5060>'],
      sdp('198.19.0.9', 40100),
      'f2',
    );
    h.receive(ok1, one.to);
    await tick();
    h.receive(ok2, two.to);
    await tick();
    const up = () =>
      h.sent.filter((s) => isCaller(s.to)).map((s) => `${s.msg.status} ${s.msg.to()?.tag}`);
    expect(up()).toEqual(['100 undefined', '200 f1']);
    const toTwo = () =>
      h.sent
        .filter((s) => s.to.address === '198.19.0.9' && s.msg.isRequest)
        .map((s) => s.msg.method);
    expect(toTwo()).toEqual(['INVITE', 'ACK', 'BYE']);
    // The good fork's 2xx retransmission still reaches the caller; nothing is sent to hang it up.
    h.receive(ok1, one.to);
    h.receive(ok2, two.to);
    await tick();
    expect(up()).toEqual(['100 undefined', '200 f1', '200 f1']);
    expect(toTwo()).toEqual(['INVITE', 'ACK', 'BYE', 'ACK']);
    expect(
      h.sent
        .filter((s) => s.to.address === '198.19.0.8' && s.msg.isRequest)
        .map((s) => s.msg.method),
    ).toEqual(['INVITE']);
  });

  it('writes host addresses without a prefix and keeps source prefixes', () => {
    expect(
      toFcpPme({
        protocol: 'udp',
        proto: 17,
        family: 4,
        source: { address: '198.18.0.0', prefix: 24 },
        destination: { address: '198.19.0.2', prefix: 32 },
        destinationPort: 40000,
      }),
    ).toEqual({ proto: 17, src: '198.18.0.0/24', dst: '198.19.0.2', dstPort: 40000 });
  });
});
