import { describe, expect, it } from 'vitest';
import type { TransactionEvent } from './events.js';
import {
  UAC,
  UAS1,
  UAS2,
  flush,
  harness,
  proxyHarness,
  request,
  response,
  sentTo,
} from '../test/helpers.js';

const TCP1 = { transport: 'TCP', host: '198.18.0.3', port: 5060 };

function call(targets = [UAS1, UAS2], options = {}) {
  const h = proxyHarness(targets, { trying: 'immediate', ...options });
  const invite = request({ branch: 'z9hG4bKup1' });
  h.layer.receive(invite, UAC);
  return { ...h, invite };
}

describe('stateful proxy (RFC 3261 §16)', () => {
  it('MUST insert a Via with a magic-cookie branch before the existing ones when forwarding', () => {
    const h = call([UAS1]);
    const fwd = h.forwarded(UAS1);
    expect(fwd.via()).toHaveLength(2);
    expect(fwd.topVia()?.branch?.startsWith('z9hG4bK')).toBe(true);
    expect(fwd.topVia()?.host).toBe('198.18.0.2');
    expect(fwd.via()[1]?.branch).toBe('z9hG4bKup1');
    expect(h.of('requestForwarded')).toHaveLength(1);
    expect(h.of('requestForwarded')[0]?.destination).toBe(UAS1);
  });

  it('sends 100 (Trying) upstream and does not forward a downstream 100', () => {
    const h = call([UAS1]);
    h.layer.receive(response(h.forwarded(UAS1), 100), UAS1);
    expect(sentTo(h, UAC)).toEqual(['100']);
  });

  it('MUST forward a provisional other than 100 upstream immediately, without its topmost Via', () => {
    const h = call([UAS1]);
    h.layer.receive(response(h.forwarded(UAS1), 180), UAS1);
    expect(sentTo(h, UAC)).toEqual(['100', '180']);
    const relayed = h.of('provisionalRelayed')[0];
    expect(relayed?.message?.via()).toHaveLength(1);
    expect(relayed?.message?.topVia()?.branch).toBe('z9hG4bKup1');
    expect(relayed?.direction).toBe('sent');
    expect(relayed?.destination).toEqual(UAC);
  });

  it('forking: relays several provisionals and one 2xx, then CANCELs the other pending branch', () => {
    const h = call();
    h.layer.receive(response(h.forwarded(UAS1), 180, 'b1'), UAS1);
    h.layer.receive(response(h.forwarded(UAS2), 183, 'b2'), UAS2);
    h.layer.receive(response(h.forwarded(UAS1), 200, 'b1'), UAS1);
    expect(sentTo(h, UAC)).toEqual(['100', '180', '183', '200']);
    expect(sentTo(h, UAS2)).toEqual(['INVITE', 'CANCEL']);
    expect(sentTo(h, UAS1)).toEqual(['INVITE']);
    const cancel = h.forwarded(UAS2, 'CANCEL');
    expect(cancel.topVia()?.branch).toBe(h.forwarded(UAS2).topVia()?.branch);
    const cancelEvent = h.of('requestForwarded').find((e) => e.message?.method === 'CANCEL');
    expect(cancelEvent?.transaction).toBe(h.of('requestReceived')[0]?.transaction);
    // the cancelled branch answers 487 and the CANCEL 200; nothing more goes upstream
    h.layer.receive(response(cancel, 200, 'b2'), UAS2);
    h.layer.receive(response(h.forwarded(UAS2), 487, 'b2'), UAS2);
    expect(sentTo(h, UAC)).toEqual(['100', '180', '183', '200']);
    expect(sentTo(h, UAS2)).toEqual(['INVITE', 'CANCEL', 'ACK']);
    expect(h.of('branchFailed').map((e) => e.outcome)).toEqual([
      { kind: 'response', status: 487, local: false },
    ]);
    expect(h.of('allBranchesFailed')).toHaveLength(0);
  });

  it('MUST forward every 2xx to an INVITE upstream, including a second fork and retransmissions', () => {
    const h = call();
    h.layer.receive(response(h.forwarded(UAS1), 200, 'b1'), UAS1);
    h.layer.receive(response(h.forwarded(UAS2), 200, 'b2'), UAS2);
    h.layer.receive(response(h.forwarded(UAS1), 200, 'b1'), UAS1);
    expect(sentTo(h, UAC)).toEqual(['100', '200', '200', '200']);
    expect(h.of('finalRelayed').map((e) => e.retransmission)).toEqual([false, true, true]);
  });

  it('MUST choose from the lowest class and give preference to 401/407/415/420/484', () => {
    const h = call();
    h.layer.receive(response(h.forwarded(UAS1), 486, 'b1'), UAS1);
    expect(sentTo(h, UAC)).toEqual(['100']);
    h.layer.receive(response(h.forwarded(UAS2), 484, 'b2'), UAS2);
    expect(sentTo(h, UAC)).toEqual(['100', '484']);
    const all = h.of('allBranchesFailed')[0];
    expect(all?.message?.status).toBe(484);
    expect(all?.local).toBe(false);
    expect(h.of('branchFailed')).toHaveLength(2);
  });

  it('prefers a 3xx over any 4xx', () => {
    const h = call();
    h.layer.receive(response(h.forwarded(UAS1), 404, 'b1'), UAS1);
    h.layer.receive(response(h.forwarded(UAS2), 302, 'b2'), UAS2);
    expect(sentTo(h, UAC)).toEqual(['100', '302']);
  });

  it('MUST choose a 6xx, cancel pending branches and create no new branch', () => {
    const h = call();
    h.layer.receive(response(h.forwarded(UAS2), 180, 'b2'), UAS2);
    h.layer.receive(response(h.forwarded(UAS1), 603, 'b1'), UAS1);
    expect(sentTo(h, UAS2)).toEqual(['INVITE', 'CANCEL']);
    const server = h.of('requestReceived')[0]?.transaction;
    if (server === undefined) throw new Error('no server transaction');
    const ctx = h.layer.contextOf(server);
    expect(ctx?.closed).toBe(true);
    expect(ctx?.forward(request({ branch: 'z9hG4bKx' }), UAS1)).toBeUndefined();
    h.layer.receive(response(h.forwarded(UAS2), 487, 'b2'), UAS2);
    expect(sentTo(h, UAC)).toEqual(['100', '180', '603']);
  });

  it('MUST collect WWW-Authenticate and Proxy-Authenticate from every 401/407 into the chosen one', () => {
    const h = call();
    h.layer.receive(
      response(h.forwarded(UAS1), 401, 'b1', [
        ['WWW-Authenticate', 'Digest realm="one", nonce="1"'],
      ]),
      UAS1,
    );
    h.layer.receive(
      response(h.forwarded(UAS2), 407, 'b2', [
        ['Proxy-Authenticate', 'Digest realm="two", nonce="2"'],
      ]),
      UAS2,
    );
    const up = h.transport.sent.at(-1)?.message;
    expect(up?.status).toBe(401);
    expect(up?.getAll('www-authenticate').join()).toContain('realm="one"');
    expect(up?.getAll('proxy-authenticate').join()).toContain('realm="two"');
  });

  it('MUST send 408 when the context holds no final response (every branch timed out)', () => {
    const h = call();
    h.clock.advance(32_000);
    expect(sentTo(h, UAC)).toEqual(['100', '408']);
    const all = h.of('allBranchesFailed')[0];
    expect(all?.local).toBe(true);
    expect(all?.message?.status).toBe(408);
    expect(h.of('branchFailed').map((e) => e.outcome)).toEqual([
      { kind: 'timeout', timer: 'B' },
      { kind: 'timeout', timer: 'B' },
    ]);
    expect(h.of('finalRelayed')[0]?.local).toBe(true);
  });

  it('MUST behave as if a 503 was received on a transport error, and SHOULD send 500 when that is the only response', () => {
    const h = proxyHarness([TCP1], { trying: 'never' });
    h.transport.fail = (_m, d) => (d === TCP1 ? 'throw' : undefined);
    h.layer.receive(request({ branch: 'z9hG4bKup1' }), UAC);
    expect(h.of('branchFailed')[0]?.outcome?.kind).toBe('transport-error');
    expect(sentTo(h, UAC)).toEqual(['500']);
  });

  it('answers CANCEL with 200, waits for a provisional before sending CANCEL downstream, then relays the 487', () => {
    const h = call([UAS1]);
    h.layer.receive(request({ method: 'CANCEL', branch: 'z9hG4bKup1' }), UAC);
    expect(h.of('cancelReceived')[0]?.transaction?.kind).toBe('ist');
    expect(sentTo(h, UAC)).toEqual(['100', '200']);
    expect(sentTo(h, UAS1)).toEqual(['INVITE']);
    h.layer.receive(response(h.forwarded(UAS1), 180, 'b1'), UAS1);
    expect(sentTo(h, UAS1)).toEqual(['INVITE', 'CANCEL']);
    h.layer.receive(response(h.forwarded(UAS1), 487, 'b1'), UAS1);
    // the 180 still goes up: the INVITE server transaction has no final response yet
    expect(sentTo(h, UAC)).toEqual(['100', '200', '180', '487']);
  });

  it('with cancelUnanswered local-487, stops an unanswered branch at once and answers 487', () => {
    const h = call([UAS1], { cancelUnanswered: 'local-487' });
    h.layer.receive(request({ method: 'CANCEL', branch: 'z9hG4bKup1' }), UAC);
    expect(sentTo(h, UAC)).toEqual(['100', '200', '487']);
    h.clock.advance(5_000);
    expect(sentTo(h, UAS1)).toEqual(['INVITE']);
    expect(h.of('allBranchesFailed')[0]?.message?.status).toBe(487);
  });

  it('answers 487 when a cancelled branch never answers at all (Timer B)', () => {
    const h = call([UAS1]);
    h.layer.receive(request({ method: 'CANCEL', branch: 'z9hG4bKup1' }), UAC);
    h.clock.advance(32_000);
    expect(sentTo(h, UAC)).toEqual(['100', '200', '487']);
  });

  it('CANCEL crossing a 200: the 200 is relayed and the CANCEL has no further effect', () => {
    const h = call([UAS1]);
    h.layer.receive(response(h.forwarded(UAS1), 180, 'b1'), UAS1);
    h.layer.receive(request({ method: 'CANCEL', branch: 'z9hG4bKup1' }), UAC);
    expect(sentTo(h, UAS1)).toEqual(['INVITE', 'CANCEL']);
    h.layer.receive(response(h.forwarded(UAS1), 200, 'b1'), UAS1);
    h.layer.receive(response(h.forwarded(UAS1, 'CANCEL'), 200, 'b1'), UAS1);
    expect(sentTo(h, UAC)).toEqual(['100', '180', '200', '200']);
    expect(h.of('finalRelayed').map((e) => e.message?.method)).toEqual(['CANCEL', 'INVITE']);
    expect(h.of('allBranchesFailed')).toHaveLength(0);
  });

  it('CANCEL arriving after the 200 was relayed is answered 200 and changes nothing', () => {
    const h = call([UAS1]);
    h.layer.receive(response(h.forwarded(UAS1), 200, 'b1'), UAS1);
    h.layer.receive(request({ method: 'CANCEL', branch: 'z9hG4bKup1' }), UAC);
    expect(sentTo(h, UAC)).toEqual(['100', '200', '200']);
    expect(sentTo(h, UAS1)).toEqual(['INVITE']);
  });

  it('Timer C: MUST generate a CANCEL for a branch that has a provisional, then answers 408 upstream when its 487 arrives', () => {
    const h = call([UAS1]);
    h.layer.receive(response(h.forwarded(UAS1), 180, 'b1'), UAS1);
    h.clock.advance(181_000);
    expect(sentTo(h, UAS1)).toEqual(['INVITE', 'CANCEL']);
    h.layer.receive(response(h.forwarded(UAS1), 487, 'b1'), UAS1);
    expect(sentTo(h, UAC)).toEqual(['100', '180', '408']);
    expect(h.of('finalRelayed')[0]?.local).toBe(true);
  });

  it('Timer C on one branch: a real answer of another branch still wins over its 408', () => {
    const h = call();
    h.layer.receive(response(h.forwarded(UAS1), 180, 'b1'), UAS1);
    h.layer.receive(response(h.forwarded(UAS2), 180, 'b2'), UAS2);
    h.layer.receive(response(h.forwarded(UAS2), 404, 'b2'), UAS2);
    h.clock.advance(181_000);
    h.layer.receive(response(h.forwarded(UAS1), 487, 'b1'), UAS1);
    expect(sentTo(h, UAC)).toEqual(['100', '180', '180', '404']);
  });

  it('lets a call ring for ten minutes while provisionals keep resetting Timer C', () => {
    const h = call([UAS1]);
    for (let i = 0; i < 6; i++) {
      h.layer.receive(response(h.forwarded(UAS1), 180, 'b1'), UAS1);
      h.clock.advance(100_000);
    }
    expect(sentTo(h, UAS1)).toEqual(['INVITE']);
    h.layer.receive(response(h.forwarded(UAS1), 200, 'b1'), UAS1);
    expect(sentTo(h, UAC)).toEqual(['100', '180', '180', '180', '180', '180', '180', '200']);
  });

  it('Timer C: MUST behave as if a 408 was received for a branch without a provisional', () => {
    const h = proxyHarness([TCP1], { trying: 'never', timers: { C: 10_000 } });
    h.layer.receive(request({ branch: 'z9hG4bKup1' }), UAC);
    h.clock.advance(10_000);
    expect(sentTo(h, UAC)).toEqual(['408']);
    expect(h.of('branchFailed')[0]?.outcome).toEqual({ kind: 'timeout', timer: 'C' });
  });

  it('passes a 2xx arriving after its branch ended to the core as a stray response (§18.1.2)', () => {
    const h = call([UAS1]);
    h.layer.receive(response(h.forwarded(UAS1), 180, 'b1'), UAS1);
    h.clock.advance(181_000 + 32_000); // Timer C, CANCEL, no answer: §9.1 wait ends -> 487
    expect(sentTo(h, UAC)).toEqual(['100', '180', '487']);
    h.layer.receive(response(h.forwarded(UAS1), 200, 'b1'), UAS1);
    expect(h.layer.stats.strayResponses).toBe(1); // the branch is gone: the core gets it
  });

  it('proxies a non-INVITE request and relays its final response', () => {
    const h = proxyHarness([UAS1]);
    h.layer.receive(request({ method: 'BYE', branch: 'z9hG4bKbye', toTag: 'b1', cseq: 2 }), UAC);
    h.layer.receive(response(h.forwarded(UAS1, 'BYE'), 200, 'b1'), UAS1);
    expect(sentTo(h, UAC)).toEqual(['200']);
    expect(h.of('finalRelayed')[0]?.dialog?.state).toBe('terminated');
  });

  it('per-transaction listeners on the server transaction hear the events of its branches', () => {
    const h = call([UAS1]);
    const server = h.of('requestReceived')[0]?.transaction;
    if (server === undefined) throw new Error('no server transaction');
    const heard: string[] = [];
    h.layer.onTransaction(
      server,
      'responseReceived',
      (e) => void heard.push(`${e.message?.status}`),
    );
    h.layer.onTransaction(
      server,
      'finalRelayed',
      (e) => void heard.push(`up ${e.message?.status}`),
    );
    h.layer.receive(response(h.forwarded(UAS1), 180, 'b1'), UAS1);
    h.layer.receive(response(h.forwarded(UAS1), 200, 'b1'), UAS1);
    expect(heard).toEqual(['180', '200', 'up 200']);
  });
});

