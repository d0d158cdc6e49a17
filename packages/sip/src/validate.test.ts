/**
 * validate() checks a parsed message on its bytes first (fast.ts `viaOkB`, `nameAddrOkB`,
 * `sipUriOkB`: they accept only what the full parsers accept) and uses the message's cached
 * parses (CSeq, Request-URI). Its answers must be exactly those of the full parsers: every case
 * here is compared with `validate` of the same message seen through a plain `SipMessage` that is
 * not this package's class, which takes the full-parser path (header list, `parseVia`,
 * `parseNameAddr`, `parseContact`, `parseCSeq`, `parseUri` on every element).
 */
import { readdirSync, readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isSipError } from './errors.js';
import { nameAddrOkB, sipUriOkB, viaOkB } from './fast.js';
import { parse, validate, type SipMessage, type ValidationResult } from './index.js';
import { parseNameAddr } from './name-addr.js';
import { parseUri } from './uri.js';
import { parseVia } from './via.js';

/** See fast.test.ts: a fixed number of cases, bounded in time only for a loaded machine. */
const PROPERTY_TIMEOUT_MS = 120_000;

const corpora = new URL('../../../../shared/corpora/', import.meta.url);

/** The same message as a plain object: `validate` then takes its full-parser path. */
function generic(m: SipMessage): SipMessage {
  return {
    get isRequest() {
      return m.isRequest;
    },
    get method() {
      return m.method;
    },
    get requestUri() {
      return m.requestUri;
    },
    get status() {
      return m.status;
    },
    get reason() {
      return m.reason;
    },
    get version() {
      return m.version;
    },
    get body() {
      return m.body;
    },
    headers: () => m.headers(),
    get: (n) => m.get(n),
    getAll: (n) => m.getAll(n),
    has: (n) => m.has(n),
    requestUriParsed: () => m.requestUriParsed(),
    via: () => m.via(),
    topVia: () => m.topVia(),
    from: () => m.from(),
    to: () => m.to(),
    callId: () => m.callId(),
    cseq: () => m.cseq(),
    maxForwards: () => m.maxForwards(),
    contacts: () => m.contacts(),
    contactStar: () => m.contactStar(),
    route: () => m.route(),
    recordRoute: () => m.recordRoute(),
    contentLength: () => m.contentLength(),
    contentType: () => m.contentType(),
    expires: () => m.expires(),
    sessionExpires: () => m.sessionExpires(),
    minSE: () => m.minSE(),
    supported: () => m.supported(),
    require: () => m.require(),
    allow: () => m.allow(),
    bodyText: () => m.bodyText(),
    prependVia: (v) => m.prependVia(v),
    removeTopVia: () => m.removeTopVia(),
    prependRecordRoute: (v) => m.prependRecordRoute(v),
    removeTopRoute: () => m.removeTopRoute(),
    setRequestUri: (u) => m.setRequestUri(u),
    decrementMaxForwards: () => m.decrementMaxForwards(),
    setBody: (b, t) => m.setBody(b, t),
    addHeader: (n, v, p) => m.addHeader(n, v, p),
    setHeader: (n, v) => m.setHeader(n, v),
    removeHeader: (n) => m.removeHeader(n),
    clone: () => m.clone(),
  };
}

/** validate() of a parsed message, checked against the full-parser path on a fresh parse. */
function validated(bytes: Buffer): ValidationResult | undefined {
  const a = parse(bytes);
  const b = parse(bytes);
  if (!a.ok || !b.ok) return undefined;
  const fast = validate(a.message);
  expect(fast).toEqual(validate(generic(b.message)));
  return fast;
}

function request(headers: readonly string[], method = 'INVITE'): Buffer {
  return Buffer.from(
    `${method} sip:bob@example.com SIP/2.0\r\n${headers.join('\r\n')}\r\n` +
      `Call-ID: v-1@example.com\r\nCSeq: 1 ${method}\r\nMax-Forwards: 70\r\n` +
      `Content-Length: 0\r\n\r\n`,
    'latin1',
  );
}

