import { parse, type SipMessage } from '@pinhole/sip';
import { describe, expect, it } from 'vitest';
import { resolveConfig } from './config.js';
import { PolicyErrorCode } from './errors.js';
import type { PolicyResult } from './intents.js';
import { Policy } from './policy.js';

const BASE = { protectedNetworks: ['198.18.0.0/16'] };
const ALICE = '198.19.2.101';
const BOB = '198.18.2.201';

function msg(head: string[], body = '', type = 'application/sdp'): SipMessage {
  const lines = [...head];
  if (body) lines.push(`Content-Type: ${type}`);
  lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
  const r = parse(lines.join('\r\n') + '\r\n\r\n' + body);
  if (!r.ok) throw new Error(r.error.reason);
  return r.message;
}

function sdp(addr: string, ...ports: number[]): string {
  return (
    ['v=0', `o=- 1 1 IN IP4 ${addr}`, 's=-', `c=IN IP4 ${addr}`, 't=0 0']
      .concat(ports.map((p) => `m=audio ${p} RTP/AVP 0`))
      .join('\r\n') + '\r\n'
  );
}

function invite(callId: string, body: string, extra: string[] = []): SipMessage {
  return msg(
    [
      'INVITE sip:bob@biloxi.example.com SIP/2.0',
      `Via: SIP/2.0/UDP ${ALICE}:5060;branch=z9hG4bK${callId}`,
      'Max-Forwards: 70',
      `From: <sip:alice@atlanta.example.com>;tag=${callId}-a`,
      'To: <sip:bob@biloxi.example.com>',
      `Call-ID: ${callId}`,
      'CSeq: 1 INVITE',
      `Contact: <sip:alice@${ALICE}>`,
      ...extra,
    ],
    body,
  );
}

function ok(callId: string, body: string, type?: string): SipMessage {
  return msg(
    [
      'SIP/2.0 200 OK',
      `Via: SIP/2.0/UDP ${ALICE}:5060;branch=z9hG4bK${callId}`,
      `From: <sip:alice@atlanta.example.com>;tag=${callId}-a`,
      `To: <sip:bob@biloxi.example.com>;tag=${callId}-b`,
      `Call-ID: ${callId}`,
      'CSeq: 1 INVITE',
      `Contact: <sip:bob@${BOB}>`,
    ],
    body,
    type,
  );
}

function opens(r: PolicyResult): string[] {
  return r.intents.filter((i) => i.kind === 'open').map((i) => i.key);
}

