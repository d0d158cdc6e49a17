// Benchmark of the policy engine alone (SIP parsing excluded): a complete call with early media,
// answer, ACK, a session refresh (re-INVITE) and BYE, for many concurrent calls, and the hostile
// case of an answer with many refused streams. Runs against the built dist/; bounded in time.
// Usage: npm run build -w @pinhole/sip -w @pinhole/policy && npm run bench -w @pinhole/policy
import { parse } from '@pinhole/sip';
import { Policy } from '../dist/index.js';

const CALLS = Number(process.env.CALLS ?? 20000);
const MAX_MS = Number(process.env.MAX_MS ?? 20000);

function msg(lines, body = '') {
  const head = [...lines];
  if (body) head.push('Content-Type: application/sdp');
  head.push(`Content-Length: ${Buffer.byteLength(body)}`);
  const r = parse(head.join('\r\n') + '\r\n\r\n' + body);
  if (!r.ok) throw new Error(r.error.reason);
  return r.message;
}
const sdp = (addr, port, extra = '') =>
  `v=0\r\no=- 1 1 IN IP4 ${addr}\r\ns=-\r\nc=IN IP4 ${addr}\r\nt=0 0\r\nm=audio ${port} RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\n${extra}`;

function call(i) {
  const id = `bench-${i}`;
  const a = `198.19.${(i >> 8) & 255}.${i & 255}`;
  const b = `198.18.${(i >> 8) & 255}.${i & 255}`;
  const port = 10000 + 2 * (i % 20000);
  const from = `<sip:alice@atlanta.example.com>;tag=${id}-a`;
  const to = `<sip:bob@biloxi.example.com>;tag=${id}-b`;
  const common = (cseq) => [`From: ${from}`, `To: ${to}`, `Call-ID: ${id}`, `CSeq: ${cseq}`];
  return [
    msg(
      [
        'INVITE sip:bob@biloxi.example.com SIP/2.0',
        `Via: SIP/2.0/UDP ${a}:5060;branch=z9hG4bK${id}`,
        'Max-Forwards: 70',
        `From: ${from}`,
        'To: <sip:bob@biloxi.example.com>',
        `Call-ID: ${id}`,
        'CSeq: 1 INVITE',
        `Contact: <sip:alice@${a}>`,
        'Supported: timer',
        'Session-Expires: 1800',
      ],
      sdp(a, 4000),
    ),
    msg(
      [
        'SIP/2.0 183 Session Progress',
        `Via: SIP/2.0/UDP ${a}:5060;branch=z9hG4bK${id}`,
        ...common('1 INVITE'),
        `Contact: <sip:bob@${b}>`,
      ],
      sdp(b, port),
    ),
    msg(
      [
        'SIP/2.0 200 OK',
        `Via: SIP/2.0/UDP ${a}:5060;branch=z9hG4bK${id}`,
        ...common('1 INVITE'),
        `Contact: <sip:bob@${b}>`,
        'Require: timer',
        'Session-Expires: 1800;refresher=uac',
      ],
      sdp(b, port),
    ),
    msg([
      'ACK sip:bob@x SIP/2.0',
      `Via: SIP/2.0/UDP ${a}:5060;branch=z9hG4bK${id}x`,
      'Max-Forwards: 70',
      ...common('1 ACK'),
    ]),
    msg(
      [
        'INVITE sip:bob@x SIP/2.0',
        `Via: SIP/2.0/UDP ${a}:5060;branch=z9hG4bK${id}r`,
        'Max-Forwards: 70',
        ...common('2 INVITE'),
        'Session-Expires: 1800;refresher=uac',
      ],
      sdp(a, 4000),
    ),
    msg(
      [
        'SIP/2.0 200 OK',
        `Via: SIP/2.0/UDP ${a}:5060;branch=z9hG4bK${id}r`,
        ...common('2 INVITE'),
        'Session-Expires: 1800;refresher=uac',
      ],
      sdp(b, port),
    ),
    msg([
      'BYE sip:bob@x SIP/2.0',
      `Via: SIP/2.0/UDP ${a}:5060;branch=z9hG4bK${id}b`,
      'Max-Forwards: 70',
      ...common('3 BYE'),
    ]),
  ];
}

const rows = [];
const started = Date.now();
const prepared = [];
for (let i = 0; i < CALLS && Date.now() - started < MAX_MS / 2; i++) prepared.push(call(i));

