import { describe, expect, it } from 'vitest';
import { StreamFramer } from './stream-framer.js';

const msg = (body: string) =>
  `OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nl: ${Buffer.byteLength(body)}\r\n\r\n${body}`;

describe('stream framing (RFC 3261 §18.3)', () => {
  it('frames several messages in one chunk and skips CRLF keep-alives', () => {
    const f = new StreamFramer();
    const r = f.push(Buffer.from(`\r\n\r\n${msg('abc')}\r\n${msg('')}`));
    expect(r.ok).toBe(true);
    expect(r.messages.map((m) => m.toString())).toEqual([msg('abc'), msg('')]);
  });

  it('frames a message fed one byte at a time', () => {
    const f = new StreamFramer();
    const whole = Buffer.from(msg('v=0\r\n'));
    const out: string[] = [];
    for (const b of whole) out.push(...f.push(Buffer.from([b])).messages.map((m) => m.toString()));
    expect(out).toEqual([whole.toString()]);
    expect(f.pending).toBe(0);
  });

  it('reports a missing or negative Content-Length as unrecoverable', () => {
    expect(new StreamFramer().push(Buffer.from('OPTIONS sip:a SIP/2.0\r\n\r\n')).ok).toBe(false);
    const r = new StreamFramer().push(
      Buffer.from('OPTIONS sip:a SIP/2.0\r\nContent-Length: -999\r\n\r\n'),
    );
    expect(r.ok).toBe(false);
  });

  it('bounds the header section', () => {
    const r = new StreamFramer(100).push(Buffer.alloc(200, 0x41));
    expect(r.ok).toBe(false);
  });
});
