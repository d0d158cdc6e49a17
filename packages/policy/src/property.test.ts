/**
 * Property: whatever the SDP and the message sequence (random, hostile, out of order) and
 * whatever the configuration, no `open` or `refresh` intent ever escapes the safety rules, and
 * once every dialog has ended and the TIMERs have passed, nothing is left open.
 *
 * The rules are checked here by an independent oracle (node:net BlockList), not by `checkHole`.
 */
import { BlockList, isIP } from 'node:net';
import { parse, type SipMessage } from '@pinhole/sip';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { validateConfig, type PolicyConfigInput } from './config.js';
import type { Intent, PolicyResult } from './intents.js';
import { Policy } from './policy.js';

const PROTECTED_POOL = [
  '198.18.0.0/16',
  '198.18.2.0/24',
  '10.0.0.0/8',
  '2001:db8:1::/48',
  // Hostile configurations: a protected network that contains special addresses must still
  // never yield holes toward them.
  '224.0.0.0/4',
  '127.0.0.0/8',
  '255.255.255.0/24',
  'ff00::/8',
  '::/127',
];
const ADDRESS_POOL = [
  '198.18.2.201',
  '198.18.2.202',
  '198.18.0.1',
  '198.18.255.255',
  '198.18.0.0',
  '198.18.2.0',
  '198.18.2.255',
  '198.19.2.101',
  '10.1.2.3',
  '10.255.255.255',
  '0.0.0.0',
  '127.0.0.1',
  '224.0.0.1',
  '239.1.2.3/127',
  '255.255.255.255',
  '169.254.0.5',
  '2001:db8:1::20',
  '2001:db8:1::1',
  '2001:DB8:1:0::20',
  '2001:db8:2::10',
  '::',
  '::1',
  'ff02::1',
  'fe80::1',
  '::ffff:198.18.2.201',
  'fe80::1%eth0',
  'host.example.com',
  '198.018.2.1',
  '999.1.1.1',
  '',
];

const SPECIAL = new BlockList();
SPECIAL.addSubnet('0.0.0.0', 8, 'ipv4');
SPECIAL.addSubnet('127.0.0.0', 8, 'ipv4');
SPECIAL.addSubnet('224.0.0.0', 4, 'ipv4');
SPECIAL.addSubnet('240.0.0.0', 4, 'ipv4');
SPECIAL.addSubnet('::', 128, 'ipv6');
SPECIAL.addSubnet('::1', 128, 'ipv6');
SPECIAL.addSubnet('ff00::', 8, 'ipv6');

// Biased toward addresses and ports that can yield holes, so that the checks are exercised.
const address = fc.oneof(
  {
    arbitrary: fc.constantFrom('198.18.2.201', '198.18.2.202', '10.1.2.3', '2001:db8:1::20'),
    weight: 8,
  },
  { arbitrary: fc.constantFrom(...ADDRESS_POOL), weight: 6 },
  { arbitrary: fc.ipV4(), weight: 1 },
  { arbitrary: fc.ipV6(), weight: 1 },
  { arbitrary: fc.string({ maxLength: 12 }), weight: 1 },
);

const port = fc.oneof(
  { arbitrary: fc.integer({ min: 1024, max: 65535 }), weight: 6 },
  {
    arbitrary: fc.constantFrom(0, 1, 9, 80, 1023, 1024, 3456, 49170, 65534, 65535, 65536, 70000),
    weight: 3,
  },
  { arbitrary: fc.integer({ min: 0, max: 65535 }), weight: 1 },
);
const outside = fc.oneof(
  { arbitrary: fc.constantFrom('198.19.2.101', '192.0.2.10', '2001:db8:2::10'), weight: 8 },
  { arbitrary: address, weight: 3 },
);
const mlineOf = (addr: fc.Arbitrary<string>) =>
  fc.record({
    type: fc.constantFrom('audio', 'video', 'image', 'message', 'application'),
    port,
    count: fc.oneof(
      { arbitrary: fc.constant(''), weight: 12 },
      { arbitrary: fc.constantFrom('/2', '/3', '/0', '/40', '/x'), weight: 1 },
    ),
    proto: fc.constantFrom(
      'RTP/AVP',
      'RTP/AVP',
      'RTP/AVP',
      'RTP/SAVPF',
      'UDP/TLS/RTP/SAVPF',
      'udptl',
      'TCP/MSRP',
      'TCP/RTP/AVP',
      'DCCP/RTP/AVP',
      'xyz',
    ),
    c: fc.option(addr, { nil: undefined }),
    dir: fc.constantFrom('', '', '', 'a=sendonly', 'a=recvonly', 'a=inactive', 'a=sendrecv'),
    rtcp: fc.option(fc.tuple(port, fc.option(addr, { nil: undefined })), { nil: undefined }),
    mux: fc.boolean(),
    junk: fc.oneof(
      { arbitrary: fc.constant(''), weight: 25 },
      {
        arbitrary: fc.constantFrom(
          'a=rtcp:',
          'a=rtcp:abc',
          'c=IN IP4',
          'm=audio',
          'x',
          'c=IN IP4 ::1',
        ),
        weight: 1,
      },
    ),
  });
