/**
 * From decoded HEP packets to SIP observations, with the copies a proxy mirrors sorted out.
 *
 * A stateful proxy mirrors each message twice: as received (dst = the server) and as sent
 * (src = the server), plus every retransmission. Both copies of one message share a key built
 * from what the server does not change: Call-ID, CSeq, From tag, the request method or the
 * status code (and To tag for responses, which tell forked branches apart), and the Via the
 * message's originator put there. That Via is found by position, because RFC 3261 §16.6 step 8
 * ("The proxy MUST insert a Via header field value into the copy before the existing Via header
 * field values") and §16.7 step 3 ("The proxy removes the topmost Via header field value from
 * the response") fix where the server's own Via is:
 *
 *   received request   Via: [origin, ...]           origin = Via 0
 *   sent request       Via: [server, origin, ...]   origin = Via 1 (Via 0 if the server made it)
 *   received response  Via: [server, origin, ...]   origin = Via 1 (Via 0 if the server made it)
 *   sent response      Via: [origin, ...]           origin = Via 0
 *
 * A 100 (Trying) is hop-by-hop (§16.7 step 5: "a proxy MUST NOT forward a 100 (Trying)
 * response"), so each side's 100 is its own message.
 */
import { createHash } from 'node:crypto';
import type { SipMessage } from '@pinhole/sip';
import { systemTimers, type TimerApi } from '@pinhole/fcp';
import type { HepPacket } from './hep.js';
import type { HepSource } from './receiver.js';
import { ipFromBytes, parseIp } from '@pinhole/policy';
import type {
  CopyClass,
  Endpoint,
  MediaSource,
  ObservationKind,
  SipObservation,
  SipParser,
} from './observation.js';
import type { ObservationDropReason, SidecarMetrics } from './sidecar-metrics.js';

/** An address of the SIP server; without a port, every port of that address matches. */
export interface ServerAddress {
  readonly address: string;
  readonly port?: number;
}

/** Injected time and timers (tests use a fake clock): the same shape as @pinhole/fcp's `TimerApi`. */
export type NormalizerClock = TimerApi;

/** Real time, with unreferenced timers. */
export const systemClock: NormalizerClock = systemTimers;

export interface NormalizerOptions {
  readonly serverAddresses: readonly ServerAddress[];
  readonly parse: SipParser;
  /** Every copy (observer-mode transaction input). */
  readonly onObservation: (o: SipObservation) => void;
  /** Once per message key: the copy to read SDP from. */
  readonly onSettle?: (o: SipObservation, source: MediaSource) => void;
  /** Called for each accepted HEP packet that gives no observation. */
  readonly onDrop?: (reason: ObservationDropReason, packet: HepPacket, detail?: string) => void;
  readonly metrics?: SidecarMetrics;
  readonly clock?: NormalizerClock;
  /**
   * How long a received copy waits for its sent twin before it is settled by itself (ms,
   * default 200). 0 settles received copies at once (a B2BUA, whose legs never pair).
   */
  readonly twinWaitMs?: number;
  /** How long a message key is remembered to recognise copies (ms, default 32_000 = 64*T1). */
  readonly windowMs?: number;
  /** Most keys remembered (default 100_000); the oldest are forgotten first. */
  readonly maxEntries?: number;
}

interface Entry {
  readonly key: string;
  readonly firstAt: number;
  received: number;
  /** Top-Via branches of the sent copies of a request (one per fork), or '' for responses. */
  sentBranches: Set<string>;
  sent: number;
  settled: boolean;
  /** A received copy waiting for its sent twin until `deadline`. */
  pending: { obs: SipObservation; deadline: number } | undefined;
}

const PROTO_TRANSPORT: ReadonlyMap<number, string> = new Map([
  [17, 'UDP'],
  [6, 'TCP'],
  [132, 'SCTP'],
]);

export class CaptureNormalizer {
  readonly #servers: readonly ServerAddress[];
  readonly #opts: NormalizerOptions;
  readonly #clock: NormalizerClock;
  readonly #twinWait: number;
  readonly #window: number;
  readonly #max: number;
  readonly #table = new Map<string, Entry>();
  /**
   * Entries with a pending received copy, in deadline order (the wait is the same for all, so
   * arrival order is deadline order). One timer serves the head; settled entries are skipped.
   */
  #waiting: Entry[] = [];
  #waitHead = 0;
  #timer: unknown;
  #seq = 0;

