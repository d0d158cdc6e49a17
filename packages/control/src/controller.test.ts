import { Policy } from '@pinhole/policy';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  PinholeController,
  type FcpPort,
  type FcpPortResult,
  type HoldVerdict,
} from './controller.js';
import { ControlErrorCode } from './errors.js';
import { toFcpPme, type FcpPmeInput } from './pme.js';
import { ALICE, BOB, PROTECTED, answer, bye, invite, sdp } from './test-messages.js';

interface Call {
  readonly method: 'set' | 'release';
  readonly pme: FcpPmeInput;
  readonly params?: { timer?: number; keepAlive?: boolean };
  resolve(r: FcpPortResult): void;
  reject(err: Error): void;
}

/** An FCP port whose answers the test gives by hand (or at once, with `auto`). */
class FakePort implements FcpPort {
  readonly calls: Call[] = [];
  auto: FcpPortResult | undefined = { ok: true, outcomes: [{ server: 'fake', kind: 'installed' }] };

  set(pme: FcpPmeInput, params: { timer?: number; keepAlive?: boolean }): Promise<FcpPortResult> {
    return this.#call('set', pme, params);
  }

  release(pme: FcpPmeInput): Promise<FcpPortResult> {
    return this.#call('release', pme);
  }

  #call(
    method: 'set' | 'release',
    pme: FcpPmeInput,
    params?: { timer?: number; keepAlive?: boolean },
  ): Promise<FcpPortResult> {
    return new Promise((resolve, reject) => {
      this.calls.push({ method, pme, ...(params ? { params } : {}), resolve, reject });
      if (this.auto) resolve(this.auto);
    });
  }
}

interface Logged {
  readonly level: string;
  readonly obj: object;
  readonly msg: string | undefined;
}

function recorder(): { logs: Logged[]; logger: PinholeControllerLogger } {
  const logs: Logged[] = [];
  const at =
    (level: string) =>
    (obj: object, msg?: string): void => {
      logs.push({ level, obj, msg });
    };
  return {
    logs,
    logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') },
  };
}
type PinholeControllerLogger = ConstructorParameters<typeof PinholeController>[0]['logger'] & {};

const controllers: PinholeController[] = [];
function make(opts: Partial<ConstructorParameters<typeof PinholeController>[0]> = {}): {
  c: PinholeController;
  port: FakePort;
} {
  const port = new FakePort();
  const c = new PinholeController({
    policy: new Policy({ protectedNetworks: [PROTECTED] }),
    fcp: port,
    sweepMs: 0,
    now: () => 1_000,
    ...opts,
  });
  controllers.push(c);
  return { c, port };
}

afterEach(async () => {
  vi.useRealTimers();
  for (const c of controllers.splice(0)) await c.close();
});

describe('toFcpPme', () => {
  it('writes a host prefix as the bare address and keeps wider prefixes', () => {
    expect(
      toFcpPme({
        protocol: 'udp',
        proto: 17,
        family: 4,
        source: { address: '198.19.0.0', prefix: 16 },
        destination: { address: '198.18.2.201', prefix: 32 },
        destinationPort: 5000,
      }),
    ).toEqual({ proto: 17, src: '198.19.0.0/16', dst: '198.18.2.201', dstPort: 5000 });
  });

  it('leaves the source out for any sender (IPv6 host prefix)', () => {
    expect(
      toFcpPme({
        protocol: 'udp',
        proto: 17,
        family: 6,
        source: undefined,
        destination: { address: '2001:db8::1', prefix: 128 },
        destinationPort: 6000,
      }),
    ).toEqual({ proto: 17, dst: '2001:db8::1', dstPort: 6000 });
  });
});