const sdpOf = (addr: fc.Arbitrary<string>) =>
  fc.record({
    session: fc.option(addr, { nil: undefined }),
    media: fc.array(mlineOf(addr), { minLength: 1, maxLength: 6 }),
  });
/** SDP of the callee: mostly inside addresses. */
const sdp = sdpOf(address);
/** SDP of the caller: mostly outside addresses. */
const callerSdp = sdpOf(outside);
type Sdp = typeof sdp extends fc.Arbitrary<infer T> ? T : never;

function addrType(a: string): string {
  return a.includes(':') ? 'IP6' : 'IP4';
}

function renderSdp(s: Sdp): string {
  const lines = ['v=0', 'o=- 1 1 IN IP4 198.18.2.201', 's=-'];
  if (s.session !== undefined) lines.push(`c=IN ${addrType(s.session)} ${s.session}`);
  lines.push('t=0 0');
  for (const m of s.media) {
    lines.push(`m=${m.type} ${m.port}${m.count} ${m.proto} 0`);
    if (m.c !== undefined) lines.push(`c=IN ${addrType(m.c)} ${m.c}`);
    if (m.dir) lines.push(m.dir);
    if (m.rtcp) {
      const [p, a] = m.rtcp;
      lines.push(a === undefined ? `a=rtcp:${p}` : `a=rtcp:${p} IN ${addrType(a)} ${a}`);
    }
    if (m.mux) lines.push('a=rtcp-mux');
    if (m.junk) lines.push(m.junk);
  }
  return lines.join('\r\n') + '\r\n';
}

type Side = 'caller' | 'callee';
const TAGS = ['t1', 't2'] as const;

const step = fc.oneof(
  {
    arbitrary: fc.record({
      k: fc.constant('invite' as const),
      sdp: fc.option(callerSdp, { nil: undefined }),
    }),
    weight: 1,
  },
  {
    arbitrary: fc.record({
      k: fc.constant('response' as const),
      status: fc.constantFrom(180, 183, 183, 200, 200, 200, 486, 487, 408),
      tag: fc.constantFrom(...TAGS),
      absorbed: fc.boolean(),
      sdp: fc.option(sdp, { nil: undefined }),
    }),
    weight: 6,
  },
  {
    arbitrary: fc.record({
      k: fc.constant('request' as const),
      method: fc.constantFrom('INVITE', 'UPDATE', 'PRACK', 'ACK', 'BYE', 'INFO'),
      from: fc.constantFrom<Side>('caller', 'callee'),
      tag: fc.constantFrom(...TAGS),
      sdp: fc.option(fc.oneof(sdp, callerSdp), { nil: undefined }),
      status: fc.option(fc.constantFrom(200, 200, 200, 488, 491, 481, 408, 500), {
        nil: undefined,
      }),
      answer: fc.option(fc.oneof(sdp, callerSdp), { nil: undefined }),
    }),
    weight: 4,
  },
  {
    arbitrary: fc.record({
      k: fc.constant('ended' as const),
      outcome: fc.constantFrom('timeout', 'transport-error', 'cancelled', 'lost' as const),
    }),
    weight: 1,
  },
  {
    arbitrary: fc.record({
      k: fc.constant('sweep' as const),
      dt: fc.oneof(fc.integer({ min: 0, max: 200_000 }), fc.integer({ min: 0, max: 100_000_000 })),
    }),
    weight: 1,
  },
);

