import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parse, serialize, SipError, type SipMessage } from './index.js';

const INVITE =
  'INVITE sip:bob@biloxi.example.com SIP/2.0\r\n' +
  'v: SIP/2.0/UDP p1.example.com;branch=z9hG4bK1, SIP/2.0/UDP ua.example.com;branch=z9hG4bK0\r\n' +
  'Max-Forwards: 10\r\n' +
  'Route: <sip:p2.example.com;lr>, <sip:p3.example.com;lr>\r\n' +
  'Record-Route: <sip:p1.example.com;lr>\r\n' +
  'From: <sip:alice@atlanta.example.com>;tag=1\r\n' +
  'To: <sip:bob@biloxi.example.com>\r\n' +
  'Call-ID: c1\r\nCSeq: 1 INVITE\r\nX-Custom: keep me\r\n' +
  'c: text/plain\r\nl: 5\r\n\r\nhello';

function mustParse(bytes: Uint8Array | string): SipMessage {
  const r = parse(bytes);
  if (!r.ok) throw new Error(`${r.error.code}: ${r.error.reason}`);
  return r.message;
}

/** Serialise, parse again: the round trip every edit must survive. */
function reparse(m: SipMessage): SipMessage {
  return mustParse(serialize(m));
}

describe('editing without reparse (RFC 3261 §16.6 request forwarding)', () => {
  it('prepends a Via above the existing ones', () => {
    const m = mustParse(INVITE);
    m.prependVia('SIP/2.0/UDP p2.example.com;branch=z9hG4bK2');
    expect(m.topVia()?.branch).toBe('z9hG4bK2');
    const again = reparse(m);
    expect(again.via().map((v) => v.branch)).toEqual(['z9hG4bK2', 'z9hG4bK1', 'z9hG4bK0']);
    expect(again.body.toString()).toBe('hello');
  });

  it('removes the top Via value from a comma-separated line (RFC 3261 §18.1.2 responses)', () => {
    const m = mustParse(INVITE);
    m.removeTopVia();
    expect(m.via().map((v) => v.branch)).toEqual(['z9hG4bK0']);
    expect(
      reparse(m)
        .via()
        .map((v) => v.branch),
    ).toEqual(['z9hG4bK0']);
    m.removeTopVia();
    expect(reparse(m).via()).toEqual([]);
  });

  it('prepends a Record-Route and removes the top Route', () => {
    const m = mustParse(INVITE);
    m.prependRecordRoute('<sip:p2.example.com;lr>');
    m.removeTopRoute();
    const again = reparse(m);
    expect(again.recordRoute().map((r) => r.uri.host)).toEqual([
      'p2.example.com',
      'p1.example.com',
    ]);
    expect(again.route().map((r) => r.uri.host)).toEqual(['p3.example.com']);
  });

  it('sets the Request-URI', () => {
    const m = mustParse(INVITE);
    m.setRequestUri('sip:bob@198.18.1.20:5060');
    expect(m.requestUriParsed()?.port).toBe(5060);
    const again = reparse(m);
    expect(again.requestUri).toBe('sip:bob@198.18.1.20:5060');
    expect(again.method).toBe('INVITE');
    expect(() => m.setRequestUri('sip:a b')).toThrow(SipError);
  });

  it('MUST decrement Max-Forwards by one, and add 70 when absent', () => {
    const m = mustParse(INVITE);
    expect(m.decrementMaxForwards()).toBe(9);
    expect(reparse(m).maxForwards()).toBe(9);
    const noMf = mustParse(INVITE.replace('Max-Forwards: 10\r\n', ''));
    expect(noMf.decrementMaxForwards()).toBe(70);
    expect(reparse(noMf).maxForwards()).toBe(70);
    const zero = mustParse(INVITE.replace('Max-Forwards: 10', 'Max-Forwards: 0'));
    expect(zero.decrementMaxForwards()).toBe(0);
  });

  it('replaces the body and keeps Content-Length (compact name kept) right', () => {
    const m = mustParse(INVITE);
    m.setBody('v=0\r\n', 'application/sdp');
    const again = reparse(m);
    expect(again.contentLength()).toBe(5);
    expect(again.contentType()).toBe('application/sdp');
    expect(again.bodyText()).toBe('v=0\r\n');
    expect(serialize(m).toString()).toContain('\r\nl: 5\r\n');
    m.setBody(new Uint8Array([1, 2, 3, 0]));
    expect(reparse(m).body).toEqual(Buffer.from([1, 2, 3, 0]));
  });

  it('adds, sets and removes headers, keeping unknown ones verbatim', () => {
    const m = mustParse(INVITE);
    m.addHeader('P-Test', 'one');
    m.addHeader('P-Test', 'zero', 'first');
    expect(m.getAll('p-test')).toEqual(['zero', 'one']);
    m.setHeader('p-test', 'only');
    expect(m.getAll('P-TEST')).toEqual(['only']);
    expect(m.removeHeader('p-test')).toBe(1);
    expect(m.removeHeader('p-test')).toBe(0);
    expect(m.removeHeader('v')).toBe(1);
    const again = reparse(m);
    expect(again.has('via')).toBe(false);
    expect(again.get('x-custom')).toBe('keep me');
    expect(() => m.addHeader('Bad Name', 'x')).toThrow(SipError);
    expect(() => m.addHeader('X-Inject', 'a\r\nVia: evil')).toThrow(SipError);
  });

  it('keeps unedited lines byte-exact after an edit', () => {
    const m = mustParse(INVITE);
    m.decrementMaxForwards();
    const out = serialize(m).toString('latin1');
    expect(out).toBe(INVITE.replace('Max-Forwards: 10', 'Max-Forwards: 9'));
  });

  it('clone() gives an independently editable copy (one per forked branch)', () => {
    const m = mustParse(INVITE);
    const a = m.clone();
    const b = m.clone();
    a.prependVia('SIP/2.0/UDP p2.example.com;branch=z9hG4bKa');
    b.prependVia('SIP/2.0/UDP p2.example.com;branch=z9hG4bKb');
    a.setRequestUri('sip:bob@198.18.1.1');
    expect(reparse(a).topVia()?.branch).toBe('z9hG4bKa');
    expect(reparse(b).topVia()?.branch).toBe('z9hG4bKb');
    expect(reparse(b).requestUri).toBe('sip:bob@biloxi.example.com');
    expect(serialize(m).toString('latin1')).toBe(INVITE);
  });

  it('rebuilds a head that had no closing empty line with one', () => {
    const m = mustParse('OPTIONS sip:a@b.example.com SIP/2.0\r\nCall-ID: x\r\nl: 0\r\n');
    expect(serialize(m).toString()).toBe(
      'OPTIONS sip:a@b.example.com SIP/2.0\r\nCall-ID: x\r\nl: 0\r\n',
    );
    m.addHeader('Max-Forwards', '70');
    expect(serialize(m).toString()).toBe(
      'OPTIONS sip:a@b.example.com SIP/2.0\r\nCall-ID: x\r\nl: 0\r\nMax-Forwards: 70\r\n\r\n',
    );
  });
});

