import { describe, expect, it } from 'vitest';
import { InviteClientTransaction } from './invite-client-transaction.js';
import { InviteServerTransaction } from './invite-server-transaction.js';
import { NonInviteClientTransaction } from './non-invite-client-transaction.js';
import type { ServerTransaction } from './proxy.js';
import { RecordingTransport, UAC, UAS1, harness, request, response } from '../test/helpers.js';

/** A transport whose read barrier the test releases by hand (what is "read" is up to the test). */
class BarrierTransport extends RecordingTransport {
  readonly waiting: (() => void)[] = [];
  mode: 'hold' | 'throw' | 'twice' = 'hold';
  afterInput(fn: () => void): void {
    if (this.mode === 'throw') throw new Error('probe socket closed');
    if (this.mode === 'twice') {
      fn();
      fn();
      return;
    }
    this.waiting.push(fn);
  }
  release(): void {
    for (const fn of this.waiting.splice(0)) fn();
  }
}

function setup() {
  const h = harness({ sentBy: () => '198.18.0.2:5060' }, (c) => new BarrierTransport(c));
  return { ...h, transport: h.transport as BarrierTransport };
}

/** An INVITE server transaction for a received INVITE with this branch. */
function ist(s: ReturnType<typeof setup>, branch: string): InviteServerTransaction {
  let server: ServerTransaction | undefined;
  s.layer.on('requestReceived', (e) => void (server = e.transaction as ServerTransaction));
  s.layer.receive(request({ branch }), UAC);
  if (!(server instanceof InviteServerTransaction)) throw new Error('expected an IST');
  return server;
}

function ict() {
  const s = setup();
  const invite = request({ branch: 'z9hG4bKrb1' });
  const txn = s.layer.sendRequest(invite, UAS1);
  if (!(txn instanceof InviteClientTransaction)) throw new Error('expected an ICT');
  return { ...s, invite, txn };
}

describe('retransmission timers wait for the transport to read its input (Transport.afterInput)', () => {
  it('Timer A: a provisional read before the barrier releases stops the retransmission', () => {
    const { clock, transport, layer, invite, txn } = ict();
    clock.advance(500);
    expect(transport.waiting).toHaveLength(1);
    expect(transport.times('INVITE')).toEqual([0]);
    // The 180 was waiting in the socket buffer when Timer A fired; the transport reads it.
    layer.receive(response(invite, 180), UAS1);
    transport.release();
    clock.advance(60_000);
    expect(transport.times('INVITE')).toEqual([0]);
    expect(txn.state).toBe('proceeding');
  });

  it('Timer A: with nothing read it retransmits at the release and doubles from there', () => {
    const { clock, transport } = ict();
    clock.advance(700);
    transport.release();
    expect(transport.times('INVITE')).toEqual([0, 700]);
    clock.advance(1_000); // 2*T1 after the retransmission
    expect(transport.waiting).toHaveLength(1);
    transport.release();
    expect(transport.times('INVITE')).toEqual([0, 700, 1700]);
  });

  it('Timer B still ends a transaction whose retransmission waits, and the release then sends nothing', () => {
    const { clock, transport, txn } = ict();
    clock.advance(32_000);
    expect(txn.outcome).toEqual({ kind: 'timeout', timer: 'B' });
    transport.release();
    expect(transport.times('INVITE')).toEqual([0]);
  });

  it('Timer E: a final response read meanwhile stops the retransmission', () => {
    const { clock, transport, layer } = setup();
    const bye = request({ method: 'BYE', branch: 'z9hG4bKrb2', toTag: 't', cseq: 2 });
    const txn = layer.sendRequest(bye, UAS1);
    if (!(txn instanceof NonInviteClientTransaction)) throw new Error('expected a NICT');
    clock.advance(500);
    layer.receive(response(bye, 200), UAS1);
    transport.release();
    expect(transport.times('BYE')).toEqual([0]);
    expect(txn.state).toBe('completed');
  });

  it('Timer E: a provisional read meanwhile leaves the retransmission due, then every T2', () => {
    const { clock, transport, layer } = setup();
    const bye = request({ method: 'BYE', branch: 'z9hG4bKrb3', toTag: 't', cseq: 2 });
    layer.sendRequest(bye, UAS1);
    clock.advance(500);
    layer.receive(response(bye, 100), UAS1);
    transport.release();
    clock.advance(4_000);
    transport.release();
    expect(transport.times('BYE')).toEqual([0, 500, 4500]);
  });

  it('Timer G: an ACK read meanwhile stops the retransmission of the final response', () => {
    const s = setup();
    const { clock, transport, layer } = s;
    const server = ist(s, 'z9hG4bKrb4');
    const final = layer.reply(server, 486);
    clock.advance(500);
    layer.receive(request({ method: 'ACK', branch: 'z9hG4bKrb4', toTag: final.to()?.tag }), UAC);
    transport.release();
    expect(server.state).toBe('confirmed');
    clock.advance(10_000);
    expect(transport.times('486')).toEqual([0]);
  });

  it('a transport whose barrier throws is reported and the retransmission goes at once', () => {
    const { clock, transport, errors } = ict();
    transport.mode = 'throw';
    clock.advance(500);
    expect(transport.times('INVITE')).toEqual([0, 500]);
    expect(errors.map((e) => e.message)).toEqual(['the transport failed a read barrier']);
  });

  it("a barrier that calls back twice runs the timer's work once", () => {
    const { transport, layer } = ict();
    transport.mode = 'twice';
    let runs = 0;
    layer.afterInput(() => runs++);
    expect(runs).toBe(1);
  });

  it("a timer's own failure inside a barrier that calls back at once is not blamed on the transport", () => {
    const { transport, layer, errors } = ict();
    transport.mode = 'twice';
    expect(() =>
      layer.afterInput(() => {
        throw new Error('machine bug');
      }),
    ).toThrow('machine bug');
    expect(errors).toEqual([]);
  });

  it("the UAS core's 2xx retransmission: an ACK read meanwhile stops it", () => {
    const s = setup();
    const { clock, transport, layer } = s;
    const server = ist(s, 'z9hG4bKrb6');
    const ok = layer.reply(server, 200, 'OK', [], { retransmit2xx: true });
    clock.advance(500);
    expect(transport.waiting).toHaveLength(1);
    layer.receive(request({ method: 'ACK', branch: 'z9hG4bKack6', toTag: ok.to()?.tag }), UAC);
    transport.release();
    clock.advance(10_000);
    expect(transport.times('200')).toEqual([0]);
  });

  it('timeouts do not wait: Timer F fires on time while Timer E waits', () => {
    const { clock, transport, layer } = setup();
    const txn = layer.sendRequest(
      request({ method: 'OPTIONS', branch: 'z9hG4bKrb5', cseq: 3 }),
      UAS1,
    );
    clock.advance(32_000);
    expect(txn?.outcome).toEqual({ kind: 'timeout', timer: 'F' });
    transport.release();
    expect(transport.times('OPTIONS')).toEqual([0]);
  });
});
