/**
 * The byte-level fast paths (fast.ts) must agree with the full string parsers on every input:
 * on generated header values built from the pieces where they could differ, on mutated bench
 * messages, and on every message of the RFC 4475 / RFC 5118 corpora and the captures.
 */
import { readdirSync, readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseDigits, UINT32_MAX } from './bytes.js';
import { isSipError } from './errors.js';
import { FastNameAddr, FastVia } from './fast.js';
import { firstListElement } from './lex.js';
import { parseCSeq } from './message.js';
import { parseNameAddrLazy } from './name-addr.js';
import { parse, serialize, type NameAddr, type SipMessage, type Via } from './index.js';
import { fastStartLine, parseStartLineText } from './parse.js';
import { parseVia } from './via.js';

/**
 * Property tests run a fixed number of cases (`numRuns`), never fewer; this explicit bound only
 * keeps a slow, loaded machine (several test suites on two CPUs) from failing them on time.
 */
const PROPERTY_TIMEOUT_MS = 120_000;

const corpora = new URL('../../../../shared/corpora/', import.meta.url);
const fixtures = new URL('../bench/fixtures/', import.meta.url);

function viaFields(v: Via | undefined): unknown {
  if (v === undefined) return undefined;
  return {
    protocol: v.protocol,
    transport: v.transport,
    host: v.host,
    ipv6: v.ipv6,
    port: v.port,
    branch: v.branch,
    received: v.received,
    rport: v.rport,
    maddr: v.maddr,
    ttl: v.ttl,
    params: [...v.params],
    raw: v.raw,
  };
}

function addrFields(a: NameAddr | undefined): unknown {
  if (a === undefined) return undefined;
  return {
    displayName: a.displayName,
    tag: a.tag,
    params: [...a.params],
    raw: a.raw,
    uri: a.uri.raw,
    malformed: a.uri.malformed,
  };
}

/** Every accessor with a fast path, against the full parser on the decoded value. */
function expectAgreement(m: SipMessage): void {
  const via = m.get('via');
  const full = via === undefined ? undefined : parseVia(firstListElement(via));
  expect(viaFields(m.topVia())).toEqual(
    full === undefined || isSipError(full) ? undefined : viaFields(full),
  );
  // via(): every element of every Via line through parseVia, up to the first malformed one.
  const all: unknown[] = [];
  for (const e of m.getAll('via')) {
    const v = parseVia(e);
    if (isSipError(v)) break;
    all.push(viaFields(v));
  }
  expect(m.via().map(viaFields)).toEqual(all);
  for (const name of ['from', 'to'] as const) {
    const v = m.get(name);
    const f = v === undefined ? undefined : parseNameAddrLazy(v);
    expect(addrFields(m[name]())).toEqual(
      f === undefined || isSipError(f) ? undefined : addrFields(f),
    );
  }
  const cseq = m.get('cseq');
  expect(m.cseq()).toEqual(cseq === undefined ? undefined : parseCSeq(cseq));
  const mf = m.get('max-forwards');
  const mfFull = mf === undefined ? -1 : parseDigits(mf, 255);
  expect(m.maxForwards()).toBe(mfFull < 0 ? undefined : mfFull);
  const cl = m.get('content-length');
  const clFull = cl === undefined ? -1 : parseDigits(cl, UINT32_MAX);
  expect(m.contentLength()).toBe(clFull < 0 ? undefined : clFull);
  expect(m.callId()).toBe(m.get('call-id') || undefined);
}

/** Mostly `common`, sometimes `odd`: valid values dominate, edge cases still appear. */
function mostly<T>(common: fc.Arbitrary<T>, odd: fc.Arbitrary<T>): fc.Arbitrary<T> {
  return fc.oneof({ arbitrary: common, weight: 5 }, { arbitrary: odd, weight: 1 });
}