describe('PinholeController.handle', () => {
  it('sends one SET per open intent with the policy TIMER and keep-alive off', () => {
    const { c, port } = make();
    c.handle({ type: 'sip', message: invite('c1', sdp(ALICE, 4000)) });
    const exec = c.handle({ type: 'sip', message: answer('c1', sdp(BOB, 5000)) });
    expect(exec.sets).toHaveLength(2);
    const sets = port.calls.filter((x) => x.method === 'set');
    expect(sets.map((x) => x.pme)).toEqual([
      { proto: 17, dst: BOB, dstPort: 5000 },
      { proto: 17, dst: BOB, dstPort: 5001 },
    ]);
    for (const s of sets) expect(s.params?.keepAlive).toBe(false);
    expect(sets[0]?.params?.timer).toBeGreaterThan(0);
  });

  it('sends RELEASE for the holes a BYE closes, and counts opened and closed', async () => {
    const outcomes: string[] = [];
    const latencies: string[] = [];
    const { c, port } = make({
      metrics: { pinhole: (o) => outcomes.push(o), fcpLatency: (m) => latencies.push(m) },
    });
    c.handle({ type: 'sip', message: invite('c2', sdp(ALICE, 4000)) });
    c.handle({ type: 'sip', message: answer('c2', sdp(BOB, 5000)) });
    const exec = c.handle({ type: 'sip', message: bye('c2') });
    expect(exec.releases).toHaveLength(2);
    expect(await Promise.all(exec.releases)).toEqual([true, true]);
    await c.idle();
    expect(port.calls.filter((x) => x.method === 'release')).toHaveLength(2);
    expect(outcomes).toEqual(['opened', 'opened', 'closed', 'closed']);
    expect(latencies).toEqual(['set', 'set', 'release', 'release']);
  });

  describe('a RELEASE the firewall answers', () => {
    const cases: readonly {
      readonly name: string;
      readonly answer: FcpPortResult | Error;
      readonly ok: boolean;
      readonly outcome: string;
      readonly level: string;
      readonly msg: string;
    }[] = [
      {
        name: 'released: closed',
        answer: { ok: true, outcomes: [{ server: 'a', kind: 'released', status: 200 }] },
        ok: true,
        outcome: 'closed',
        level: 'debug',
        msg: 'pinhole closed',
      },
      {
        name: "gone (the FCP client's 400 no matching rule): expired, not failed",
        answer: {
          ok: true,
          outcomes: [
            {
              server: 'a',
              kind: 'gone',
              status: 400,
              reason: 'Bad Request: no matching rule found to release',
            },
          ],
        },
        ok: true,
        outcome: 'expired',
        level: 'debug',
        msg: 'pinhole already expired at the firewall',
      },
      {
        name: 'a port reporting 400 no matching rule as a refusal: expired',
        answer: {
          ok: false,
          outcomes: [
            { server: 'a', kind: 'released', status: 200 },
            {
              server: 'b',
              kind: 'refused',
              status: 400,
              reason: 'Bad Request: no matching rule found to release',
            },
          ],
        },
        ok: true,
        outcome: 'expired',
        level: 'debug',
        msg: 'pinhole already expired at the firewall',
      },
      {
        name: 'gone on one server, timed out on another: failed',
        answer: {
          ok: false,
          outcomes: [
            { server: 'a', kind: 'gone', status: 400, reason: 'no matching rule' },
            { server: 'b', kind: 'failed' },
          ],
        },
        ok: false,
        outcome: 'failed',
        level: 'warn',
        msg: 'pinhole RELEASE failed',
      },
      {
        name: 'another 4xx/5xx refusal: failed',
        answer: {
          ok: false,
          outcomes: [{ server: 'a', kind: 'refused', status: 500, reason: 'Internal Error' }],
        },
        ok: false,
        outcome: 'failed',
        level: 'warn',
        msg: 'pinhole RELEASE failed',
      },
      {
        name: 'the port throws: failed',
        answer: new Error('connection reset'),
        ok: false,
        outcome: 'failed',
        level: 'warn',
        msg: 'pinhole RELEASE failed',
      },
    ];
    for (const t of cases) {
      it(`counts ${t.name}`, async () => {
        const { logger, logs } = recorder();
        const outcomes: string[] = [];
        const { c, port } = make({ logger, metrics: { pinhole: (o) => outcomes.push(o) } });
        c.handle({ type: 'sip', message: invite('x1', sdp(ALICE, 4000)) });
        c.handle({ type: 'sip', message: answer('x1', sdp(BOB, 5000)) });
        port.auto = undefined;
        const exec = c.handle({ type: 'sip', message: bye('x1') });
        for (const call of port.calls.filter((x) => x.method === 'release')) {
          if (t.answer instanceof Error) call.reject(t.answer);
          else call.resolve(t.answer);
        }
        expect(await Promise.all(exec.releases)).toEqual([t.ok, t.ok]);
        expect(outcomes).toEqual(['opened', 'opened', t.outcome, t.outcome]);
        const released = logs.filter((l) => l.msg !== 'pinhole opened');
        expect(released.map((l) => [l.level, l.msg])).toEqual([
          [t.level, t.msg],
          [t.level, t.msg],
        ]);
      });
    }
  });

  it('counts a policy refusal and logs its code', () => {
    const { logger, logs } = recorder();
    const outcomes: string[] = [];
    const { c, port } = make({ logger, metrics: { pinhole: (o) => outcomes.push(o) } });
    c.handle({ type: 'sip', message: invite('c3', sdp(ALICE, 4000)) });
    // The callee announces a port below the allowed media range: the policy refuses the hole.
    c.handle({ type: 'sip', message: answer('c3', sdp(BOB, 80)) });
    expect(port.calls).toHaveLength(0);
    expect(outcomes).toContain('refused');
    expect(logs.some((l) => l.msg === 'pinhole refused by policy')).toBe(true);
  });

  it('turns a refused or failing SET into false, counted failed, logged at error when fail-closed', async () => {
    const { logger, logs } = recorder();
    const outcomes: string[] = [];
    const { c, port } = make({
      logger,
      failMode: 'closed',
      metrics: { pinhole: (o) => outcomes.push(o) },
    });
    port.auto = undefined;
    c.handle({ type: 'sip', message: invite('c4', sdp(ALICE, 4000)) });
    const exec = c.handle({ type: 'sip', message: answer('c4', sdp(BOB, 5000)) });
    port.calls[0]?.resolve({
      ok: false,
      outcomes: [{ server: 'tcp:x:1', kind: 'refused', status: 403, reason: 'not allowed' }],
    });
    port.calls[1]?.reject(new Error('connection lost'));
    expect(await Promise.all(exec.sets)).toEqual([false, false]);
    expect(outcomes).toEqual(['failed', 'failed']);
    const errors = logs.filter((l) => l.level === 'error');
    expect(errors).toHaveLength(2);
    expect(errors[0]?.obj).toMatchObject({ detail: ['tcp:x:1 refused 403 not allowed'] });
  });

  it('feeds transaction-ended events to the policy (a timed-out INVITE closes its offer holes)', async () => {
    const { c, port } = make({
      policy: new Policy({ protectedNetworks: [PROTECTED], openOn: 'offer' }),
    });
    // Bob calls Alice: the offer's destination (Bob) is protected, so open-on-offer opens it.
    const offer = invite('c5', sdp(BOB, 7000));
    const opened = c.handle({ type: 'sip', message: offer });
    expect(opened.sets.length).toBeGreaterThan(0);
    const ended = c.handle({ type: 'transaction-ended', request: offer, outcome: 'timeout' });
    expect(ended.releases.length).toBe(opened.sets.length);
    await c.idle();
    expect(port.calls.filter((x) => x.method === 'release').map((x) => x.pme.dstPort)).toEqual(
      port.calls.filter((x) => x.method === 'set').map((x) => x.pme.dstPort),
    );
  });

  it('does nothing after close()', async () => {
    const { c, port } = make();
    await c.close();
    const exec = c.handle({ type: 'sip', message: invite('c6', sdp(ALICE, 4000)) });
    expect(exec.sets).toHaveLength(0);
    expect(port.calls).toHaveLength(0);
    expect(c.closed).toBe(true);
  });
});

