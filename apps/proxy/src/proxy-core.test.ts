import { parse, type SipMessage } from '@pinhole/sip';
import { afterEach, describe, expect, it } from 'vitest';
import { parseArgs } from './config.js';
import { ProxyMetrics } from './metrics.js';
import { ProxyCore, type CoreTransport, type GateDecision, type MediaGate } from './proxy-core.js';
import type { Listener, Peer } from './transport.js';

const LISTENER: Listener = {
  transport: 'udp',
  host: '198.18.0.1',
  port: 5060,
  family: 4,
  advertise: '198.18.0.1',
  index: 0,
};
const CALLER: Peer = { transport: 'udp', address: '198.18.0.2', port: 5062 };

interface Sent {
  readonly msg: SipMessage;
  readonly to: Peer;
}

const quiet = { info: () => {}, warn: () => {}, debug: () => {}, error: () => {} };
const cores: ProxyCore[] = [];
afterEach(() => {
  for (const c of cores.splice(0)) c.close();
});

function setup(args: string[] = [], gate?: MediaGate) {
  const sent: Sent[] = [];
  const transport: CoreTransport = {
    listeners: [LISTENER],
    listenerFor: () => LISTENER,
    send(bytes, peer) {
      const r = parse(Buffer.from(bytes));
      if (!r.ok) throw new Error(`proxy sent unparsable bytes: ${r.error.reason}`);
      sent.push({ msg: r.message, to: peer });
      return true;
    },
  };
  const { config } = parseArgs(['--route', 'default=sip:198.19.0.2:5060', ...args]);
  const metrics = new ProxyMetrics({ transactions: () => 0, registrations: () => 0 });
  const core = new ProxyCore({
    config,
    transport,
    metrics,
    logger: quiet,
    ...(gate ? { gate } : {}),
  });
  cores.push(core);
  const receive = (text: string, peer: Peer = CALLER): void =>
    core.receive({ bytes: Buffer.from(text), peer, listener: LISTENER });
  return { core, sent, receive };
}