describe('Policy', () => {
  it('refuses an invalid configuration with POLICY_ERR_CONFIG', () => {
    expect(() => new Policy({ protectedNetworks: [] })).toThrowError(
      expect.objectContaining({ code: PolicyErrorCode.config }) as Error,
    );
  });

  it('accepts an already resolved configuration', () => {
    const p = new Policy(resolveConfig(BASE));
    expect(p.config.protectedNetworks[0]?.prefix).toBe(16);
  });

  it('opens, reports and forgets holes (stats, holes)', () => {
    const p = new Policy(BASE);
    p.handle({ type: 'sip', message: invite('c1', sdp(ALICE, 4000)), now: 0 });
    const r = p.handle({ type: 'sip', message: ok('c1', sdp(BOB, 5000)), now: 1 });
    expect(opens(r)).toEqual(['udp 198.18.2.201:5000 from *', 'udp 198.18.2.201:5001 from *']);
    const open = r.intents[0];
    expect(open?.kind === 'open' && open.stream).toEqual({
      index: 0,
      media: 'audio',
      flow: 'rtp',
      party: 'callee',
    });
    expect(open?.dialog).toEqual({ callId: 'c1', callerTag: 'c1-a', calleeTag: 'c1-b' });
    expect(p.stats()).toEqual({ calls: 1, dialogs: 1, holes: 2 });
    expect(p.holes().map((h) => h.timerSec)).toEqual([14400, 14400]);
    const bye = msg([
      `BYE sip:bob@${BOB} SIP/2.0`,
      `Via: SIP/2.0/UDP ${ALICE}:5060;branch=z9hG4bKbye`,
      'Max-Forwards: 70',
      'From: <sip:alice@atlanta.example.com>;tag=c1-a',
      'To: <sip:bob@biloxi.example.com>;tag=c1-b',
      'Call-ID: c1',
      'CSeq: 2 BYE',
    ]);
    expect(p.handle({ type: 'sip', message: bye, now: 2 }).intents.map((i) => i.kind)).toEqual([
      'close',
      'close',
    ]);
    expect(p.stats()).toEqual({ calls: 0, dialogs: 0, holes: 0 });
  });

  it('refuses new calls beyond maxCalls', () => {
    const p = new Policy({ ...BASE, maxCalls: 1 });
    p.handle({ type: 'sip', message: invite('c1', sdp(ALICE, 4000)), now: 0 });
    const r = p.handle({ type: 'sip', message: invite('c2', sdp(ALICE, 4100)), now: 1 });
    expect(r.refusals.map((f) => f.code)).toEqual(['too-many-calls']);
    expect(p.handle({ type: 'sip', message: ok('c2', sdp(BOB, 5000)), now: 2 }).intents).toEqual(
      [],
    );
  });

  it('never holds more than maxHolesPerDialog holes for a dialog', () => {
    const p = new Policy({ ...BASE, maxHolesPerDialog: 3 });
    p.handle({ type: 'sip', message: invite('c1', sdp(ALICE, 4000, 4002)), now: 0 });
    const r = p.handle({ type: 'sip', message: ok('c1', sdp(BOB, 5000, 5002)), now: 1 });
    expect(opens(r)).toHaveLength(3);
    expect(r.refusals.map((f) => f.code)).toEqual(['too-many-holes']);
  });

  it('reports an answer whose SDP does not parse, and opens nothing', () => {
    const p = new Policy(BASE);
    p.handle({ type: 'sip', message: invite('c1', sdp(ALICE, 4000)), now: 0 });
    const r = p.handle({ type: 'sip', message: ok('c1', 'v=0\r\nm=audio x\r\n'), now: 1 });
    expect(r.intents).toEqual([]);
    expect(r.refusals.map((f) => f.code)).toEqual(['sdp-invalid']);
  });

  it('ignores bodies that are not application/sdp', () => {
    const p = new Policy(BASE);
    p.handle({ type: 'sip', message: invite('c1', sdp(ALICE, 4000)), now: 0 });
    const r = p.handle({
      type: 'sip',
      message: ok('c1', sdp(BOB, 5000), 'application/isup'),
      now: 1,
    });
    expect(r).toEqual({ intents: [], refusals: [], actions: [] });
  });

  it('uses an injected SDP reader', () => {
    const seen: number[] = [];
    const p = new Policy(BASE, {
      readSdp: (body) => {
        seen.push(body.length);
        return { ok: false, error: { code: 'X', reason: 'test' } };
      },
    });
    p.handle({ type: 'sip', message: invite('c1', sdp(ALICE, 4000)), now: 0 });
    expect(seen).toHaveLength(1);
  });

  it('adopts a dialog it first sees mid-call (a sidecar started late) from a re-INVITE', () => {
    const p = new Policy(BASE);
    const reinvite = msg(
      [
        `INVITE sip:bob@${BOB} SIP/2.0`,
        `Via: SIP/2.0/UDP ${ALICE}:5060;branch=z9hG4bKre`,
        'Max-Forwards: 70',
        'From: <sip:alice@atlanta.example.com>;tag=m-a',
        'To: <sip:bob@biloxi.example.com>;tag=m-b',
        'Call-ID: mid',
        'CSeq: 7 INVITE',
      ],
      sdp(ALICE, 4000),
    );
    expect(p.handle({ type: 'sip', message: reinvite, now: 0 }).intents).toEqual([]);
    const answer = msg(
      [
        'SIP/2.0 200 OK',
        `Via: SIP/2.0/UDP ${ALICE}:5060;branch=z9hG4bKre`,
        'From: <sip:alice@atlanta.example.com>;tag=m-a',
        'To: <sip:bob@biloxi.example.com>;tag=m-b',
        'Call-ID: mid',
        'CSeq: 7 INVITE',
      ],
      sdp(BOB, 5000),
    );
    expect(opens(p.handle({ type: 'sip', message: answer, now: 1 }))).toEqual([
      'udp 198.18.2.201:5000 from *',
      'udp 198.18.2.201:5001 from *',
    ]);
  });

  it('returns the same proxy actions for a retransmitted INVITE', () => {
    const p = new Policy({ ...BASE, sessionTimer: { mode: 'insert' } });
    const a = p.handle({ type: 'sip', message: invite('c1', sdp(ALICE, 4000)), now: 0 });
    const b = p.handle({ type: 'sip', message: invite('c1', sdp(ALICE, 4000)), now: 500 });
    expect(a.actions).toEqual([{ kind: 'set-header', name: 'Session-Expires', value: '1800' }]);
    expect(b.actions).toEqual(a.actions);
  });

  it('ignores messages without Call-ID, From tag or CSeq', () => {
    const p = new Policy(BASE);
    const m = msg(
      [
        'INVITE sip:bob@biloxi.example.com SIP/2.0',
        `Via: SIP/2.0/UDP ${ALICE}:5060;branch=z9hG4bKx`,
        'From: <sip:alice@atlanta.example.com>',
        'To: <sip:bob@biloxi.example.com>',
        'Call-ID: x',
        'CSeq: 1 INVITE',
      ],
      sdp(ALICE, 4000),
    );
    expect(p.handle({ type: 'sip', message: m, now: 0 })).toEqual({
      intents: [],
      refusals: [],
      actions: [],
    });
    expect(p.stats().calls).toBe(0);
  });
});