const configArb = fc.record({
  protectedNetworks: fc
    .uniqueArray(fc.constantFrom(...PROTECTED_POOL), { maxLength: 3 })
    .map((extra) => [...new Set(['198.18.0.0/16', ...extra])]),
  firewallAddresses: fc.subarray(['198.18.0.1', '198.18.2.201', '2001:db8:1::1', '10.0.0.1']),
  ports: fc.oneof(
    { arbitrary: fc.constant({ min: 1024, max: 65535 }), weight: 4 },
    {
      arbitrary: fc
        .tuple(fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 1, max: 65535 }))
        .map(([a, b]) => ({ min: Math.min(a, b), max: Math.max(a, b) })),
      weight: 1,
    },
  ),
  protocols: fc.oneof(
    { arbitrary: fc.constant(['udp'] as ('udp' | 'tcp')[]), weight: 3 },
    { arbitrary: fc.subarray(['udp', 'tcp'] as ('udp' | 'tcp')[], { minLength: 1 }), weight: 1 },
  ),
  source: fc.constantFrom('any', 'sdp', 'contact', 'signalling' as const),
  sourceFallback: fc.constantFrom('any', 'refuse' as const),
  openOn: fc.constantFrom('answer', 'offer' as const),
  maxStreamsPerCall: fc.integer({ min: 1, max: 6 }),
  maxHolesPerDialog: fc.integer({ min: 1, max: 12 }),
  sessionTimer: fc.record({ mode: fc.constantFrom('observe', 'insert', 'require' as const) }),
});

function message(lines: string[], body: string | undefined): SipMessage {
  const head = [...lines];
  if (body !== undefined) head.push('Content-Type: application/sdp');
  head.push(`Content-Length: ${Buffer.byteLength(body ?? '')}`);
  const r = parse(head.join('\r\n') + '\r\n\r\n' + (body ?? ''));
  if (!r.ok) throw new Error(`builder produced an unparsable message: ${r.error.reason}`);
  return r.message;
}

const CALLER = '<sip:alice@198.19.2.101>;tag=c0';
const callee = (tag: string): string => `<sip:bob@198.18.2.201>;tag=${tag}`;

function inviteMsg(body: string | undefined): SipMessage {
  return message(
    [
      'INVITE sip:bob@198.18.2.201 SIP/2.0',
      'Via: SIP/2.0/UDP 198.19.2.101:5060;branch=z9hG4bKprop',
      'Max-Forwards: 70',
      `From: ${CALLER}`,
      'To: <sip:bob@198.18.2.201>',
      'Call-ID: prop-call',
      'CSeq: 1 INVITE',
      'Contact: <sip:alice@198.19.2.101>',
      'Supported: timer',
    ],
    body,
  );
}

/** Checks one intent against the configuration with an independent oracle. */
function assertSafe(i: Intent, cfg: PolicyConfigInput, maxTimer: number): void {
  if (i.kind === 'close') return;
  const dst = i.pme.destination.address;
  const fam = isIP(dst);
  expect(fam, `destination ${dst} is an IP`).toBe(i.pme.family);
  const type = fam === 4 ? 'ipv4' : 'ipv6';
  const prot = new BlockList();
  for (const n of cfg.protectedNetworks) {
    const [a, p] = n.split('/');
    if (a && isIP(a) === fam) prot.addSubnet(a, Number(p), type);
  }
  expect(prot.check(dst, type), `${dst} inside the protected networks`).toBe(true);
  expect(SPECIAL.check(dst, type), `${dst} is not special`).toBe(false);
  expect(dst, 'not the limited broadcast').not.toBe('255.255.255.255');
  for (const f of cfg.firewallAddresses ?? []) {
    if (isIP(f) === fam) {
      const fw = new BlockList();
      fw.addAddress(f, type);
      expect(fw.check(dst, type), `${dst} is not the firewall`).toBe(false);
    }
  }
  // Directed broadcast and network address of every protected IPv4 network up to /30.
  if (fam === 4) {
    const n = dst.split('.').map(Number);
    const v =
      ((n[0] ?? 0) * 2 ** 24 + (n[1] ?? 0) * 2 ** 16 + (n[2] ?? 0) * 2 ** 8 + (n[3] ?? 0)) >>> 0;
    for (const net of cfg.protectedNetworks) {
      const [a, p] = net.split('/');
      const len = Number(p);
      if (!a || isIP(a) !== 4 || len > 30) continue;
      const b = a.split('.').map(Number);
      const base =
        ((b[0] ?? 0) * 2 ** 24 + (b[1] ?? 0) * 2 ** 16 + (b[2] ?? 0) * 2 ** 8 + (b[3] ?? 0)) >>> 0;
      const size = 2 ** (32 - len);
      expect(v === base || v === base + size - 1, `${dst} is not ${net}'s network/broadcast`).toBe(
        false,
      );
    }
  }
  const ports = cfg.ports ?? { min: 1024, max: 65535 };
  expect(i.pme.destinationPort).toBeGreaterThanOrEqual(ports.min ?? 1024);
  expect(i.pme.destinationPort).toBeLessThanOrEqual(ports.max ?? 65535);
  expect(cfg.protocols ?? ['udp']).toContain(i.pme.protocol);
  expect(i.pme.proto).toBe(i.pme.protocol === 'udp' ? 17 : 6);
  expect(Number.isInteger(i.timerSec) && i.timerSec >= 1 && i.timerSec <= maxTimer).toBe(true);
  if (i.pme.source) {
    expect(isIP(i.pme.source.address)).toBe(i.pme.family);
    expect(SPECIAL.check(i.pme.source.address, type)).toBe(false);
  }
}

