/** SIP messages for the tests (not exported from the package). */
import { parse, type SipMessage } from '@pinhole/sip';

export const PROTECTED = '198.18.0.0/16';
export const ALICE = '198.19.2.101';
export const BOB = '198.18.2.201';

function msg(head: string[], body = ''): SipMessage {
  const lines = [...head];
  if (body) lines.push('Content-Type: application/sdp');
  lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
  const r = parse(lines.join('\r\n') + '\r\n\r\n' + body);
  if (!r.ok) throw new Error(r.error.reason);
  return r.message;
}

export function sdp(addr: string, ...ports: number[]): string {
  return (
    ['v=0', `o=- 1 1 IN IP4 ${addr}`, 's=-', `c=IN IP4 ${addr}`, 't=0 0']
      .concat(ports.map((p) => `m=audio ${p} RTP/AVP 0`))
      .join('\r\n') + '\r\n'
  );
}

export function invite(callId: string, body: string): SipMessage {
  return msg(
    [
      'INVITE sip:bob@biloxi.example.com SIP/2.0',
      `Via: SIP/2.0/UDP ${ALICE}:5060;branch=z9hG4bK${callId}`,
      'Max-Forwards: 70',
      `From: <sip:alice@atlanta.example.com>;tag=${callId}-a`,
      'To: <sip:bob@biloxi.example.com>',
      `Call-ID: ${callId}`,
      'CSeq: 1 INVITE',
      `Contact: <sip:alice@${ALICE}>`,
    ],
    body,
  );
}

export function answer(callId: string, body: string, status = 200): SipMessage {
  return msg(
    [
      `SIP/2.0 ${status} ${status === 200 ? 'OK' : 'Session Progress'}`,
      `Via: SIP/2.0/UDP ${ALICE}:5060;branch=z9hG4bK${callId}`,
      `From: <sip:alice@atlanta.example.com>;tag=${callId}-a`,
      `To: <sip:bob@biloxi.example.com>;tag=${callId}-b`,
      `Call-ID: ${callId}`,
      'CSeq: 1 INVITE',
      `Contact: <sip:bob@${BOB}>`,
    ],
    body,
  );
}

export function bye(callId: string): SipMessage {
  return msg([
    `BYE sip:bob@${BOB} SIP/2.0`,
    `Via: SIP/2.0/UDP ${ALICE}:5060;branch=z9hG4bK${callId}-bye`,
    'Max-Forwards: 70',
    `From: <sip:alice@atlanta.example.com>;tag=${callId}-a`,
    `To: <sip:bob@biloxi.example.com>;tag=${callId}-b`,
    `Call-ID: ${callId}`,
    'CSeq: 2 BYE',
  ]);
}
