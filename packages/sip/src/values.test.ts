import { describe, expect, it } from 'vitest';
import {
  isSipError,
  parse,
  parseCSeq,
  parseNameAddr,
  parseSessionExpires,
  parseUri,
  parseVia,
  type SipUri,
} from './index.js';

function uri(text: string): SipUri {
  const u = parseUri(text);
  if (isSipError(u)) throw u;
  return u;
}

describe('parseUri (RFC 3261 §19.1, §25.1)', () => {
  it('reads user, password, host, port, parameters and headers of a sip: URI', () => {
    const u = uri(
      'sip:alice:secret@Atlanta.Example.COM:5061;transport=TCP;lr?subject=hi%20there&x=1',
    );
    expect(u).toMatchObject({
      scheme: 'sip',
      user: 'alice',
      password: 'secret',
      host: 'atlanta.example.com',
      ipv6: false,
      port: 5061,
    });
    expect([...u.params]).toEqual([
      ['transport', 'TCP'],
      ['lr', ''],
    ]);
    expect(u.headers.get('subject')).toBe('hi there');
  });

  it('reads IPv6 references and IPv4 hosts', () => {
    expect(uri('sips:[2001:DB8::1]:5061')).toMatchObject({
      host: '2001:db8::1',
      ipv6: true,
      port: 5061,
    });
    expect(uri('sip:198.18.0.1')).toMatchObject({ host: '198.18.0.1', ipv6: false });
  });

  it('decodes escapes once, never recursively', () => {
    expect(uri('sip:%2561@h.example.com').user).toBe('%61');
    expect(uri('sip:%2561@h.example.com').rawUser).toBe('%2561');
  });

  it('reads tel: URIs and keeps other schemes opaque', () => {
    expect(uri('tel:+1-201-555-0123;phone-context=example.com')).toMatchObject({
      scheme: 'tel',
      user: '+1-201-555-0123',
      host: '',
    });
    expect(uri('tel:+1-201-555-0123;phone-context=example.com').params.get('phone-context')).toBe(
      'example.com',
    );
    expect(uri('urn:service:sos')).toMatchObject({
      scheme: 'urn',
      host: '',
      raw: 'urn:service:sos',
    });
  });

  it.each([
    [''],
    ['sip:'],
    ['sip:user@'],
    ['sip:a b@example.com'],
    ['<sip:a@example.com>'],
    ['sip:2001:db8::10'],
    ['sip:[2001:db8:::1]'],
    ['sip:host.example.com:99999'],
    ['sip:300.1.1.1'],
    ['sip:%zz@example.com'],
    ['sip:host-.example.com'],
    ['sip:h.example.com;=x'],
    ['1sip:h.example.com'],
  ])('rejects %j with SIP_ERR_BAD_URI', (text) => {
    const u = parseUri(text);
    expect(isSipError(u) && u.code).toBe('SIP_ERR_BAD_URI');
  });
});

describe('parseVia (RFC 3261 §20.42, RFC 3581, RFC 5118)', () => {
  it('reads every part and parameter', () => {
    const v = parseVia(
      'SIP / 2.0 / tls [2001:db8::9]:5061 ; branch=z9hG4bKx ;received=198.18.0.9;rport=5062;maddr=224.2.0.1;ttl=16;x',
    );
    expect(isSipError(v)).toBe(false);
    expect(v).toMatchObject({
      protocol: 'SIP/2.0',
      transport: 'TLS',
      host: '2001:db8::9',
      ipv6: true,
      port: 5061,
      branch: 'z9hG4bKx',
      received: '198.18.0.9',
      rport: 5062,
      maddr: '224.2.0.1',
      ttl: 16,
    });
    expect(isSipError(v) ? undefined : v.params.get('x')).toBe('');
  });

  it('gives rport true when it has no value', () => {
    const v = parseVia('SIP/2.0/UDP h.example.com;rport;branch=z9hG4bK1');
    expect(!isSipError(v) && v.rport).toBe(true);
  });

  it.each([
    ['SIP/2.0 h.example.com'],
    ['SIP/2.0/UDP'],
    ['SIP/2.0/UDPh.example.com'],
    ['SIP/2.0/UDP h.example.com;;branch=1'],
    ['SIP/2.0/UDP h.example.com;branch='],
    ['SIP/2.0/UDP h.example.com:70000'],
    ['SIP/2.0/UDP h.example.com;received=not-an-ip'],
    ['SIP/2.0/UDP h.example.com;ttl=256'],
    ['SIP/2.0/UDP h.example.com;rport=x'],
    ['SIP/2.0/UDP 192.0.2.15;;,;,,'],
  ])('rejects %j', (text) => {
    const v = parseVia(text);
    expect(isSipError(v) && v.code).toBe('SIP_ERR_BAD_VIA');
  });
});