type Step = typeof step extends fc.Arbitrary<infer T> ? T : never;
type Config = typeof configArb extends fc.Arbitrary<infer T> ? T : never;

interface Tally {
  opened: number;
  refused: number;
}

/** Runs one call through the policy, checking every result, then ends everything. */
function runScenario(cfgIn: Config, offer: Sdp, steps: readonly Step[], tally: Tally): void {
  const v = validateConfig(cfgIn);
  if (!v.ok) return; // e.g. a timer above maxTimerSec is a config error, not a policy case
  const policy = new Policy(v.config);
  const maxTimer = v.config.maxTimerSec;
  let now = 0;
  let cseq = 1;
  const check = (r: PolicyResult): void => {
    for (const i of r.intents) assertSafe(i, cfgIn, maxTimer);
    tally.opened += r.intents.filter((i) => i.kind === 'open').length;
    tally.refused += r.refusals.length;
    // Per dialog, never more holes than allowed.
    const perOwner = new Map<string, number>();
    for (const h of policy.holes()) {
      for (const o of h.owners) perOwner.set(o, (perOwner.get(o) ?? 0) + 1);
    }
    for (const n of perOwner.values()) expect(n).toBeLessThanOrEqual(v.config.maxHolesPerDialog);
  };
  const invite = inviteMsg(renderSdp(offer));
  check(policy.handle({ type: 'sip', message: invite, now }));
  for (const s of steps) {
    now += 1000;
    switch (s.k) {
      case 'invite':
        check(policy.handle({ type: 'sip', message: inviteMsg(s.sdp && renderSdp(s.sdp)), now }));
        break;
      case 'response': {
        const m = message(
          [
            `SIP/2.0 ${s.status} X`,
            'Via: SIP/2.0/UDP 198.19.2.101:5060;branch=z9hG4bKprop',
            `From: ${CALLER}`,
            `To: ${callee(s.tag)}`,
            'Call-ID: prop-call',
            'CSeq: 1 INVITE',
            'Contact: <sip:bob@198.18.2.201>',
          ],
          s.sdp && renderSdp(s.sdp),
        );
        check(
          policy.handle({
            type: 'sip',
            message: m,
            now,
            source: { address: '198.18.2.201', port: 5060 },
            ...(s.absorbed ? { disposition: 'absorbed' as const } : {}),
            branch: s.tag,
          }),
        );
        break;
      }
      case 'request': {
        const seq = s.method === 'ACK' ? 1 : ++cseq;
        const [from, to] = s.from === 'caller' ? [CALLER, callee(s.tag)] : [callee(s.tag), CALLER];
        const head = [
          `${s.method} sip:x@198.18.2.201 SIP/2.0`,
          `Via: SIP/2.0/UDP 198.19.2.101:5060;branch=z9hG4bKreq${seq}`,
          'Max-Forwards: 70',
          `From: ${from}`,
          `To: ${to}`,
          'Call-ID: prop-call',
          `CSeq: ${seq} ${s.method}`,
          'Session-Expires: 90',
        ];
        check(
          policy.handle({ type: 'sip', message: message(head, s.sdp && renderSdp(s.sdp)), now }),
        );
        if (s.status !== undefined && s.method !== 'ACK') {
          const resp = message(
            [
              `SIP/2.0 ${s.status} X`,
              `Via: SIP/2.0/UDP 198.19.2.101:5060;branch=z9hG4bKreq${seq}`,
              `From: ${from}`,
              `To: ${to}`,
              'Call-ID: prop-call',
              `CSeq: ${seq} ${s.method}`,
              'Session-Expires: 120;refresher=uac',
            ],
            s.answer && renderSdp(s.answer),
          );
          check(policy.handle({ type: 'sip', message: resp, now: now + 10 }));
        }
        break;
      }
      case 'ended':
        check(
          policy.handle({ type: 'transaction-ended', request: invite, outcome: s.outcome, now }),
        );
        break;
      case 'sweep':
        now += s.dt;
        check(policy.sweep(now));
        break;
    }
  }
  // Everything ends: the INVITE fails, every dialog says BYE, the TIMERs pass.
  const end: PolicyResult[] = [];
  const fail = message(
    [
      'SIP/2.0 487 Request Terminated',
      'Via: SIP/2.0/UDP 198.19.2.101:5060;branch=z9hG4bKprop',
      `From: ${CALLER}`,
      `To: ${callee('t1')}`,
      'Call-ID: prop-call',
      'CSeq: 1 INVITE',
    ],
    undefined,
  );
  end.push(policy.handle({ type: 'sip', message: fail, now: now + 1 }));
  for (const tag of TAGS) {
    const bye = message(
      [
        'BYE sip:x@198.18.2.201 SIP/2.0',
        'Via: SIP/2.0/UDP 198.19.2.101:5060;branch=z9hG4bKbye',
        'Max-Forwards: 70',
        `From: ${CALLER}`,
        `To: ${callee(tag)}`,
        'Call-ID: prop-call',
        `CSeq: ${++cseq} BYE`,
      ],
      undefined,
    );
    end.push(policy.handle({ type: 'sip', message: bye, now: now + 2 }));
    end.push(
      policy.handle({ type: 'transaction-ended', request: bye, outcome: 'timeout', now: now + 3 }),
    );
  }
  end.push(policy.sweep(now + 2_000_000_000));
  for (const r of end) for (const i of r.intents) expect(i.kind).toBe('close');
  expect(policy.holes()).toEqual([]);
  expect(policy.stats()).toEqual({ calls: 0, dialogs: 0, holes: 0 });
}

