import { serialize } from '@pinhole/sip';
import { describe, expect, it } from 'vitest';
import { InviteClientTransaction } from './invite-client-transaction.js';
import { InviteServerTransaction } from './invite-server-transaction.js';
import { NonInviteClientTransaction } from './non-invite-client-transaction.js';
import { NonInviteServerTransaction } from './non-invite-server-transaction.js';
import type { ServerTransaction } from './proxy.js';
import { SerializedMessage } from './wire.js';
import { UAC, UAS1, harness, request, response, type Sent } from '../test/helpers.js';

const text = (s: Sent | undefined): string => Buffer.from(s?.bytes ?? []).toString('latin1');

function server(method: 'INVITE' | 'BYE', options: Parameters<typeof harness>[0] = {}) {
  let txn: ServerTransaction | undefined;
  const h = harness({ ...options, user: { request: (t) => (txn = t) } });
  const req = request({ method, branch: `z9hG4bK${method.toLowerCase()}w1` });
  h.layer.receive(req, UAC);
  if (txn === undefined) throw new Error('no server transaction');
  return { ...h, req, txn };
}

describe('what a transaction keeps once it only absorbs retransmissions', () => {
  it('non-INVITE server: Completed keeps the bytes of request and response, not the parsed messages', () => {
    const { txn, layer, req, transport } = server('BYE');
    if (!(txn instanceof NonInviteServerTransaction)) throw new Error('expected a NIST');
    expect(txn.requestReleased).toBe(false);
    layer.reply(txn, 200);
    expect(txn.state).toBe('completed');
    expect(txn.requestReleased).toBe(true);
    // §17.2.2: each request retransmission gets the final response again: the same bytes.
    layer.receive(req.clone(), UAC);
    layer.receive(req.clone(), UAC);
    expect(transport.summary()).toEqual(['200', '200', '200']);
    const first = text(transport.sent[0]);
    expect(first).toContain('SIP/2.0 200');
    expect(transport.sent.map(text)).toEqual([first, first, first]);
    // A late reader still gets the request and the response (parsed again from the bytes).
    expect(txn.request.callId()).toBe(req.callId());
    expect(txn.request).not.toBe(req);
    expect(txn.requestReleased).toBe(false);
    expect(txn.finalResponse?.status).toBe(200);
  });

  it('INVITE server: Completed resends the identical non-2xx on INVITE retransmissions and on Timer G', () => {
    const { txn, layer, req, transport, clock } = server('INVITE');
    if (!(txn instanceof InviteServerTransaction)) throw new Error('expected an IST');
    layer.reply(txn, 486);
    expect(txn.requestReleased).toBe(true);
    layer.receive(req.clone(), UAC);
    clock.advance(500); // Timer G
    const finals = transport.sent.filter((s) => s.message.status === 486);
    expect(finals).toHaveLength(3);
    expect(new Set(finals.map(text)).size).toBe(1);
    // The ACK (matched by the key, To tag from the kept bytes) moves it to Confirmed.
    const ack = request({
      method: 'ACK',
      branch: 'z9hG4bKinvitew1',
      toTag: txn.finalResponse?.to()?.tag,
    });
    layer.receive(ack, UAC);
    expect(txn.state).toBe('confirmed');
  });

  it('INVITE server: Accepted drops the parsed request and 2xx, and still finds the end-to-end ACK', () => {
    const acks: (InviteServerTransaction | undefined)[] = [];
    let txn: ServerTransaction | undefined;
    const h = harness({ user: { request: (t) => (txn = t), ack: (_m, _s, t) => acks.push(t) } });
    h.layer.receive(request({ branch: 'z9hG4bKacc1' }), UAC);
    if (!(txn instanceof InviteServerTransaction)) throw new Error('expected an IST');
    h.layer.reply(txn, 200);
    expect(txn.state).toBe('accepted');
    expect(txn.requestReleased).toBe(true);
    h.layer.receive(request({ method: 'ACK', branch: 'z9hG4bKack2', toTag: 'x' }), UAC);
    expect(acks).toEqual([txn]);
    // Timer L ends it and the layer's index of Accepted transactions forgets it.
    h.clock.advance(32_000);
    expect(txn.state).toBe('terminated');
    expect(h.layer.size).toBe(0);
    expect(txn.requestReleased).toBe(true);
  });

  it('INVITE client: Completed resends the identical ACK for each retransmitted non-2xx', () => {
    const h = harness();
    const invite = request({ branch: 'z9hG4bKictw1' });
    const txn = h.layer.sendRequest(invite, UAS1);
    if (!(txn instanceof InviteClientTransaction)) throw new Error('expected an ICT');
    expect(text(h.transport.sent[0])).toBe(serialize(invite).toString('latin1'));
    h.layer.receive(response(invite, 486), UAS1);
    expect(txn.state).toBe('completed');
    expect(txn.requestReleased).toBe(true);
    h.layer.receive(response(invite, 486), UAS1);
    h.layer.receive(response(invite, 486), UAS1);
    expect(h.transport.summary()).toEqual(['INVITE', 'ACK', 'ACK', 'ACK']);
    const acks = h.transport.sent.slice(1).map(text);
    expect(acks[0]).toMatch(/^ACK /);
    expect(new Set(acks).size).toBe(1);
  });

  it('INVITE client: Accepted and non-INVITE client: Completed keep only the request bytes', () => {
    const h = harness();
    const invite = request({ branch: 'z9hG4bKictw2' });
    const ict = h.layer.sendRequest(invite, UAS1);
    const bye = request({ method: 'BYE', branch: 'z9hG4bKnictw2', cseq: 2 });
    const nict = h.layer.sendRequest(bye, UAS1);
    if (!(ict instanceof InviteClientTransaction)) throw new Error('expected an ICT');
    if (!(nict instanceof NonInviteClientTransaction)) throw new Error('expected a NICT');
    h.layer.receive(response(invite, 200), UAS1);
    h.layer.receive(response(bye, 200), UAS1);
    expect(ict.state).toBe('accepted');
    expect(nict.state).toBe('completed');
    expect([ict.requestReleased, nict.requestReleased]).toEqual([true, true]);
    // RFC 6026 §8.4: 2xx retransmissions in Accepted still go up to the TU.
    h.layer.receive(response(invite, 200), UAS1);
    expect(h.of('responseReceived').filter((e) => e.retransmission)).toHaveLength(1);
  });

  it('Timer A retransmits the bytes made for the first transmission', () => {
    const h = harness();
    h.layer.sendRequest(request({ branch: 'z9hG4bKictw3' }), UAS1);
    h.clock.advance(1_500);
    expect(h.transport.summary()).toEqual(['INVITE', 'INVITE', 'INVITE']);
    const bytes = h.transport.sent.map((s) => s.bytes);
    expect(bytes[1]).toBe(bytes[0]);
    expect(bytes[2]).toBe(bytes[0]);
  });

  it('keeps the parsed messages when the transport has no sendSerialized', () => {
    const sent: unknown[] = [];
    const { txn, layer, req } = server('BYE', {
      transport: { send: (m) => void sent.push(m) },
    });
    layer.reply(txn, 200);
    layer.receive(req.clone(), UAC);
    expect(txn.requestReleased).toBe(false);
    expect(txn.request).toBe(req);
    expect(sent).toHaveLength(2);
    expect(sent[0]).toBe(sent[1]);
    expect(sent.some((m) => m instanceof SerializedMessage)).toBe(false);
  });
});
