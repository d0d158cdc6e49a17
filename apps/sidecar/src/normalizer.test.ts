import fc from 'fast-check';
import { parse } from '@pinhole/sip';
import { beforeEach, describe, expect, it } from 'vitest';
import { CaptureNormalizer, unmapIpv4, type NormalizerOptions } from './normalizer.js';
import type { MediaSource, SipObservation } from './observation.js';
import { createSidecarMetrics, type SidecarMetrics } from './sidecar-metrics.js';
import {
  AGENT,
  CALLEE,
  call,
  FakeClock,
  hepPacket,
  SERVER,
  UA,
} from '../test/support/proxy-copies.js';

describe('CaptureNormalizer', () => {
  let clock: FakeClock;
  let observed: SipObservation[];
  let settled: { obs: SipObservation; source: MediaSource }[];
  let drops: string[];
  let metrics: SidecarMetrics;
  let n: CaptureNormalizer;

  function make(extra: Partial<NormalizerOptions> = {}): CaptureNormalizer {
    return new CaptureNormalizer({
      serverAddresses: [SERVER],
      parse,
      clock,
      metrics,
      onObservation: (o) => observed.push(o),
      onSettle: (obs, source) => settled.push({ obs, source }),
      onDrop: (reason) => drops.push(reason),
      ...extra,
    });
  }

  beforeEach(() => {
    clock = new FakeClock();
    observed = [];
    settled = [];
    drops = [];
    metrics = createSidecarMetrics();
    n = make();
  });

  const push = (payload: string, src: typeof UA, dst: typeof UA) =>
    n.push(hepPacket(payload, src, dst), AGENT);

  it('tells the received copy from the sent copy by the server address', () => {
    const a = push(call.inviteIn, UA, SERVER);
    const b = push(call.inviteOut(), SERVER, CALLEE);
    expect(a?.kind).toBe('received-by-server');
    expect(b?.kind).toBe('sent-by-server');
    expect(a?.farEnd).toBe(false);
    expect(b?.farEnd).toBe(true);
    expect(a?.src).toEqual(UA);
    expect(b?.dst).toEqual(CALLEE);
    expect(b?.transport).toBe('UDP');
    expect(b?.capturedAtMs).toBe(1_700_000_000_000.5);
    expect(b?.capture.agent).toEqual(AGENT);
  });

  it('gives both copies of one message the same key: first, then twin', () => {
    const a = push(call.inviteIn, UA, SERVER);
    const b = push(call.inviteOut(), SERVER, CALLEE);
    expect(a?.copy).toBe('first');
    expect(b?.copy).toBe('twin');
    expect(a?.key).toBe(b?.key);
    expect(n.size).toBe(1);
  });

  it('settles the message once, from the sent copy (the one the far end receives)', () => {
    push(call.inviteIn, UA, SERVER);
    expect(settled).toHaveLength(0);
    push(call.inviteOut(), SERVER, CALLEE);
    expect(settled).toHaveLength(1);
    expect(settled[0]?.source).toBe('sent-copy');
    expect(Buffer.from(settled[0]?.obs.bytes ?? []).toString()).toContain('198.18.0.99');
    clock.advance(10_000);
    expect(settled).toHaveLength(1);
    expect(clock.pending).toBe(0);
  });

  it('marks a retransmission of the received copy, and does not settle it again', () => {
    push(call.inviteIn, UA, SERVER);
    push(call.inviteOut(), SERVER, CALLEE);
    const r = push(call.inviteIn, UA, SERVER);
    expect(r?.copy).toBe('retransmission');
    expect(settled).toHaveLength(1);
    expect(observed).toHaveLength(3);
  });

  it('marks a retransmission of the sent copy (the server’s Timer A) as such', () => {
    push(call.inviteIn, UA, SERVER);
    push(call.inviteOut(), SERVER, CALLEE);
    expect(push(call.inviteOut(), SERVER, CALLEE)?.copy).toBe('retransmission');
  });

  it('marks another sent branch of a forking proxy as fork', () => {
    push(call.inviteIn, UA, SERVER);
    push(call.inviteOut('z9hG4bKsrv1'), SERVER, CALLEE);
    const f = push(call.inviteOut('z9hG4bKsrv1b'), SERVER, { address: '198.18.0.21', port: 5060 });
    expect(f?.copy).toBe('fork');
    expect(push(call.inviteOut('z9hG4bKsrv1b'), SERVER, CALLEE)?.copy).toBe('retransmission');
    expect(settled).toHaveLength(1);
  });

  it('pairs responses: received from downstream, then sent upstream', () => {
    push(call.inviteIn, UA, SERVER);
    push(call.inviteOut(), SERVER, CALLEE);
    const a = push(call.ringingIn(), CALLEE, SERVER);
    const b = push(call.ringingOut(), SERVER, UA);
    expect([a?.copy, b?.copy]).toEqual(['first', 'twin']);
    expect(a?.key).toBe(b?.key);
    expect(push(call.ringingOut(), SERVER, UA)?.copy).toBe('retransmission');
    const ok1 = push(call.okIn, CALLEE, SERVER);
    const ok2 = push(call.okOut, SERVER, UA);
    expect(ok1?.key).toBe(ok2?.key);
    expect(ok1?.key).not.toBe(a?.key);
    expect(
      settled.map((s) => [
        s.obs.message.isRequest ? s.obs.message.method : s.obs.message.status,
        s.source,
      ]),
    ).toEqual([
      ['INVITE', 'sent-copy'],
      [180, 'sent-copy'],
      [200, 'sent-copy'],
    ]);
  });

  it('keeps responses of different forked branches apart by their To tag', () => {
    push(call.inviteIn, UA, SERVER);
    const a = push(call.ringingIn('tb'), CALLEE, SERVER);
    const b = push(call.ringingIn('tc'), CALLEE, SERVER);
    expect(a?.key).not.toBe(b?.key);
    expect(b?.copy).toBe('first');
  });

  it('pairs the end-to-end ACK for a 2xx, which the proxy forwards with its own Via', () => {
    const a = push(call.ackIn, UA, SERVER);
    const b = push(call.ackOut, SERVER, CALLEE);
    expect(a?.key).toBe(b?.key);
    expect(b?.copy).toBe('twin');
  });

  it('never pairs a 100 Trying: it is hop-by-hop (RFC 3261 §16.7)', () => {
    const out = push(call.tryingOut, SERVER, UA);
    const inn = push(call.tryingIn, CALLEE, SERVER);
    expect(out?.key).not.toBe(inn?.key);
    expect([out?.copy, inn?.copy]).toEqual(['first', 'first']);
    // Both settle at once: no twin is ever coming.
    expect(settled.map((s) => s.source)).toEqual(['sent-copy', 'received-copy']);
  });

  it('settles a received copy by itself when no sent copy follows within the twin wait', () => {
    push(call.registerIn, UA, SERVER);
    clock.advance(199);
    expect(settled).toHaveLength(0);
    clock.advance(1);
    expect(settled).toHaveLength(1);
    expect(settled[0]?.source).toBe('received-copy');
    expect(metrics.mediaSources.value({ source: 'received-copy' })).toBe(1);
  });

  it('settles received copies at once with twinWaitMs 0 (a B2BUA)', () => {
    n = make({ twinWaitMs: 0 });
    push(call.inviteIn, UA, SERVER);
    expect(settled.map((s) => s.source)).toEqual(['received-copy']);
    push(call.inviteOut(), SERVER, CALLEE);
    expect(settled).toHaveLength(1);
  });

  it('copes with the sent copy arriving before the received one', () => {
    const b = push(call.inviteOut(), SERVER, CALLEE);
    const a = push(call.inviteIn, UA, SERVER);
    expect([b?.copy, a?.copy]).toEqual(['first', 'twin']);
    expect(settled.map((s) => s.source)).toEqual(['sent-copy']);
    clock.advance(1000);
    expect(settled).toHaveLength(1);
  });

  it('copes with a missing received copy (a stream that starts mid-call)', () => {
    const ok = push(call.okOut, SERVER, UA);
    expect(ok?.copy).toBe('first');
    expect(settled.map((s) => s.source)).toEqual(['sent-copy']);
  });

  it('forgets a message after the window, bounding the table', () => {
    push(call.inviteIn, UA, SERVER);
    push(call.inviteOut(), SERVER, CALLEE);
    clock.advance(31_999);
    expect(push(call.inviteIn, UA, SERVER)?.copy).toBe('retransmission');
    clock.advance(1);
    push(call.registerIn, UA, SERVER);
    expect(n.size).toBe(1);
    expect(push(call.inviteIn, UA, SERVER)?.copy).toBe('first');
  });

  it('evicts the oldest keys beyond maxEntries, settling what was pending', () => {
    n = make({ maxEntries: 10 });
    for (let i = 0; i < 25; i++) {
      push(call.registerIn.replace('reg-1', `reg-${i}`), UA, SERVER);
    }
    expect(n.size).toBe(10);
    expect(settled).toHaveLength(15);
    expect(settled.every((s) => s.source === 'received-copy')).toBe(true);
    n.flush();
    expect(settled).toHaveLength(25);
    expect(n.size).toBe(0);
    expect(clock.pending).toBe(0);
  });

  it('matches a server address without a port on any port, and IPv6 in any spelling', () => {
    n = make({ serverAddresses: [{ address: '2001:DB8:0::1' }] });
    const v6ua = { address: '2001:db8::10', port: 5060 };
    const v6srv = { address: '2001:db8::1', port: 5080 };
    expect(n.push(hepPacket(call.inviteIn, v6ua, v6srv), AGENT)?.kind).toBe('received-by-server');
    expect(n.push(hepPacket(call.okOut, v6srv, v6ua), AGENT)?.kind).toBe('sent-by-server');
  });

  it('matches an IPv4 server address reported as IPv4-mapped IPv6 by a dual-stack agent', () => {
    const mapped = { address: '::ffff:198.18.0.1', port: 5060 };
    const ua6 = { address: '::ffff:198.18.0.10', port: 5060 };
    const o = n.push(hepPacket(call.inviteIn, ua6, mapped), AGENT);
    expect(o?.kind).toBe('received-by-server');
    expect(o?.src).toEqual({ address: '198.18.0.10', port: 5060 });
  });

  it('a server address with a port does not match another port of the same host', () => {
    expect(push(call.inviteIn, UA, { address: SERVER.address, port: 5070 })).toBeUndefined();
    expect(drops).toEqual(['not_server_traffic']);
  });

  it('drops and counts what is not SIP, has no payload or addresses, or does not parse', () => {
    n.push(hepPacket(call.inviteIn, UA, SERVER, { protocolType: 5 }), AGENT);
    n.push(hepPacket('', UA, SERVER), AGENT);
    n.push(hepPacket('this is not SIP\r\n\r\n', UA, SERVER), AGENT);
    n.push({ ...hepPacket(call.inviteIn, UA, SERVER), srcPort: undefined }, AGENT);
    push(call.inviteIn, UA, CALLEE);
    expect(drops).toEqual([
      'not_sip',
      'no_payload',
      'sip_parse_error',
      'no_addresses',
      'not_server_traffic',
    ]);
    expect(metrics.sipDropped.value({ reason: 'not_sip' })).toBe(1);
    expect(observed).toHaveLength(0);
  });

  it('counts observations by kind and copy', () => {
    push(call.inviteIn, UA, SERVER);
    push(call.inviteOut(), SERVER, CALLEE);
    push(call.inviteIn, UA, SERVER);
    expect(metrics.sipObservations.value({ kind: 'received-by-server', copy: 'first' })).toBe(1);
    expect(metrics.sipObservations.value({ kind: 'sent-by-server', copy: 'twin' })).toBe(1);
    expect(
      metrics.sipObservations.value({ kind: 'received-by-server', copy: 'retransmission' }),
    ).toBe(1);
    expect(metrics.dedupEntries.value()).toBe(1);
  });

  it('still settles a message when the observer throws', () => {
    n = make({
      onObservation: () => {
        throw new Error('observer bug');
      },
    });
    expect(() => push(call.okOut, SERVER, UA)).toThrow('observer bug');
    expect(settled.map((s) => s.source)).toEqual(['sent-copy']);
  });

  it('numbers observations in arrival order and keeps the bytes exact', () => {
    const a = push(call.inviteIn, UA, SERVER);
    const b = push(call.inviteOut(), SERVER, CALLEE);
    expect([a?.seq, b?.seq]).toEqual([1, 2]);
    expect(Buffer.from(a?.bytes ?? []).toString('utf8')).toBe(call.inviteIn);
    expect(Buffer.from(a?.bytes ?? []).toString('utf8')).toContain('"Jörg Ünal"');
  });

  it('settles each remembered message exactly once and never grows past maxEntries (property)', () => {
    const copies = [
      () => push(call.inviteIn, UA, SERVER),
      () => push(call.inviteOut(), SERVER, CALLEE),
      () => push(call.inviteOut('z9hG4bKx'), SERVER, CALLEE),
      () => push(call.ringingIn(), CALLEE, SERVER),
      () => push(call.ringingOut(), SERVER, UA),
      () => push(call.okIn, CALLEE, SERVER),
      () => push(call.okOut, SERVER, UA),
      () => push(call.tryingOut, SERVER, UA),
      () => push(call.registerIn, UA, SERVER),
    ];
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat({ max: copies.length - 1 }), fc.nat({ max: 20_000 })), {
          maxLength: 60,
        }),
        (steps) => {
          clock = new FakeClock();
          observed = [];
          settled = [];
          n = make({ maxEntries: 4 });
          for (const [i, dt] of steps) {
            copies[i]?.();
            clock.advance(dt);
            expect(n.size).toBeLessThanOrEqual(4);
          }
          n.flush();
          // One settle per remembered message: every 'first' copy opens an entry, which settles
          // exactly once (by its sent copy, its twin-wait timer, eviction, expiry or flush).
          expect(settled).toHaveLength(observed.filter((o) => o.copy === 'first').length);
          expect(observed).toHaveLength(steps.length);
          expect(clock.pending).toBe(0);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('unmapIpv4', () => {
  it.each([
    ['::ffff:198.18.0.1', '198.18.0.1'],
    ['::ffff:c612:1', '198.18.0.1'],
    ['198.18.0.1', '198.18.0.1'],
    ['2001:db8::1', '2001:db8::1'],
    // ::ffff:1 is 0:0:0:0:0:0:ffff:1, not in ::ffff:0:0/96.
    ['::ffff:1', '::ffff:1'],
    ['::ffff:not-an-address', '::ffff:not-an-address'],
  ])('unmaps %s to %s', (input, want) => {
    expect(unmapIpv4(input)).toBe(want);
  });
});