describe('PinholeController.hold', () => {
  it('relays at once when there is nothing to wait for', async () => {
    const { c } = make({ failMode: 'closed' });
    const v = await c.hold({ sets: [] });
    expect(v).toMatchObject({ action: 'relay', outcome: 'none' });
  });

  it('relays once every SET is acknowledged', async () => {
    const holds: HoldVerdict[] = [];
    const { c, port } = make({ failMode: 'closed', metrics: { hold: (v) => holds.push(v) } });
    port.auto = undefined;
    c.handle({ type: 'sip', message: invite('h1', sdp(ALICE, 4000)) });
    const exec = c.handle({ type: 'sip', message: answer('h1', sdp(BOB, 5000)) });
    const held = c.hold(exec);
    let settled = false;
    void held.then(() => (settled = true));
    port.calls[0]?.resolve({ ok: true, outcomes: [] });
    await Promise.resolve();
    expect(settled).toBe(false); // the second SET is still unanswered
    port.calls[1]?.resolve({ ok: true, outcomes: [] });
    expect(await held).toMatchObject({ action: 'relay', outcome: 'acknowledged' });
    expect(holds).toHaveLength(1);
  });

  it('fails the message when a SET is refused and the fail mode is closed', async () => {
    const { c, port } = make({ failMode: 'closed' });
    port.auto = { ok: false, outcomes: [] };
    c.handle({ type: 'sip', message: invite('h2', sdp(ALICE, 4000)) });
    const exec = c.handle({ type: 'sip', message: answer('h2', sdp(BOB, 5000)) });
    expect(await c.hold(exec)).toMatchObject({ action: 'fail', outcome: 'refused' });
  });

  it('relays anyway when a SET is refused and the fail mode is open', async () => {
    const { c, port } = make({ failMode: 'open' });
    port.auto = { ok: false, outcomes: [] };
    c.handle({ type: 'sip', message: invite('h3', sdp(ALICE, 4000)) });
    const exec = c.handle({ type: 'sip', message: answer('h3', sdp(BOB, 5000)) });
    expect(await c.hold(exec)).toMatchObject({ action: 'relay', outcome: 'refused' });
  });

  it('lets the fail mode decide at the deadline, with the context in the warning', async () => {
    vi.useFakeTimers();
    const { logger, logs } = recorder();
    const { c, port } = make({ failMode: 'closed', deadlineMs: 250, logger });
    port.auto = undefined; // the firewall never answers
    c.handle({ type: 'sip', message: invite('h4', sdp(ALICE, 4000)) });
    const exec = c.handle({ type: 'sip', message: answer('h4', sdp(BOB, 5000)) });
    const held = c.hold(exec, { context: { callId: 'h4', status: 200 } });
    await vi.advanceTimersByTimeAsync(250);
    expect(await held).toMatchObject({ action: 'fail', outcome: 'deadline', failMode: 'closed' });
    const warn = logs.find((l) => l.msg === 'pinholes not acknowledged before the deadline');
    expect(warn?.obj).toMatchObject({ callId: 'h4', status: 200, deadlineMs: 250 });
    // Answers after the deadline change nothing.
    for (const call of port.calls) call.resolve({ ok: true, outcomes: [] });
    await c.idle();
  });

  it('takes a per-hold deadline and applies a reconfigured fail mode to later holds', async () => {
    vi.useFakeTimers();
    const { c, port } = make({ failMode: 'closed', deadlineMs: 10_000 });
    port.auto = undefined;
    c.handle({ type: 'sip', message: invite('h5', sdp(ALICE, 4000)) });
    const exec = c.handle({ type: 'sip', message: answer('h5', sdp(BOB, 5000)) });
    c.reconfigure({ failMode: 'open', deadlineMs: 50 });
    expect(c.deadlineMs).toBe(50);
    const held = c.hold(exec, { deadlineMs: 5 });
    await vi.advanceTimersByTimeAsync(5);
    expect(await held).toMatchObject({ action: 'relay', outcome: 'deadline', failMode: 'open' });
    for (const call of port.calls) call.resolve({ ok: true, outcomes: [] });
  });
});

