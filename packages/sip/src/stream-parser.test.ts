import { describe, expect, it } from 'vitest';
import { parse, serialize, SipStreamParser, type ParseResult } from './index.js';

const msg = (callId: string, body = ''): string =>
  `OPTIONS sip:a@example.com SIP/2.0\r\nVia: SIP/2.0/TCP h.example.com;branch=z9hG4bK${callId}\r\n` +
  `Call-ID: ${callId}\r\nCSeq: 1 OPTIONS\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;

function texts(results: ParseResult[]): string[] {
  return results.map((r) => (r.ok ? serialize(r.message).toString() : r.error.code));
}

describe('SipStreamParser (RFC 3261 §18.3 stream framing)', () => {
  it('frames several messages arriving in one chunk', () => {
    const p = new SipStreamParser();
    const input = msg('a') + msg('b', 'body') + msg('c');
    expect(texts(p.push(Buffer.from(input)))).toEqual([msg('a'), msg('b', 'body'), msg('c')]);
    expect(p.buffered).toBe(0);
  });

  it('handles a message split at every position, including between CR and LF', () => {
    const whole = Buffer.from(msg('x', 'hello body'));
    for (let cut = 1; cut < whole.length; cut++) {
      const p = new SipStreamParser();
      const out = [...p.push(whole.subarray(0, cut)), ...p.push(whole.subarray(cut))];
      expect(texts(out)).toEqual([whole.toString()]);
    }
  });

  it('skips CRLF keep-alives before a start line (RFC 5626 §3.5.1)', () => {
    const p = new SipStreamParser();
    const out = [
      ...p.push(Buffer.from('\r\n\r\n')),
      ...p.push(Buffer.from(`\r\n${msg('k')}\r\n\r\n`)),
    ];
    expect(texts(out)).toEqual([msg('k')]);
    expect(p.end()).toEqual([]);
  });

  it('waits for the body that Content-Length announces', () => {
    const p = new SipStreamParser();
    const m = msg('w', '0123456789');
    expect(p.push(Buffer.from(m.slice(0, -3)))).toEqual([]);
    expect(texts(p.push(Buffer.from(m.slice(-3))))).toEqual([m]);
  });

  it('reports a message left incomplete at the end of the stream', () => {
    const p = new SipStreamParser();
    p.push(Buffer.from(msg('i', 'abc').slice(0, -1)));
    const [r] = p.end();
    expect(r?.ok).toBe(false);
    if (r !== undefined && !r.ok) {
      expect(r.error.code).toBe('SIP_ERR_INCOMPLETE');
      expect(r.error.partial?.callId).toBe('i');
    }
  });

  it('fails the stream on an unframeable Content-Length and then ignores input', () => {
    const p = new SipStreamParser();
    const bad = msg('n').replace('Content-Length: 0', 'Content-Length: -1');
    const out = p.push(Buffer.from(bad + msg('after')));
    expect(texts(out)).toEqual(['SIP_ERR_CONTENT_LENGTH']);
    expect(p.failed?.code).toBe('SIP_ERR_CONTENT_LENGTH');
    expect(p.push(Buffer.from(msg('more')))).toEqual([]);
  });

  it('reports a malformed but framed message and continues with the next one', () => {
    const p = new SipStreamParser();
    const bad = msg('s').replace('OPTIONS sip:a@example.com SIP/2.0', 'OPTIONS  sip:a SIP/2.0');
    expect(texts(p.push(Buffer.from(bad + msg('t'))))).toEqual([
      'SIP_ERR_BAD_START_LINE',
      msg('t'),
    ]);
    expect(p.failed).toBeUndefined();
  });

  it('bounds the head size: endless headers fail instead of buffering forever', () => {
    const p = new SipStreamParser({ maxMessageBytes: 1024 });
    let out: ParseResult[] = p.push(Buffer.from('OPTIONS sip:a@example.com SIP/2.0\r\n'));
    for (let i = 0; i < 100 && out.length === 0; i++)
      out = p.push(Buffer.from('X-Pad: 0123456789\r\n'));
    expect(texts(out)).toEqual(['SIP_ERR_MESSAGE_TOO_LARGE']);
  });

  it('emits through onMessage as well as returning', () => {
    const seen: ParseResult[] = [];
    const p = new SipStreamParser({ onMessage: (r) => seen.push(r) });
    p.push(Buffer.from(msg('e')));
    expect(texts(seen)).toEqual([msg('e')]);
  });

  it('gives messages that stay valid after later chunks reuse the buffer', () => {
    const p = new SipStreamParser();
    const [first] = p.push(Buffer.from(msg('one', 'aaaa')));
    for (let i = 0; i < 50; i++) p.push(Buffer.from(msg(`n${i}`, 'zzzzzzzz')));
    expect(first?.ok && first.message.callId()).toBe('one');
    expect(first?.ok && first.message.bodyText()).toBe('aaaa');
  });
});

describe('limits are options with safe defaults', () => {
  const base = msg('l', 'x'.repeat(100));
  it('rejects a datagram above maxMessageBytes', () => {
    const r = parse(base, { maxMessageBytes: 64 });
    expect(!r.ok && r.error.code).toBe('SIP_ERR_MESSAGE_TOO_LARGE');
  });
  it('rejects more than maxHeaders header lines', () => {
    const r = parse(base, { maxHeaders: 2 });
    expect(!r.ok && r.error.code).toBe('SIP_ERR_TOO_MANY_HEADERS');
  });
  it('rejects a header line above maxHeaderLineBytes', () => {
    const r = parse(base.replace('Call-ID: l', `Call-ID: ${'l'.repeat(200)}`), {
      maxHeaderLineBytes: 100,
    });
    expect(!r.ok && r.error.code).toBe('SIP_ERR_HEADER_TOO_LONG');
  });
  it('rejects a body above maxBodyBytes', () => {
    const r = parse(base, { maxBodyBytes: 10 });
    expect(!r.ok && r.error.code).toBe('SIP_ERR_BODY_TOO_LARGE');
  });
  it('accepts the same message with the defaults', () => {
    expect(parse(base).ok).toBe(true);
  });
});

describe('parse errors are values', () => {
  it.each([
    ['', 'SIP_ERR_EMPTY'],
    ['\r\n\r\n', 'SIP_ERR_EMPTY'],
    ['HELLO\r\n\r\n', 'SIP_ERR_BAD_START_LINE'],
    ['INVITE sip:a@b SIP/2.0\r\nNoColonHere\r\n\r\n', 'SIP_ERR_BAD_HEADER'],
    ['INVITE sip:a@b SIP/2.0\r\nBad Name: x\r\n\r\n', 'SIP_ERR_BAD_HEADER'],
    ['SIP/2.0 99 Too Small\r\n\r\n', 'SIP_ERR_BAD_STATUS'],
    ['SIP/2.0 700 Too Big\r\n\r\n', 'SIP_ERR_BAD_STATUS'],
    ['SIP/2.x 200 OK\r\n\r\n', 'SIP_ERR_BAD_START_LINE'],
    ['INVITE sip:a@b SIP/2.0\r\nContent-Length: 1x\r\n\r\n', 'SIP_ERR_CONTENT_LENGTH'],
    ['INVITE sip:a@b SIP/2.0\r\nl: 99999999999\r\n\r\n', 'SIP_ERR_CONTENT_LENGTH'],
  ])('%j gives %s', (input, code) => {
    const r = parse(input);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code).toBe(code);
  });
});
