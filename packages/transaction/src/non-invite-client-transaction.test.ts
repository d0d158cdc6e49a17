import { describe, expect, it } from 'vitest';
import { NonInviteClientTransaction } from './non-invite-client-transaction.js';
import { UAS1, harness, request, response } from '../test/helpers.js';

const TCP_DEST = { transport: 'TCP', host: '198.18.0.3', port: 5060 };

function start(transport: 'UDP' | 'TCP' = 'UDP') {
  const h = harness();
  const bye = request({ method: 'BYE', transport, branch: 'z9hG4bKnict1', toTag: 'btag', cseq: 2 });
  const txn = h.layer.sendRequest(bye, transport === 'UDP' ? UAS1 : TCP_DEST);
  if (!(txn instanceof NonInviteClientTransaction)) throw new Error('expected a NICT');
  return { ...h, bye, txn };
}

describe('non-INVITE client transaction (RFC 3261 §17.1.2)', () => {
  it('MUST pass the request to the transport and enter Trying', () => {
    const { txn, transport } = start();
    expect(txn.state).toBe('trying');
    expect(transport.summary()).toEqual(['BYE']);
  });

  it('retransmits on Timer E with an interval that doubles until it reaches T2', () => {
    const { clock, transport } = start();
    clock.advance(16_000);
    expect(transport.times('BYE')).toEqual([0, 500, 1500, 3500, 7500, 11500, 15500]);
  });

  it('does not retransmit over a reliable transport', () => {
    const { clock, transport } = start('TCP');
    clock.advance(31_999);
    expect(transport.times('BYE')).toEqual([0]);
  });

  it('SHOULD inform the TU about the timeout and enter Terminated when Timer F fires', () => {
    const { clock, txn, of, layer } = start();
    clock.advance(31_999);
    expect(txn.state).toBe('trying');
    clock.advance(1);
    expect(txn.state).toBe('terminated');
    expect(of('branchFailed')[0]?.outcome).toEqual({ kind: 'timeout', timer: 'F' });
    expect(layer.size).toBe(0);
  });

  it('MUST pass a provisional to the TU and SHOULD move to Proceeding, where Timer E is reset with T2', () => {
    const { clock, transport, txn, bye, layer, of } = start();
    clock.advance(600); // E fired at 500; next at 1500
    layer.receive(response(bye, 100), UAS1);
    expect(txn.state).toBe('proceeding');
    expect(of('responseReceived')).toHaveLength(1);
    clock.advance(10_000);
    // 1500 (the pending E), then every T2
    expect(transport.times('BYE')).toEqual([0, 500, 1500, 5500, 9500]);
  });

  it('keeps Timer F running in Proceeding', () => {
    const { clock, txn, bye, layer } = start();
    layer.receive(response(bye, 100), UAS1);
    clock.advance(32_000);
    expect(txn.state).toBe('terminated');
    expect(txn.outcome).toEqual({ kind: 'timeout', timer: 'F' });
  });

  it('MUST pass a final response to the TU and transition to Completed, then Terminated on Timer K (T4)', () => {
    const { clock, txn, bye, layer, of, transport } = start();
    layer.receive(response(bye, 200), UAS1);
    expect(txn.state).toBe('completed');
    expect(of('transactionCompleted')[0]?.outcome).toEqual({
      kind: 'response',
      status: 200,
      local: false,
    });
    clock.advance(4_999);
    expect(txn.state).toBe('completed');
    expect(transport.times('BYE')).toEqual([0]);
    clock.advance(1);
    expect(txn.state).toBe('terminated');
  });

  it('buffers response retransmissions in Completed without passing them to the TU', () => {
    const { txn, bye, layer, of } = start();
    layer.receive(response(bye, 200), UAS1);
    layer.receive(response(bye, 200), UAS1);
    expect(txn.state).toBe('completed');
    expect(of('responseReceived')).toHaveLength(1);
  });

  it('sets Timer K to zero over a reliable transport', () => {
    const { txn, bye, layer } = start('TCP');
    layer.receive(response(bye, 481), TCP_DEST);
    expect(txn.state).toBe('terminated');
    expect(txn.outcome).toEqual({ kind: 'response', status: 481, local: false });
  });

  it('SHOULD transition directly to Terminated on a transport error during retransmission', () => {
    const { clock, txn, transport } = start();
    transport.fail = () => 'throw';
    clock.advance(500);
    expect(txn.state).toBe('terminated');
    expect(txn.outcome?.kind).toBe('transport-error');
  });

  it('does not match a response whose CSeq method differs (a CANCEL shares the branch)', () => {
    const h = harness();
    const invite = request({ branch: 'z9hG4bKsame' });
    const ict = h.layer.sendRequest(invite, UAS1);
    h.layer.receive(response(request({ method: 'CANCEL', branch: 'z9hG4bKsame' }), 200), UAS1);
    expect(ict?.state).toBe('calling');
    expect(h.layer.stats.strayResponses).toBe(1);
  });
});
