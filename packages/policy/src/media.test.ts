import type { MediaEndpoint } from '@pinhole/sip';
import { describe, expect, it } from 'vitest';
import { carriesRtcp, flowsToward, receivesMedia, transportOf } from './media.js';

function m(over: Partial<MediaEndpoint> = {}): MediaEndpoint {
  return {
    index: 0,
    type: 'audio',
    address: '198.18.2.201',
    addressType: 'IP4',
    port: 4000,
    portCount: 1,
    protocol: 'RTP/AVP',
    direction: 'sendrecv',
    rtcp: undefined,
    rtcpMux: false,
    disabled: false,
    ...over,
  };
}

const flows = (own: MediaEndpoint, peer?: MediaEndpoint): string[] =>
  flowsToward(own, peer).flows.map((f) => `${f.flow} ${f.protocol} ${f.address.text}:${f.port}`);

describe('SDP transports', () => {
  it.each([
    ['RTP/AVP', 'udp', true],
    ['RTP/SAVPF', 'udp', true],
    ['UDP/TLS/RTP/SAVPF', 'udp', true],
    ['udptl', 'udp', false],
    ['UDPTL', 'udp', false],
    ['TCP/MSRP', 'tcp', false],
    ['TCP/RTP/AVP', 'tcp', true],
    ['DCCP/RTP/AVP', undefined, true],
  ])('%s runs over %s (RTCP beside it: %s)', (proto, transport, rtcp) => {
    expect(transportOf(proto)).toBe(transport);
    expect(carriesRtcp(proto)).toBe(rtcp);
  });
});

describe('flowsToward', () => {
  it('RTP on the port, RTCP on port + 1 (RFC 3550 §11)', () => {
    expect(flows(m())).toEqual(['rtp udp 198.18.2.201:4000', 'rtcp udp 198.18.2.201:4001']);
  });

  it('honours a=rtcp with port and address (RFC 3605)', () => {
    expect(flows(m({ rtcp: { port: 5000, address: '198.18.2.9' } }))).toEqual([
      'rtp udp 198.18.2.201:4000',
      'rtcp udp 198.18.2.9:5000',
    ]);
  });

  it('reports an a=rtcp address that is not an IP, keeping the RTP flow', () => {
    const r = flowsToward(m({ rtcp: { port: 5000, address: 'rtcp.example.com' } }), undefined);
    expect(r.flows.map((f) => f.port)).toEqual([4000]);
    expect(r.problem?.code).toBe('address-invalid');
  });

  it('muxes RTCP only when both sides say a=rtcp-mux (RFC 5761)', () => {
    expect(flows(m({ rtcpMux: true }), m({ rtcpMux: true }))).toEqual([
      'rtp udp 198.18.2.201:4000',
    ]);
    expect(flows(m({ rtcpMux: true }), m())).toHaveLength(2);
    expect(flows(m({ rtcpMux: true }))).toHaveLength(2);
  });

  it('expands m=<port>/<count> to RTP/RTCP pairs', () => {
    expect(flows(m({ portCount: 2 }))).toEqual([
      'rtp udp 198.18.2.201:4000',
      'rtcp udp 198.18.2.201:4001',
      'rtp udp 198.18.2.201:4002',
      'rtcp udp 198.18.2.201:4003',
    ]);
    expect(flowsToward(m({ portCount: 17 }), undefined).problem?.code).toBe('sdp-invalid');
  });

  it('keeps RTCP but no RTP toward a party that will not receive (RFC 3264 §5.1)', () => {
    expect(flows(m({ direction: 'sendonly' }))).toEqual(['rtcp udp 198.18.2.201:4001']);
    expect(flows(m(), m({ direction: 'recvonly' }))).toEqual(['rtcp udp 198.18.2.201:4001']);
    expect(flows(m({ direction: 'inactive' }))).toEqual(['rtcp udp 198.18.2.201:4001']);
    expect(receivesMedia(m({ direction: 'recvonly' }), m({ direction: 'sendonly' }))).toBe(true);
  });

  it('opens nothing for port 0, c=0.0.0.0, c=::, or TCP port 9', () => {
    expect(flows(m({ port: 0, disabled: true }))).toEqual([]);
    expect(flows(m(), m({ port: 0, disabled: true }))).toEqual([]);
    expect(flows(m({ address: '0.0.0.0' }))).toEqual([]);
    expect(flows(m({ address: '::', addressType: 'IP6' }))).toEqual([]);
    expect(flows(m({ protocol: 'TCP/MSRP', port: 9 }))).toEqual([]);
  });

  it('T.38 udptl: the port only', () => {
    expect(flows(m({ type: 'image', protocol: 'udptl' }))).toEqual(['rtp udp 198.18.2.201:4000']);
  });

  it.each<[Partial<MediaEndpoint>, string]>([
    [{ address: undefined }, 'sdp-invalid'],
    [{ address: 'host.example.com' }, 'address-invalid'],
    [{ address: '2001:db8::1', addressType: 'IP4' }, 'address-invalid'],
    [{ address: '198.18.2.1', addressType: 'IP6' }, 'address-invalid'],
    [{ protocol: 'DCCP/RTP/AVP' }, 'protocol-unsupported'],
    [{ port: 70000 }, 'sdp-invalid'],
  ])('reports %j as %s', (over, code) => {
    const r = flowsToward(m(over), undefined);
    expect(r.flows).toEqual([]);
    expect(r.problem?.code).toBe(code);
  });
});
