import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { SipMessage } from '@pinhole/sip';
import type { Address } from './address.js';
import { TransactionLayer } from './layer.js';
import type { ServerTransaction } from './proxy.js';
import { FakeClock } from './timers.js';
import {
  ALL_EVENTS,
  PROXY,
  UAC,
  UAS1,
  UAS2,
  proxyHarness,
  request,
  response,
} from '../test/helpers.js';

/** Longer than every timer and guard together (Timer C + the §9.1 wait + the server guard). */
const PAST_LONGEST_TIMER = 60 * 60_000;

const METHODS = ['INVITE', 'INVITE', 'OPTIONS', 'BYE'] as const;
const STATUSES = [100, 180, 183, 200, 302, 401, 407, 486, 487, 503, 603] as const;

const action = fc.oneof(
  fc.record({
    kind: fc.constant('request' as const),
    b: fc.nat(3),
    m: fc.constantFrom(...METHODS),
    tcp: fc.boolean(),
  }),
  fc.record({
    kind: fc.constant('ack' as const),
    b: fc.nat(3),
    tag: fc.constantFrom('b1', 'b2', 'zz'),
  }),
  fc.record({ kind: fc.constant('cancel' as const), b: fc.nat(3) }),
  fc.record({
    kind: fc.constant('downstream' as const),
    i: fc.nat(20),
    status: fc.constantFrom(...STATUSES),
    tag: fc.constantFrom('b1', 'b2'),
  }),
  fc.record({
    kind: fc.constant('reply' as const),
    i: fc.nat(20),
    status: fc.constantFrom(...STATUSES),
  }),
  fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 200_000 }) }),
  fc.record({ kind: fc.constant('breakTransport' as const), on: fc.boolean() }),
  fc.record({ kind: fc.constant('hold' as const), ms: fc.integer({ min: 0, max: 5_000 }) }),
);

function upstreamRequest(b: number, method: string, tcp: boolean): SipMessage {
  return request({
    method,
    branch: `z9hG4bKp${b}${method}`,
    transport: tcp ? 'TCP' : 'UDP',
    toTag: method === 'BYE' ? 'b1' : undefined,
    cseq: method === 'BYE' ? 2 : 1,
  });
}

describe('property: random event orders', () => {
  it('an active proxy never throws and leaves nothing behind once the clock passes the longest timer', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(action, { maxLength: 40 }),
        fc.boolean(),
        async (actions, local487) => {
          const h = proxyHarness([UAS1, UAS2], {
            cancelUnanswered: local487 ? 'local-487' : 'wait',
            holdDeadlineMs: 1_000,
          });
          const servers: ServerTransaction[] = [];
          h.layer.on('requestReceived', (e) => {
            if (!e.retransmission && e.transaction !== undefined)
              servers.push(e.transaction as ServerTransaction);
          });
          let broken = false;
          h.transport.fail = () => (broken ? 'throw' : undefined);
          for (const a of actions) {
            switch (a.kind) {
              case 'request':
                h.layer.receive(
                  upstreamRequest(a.b, a.m, a.tcp),
                  a.tcp ? { ...UAC, transport: 'TCP' } : UAC,
                );
                break;
              case 'ack':
                h.layer.receive(
                  request({ method: 'ACK', branch: `z9hG4bKp${a.b}INVITE`, toTag: a.tag }),
                  UAC,
                );
                break;
              case 'cancel':
                h.layer.receive(request({ method: 'CANCEL', branch: `z9hG4bKp${a.b}INVITE` }), UAC);
                break;
              case 'downstream': {
                const down = h.transport.sent.filter(
                  (s) => s.message.isRequest && s.destination !== UAC && s.message.method !== 'ACK',
                );
                const target = down[a.i % Math.max(1, down.length)];
                if (target !== undefined)
                  h.layer.receive(response(target.message, a.status, a.tag), target.destination);
                break;
              }
              case 'reply': {
                const s = servers[a.i % Math.max(1, servers.length)];
                if (s !== undefined) h.layer.reply(s, a.status);
                break;
              }
              case 'advance':
                h.clock.advance(a.ms);
                break;
              case 'breakTransport':
                broken = a.on;
                break;
              case 'hold':
                h.layer.on('finalRelayed', () => new Promise((r) => setTimeout(r, a.ms % 3)));
                break;
            }
            await Promise.resolve();
          }
          // let real-time holds settle, then pass every timer (holds' deadlines included)
          await new Promise((r) => setTimeout(r, 5));
          h.clock.advance(PAST_LONGEST_TIMER);
          await new Promise((r) => setTimeout(r, 5));
          h.clock.advance(PAST_LONGEST_TIMER);
          expect(h.layer.size).toBe(0);
          expect(h.clock.pending()).toBe(0);
          const created = h.layer.stats.created;
          expect(h.layer.stats.destroyed).toBe(created);
          expect(h.of('transactionDestroyed')).toHaveLength(created);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('an observer never throws and leaves nothing behind, whatever copies it is fed in whatever order', () => {
    const hops: readonly [Address, Address][] = [
      [UAC, PROXY],
      [PROXY, UAS1],
      [UAS1, PROXY],
      [PROXY, UAC],
    ];
    const msgs = (() => {
      const out: SipMessage[] = [];
      for (const b of [0, 1]) {
        const inv = request({ branch: `z9hG4bKo${b}` });
        const fwd = inv.clone();
        fwd.prependVia(`SIP/2.0/UDP 198.18.0.2:5060;branch=z9hG4bKd${b}`);
        out.push(inv, fwd, request({ method: 'CANCEL', branch: `z9hG4bKo${b}` }));
        out.push(request({ method: 'ACK', branch: `z9hG4bKo${b}`, toTag: 'b1' }));
        out.push(request({ method: 'ACK', branch: `z9hG4bKa${b}`, toTag: 'b1' }));
        for (const st of [100, 180, 200, 486]) {
          const down = response(fwd, st, 'b1');
          const up = down.clone();
          up.removeTopVia();
          out.push(down, up);
        }
        out.push(request({ method: 'BYE', branch: `z9hG4bKbye${b}`, toTag: 'b1', cseq: 2 }));
      }
      return out;
    })();
    const step = fc.oneof(
      fc.record({
        i: fc.nat(msgs.length - 1),
        hop: fc.nat(3),
        dir: fc.constantFrom('received' as const, 'sent' as const),
      }),
      fc.record({ advance: fc.integer({ min: 0, max: 300_000 }) }),
    );
    fc.assert(
      fc.property(fc.array(step, { maxLength: 60 }), (steps) => {
        const clock = new FakeClock();
        const layer = new TransactionLayer({ mode: 'observer', clock });
        let destroyed = 0;
        for (const name of ALL_EVENTS)
          layer.on(name, (e) => void (e.name === 'transactionDestroyed' && destroyed++));
        for (const s of steps) {
          if ('advance' in s) {
            clock.advance(s.advance);
            continue;
          }
          const m = msgs[s.i];
          const hop = hops[s.hop];
          if (m === undefined || hop === undefined) continue;
          layer.observe(m.clone(), { direction: s.dir, source: hop[0], destination: hop[1] });
        }
        clock.advance(PAST_LONGEST_TIMER);
        expect(layer.size).toBe(0);
        expect(clock.pending()).toBe(0);
        expect(destroyed).toBe(layer.stats.created);
      }),
      { numRuns: 300 },
    );
  });
});
