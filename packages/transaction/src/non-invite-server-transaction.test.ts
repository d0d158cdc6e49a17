import { describe, expect, it } from 'vitest';
import { NonInviteServerTransaction } from './non-invite-server-transaction.js';
import type { ServerTransaction } from './proxy.js';
import { TCP_UAC, UAC, harness, request } from '../test/helpers.js';

function start(transport: 'UDP' | 'TCP' = 'UDP') {
  let server: ServerTransaction | undefined;
  const h = harness({ user: { request: (t) => (server = t) } });
  const reg = request({ method: 'REGISTER', transport, branch: 'z9hG4bKnist1' });
  h.layer.receive(reg, transport === 'UDP' ? UAC : TCP_UAC);
  if (!(server instanceof NonInviteServerTransaction)) throw new Error('expected a NIST');
  return { ...h, reg, txn: server };
}

describe('non-INVITE server transaction (RFC 3261 §17.2.2)', () => {
  it('is initialized in Trying and discards request retransmissions there', () => {
    const { txn, layer, reg, transport, of } = start();
    expect(txn.state).toBe('trying');
    layer.receive(reg.clone(), UAC);
    expect(transport.summary()).toEqual([]);
    expect(of('requestReceived').map((e) => e.retransmission)).toEqual([false, true]);
  });

  it('MUST enter Proceeding on a provisional from the TU and resend it on request retransmissions', () => {
    const { txn, layer, reg, transport } = start();
    layer.reply(txn, 100);
    expect(txn.state).toBe('proceeding');
    layer.receive(reg.clone(), UAC);
    expect(transport.summary()).toEqual(['100', '100']);
  });

  it('MUST enter Completed on a final response and pass it again for each request retransmission', () => {
    const { txn, layer, reg, transport } = start();
    layer.reply(txn, 200);
    expect(txn.state).toBe('completed');
    layer.receive(reg.clone(), UAC);
    layer.receive(reg.clone(), UAC);
    expect(transport.summary()).toEqual(['200', '200', '200']);
  });

  it('MUST set Timer J to 64*T1 over UDP and transition to Terminated when it fires', () => {
    const { clock, txn, layer } = start();
    layer.reply(txn, 200);
    clock.advance(31_999);
    expect(txn.state).toBe('completed');
    clock.advance(1);
    expect(txn.state).toBe('terminated');
    expect(layer.size).toBe(0);
  });

  it('sets Timer J to zero over a reliable transport', () => {
    const { txn, layer } = start('TCP');
    layer.reply(txn, 200);
    expect(txn.state).toBe('terminated');
  });

  it('moves to Terminated and informs the TU on a transport error', () => {
    const { txn, layer, transport, of } = start();
    transport.fail = () => 'throw';
    layer.reply(txn, 200);
    expect(txn.state).toBe('terminated');
    expect(of('transactionDestroyed')[0]?.outcome?.kind).toBe('transport-error');
  });

  it('ignores responses from the TU once Completed', () => {
    const { txn, layer, transport } = start();
    layer.reply(txn, 200);
    layer.reply(txn, 500);
    expect(transport.summary()).toEqual(['200']);
  });

  it('ends a transaction whose TU never answers (guard) without sending', () => {
    const { txn, clock, transport, layer } = start();
    clock.advance(64_000);
    expect(txn.state).toBe('terminated');
    expect(txn.outcome).toEqual({ kind: 'aborted', reason: 'no final response from the TU' });
    expect(transport.summary()).toEqual([]);
    expect(layer.size).toBe(0);
  });
});