  constructor(options: NormalizerOptions) {
    this.#opts = options;
    this.#servers = options.serverAddresses.map((s) => {
      const ip = parseIp(s.address);
      return ip ? { ...s, address: unmapIpv4(ip.text) } : s;
    });
    this.#clock = options.clock ?? systemClock;
    this.#twinWait = options.twinWaitMs ?? 200;
    this.#window = options.windowMs ?? 32_000;
    this.#max = options.maxEntries ?? 100_000;
  }

  /** Keys currently remembered. */
  get size(): number {
    return this.#table.size;
  }

  /** Handles one accepted HEP packet; returns the observation, or undefined when dropped. */
  push(packet: HepPacket, source: HepSource): SipObservation | undefined {
    if (packet.protocolType !== 1) return this.#drop('not_sip', packet);
    const bytes = packet.payload;
    if (!bytes || bytes.length === 0) return this.#drop('no_payload', packet);
    if (
      packet.srcAddress === undefined ||
      packet.dstAddress === undefined ||
      packet.srcPort === undefined ||
      packet.dstPort === undefined
    ) {
      return this.#drop('no_addresses', packet);
    }
    // A dual-stack agent may report IPv4 peers as IPv4-mapped IPv6: the hop was IPv4.
    const src: Endpoint = { address: unmapIpv4(packet.srcAddress), port: packet.srcPort };
    const dst: Endpoint = { address: unmapIpv4(packet.dstAddress), port: packet.dstPort };
    const fromServer = this.#isServer(src);
    const toServer = this.#isServer(dst);
    if (!fromServer && !toServer) return this.#drop('not_server_traffic', packet);
    // A message the server sends to itself (a spiral over loopback) counts as sent.
    const kind: ObservationKind = fromServer ? 'sent-by-server' : 'received-by-server';

    const parsed = this.#opts.parse(bytes);
    if (!parsed.ok) return this.#drop('sip_parse_error', packet, parsed.error.code);
    const message = parsed.message;

    const now = this.#clock.now();
    this.#expire(now);
    const vias = message.via();
    const topVia = vias[0];
    const key = messageKey(message, kind, src, dst) ?? rawKey(bytes);
    const sentBranch = kind === 'sent-by-server' && message.isRequest ? (topVia?.branch ?? '') : '';

    let entry = this.#table.get(key);
    let copy: CopyClass;
    if (!entry) {
      copy = 'first';
      entry = {
        key,
        firstAt: now,
        received: 0,
        sent: 0,
        sentBranches: new Set(),
        settled: false,
        pending: undefined,
      };
      this.#table.set(key, entry);
      this.#evict();
    } else if (kind === 'received-by-server') {
      copy = entry.received > 0 ? 'retransmission' : 'twin';
    } else if (entry.sent === 0) {
      copy = entry.received > 0 ? 'twin' : 'first';
    } else {
      copy = entry.sentBranches.has(sentBranch) ? 'retransmission' : 'fork';
    }
    if (kind === 'received-by-server') entry.received++;
    else {
      entry.sent++;
      entry.sentBranches.add(sentBranch);
    }

    const transport = topVia?.transport ?? PROTO_TRANSPORT.get(packet.ipProtocol ?? -1) ?? 'UDP';
    const obs: SipObservation = {
      seq: ++this.#seq,
      bytes,
      message,
      src,
      dst,
      transport,
      capturedAtMs:
        packet.timeSeconds !== undefined
          ? packet.timeSeconds * 1000 + (packet.timeMicros ?? 0) / 1000
          : undefined,
      receivedAtMs: now,
      kind,
      key,
      copy,
      farEnd: kind === 'sent-by-server',
      capture: {
        captureId: packet.captureId,
        nodeName: packet.nodeName,
        correlationId:
          packet.correlationId !== undefined
            ? Buffer.from(
                packet.correlationId.buffer,
                packet.correlationId.byteOffset,
                packet.correlationId.byteLength,
              ).toString('utf8')
            : undefined,
        agent: source,
      },
    };
    this.#opts.metrics?.sipObservations.inc({ kind, copy });
    this.#opts.metrics?.dedupEntries.set(this.#table.size);
    try {
      this.#opts.onObservation(obs);
    } finally {
      // Settle even if the observer threw, so the table never keeps an unsettled message.
      this.#settle(entry, obs);
    }
    return obs;
  }

  /** Settles every pending received copy now and forgets everything (shutdown). */
  flush(): void {
    for (const e of this.#table.values()) this.#settlePending(e);
    this.#table.clear();
    this.#waiting = [];
    this.#waitHead = 0;
    if (this.#timer !== undefined) this.#clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#opts.metrics?.dedupEntries.set(0);
  }

  #settle(entry: Entry, obs: SipObservation): void {
    if (entry.settled) return;
    if (obs.kind === 'sent-by-server') {
      entry.pending = undefined;
      this.#emitSettle(entry, obs, 'sent-copy');
      return;
    }
    if (entry.pending) return; // a retransmission of a received copy still waiting
    // A 100 (Trying) never has a twin (it is hop-by-hop), and twinWait 0 means never wait.
    if (this.#twinWait <= 0 || (!obs.message.isRequest && obs.message.status === 100)) {
      this.#emitSettle(entry, obs, 'received-copy');
      return;
    }
    entry.pending = { obs, deadline: this.#clock.now() + this.#twinWait };
    this.#waiting.push(entry);
    if (this.#timer === undefined) this.#arm(this.#twinWait);
  }

  #arm(ms: number): void {
    this.#timer = this.#clock.setTimeout(() => this.#onTimer(), Math.max(0, ms));
  }

  #onTimer(): void {
    this.#timer = undefined;
    const now = this.#clock.now();
    while (this.#waitHead < this.#waiting.length) {
      const e = this.#waiting[this.#waitHead];
      if (e === undefined) break;
      if (e.pending && e.pending.deadline > now) {
        this.#arm(e.pending.deadline - now);
        break;
      }
      this.#waitHead++;
      this.#settlePending(e);
    }
    // Compact the queue once its consumed head dominates it.
    if (this.#waitHead > 1024 && this.#waitHead * 2 > this.#waiting.length) {
      this.#waiting = this.#waiting.slice(this.#waitHead);
      this.#waitHead = 0;
    }
    if (this.#waitHead >= this.#waiting.length) {
      this.#waiting = [];
      this.#waitHead = 0;
    }
  }

  #settlePending(entry: Entry): void {
    const p = entry.pending;
    if (!p || entry.settled) return;
    entry.pending = undefined;
    this.#emitSettle(entry, p.obs, 'received-copy');
  }

  #emitSettle(entry: Entry, obs: SipObservation, source: MediaSource): void {
    entry.settled = true;
    this.#opts.metrics?.mediaSources.inc({ source });
    this.#opts.onSettle?.(obs, source);
  }

  #isServer(ep: Endpoint): boolean {
    for (const s of this.#servers) {
      if (s.address === ep.address && (s.port === undefined || s.port === ep.port)) return true;
    }
    return false;
  }

  #expire(now: number): void {
    // Insertion order is arrival order, so the oldest entries are at the head.
    for (const e of this.#table.values()) {
      if (now - e.firstAt < this.#window) break;
      this.#settlePending(e);
      this.#table.delete(e.key);
    }
  }

  #evict(): void {
    while (this.#table.size > this.#max) {
      const oldest = this.#table.values().next();
      if (oldest.done === true) return;
      this.#settlePending(oldest.value);
      this.#table.delete(oldest.value.key);
    }
  }

  #drop(reason: ObservationDropReason, packet: HepPacket, detail?: string): undefined {
    this.#opts.metrics?.sipDropped.inc({ reason });
    this.#opts.onDrop?.(reason, packet, detail);
    return undefined;
  }
}

