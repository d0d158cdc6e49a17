import { describe, expect, it } from 'vitest';
import { mediaEndpoints, rewriteSdp, type MediaEndpoint } from './index.js';

const OFFER = [
  'v=0',
  'o=alice 1 1 IN IP4 198.18.0.10',
  's=-',
  'c=IN IP4 198.18.0.10',
  't=0 0',
  'a=sendonly',
  'm=audio 49170 RTP/AVP 0',
  'a=rtcp:49171 IN IP4 198.18.0.11',
  'm=video 0 RTP/AVP 31',
  'm=audio 50000/2 RTP/SAVP 8',
  'c=IN IP6 2001:DB8::2',
  'a=recvonly',
  'a=rtcp-mux',
  'm=image 6000 udptl t38',
  'c=IN IP4 media.example.com',
  '',
].join('\r\n');

function media(body: string): readonly MediaEndpoint[] {
  const r = mediaEndpoints(body);
  if (!r.ok) throw new Error(`${r.error.code} ${r.error.reason}`);
  return r.media;
}

describe('mediaEndpoints (RFC 4566, RFC 3264, RFC 3605, RFC 5761)', () => {
  const m = media(OFFER);

  it('lists one endpoint per m-line, media-level c= over session-level', () => {
    expect(m.map((e) => [e.index, e.type, e.address, e.addressType, e.port, e.portCount])).toEqual([
      [0, 'audio', '198.18.0.10', 'IP4', 49170, 1],
      [1, 'video', '198.18.0.10', 'IP4', 0, 1],
      [2, 'audio', '2001:db8::2', 'IP6', 50000, 2],
      [3, 'image', 'media.example.com', 'IP4', 6000, 1],
    ]);
  });

  it('reads protocol, direction (media over session), rtcp and rtcp-mux', () => {
    expect(m.map((e) => e.protocol)).toEqual(['RTP/AVP', 'RTP/AVP', 'RTP/SAVP', 'udptl']);
    expect(m.map((e) => e.direction)).toEqual(['sendonly', 'sendonly', 'recvonly', 'sendonly']);
    expect(m[0]?.rtcp).toEqual({ port: 49171, address: '198.18.0.11' });
    expect(m[2]?.rtcpMux).toBe(true);
    expect(m[0]?.rtcpMux).toBe(false);
  });

  it('marks port 0 streams disabled (RFC 3264 §6) and FQDN addresses', () => {
    expect(m.map((e) => e.disabled)).toEqual([false, true, false, false]);
    expect(m.map((e) => e.fqdn)).toEqual([false, false, false, true]);
  });

  it('defaults to sendrecv and to no address when there is no c= at all', () => {
    const r = media(
      'v=0\r\no=- 1 1 IN IP4 198.18.0.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n',
    );
    expect(r[0]).toMatchObject({
      direction: 'sendrecv',
      address: undefined,
      addressType: undefined,
    });
  });

  it.each([
    ['not sdp at all', 'SIP_ERR_BAD_SDP'],
    ['v=0\r\nm=audio 70000 RTP/AVP 0\r\n', 'SIP_ERR_BAD_SDP_PORT'],
    ['v=0\r\nm=audio -1 RTP/AVP 0\r\n', 'SIP_ERR_BAD_SDP_PORT'],
    ['v=0\r\nm=audio 4000/0 RTP/AVP 0\r\n', 'SIP_ERR_BAD_SDP_PORT'],
    ['v=0\r\nm=audio 4000 RTP/AVP 0\r\na=rtcp:99999\r\n', 'SIP_ERR_BAD_SDP_PORT'],
    ['v=0\r\nc=IN IP4 999.1.1.1\r\nm=audio 4000 RTP/AVP 0\r\n', 'SIP_ERR_BAD_SDP_ADDRESS'],
    ['v=0\r\nc=IN IP4 2001:db8::1\r\nm=audio 4000 RTP/AVP 0\r\n', 'SIP_ERR_BAD_SDP_ADDRESS'],
    ['v=0\r\nc=IN IP6 198.18.0.1\r\nm=audio 4000 RTP/AVP 0\r\n', 'SIP_ERR_BAD_SDP_ADDRESS'],
    ['v=0\r\nc=IN IP9 198.18.0.1\r\nm=audio 4000 RTP/AVP 0\r\n', 'SIP_ERR_BAD_SDP_ADDRESS'],
    ['v=0\r\nc=IN IP4 a b\r\n', 'SIP_ERR_BAD_SDP_ADDRESS'],
    ['v=0\r\nm=audio\r\n', 'SIP_ERR_BAD_SDP'],
    ['v=0\r\ngarbage line\r\n', 'SIP_ERR_BAD_SDP'],
    [`v=0\r\na=x:${'1'.repeat(5000)}\r\n`, 'SIP_ERR_BAD_SDP'],
  ])('malformed SDP %j is the error value %s', (body, code) => {
    const r = mediaEndpoints(body);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code).toBe(code);
  });

  it('accepts bytes as well as text', () => {
    expect(mediaEndpoints(Buffer.from(OFFER)).ok).toBe(true);
  });
});

describe('rewriteSdp', () => {
  it('rewrites every c= address and chosen ports, keeping the other lines', () => {
    const r = rewriteSdp(OFFER, {
      address: '198.18.5.5',
      media: [
        { index: 0, port: 30000, rtcpPort: 30001 },
        { index: 2, port: 30002 },
      ],
    });
    if (!r.ok) throw new Error(r.error.reason);
    const text = r.body.toString();
    expect(text).toContain('o=alice 1 1 IN IP4 198.18.0.10\r\n');
    expect(text).toContain('a=rtcp:30001 IN IP4 198.18.0.11\r\n');
    expect(text).toContain('m=audio 30002/2 RTP/SAVP 8\r\n');
    const after = media(text);
    expect(after.map((e) => [e.address, e.port])).toEqual([
      ['198.18.5.5', 30000],
      ['198.18.5.5', 0],
      ['198.18.5.5', 30002],
      ['198.18.5.5', 6000],
    ]);
    expect(after[2]?.addressType).toBe('IP4');
  });

  it('adds a media-level c= when a section has none, and rewrites o= on request', () => {
    const r = rewriteSdp(OFFER, {
      address: '2001:db8::99',
      origin: true,
      media: [{ index: 1, address: '198.18.9.9' }],
    });
    if (!r.ok) throw new Error(r.error.reason);
    expect(r.body.toString()).toContain('o=alice 1 1 IN IP6 2001:db8::99\r\n');
    expect(media(r.body.toString()).map((e) => e.address)).toEqual([
      '2001:db8::99',
      '198.18.9.9',
      '2001:db8::99',
      '2001:db8::99',
    ]);
  });

  it.each([
    [{ address: 'media.example.com' }, 'SIP_ERR_BAD_SDP_ADDRESS'],
    [{ media: [{ index: 0, port: 70000 }] }, 'SIP_ERR_BAD_SDP_PORT'],
    [{ media: [{ index: 0, port: 1.5 }] }, 'SIP_ERR_BAD_SDP_PORT'],
    [{ media: [{ index: 9, port: 1 }] }, 'SIP_ERR_BAD_SDP'],
  ])('refuses bad edits %j', (edits, code) => {
    const r = rewriteSdp(OFFER, edits);
    expect(!r.ok && r.error.code).toBe(code);
  });
});