describe('serialising an edited message that does not fill its buffer', () => {
  const FWD =
    'INVITE sip:bob@example.com SIP/2.0\r\n' +
    'Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bK1\r\n' +
    'Max-Forwards: 70\r\n' +
    'Call-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 5\r\n\r\nhello';
  const EXPECTED =
    'INVITE sip:bob@example.com SIP/2.0\r\n' +
    'Via: SIP/2.0/UDP p0.example.com;branch=z9hG4bK0\r\n' +
    'Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bK1\r\n' +
    // without a Record-Route in the message, the new one goes after the Via block
    'Record-Route: <sip:p0.example.com;lr>\r\n' +
    'Max-Forwards: 69\r\n' +
    'Call-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 5\r\n\r\nhello';

  function forward(bytes: Uint8Array): string {
    const m = mustParse(bytes);
    m.decrementMaxForwards();
    m.prependRecordRoute('<sip:p0.example.com;lr>');
    m.prependVia('SIP/2.0/UDP p0.example.com;branch=z9hG4bK0');
    return serialize(m).toString('latin1');
  }

  it('writes the same bytes for a whole buffer, leading CRLFs, trailing octets and a view', () => {
    expect(forward(Buffer.from(FWD))).toBe(EXPECTED);
    // RFC 3261 §18.3: octets beyond Content-Length are not part of the message.
    expect(forward(Buffer.from(`\r\n\r\n${FWD}TRAILING`))).toBe(EXPECTED);
    const big = Buffer.from(`xxxxxxx${FWD}yyyy`);
    expect(forward(big.subarray(7, 7 + FWD.length))).toBe(EXPECTED);
    expect(forward(new Uint8Array(big.buffer, big.byteOffset + 7, FWD.length))).toBe(EXPECTED);
  });

  it('keeps earlier serialisations intact while later ones reuse the output slab', () => {
    const outs: Buffer[] = [];
    for (let i = 0; i < 200; i++) {
      const m = mustParse(Buffer.from(FWD));
      m.decrementMaxForwards();
      m.prependRecordRoute('<sip:p0.example.com;lr>');
      m.prependVia('SIP/2.0/UDP p0.example.com;branch=z9hG4bK0');
      outs.push(serialize(m));
    }
    for (const out of outs) expect(out.toString('latin1')).toBe(EXPECTED);
  });
});

