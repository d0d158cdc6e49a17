import { Policy } from '@pinhole/policy';
import { parse, type SipMessage } from '@pinhole/sip';
import { afterEach, describe, expect, it } from 'vitest';
import { Firewall, toFcpPme, type FcpPmeInput, type FcpPort } from './firewall.js';
import { ProxyMetrics } from './metrics.js';

const quiet = { info: () => {}, warn: () => {}, debug: () => {}, error: () => {} };

function sdp(ip: string, port: number): string {
  return `v=0\r\no=- 1 1 IN IP4 ${ip}\r\ns=-\r\nc=IN IP4 ${ip}\r\nt=0 0\r\nm=audio ${port} RTP/AVP 0\r\n`;
}

function msg(text: string): SipMessage {
  const r = parse(Buffer.from(text));
  if (!r.ok) throw new Error(r.error.reason);
  return r.message;
}

const common = (cseq: string) => [
  'From: <sip:alice@198.18.0.2>;tag=a1',
  'Call-ID: fw-1',
  `CSeq: ${cseq}`,
];

function invite(): SipMessage {
  const body = sdp('198.18.0.2', 41000);
  return msg(
    [
      'INVITE sip:bob@198.19.0.2 SIP/2.0',
      'Via: SIP/2.0/UDP 198.18.0.2;branch=z9hG4bKfw1',
      'Max-Forwards: 70',
      'To: <sip:bob@198.19.0.2>',
      ...common('1 INVITE'),
      'Contact: <sip:alice@198.18.0.2>',
      'Content-Type: application/sdp',
      `Content-Length: ${body.length}`,
      '',
      body,
    ].join('\r\n'),
  );
}

function ok(): SipMessage {
  const body = sdp('198.19.0.2', 40000);
  return msg(
    [
      'SIP/2.0 200 OK',
      'Via: SIP/2.0/UDP 198.18.0.2;branch=z9hG4bKfw1',
      'To: <sip:bob@198.19.0.2>;tag=b1',
      ...common('1 INVITE'),
      'Contact: <sip:bob@198.19.0.2>',
      'Content-Type: application/sdp',
      `Content-Length: ${body.length}`,
      '',
      body,
    ].join('\r\n'),
  );
}

function bye(): SipMessage {
  return msg(
    [
      'BYE sip:bob@198.19.0.2 SIP/2.0',
      'Via: SIP/2.0/UDP 198.18.0.2;branch=z9hG4bKfw2',
      'Max-Forwards: 70',
      'To: <sip:bob@198.19.0.2>;tag=b1',
      ...common('2 BYE'),
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n'),
  );
}

class FakeFcp implements FcpPort {
  readonly sets: FcpPmeInput[] = [];
  readonly releases: FcpPmeInput[] = [];
  answer: 'ok' | 'refuse' | 'never' = 'ok';
  set(pme: FcpPmeInput) {
    this.sets.push(pme);
    if (this.answer === 'never') return new Promise<never>(() => {});
    return Promise.resolve({
      ok: this.answer === 'ok',
      outcomes: [{ server: 'fake', kind: this.answer === 'ok' ? 'installed' : 'refused' }],
    });
  }
  release(pme: FcpPmeInput) {
    this.releases.push(pme);
    return Promise.resolve({ ok: true, outcomes: [] });
  }
}

const firewalls: Firewall[] = [];
afterEach(() => {
  for (const f of firewalls.splice(0)) f.close();
});

function setup(failMode: 'open' | 'closed', answer: FakeFcp['answer']) {
  const fcp = new FakeFcp();
  fcp.answer = answer;
  const metrics = new ProxyMetrics({ transactions: () => 0, registrations: () => 0 });
  const fw = new Firewall({
    policy: new Policy({ protectedNetworks: ['198.19.0.0/16'] }),
    fcp,
    metrics,
    logger: quiet,
    failMode,
    deadlineMs: 50,
  });
  firewalls.push(fw);
  return { fw, fcp, metrics };
}

describe('firewall module', () => {
  it('holds the 200 with SDP until its SETs are acknowledged, then relays it', async () => {
    const { fw, fcp, metrics } = setup('closed', 'ok');
    expect(fw.passing({ message: invite() }).hold).toBeUndefined();
    const d = fw.passing({ message: ok() });
    expect(d.hold).toBeDefined();
    expect(await d.hold).toBe('relay');
    expect(fcp.sets.map((p) => `${p.dst}:${p.dstPort}`).sort()).toEqual([
      '198.19.0.2:40000',
      '198.19.0.2:40001',
    ]);
    expect(metrics.pinholes.get({ outcome: 'opened' })).toBe(2);
  });

  it('releases the holes when the BYE passes', async () => {
    const { fw, fcp } = setup('closed', 'ok');
    fw.passing({ message: invite() });
    await fw.passing({ message: ok() }).hold;
    fw.passing({ message: bye() });
    await new Promise((r) => setTimeout(r, 5));
    expect(fcp.releases.map((p) => p.dstPort).sort()).toEqual([40000, 40001]);
  });

  it('fail-closed: a SET not acknowledged before the deadline fails the response', async () => {
    const { fw } = setup('closed', 'never');
    fw.passing({ message: invite() });
    expect(await fw.passing({ message: ok() }).hold).toBe('fail');
  });

  it('fail-open: relays anyway when the firewall refuses', async () => {
    const { fw, metrics } = setup('open', 'refuse');
    fw.passing({ message: invite() });
    expect(await fw.passing({ message: ok() }).hold).toBe('relay');
    expect(metrics.pinholes.get({ outcome: 'failed' })).toBe(2);
  });

  it('writes host addresses without a prefix and keeps source prefixes', () => {
    expect(
      toFcpPme({
        protocol: 'udp',
        proto: 17,
        family: 4,
        source: { address: '198.18.0.0', prefix: 24 },
        destination: { address: '198.19.0.2', prefix: 32 },
        destinationPort: 40000,
      }),
    ).toEqual({ proto: 17, src: '198.18.0.0/24', dst: '198.19.0.2', dstPort: 40000 });
  });
});
