import { describe, expect, it } from 'vitest';
import {
  buildResponse,
  buildResponseFromPartial,
  parse,
  serialize,
  SipError,
  validate,
  type SipMessage,
} from './index.js';

const REQ =
  'INVITE sip:bob@biloxi.example.com SIP/2.0\r\n' +
  'Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bK1\r\n' +
  'Via: SIP/2.0/UDP ua.example.com;branch=z9hG4bK0;received=198.18.0.7\r\n' +
  'Max-Forwards: 70\r\nFrom: Alice <sip:alice@atlanta.example.com>;tag=abc\r\n' +
  'To: Bob <sip:bob@biloxi.example.com>\r\nCall-ID: call-1\r\nCSeq: 7 INVITE\r\n' +
  'Timestamp: 54\r\nContent-Length: 0\r\n\r\n';

function req(text = REQ): SipMessage {
  const r = parse(text);
  if (!r.ok) throw new Error(r.error.reason);
  return r.message;
}

describe('buildResponse (RFC 3261 §8.2.6)', () => {
  it('copies Via (in order), From, Call-ID and CSeq, and adds a To tag', () => {
    const r = buildResponse(req(), 486, 'Busy Here', [['Retry-After', '30']]);
    expect(r.status).toBe(486);
    expect(r.reason).toBe('Busy Here');
    expect(r.via().map((v) => v.branch)).toEqual(['z9hG4bK1', 'z9hG4bK0']);
    expect(r.get('from')).toBe('Alice <sip:alice@atlanta.example.com>;tag=abc');
    expect(r.callId()).toBe('call-1');
    expect(r.cseq()).toEqual({ seq: 7, method: 'INVITE' });
    expect(r.to()?.uri.user).toBe('bob');
    expect(r.to()?.tag).toMatch(/^[0-9a-f]{16}$/);
    expect(r.get('retry-after')).toBe('30');
    expect(r.contentLength()).toBe(0);
    expect(validate(r)).toEqual({ ok: true });
  });

  it('keeps an existing To tag and uses a given one otherwise', () => {
    const tagged = req(
      REQ.replace(
        'To: Bob <sip:bob@biloxi.example.com>',
        'To: <sip:bob@biloxi.example.com>;tag=xyz',
      ),
    );
    expect(buildResponse(tagged, 200, 'OK').to()?.tag).toBe('xyz');
    expect(buildResponse(req(), 200, 'OK', [], { toTag: 'mine' }).to()?.tag).toBe('mine');
  });

  it('100 Trying gets no To tag and copies Timestamp (§8.2.6.1)', () => {
    const r = buildResponse(req(), 100, 'Trying');
    expect(r.to()?.tag).toBeUndefined();
    expect(r.get('timestamp')).toBe('54');
  });

  it('carries a body with its Content-Type and Content-Length', () => {
    const r = buildResponse(req(), 200, 'OK', [], {
      body: 'v=0\r\n',
      contentType: 'application/sdp',
    });
    expect(r.bodyText()).toBe('v=0\r\n');
    expect(r.contentLength()).toBe(5);
    expect(r.contentType()).toBe('application/sdp');
  });

  it('builds a 400 from what a failed parse could read (§16.3 step 1)', () => {
    const bad = parse(
      REQ.replace('INVITE sip:bob@biloxi.example.com SIP/2.0', 'INVITE  sip:bob SIP/2.0'),
    );
    expect(bad.ok).toBe(false);
    if (bad.ok || bad.error.partial === undefined) return;
    const r = buildResponseFromPartial(bad.error.partial, 400, bad.error.reason);
    expect(r.status).toBe(400);
    expect(r.via()).toHaveLength(2);
    expect(r.callId()).toBe('call-1');
  });

  it('throws SipError on programmer errors', () => {
    expect(() => buildResponse(req(), 99, 'x')).toThrow(SipError);
    expect(() => buildResponse(req(), 200, 'OK\r\nX: y')).toThrow(SipError);
  });
});

describe('validate options (RFC 3261 §16.3)', () => {
  const ext =
    'OPTIONS sip:bob@biloxi.example.com SIP/2.0\r\nVia: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\n' +
    'From: <sip:a@a.example.com>;tag=1\r\nTo: <sip:bob@biloxi.example.com>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n' +
    'Proxy-Require: foo, bar\r\nContent-Length: 0\r\n\r\n';

  it('answers 420 listing unsupported Proxy-Require tags', () => {
    const v = validate(req(ext));
    expect(v).toMatchObject({ ok: false, status: 420, unsupported: ['foo', 'bar'] });
    expect(validate(req(ext), { proxyRequire: ['foo'] })).toMatchObject({ unsupported: ['bar'] });
    expect(validate(req(ext), { proxyRequire: null })).toEqual({ ok: true });
  });

  it('answers 416 for schemes outside the list, unless the check is off', () => {
    const tel = req(
      ext
        .replace('OPTIONS sip:bob@biloxi.example.com', 'OPTIONS urn:service:sos')
        .replace('Proxy-Require: foo, bar\r\n', ''),
    );
    expect(validate(tel)).toMatchObject({ status: 416 });
    expect(validate(tel, { schemes: ['urn'] })).toEqual({ ok: true });
    expect(validate(tel, { schemes: null })).toEqual({ ok: true });
  });
});

/** The same message, not seen as this package's class: buildResponse reads it as any SipMessage. */
function plain(m: SipMessage): SipMessage {
  return new Proxy(m, {
    get: (target, key) => {
      const v: unknown = Reflect.get(target, key, target);
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
    getPrototypeOf: () => Object.prototype,
  });
}

describe('buildResponse from a parsed message reads its lines and cached To as from any message', () => {
  it.each([
    ['an untagged To', 'To: Bob <sip:bob@biloxi.example.com>'],
    ['a tagged To', 'To: Bob <sip:bob@biloxi.example.com>;tag=t1'],
    ['an empty tag', 'To: <sip:bob@biloxi.example.com>;tag'],
    ['a tag on a URI the full parser rejects', 'To: <sip:bob@-bad.example.com>;tag=t1'],
    ['an addr-spec To with a tag', 'To: sip:bob@biloxi.example.com;tag=t1'],
    ['a folded To', 'To: Bob\r\n <sip:bob@biloxi.example.com>;tag=t1'],
    ['Via lists and lines', 'To: <sip:b@c>\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK9, SIP/2.0/TCP b'],
  ])('%s', (_what, line) => {
    const text = REQ.replace('To: Bob <sip:bob@biloxi.example.com>', line);
    for (const [status, options] of [
      [100, {}],
      [180, { toTag: 'mine' }],
      [486, { toTag: false }],
    ] as const) {
      const fast = serialize(buildResponse(req(text), status, 'R', [['X', 'y']], options));
      const full = serialize(buildResponse(plain(req(text)), status, 'R', [['X', 'y']], options));
      expect(fast.toString('latin1')).toBe(full.toString('latin1'));
    }
  });
});
