import type { SipMessage } from '@pinhole/sip';
import type { HoldDecision, ServerTransaction } from '@pinhole/transaction';
import { afterEach, describe, expect, it } from 'vitest';
import type { MediaGate } from './proxy-core.js';
import {
  CALLEE,
  CALLER,
  LISTENER,
  answer as answerWith,
  bytesOf,
  bye,
  closeCores,
  invite as inviteWith,
  setup,
  tick,
} from '../test/core-harness.js';

afterEach(closeCores);

const isCaller = (p: { address: string; port: number }): boolean =>
  p.address === CALLER.address && p.port === CALLER.port;

const invite = (extra = '', branch = 'z9hG4bKc1', mf = 70): string =>
  inviteWith(extra ? [extra] : [], branch, mf);
const answer = (req: SipMessage, status: number, reason: string, extra: string[] = []): string =>
  answerWith(req, status, reason, extra);

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
    expect(sent.some((s) => s.msg.status === 486 && isCaller(s.to))).toBe(true);
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
    expect(sent.some((s) => s.msg.status === 487 && isCaller(s.to))).toBe(true);
  });

  it('MUST statelessly forward a CANCEL that matches no response context (§16.10), and its answer back', async () => {
    const { sent, receive } = setup();
    receive(
      invite().replace('INVITE sip', 'CANCEL sip').replace('CSeq: 1 INVITE', 'CSeq: 1 CANCEL'),
    );
    await tick();
    const fwd = sent.filter((s) => s.msg.isRequest);
    expect(fwd.map((s) => s.msg.method)).toEqual(['CANCEL']);
    expect(fwd[0]!.to).toEqual(CALLEE);
    expect(fwd[0]!.msg.topVia()!.branch).toMatch(/^z9hG4bK-phs/);
    expect(fwd[0]!.msg.maxForwards()).toBe(69);
    expect(sent.some((s) => !s.msg.isRequest)).toBe(false); // no 481 any more
    // A retransmission is forwarded again, with the same branch.
    receive(
      invite().replace('INVITE sip', 'CANCEL sip').replace('CSeq: 1 INVITE', 'CSeq: 1 CANCEL'),
    );
    await tick();
    const again = sent.filter((s) => s.msg.isRequest);
    expect(again).toHaveLength(2);
    expect(again[1]!.msg.topVia()!.branch).toBe(fwd[0]!.msg.topVia()!.branch);
    // The downstream answer matches no transaction: relayed statelessly by the next Via.
    receive(answer(fwd[0]!.msg, 481, 'Call/Transaction Does Not Exist'), CALLEE);
    await tick();
    const up = sent.filter((s) => !s.msg.isRequest);
    expect(up.map((s) => s.msg.status)).toEqual([481]);
    expect(up[0]!.to).toEqual(CALLER);
    expect(up[0]!.msg.via()).toHaveLength(1);
  });

  it('answers 487 when the CANCEL comes while the next hop is still being resolved', async () => {
    const { sent, receive } = setup(['--route', 'domain:198.18.0.1=sip:localhost:5070']);
    receive(invite());
    receive(
      invite().replace('INVITE sip', 'CANCEL sip').replace('CSeq: 1 INVITE', 'CSeq: 1 CANCEL'),
    );
    for (let i = 0; i < 50 && !sent.some((s) => s.msg.status === 487); i++) await tick(10);
    const up = sent
      .filter((s) => isCaller(s.to))
      .map((s) => `${s.msg.status} ${s.msg.cseq()?.method}`);
    expect(up).toEqual(['100 INVITE', '200 CANCEL', '487 INVITE']);
    expect(sent.some((s) => s.msg.isRequest)).toBe(false);
  });

  it('MUST collect WWW-Authenticate and Proxy-Authenticate values of every 401/407 branch (§16.7 step 7)', async () => {
    const { sent, receive } = setup();
    for (const c of ['198.19.0.8', '198.19.0.9']) {
      receive(
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
    receive(invite());
    await tick();
    const branches = sent.filter((s) => s.msg.isRequest && s.msg.method === 'INVITE');
    expect(branches).toHaveLength(2);
    receive(
      answer(branches[0]!.msg, 401, 'Unauthorized', [
        'WWW-Authenticate: Digest realm="a", nonce="1"',
      ]),
      branches[0]!.to,
    );
    receive(
      answer(branches[1]!.msg, 407, 'Proxy Authentication Required', [
        'Proxy-Authenticate: Digest realm="b", nonce="2"',
      ]),
      branches[1]!.to,
    );
    await tick();
    const up = sent.filter((s) => isCaller(s.to) && !s.msg.isRequest && s.msg.status >= 400);
    expect(up).toHaveLength(1);
    expect(up[0]!.msg.getAll('www-authenticate')).toEqual(['Digest realm="a", nonce="1"']);
    expect(up[0]!.msg.getAll('proxy-authenticate')).toEqual(['Digest realm="b", nonce="2"']);
  });

  it('relays a 2xx that matches no client transaction statelessly by its next Via (§16.7 step 2)', async () => {
    const { sent, receive } = setup();
    receive(
      [
        'SIP/2.0 200 OK',
        'Via: SIP/2.0/UDP 198.18.0.1:5060;branch=z9hG4bK-phgone.1',
        'Via: SIP/2.0/UDP 198.18.0.2:5062;branch=z9hG4bKc9;rport=5062',
        'From: <sip:alice@198.18.0.2>;tag=a1',
        'To: <sip:bob@198.18.0.1>;tag=b9',
        'Call-ID: gone@198.18.0.2',
        'CSeq: 1 INVITE',
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n'),
      CALLEE,
    );
    await tick();
    expect(sent.map((s) => [s.msg.status, s.to.address])).toEqual([[200, '198.18.0.2']]);
  });

  it('routes an in-dialog request by its Route set, removing its own Route (loose routing)', async () => {
    const { sent, receive } = setup();
    receive(bye('sip:bob@198.19.0.7:5070'));
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
    let release: () => void = () => {};
    const gate: MediaGate = {
      request: () => ({ actions: [] }),
      attach: (layer) =>
        layer.on('provisionalRelayed', (e) =>
          e.message?.status === 183 ? new Promise<void>((r) => (release = r)) : undefined,
        ),
    };
    const { sent, receive } = setup([], gate);
    receive(invite());
    await tick();
    const fwd = sent.find((s) => s.msg.isRequest)!.msg;
    receive(answer(fwd, 183, 'Session Progress'), CALLEE);
    receive(answer(fwd, 180, 'Ringing'), CALLEE);
    await tick();
    expect(sent.filter((s) => isCaller(s.to)).map((s) => s.msg.status)).toEqual([100]);
    release();
    await tick();
    expect(sent.filter((s) => isCaller(s.to)).map((s) => s.msg.status)).toEqual([100, 183, 180]);
  });

  it("tells the gate when it read the message it handles, from the transport's readAt, and nothing outside one", async () => {
    const seen: [number, number | undefined][] = [];
    let outside: (() => number | undefined) | undefined;
    const gate: MediaGate = {
      request: () => ({ actions: [] }),
      attach: (layer, hooks) => {
        outside = () => hooks.receivedAt();
        return layer.on('provisionalRelayed', (e) => {
          seen.push([e.message?.status ?? 0, hooks.receivedAt()]);
          return undefined;
        });
      },
    };
    const h = setup([], gate);
    h.receive(invite());
    await tick();
    const fwd = h.sent.find((s) => s.msg.isRequest)!.msg;
    h.core.receive({
      bytes: Buffer.from(answer(fwd, 180, 'Ringing')),
      peer: CALLEE,
      listener: LISTENER,
      readAt: 1234.5,
    });
    await tick();
    expect(seen).toEqual([[180, 1234.5]]);
    expect(outside?.()).toBeUndefined();
  });

  it('fails the call with 503 when the gate fails it (fail-closed): the callee is ACKed and hung up', async () => {
    const gate: MediaGate = {
      request: () => ({ actions: [] }),
      attach: (layer, hooks) =>
        layer.on('finalRelayed', (e): Promise<HoldDecision> | undefined =>
          e.message?.status === 200 && e.transaction !== undefined
            ? Promise.resolve(
                hooks.failCall(
                  e.transaction as ServerTransaction,
                  e.message,
                  e.branch as Parameters<typeof hooks.failCall>[2],
                ),
              )
            : undefined,
        ),
    };
    const { sent, receive } = setup([], gate);
    receive(invite());
    await tick();
    const fwd = sent.find((s) => s.msg.isRequest)!.msg;
    const ok = answer(fwd, 200, 'OK', ['Contact: <sip:bob@198.19.0.2:5060>']);
    receive(ok, CALLEE);
    await tick();
    const up = sent.filter((s) => isCaller(s.to));
    expect(up.map((s) => s.msg.status)).toEqual([100, 503]);
    expect(up[1]!.msg.reason).toBe('Pinhole Not Confirmed');
    // The callee's answer is acknowledged and hung up.
    expect(sent.filter((s) => s.to.address === '198.19.0.2').map((s) => s.msg.method)).toEqual([
      'INVITE',
      'ACK',
      'BYE',
    ]);
    // Its retransmitted 2xx is ACKed again and never reaches the caller.
    receive(ok, CALLEE);
    await tick();
    expect(sent.filter((s) => isCaller(s.to)).map((s) => s.msg.status)).toEqual([100, 503]);
    expect(sent.filter((s) => s.to.address === '198.19.0.2').map((s) => s.msg.method)).toEqual([
      'INVITE',
      'ACK',
      'BYE',
      'ACK',
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