// 1. Full calls, phase by phase (all INVITEs, then all 183s, ...): many concurrent calls in state.
//    "warm": the header accessors were already used (as the transaction layer does before the
//    policy sees a message), so the time is the policy's own plus SDP parsing. "cold": the first
//    access to each header happens inside the policy.
function fullCalls(label, calls, warm) {
  if (warm) {
    for (const c of calls) {
      for (const m of c) {
        m.callId();
        m.from();
        m.to();
        m.cseq();
        m.contacts();
        m.contentType();
        m.sessionExpires();
        m.minSE();
        m.supported();
        m.require();
      }
    }
  }
  const policy = new Policy({ protectedNetworks: ['198.18.0.0/16'] });
  let intents = 0;
  const lat = [];
  const t0 = process.hrtime.bigint();
  for (let step = 0; step < 7; step++) {
    for (let i = 0; i < calls.length; i++) {
      const s = process.hrtime.bigint();
      intents += policy.handle({
        type: 'sip',
        message: calls[i][step],
        now: step * 1000,
        source: { address: '198.18.0.10', port: 5060 },
      }).intents.length;
      if ((i & 15) === 0) lat.push(Number(process.hrtime.bigint() - s) / 1000);
    }
  }
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  lat.sort((x, y) => x - y);
  const events = calls.length * 7;
  rows.push([
    label,
    events,
    Math.round(events / (ms / 1000)),
    Math.round(calls.length / (ms / 1000)),
    intents,
    lat[Math.floor(lat.length * 0.5)].toFixed(1),
    lat[Math.floor(lat.length * 0.99)].toFixed(1),
  ]);
  if (policy.stats().holes !== 0) throw new Error('holes left after BYE');
}
const half = Math.floor(prepared.length / 2);
fullCalls(`full call, ${half} concurrent calls, cold messages`, prepared.slice(0, half), false);
fullCalls(
  `full call, ${prepared.length - half} concurrent calls, headers pre-parsed`,
  prepared.slice(half),
  true,
);

// 2. Hostile answers: 8 streams each, every one refused (broadcast address).
{
  const policy = new Policy({ protectedNetworks: ['198.18.0.0/16'], maxStreamsPerCall: 8 });
  const n = Math.min(prepared.length, 5000);
  const offers = [];
  for (let i = 0; i < n; i++) {
    const id = `h-${i}`;
    const m = Array.from({ length: 8 }, (_, k) => `m=audio ${4000 + 2 * k} RTP/AVP 0`).join('\r\n');
    const ans = Array.from(
      { length: 8 },
      (_, k) => `m=audio ${5000 + 2 * k} RTP/AVP 0\r\nc=IN IP4 198.18.255.255`,
    ).join('\r\n');
    offers.push([
      msg(
        [
          'INVITE sip:b@x SIP/2.0',
          'Via: SIP/2.0/UDP 198.19.0.1;branch=z9hG4bKh' + i,
          `From: <sip:a@x>;tag=${id}`,
          'To: <sip:b@x>',
          `Call-ID: ${id}`,
          'CSeq: 1 INVITE',
        ],
        `v=0\r\no=- 1 1 IN IP4 198.19.0.1\r\ns=-\r\nc=IN IP4 198.19.0.1\r\nt=0 0\r\n${m}\r\n`,
      ),
      msg(
        [
          'SIP/2.0 200 OK',
          'Via: SIP/2.0/UDP 198.19.0.1;branch=z9hG4bKh' + i,
          `From: <sip:a@x>;tag=${id}`,
          `To: <sip:b@x>;tag=${id}b`,
          `Call-ID: ${id}`,
          'CSeq: 1 INVITE',
        ],
        `v=0\r\no=- 1 1 IN IP4 198.18.0.5\r\ns=-\r\nc=IN IP4 198.18.0.5\r\nt=0 0\r\n${ans}\r\n`,
      ),
    ]);
  }
  let refusals = 0;
  const t0 = process.hrtime.bigint();
  for (const [inv, ok] of offers) {
    policy.handle({ type: 'sip', message: inv, now: 0 });
    refusals += policy.handle({ type: 'sip', message: ok, now: 1 }).refusals.length;
  }
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  rows.push([
    `hostile 8-stream answers, all refused`,
    n * 2,
    Math.round((n * 2) / (ms / 1000)),
    Math.round(n / (ms / 1000)),
    `${refusals} refusals`,
    '-',
    '-',
  ]);
}

console.log('| scenario | events | events/s | calls/s | intents | p50 µs/event | p99 µs/event |');
console.log('|---|---|---|---|---|---|---|');
for (const r of rows) console.log(`| ${r.join(' | ')} |`);
