/**
 * A scripted caller and callee on an in-memory transport: the bench scenario (INVITE with SDP,
 * 100, 180, 200 with SDP on a different media port per call, ACK, hold, BYE, 200) played against
 * a `ProxyCore` without sockets. The start-up warm-up (warmup.ts) runs its synthetic calls on it,
 * and `bench/core.mjs` measures the proxy's JavaScript per call with it.
 *
 * The messages are built like sipp's built-in UAC and UAS build theirs (the same headers in the
 * same order, the route set from Record-Route, the BYE to the callee's Contact), so the core,
 * the transaction layer, the firewall module and the policy take the same paths as on real calls.
 * Datagrams "on the wire" reach the core on a later event-loop turn, as from a socket.
 */
import type { CoreTransport } from './proxy-core.js';
import { udpInbound, type Inbound, type Listener, type Peer } from './transport.js';

export interface ScriptedCallsOptions {
  /** The proxy's listener: requests are addressed to it, and it is the one `send` goes out of. */
  readonly listener: Listener;
  readonly caller: Peer;
  readonly callee: Peer;
  /** Media address in the callee's answer (`c=`): the protected side, so holes are opened. */
  readonly calleeMedia: string;
  /** Media address in the caller's offer. Default: the caller's address. */
  readonly callerMedia?: string;
  /** Between the ACK and the BYE, ms. 0: on the next turn. */
  readonly holdMs: number;
  /** Call-ID suffix (`<n>-<tag>@<caller>`), so runs can be told apart. Default `scripted`. */
  readonly tag?: string;
}

interface Call {
  readonly n: number;
  invited: boolean;
  answered: boolean;
  done: boolean;
  to: string;
  routes: string[];
  target: string;
}

const CRLF = '\r\n';

function headLines(bytes: Buffer | Uint8Array): string[] {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  return text.slice(0, end === -1 ? text.length : end).split(CRLF);
}

function pick(lines: readonly string[], name: string): string[] {
  return lines.filter((l) => l.toLowerCase().startsWith(name));
}

function first(lines: readonly string[], name: string): string {
  return pick(lines, name)[0] ?? '';
}

function sdp(address: string, port: number): string {
  return (
    `v=0${CRLF}o=pinhole 1 1 IN IP4 ${address}${CRLF}s=-${CRLF}c=IN IP4 ${address}${CRLF}` +
    `t=0 0${CRLF}m=audio ${port} RTP/AVP 0${CRLF}a=rtpmap:0 PCMU/8000${CRLF}`
  );
}

export class ScriptedCalls {
  readonly transport: CoreTransport;
  /** Calls answered by a 200 to their BYE. */
  completed = 0;
  /** Calls whose INVITE got a final response of 300 or more. */
  failed = 0;
  /** Datagrams the proxy sent to the scripted peers. */
  sent = 0;
  /** Datagrams the scripted peers sent to the proxy. */
  received = 0;
  readonly #o: ScriptedCallsOptions;
  readonly #tag: string;
  readonly #calls = new Map<string, Call>();
  readonly #queue: [string, Peer][] = [];
  readonly #timers = new Set<NodeJS.Timeout>();
  #scheduled = false;
  #closed = false;
  #receive: ((inb: Inbound) => void) | undefined;

  constructor(opts: ScriptedCallsOptions) {
    this.#o = opts;
    this.#tag = opts.tag ?? 'scripted';
    const listener = opts.listener;
    this.transport = {
      listeners: [listener],
      listenerFor: () => listener,
      send: (bytes, peer) => {
        if (this.#closed) return true;
        this.sent++;
        const lines = headLines(bytes);
        if (peer.address === opts.callee.address && peer.port === opts.callee.port) {
          this.#callee(lines);
        } else if (peer.address === opts.caller.address && peer.port === opts.caller.port) {
          this.#caller(lines);
        }
        return true;
      },
    };
  }

  /** Where the peers' datagrams go (the core's `receive`). */
  attach(receive: (inb: Inbound) => void): void {
    this.#receive = receive;
  }

  /** Calls started and not yet completed or failed. */
  get pending(): number {
    return this.#calls.size;
  }

  /** Stops the peers: pending holds are cleared, nothing more is delivered or answered. */
  close(): void {
    this.#closed = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    this.#queue.length = 0;
    this.#calls.clear();
  }

  /** The caller sends call `n`'s INVITE. */
  start(n: number): void {
    const { caller, listener } = this.#o;
    const callId = `${n}-${this.#tag}@${caller.address}`;
    const c: Call = {
      n,
      invited: false,
      answered: false,
      done: false,
      to: `To: service <sip:service@${listener.advertise}:${listener.port}>`,
      routes: [],
      target: '',
    };
    this.#calls.set(callId, c);
    const body = sdp(this.#o.callerMedia ?? caller.address, 41000);
    this.#toProxy(
      [
        `INVITE sip:service@${listener.advertise}:${listener.port} SIP/2.0`,
        `Via: SIP/2.0/UDP ${caller.address}:${caller.port};branch=z9hG4bK-${n}-1;rport`,
        this.#from(n),
        c.to,
        `Call-ID: ${callId}`,
        'CSeq: 1 INVITE',
        `Contact: <sip:sipp@${caller.address}:${caller.port};transport=UDP>`,
        'Max-Forwards: 70',
        'Subject: Pinhole test',
        'Content-Type: application/sdp',
        `Content-Length: ${body.length}`,
        '',
        body,
      ].join(CRLF),
      caller,
    );
  }

  #from(n: number): string {
    const { caller } = this.#o;
    return `From: sipp <sip:sipp@${caller.address}:${caller.port}>;tag=caller${n}`;
  }