describe('PinholeController sweep, reconfigurePolicy, idle', () => {
  it('releases the holes of a call whose TIMER passed on the sweep tick and reports calls tracked', async () => {
    vi.useFakeTimers();
    let now = 0;
    const calls: number[] = [];
    const { c, port } = make({
      now: () => now,
      sweepMs: 1000,
      metrics: { callsTracked: (n) => calls.push(n) },
    });
    c.handle({ type: 'sip', message: invite('s1', sdp(ALICE, 4000)) });
    c.handle({ type: 'sip', message: answer('s1', sdp(BOB, 5000)) });
    await vi.advanceTimersByTimeAsync(1000);
    expect(calls.at(-1)).toBe(1);
    now = 24 * 3600 * 1000; // far past any TIMER
    await vi.advanceTimersByTimeAsync(1000);
    await c.idle();
    expect(port.calls.filter((x) => x.method === 'release')).toHaveLength(2);
    expect(calls.at(-1)).toBe(0);
  });

  it('re-decides live calls under new policy settings (holes no longer allowed close)', async () => {
    const { c, port } = make();
    c.handle({ type: 'sip', message: invite('r1', sdp(ALICE, 4000)) });
    c.handle({ type: 'sip', message: answer('r1', sdp(BOB, 5000)) });
    const exec = c.reconfigurePolicy({ protectedNetworks: ['198.20.0.0/16'] });
    expect(exec.releases).toHaveLength(2);
    await c.idle();
    expect(port.calls.filter((x) => x.method === 'release')).toHaveLength(2);
  });

  it('refuses an invalid policy configuration with CONTROL_ERR_CONFIG and keeps the old one', () => {
    const { c } = make();
    expect(() => c.reconfigurePolicy({ protectedNetworks: [] })).toThrowError(
      expect.objectContaining({ code: ControlErrorCode.CONFIG }) as Error,
    );
    expect(c.policy.config.protectedNetworks[0]?.address.text).toBe('198.18.0.0');
  });

  it('idle() waits for every request in flight', async () => {
    const { c, port } = make();
    port.auto = undefined;
    c.handle({ type: 'sip', message: invite('i1', sdp(ALICE, 4000)) });
    c.handle({ type: 'sip', message: answer('i1', sdp(BOB, 5000)) });
    expect(c.inFlight).toBe(2);
    let idle = false;
    const done = c.idle().then(() => (idle = true));
    await Promise.resolve();
    expect(idle).toBe(false);
    for (const call of port.calls) call.resolve({ ok: true, outcomes: [] });
    await done;
    expect(c.inFlight).toBe(0);
  });
});