describe('no intent escapes the safety rules', () => {
  it('holds for random and hostile SDP, message orders and configurations', () => {
    const tally: Tally = { opened: 0, refused: 0 };
    fc.assert(
      fc.property(
        configArb,
        callerSdp,
        fc.array(step, { minLength: 1, maxLength: 14 }),
        (cfg, offer, steps) => {
          runScenario(cfg, offer, steps, tally);
        },
      ),
      { numRuns: 300, seed: 20261129 },
    );
    // Not vacuous: some runs opened holes, and many refused some.
    expect(tally.opened).toBeGreaterThan(10);
    expect(tally.refused).toBeGreaterThan(100);
  });

  it('holds for well-formed calls whose answers and re-offers name hostile destinations', () => {
    const tally: Tally = { opened: 0, refused: 0 };
    const plain = fc.record({
      session: fc.constant(undefined),
      media: fc.array(
        fc.record({
          type: fc.constantFrom('audio', 'video', 'image'),
          port,
          count: fc.constantFrom('', '', '', '/2'),
          proto: fc.constantFrom('RTP/AVP', 'RTP/SAVPF', 'udptl', 'TCP/MSRP'),
          c: address,
          dir: fc.constantFrom('', '', 'a=sendonly', 'a=recvonly', 'a=inactive'),
          rtcp: fc.option(fc.tuple(port, fc.option(address, { nil: undefined })), {
            nil: undefined,
          }),
          mux: fc.boolean(),
          junk: fc.constant(''),
        }),
        { minLength: 1, maxLength: 5 },
      ),
    });
    const offer = fc.record({
      session: fc.constant('198.19.2.101'),
      media: fc.array(
        fc.record({
          type: fc.constant('audio'),
          port: fc.integer({ min: 1024, max: 65000 }),
          count: fc.constant(''),
          proto: fc.constantFrom('RTP/AVP', 'udptl', 'TCP/MSRP'),
          c: fc.constant(undefined),
          dir: fc.constant(''),
          rtcp: fc.constant(undefined),
          mux: fc.boolean(),
          junk: fc.constant(''),
        }),
        { minLength: 5, maxLength: 5 },
      ),
    });
    fc.assert(
      fc.property(configArb, offer, plain, plain, plain, (cfg, o, a1, a2, a3) => {
        const steps: Step[] = [
          { k: 'response', status: 183, tag: 't1', absorbed: false, sdp: a1 },
          { k: 'response', status: 183, tag: 't2', absorbed: false, sdp: a2 },
          { k: 'response', status: 200, tag: 't2', absorbed: false, sdp: a2 },
          {
            k: 'request',
            method: 'INVITE',
            from: 'callee',
            tag: 't2',
            sdp: a3,
            status: 200,
            answer: o,
          },
          {
            k: 'request',
            method: 'UPDATE',
            from: 'caller',
            tag: 't2',
            sdp: o,
            status: 200,
            answer: a1,
          },
        ];
        runScenario(cfg, o, steps, tally);
      }),
      { numRuns: 300, seed: 20261130 },
    );
    expect(tally.opened).toBeGreaterThan(200);
    expect(tally.refused).toBeGreaterThan(200);
  });
});
