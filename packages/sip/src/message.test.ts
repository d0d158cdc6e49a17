import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { mediaEndpoints, parse, serialize, type SipMessage } from './index.js';

const fixtures = new URL('../bench/fixtures/', import.meta.url);
const INVITE = readFileSync(new URL('invite.sip', fixtures));
const OK200 = readFileSync(new URL('ok200.sip', fixtures));

function mustParse(bytes: Uint8Array | string): SipMessage {
  const r = parse(bytes);
  if (!r.ok) throw new Error(`${r.error.code}: ${r.error.reason}`);
  return r.message;
}

describe('parse: an ordinary INVITE with SDP', () => {
  const m = mustParse(INVITE);

  it('reads the Request-Line', () => {
    expect(m.isRequest).toBe(true);
    expect(m.method).toBe('INVITE');
    expect(m.requestUri).toBe('sip:bob@biloxi.example.com');
    expect(m.version).toBe('SIP/2.0');
    expect(m.status).toBe(0);
    expect(m.requestUriParsed()?.user).toBe('bob');
    expect(m.requestUriParsed()?.host).toBe('biloxi.example.com');
  });

  it('reads the Via values, top first', () => {
    expect(m.via().map((v) => v.host)).toEqual([
      'proxy1.atlanta.example.com',
      'pc33.atlanta.example.com',
    ]);
    const top = m.topVia();
    expect(top?.branch).toBe('z9hG4bK2d4790.1');
    expect(top?.transport).toBe('UDP');
    expect(top?.protocol).toBe('SIP/2.0');
    expect(top?.port).toBe(5060);
    expect(m.via()[1]?.received).toBe('198.18.0.10');
    expect(m.via()[1]?.rport).toBe(5060);
  });

  it('reads the dialog identifiers', () => {
    expect(m.from()?.tag).toBe('1928301774');
    expect(m.from()?.displayName).toBe('Alice');
    expect(m.from()?.uri.user).toBe('alice');
    expect(m.to()?.tag).toBeUndefined();
    expect(m.callId()).toBe('a84b4c76e66710@pc33.atlanta.example.com');
    expect(m.cseq()).toEqual({ seq: 314159, method: 'INVITE' });
  });

  it('reads the other typed headers', () => {
    expect(m.maxForwards()).toBe(69);
    expect(m.contacts()[0]?.uri.params.get('transport')).toBe('udp');
    expect(m.recordRoute()[0]?.uri.params.has('lr')).toBe(true);
    expect(m.route()).toEqual([]);
    expect(m.contentLength()).toBe(225);
    expect(m.contentType()).toBe('application/sdp');
    expect(m.sessionExpires()).toMatchObject({ delta: 1800, refresher: 'uac' });
    expect(m.minSE()).toBe(90);
    expect(m.supported()).toEqual(['timer', 'replaces', '100rel']);
    expect(m.allow()).toContain('UPDATE');
    expect(m.require()).toEqual([]);
  });

  it('frames the body by Content-Length and lists its media', () => {
    expect(m.body.length).toBe(225);
    const media = mediaEndpoints(m.body);
    expect(media.ok && media.media[0]).toMatchObject({
      type: 'audio',
      address: '198.18.0.10',
      port: 49170,
      rtcp: { port: 49171, address: undefined },
      direction: 'sendrecv',
      disabled: false,
    });
  });

  it('serializes an unedited message to exactly its bytes', () => {
    expect(Buffer.compare(serialize(m), INVITE)).toBe(0);
  });
});

describe('parse: 200 OK, ACK and BYE', () => {
  it('reads a 200 OK with Record-Route and a To tag', () => {
    const m = mustParse(OK200);
    expect(m.isRequest).toBe(false);
    expect(m.status).toBe(200);
    expect(m.reason).toBe('OK');
    expect(m.method).toBe('INVITE');
    expect(m.to()?.tag).toBe('a6c85cf');
    expect(m.via()).toHaveLength(3);
    expect(m.recordRoute()).toHaveLength(2);
    expect(m.require()).toEqual(['timer']);
  });

  it('reads an ACK and a BYE without bodies', () => {
    for (const method of ['ACK', 'BYE']) {
      const text =
        `${method} sip:bob@198.18.1.20:5060 SIP/2.0\r\n` +
        'Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKnashds9\r\n' +
        'Max-Forwards: 70\r\nRoute: <sip:proxy1.atlanta.example.com;lr>\r\n' +
        'From: <sip:alice@atlanta.example.com>;tag=1928301774\r\n' +
        'To: <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n' +
        `Call-ID: a84b4c76e66710\r\nCSeq: 314159 ${method}\r\nContent-Length: 0\r\n\r\n`;
      const m = mustParse(text);
      expect(m.method).toBe(method);
      expect(m.route()[0]?.uri.host).toBe('proxy1.atlanta.example.com');
      expect(m.body.length).toBe(0);
      expect(serialize(m).toString('latin1')).toBe(text);
    }
  });
});
