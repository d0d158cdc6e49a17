import { describe, expect, it } from 'vitest';
import type { SipMessage } from '@pinhole/sip';
import type { Address } from './address.js';
import { TransactionLayer } from './layer.js';
import { FakeClock } from './timers.js';
import type { TransactionEvent } from './events.js';
import { ALL_EVENTS, PROXY, UAC, UAS1, request, response } from '../test/helpers.js';

/** An observer watching a proxy P between UAC and UAS1. */
function watch() {
  const clock = new FakeClock();
  const layer = new TransactionLayer({ mode: 'observer', clock });
  const events: TransactionEvent[] = [];
  for (const name of ALL_EVENTS) layer.on(name, (e) => void events.push(e));
  const feed = (m: SipMessage, direction: 'received' | 'sent', from: Address, to: Address) =>
    layer.observe(m.clone(), { direction, source: from, destination: to });
  const invite = request({ branch: 'z9hG4bKup', body: 'v=0\r\n' });
  const fwd = invite.clone();
  fwd.prependVia('SIP/2.0/UDP 198.18.0.2:5060;branch=z9hG4bKdown');
  const up = (m: SipMessage): SipMessage => {
    const c = m.clone();
    c.removeTopVia();
    return c;
  };
  const of = (name: string) => events.filter((e) => e.name === name);
  return { clock, layer, events, feed, invite, fwd, up, of };
}