/** Every cached accessor's answer, in comparable form. */
function cachedReads(m: SipMessage): unknown {
  const addr = (a: { raw: string; tag: string | undefined; uri: { raw: string } } | undefined) =>
    a === undefined ? undefined : [a.raw, a.tag, a.uri.raw];
  return {
    via: m.via().map((v) => [v.raw, v.host, v.port, v.branch, v.rport, v.received]),
    topVia: m.topVia()?.raw,
    from: addr(m.from()),
    to: addr(m.to()),
    cseq: m.cseq(),
    ruri: m.requestUriParsed()?.raw,
    contacts: m.contacts().map((c) => [c.raw, c.uri.raw, c.expires]),
    route: m.route().map((r) => r.raw),
    recordRoute: m.recordRoute().map((r) => r.raw),
    contentType: m.contentType(),
    maxForwards: m.maxForwards(),
    contentLength: m.contentLength(),
  };
}

describe('cached parses across edits and clones', () => {
  const edit = fc.constantFrom(
    (m: SipMessage) => m.prependVia('SIP/2.0/TCP 198.18.0.7:5070;branch=z9hG4bKnew;rport'),
    (m: SipMessage) => m.removeTopVia(),
    (m: SipMessage) => m.prependVia('SIP/2.0/UDP a.example.com;branch=z9hG4bKa, SIP/2.0/UDP b'),
    (m: SipMessage) => m.prependVia('SIP/2.0/UDP é.example.com;branch=z9hG4bKé'),
    (m: SipMessage) => m.prependVia('SIP/2.0/UDP h;ttl=9;received=198.18.0.3;rport=9'),
    (m: SipMessage) => m.addHeader('Via', 'SIP/2.0/UDP bad_-.;branch=z9hG4bKb'),
    (m: SipMessage) => m.prependRecordRoute('<sip:198.18.0.7;lr>'),
    (m: SipMessage) => m.removeTopRoute(),
    (m: SipMessage) => m.setRequestUri('sip:carol@198.18.0.8:5080;transport=tcp'),
    (m: SipMessage) => void m.decrementMaxForwards(),
    (m: SipMessage) => m.setBody('v=0\r\n', 'application/sdp'),
    (m: SipMessage) => m.addHeader('Contact', '<sip:x@198.18.0.9>;expires=30'),
    (m: SipMessage) => m.addHeader('m', 'sip:y@198.18.0.9', 'first'),
    (m: SipMessage) => m.setHeader('To', '<sip:dave@example.com>;tag=t2'),
    (m: SipMessage) => m.setHeader('f', 'Eve <sip:eve@example.com>;tag=f2'),
    (m: SipMessage) => m.setHeader('CSeq', '7 INVITE'),
    (m: SipMessage) => m.setHeader('Route', '<sip:p9.example.com;lr>'),
    (m: SipMessage) => void m.removeHeader('record-route'),
    (m: SipMessage) => void m.removeHeader('Via'),
    (m: SipMessage) => void m.removeHeader('contact'),
    (m: SipMessage) => m.setHeader('Content-Type', 'Text/HTML; charset=utf-8'),
    (m: SipMessage) => m.addHeader('X-Other', 'x'),
  );

  it('answer after every edit as a fresh parse of the serialised message, and a clone too', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(edit, fc.boolean()), { maxLength: 8 }), (steps) => {
        let m = mustParse(INVITE.replace('l: 5', 'Contact: <sip:alice@198.18.0.1:5060>\r\nl: 5'));
        cachedReads(m);
        for (const [step, viaClone] of steps) {
          const reads = cachedReads(m); // fills the caches before the edit
          const original = m;
          const before = serialize(m).toString('latin1');
          if (viaClone) m = m.clone();
          step(m);
          expect(cachedReads(m)).toEqual(cachedReads(reparse(m)));
          if (viaClone) {
            // A clone shares line objects with its original: editing it changes nothing there.
            expect(serialize(original).toString('latin1')).toBe(before);
            expect(cachedReads(original)).toEqual(reads);
          }
        }
      }),
      { numRuns: 500 },
    );
  }, 120_000);
});
