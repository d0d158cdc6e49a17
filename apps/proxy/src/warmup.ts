/**
 * Start-up warm-up: before the proxy listens, synthetic calls of the usual flow (INVITE with SDP,
 * 100, 180, 200 with SDP, ACK, BYE, 200) run through the functions the live path uses, so that
 * V8 has compiled them before the first real call arrives: `@pinhole/sip` parse and validate,
 * the header accessors the core reads, Via stamping and Record-Route/Via manipulation,
 * serialisation, and a private `@pinhole/policy` instance evaluating each offer/answer.
 *
 * Nothing leaves the process: no transport, no FCP client, no transaction layer, no metrics, no
 * logger is touched. The synthetic addresses are from 198.18.0.0/15 (RFC 2544 benchmarking): the
 * callee's side, 198.19.0.0/16, plays the protected network.
 * Bounded in calls and in time.
 */
import { parse, serialize, validate, type SipMessage } from '@pinhole/sip';
import { Policy, type PolicyConfigInput } from '@pinhole/policy';
import { fnv1a, stampVia, topViaText } from './sip-util.js';

export interface WarmupOptions {
  /** Synthetic calls at most (7 messages each). Default 2000. */
  readonly maxCalls?: number;
  /** Time budget, milliseconds; checked after each call. Default 300. */
  readonly budgetMs?: number;
  /** Policy settings to evaluate under (the live ones); networks are replaced by synthetic ones. */
  readonly policy?: PolicyConfigInput;
}

export interface WarmupResult {
  readonly calls: number;
  readonly messages: number;
  readonly ms: number;
}

const CALLER = '198.18.0.10';
const CALLEE = '198.19.0.20';
const PROXY = '198.18.0.1';

function sdp(ip: string, port: number): string {
  return (
    `v=0\r\no=- 1 1 IN IP4 ${ip}\r\ns=-\r\nc=IN IP4 ${ip}\r\nt=0 0\r\n` +
    `m=audio ${port} RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n`
  );
}

function request(method: string, seq: number, id: string, toTag: string, body: string): string {
  const len = Buffer.byteLength(body);
  return (
    `${method} sip:service@${CALLEE}:5060 SIP/2.0\r\n` +
    `Via: SIP/2.0/UDP ${CALLER}:5061;branch=z9hG4bK-w${id}-${seq};rport\r\n` +
    `From: sipp <sip:sipp@${CALLER}:5061>;tag=w${id}\r\n` +
    `To: <sip:service@${CALLEE}:5060>${toTag}\r\n` +
    `Call-ID: warm-${id}@${CALLER}\r\n` +
    `CSeq: ${seq} ${method}\r\n` +
    `Contact: <sip:sipp@${CALLER}:5061>\r\n` +
    `Max-Forwards: 70\r\n` +
    (len > 0 ? `Content-Type: application/sdp\r\n` : '') +
    `Content-Length: ${len}\r\n\r\n${body}`
  );
}

function response(
  status: number,
  reason: string,
  method: string,
  seq: number,
  id: string,
  toTag: string,
  body: string,
): string {
  const len = Buffer.byteLength(body);
  return (
    `SIP/2.0 ${status} ${reason}\r\n` +
    `Via: SIP/2.0/UDP ${PROXY}:5060;branch=z9hG4bK-phw${id}-${seq}\r\n` +
    `Via: SIP/2.0/UDP ${CALLER}:5061;branch=z9hG4bK-w${id}-${seq};rport=5061;received=${CALLER}\r\n` +
    (method === 'INVITE' ? `Record-Route: <sip:${PROXY}:5060;lr>\r\n` : '') +
    `From: sipp <sip:sipp@${CALLER}:5061>;tag=w${id}\r\n` +
    `To: <sip:service@${CALLEE}:5060>${toTag}\r\n` +
    `Call-ID: warm-${id}@${CALLER}\r\n` +
    `CSeq: ${seq} ${method}\r\n` +
    (status >= 200 ? `Contact: <sip:service@${CALLEE}:5060>\r\n` : '') +
    (len > 0 ? `Content-Type: application/sdp\r\n` : '') +
    `Content-Length: ${len}\r\n\r\n${body}`
  );
}

