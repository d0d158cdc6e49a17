import { describe, expect, it } from 'vitest';
import { TransactionLayer } from './layer.js';
import type { ServerTransaction } from './proxy.js';
import { UAC, UAS1, harness, request, response } from '../test/helpers.js';

describe('transaction layer', () => {
  it('needs a transport in active mode', () => {
    expect(() => new TransactionLayer()).toThrow(
      expect.objectContaining({ code: 'TXN_ERR_BAD_USAGE' }) as Error,
    );
  });

  it('passes a new request to the TU once and retransmissions to its transaction', () => {
    const seen: ServerTransaction[] = [];
    const h = harness({ user: { request: (t) => void seen.push(t) } });
    const invite = request();
    h.layer.receive(invite, UAC);
    h.layer.receive(invite.clone(), UAC);
    expect(seen).toHaveLength(1);
    expect(h.layer.size).toBe(1);
    expect(h.layer.stats.retransmissionsReceived).toBe(1);
  });

  it('matches RFC 2543 requests (no magic cookie) by Request-URI, tags, Call-ID, CSeq and Via', () => {
    const seen: ServerTransaction[] = [];
    const h = harness({ user: { request: (t) => void seen.push(t) } });
    h.layer.receive(request({ branch: '' }), UAC);
    h.layer.receive(request({ branch: '' }), UAC);
    h.layer.receive(request({ branch: '', uri: 'sip:carol@example.com' }), UAC);
    h.layer.receive(request({ branch: '', uri: 'sip:carol@example.com' }), UAC);
    expect(seen.map((t) => t.request.requestUri)).toEqual([
      'sip:bob@example.com',
      'sip:carol@example.com',
    ]);
    expect(h.layer.size).toBe(2);
    const server = seen[0];
    if (server === undefined) throw new Error('no server transaction');
    const final = h.layer.reply(server, 486);
    h.layer.receive(request({ method: 'ACK', branch: '', toTag: 'wrong' }), UAC);
    expect(server.state).toBe('completed');
    h.layer.receive(request({ method: 'ACK', branch: '', toTag: final.to()?.tag }), UAC);
    expect(server.state).toBe('confirmed');
  });

  it('answers a CANCEL matching no transaction through the TU (481 or stateless forwarding is its call)', () => {
    const seen: ServerTransaction[] = [];
    const h = harness({ user: { request: (t) => void seen.push(t) } });
    h.layer.receive(request({ method: 'CANCEL', branch: 'z9hG4bKnone' }), UAC);
    expect(seen.map((t) => t.method)).toEqual(['CANCEL']);
    expect(h.of('cancelReceived')[0]?.transaction).toBeUndefined();
  });

  it('as a UAS, answers a matched CANCEL with 200 and the INVITE with 487 (§9.2)', () => {
    const h = harness();
    h.layer.receive(request({ branch: 'z9hG4bKinv' }), UAC);
    h.layer.receive(request({ method: 'CANCEL', branch: 'z9hG4bKinv' }), UAC);
    expect(h.transport.summary()).toEqual(['200', '487']);
    expect(h.transport.sent.map((s) => s.message.method)).toEqual(['CANCEL', 'INVITE']);
  });

  it('bounds the table: past maxTransactions it answers 503 statelessly and creates nothing', () => {
    const h = harness({ maxTransactions: 2 });
    h.layer.receive(request({ branch: 'z9hG4bK1' }), UAC);
    h.layer.receive(request({ branch: 'z9hG4bK2' }), UAC);
    h.layer.receive(request({ branch: 'z9hG4bK3' }), UAC);
    expect(h.layer.size).toBe(2);
    expect(h.layer.stats.rejectedFull).toBe(1);
    expect(h.transport.summary()).toEqual(['503']);
    expect(h.transport.sent[0]?.message.get('retry-after')).toBe('5');
    expect(h.layer.sendRequest(request({ branch: 'z9hG4bK4' }), UAS1)).toBeUndefined();
  });

  it('gives the table-full 503 the Retry-After it is told, or none with 0', () => {
    const none = harness({ maxTransactions: 1, tableFullRetryAfter: 0 });
    none.layer.receive(request({ branch: 'z9hG4bK1' }), UAC);
    none.layer.receive(request({ branch: 'z9hG4bK2' }), UAC);
    expect(none.transport.summary()).toEqual(['503']);
    expect(none.transport.sent[0]?.message.has('retry-after')).toBe(false);
    const sixty = harness({ maxTransactions: 1, tableFullRetryAfter: 60 });
    sixty.layer.receive(request({ branch: 'z9hG4bK1' }), UAC);
    sixty.layer.receive(request({ branch: 'z9hG4bK2' }), UAC);
    expect(sixty.transport.sent[0]?.message.get('retry-after')).toBe('60');
    for (const bad of [-1, 1.5, Number.NaN]) {
      expect(() => harness({ tableFullRetryAfter: bad })).toThrow(/tableFullRetryAfter/);
    }
    // Asked at each 503: a reloaded setting applies to the next one; a bad value sends none.
    let setting = 0;
    const live = harness({ maxTransactions: 1, tableFullRetryAfter: () => setting });
    live.layer.receive(request({ branch: 'z9hG4bK1' }), UAC);
    live.layer.receive(request({ branch: 'z9hG4bK2' }), UAC);
    setting = 7;
    live.layer.receive(request({ branch: 'z9hG4bK3' }), UAC);
    setting = -3;
    live.layer.receive(request({ branch: 'z9hG4bK4' }), UAC);
    expect(live.transport.sent.map((s) => s.message.get('retry-after') ?? '-')).toEqual([
      '-',
      '7',
      '-',
    ]);
  });

  it('passes a stray response and an ACK for an unknown 2xx to the core', () => {
    const strays: number[] = [];
    const acks: string[] = [];
    const h = harness({
      user: { response: (m) => void strays.push(m.status), ack: (m) => void acks.push(m.method) },
    });
    h.layer.receive(response(request({ branch: 'z9hG4bKnobody' }), 200), UAS1);
    h.layer.receive(request({ method: 'ACK', branch: 'z9hG4bKack', toTag: 'b' }), UAC);
    expect(strays).toEqual([200]);
    expect(acks).toEqual(['ACK']);
    expect(h.of('ackReceived')[0]?.endToEnd).toBe(true);
    expect(h.of('ackReceived')[0]?.transaction).toBeUndefined();
  });

  it('drops a message without Via or CSeq without throwing', () => {
    const h = harness();
    const r = request();
    r.removeHeader('cseq');
    expect(() => h.layer.receive(r, UAC)).not.toThrow();
    expect(h.layer.stats.badMessages).toBe(1);
    expect(h.layer.size).toBe(0);
  });

  it('fires events with direction, addresses, transport, ids and dialog identity', () => {
    const h = harness();
    const invite = request({ branch: 'z9hG4bKev' });
    h.layer.receive(invite, UAC);
    const e = h.of('requestReceived')[0];
    expect(e?.direction).toBe('received');
    expect(e?.source).toEqual(UAC);
    expect(e?.transport).toBe('UDP');
    expect(e?.transactionId).toBe([...h.layer.transactions()][0]?.id);
    expect(e?.branchId).toBeUndefined();
    expect(e?.dialog).toMatchObject({
      callId: 'call-1@198.18.0.1',
      fromTag: 'atag',
      state: 'none',
    });
    expect(e?.observed).toBe(false);
    expect(e?.time).toBe(0);
  });

  it('destroys every transaction once the clock passes the longest timer (no leak)', () => {
    const h = harness();
    for (let i = 0; i < 20; i++) {
      h.layer.receive(
        request({ branch: `z9hG4bKs${i}`, method: i % 2 ? 'INVITE' : 'OPTIONS' }),
        UAC,
      );
      h.layer.sendRequest(
        request({ branch: `z9hG4bKc${i}`, method: i % 2 ? 'INVITE' : 'OPTIONS' }),
        UAS1,
      );
    }
    expect(h.layer.size).toBe(40);
    h.clock.advance(10 * 60_000);
    expect(h.layer.size).toBe(0);
    expect(h.clock.pending()).toBe(0);
    expect(h.of('transactionDestroyed')).toHaveLength(40);
    expect(h.of('transactionCompleted')).toHaveLength(40);
  });

  it('close() aborts every live transaction and clears its timers', () => {
    const h = harness();
    h.layer.receive(request({ branch: 'z9hG4bKa' }), UAC);
    h.layer.sendRequest(request({ branch: 'z9hG4bKb' }), UAS1);
    h.layer.close();
    expect(h.layer.size).toBe(0);
    expect(h.clock.pending()).toBe(0);
    expect(h.of('transactionDestroyed').map((e) => e.outcome?.kind)).toEqual([
      'aborted',
      'aborted',
    ]);
  });

  it('lets a listener unsubscribe itself during dispatch without skipping the next one', () => {
    const h = harness();
    const calls: string[] = [];
    const off = h.layer.on('requestReceived', () => {
      calls.push('first');
      off();
    });
    h.layer.on('requestReceived', () => void calls.push('second'));
    h.layer.receive(request({ branch: 'z9hG4bK1' }), UAC);
    h.layer.receive(request({ branch: 'z9hG4bK2' }), UAC);
    expect(calls).toEqual(['first', 'second', 'second']);
  });

  it('unsubscribes a listener', () => {
    const h = harness();
    let n = 0;
    const off = h.layer.on('requestReceived', () => void n++);
    h.layer.receive(request({ branch: 'z9hG4bK1' }), UAC);
    off();
    h.layer.receive(request({ branch: 'z9hG4bK2' }), UAC);
    expect(n).toBe(1);
  });
});