  #request(c: Call, callId: string, method: string, seq: number): string {
    const { caller } = this.#o;
    return [
      `${method} ${c.target} SIP/2.0`,
      `Via: SIP/2.0/UDP ${caller.address}:${caller.port};branch=z9hG4bK-${c.n}-${seq}-${method};rport`,
      ...c.routes,
      this.#from(c.n),
      c.to,
      `Call-ID: ${callId}`,
      `CSeq: ${seq} ${method}`,
      `Contact: <sip:sipp@${caller.address}:${caller.port};transport=UDP>`,
      'Max-Forwards: 70',
      'Content-Length: 0',
      '',
      '',
    ].join(CRLF);
  }

  /** Datagrams reach the proxy on a later turn, all of one turn together, as from a socket. */
  #toProxy(text: string, peer: Peer): void {
    this.received++;
    this.#queue.push([text, peer]);
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      const receive = this.#receive;
      const listener = this.#o.listener;
      for (const [t, p] of this.#queue.splice(0)) {
        if (this.#closed) return;
        // Made as the transport makes its datagrams (one shape, see transport.ts).
        receive?.(udpInbound(Buffer.from(t, 'latin1'), p, listener));
      }
    });
  }

  #callee(lines: string[]): void {
    const { callee } = this.#o;
    const method = lines[0]?.split(' ')[0];
    const callIdLine = first(lines, 'call-id:');
    const c = this.#calls.get(callIdLine.slice(8).trim());
    if (c === undefined) return;
    const copy = [
      ...pick(lines, 'via:'),
      ...pick(lines, 'from:'),
      callIdLine,
      ...pick(lines, 'cseq:'),
    ];
    if (method === 'INVITE') {
      if (c.invited) return; // a retransmission
      c.invited = true;
      const to = `${first(lines, 'to:')};tag=callee${c.n}`;
      const rr = pick(lines, 'record-route:');
      const contact = `Contact: <sip:${callee.address}:${callee.port};transport=udp>`;
      this.#toProxy(
        ['SIP/2.0 180 Ringing', ...copy, to, ...rr, contact, 'Content-Length: 0', '', ''].join(
          CRLF,
        ),
        callee,
      );
      const body = sdp(this.#o.calleeMedia, 20000 + 2 * (c.n % 20000));
      this.#toProxy(
        [
          'SIP/2.0 200 OK',
          ...copy,
          to,
          ...rr,
          contact,
          'Content-Type: application/sdp',
          `Content-Length: ${body.length}`,
          '',
          body,
        ].join(CRLF),
        callee,
      );
    } else if (method === 'BYE') {
      this.#toProxy(
        ['SIP/2.0 200 OK', ...copy, first(lines, 'to:'), 'Content-Length: 0', '', ''].join(CRLF),
        callee,
      );
    }
  }

  #caller(lines: string[]): void {
    const { caller } = this.#o;
    const status = lines[0]?.split(' ')[1];
    const callId = first(lines, 'call-id:').slice(8).trim();
    const c = this.#calls.get(callId);
    if (c === undefined) return;
    const method = first(lines, 'cseq:').split(' ').pop();
    if (status === '200' && method === 'INVITE') {
      if (c.answered) return;
      c.answered = true;
      c.to = first(lines, 'to:');
      // The route set: Record-Route as received (a UAC uses it as is); the callee's Contact.
      c.routes = pick(lines, 'record-route:').map(
        (l) => `Route: ${l.slice(l.indexOf(':') + 1).trim()}`,
      );
      c.target = /<([^>]+)>/.exec(first(lines, 'contact:'))?.[1] ?? '';
      this.#toProxy(this.#request(c, callId, 'ACK', 1), caller);
      const bye = (): void => this.#toProxy(this.#request(c, callId, 'BYE', 2), caller);
      if (this.#o.holdMs <= 0) {
        bye();
      } else {
        const t = setTimeout(() => {
          this.#timers.delete(t);
          bye();
        }, this.#o.holdMs);
        this.#timers.add(t);
      }
    } else if (status === '200' && method === 'BYE') {
      if (c.done) return;
      c.done = true;
      this.completed++;
      this.#calls.delete(callId);
    } else if (Number(status) >= 300 && method === 'INVITE') {
      this.failed++;
      this.#calls.delete(callId);
    }
  }
}