/** What the core does to a received request before and while forwarding it. */
function inboundRequest(bytes: Buffer, srcPort: number): SipMessage | undefined {
  const r = parse(bytes);
  if (!r.ok) return undefined;
  const msg = r.message;
  if (!validate(msg, { proxyRequire: [] }).ok) return undefined;
  const via = msg.topVia();
  if (via) {
    const stamped = stampVia(via, topViaText(msg) ?? '', CALLER, srcPort, true);
    if (stamped !== undefined) {
      msg.removeTopVia();
      msg.prependVia(stamped);
    }
  }
  msg.method.toUpperCase();
  msg.maxForwards();
  msg.route();
  msg.requestUriParsed();
  msg.callId();
  msg.cseq();
  msg.from();
  msg.to();
  msg.contacts();
  msg.sessionExpires();
  fnv1a([via?.branch, msg.callId(), msg.requestUri, String(msg.cseq()?.seq)]);
  const out = msg.clone();
  out.decrementMaxForwards();
  if (msg.method === 'INVITE') out.prependRecordRoute(`<sip:${PROXY}:5060;lr>`);
  out.prependVia(`SIP/2.0/UDP ${PROXY}:5060;branch=z9hG4bK-phw.${srcPort}`);
  serialize(out);
  return out;
}

/** What the core does to a received response before relaying it upstream. */
function inboundResponse(bytes: Buffer): SipMessage | undefined {
  const r = parse(bytes);
  if (!r.ok) return undefined;
  const msg = r.message;
  if (!validate(msg).ok) return undefined;
  msg.topVia();
  msg.cseq();
  msg.callId();
  msg.to();
  msg.recordRoute();
  msg.contacts();
  msg.sessionExpires();
  msg.removeTopVia();
  msg.topVia();
  serialize(msg);
  return msg;
}

/**
 * Runs up to `maxCalls` synthetic calls (stopping early once `budgetMs` has passed). Never
 * throws: a failure only ends the warm-up early.
 */
export function warmUp(opts: WarmupOptions = {}): WarmupResult {
  const maxCalls = opts.maxCalls ?? 2000;
  const budgetMs = opts.budgetMs ?? 300;
  const start = performance.now();
  let calls = 0;
  let messages = 0;
  try {
    const policy = new Policy({
      ...opts.policy,
      protectedNetworks: ['198.19.0.0/16'],
      firewallAddresses: [PROXY],
    });
    const src = { address: CALLER, port: 5061, transport: 'UDP' };
    const dst = { address: CALLEE, port: 5060, transport: 'UDP' };
    const offer = sdp(CALLER, 6000);
    const answer = sdp(CALLEE, 7000);
    const feed = (message: SipMessage, upstream: boolean, now: number): void => {
      policy.handle({
        type: 'sip',
        message,
        source: upstream ? src : dst,
        destination: upstream ? dst : src,
        now,
      });
      messages++;
    };
    for (; calls < maxCalls; calls++) {
      const id = calls.toString(36);
      const tt = `;tag=c${id}`;
      const now = start + calls;
      const invite = inboundRequest(Buffer.from(request('INVITE', 1, id, '', offer)), 5061);
      if (invite) feed(invite, true, now);
      for (const [st, reason, tag, body] of [
        [100, 'Trying', '', ''],
        [180, 'Ringing', tt, ''],
        [200, 'OK', tt, answer],
      ] as const) {
        const m = inboundResponse(Buffer.from(response(st, reason, 'INVITE', 1, id, tag, body)));
        if (m) feed(m, false, now);
      }
      const ack = inboundRequest(Buffer.from(request('ACK', 1, id, tt, '')), 5061);
      if (ack) feed(ack, true, now);
      const bye = inboundRequest(Buffer.from(request('BYE', 2, id, tt, '')), 5061);
      if (bye) feed(bye, true, now);
      const ok = inboundResponse(Buffer.from(response(200, 'OK', 'BYE', 2, id, tt, '')));
      if (ok) feed(ok, false, now);
      if (performance.now() - start >= budgetMs) {
        calls++;
        break;
      }
    }
  } catch {
    // A warm-up problem must never stop the proxy from starting.
  }
  return { calls, messages, ms: performance.now() - start };
}