const FROM = 'From: <sip:alice@example.com>;tag=1';
const TO = 'To: Bob <sip:bob@example.com>';
const VIA = 'Via: SIP/2.0/UDP 198.18.0.1:5060;branch=z9hG4bK1';

describe('validate on the bytes and the cached parses', () => {
  it.each<[string, readonly string[], ValidationResult]>([
    [
      'a common request',
      [VIA, FROM, TO, 'Contact: <sip:a@198.18.0.1:5060;transport=udp>'],
      { ok: true },
    ],
    [
      'several Via header fields',
      [VIA, 'Via: SIP/2.0/TCP h.example.com;branch=z9hG4bK2', FROM, TO],
      { ok: true },
    ],
    [
      'a malformed second Via header field',
      [VIA, 'Via: SIP/2.0/UDP bad_-.;branch=z9hG4bK2', FROM, TO],
      { ok: false, status: 400, reason: 'Malformed Via header', code: 'SIP_ERR_BAD_VIA' },
    ],
    [
      'comma-separated Via values',
      ['Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1, SIP/2.0/UDP b.example.com', FROM, TO],
      { ok: true },
    ],
    [
      'a malformed Via value after a comma',
      ['Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1, SIP/2.0/UDP', FROM, TO],
      { ok: false, status: 400, reason: 'Malformed Via header', code: 'SIP_ERR_BAD_VIA' },
    ],
    [
      'an empty Via value between commas',
      ['Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1,,SIP/2.0/UDP b', FROM, TO],
      { ok: false, status: 400, reason: 'Malformed Via header', code: 'SIP_ERR_BAD_VIA' },
    ],
    [
      'a repeated From header field',
      [VIA, FROM, FROM, TO],
      {
        ok: false,
        status: 400,
        reason: 'Multiple From header fields',
        code: 'SIP_ERR_DUPLICATE_HEADER',
      },
    ],
    [
      'a From URI that fails only the full URI parse',
      [VIA, 'From: <sip:alice@-bad.example.com>;tag=1', TO],
      {
        ok: false,
        status: 400,
        reason: 'Malformed From header',
        code: 'SIP_ERR_BAD_NAME_ADDR',
      },
    ],
    [
      'a quoted display name holding "<"',
      [VIA, 'From: "a<b" <sip:a@example.com>;tag=1', TO],
      { ok: true },
    ],
    [
      'an escaped user, a password and an IPv6 host (full parser)',
      [VIA, 'From: <sip:%61:pw@[2001:db8::1]:5060>;tag=1', TO],
      { ok: true },
    ],
    [
      'an addr-spec Contact with header parameters',
      [VIA, FROM, TO, 'Contact: sip:a@198.18.0.1:5061;expires=60'],
      { ok: true },
    ],
    [
      'an addr-spec Contact with "?" (needs <>)',
      [VIA, FROM, TO, 'Contact: sip:a@198.18.0.1?x=y'],
      {
        ok: false,
        status: 400,
        reason: 'Malformed Contact header',
        code: 'SIP_ERR_BAD_NAME_ADDR',
      },
    ],
    [
      'Contact * beside another contact',
      [VIA, FROM, TO, 'Contact: *', 'Contact: <sip:a@example.com>'],
      {
        ok: false,
        status: 400,
        reason: 'Contact * mixed with other contacts',
        code: 'SIP_ERR_BAD_VALUE',
      },
    ],
    [
      'a comma-separated Route list with a bad element',
      [VIA, FROM, TO, 'Route: <sip:p1.example.com;lr>, <sip:p2.example.com;lr>,<sip:-x;lr>'],
      { ok: false, status: 400, reason: 'Malformed Route header', code: 'SIP_ERR_BAD_NAME_ADDR' },
    ],
    [
      'Record-Route header fields, one a list',
      [
        VIA,
        FROM,
        TO,
        'Record-Route: <sip:p1.example.com;lr>,<sip:p2.example.com;lr>',
        'Record-Route: <sip:198.18.0.1;lr>',
      ],
      { ok: true },
    ],
    [
      'a Record-Route URI with an empty parameter value',
      [VIA, FROM, TO, 'Record-Route: <sip:198.18.0.1;lr=>'],
      {
        ok: false,
        status: 400,
        reason: 'Malformed Record-Route header',
        code: 'SIP_ERR_BAD_NAME_ADDR',
      },
    ],
    [
      'a Proxy-Require tag',
      [VIA, FROM, TO, 'Proxy-Require: foo'],
      {
        ok: false,
        status: 420,
        reason: 'Bad Extension',
        code: 'SIP_ERR_BAD_EXTENSION',
        unsupported: ['foo'],
      },
    ],
  ])('answers as the full parsers for %s', (_what, headers, expected) => {
    expect(validated(request(headers))).toEqual(expected);
  });

  it('answers as the full parsers after edits (synthetic lines)', () => {
    const r = parse(request([VIA, FROM, TO]));
    if (!r.ok) throw new Error(r.error.reason);
    const m = r.message;
    m.prependVia('SIP/2.0/UDP 198.18.0.2;branch=z9hG4bKx');
    m.prependRecordRoute('<sip:198.18.0.2;lr>');
    m.addHeader('Contact', 'sip:x@198.18.0.2');
    expect(validate(m)).toEqual({ ok: true });
    expect(validate(m)).toEqual(validate(generic(m)));
    m.prependVia('SIP/2.0/UDP');
    expect(validate(m)).toEqual({
      ok: false,
      status: 400,
      reason: 'Malformed Via header',
      code: 'SIP_ERR_BAD_VIA',
    });
  });

  it('answers as the full parsers on every message of the corpora', () => {
    let checked = 0;
    for (const dir of ['rfc4475', 'rfc5118']) {
      for (const file of readdirSync(new URL(`${dir}/`, corpora))) {
        if (!file.endsWith('.dat')) continue;
        if (validated(readFileSync(new URL(`${dir}/${file}`, corpora))) !== undefined) checked++;
      }
    }
    expect(checked).toBeGreaterThan(30);
  });

  // Pieces on both sides of every byte-check boundary, valid ones more often (a message is valid
  // only when all of its pieces are).
  const mostly = <T>(common: fc.Arbitrary<T>, odd: fc.Arbitrary<T>): fc.Arbitrary<T> =>
    fc.oneof({ arbitrary: common, weight: 30 }, { arbitrary: odd, weight: 1 });
  const host = mostly(
    fc.constantFrom('example.com', '198.18.0.1', 'a-b.example.com'),
    fc.constantFrom(
      'example.com',
      '198.18.0.1',
      'a-b.example.com',
      'EXAMPLE.com',
      '-bad.com',
      'bad-.com',
      '256.1.1.1',
      '1.2.3',
      'a..b',
      '[::1]',
      '[2001:db8::1]',
      'x_y',
      '',
      'é',
    ),
  );
  const user = mostly(
    fc.constantFrom('', 'alice@', 'a.b-c@'),
    fc.constantFrom('a%41@', '%zz@', 'a:pw@', 'a,b;c?d=e@', '@', 'a b@'),
  );
  const port = mostly(
    fc.constantFrom('', ':5060', ':65535'),
    fc.constantFrom(':65536', ':005060', ':', ':0', ':123456'),
  );
  const uriParam = mostly(
    fc.constantFrom(';lr', ';transport=udp', ';transport=UDP'),
    fc.constantFrom(
      ';=x',
      ';a=',
      ';a=b=c',
      ';%41',
      ';maddr=[::1]',
      ';a@b',
      ';',
      '?h=v',
      '?',
      ' ',
      '>',
    ),
  );
  const uri = fc
    .tuple(
      mostly(
        fc.constantFrom('sip:', 'sips:'),
        fc.constantFrom('SIP:', 'tel:', 'x:', 'sip', 'sip:sip:'),
      ),
      user,
      host,
      port,
      fc.array(uriParam, { maxLength: 3 }),
    )
    .map(([s, u, h, p, ps]) => `${s}${u}${h}${p}${ps.join('')}`);
  const headerParam = mostly(
    fc.constantFrom(';tag=1', ';TAG=x', ';lr'),
    fc.constantFrom(
      ';expires=60',
      ';expires=x',
      ';q=0.5',
      ';q=2',
      ';x=[::1]',
      ';x="q"',
      ' ;x',
      ';',
      ',',
      ', ',
      '',
    ),
  );
  const address = fc
    .tuple(
      mostly(fc.constantFrom('', 'Bob ', '"B<o>b" '), fc.constantFrom('"B\\"b" ', 'B  b ', '*')),
      fc.boolean(),
      uri,
      fc.array(headerParam, { maxLength: 3 }),
    )
    .map(([d, angle, u, ps]) =>
      d === '*' ? '*' : angle || d !== '' ? `${d}<${u}>${ps.join('')}` : `${u}${ps.join('')}`,
    );
  const list = fc
    .tuple(fc.array(address, { minLength: 1, maxLength: 3 }), fc.constantFrom(',', ', ', ' ,'))
    .map(([a, sep]) => a.join(sep));
  const via = fc
    .tuple(
      mostly(
        fc.constantFrom('SIP/2.0/UDP ', 'SIP/2.0/TCP '),
        fc.constantFrom('SIP / 2.0 / UDP ', 'SIP/2.0/UDP'),
      ),
      host,
      port,
      fc.array(
        mostly(
          fc.constantFrom(';branch=z9hG4bK1', ';rport', ';rport=5060', ';received=198.18.0.9'),
          fc.constantFrom(';ttl=256', ';maddr=x', ';branch='),
        ),
        { maxLength: 3 },
      ),
      mostly(fc.constantFrom('', ', SIP/2.0/UDP b.example.com'), fc.constantFrom(',', ', junk')),
    )
    .map(([p, h, po, ps, more]) => `${p}${h}${po}${ps.join('')}${more}`);

  it(
    'answers as the full parsers on generated Via, From, To, Contact, Route and Record-Route',
    () => {
      let ok = 0;
      let rejected = 0;
      fc.assert(
        fc.property(
          fc.array(via, { minLength: 1, maxLength: 3 }),
          address,
          address,
          fc.array(list, { maxLength: 2 }),
          fc.array(list, { maxLength: 2 }),
          fc.array(list, { maxLength: 2 }),
          (vias, from, to, contacts, routes, rrs) => {
            const r = validated(
              request([
                ...vias.map((v) => `Via: ${v}`),
                `From: ${from}`,
                `To: ${to}`,
                ...contacts.map((c) => `Contact: ${c}`),
                ...routes.map((c) => `Route: ${c}`),
                ...rrs.map((c) => `Record-Route: ${c}`),
              ]),
            );
            if (r?.ok === true) ok++;
            else if (r !== undefined) rejected++;
          },
        ),
        { numRuns: 3000 },
      );
      expect(ok).toBeGreaterThan(50);
      expect(rejected).toBeGreaterThan(50);
    },
    PROPERTY_TIMEOUT_MS,
  );

  it(
    'byte checks accept only what the full parsers accept',
    () => {
      let uriFast = 0;
      let addrFast = 0;
      let viaFast = 0;
      fc.assert(
        fc.property(uri, address, via, (u, a, v) => {
          const ub = Buffer.from(u, 'utf8');
          if (sipUriOkB(ub, 0, ub.length)) {
            uriFast++;
            expect(isSipError(parseUri(u))).toBe(false);
          }
          const ab = Buffer.from(a, 'utf8');
          if (nameAddrOkB(ab, 0, ab.length)) {
            addrFast++;
            expect(isSipError(parseNameAddr(a))).toBe(false);
          }
          const vb = Buffer.from(v, 'utf8');
          if (viaOkB(vb, 0, vb.length)) {
            viaFast++;
            expect(isSipError(parseVia(v))).toBe(false);
          }
        }),
        { numRuns: 5000 },
      );
      expect(uriFast).toBeGreaterThan(100);
      expect(addrFast).toBeGreaterThan(100);
      expect(viaFast).toBeGreaterThan(100);
    },
    PROPERTY_TIMEOUT_MS,
  );
});