describe('PinholeController releaseDelayMs', () => {
  it('sends no RELEASE before the delay ends when no SET comes, then sends them all', async () => {
    vi.useFakeTimers();
    const { c, port } = make({ releaseDelayMs: 20 });
    c.handle({ type: 'sip', message: invite('d1', sdp(ALICE, 4000)) });
    c.handle({ type: 'sip', message: answer('d1', sdp(BOB, 5000)) });
    const exec = c.handle({ type: 'sip', message: bye('d1') });
    expect(exec.releases).toHaveLength(2);
    expect(port.calls.filter((x) => x.method === 'release')).toHaveLength(0);
    expect(c.inFlight).toBe(2 + 2);
    await vi.advanceTimersByTimeAsync(19);
    expect(port.calls.filter((x) => x.method === 'release')).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(port.calls.filter((x) => x.method === 'release').map((x) => x.pme)).toEqual([
      { proto: 17, dst: BOB, dstPort: 5000 },
      { proto: 17, dst: BOB, dstPort: 5001 },
    ]);
    expect(await Promise.all(exec.releases)).toEqual([true, true]);
    await c.idle();
    expect(c.inFlight).toBe(0);
  });

  it('sends a waiting RELEASE of the rule a SET opens again before that SET', async () => {
    vi.useFakeTimers();
    const { c, port } = make({ releaseDelayMs: 1000 });
    c.handle({ type: 'sip', message: invite('d2', sdp(ALICE, 4000)) });
    c.handle({ type: 'sip', message: answer('d2', sdp(BOB, 5000)) });
    const ended = c.handle({ type: 'sip', message: bye('d2') });
    c.handle({ type: 'sip', message: invite('d3', sdp(ALICE, 4100)) });
    const opened = c.handle({ type: 'sip', message: answer('d3', sdp(BOB, 5000)) });
    // The new call opens the same ports the ended one held: each RELEASE precedes its SET.
    expect(port.calls.map((x) => `${x.method} ${x.pme.dstPort}`)).toEqual([
      'set 5000',
      'set 5001',
      'release 5000',
      'set 5000',
      'release 5001',
      'set 5001',
    ]);
    expect(await Promise.all(ended.releases)).toEqual([true, true]);
    expect(await Promise.all(opened.sets)).toEqual([true, true]);
  });

  it("sends the waiting RELEASEs of other rules right after the next SETs, in the SETs' turn", async () => {
    vi.useFakeTimers();
    const { c, port } = make({ releaseDelayMs: 1000 });
    c.handle({ type: 'sip', message: invite('d5', sdp(ALICE, 4000)) });
    c.handle({ type: 'sip', message: answer('d5', sdp(BOB, 5000)) });
    const ended = c.handle({ type: 'sip', message: bye('d5') });
    c.handle({ type: 'sip', message: invite('d6', sdp(ALICE, 4100)) });
    c.handle({ type: 'sip', message: answer('d6', sdp(BOB, 6000)) });
    expect(port.calls.map((x) => `${x.method} ${x.pme.dstPort}`)).toEqual([
      'set 5000',
      'set 5001',
      'set 6000',
      'set 6001',
      'release 5000',
      'release 5001',
    ]);
    expect(await Promise.all(ended.releases)).toEqual([true, true]);
  });

  it('close() sends the waiting RELEASEs and waits for them', async () => {
    const { c, port } = make({ releaseDelayMs: 60_000 });
    c.handle({ type: 'sip', message: invite('d4', sdp(ALICE, 4000)) });
    c.handle({ type: 'sip', message: answer('d4', sdp(BOB, 5000)) });
    const exec = c.handle({ type: 'sip', message: bye('d4') });
    await c.close();
    expect(port.calls.filter((x) => x.method === 'release')).toHaveLength(2);
    expect(await Promise.all(exec.releases)).toEqual([true, true]);
    expect(c.inFlight).toBe(0);
  });
});
