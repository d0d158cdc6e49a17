import { describe, expect, it } from 'vitest';
import { InviteClientTransaction } from './invite-client-transaction.js';
import { UAS1, harness, request, response } from '../test/helpers.js';

const TCP_DEST = { transport: 'TCP', host: '198.18.0.3', port: 5060 };

function start(transport: 'UDP' | 'TCP' = 'UDP') {
  const h = harness();
  const invite = request({ transport, branch: 'z9hG4bKict1' });
  const txn = h.layer.sendRequest(invite, transport === 'UDP' ? UAS1 : TCP_DEST);
  if (!(txn instanceof InviteClientTransaction)) throw new Error('expected an ICT');
  return { ...h, invite, txn };
}

describe('INVITE client transaction (RFC 3261 §17.1.1, RFC 6026)', () => {
  it('MUST enter Calling and pass the request to the transport', () => {
    const { txn, transport } = start();
    expect(txn.state).toBe('calling');
    expect(transport.summary()).toEqual(['INVITE']);
  });

  it('MUST retransmit on Timer A with intervals that double after each transmission over UDP', () => {
    const { clock, transport } = start();
    clock.advance(31_999);
    expect(transport.times('INVITE')).toEqual([0, 500, 1500, 3500, 7500, 15500, 31500]);
  });

  it('SHOULD NOT start Timer A over a reliable transport', () => {
    const { clock, transport, txn } = start('TCP');
    clock.advance(31_999);
    expect(transport.times('INVITE')).toEqual([0]);
    expect(txn.runningTimers()).not.toContain('A');
  });

  it('SHOULD inform the TU that a timeout has occurred when Timer B fires in Calling', () => {
    const { clock, txn, layer, of } = start();
    clock.advance(32_000);
    expect(txn.state).toBe('terminated');
    expect(txn.outcome).toEqual({ kind: 'timeout', timer: 'B' });
    expect(of('branchFailed')[0]?.outcome).toEqual({ kind: 'timeout', timer: 'B' });
    expect(layer.size).toBe(0);
    expect(of('transactionDestroyed')).toHaveLength(1);
  });

  it('transitions to Proceeding on a provisional and SHOULD NOT retransmit the request any longer', () => {
    const { clock, transport, txn, invite, layer, of } = start();
    clock.advance(600);
    layer.receive(response(invite, 180), UAS1);
    expect(txn.state).toBe('proceeding');
    clock.advance(60_000);
    expect(transport.times('INVITE')).toEqual([0, 500]);
    expect(of('responseReceived').map((e) => e.message?.status)).toEqual([180]);
    expect(txn.state).toBe('proceeding');
  });

  it('MUST pass every provisional to the TU, flagging a repeated one as a retransmission', () => {
    const { txn, invite, layer, of } = start();
    layer.receive(response(invite, 100), UAS1);
    layer.receive(response(invite, 180), UAS1);
    layer.receive(response(invite, 180), UAS1);
    expect(txn.state).toBe('proceeding');
    expect(of('responseReceived').map((e) => [e.message?.status, e.retransmission])).toEqual([
      [100, false],
      [180, false],
      [180, true],
    ]);
  });

  it('MUST transition to Completed on 300-699, pass the response up and generate an ACK', () => {
    const { transport, txn, invite, layer, of } = start();
    layer.receive(response(invite, 486), UAS1);
    expect(txn.state).toBe('completed');
    expect(of('responseReceived')[0]?.message?.status).toBe(486);
    const ack = transport.sent.at(-1)?.message;
    expect(ack?.method).toBe('ACK');
    // §17.1.1.3: one Via equal to the INVITE's top Via, To from the response, same CSeq number.
    expect(ack?.via()).toHaveLength(1);
    expect(ack?.topVia()?.branch).toBe('z9hG4bKict1');
    expect(ack?.to()?.tag).toBe('btag');
    expect(ack?.cseq()).toEqual({ seq: 1, method: 'ACK' });
    expect(ack?.requestUri).toBe(invite.requestUri);
    expect(txn.outcome).toEqual({ kind: 'response', status: 486, local: false });
  });

  it('MUST generate the ACK even if the transport is reliable, and leaves Completed at once (Timer D = 0)', () => {
    const { transport, txn, invite, layer } = start('TCP');
    layer.receive(response(invite, 404), TCP_DEST);
    expect(transport.summary()).toEqual(['INVITE', 'ACK']);
    expect(txn.state).toBe('terminated');
    expect(layer.size).toBe(0);
  });

  it('MUST re-pass the ACK for a retransmitted final response in Completed, without passing it to the TU', () => {
    const { transport, invite, layer, of } = start();
    layer.receive(response(invite, 486), UAS1);
    layer.receive(response(invite, 486), UAS1);
    expect(transport.summary()).toEqual(['INVITE', 'ACK', 'ACK']);
    expect(of('responseReceived')).toHaveLength(1);
  });

  it('MUST move to Terminated when Timer D fires (32 s over UDP)', () => {
    const { clock, txn, invite, layer } = start();
    layer.receive(response(invite, 486), UAS1);
    clock.advance(31_999);
    expect(txn.state).toBe('completed');
    clock.advance(1);
    expect(txn.state).toBe('terminated');
  });

  it('MUST pass a 2xx to the TU and move to Accepted, without an ACK (RFC 6026)', () => {
    const { transport, txn, invite, layer, of } = start();
    layer.receive(response(invite, 200), UAS1);
    expect(txn.state).toBe('accepted');
    expect(transport.summary()).toEqual(['INVITE']);
    expect(of('responseReceived').map((e) => e.message?.status)).toEqual([200]);
    expect(of('branchFailed')).toHaveLength(0);
  });

  it('forgets the last provisional once a final response arrived (2xx or 300-699)', () => {
    for (const status of [200, 486]) {
      const { txn, invite, layer } = start();
      layer.receive(response(invite, 180), UAS1);
      expect(txn.lastProvisional?.status).toBe(180);
      layer.receive(response(invite, status), UAS1);
      expect(txn.state).toBe(status === 200 ? 'accepted' : 'completed');
      expect(txn.lastProvisional).toBeUndefined();
    }
  });

  it('MUST pass 2xx retransmissions and forked 2xx received in Accepted up to the TU', () => {
    const { txn, invite, layer, of } = start();
    layer.receive(response(invite, 200, 'fork1'), UAS1);
    layer.receive(response(invite, 200, 'fork1'), UAS1);
    layer.receive(response(invite, 200, 'fork2'), UAS1);
    layer.receive(response(invite, 486), UAS1);
    expect(txn.state).toBe('accepted');
    expect(of('responseReceived').map((e) => [e.message?.to()?.tag, e.retransmission])).toEqual([
      ['fork1', false],
      ['fork1', true],
      ['fork2', true],
    ]);
  });

  it('MUST move to Terminated when Timer M fires in Accepted', () => {
    const { clock, txn, invite, layer } = start('TCP');
    layer.receive(response(invite, 200), TCP_DEST);
    clock.advance(31_999);
    expect(txn.state).toBe('accepted');
    clock.advance(1);
    expect(txn.state).toBe('terminated');
  });

  it('SHOULD inform the TU of a transport failure and transition directly to Terminated', () => {
    const h = harness();
    h.transport.fail = () => 'throw';
    const txn = h.layer.sendRequest(request(), UAS1);
    expect(txn?.state).toBe('terminated');
    expect(txn?.outcome?.kind).toBe('transport-error');
    expect(h.of('branchFailed')[0]?.outcome?.kind).toBe('transport-error');
    expect(h.errors.map((e) => (e as { code?: string }).code)).toContain('TXN_ERR_TRANSPORT');
    expect(h.layer.size).toBe(0);
  });

  it('treats an asynchronous send rejection as a transport failure', async () => {
    const h = harness();
    h.transport.fail = () => 'reject';
    const txn = h.layer.sendRequest(request(), UAS1);
    expect(txn?.state).toBe('calling');
    await Promise.resolve();
    await Promise.resolve();
    expect(txn?.state).toBe('terminated');
    expect(txn?.outcome?.kind).toBe('transport-error');
  });

  it('behaves as if a 408 was received when Timer C fires before any provisional (§16.8)', () => {
    const h = harness({ timers: { C: 10_000 } });
    const txn = h.layer.sendRequest(request({ transport: 'TCP' }), TCP_DEST);
    h.clock.advance(10_000);
    expect(txn?.state).toBe('terminated');
    expect(txn?.outcome).toEqual({ kind: 'timeout', timer: 'C' });
  });

  it('MUST generate a CANCEL when Timer C fires after a provisional, and is reset by each provisional other than 100', () => {
    const { clock, transport, txn, invite, layer } = start();
    layer.receive(response(invite, 180), UAS1);
    clock.advance(100_000);
    layer.receive(response(invite, 183), UAS1);
    clock.advance(180_999);
    expect(transport.summary()).not.toContain('CANCEL');
    clock.advance(1);
    expect(transport.summary()).toContain('CANCEL');
    const cancel = transport.sent.find((s) => s.message.method === 'CANCEL')?.message;
    expect(cancel?.topVia()?.branch).toBe('z9hG4bKict1');
    expect(cancel?.cseq()).toEqual({ seq: 1, method: 'CANCEL' });
    expect(txn.cancelSent).toBe(true);
  });

  it('SHOULD destroy the transaction when no final response arrives 64*T1 after its CANCEL (§9.1)', () => {
    const { clock, txn, invite, layer } = start();
    layer.receive(response(invite, 180), UAS1);
    layer.sendCancel(txn);
    clock.advance(31_999);
    expect(txn.state).toBe('proceeding');
    clock.advance(1);
    expect(txn.state).toBe('terminated');
    expect(txn.outcome).toEqual({ kind: 'timeout', timer: 'cancel' });
  });

  it('MUST NOT send a CANCEL before a provisional, and sends it with the first one (§9.1)', () => {
    const { transport, txn, invite, layer } = start();
    layer.sendCancel(txn);
    expect(transport.summary()).toEqual(['INVITE']);
    layer.receive(response(invite, 100), UAS1);
    expect(transport.summary()).toEqual(['INVITE', 'CANCEL']);
    expect(txn.cancelSent).toBe(true);
  });

  it('checks every edge against its table', () => {
    const { txn } = start();
    expect(txn.canTransition('proceeding')).toBe(true);
    expect(txn.canTransition('confirmed' as never)).toBe(false);
    const forced = txn as unknown as { transition(to: string): void };
    expect(() => forced.transition('calling')).toThrow(
      expect.objectContaining({ code: 'TXN_ERR_BAD_TRANSITION' }) as Error,
    );
  });
});