describe('holding a response until an asynchronous callback settles', () => {
  it('holds a 200 until the finalRelayed promise resolves', async () => {
    const h = call([UAS1]);
    let open!: () => void;
    h.layer.on('finalRelayed', () => new Promise<void>((r) => (open = r)));
    h.layer.receive(response(h.forwarded(UAS1), 200, 'b1'), UAS1);
    await flush();
    expect(sentTo(h, UAC)).toEqual(['100']);
    open();
    await flush();
    expect(sentTo(h, UAC)).toEqual(['100', '200']);
  });

  it('keeps the order: a 200 behind a held 183 waits for it', async () => {
    const h = call([UAS1]);
    let open!: () => void;
    h.layer.on('provisionalRelayed', () => new Promise<void>((r) => (open = r)));
    h.layer.receive(response(h.forwarded(UAS1), 183, 'b1'), UAS1);
    h.layer.receive(response(h.forwarded(UAS1), 200, 'b1'), UAS1);
    await flush();
    expect(sentTo(h, UAC)).toEqual(['100']);
    open();
    await flush();
    expect(sentTo(h, UAC)).toEqual(['100', '183', '200']);
  });

  it('releases a held response at the deadline and reports it', async () => {
    const h = call([UAS1], { holdDeadlineMs: 300 });
    h.layer.on('finalRelayed', () => new Promise<void>(() => undefined));
    h.layer.receive(response(h.forwarded(UAS1), 200, 'b1'), UAS1);
    await flush();
    h.clock.advance(299);
    await flush();
    expect(sentTo(h, UAC)).toEqual(['100']);
    h.clock.advance(1);
    await flush();
    expect(sentTo(h, UAC)).toEqual(['100', '200']);
    expect(h.errors.map((e) => (e as { code?: string }).code)).toContain('TXN_ERR_HOLD_DEADLINE');
  });

  it('uses a per-listener deadline and sends even when the listener rejects', async () => {
    const h = call([UAS1]);
    h.layer.on('finalRelayed', () => new Promise<void>(() => undefined), { deadlineMs: 50 });
    h.layer.on('finalRelayed', () => Promise.reject(new Error('firewall down')));
    h.layer.receive(response(h.forwarded(UAS1), 486, 'b1'), UAS1);
    h.clock.advance(50);
    await flush();
    expect(sentTo(h, UAC)).toEqual(['100', '486']);
    expect(h.errors.map((e) => (e as { code?: string }).code)).toContain('TXN_ERR_LISTENER');
  });

  it('holds a forwarded request until requestForwarded settles', async () => {
    const h = proxyHarness([UAS1], { trying: 'never' });
    let open!: () => void;
    h.layer.on('requestForwarded', () => new Promise<void>((r) => (open = r)));
    h.layer.receive(request({ branch: 'z9hG4bKup1' }), UAC);
    expect(h.transport.sent).toHaveLength(0);
    open();
    await flush();
    expect(sentTo(h, UAS1)).toEqual(['INVITE']);
  });

  it('drops a held response when the listener decides so; the transaction stays pending', async () => {
    const h = call([UAS1]);
    h.layer.on('provisionalRelayed', () => Promise.resolve({ action: 'drop' as const }));
    h.layer.receive(response(h.forwarded(UAS1), 183, 'b1'), UAS1);
    await flush();
    expect(sentTo(h, UAC)).toEqual(['100']);
    const server = h.of('requestReceived')[0]?.transaction;
    expect(server?.state).toBe('proceeding');
  });

  it('sends the replacement a listener gives instead of the held response (fail-closed 503)', async () => {
    const h = call([UAS1]);
    h.layer.on('finalRelayed', (e) => {
      const server = e.transaction;
      if (server === undefined || e.message?.status !== 200) return undefined;
      return Promise.resolve({
        action: 'replace' as const,
        message: h.layer.localResponse(server.request, 503),
      });
    });
    h.layer.receive(response(h.forwarded(UAS1), 200, 'b1'), UAS1);
    await flush();
    expect(sentTo(h, UAC)).toEqual(['100', '503']);
    // A retransmitted 503 answers a retransmitted INVITE: the replacement is the final response.
    h.layer.receive(request({ branch: 'z9hG4bKup1' }), UAC);
    expect(sentTo(h, UAC)).toEqual(['100', '503', '503']);
  });

  it('the first drop or replace wins over listeners that let the message pass', async () => {
    const h = call([UAS1]);
    h.layer.on('finalRelayed', () => Promise.resolve({ action: 'send' as const }));
    h.layer.on('finalRelayed', () => Promise.resolve({ action: 'drop' as const }));
    h.layer.on('finalRelayed', () => Promise.resolve(undefined));
    h.layer.receive(response(h.forwarded(UAS1), 486, 'b1'), UAS1);
    await flush();
    expect(sentTo(h, UAC)).toEqual(['100']);
  });

  it('aborts a branch whose requestForwarded listener drops it; the context answers upstream', async () => {
    const h = proxyHarness([UAS1], { trying: 'never' });
    h.layer.on('requestForwarded', () => Promise.resolve({ action: 'drop' as const }));
    h.layer.receive(request({ branch: 'z9hG4bKup1' }), UAC);
    await flush();
    expect(sentTo(h, UAS1)).toEqual([]);
    expect(h.of('branchFailed').map((e) => e.outcome?.kind)).toEqual(['aborted']);
    expect(sentTo(h, UAC)).toEqual(['408']);
  });

  it('a listener that throws does not stop the others or the send', () => {
    const h = call([UAS1]);
    const seen: number[] = [];
    h.layer.on('provisionalRelayed', () => {
      throw new Error('bug');
    });
    h.layer.on(
      'provisionalRelayed',
      (e: TransactionEvent) => void seen.push(e.message?.status ?? 0),
    );
    h.layer.receive(response(h.forwarded(UAS1), 180, 'b1'), UAS1);
    expect(seen).toEqual([180]);
    expect(sentTo(h, UAC)).toEqual(['100', '180']);
  });
});

