/** Test helpers: message builders, a recording transport, a layer on a fake clock. */
import { buildResponse, parse, type SipMessage } from '@pinhole/sip';
import type { Address, Transport } from '../src/address.js';
import { TransactionEvent, type TransactionEventName } from '../src/events.js';
import { TransactionLayer, type TransactionLayerOptions } from '../src/layer.js';
import { FakeClock } from '../src/timers.js';
import type { SerializedMessage } from '../src/wire.js';

export function msg(text: string): SipMessage {
  const r = parse(text.replace(/\r?\n/g, '\r\n'));
  if (!r.ok) throw new Error(`test message does not parse: ${r.error.code} ${r.error.reason}`);
  return r.message;
}

export interface RequestSpec {
  readonly method?: string;
  readonly branch?: string;
  readonly sentBy?: string;
  readonly transport?: string;
  readonly callId?: string;
  readonly fromTag?: string;
  readonly toTag?: string;
  readonly cseq?: number;
  readonly uri?: string;
  readonly extraVia?: readonly string[];
  readonly headers?: readonly string[];
  readonly body?: string;
}

export function request(spec: RequestSpec = {}): SipMessage {
  const method = spec.method ?? 'INVITE';
  const t = spec.transport ?? 'UDP';
  const branch = spec.branch === '' ? '' : `;branch=${spec.branch ?? 'z9hG4bKclient1'}`;
  const body = spec.body ?? '';
  const lines = [
    `${method} ${spec.uri ?? 'sip:bob@example.com'} SIP/2.0`,
    `Via: SIP/2.0/${t} ${spec.sentBy ?? '198.18.0.1:5060'}${branch}`,
    ...(spec.extraVia ?? []).map((v) => `Via: ${v}`),
    'Max-Forwards: 70',
    `From: Alice <sip:alice@example.com>;tag=${spec.fromTag ?? 'atag'}`,
    `To: Bob <sip:bob@example.com>${spec.toTag === undefined ? '' : `;tag=${spec.toTag}`}`,
    `Call-ID: ${spec.callId ?? 'call-1@198.18.0.1'}`,
    `CSeq: ${spec.cseq ?? 1} ${method === 'ACK' || method === 'CANCEL' ? method : method}`,
    'Contact: <sip:alice@198.18.0.1:5060>',
    ...(spec.headers ?? []),
    ...(body === '' ? [] : ['Content-Type: application/sdp']),
    `Content-Length: ${Buffer.byteLength(body)}`,
    '',
    body,
  ];
  return msg(lines.join('\r\n'));
}

/** A response to `req` (all its Vias), optionally with a To tag and extra headers. */
export function response(
  req: SipMessage,
  status: number,
  toTag: string | false = 'btag',
  extra: readonly (readonly [string, string])[] = [],
): SipMessage {
  return buildResponse(req, status, reason(status), extra, {
    toTag: status === 100 ? false : toTag,
  });
}

function reason(status: number): string {
  return status < 200 ? 'Ringing' : status < 300 ? 'OK' : 'Failure';
}

/** Copy of a message as it would be received after the wire (fresh object). */
export function copy(m: SipMessage): SipMessage {
  return m.clone();
}

export const UAC: Address = { transport: 'UDP', host: '198.18.0.1', port: 5060 };
export const PROXY: Address = { transport: 'UDP', host: '198.18.0.2', port: 5060 };
export const UAS1: Address = { transport: 'UDP', host: '198.18.0.3', port: 5060 };
export const UAS2: Address = { transport: 'UDP', host: '198.18.0.4', port: 5060 };
export const TCP_UAC: Address = {
  transport: 'TCP',
  host: '198.18.0.1',
  port: 5060,
  connectionId: 7,
};

export interface Sent {
  readonly message: SipMessage;
  readonly destination: Address;
  readonly at: number;
  /** The bytes, when the layer sent a serialised message (`sendSerialized`). */
  readonly bytes?: Uint8Array;
}

