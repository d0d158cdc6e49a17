/**
 * A ProxyCore on a recording transport (no sockets), for the unit tests of the core and of the
 * firewall module.
 */
import { execFileSync } from 'node:child_process';
import { parse, type SipMessage } from '@pinhole/sip';
import { parseArgs } from '../src/config.js';
import { ProxyMetrics } from '../src/metrics.js';
import {
  ProxyCore,
  type CoreTransport,
  type LoadShedder,
  type Logger,
  type MediaGate,
} from '../src/proxy-core.js';
import type { Listener, Peer } from '../src/transport.js';

export const LISTENER: Listener = {
  transport: 'udp',
  host: '198.18.0.1',
  port: 5060,
  family: 4,
  advertise: '198.18.0.1',
  index: 0,
};
export const CALLER: Peer = { transport: 'udp', address: '198.18.0.2', port: 5062 };
export const CALLEE: Peer = { transport: 'udp', address: '198.19.0.2', port: 5060 };

export interface Sent {
  readonly msg: SipMessage;
  readonly to: Peer;
}

export const quiet: Logger = {
  info: () => undefined,
  warn: () => undefined,
  debug: () => undefined,
  error: () => undefined,
};

const cores: ProxyCore[] = [];

/** Closes every core made since the last call (afterEach). */
export function closeCores(): void {
  for (const c of cores.splice(0)) c.close();
}

export interface CoreHarness {
  readonly core: ProxyCore;
  readonly sent: Sent[];
  readonly metrics: ProxyMetrics;
  readonly receive: (text: string, peer?: Peer) => void;
  readonly to: (peer: Peer) => Sent[];
}

export function setup(
  args: string[] = [],
  gate?: MediaGate,
  metrics: ProxyMetrics = new ProxyMetrics({ transactions: () => 0, registrations: () => 0 }),
  overload?: LoadShedder,
  maxTransactions?: number,
): CoreHarness {
  const sent: Sent[] = [];
  const transport: CoreTransport = {
    listeners: [LISTENER],
    listenerFor: () => LISTENER,
    send(bytes, peer) {
      const r = parse(Buffer.from(bytes));
      if (!r.ok) throw new Error(`proxy sent unparsable bytes: ${r.error.reason}`);
      sent.push({ msg: r.message, to: peer });
      return true;
    },
  };
  const { config } = parseArgs(['--route', 'default=sip:198.19.0.2:5060', ...args]);
  const core = new ProxyCore({
    config,
    transport,
    metrics,
    logger: quiet,
    ...(gate ? { gate } : {}),
    ...(overload ? { overload } : {}),
    ...(maxTransactions !== undefined ? { maxTransactions } : {}),
  });
  cores.push(core);
  const receive = (text: string, peer: Peer = CALLER): void =>
    core.receive({ bytes: Buffer.from(text), peer, listener: LISTENER });
  const to = (peer: Peer): Sent[] =>
    sent.filter((s) => s.to.address === peer.address && s.to.port === peer.port);
  return { core, sent, receive, to, metrics };
}

export function invite(extra: string[] = [], branch = 'z9hG4bKc1', mf = 70, body = ''): string {
  return [
    'INVITE sip:bob@198.18.0.1 SIP/2.0',
    `Via: SIP/2.0/UDP 198.18.0.2:5062;branch=${branch};rport`,
    `Max-Forwards: ${mf}`,
    'From: <sip:alice@198.18.0.2>;tag=a1',
    'To: <sip:bob@198.18.0.1>',
    'Call-ID: call-1@198.18.0.2',
    'CSeq: 1 INVITE',
    'Contact: <sip:alice@198.18.0.2:5062>',
    ...extra,
    ...(body ? ['Content-Type: application/sdp'] : []),
    `Content-Length: ${Buffer.byteLength(body)}`,
    '',
    body,
  ].join('\r\n');
}

/** The caller's in-dialog BYE of `invite()`'s call, routed through the proxy's Record-Route. */
export function bye(requestUri = 'sip:bob@198.19.0.2:5060', branch = 'z9hG4bKbye1'): string {
  return [
    `BYE ${requestUri} SIP/2.0`,
    `Via: SIP/2.0/UDP 198.18.0.2:5062;branch=${branch}`,
    'Route: <sip:198.18.0.1:5060;lr>',
    'Max-Forwards: 70',
    'From: <sip:alice@198.18.0.2>;tag=a1',
    'To: <sip:bob@198.18.0.1>;tag=b1',
    'Call-ID: call-1@198.18.0.2',
    'CSeq: 2 BYE',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
}

/** The response a downstream UAS would send to the forwarded request. */
export function answer(
  req: SipMessage,
  status: number,
  reason: string,
  extra: string[] = [],
  body = '',
  tag = 'b1',
): string {
  const lines = [`SIP/2.0 ${status} ${reason}`];
  for (const h of req.headers()) {
    if (['via', 'from', 'call-id', 'cseq', 'record-route'].includes(h.name)) {
      lines.push(`${h.rawName}: ${h.value}`);
    }
  }
  lines.push(`To: ${req.get('to')}${status > 100 ? `;tag=${tag}` : ''}`, ...extra);
  if (body) lines.push('Content-Type: application/sdp');
  lines.push(`Content-Length: ${Buffer.byteLength(body)}`, '', body);
  return lines.join('\r\n');
}

export function sdp(ip: string, port: number): string {
  return `v=0\r\no=- 1 1 IN IP4 ${ip}\r\ns=-\r\nc=IN IP4 ${ip}\r\nt=0 0\r\nm=audio ${port} RTP/AVP 0\r\n`;
}

export const tick = (ms = 5): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Waits until `cond` holds, up to `tries` × 10 ms. */
export async function until(cond: () => boolean, tries = 200): Promise<void> {
  for (let i = 0; i < tries && !cond(); i++) await tick(10);
}

/**
 * Another process sends `count` datagrams to 127.0.0.1:`port` (`%n` in `message` is the datagram's
 * number) while this process's event loop is blocked: they wait in the kernel, as a proxy's input
 * does when it falls behind.
 */
export function sendWhileBlocked(port: number, message: string, count: number): void {
  const script = `const s=require('node:dgram').createSocket('udp4');const t=require('node:fs').readFileSync(0,'latin1');let n=0;const go=()=>{if(n++>=${count}){s.close();return;}s.send(t.replaceAll('%n',String(n)),${port},'127.0.0.1',go);};go();`;
  execFileSync(process.execPath, ['-e', script], { input: message, timeout: 10_000 });
}

/** A request as it would be re-sent on the wire (for loops). */
export function bytesOf(m: SipMessage): string {
  const lines = [`${m.method} ${m.requestUri} ${m.version}`];
  for (const h of m.headers()) lines.push(`${h.rawName}: ${h.value}`);
  lines.push('', '');
  return lines.join('\r\n');
}