const invite = (extra = '', branch = 'z9hG4bKc1', mf = 70): string =>
  [
    'INVITE sip:bob@198.18.0.1 SIP/2.0',
    `Via: SIP/2.0/UDP 198.18.0.2:5062;branch=${branch};rport`,
    `Max-Forwards: ${mf}`,
    'From: <sip:alice@198.18.0.2>;tag=a1',
    'To: <sip:bob@198.18.0.1>',
    'Call-ID: call-1@198.18.0.2',
    'CSeq: 1 INVITE',
    'Contact: <sip:alice@198.18.0.2:5062>',
    ...(extra ? [extra] : []),
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');

/** The response a downstream UAS would send to the forwarded request. */
function answer(req: SipMessage, status: number, reason: string, extra: string[] = []): string {
  const lines = [`SIP/2.0 ${status} ${reason}`];
  for (const h of req.headers()) {
    if (['via', 'from', 'call-id', 'cseq', 'record-route'].includes(h.name)) {
      lines.push(`${h.rawName}: ${h.value}`);
    }
  }
  lines.push(
    `To: ${req.get('to')}${status > 100 ? ';tag=b1' : ''}`,
    ...extra,
    'Content-Length: 0',
    '',
    '',
  );
  return lines.join('\r\n');
}

const CALLEE: Peer = { transport: 'udp', address: '198.19.0.2', port: 5060 };
const tick = (ms = 5): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('proxy core (RFC 3261 §16)', () => {
  it('MUST send 100 Trying, add Via and Record-Route with lr, and decrement Max-Forwards', async () => {
    const { sent, receive } = setup();
    receive(invite());
    await tick();
    expect(sent[0]!.msg.status).toBe(100);
    expect(sent[0]!.to).toEqual(CALLER);
    const fwd = sent[1]!;
    expect(fwd.to).toEqual(CALLEE);
    expect(fwd.msg.requestUri).toBe('sip:bob@198.19.0.2:5060');
    expect(fwd.msg.maxForwards()).toBe(69);
    expect(fwd.msg.via()).toHaveLength(2);
    expect(fwd.msg.topVia()!.branch).toMatch(/^z9hG4bK-ph/);
    expect(fwd.msg.recordRoute()[0]!.uri.raw).toBe('sip:198.18.0.1:5060;lr');
  });

  it('MUST answer 483 when Max-Forwards is 0 and not forward', async () => {
    const { sent, receive } = setup();
    receive(invite('', 'z9hG4bKmf0', 0));
    await tick();
    expect(sent.map((s) => s.msg.status)).toEqual([100, 483]);
  });

  it('MUST answer 482 to a request that loops back to it unchanged', async () => {
    const { sent, receive } = setup(['--route', 'default=sip:198.18.0.1:5060']);
    receive(invite());
    await tick();
    // The forwarded request comes back to us: the first return is a spiral (its Request-URI was
    // retargeted), the second arrives unchanged: a loop.
    for (let pass = 0; pass < 2; pass++) {
      const fwd = sent.filter((s) => s.msg.isRequest).at(-1)!;
      receive(bytesOf(fwd.msg), CALLER);
      await tick();
    }
    expect(sent.some((s) => s.msg.status === 482)).toBe(true);
  });

  it('absorbs a retransmitted INVITE and answers it with the last response', async () => {
    const { sent, receive } = setup();
    receive(invite());
    await tick();
    receive(invite());
    await tick();
    expect(sent.filter((s) => s.msg.isRequest)).toHaveLength(1);
    expect(sent.filter((s) => s.msg.status === 100)).toHaveLength(2);
  });

  it('relays responses upstream without its Via, to where the request came from (rport)', async () => {
    const { sent, receive } = setup();
    receive(invite());
    await tick();
    const fwd = sent.find((s) => s.msg.isRequest)!.msg;
    receive(answer(fwd, 180, 'Ringing'), CALLEE);
    receive(answer(fwd, 200, 'OK'), CALLEE);
    await tick();
    const up = sent.filter((s) => !s.msg.isRequest && s.msg.status > 100);
    expect(up.map((s) => s.msg.status)).toEqual([180, 200]);
    expect(up[1]!.to).toEqual(CALLER);
    expect(up[1]!.msg.via()).toHaveLength(1);
    expect(up[1]!.msg.topVia()!.rport).toBe(5062);
  });

  it('MUST ACK a non-2xx final response hop by hop and relay it upstream', async () => {
    const { sent, receive } = setup();
    receive(invite());
    await tick();
    const fwd = sent.find((s) => s.msg.isRequest)!.msg;
    receive(answer(fwd, 486, 'Busy Here'), CALLEE);
    await tick();
    const ack = sent.find((s) => s.msg.method === 'ACK')!;
    expect(ack.to).toEqual(CALLEE);
    expect(ack.msg.topVia()!.branch).toBe(fwd.topVia()!.branch);
    expect(sent.some((s) => s.msg.status === 486 && s.to === CALLER)).toBe(true);
  });

  it('answers CANCEL 200, cancels the pending branch, and relays its 487', async () => {
    const { sent, receive } = setup();
    receive(invite());
    await tick();
    const fwd = sent.find((s) => s.msg.isRequest)!.msg;
    receive(answer(fwd, 180, 'Ringing'), CALLEE);
    receive(
      invite().replace('INVITE sip', 'CANCEL sip').replace('CSeq: 1 INVITE', 'CSeq: 1 CANCEL'),
    );
    await tick();
    expect(sent.some((s) => s.msg.status === 200 && s.msg.cseq()?.method === 'CANCEL')).toBe(true);
    const cancel = sent.find((s) => s.msg.isRequest && s.msg.method === 'CANCEL')!;
    expect(cancel.to).toEqual(CALLEE);
    expect(cancel.msg.topVia()!.branch).toBe(fwd.topVia()!.branch);
    receive(answer(fwd, 487, 'Request Terminated'), CALLEE);
    await tick();
    expect(sent.some((s) => s.msg.status === 487 && s.to === CALLER)).toBe(true);
  });

  it('answers 481 to a CANCEL that matches nothing', async () => {
    const { sent, receive } = setup();
    receive(
      invite().replace('INVITE sip', 'CANCEL sip').replace('CSeq: 1 INVITE', 'CSeq: 1 CANCEL'),
    );
    await tick();
    expect(sent.map((s) => s.msg.status)).toEqual([481]);
  });

  it('routes an in-dialog request by its Route set, removing its own Route (loose routing)', async () => {
    const { sent, receive } = setup();
    receive(
      [
        'BYE sip:bob@198.19.0.7:5070 SIP/2.0',
        'Via: SIP/2.0/UDP 198.18.0.2:5062;branch=z9hG4bKbye1',
        'Route: <sip:198.18.0.1:5060;lr>',
        'Max-Forwards: 70',
        'From: <sip:alice@198.18.0.2>;tag=a1',
        'To: <sip:bob@198.18.0.1>;tag=b1',
        'Call-ID: call-1@198.18.0.2',
        'CSeq: 2 BYE',
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n'),
    );
    await tick();
    const fwd = sent.find((s) => s.msg.isRequest)!;
    expect(fwd.to).toEqual({ transport: 'udp', address: '198.19.0.7', port: 5070 });
    expect(fwd.msg.route()).toHaveLength(0);
    expect(fwd.msg.recordRoute()).toHaveLength(0);
  });

  it('restores the Request-URI sent by a strict router (§16.4)', async () => {
    const { sent, receive } = setup();
    receive(
      [
        'BYE sip:198.18.0.1:5060;lr SIP/2.0',
        'Via: SIP/2.0/UDP 198.18.0.2:5062;branch=z9hG4bKstrict',
        'Route: <sip:bob@198.19.0.7:5070>',
        'Max-Forwards: 70',
        'From: <sip:alice@198.18.0.2>;tag=a1',
        'To: <sip:bob@198.18.0.1>;tag=b1',
        'Call-ID: call-2@198.18.0.2',
        'CSeq: 2 BYE',
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n'),
    );
    await tick();
    const fwd = sent.find((s) => s.msg.isRequest)!;
    expect(fwd.msg.requestUri).toBe('sip:bob@198.19.0.7:5070');
    expect(fwd.to).toEqual({ transport: 'udp', address: '198.19.0.7', port: 5070 });
  });

  it('registers contacts and forks an INVITE to all of them in parallel', async () => {
    const { sent, receive, core } = setup();
    receive(
      [
        'REGISTER sip:198.18.0.1 SIP/2.0',
        'Via: SIP/2.0/UDP 198.19.0.8:5060;branch=z9hG4bKreg',
        'Max-Forwards: 70',
        'From: <sip:bob@198.18.0.1>;tag=r',
        'To: <sip:bob@198.18.0.1>',
        'Call-ID: reg-1',
        'CSeq: 1 REGISTER',
        'Contact: <sip:bob@198.19.0.8:5060>, <sip:bob@198.19.0.9:5060>',
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n'),
      { transport: 'udp', address: '198.19.0.8', port: 5060 },
    );
    await tick();
    expect(sent[0]!.msg.status).toBe(200);
    expect(core.registrar.size).toBe(2);
    receive(invite());
    await tick();
    const branches = sent.filter((s) => s.msg.isRequest && s.msg.method === 'INVITE');
    expect(branches.map((b) => b.to.address).sort()).toEqual(['198.19.0.8', '198.19.0.9']);
    expect(new Set(branches.map((b) => b.msg.topVia()!.branch)).size).toBe(2);
  });

  it('holds a media-enabling response until the gate settles, and keeps later responses behind it', async () => {
    let release: (v: 'relay' | 'fail') => void = () => {};
    const gate: MediaGate = {
      passing: (ev): GateDecision =>
        !ev.message.isRequest && ev.message.status === 183
          ? { actions: [], hold: new Promise((r) => (release = r)) }
          : { actions: [] },
      ended: () => {},
    };
    const { sent, receive } = setup([], gate);
    receive(invite());
    await tick();
    const fwd = sent.find((s) => s.msg.isRequest)!.msg;
    receive(answer(fwd, 183, 'Session Progress'), CALLEE);
    receive(answer(fwd, 180, 'Ringing'), CALLEE);
    await tick();
    expect(sent.filter((s) => s.to === CALLER).map((s) => s.msg.status)).toEqual([100]);
    release('relay');
    await tick();
    expect(sent.filter((s) => s.to === CALLER).map((s) => s.msg.status)).toEqual([100, 183, 180]);
  });

  it('fails the call with 503 when the gate says the pinholes were not confirmed (fail-closed)', async () => {
    const gate: MediaGate = {
      passing: (ev): GateDecision =>
        !ev.message.isRequest && ev.message.status === 200
          ? { actions: [], hold: Promise.resolve('fail') }
          : { actions: [] },
      ended: () => {},
    };
    const { sent, receive } = setup([], gate);
    receive(invite());
    await tick();
    const fwd = sent.find((s) => s.msg.isRequest)!.msg;
    receive(answer(fwd, 200, 'OK', ['Contact: <sip:bob@198.19.0.2:5060>']), CALLEE);
    await tick();
    const up = sent.filter((s) => s.to === CALLER).map((s) => s.msg.status);
    expect(up).toEqual([100, 503]);
    // The callee's answer is acknowledged and hung up.
    expect(sent.filter((s) => s.to.address === '198.19.0.2').map((s) => s.msg.method)).toEqual([
      'INVITE',
      'ACK',
      'BYE',
    ]);
  });

  it('answers a message that fails validation with 400 and its reason, and drops garbage', async () => {
    const { sent, receive } = setup();
    receive(invite().replace('CSeq: 1 INVITE', 'CSeq: 99999999999 INVITE'));
    receive('\u0000\u0001 not SIP');
    await tick();
    expect(sent).toHaveLength(1);
    expect(sent[0]!.msg.status).toBe(400);
    expect(sent[0]!.msg.reason.length).toBeGreaterThan(0);
  });
});

function bytesOf(m: SipMessage): string {
  const lines = [`${m.method} ${m.requestUri} ${m.version}`];
  for (const h of m.headers()) lines.push(`${h.rawName}: ${h.value}`);
  lines.push('', '');
  return lines.join('\r\n');
}
