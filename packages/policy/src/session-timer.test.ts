import { parse, type SipMessage } from '@pinhole/sip';
import { describe, expect, it } from 'vitest';
import { resolveConfig, type SessionTimerMode } from './config.js';
import { decideTimerRequest, establishedTimerSec, settleTimer } from './session-timer.js';

function invite(...headers: string[]): SipMessage {
  const r = parse(
    [
      'INVITE sip:bob@biloxi.example.com SIP/2.0',
      'Via: SIP/2.0/UDP 198.19.2.101:5060;branch=z9hG4bKst',
      'From: <sip:alice@atlanta.example.com>;tag=a',
      'To: <sip:bob@biloxi.example.com>',
      'Call-ID: st',
      'CSeq: 1 INVITE',
      ...headers,
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n'),
  );
  if (!r.ok) throw new Error(r.error.reason);
  return r.message;
}

function ok(...headers: string[]): SipMessage {
  const r = parse(
    [
      'SIP/2.0 200 OK',
      'Via: SIP/2.0/UDP 198.19.2.101:5060;branch=z9hG4bKst',
      'From: <sip:alice@atlanta.example.com>;tag=a',
      'To: <sip:bob@biloxi.example.com>;tag=b',
      'Call-ID: st',
      'CSeq: 1 INVITE',
      ...headers,
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n'),
  );
  if (!r.ok) throw new Error(r.error.reason);
  return r.message;
}

const cfg = (mode: SessionTimerMode, minSESec = 90, intervalSec = 1800) =>
  resolveConfig({
    protectedNetworks: ['198.18.0.0/16'],
    sessionTimer: { mode, minSESec, intervalSec },
  });

describe('decideTimerRequest (RFC 4028 §8.1)', () => {
  it('observe: reads, never acts', () => {
    const d = decideTimerRequest(
      invite('Session-Expires: 60', 'Supported: timer'),
      cfg('observe', 600),
    );
    expect(d.actions).toEqual([]);
    expect(d.request).toEqual({ se: 60, minSE: undefined, uacSupports: true });
  });

  it('insert: never below the request Min-SE', () => {
    const d = decideTimerRequest(invite('Min-SE: 3600'), cfg('insert'));
    expect(d.actions).toEqual([{ kind: 'set-header', name: 'Session-Expires', value: '3600' }]);
    expect(d.request.se).toBe(3600);
  });

  it('insert: raises Min-SE when ours is higher', () => {
    const d = decideTimerRequest(invite(), cfg('insert', 1200, 1800));
    expect(d.actions).toEqual([
      { kind: 'set-header', name: 'Session-Expires', value: '1800' },
      { kind: 'set-header', name: 'Min-SE', value: '1200' },
    ]);
  });

  it('a small interval from a UAC without timer support is raised, keeping the refresher', () => {
    const d = decideTimerRequest(invite('Session-Expires: 100;refresher=uas'), cfg('insert', 600));
    expect(d.actions).toEqual([
      { kind: 'set-header', name: 'Session-Expires', value: '600;refresher=uas' },
      { kind: 'set-header', name: 'Min-SE', value: '600' },
    ]);
    expect(d.refusal).toBeUndefined();
  });

  it('a small interval from a UAC with timer support is answered 422 with our Min-SE', () => {
    const d = decideTimerRequest(
      invite('Session-Expires: 100', 'Supported: timer'),
      cfg('insert', 600),
    );
    expect(d.actions).toEqual([
      {
        kind: 'reject',
        status: 422,
        reason: 'Session Interval Too Small',
        headers: [{ name: 'Min-SE', value: '600' }],
      },
    ]);
    expect(d.refusal?.code).toBe('session-interval-too-small');
  });

  it('require: 421 without timer support; Require: timer counts as support', () => {
    expect(decideTimerRequest(invite(), cfg('require')).refusal?.code).toBe(
      'session-timer-required',
    );
    expect(
      decideTimerRequest(invite('Require: timer', 'Session-Expires: 1800'), cfg('require')).refusal,
    ).toBeUndefined();
  });
});

describe('settleTimer (RFC 4028 §7.2, §8.2)', () => {
  it('takes the interval and refresher of the 2xx', () => {
    expect(
      settleTimer(ok('Session-Expires: 1800;refresher=uas'), undefined, cfg('observe')).timer,
    ).toEqual({
      intervalSec: 1800,
      refresher: 'uas',
    });
  });

  it('without Session-Expires in the 2xx there is no session expiration (observe)', () => {
    const req = { se: 1800, minSE: undefined, uacSupports: true };
    expect(settleTimer(ok(), req, cfg('observe'))).toEqual({ timer: undefined, actions: [] });
  });

  it('insert: adds Session-Expires;refresher=uac and Require: timer when the UAC can refresh', () => {
    const req = { se: 1800, minSE: undefined, uacSupports: true };
    expect(settleTimer(ok(), req, cfg('insert')).actions).toEqual([
      { kind: 'set-header', name: 'Session-Expires', value: '1800;refresher=uac' },
      { kind: 'add-header', name: 'Require', value: 'timer' },
    ]);
    expect(settleTimer(ok(), { ...req, uacSupports: false }, cfg('insert')).timer).toBeUndefined();
  });

  it('the TIMER is the interval plus the margin, capped; the lifetime without timers', () => {
    const c = resolveConfig({
      protectedNetworks: ['198.18.0.0/16'],
      maxTimerSec: 1000,
      maxCallLifetimeSec: 900,
    });
    expect(establishedTimerSec({ intervalSec: 90, refresher: 'uac' }, c)).toBe(122);
    expect(establishedTimerSec({ intervalSec: 5000, refresher: 'uac' }, c)).toBe(1000);
    expect(establishedTimerSec(undefined, cfg('observe'))).toBe(14400);
  });
});