// Pieces chosen to sit on both sides of every fast-path boundary.
const tokenish = mostly(
  fc.constantFrom('z9hG4bK776', 'host.example.com', '198.18.0.1', '5060', 'x'),
  fc.constantFrom(
    'a',
    'z9hG4bK776',
    'UDP',
    'tcp',
    'x-y',
    '1',
    '',
    '0',
    '65535',
    '65536',
    '255',
    '256',
    '00001',
    '198.18.0.1',
    '1.2.3',
    '256.1.1.1',
    'host.example.com',
    'Host.Example.COM.',
    '-bad.com',
    'bad-.com',
    'a..b',
    '.',
    '[::1]',
    '::1',
    'é',
    '"q"',
    'a b',
    'a\tb',
    '%41',
  ),
);
const sep = fc.constantFrom(';', ';', ';', ',', ', ', ' ;', '; ', '=', ':', ' ', '', '"', '<', '>');
const pname = fc.constantFrom(
  'branch',
  'BRANCH',
  'received',
  'rport',
  'ttl',
  'maddr',
  'tag',
  'TAG',
  'expires',
  'q',
  'Q',
  'lr',
  'x',
);
const param = fc
  .tuple(
    fc.constantFrom(';', ';', ' ;', '; ', ',', ''),
    pname,
    fc.option(fc.tuple(fc.constantFrom('=', '= ', ' ='), tokenish)),
  )
  .map(([s, n, v]) => `${s}${n}${v === null ? '' : v[0] + v[1]}`);
const params = fc.array(param, { maxLength: 5 }).map((a) => a.join(''));

const viaValue = fc
  .tuple(
    mostly(fc.constant('SIP/2.0/'), fc.constantFrom('sip/2.0/', 'SIP / 2.0 / ', 'SIP/3.0/')),
    mostly(fc.constantFrom('UDP', 'TCP', 'tls', 'WSS'), fc.constantFrom('', 'U"P')),
    mostly(fc.constant(' '), fc.constantFrom('  ', '\t', '')),
    tokenish,
    fc.option(fc.tuple(mostly(fc.constant(':'), fc.constantFrom(' :', ': ')), tokenish)),
    params,
    fc.option(fc.tuple(sep, fc.constantFrom('SIP/2.0/UDP h;branch=z9hG4bK2', 'junk', ''))),
  )
  .map(
    ([p, t, w, h, port, ps, more]) =>
      `${p}${t}${w}${h}${port === null ? '' : port[0] + port[1]}${ps}${more === null ? '' : more[0] + more[1]}`,
  );

const nameAddrValue = fc
  .tuple(
    fc.constantFrom(
      '',
      'Alice ',
      'Alice',
      'Alice  Smith ',
      '"Alice" ',
      '"Al\\"ice" ',
      '"Alice"',
      '"Al ice"  ',
      '"é" ',
      'é ',
      '"unterminated ',
    ),
    fc.constantFrom('<', '<', '', ' <'),
    fc.constantFrom(
      'sip:alice@atlanta.example.com',
      'sip:a@[::1]:5060;transport=tcp',
      'tel:+1234',
      's:',
      ':x',
      'sip',
      '1sip:a@b',
      'sip:a b@c',
      'sip:a>b',
      '',
      'sip:%zz@h',
    ),
    fc.constantFrom('>', '>', '', '> ', '>>'),
    params,
  )
  .map(([d, l, u, r, ps]) => `${d}${l}${u}${r}${ps}`);

const cseqValue = fc
  .tuple(
    fc.constantFrom('1', '314159', '4294967295', '4294967296', '00000000001', '', 'x', '-1'),
    fc.constantFrom(' ', '\t', '  ', ''),
    fc.constantFrom('INVITE', 'invite', 'ACK', 'FOO-BAR', 'INV ITE', 'INV"', '', 'MESSAGE'),
  )
  .map(([n, w, m]) => `${n}${w}${m}`);

function messageWith(via: string, from: string, to: string, cseq: string, mf: string): Buffer {
  return Buffer.from(
    `OPTIONS sip:bob@example.com SIP/2.0\r\nVia: ${via}\r\nMax-Forwards: ${mf}\r\n` +
      `From: ${from}\r\nTo: ${to}\r\nCall-ID: fast-1\r\nCSeq: ${cseq}\r\nContent-Length: 0\r\n\r\n`,
    'utf8',
  );
}