describe('Policy.reconfigure', () => {
  it('re-decides every dialog under the new rules', () => {
    const p = new Policy(BASE);
    p.handle({ type: 'sip', message: invite('c1', sdp(ALICE, 4000)), now: 0 });
    p.handle({ type: 'sip', message: ok('c1', sdp(BOB, 5000)), now: 1 });
    // Port 5001 (RTCP) is no longer allowed, the lifetime is shorter.
    const r = p.reconfigure(
      { ...BASE, ports: { min: 1024, max: 5000 }, maxCallLifetimeSec: 600 },
      2,
    );
    expect(r.intents.map((i) => `${i.kind} ${i.key} ${i.reason}`)).toEqual([
      'refresh udp 198.18.2.201:5000 from * reconfigured',
      'close udp 198.18.2.201:5001 from * reconfigured',
    ]);
    expect(r.refusals.map((f) => f.code)).toEqual(['port-out-of-range']);
    expect(p.holes().map((h) => h.timerSec)).toEqual([600]);
  });

  it('keeps the old configuration when the new one is invalid', () => {
    const p = new Policy(BASE);
    expect(() => p.reconfigure({ protectedNetworks: ['nope'] }, 0)).toThrow();
    expect(p.config.protectedNetworks).toHaveLength(1);
  });
});

describe('Policy robustness', () => {
  it('turns an exception from a message accessor into an internal-error refusal', () => {
    const p = new Policy(BASE);
    const good = invite('c1', sdp(ALICE, 4000));
    const broken = new Proxy(good, {
      get(target, prop, receiver) {
        if (prop === 'cseq') {
          return () => {
            throw new Error('boom');
          };
        }
        return Reflect.get(target, prop, receiver) as unknown;
      },
    });
    const r = p.handle({ type: 'sip', message: broken, now: 0 });
    expect(r.refusals.map((f) => f.code)).toEqual(['internal-error']);
  });
});