/**
 * The identity of a message across the server's two copies and retransmissions (see the file
 * comment), or undefined when the message lacks Call-ID, CSeq or Via.
 */
export function messageKey(
  m: SipMessage,
  kind: ObservationKind,
  src: Endpoint,
  dst: Endpoint,
): string | undefined {
  const callId = m.callId();
  const cseq = m.cseq();
  const vias = m.via();
  if (callId === undefined || cseq === undefined || vias.length === 0) return undefined;
  const skipServerVia =
    vias.length > 1 &&
    ((m.isRequest && kind === 'sent-by-server') || (!m.isRequest && kind === 'received-by-server'));
  const origin = vias[skipServerVia ? 1 : 0];
  if (!origin) return undefined;
  const fromTag = m.from()?.tag ?? '';
  const start = m.isRequest ? `Q ${m.method}` : `S ${m.status} ${m.to()?.tag ?? ''}`;
  const base = `${start}\n${cseq.seq} ${cseq.method}\n${callId}\n${fromTag}\n${origin.branch ?? ''}\n${origin.host}:${origin.port ?? ''}`;
  if (!m.isRequest && m.status === 100) {
    return `${base}\n${kind} ${src.address}:${src.port}>${dst.address}:${dst.port}`;
  }
  return base;
}

function rawKey(bytes: Uint8Array): string {
  return `raw ${createHash('sha1').update(bytes).digest('hex')}`;
}

/**
 * The IPv4 address inside an IPv4-mapped IPv6 address (`::ffff:198.18.0.1`, `::ffff:c612:1`),
 * else the input unchanged.
 */
export function unmapIpv4(address: string): string {
  // Every spelling of a mapped address starts so once canonical; anything else is returned as is.
  if (!address.startsWith('::ffff:')) return address;
  const ip = parseIp(address);
  if (ip?.family !== 6) return address;
  const b = ip.bytes;
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return address;
  if (b[10] !== 0xff || b[11] !== 0xff) return address;
  return ipFromBytes(b.subarray(12, 16))?.text ?? address;
}