describe('fast paths agree with the full parsers', () => {
  it.each([
    'SIP/2.0/UDP 198.18.0.1:5060;branch=z9hG4bK1;rport',
    'SIP/2.0/udp Host.Example.COM;ttl=16;rport=5061;received=198.18.0.9;branch=z9hG4bK2',
    'SIP/2.0/TCP h.example.com:05060;ttl=0;ttl=255;rport;rport=7;RECEIVED=198.18.0.2',
    'SIP/2.0/TLS h.example.com.;received=198.18.0.3;received=198.18.0.4;x=y;lr',
    'SIP/2.0/WSS a-b.c;branch=z9hG4bK3, SIP/2.0/UDP d.e;branch=z9hG4bK4',
  ])('reads the top Via fields the scan records as the full parser does: %s', (value) => {
    const r = parse(messageWith(value, '<sip:a@b>;tag=1', '<sip:c@d>', '1 OPTIONS', '70'));
    if (!r.ok) throw new Error(r.error.reason);
    const v = r.message.topVia();
    expect(v).toBeInstanceOf(FastVia);
    expect(viaFields(v)).toEqual(viaFields(parseVia(firstListElement(value)) as Via));
  });

  it(
    'on generated Via, From/To, CSeq and Max-Forwards values',
    () => {
      let fastVia = 0;
      let fastAddr = 0;
      let fullVia = 0;
      fc.assert(
        fc.property(
          viaValue,
          nameAddrValue,
          nameAddrValue,
          cseqValue,
          fc.constantFrom('70', '0', '255', '256', '00070', '', 'x', '7 0'),
          (via, from, to, cseq, mf) => {
            const r = parse(messageWith(via, from, to, cseq, mf));
            if (!r.ok) return;
            expectAgreement(r.message);
            const v = r.message.topVia();
            if (v instanceof FastVia) fastVia++;
            else if (v !== undefined) fullVia++;
            if (r.message.from() instanceof FastNameAddr) fastAddr++;
          },
        ),
        { numRuns: 3000 },
      );
      // Both sides of the boundary were exercised, not only the fallback.
      expect(fastVia).toBeGreaterThan(20);
      expect(fullVia).toBeGreaterThan(20);
      expect(fastAddr).toBeGreaterThan(20);
    },
    PROPERTY_TIMEOUT_MS,
  );

  it(
    'on the bench messages with random byte mutations',
    () => {
      const seeds = [
        readFileSync(new URL('invite.sip', fixtures)),
        readFileSync(new URL('ok200.sip', fixtures)),
      ];
      const alphabet = fc.constantFrom(
        ...[
          0x20, 0x09, 0x22, 0x3b, 0x3d, 0x2c, 0x3c, 0x3e, 0x3a, 0x5b, 0x41, 0x2e, 0x2d, 0xc3, 0x30,
        ],
      );
      fc.assert(
        fc.property(
          fc.integer({ min: 0, max: seeds.length - 1 }),
          fc.array(fc.tuple(fc.nat(), alphabet), { minLength: 1, maxLength: 4 }),
          (which, edits) => {
            const seed = seeds[which] as Buffer;
            const b = Buffer.from(seed);
            const headEnd = b.indexOf('\r\n\r\n');
            for (const [at, byte] of edits) b[at % headEnd] = byte;
            const r = parse(b);
            if (!r.ok) return;
            expectAgreement(r.message);
          },
        ),
        { numRuns: 2000 },
      );
    },
    PROPERTY_TIMEOUT_MS,
  );

  it('on every message of the corpora', () => {
    let checked = 0;
    for (const dir of ['rfc4475', 'rfc5118']) {
      for (const file of readdirSync(new URL(`${dir}/`, corpora))) {
        if (!file.endsWith('.dat')) continue;
        const r = parse(readFileSync(new URL(`${dir}/${file}`, corpora)));
        if (!r.ok) continue;
        expectAgreement(r.message);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(30);
  });

  it(
    'on generated hosts, ports, URI outlines and CSeq numbers, byte by byte',
    () => {
      // Byte-level pieces for the per-byte classes of the scanners (host classes, label ends,
      // the 63-byte label and 255-byte host bounds, port and CSeq digit counts, URI outline bytes).
      const hostByte = fc.constantFrom(...'aZ09-_..'.split(''), 'x', '7', '-', '.', '@', 'é');
      const label = fc.oneof(
        { arbitrary: fc.array(hostByte, { maxLength: 8 }).map((a) => a.join('')), weight: 8 },
        { arbitrary: fc.integer({ min: 61, max: 66 }).map((n) => 'a'.repeat(n)), weight: 1 },
        { arbitrary: fc.constantFrom('255', '256', '0', '00', '1234'), weight: 2 },
      );
      const host = fc.array(label, { minLength: 1, maxLength: 5 }).map((a) => a.join('.'));
      const digits = fc
        .array(fc.constantFrom(...'0123456789'.split('')), { maxLength: 12 })
        .map((a) => a.join(''));
      const uriByte = fc.constantFrom(
        's',
        'i',
        'p',
        ':',
        '@',
        '.',
        '>',
        ' ',
        '\t',
        '\x7f',
        'é',
        '"',
        ';',
      );
      const uri = fc.array(uriByte, { maxLength: 12 }).map((a) => a.join(''));
      let fastVia = 0;
      let fastAddr = 0;
      let cseqs = 0;
      fc.assert(
        fc.property(
          host,
          fc.option(digits),
          fc.constantFrom('', ';branch=z9hG4bK1', ';rport=', ';received=1.2.3.4;branch=x'),
          fc.constantFrom('sip:', 'sip:a@', 'x', ''),
          uri,
          digits,
          fc.constantFrom(' INVITE', '\tACK', ' X', 'INVITE', ' '),
          (h, port, ps, u0, u1, n, m) => {
            const via = `SIP/2.0/UDP ${h}${port === null ? '' : ':' + port}${ps}`;
            const addr = `Bob <${u0}${u1}>;tag=1`;
            const r = parse(messageWith(via, addr, addr, `${n}${m}`, '70'));
            if (!r.ok) return;
            expectAgreement(r.message);
            if (r.message.topVia() instanceof FastVia) fastVia++;
            if (r.message.from() instanceof FastNameAddr) fastAddr++;
            if (r.message.cseq() !== undefined) cseqs++;
          },
        ),
        { numRuns: 3000 },
      );
      expect(fastVia).toBeGreaterThan(50);
      expect(fastAddr).toBeGreaterThan(50);
      expect(cseqs).toBeGreaterThan(50);
    },
    PROPERTY_TIMEOUT_MS,
  );

  it('reads Content-Length from the scan only until an edit', () => {
    const r = parse(readFileSync(new URL('invite.sip', fixtures)));
    if (!r.ok) throw new Error(r.error.reason);
    const m = r.message;
    expect(m.contentLength()).toBe(225);
    m.setHeader('Content-Length', '12');
    expect(m.contentLength()).toBe(12);
    m.removeHeader('Content-Length');
    expect(m.contentLength()).toBeUndefined();
    const r2 = parse(readFileSync(new URL('invite.sip', fixtures)));
    if (!r2.ok) throw new Error(r2.error.reason);
    r2.message.addHeader('X-Other', '1');
    expect(r2.message.contentLength()).toBe(225);
    r2.message.setBody('v=0\r\n');
    expect(r2.message.contentLength()).toBe(5);
    const r3 = parse(
      'OPTIONS sip:b@example.com SIP/2.0\r\nl: 0\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n',
    );
    if (!r3.ok) throw new Error(r3.error.reason);
    expect(r3.message.contentLength()).toBe(0);
    expect(r3.message.clone().contentLength()).toBe(0);
  });

  it('reads the bench INVITE through the fast paths', () => {
    const r = parse(readFileSync(new URL('invite.sip', fixtures)));
    if (!r.ok) throw new Error(r.error.reason);
    const m = r.message;
    expect(m.topVia()?.branch).toBe('z9hG4bK2d4790.1');
    expect(m.topVia()?.host).toBe('proxy1.atlanta.example.com');
    expect(m.from()?.tag).toBe('1928301774');
    expect(m.to()?.tag).toBeUndefined();
    expect(m.to()?.displayName).toBe('Bob');
    expect(m.cseq()).toEqual({ seq: 314159, method: 'INVITE' });
    expect(m.maxForwards()).toBe(69);
    expect(m.contentLength()).toBe(225);
  });
});

describe('serialise after forward edits', () => {
  const invite = readFileSync(new URL('invite.sip', fixtures));
  const text = invite.toString('utf8');

  it(
    'is the original text with the new Via line and the decremented Max-Forwards',
    () => {
      fc.assert(
        fc.property(
          fc.string({ unit: 'grapheme', maxLength: 40 }).filter((s) => !/[\x00-\x1f\x7f]/.test(s)),
          fc.integer({ min: 1, max: 3000 }),
          (extra, padding) => {
            const r = parse(invite);
            if (!r.ok) throw new Error(r.error.reason);
            const m = r.message;
            const via = `SIP/2.0/UDP 198.18.0.1:5060;branch=z9hG4bK${'x'.repeat(padding)};x="${extra}"`;
            m.decrementMaxForwards();
            m.prependVia(via);
            // a function replacement: `extra` may hold `$` patterns ("$$", "$&")
            const expected = text
              .replace('Max-Forwards: 69\r\n', 'Max-Forwards: 68\r\n')
              .replace('Via: ', () => `Via: ${via}\r\nVia: `);
            expect(serialize(m).toString('utf8')).toBe(expected);
          },
        ),
        { numRuns: 200 },
      );
    },
    PROPERTY_TIMEOUT_MS,
  );

  it('keeps earlier serialised messages intact while later ones are written', () => {
    const outs: Buffer[] = [];
    for (let i = 0; i < 200; i++) {
      const r = parse(invite);
      if (!r.ok) throw new Error(r.error.reason);
      r.message.prependVia(`SIP/2.0/UDP 198.18.0.1;branch=z9hG4bK${i}`);
      outs.push(serialize(r.message));
    }
    outs.forEach((b, i) => {
      expect(b.toString('utf8')).toBe(
        text.replace('Via: ', `Via: SIP/2.0/UDP 198.18.0.1;branch=z9hG4bK${i}\r\nVia: `),
      );
    });
  });
});

describe('start-line fast path', () => {
  it(
    'agrees with the general start-line parser',
    () => {
      const piece = fc.constantFrom(
        'INVITE',
        'invite',
        'FOO',
        'IN"V',
        'SIP/2.0',
        'sip/2.0',
        'SIP/2.00',
        'SIP/1.0',
        'sip:bob@example.com',
        'sip:é@x',
        '200',
        '099',
        '700',
        '2000',
        '20',
        'OK',
        'Très bien',
        '',
        '\t',
      );
      const sep = fc.constantFrom(' ', ' ', ' ', '  ', '\t', '');
      const common = fc.constantFrom(
        'INVITE sip:bob@example.com SIP/2.0',
        'SIP/2.0 200 OK',
        'SIP/2.0 180 ',
        'SIP/2.0 404',
        'FOO-BAR sip:é@x SIP/2.0',
      );
      let accepted = 0;
      fc.assert(
        fc.property(
          fc.oneof(
            fc.array(fc.tuple(piece, sep), { minLength: 1, maxLength: 4 }),
            fc
              .tuple(common, fc.constantFrom('', ' ', 'x', '\t'))
              .map(([c, t]) => [[c, t] as const]),
          ),
          (parts) => {
            const line = Buffer.from(parts.map(([p, s]) => p + s).join(''), 'utf8');
            const fast = fastStartLine(line, 0, line.length);
            if (fast === undefined) return;
            accepted++;
            expect(fast).toEqual(parseStartLineText(line, 0, line.length));
          },
        ),
        { numRuns: 3000 },
      );
      expect(accepted).toBeGreaterThan(100);
    },
    PROPERTY_TIMEOUT_MS,
  );
});
