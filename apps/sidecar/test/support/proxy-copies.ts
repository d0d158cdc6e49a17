/**
 * SIP messages as a record-routing proxy at 198.18.0.1:5060 would mirror them, for a call from
 * a UA at 198.18.0.10:5060 to a callee at 198.18.0.20:5060 (addresses from 198.18.0.0/15).
 */
import { decodeHep, type HepPacket } from '../../src/hep.js';
import { encodeHep } from '../../src/hep-encode.js';
import type { HepSource } from '../../src/receiver.js';

export const UA = { address: '198.18.0.10', port: 5060 };
export const SERVER = { address: '198.18.0.1', port: 5060 };
export const CALLEE = { address: '198.18.0.20', port: 5060 };
export const AGENT: HepSource = { transport: 'udp', address: '198.18.0.1', port: 40000 };

const SDP_UA =
  'v=0\r\no=- 1 1 IN IP4 198.18.0.10\r\ns=-\r\nc=IN IP4 198.18.0.10\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n';
/** What a media relay beside the proxy would write into the forwarded offer. */
const SDP_RELAYED = SDP_UA.replace(/198\.18\.0\.10/g, '198.18.0.99');

interface Msg {
  start: string;
  vias: string[];
  cseq: string;
  callId?: string;
  toTag?: string;
  rr?: boolean;
  body?: string;
}

export function sip(m: Msg): string {
  const lines = [
    m.start,
    ...m.vias.map((v) => `Via: ${v}`),
    ...(m.rr === true ? ['Record-Route: <sip:198.18.0.1;lr>'] : []),
    'From: "Jörg Ünal" <sip:joerg@198.18.0.10>;tag=fa',
    `To: <sip:bob@198.18.0.20>${m.toTag !== undefined ? `;tag=${m.toTag}` : ''}`,
    `Call-ID: ${m.callId ?? 'call-1@198.18.0.10'}`,
    `CSeq: ${m.cseq}`,
    ...(m.body !== undefined ? ['Content-Type: application/sdp'] : []),
    `Content-Length: ${Buffer.byteLength(m.body ?? '')}`,
    '',
    m.body ?? '',
  ];
  return lines.join('\r\n');
}

const VIA_UA = 'SIP/2.0/UDP 198.18.0.10:5060;branch=z9hG4bKua1';
const VIA_UA_RCVD = 'SIP/2.0/UDP 198.18.0.10:5060;branch=z9hG4bKua1;received=198.18.0.10';
const viaServer = (b: string): string => `SIP/2.0/UDP 198.18.0.1:5060;branch=${b}`;

export interface CallCopies {
  inviteIn: string;
  inviteOut: (branch?: string) => string;
  tryingOut: string;
  tryingIn: string;
  ringingIn: (tag?: string) => string;
  ringingOut: (tag?: string) => string;
  okIn: string;
  okOut: string;
  ackIn: string;
  ackOut: string;
  registerIn: string;
}

export const call: CallCopies = {
  inviteIn: sip({
    start: 'INVITE sip:bob@198.18.0.20 SIP/2.0',
    vias: [VIA_UA],
    cseq: '1 INVITE',
    body: SDP_UA,
  }),
  inviteOut: (branch = 'z9hG4bKsrv1'): string =>
    sip({
      start: 'INVITE sip:bob@198.18.0.20 SIP/2.0',
      vias: [viaServer(branch), VIA_UA_RCVD],
      cseq: '1 INVITE',
      rr: true,
      body: SDP_RELAYED,
    }),
  tryingOut: sip({ start: 'SIP/2.0 100 Trying', vias: [VIA_UA_RCVD], cseq: '1 INVITE' }),
  tryingIn: sip({
    start: 'SIP/2.0 100 Trying',
    vias: [viaServer('z9hG4bKsrv1'), VIA_UA_RCVD],
    cseq: '1 INVITE',
  }),
  ringingIn: (tag = 'tb'): string =>
    sip({
      start: 'SIP/2.0 180 Ringing',
      vias: [viaServer('z9hG4bKsrv1'), VIA_UA_RCVD],
      cseq: '1 INVITE',
      toTag: tag,
      rr: true,
    }),
  ringingOut: (tag = 'tb'): string =>
    sip({
      start: 'SIP/2.0 180 Ringing',
      vias: [VIA_UA_RCVD],
      cseq: '1 INVITE',
      toTag: tag,
      rr: true,
    }),
  okIn: sip({
    start: 'SIP/2.0 200 OK',
    vias: [viaServer('z9hG4bKsrv1'), VIA_UA_RCVD],
    cseq: '1 INVITE',
    toTag: 'tb',
    rr: true,
    body: SDP_UA.replace(/198\.18\.0\.10/g, '198.18.0.20'),
  }),
  okOut: sip({
    start: 'SIP/2.0 200 OK',
    vias: [VIA_UA_RCVD],
    cseq: '1 INVITE',
    toTag: 'tb',
    rr: true,
    body: SDP_UA.replace(/198\.18\.0\.10/g, '198.18.0.98'),
  }),
  ackIn: sip({
    start: 'ACK sip:bob@198.18.0.20 SIP/2.0',
    vias: ['SIP/2.0/UDP 198.18.0.10:5060;branch=z9hG4bKua2'],
    cseq: '1 ACK',
    toTag: 'tb',
  }),
  ackOut: sip({
    start: 'ACK sip:bob@198.18.0.20 SIP/2.0',
    vias: [
      viaServer('z9hG4bKsrv2'),
      'SIP/2.0/UDP 198.18.0.10:5060;branch=z9hG4bKua2;received=198.18.0.10',
    ],
    cseq: '1 ACK',
    toTag: 'tb',
  }),
  registerIn: sip({
    start: 'REGISTER sip:198.18.0.1 SIP/2.0',
    vias: ['SIP/2.0/UDP 198.18.0.10:5060;branch=z9hG4bKreg1'],
    cseq: '7 REGISTER',
    callId: 'reg-1',
  }),
};

/** A decoded HEP packet carrying `payload` from `src` to `dst`. */
export function hepPacket(
  payload: string | Uint8Array,
  src: { address: string; port: number },
  dst: { address: string; port: number },
  extra: { protocolType?: number; captureId?: number } = {},
): HepPacket {
  const r = decodeHep(
    encodeHep({
      srcAddress: src.address,
      dstAddress: dst.address,
      srcPort: src.port,
      dstPort: dst.port,
      timeSeconds: 1_700_000_000,
      timeMicros: 500,
      payload,
      ...extra,
    }),
  );
  if (!r.ok) throw new Error(r.error.code);
  return r.packet;
}

/** A manual clock for the normalizer. */
export class FakeClock {
  t = 0;
  #timers: { at: number; fn: () => void; id: number }[] = [];
  #next = 1;
  now = (): number => this.t;
  setTimeout = (fn: () => void, ms: number): unknown => {
    const id = this.#next++;
    this.#timers.push({ at: this.t + ms, fn, id });
    return id;
  };
  clearTimeout = (h: unknown): void => {
    this.#timers = this.#timers.filter((x) => x.id !== h);
  };
  get pending(): number {
    return this.#timers.length;
  }
  advance(ms: number): void {
    this.t += ms;
    for (;;) {
      const due = this.#timers.filter((x) => x.at <= this.t).sort((a, b) => a.at - b.at)[0];
      if (!due) return;
      this.#timers = this.#timers.filter((x) => x !== due);
      due.fn();
    }
  }
}