describe('parseNameAddr (RFC 3261 §20.10, §20.20, §20.39)', () => {
  it.each([
    ['"Alice \\"A\\"" <sip:alice@a.example.com>;tag=88', 'Alice "A"', 'alice', '88'],
    ['Alice Liddell <sip:alice@a.example.com>;TAG=88', 'Alice Liddell', 'alice', '88'],
    ['<sip:alice@a.example.com;transport=tcp>', undefined, 'alice', undefined],
    ['sip:alice@a.example.com;tag=1', undefined, 'alice', '1'],
  ])('%j', (text, displayName, user, tag) => {
    const n = parseNameAddr(text);
    if (isSipError(n)) throw n;
    expect(n.displayName).toBe(displayName);
    expect(n.uri.user).toBe(user);
    expect(n.tag).toBe(tag);
  });

  it.each([
    ['"unterminated <sip:a@b.example.com>'],
    ['Bell, Alexander <sip:a@b.example.com>'],
    ['< sip:a@b.example.com >'],
    ['<sip:a@b.example.com'],
    ['sip:a@b.example.com?x=y'],
    ['<sip:a@b.example.com>;;tag=1'],
    ['<sip:a@b.example.com>;q=2'],
    ['<sip:a@b.example.com>;expires=x'],
    [''],
  ])('rejects %j', (text) => {
    const n = parseNameAddr(text);
    expect(isSipError(n) && n.code).toBe('SIP_ERR_BAD_NAME_ADDR');
  });
});

describe('scalar headers', () => {
  it('CSeq must fit 32 bits and carry a method token (RFC 3261 §8.1.1.5)', () => {
    expect(parseCSeq('4294967295 INVITE')).toEqual({ seq: 4294967295, method: 'INVITE' });
    expect(parseCSeq('4294967296 INVITE')).toBeUndefined();
    expect(parseCSeq('1')).toBeUndefined();
    expect(parseCSeq('1INVITE')).toBeUndefined();
    expect(parseCSeq('x INVITE')).toBeUndefined();
  });

  it('Session-Expires and Min-SE (RFC 4028 §4, §5)', () => {
    expect(parseSessionExpires('1800;refresher=UAS')).toMatchObject({
      delta: 1800,
      refresher: 'uas',
    });
    expect(parseSessionExpires('90')).toMatchObject({ delta: 90, refresher: undefined });
    expect(parseSessionExpires('90;refresher=both')).toBeUndefined();
    expect(parseSessionExpires('soon')).toBeUndefined();
    const r = parse(
      'UPDATE sip:a@b.example.com SIP/2.0\r\nx: 600 ; refresher = uac\r\nMin-SE: 90\r\nl: 0\r\n\r\n',
    );
    expect(r.ok && r.message.sessionExpires()).toMatchObject({ delta: 600, refresher: 'uac' });
    expect(r.ok && r.message.minSE()).toBe(90);
  });

  it('Contact: * and expires/q parameters (RFC 3261 §10.2.2, §20.10)', () => {
    const star = parse(
      'REGISTER sip:r.example.com SIP/2.0\r\nContact: *\r\nExpires: 0\r\nl: 0\r\n\r\n',
    );
    expect(star.ok && star.message.contactStar()).toBe(true);
    expect(star.ok && star.message.contacts()).toEqual([]);
    expect(star.ok && star.message.expires()).toBe(0);
    const list = parse(
      'REGISTER sip:r.example.com SIP/2.0\r\nm: <sip:a@h1.example.com>;expires=60;q=0.5, "B" <sip:b@h2.example.com>\r\nl: 0\r\n\r\n',
    );
    if (!list.ok) throw new Error(list.error.reason);
    expect(list.message.contactStar()).toBe(false);
    expect(list.message.contacts().map((c) => [c.uri.user, c.expires, c.q])).toEqual([
      ['a', 60, 0.5],
      ['b', undefined, undefined],
    ]);
  });

  it('resolves compact header names and keeps the original case (RFC 3261 §7.3.3)', () => {
    const r = parse(
      'OPTIONS sip:a@b.example.com SIP/2.0\r\ni: abc\r\nF: <sip:x@y.example.com>;tag=9\r\nT: <sip:a@b.example.com>\r\nk: Timer, 100rel\r\nl: 0\r\n\r\n',
    );
    if (!r.ok) throw new Error(r.error.reason);
    const m = r.message;
    expect(m.callId()).toBe('abc');
    expect(m.get('Call-ID')).toBe('abc');
    expect(m.from()?.tag).toBe('9');
    expect(m.supported()).toEqual(['timer', '100rel']);
    expect(m.headers().map((h) => [h.rawName, h.name])).toEqual([
      ['i', 'call-id'],
      ['F', 'from'],
      ['T', 'to'],
      ['k', 'supported'],
      ['l', 'content-length'],
    ]);
  });
});

describe('line folding (RFC 3261 §7.3.1)', () => {
  it('unfolds continuation lines to one SP and stays linear on long runs of spaces', () => {
    const r = parse(
      'OPTIONS sip:a@b.example.com SIP/2.0\r\nSubject: one  \r\n\t two\r\n   three\r\nX-Long: a' +
        ' '.repeat(7000) +
        'x\r\n y\r\nl: 0\r\n\r\n',
    );
    if (!r.ok) throw new Error(r.error.reason);
    expect(r.message.get('subject')).toBe('one two three');
    expect(r.message.get('x-long')).toBe(`a${' '.repeat(7000)}x y`);
  });
});