describe('what a proxy core needs of the layer', () => {
  it('forwards with the branch and Via parameters the core gives (loop detection), and refuses a branch without the magic cookie', () => {
    const seen: string[] = [];
    const h = harness({
      trying: 'never',
      sentBy: (t, to) => {
        seen.push(`${t} ${to.host}`);
        return '198.18.0.2:5060';
      },
      user: {
        request(txn) {
          const ctx = h.layer.proxy(txn);
          const copy = txn.request.clone();
          ctx.forward(copy, UAS1, { branch: 'z9hG4bK-ph1234.1', viaParams: ';rport' });
          expect(() => ctx.forward(txn.request.clone(), UAS2, { branch: 'nocookie' })).toThrowError(
            expect.objectContaining({ code: 'TXN_ERR_BAD_USAGE' }) as Error,
          );
        },
      },
    });
    h.layer.receive(request({ branch: 'z9hG4bKup1' }), UAC);
    const fwd = h.transport.sent.find((s) => s.message.isRequest)?.message;
    expect(fwd?.topVia()?.branch).toBe('z9hG4bK-ph1234.1');
    expect(fwd?.topVia()?.rport).toBe(true);
    expect(seen).toEqual([`UDP ${UAS1.host}`]);
  });

  it('names the branch and the downstream source of a relayed response; none for a local one', () => {
    const h = call([UAS1]);
    h.layer.receive(response(h.forwarded(UAS1), 180, 'b1'), UAS1);
    h.layer.receive(response(h.forwarded(UAS1), 486, 'b1'), UAS1);
    const prov = h.of('provisionalRelayed')[0];
    const branch = h.of('requestForwarded')[0]?.branch;
    expect(prov?.branch).toBe(branch);
    expect(prov?.source).toEqual(UAS1);
    // The 486 is relayed as the context's best response: no single branch relays it.
    const fin = h.of('finalRelayed')[0];
    expect(fin?.message?.status).toBe(486);
    expect(fin?.local).toBe(false);
  });

  it('keeps the local socket (connectionId) of a UDP request for its responses', () => {
    const h = harness({ trying: 'immediate' });
    h.layer.receive(request({ branch: 'z9hG4bKsock' }), { ...UAC, connectionId: 3 });
    const trying = h.transport.sent.find((s) => !s.message.isRequest);
    expect(trying?.destination.connectionId).toBe(3);
  });
});