export class RecordingTransport implements Transport {
  readonly sent: Sent[] = [];
  /** When set, `send` throws (sync) or rejects (async) for matching messages. */
  fail: ((m: SipMessage, d: Address) => 'throw' | 'reject' | undefined) | undefined;
  readonly clock: FakeClock;
  constructor(clock: FakeClock) {
    this.clock = clock;
  }
  send(message: SipMessage, destination: Address): void | Promise<void> {
    const mode = this.fail?.(message, destination);
    if (mode === 'throw') throw new Error('ECONNREFUSED');
    this.sent.push({ message, destination, at: this.clock.now() });
    if (mode === 'reject') return Promise.reject(new Error('EPIPE'));
    return undefined;
  }
  /**
   * What a transport with `sendSerialized` gets: the recording holds the bytes and a message
   * parsed from them (so every test also checks what retransmitted bytes carry).
   */
  sendSerialized(message: SerializedMessage, destination: Address): void | Promise<void> {
    const parsed = message.parse();
    const mode = this.fail?.(parsed, destination);
    if (mode === 'throw') throw new Error('ECONNREFUSED');
    this.sent.push({ message: parsed, destination, at: this.clock.now(), bytes: message.bytes });
    if (mode === 'reject') return Promise.reject(new Error('EPIPE'));
    return undefined;
  }
  /** Sent messages described as `METHOD` or `status`, in order. */
  summary(): string[] {
    return this.sent.map((s) =>
      s.message.isRequest ? s.message.method : String(s.message.status),
    );
  }
  times(what: string): number[] {
    return this.sent
      .filter((s) => (s.message.isRequest ? s.message.method : String(s.message.status)) === what)
      .map((s) => s.at);
  }
  clear(): void {
    this.sent.length = 0;
  }
}

export interface Harness {
  readonly clock: FakeClock;
  readonly transport: RecordingTransport;
  readonly layer: TransactionLayer;
  readonly events: TransactionEvent[];
  readonly errors: Error[];
  readonly names: () => TransactionEventName[];
  readonly of: (name: TransactionEventName) => TransactionEvent[];
}

export const ALL_EVENTS: readonly TransactionEventName[] = [
  'requestReceived',
  'requestForwarded',
  'responseReceived',
  'provisionalRelayed',
  'finalRelayed',
  'ackReceived',
  'cancelReceived',
  'branchFailed',
  'allBranchesFailed',
  'transactionCompleted',
  'transactionDestroyed',
];

export function harness(
  options: Partial<TransactionLayerOptions> = {},
  makeTransport: (clock: FakeClock) => RecordingTransport = (c) => new RecordingTransport(c),
): Harness {
  const clock = new FakeClock(0);
  const transport = makeTransport(clock);
  const errors: Error[] = [];
  const layer = new TransactionLayer({
    transport,
    clock,
    sentBy: (t) => (t === 'UDP' ? '198.18.0.2:5060' : '198.18.0.2:5060'),
    onError: (e) => errors.push(e),
    ...options,
  });
  const events: TransactionEvent[] = [];
  for (const name of ALL_EVENTS) layer.on(name, (e) => void events.push(e));
  return {
    clock,
    transport,
    layer,
    events,
    errors,
    names: () => events.map((e) => e.name),
    of: (name) => events.filter((e) => e.name === name),
  };
}

/** Lets pending promise callbacks run (holds, async transports). */
export async function flush(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

/**
 * A minimal stateful proxy core on top of a harness: every new request is forwarded to all
 * `targets` (parallel forking); ACKs of 2xx are forwarded statelessly to the first target.
 */
export function proxyHarness(
  targets: readonly Address[],
  options: Partial<TransactionLayerOptions> = {},
): Harness & { forwarded(to: Address, method?: string): SipMessage } {
  const ref: { layer?: TransactionLayer } = {};
  const h = harness({
    ...options,
    user: {
      request(txn) {
        const layer = ref.layer;
        if (layer === undefined) return;
        const ctx = layer.proxy(txn);
        for (const target of targets) {
          const copy = txn.request.clone();
          copy.decrementMaxForwards();
          ctx.forward(copy, target);
        }
      },
    },
  });
  ref.layer = h.layer;
  return {
    ...h,
    forwarded(to: Address, method = 'INVITE'): SipMessage {
      const found = h.transport.sent.find(
        (s) => s.message.isRequest && s.message.method === method && s.destination === to,
      );
      if (found === undefined) throw new Error(`nothing forwarded to ${to.host} (${method})`);
      return found.message;
    },
  };
}

/** Sent messages to one address, summarised. */
export function sentTo(h: Harness, to: Address): string[] {
  return h.transport.sent
    .filter((s) => s.destination.host === to.host && s.destination.port === to.port)
    .map((s) => (s.message.isRequest ? s.message.method : String(s.message.status)));
}
