/**
 * The seam in use: observations from the normalizer drive the real transaction layer of
 * @pinhole/transaction in observer mode, and it recognises the proxied call.
 */
import { parse } from '@pinhole/sip';
import { TransactionLayer, FakeClock, type TransactionEvent } from '@pinhole/transaction';
import { describe, expect, it } from 'vitest';
import { CaptureNormalizer } from '../src/normalizer.js';
import { observedHop } from '../src/observed-hop.js';
import { AGENT, CALLEE, call, hepPacket, SERVER, UA } from './support/proxy-copies.js';

describe('observations feed the transaction layer in observer mode', () => {
  it('tracks a proxied INVITE mirrored twice, with a retransmission, and fires the relay callbacks once', () => {
    const layer = new TransactionLayer({ mode: 'observer', clock: new FakeClock() });
    const events: TransactionEvent[] = [];
    for (const name of [
      'requestReceived',
      'requestForwarded',
      'provisionalRelayed',
      'finalRelayed',
      'ackReceived',
    ] as const) {
      layer.on(name, (e) => void events.push(e));
    }
    const n = new CaptureNormalizer({
      serverAddresses: [SERVER],
      parse,
      onObservation: (o) => layer.observe(o.message, observedHop(o)),
    });
    const feed = (payload: string, src: typeof UA, dst: typeof UA) =>
      n.push(hepPacket(payload, src, dst), AGENT);
    feed(call.inviteIn, UA, SERVER);
    feed(call.tryingOut, SERVER, UA);
    feed(call.inviteOut(), SERVER, CALLEE);
    feed(call.inviteIn, UA, SERVER);
    feed(call.ringingIn(), CALLEE, SERVER);
    feed(call.ringingOut(), SERVER, UA);
    feed(call.okIn, CALLEE, SERVER);
    feed(call.okOut, SERVER, UA);
    feed(call.ackIn, UA, SERVER);
    feed(call.ackOut, SERVER, CALLEE);
    const names = events.map(
      (e) => `${e.name}${e.retransmission === true ? ' (retransmission)' : ''}`,
    );
    expect(names.filter((x) => x === 'requestForwarded')).toHaveLength(1);
    expect(names.filter((x) => x === 'provisionalRelayed')).toHaveLength(1);
    expect(names.filter((x) => x === 'finalRelayed')).toHaveLength(1);
    expect(names).toContain('requestReceived (retransmission)');
    const final = events.find((e) => e.name === 'finalRelayed');
    expect(final?.destination).toEqual({ transport: 'UDP', host: UA.address, port: UA.port });
    expect(final?.message?.bodyText()).toContain('198.18.0.98');
    expect(events.some((e) => e.name === 'ackReceived')).toBe(true);
  });
});