describe('observer mode (the sidecar)', () => {
  it('tracks a proxied call and fires the same callbacks without sending anything', () => {
    const w = watch();
    w.feed(w.invite, 'received', UAC, PROXY);
    w.feed(w.fwd, 'sent', PROXY, UAS1);
    const r180 = response(w.fwd, 180, 'b1');
    w.feed(r180, 'received', UAS1, PROXY);
    w.feed(w.up(r180), 'sent', PROXY, UAC);
    const r200 = response(w.fwd, 200, 'b1');
    w.feed(r200, 'received', UAS1, PROXY);
    w.feed(w.up(r200), 'sent', PROXY, UAC);
    w.feed(request({ method: 'ACK', branch: 'z9hG4bKack', toTag: 'b1' }), 'received', UAC, PROXY);
    expect(w.events.map((e) => e.name)).toEqual([
      'requestReceived',
      'requestForwarded',
      'responseReceived',
      'provisionalRelayed',
      'responseReceived',
      'transactionCompleted',
      'finalRelayed',
      'transactionCompleted',
      'ackReceived',
    ]);
    const server = w.of('requestReceived')[0]?.transaction;
    expect(w.of('requestForwarded')[0]?.transaction).toBe(server);
    expect(w.of('requestForwarded')[0]?.branch?.kind).toBe('ict');
    expect(w.of('provisionalRelayed')[0]?.dialog?.state).toBe('early');
    expect(w.of('finalRelayed')[0]?.dialog?.state).toBe('confirmed');
    expect(w.of('finalRelayed')[0]?.destination).toEqual(UAC);
    expect(w.of('ackReceived')[0]?.transaction).toBe(server);
    expect(w.of('ackReceived')[0]?.endToEnd).toBe(true);
    expect(w.events.every((e) => e.observed)).toBe(true);
    expect(server?.state).toBe('accepted');
  });

  it('tolerates duplicates mirrored as received and as sent, and retransmissions', () => {
    const w = watch();
    for (const dir of ['received', 'sent'] as const) w.feed(w.invite, dir, UAC, PROXY);
    w.feed(w.invite, 'received', UAC, PROXY); // retransmission
    for (const dir of ['sent', 'received'] as const) w.feed(w.fwd, dir, PROXY, UAS1);
    const r486 = response(w.fwd, 486, 'b1');
    for (const dir of ['received', 'sent'] as const) w.feed(r486, dir, UAS1, PROXY);
    for (const dir of ['sent', 'received'] as const) w.feed(w.up(r486), dir, PROXY, UAC);
    expect(w.layer.size).toBe(2);
    expect(w.of('requestReceived').map((e) => e.retransmission)).toEqual([false, true, true]);
    expect(w.of('requestForwarded')).toHaveLength(1);
    expect(w.of('branchFailed')).toHaveLength(1);
    expect(w.of('allBranchesFailed')).toHaveLength(1);
    expect(w.of('allBranchesFailed')[0]?.message?.status).toBe(486);
    expect(w.of('finalRelayed').filter((e) => !e.retransmission)).toHaveLength(1);
  });

  it('tolerates missing copies: a relayed response without its request still fires, without a transaction', () => {
    const w = watch();
    w.feed(w.fwd, 'sent', PROXY, UAS1); // the received INVITE was never captured
    const r200 = response(w.fwd, 200, 'b1');
    w.feed(w.up(r200), 'sent', PROXY, UAC); // the 200 from UAS1 was never captured either
    const relayed = w.of('finalRelayed')[0];
    expect(relayed?.transaction).toBeUndefined();
    expect(relayed?.dialog?.state).toBe('confirmed');
    expect(w.of('requestForwarded')[0]?.transaction).toBeUndefined();
  });

  it('reports a CANCEL against the INVITE it cancels and tracks the CANCEL sent downstream', () => {
    const w = watch();
    w.feed(w.invite, 'received', UAC, PROXY);
    w.feed(w.fwd, 'sent', PROXY, UAS1);
    w.feed(response(w.fwd, 180, 'b1'), 'received', UAS1, PROXY);
    w.feed(request({ method: 'CANCEL', branch: 'z9hG4bKup' }), 'received', UAC, PROXY);
    const down = request({ method: 'CANCEL', branch: 'z9hG4bKdown', sentBy: '198.18.0.2:5060' });
    w.feed(down, 'sent', PROXY, UAS1);
    const cancel = w.of('cancelReceived')[0];
    expect(cancel?.transaction).toBe(w.of('requestReceived')[0]?.transaction);
    const branch = w.of('requestForwarded')[0]?.branch as { cancelSent?: boolean } | undefined;
    expect(branch?.cancelSent).toBe(true);
  });

  it('leaves no transaction behind once the clock passes the longest timer, whatever was missed', () => {
    const w = watch();
    w.feed(w.invite, 'received', UAC, PROXY);
    w.feed(w.fwd, 'sent', PROXY, UAS1);
    w.feed(response(w.fwd, 180, 'b1'), 'received', UAS1, PROXY);
    w.feed(request({ method: 'OPTIONS', branch: 'z9hG4bKo' }), 'received', UAC, PROXY);
    expect(w.layer.size).toBe(3);
    w.clock.advance(10 * 60_000);
    expect(w.layer.size).toBe(0);
    expect(w.clock.pending()).toBe(0);
    expect(w.of('transactionDestroyed')).toHaveLength(3);
  });

  describe('a response after its INVITE branch timed out (§17.1.1.2 Timer B)', () => {
    /** The INVITE forwarded, no 100 Trying mirrored, and Timer B (64*T1) fired here. */
    function timedOut() {
      const w = watch();
      w.feed(w.invite, 'received', UAC, PROXY);
      w.feed(w.fwd, 'sent', PROXY, UAS1);
      w.clock.advance(32_000);
      const failed = w.of('branchFailed');
      expect(failed.map((e) => e.outcome)).toEqual([{ kind: 'timeout', timer: 'B' }]);
      return { ...w, first: failed[0]?.branch, server: w.of('requestReceived')[0]?.transaction };
    }

    it('revives the branch on a late 183: the response has its branch, and its Timer C still ends it with branchFailed', () => {
      const w = timedOut();
      w.clock.advance(8_000);
      const r183 = response(w.fwd, 183, 'b1');
      w.feed(r183, 'received', UAS1, PROXY);
      w.feed(w.up(r183), 'sent', PROXY, UAC);
      expect(w.layer.stats.branchesRevived).toBe(1);
      expect(w.layer.stats.strayResponses).toBe(0);
      const late = w.of('responseReceived')[0];
      expect(late?.branch).toBeDefined();
      expect(late?.branch).not.toBe(w.first);
      expect(late?.branch?.request).toBe(w.first?.request);
      expect(late?.branch?.state).toBe('proceeding');
      expect(late?.transaction).toBe(w.server);
      expect(w.of('provisionalRelayed')[0]?.transaction).toBe(w.server);
      // The observed element's Timer C (> 3 min, §16.7 step 2) and the §9.1 wait after its
      // CANCEL: the revived branch ends by timeout, so holes its 183 opened are closed with it.
      w.clock.advance(181_000 + 32_000);
      const failed = w.of('branchFailed');
      expect(failed).toHaveLength(2);
      expect(failed[1]?.branch).toBe(late?.branch);
      expect(failed[1]?.outcome).toEqual({ kind: 'timeout', timer: 'cancel' });
      w.clock.advance(10 * 60_000);
      expect(w.layer.size).toBe(0);
      expect(w.clock.pending()).toBe(0);
    });

    it('a late 200 revives the branch into Accepted: no second branchFailed', () => {
      const w = timedOut();
      const r200 = response(w.fwd, 200, 'b1');
      w.feed(r200, 'received', UAS1, PROXY);
      w.feed(r200, 'received', UAS1, PROXY); // its mirror: absorbed by the revived branch
      w.feed(w.up(r200), 'sent', PROXY, UAC);
      expect(w.layer.stats.branchesRevived).toBe(1);
      const late = w.of('responseReceived');
      expect(late.map((e) => e.retransmission)).toEqual([false, true]);
      expect(late[0]?.branch?.state).toBe('accepted');
      expect(w.of('finalRelayed')[0]?.dialog?.state).toBe('confirmed');
      w.clock.advance(10 * 60_000);
      expect(w.of('branchFailed')).toHaveLength(1);
      expect(w.layer.size).toBe(0);
    });

    it('does not revive a branch once Timer C has passed since its timeout', () => {
      const w = timedOut();
      w.clock.advance(181_000);
      w.feed(response(w.fwd, 183, 'b1'), 'received', UAS1, PROXY);
      expect(w.layer.stats.branchesRevived).toBe(0);
      expect(w.layer.stats.strayResponses).toBe(1);
      expect(w.of('responseReceived')[0]?.branch).toBeUndefined();
    });

    it('does not revive a branch that ended with a final response (a late retransmission stays stray)', () => {
      const w = watch();
      w.feed(w.invite, 'received', UAC, PROXY);
      w.feed(w.fwd, 'sent', PROXY, UAS1);
      const r486 = response(w.fwd, 486, 'b1');
      w.feed(r486, 'received', UAS1, PROXY);
      w.clock.advance(32_000); // Timer D
      w.feed(r486, 'received', UAS1, PROXY);
      expect(w.layer.stats.branchesRevived).toBe(0);
      expect(w.layer.stats.strayResponses).toBe(1);
      expect(w.of('branchFailed')).toHaveLength(1);
    });
  });

  it('watches a UA: its INVITE sent is a client transaction, the responses received end it', () => {
    const w = watch();
    const inv = request({ branch: 'z9hG4bKua' });
    w.feed(inv, 'sent', UAC, UAS1);
    w.feed(response(inv, 183, 'b1'), 'received', UAS1, UAC);
    w.feed(response(inv, 486, 'b1'), 'received', UAS1, UAC);
    w.feed(request({ method: 'ACK', branch: 'z9hG4bKua', toTag: 'b1' }), 'sent', UAC, UAS1);
    expect(w.events.map((e) => e.name)).toEqual([
      'requestForwarded',
      'responseReceived',
      'responseReceived',
      'transactionCompleted',
      'branchFailed',
    ]);
    expect(w.of('responseReceived')[0]?.dialog?.state).toBe('early');
    expect(w.of('branchFailed')[0]?.outcome).toEqual({
      kind: 'response',
      status: 486,
      local: false,
    });
    expect(w.layer.stats.duplicatesObserved).toBe(1); // the ACK of the 486 belongs to the INVITE
    w.clock.advance(32_000);
    expect(w.layer.size).toBe(0);
  });

  it('links an RFC 2543 CANCEL sent downstream to its INVITE', () => {
    const w = watch();
    const inv = request({ branch: '' });
    w.feed(inv, 'sent', UAC, UAS1);
    w.feed(response(inv, 180, 'b1'), 'received', UAS1, UAC);
    w.feed(request({ method: 'CANCEL', branch: '' }), 'sent', UAC, UAS1);
    const branch = w.of('requestForwarded')[0]?.branch as { cancelSent?: boolean } | undefined;
    expect(branch?.cancelSent).toBe(true);
  });

  it('cannot send: receive() and forwarding are refused in observer mode', () => {
    const w = watch();
    expect(() => w.layer.receive(w.invite, UAC)).toThrow(
      expect.objectContaining({ code: 'TXN_ERR_BAD_USAGE' }) as Error,
    );
    expect(() => w.layer.sendRequest(w.invite, UAS1)).toThrow(
      expect.objectContaining({ code: 'TXN_ERR_BAD_USAGE' }) as Error,
    );
  });
});
