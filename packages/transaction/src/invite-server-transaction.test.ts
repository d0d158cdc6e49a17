import { describe, expect, it } from 'vitest';
import { InviteServerTransaction } from './invite-server-transaction.js';
import type { ServerTransaction } from './proxy.js';
import { TCP_UAC, UAC, harness, request } from '../test/helpers.js';
import type { TransactionLayerOptions } from './layer.js';

function start(transport: 'UDP' | 'TCP' = 'UDP', options: Partial<TransactionLayerOptions> = {}) {
  let server: ServerTransaction | undefined;
  const h = harness(options);
  h.layer.on('requestReceived', (e) => {
    if (!e.retransmission) server = e.transaction as ServerTransaction;
  });
  const invite = request({ transport, branch: 'z9hG4bKist1' });
  h.layer.receive(invite, transport === 'UDP' ? UAC : TCP_UAC);
  if (!(server instanceof InviteServerTransaction)) throw new Error('expected an IST');
  return { ...h, invite, txn: server };
}

describe('INVITE server transaction (RFC 3261 §17.2.1, RFC 6026)', () => {
  it('enters Proceeding and passes the request to the TU', () => {
    const { txn, of } = start();
    expect(txn.state).toBe('proceeding');
    expect(of('requestReceived')).toHaveLength(1);
    expect(of('requestReceived')[0]?.retransmission).toBe(false);
  });

  it('MUST generate a 100 (Trying) unless the TU answers within 200 ms', () => {
    const { clock, transport } = start();
    clock.advance(199);
    expect(transport.summary()).toEqual([]);
    clock.advance(1);
    expect(transport.summary()).toEqual(['100']);
  });

  it('does not send 100 (Trying) when the TU answered within 200 ms', () => {
    const { clock, transport, layer, txn } = start();
    layer.reply(txn, 180);
    clock.advance(1000);
    expect(transport.summary()).toEqual(['180']);
  });

  it('MAY send 100 (Trying) at once (trying: immediate)', () => {
    const { transport } = start('UDP', { trying: 'immediate' });
    expect(transport.summary()).toEqual(['100']);
  });

  it('MUST pass the most recent provisional to the transport when the request is retransmitted in Proceeding', () => {
    const { transport, layer, txn, invite, of } = start();
    layer.reply(txn, 180);
    layer.reply(txn, 183);
    layer.receive(invite.clone(), UAC);
    expect(transport.summary()).toEqual(['180', '183', '183']);
    expect(of('requestReceived').map((e) => e.retransmission)).toEqual([false, true]);
  });

  it('forgets the last provisional once a final response is sent (only Proceeding resends it)', () => {
    const { layer, txn } = start();
    layer.reply(txn, 180);
    expect(txn.lastProvisional?.status).toBe(180);
    layer.reply(txn, 200);
    expect(txn.state).toBe('accepted');
    expect(txn.lastProvisional).toBeUndefined();
    expect(txn.finalResponse?.status).toBe(200);
  });

  it('sends responses to the source address and, with rport, the source port (§18.2.2, RFC 3581)', () => {
    const h = harness();
    let txn: ServerTransaction | undefined;
    h.layer.on('requestReceived', (e) => void (txn = e.transaction as ServerTransaction));
    h.layer.receive(request({ sentBy: 'alice.example.com:5070;rport' }), {
      transport: 'UDP',
      host: '198.18.5.5',
      port: 40000,
    });
    if (txn === undefined) throw new Error('no transaction');
    h.layer.reply(txn, 180);
    expect(h.transport.sent[0]?.destination).toEqual({
      transport: 'UDP',
      host: '198.18.5.5',
      port: 40000,
    });
  });

  it('MUST enter Completed on 300-699 and retransmit on Timer G (T1 doubling up to T2)', () => {
    const { clock, transport, layer, txn } = start();
    layer.reply(txn, 486);
    expect(txn.state).toBe('completed');
    clock.advance(16_000);
    expect(transport.times('486')).toEqual([0, 500, 1500, 3500, 7500, 11500, 15500]);
  });

  it('does not set Timer G over a reliable transport', () => {
    const { clock, transport, layer, txn } = start('TCP');
    layer.reply(txn, 486);
    clock.advance(31_000);
    expect(transport.times('486')).toEqual([0]);
    expect(transport.sent[0]?.destination).toEqual(TCP_UAC);
  });

  it('SHOULD pass the response to the transport when the request is retransmitted in Completed', () => {
    const { transport, layer, txn, invite } = start('TCP');
    layer.reply(txn, 486);
    layer.receive(invite.clone(), TCP_UAC);
    expect(transport.summary()).toEqual(['486', '486']);
  });

  it('MUST transition to Terminated and indicate a failure to the TU when Timer H fires', () => {
    const { clock, layer, txn, of } = start();
    layer.reply(txn, 486);
    clock.advance(32_000);
    expect(txn.state).toBe('terminated');
    const destroyed = of('transactionDestroyed')[0];
    expect(destroyed?.outcome).toEqual({ kind: 'timeout', timer: 'H' });
    expect(layer.size).toBe(0);
  });

  it('MUST transition to Confirmed on ACK, ceasing retransmissions, and to Terminated on Timer I (T4)', () => {
    const { clock, transport, layer, txn, of } = start();
    const final = layer.reply(txn, 486);
    layer.receive(request({ method: 'ACK', branch: 'z9hG4bKist1', toTag: final.to()?.tag }), UAC);
    expect(txn.state).toBe('confirmed');
    expect(of('ackReceived')[0]?.endToEnd).toBe(false);
    clock.advance(4_999);
    expect(transport.times('486')).toEqual([0]);
    expect(txn.state).toBe('confirmed');
    clock.advance(1);
    expect(txn.state).toBe('terminated');
  });

  it('absorbs further ACKs in Confirmed', () => {
    const { layer, txn, of } = start();
    layer.reply(txn, 486);
    const ack = request({ method: 'ACK', branch: 'z9hG4bKist1' });
    layer.receive(ack, UAC);
    layer.receive(ack.clone(), UAC);
    expect(of('ackReceived')).toHaveLength(1);
    expect(layer.stats.strayAcks).toBe(0);
  });

  it('sets Timer I to zero over a reliable transport', () => {
    const { layer, txn } = start('TCP');
    layer.reply(txn, 486);
    layer.receive(request({ method: 'ACK', transport: 'TCP', branch: 'z9hG4bKist1' }), TCP_UAC);
    expect(txn.state).toBe('terminated');
  });

  it('MUST pass a 2xx to the transport and move to Accepted, without retransmitting it (RFC 6026)', () => {
    const { clock, transport, layer, txn, of } = start();
    layer.reply(txn, 200);
    expect(txn.state).toBe('accepted');
    clock.advance(31_000);
    expect(transport.times('200')).toEqual([0]);
    expect(of('transactionCompleted')[0]?.outcome).toEqual({
      kind: 'response',
      status: 200,
      local: true,
    });
  });

  it('MUST pass further 2xx from the TU to the transport in Accepted and absorb INVITE retransmissions', () => {
    const { transport, layer, txn, invite } = start();
    layer.reply(txn, 200);
    layer.reply(txn, 200);
    layer.receive(invite.clone(), UAC);
    layer.reply(txn, 486);
    expect(transport.summary()).toEqual(['200', '200']);
  });

  it('passes the ACK of the 2xx to the TU in Accepted, matched by dialog since its branch is new', () => {
    const acks: unknown[] = [];
    const { layer, txn, of } = start('UDP', {
      user: { request: () => undefined, ack: (_m, _s, t) => acks.push(t) },
    });
    const ok = layer.reply(txn, 200);
    layer.receive(request({ method: 'ACK', branch: 'z9hG4bKnewack', toTag: ok.to()?.tag }), UAC);
    expect(of('ackReceived')[0]?.endToEnd).toBe(true);
    expect(of('ackReceived')[0]?.transaction).toBe(txn);
    expect(acks).toHaveLength(1);
  });

  it('MUST transition to Terminated when Timer L fires in Accepted', () => {
    const { clock, layer, txn } = start('TCP');
    layer.reply(txn, 200);
    clock.advance(32_000);
    expect(txn.state).toBe('terminated');
    expect(layer.size).toBe(0);
  });

  it('retransmits a 2xx for the UAS core from T1 doubling to T2 until the ACK (§13.3.1.4)', () => {
    const { clock, transport, layer, txn } = start();
    const ok = layer.reply(txn, 200, 'OK', [], { retransmit2xx: true });
    clock.advance(4_000);
    expect(transport.times('200')).toEqual([0, 500, 1500, 3500]);
    layer.receive(request({ method: 'ACK', branch: 'z9hG4bKack2', toTag: ok.to()?.tag }), UAC);
    clock.advance(10_000);
    expect(transport.times('200')).toEqual([0, 500, 1500, 3500]);
  });

  it('SHOULD inform the TU and move to Terminated on a transport error', () => {
    const { transport, layer, txn, of } = start();
    transport.fail = () => 'throw';
    layer.reply(txn, 486);
    expect(txn.state).toBe('terminated');
    expect(of('transactionDestroyed')[0]?.outcome?.kind).toBe('transport-error');
  });

  it('answers 408 itself when the TU never answers (guard, then gone)', () => {
    const { clock, transport, layer, txn } = start('TCP', { trying: 'never' });
    clock.advance(181_000 + 2 * 32_000);
    expect(transport.summary()).toEqual(['408']);
    expect(txn.state).toBe('completed');
    clock.advance(32_000); // Timer H: the ACK never came
    expect(txn.state).toBe('terminated');
    expect(layer.size).toBe(0);
  });
});
