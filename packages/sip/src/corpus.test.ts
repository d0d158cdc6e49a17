/**
 * RFC 4475 and RFC 5118 torture corpora, driven by MANIFEST.tsv: every file is a test case, fed
 * as the bytes on disk (RFC 5118 files keep their bare-LF line ends: the parser accepts LF), as
 * one datagram and, separately, through SipStreamParser both whole and one byte at a time.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  mediaEndpoints,
  parse,
  serialize,
  SipStreamParser,
  validate,
  type ParseResult,
  type SipMessage,
} from './index.js';

const corpora = new URL('../../../../shared/corpora/', import.meta.url);

interface Row {
  readonly corpus: string;
  readonly file: string;
  readonly section: string;
  readonly expected: 'valid' | 'invalid' | 'valid-but-tricky';
  readonly what: string;
}

const manifest: Row[] = readFileSync(new URL('MANIFEST.tsv', corpora), 'utf8')
  .split('\n')
  .slice(1)
  .filter((l) => l.trim().length > 0)
  .map((l) => {
    const [corpus = '', file = '', section = '', expected = '', what = ''] = l.split('\t');
    return { corpus, file, section, expected: expected as Row['expected'], what };
  })
  .filter((r) => r.corpus === 'rfc4475' || r.corpus === 'rfc5118');

function bytesOf(r: Row): Buffer {
  return readFileSync(new URL(`${r.corpus}/${r.file}`, corpora));
}

/** What the parser must do with each file. */
type Outcome =
  | { readonly kind: 'accept'; readonly check?: (m: SipMessage, bytes: Buffer) => void }
  | { readonly kind: 'parse-error'; readonly code: string }
  | {
      readonly kind: 'reject';
      readonly status: number;
      readonly reason: RegExp;
      readonly check?: (m: SipMessage) => void;
    };

const accept = (check?: (m: SipMessage, bytes: Buffer) => void): Outcome => ({
  kind: 'accept',
  ...(check ? { check } : {}),
});
const parseError = (code: string): Outcome => ({ kind: 'parse-error', code });
const reject = (status: number, reason: RegExp, check?: (m: SipMessage) => void): Outcome => ({
  kind: 'reject',
  status,
  reason,
  ...(check ? { check } : {}),
});

const EXPECT: Record<string, Outcome> = {
  // ---- RFC 4475 §3.1.1: valid messages
  'rfc4475/wsinv.dat': accept((m) => {
    expect(m.maxForwards()).toBe(68);
    expect(m.cseq()).toEqual({ seq: 9, method: 'INVITE' });
    expect(m.via().map((v) => v.branch)).toEqual(['390skdjuw', 'z9hG4bK9ikj8', 'z9hG4bK30239']);
    expect(m.via()[1]?.transport).toBe('TCP');
    expect(m.body.length).toBe(150);
    expect(m.to()?.tag).toBe('1918181833n');
    expect(m.from()?.displayName).toBe('J Rosenberg \\"');
    expect(m.from()?.tag).toBe('98asjd8');
    expect(m.get('NewFangledHeader')).toBe('newfangled value continued newfangled value');
    expect(m.get('UnknownHeaderWithUnusualValue')).toBe(';;,,;;,;');
    expect(m.get('subject')).toBe('');
    expect(m.contacts()[0]?.displayName).toBe('Quoted string ""');
    expect(m.contacts()[0]?.q).toBe(0.33);
    expect(m.route()[0]?.uri.params.get('unknownwith')).toBe('value');
  }),
  'rfc4475/intmeth.dat': accept((m) => {
    expect(m.method).toBe("!interesting-Method0123456789_*+`.%indeed'~");
    expect(m.cseq()?.method).toBe(m.method);
    expect(m.to()?.displayName).toBe('BEL:\x07 NUL:\x00 DEL:\x7f');
    expect(m.callId()).toBe('intmeth.word%ZK-!.*_+\'@word`~)(><:\\/"][?}{');
    expect(m.from()?.params.get("fromparam''~+*_!.-%")).toBe('работающий');
    expect(m.requestUriParsed()?.password).toBe("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)");
    expect(m.topVia()?.branch).toBe("z9hG4bK-.!%66*_+`'~");
  }),
  'rfc4475/esc01.dat': accept((m) => {
    expect(m.requestUriParsed()?.user).toBe('sips:user@example.com');
    expect(m.to()?.uri.user).toBe('user');
    expect(m.from()?.uri.user).toBe('I have spaces');
    // n%61me=v%61lue%25%34%31 decodes once to name=value%41, never recursively
    expect(m.contacts()[0]?.uri.params.get('name')).toBe('value%41');
    expect(m.contacts()[0]?.uri.params.has('lr')).toBe(true);
  }),
  'rfc4475/escnull.dat': accept((m) => {
    expect(m.to()?.uri.user).toBe('null-\x00-null');
    expect(m.contacts().map((c) => c.uri.user)).toEqual(['\x00', '\x00\x00']);
  }),
  'rfc4475/esc02.dat': accept((m) => {
    expect(m.method).toBe('RE%47IST%45R');
    expect(m.contacts()).toHaveLength(2);
    expect(m.get('C%6Fntact')).toBe('<sip:alias2@host2.example.com>');
    expect(m.from()?.displayName).toBe('%Z%45');
  }),
  'rfc4475/lwsdisp.dat': accept((m) => expect(m.from()?.displayName).toBe('caller')),
  'rfc4475/longreq.dat': accept((m) => {
    expect(m.via()).toHaveLength(34);
    expect(m.getAll('via')).toHaveLength(34);
    expect(m.body.length).toBe(150);
    expect(m.from()?.tag).toBe(`12${'982'.repeat(50)}424`);
    expect(m.to()?.displayName).toMatch(/^I have a user name of (extreme){10} proportion$/);
  }),
  'rfc4475/dblreq.dat': accept((m, bytes) => {
    expect(m.method).toBe('REGISTER');
    // the 450 trailing octets are noise: never part of the message, never forwarded
    expect(serialize(m).length).toBe(bytes.length - 450);
    expect(Buffer.compare(serialize(m), bytes.subarray(0, bytes.length - 450))).toBe(0);
  }),
  'rfc4475/semiuri.dat': accept((m) => {
    expect(m.requestUriParsed()?.rawUser).toBe('user;par=u%40example.net');
    expect(m.requestUriParsed()?.user).toBe('user;par=u@example.net');
    expect(m.requestUriParsed()?.host).toBe('example.com');
  }),
  'rfc4475/transports.dat': accept((m) =>
    expect(m.via().map((v) => v.transport)).toEqual(['UDP', 'SCTP', 'TLS', 'UNKNOWN', 'TCP']),
  ),
  'rfc4475/mpart01.dat': accept((m) => {
    expect(m.body.length).toBe(553);
    expect(m.body.filter((b) => b === 0)).toHaveLength(2);
  }),
  'rfc4475/unreason.dat': accept((m) => {
    expect(m.status).toBe(200);
    expect(m.reason).toBe('= 2**3 * 5**2 но сто девяносто девять - простое');
  }),
  'rfc4475/noreason.dat': accept((m) => {
    expect(m.status).toBe(100);
    expect(m.reason).toBe('');
  }),
  // ---- RFC 4475 §3.1.2: invalid messages
  'rfc4475/badinv01.dat': reject(400, /Via/),
  'rfc4475/clerr.dat': parseError('SIP_ERR_BODY_TRUNCATED'),
  'rfc4475/ncl.dat': parseError('SIP_ERR_CONTENT_LENGTH'),
  'rfc4475/scalar02.dat': reject(400, /CSeq/, (m) => {
    expect(m.cseq()).toBeUndefined();
    expect(m.maxForwards()).toBeUndefined();
    expect(m.expires()).toBeUndefined();
  }),
  'rfc4475/scalarlg.dat': reject(400, /CSeq/, (m) => expect(m.isRequest).toBe(false)),
  'rfc4475/quotbal.dat': reject(400, /To/, (m) => expect(m.to()).toBeUndefined()),
  'rfc4475/ltgtruri.dat': reject(400, /Request-URI/),
  'rfc4475/lwsruri.dat': parseError('SIP_ERR_BAD_START_LINE'),
  'rfc4475/lwsstart.dat': parseError('SIP_ERR_BAD_START_LINE'),
  'rfc4475/trws.dat': parseError('SIP_ERR_BAD_START_LINE'),
  'rfc4475/escruri.dat': reject(400, /Request-URI/),
  'rfc4475/baddate.dat': reject(400, /Date/),
  'rfc4475/regbadct.dat': reject(400, /Contact/),
  'rfc4475/badaspec.dat': reject(400, /To/),
  'rfc4475/baddn.dat': reject(400, /From/),
  'rfc4475/badvers.dat': reject(505, /Version Not Supported/),
  'rfc4475/mismatch01.dat': reject(400, /CSeq/),
  'rfc4475/mismatch02.dat': reject(400, /CSeq/),
  'rfc4475/bigcode.dat': parseError('SIP_ERR_BAD_STATUS'),
  // ---- RFC 4475 §3.2 - §3.4
  'rfc4475/badbranch.dat': accept((m) => expect(m.topVia()?.branch).toBe('z9hG4bK')),
  'rfc4475/insuf.dat': reject(400, /Missing/),
  'rfc4475/unkscm.dat': reject(416, /Unsupported URI Scheme/, (m) =>
    expect(m.requestUriParsed()?.scheme).toBe('nobodyknowsthisscheme'),
  ),
  'rfc4475/novelsc.dat': reject(416, /Unsupported URI Scheme/, (m) =>
    expect(m.requestUriParsed()?.scheme).toBe('soap.beep'),
  ),
  'rfc4475/unksm2.dat': accept((m) => {
    expect(m.to()?.uri.scheme).toBe('isbn');
    expect(m.from()?.uri.scheme).toBe('http');
    expect(m.contacts()[0]?.uri.scheme).toBe('name');
  }),
  'rfc4475/bext01.dat': reject(420, /Bad Extension/),
  'rfc4475/invut.dat': accept((m) => expect(m.contentType()).toBe('application/unknownformat')),
  'rfc4475/regaut01.dat': accept((m) => {
    expect(m.get('authorization')).toBe('NoOneKnowsThisScheme opaque-data=here');
    expect(m.contentLength()).toBe(0);
  }),
  'rfc4475/multi01.dat': reject(400, /Multiple/),
  'rfc4475/mcl01.dat': parseError('SIP_ERR_CONTENT_LENGTH'),
  'rfc4475/bcast.dat': accept((m) => expect(m.via()[1]?.host).toBe('255.255.255.255')),
  'rfc4475/zeromf.dat': accept((m) => expect(m.maxForwards()).toBe(0)),
  'rfc4475/cparam01.dat': accept((m) => {
    expect(m.contacts()[0]?.params.has('unknownparam')).toBe(true);
    expect(m.contacts()[0]?.uri.params.has('unknownparam')).toBe(false);
  }),
  'rfc4475/cparam02.dat': accept((m) => {
    expect(m.contacts()[0]?.uri.params.has('unknownparam')).toBe(true);
    expect(m.contacts()[0]?.params.has('unknownparam')).toBe(false);
  }),
  'rfc4475/regescrt.dat': accept((m) => {
    expect(m.contacts()[0]?.uri.headers.get('Route')).toBe('<sip:sip.example.com>');
    expect(m.contentLength()).toBe(0);
  }),
  'rfc4475/sdp01.dat': accept((m) => expect(m.get('accept')).toBe('text/nobodyKnowsThis')),
  'rfc4475/inv2543.dat': accept((m) => {
    // no Content-Length on a datagram: the body is the rest of the datagram
    expect(m.body.length).toBe(105);
    expect(m.topVia()?.branch).toBeUndefined();
    expect(m.from()?.tag).toBeUndefined();
    expect(m.maxForwards()).toBeUndefined();
  }),
  'rfc4475/test.dat': parseError('SIP_ERR_BAD_HEADER'),
  // ---- RFC 5118
  'rfc5118/ipv6-good': accept((m) => {
    expect(m.requestUriParsed()).toMatchObject({ host: '2001:db8::10', ipv6: true });
    expect(m.topVia()?.ipv6).toBe(true);
  }),
  'rfc5118/ipv6-bad': reject(400, /Request-URI/),
  'rfc5118/port-ambiguous': accept((m) =>
    expect(m.requestUriParsed()).toMatchObject({ host: '2001:db8::10:5070', port: undefined }),
  ),
  'rfc5118/port-unambiguous': accept((m) =>
    expect(m.requestUriParsed()).toMatchObject({ host: '2001:db8::10', port: 5070 }),
  ),
  'rfc5118/via-received-param-with-delim': accept((m) =>
    expect(m.topVia()?.received).toBe('2001:db8::9:255'),
  ),
  'rfc5118/via-received-param-no-delim': accept((m) =>
    expect(m.topVia()?.received).toBe('2001:db8::9:255'),
  ),
  // The archived Content-Length (268) exceeds the 242-byte body: RFC 3261 §18.3 says error.
  'rfc5118/ipv6-in-sdp': parseError('SIP_ERR_BODY_TRUNCATED'),
  'rfc5118/mult-ip-in-header': accept((m) => {
    expect(m.via().map((v) => [v.host, v.ipv6])).toEqual([
      ['2001:db8::9:1', true],
      ['192.0.2.1', false],
      ['2001:db8::9:255', true],
    ]);
    expect(m.via()[2]?.received).toBe('192.0.2.200');
  }),
  'rfc5118/mult-ip-in-sdp': parseError('SIP_ERR_BODY_TRUNCATED'),
  'rfc5118/ipv4-mapped-ipv6': accept((m) => {
    expect(m.topVia()).toMatchObject({ host: '::ffff:192.0.2.10', port: 19823, ipv6: true });
    const media = mediaEndpoints(m.body);
    expect(media.ok && media.media.map((e) => e.address)).toEqual([
      '::ffff:192.0.2.2',
      '::ffff:192.0.2.2',
    ]);
  }),
  // [2001:db8:::192.0.2.1] is not an IPv6 address: strict rejection (RFC 5118 §4.10 allows it)
  'rfc5118/ipv6-bug-abnf-3-colons': reject(400, /To|Request-URI/),
  'rfc5118/ipv6-correct-abnf-2-colons': accept((m) =>
    expect(m.requestUriParsed()?.host).toBe('2001:db8::192.0.2.1'),
  ),
};

describe('corpus manifest', () => {
  it('lists every file on disk and has an expectation for each', () => {
    expect(manifest.filter((r) => r.corpus === 'rfc4475')).toHaveLength(50);
    expect(manifest.filter((r) => r.corpus === 'rfc5118')).toHaveLength(12);
    for (const r of manifest) expect(EXPECT[`${r.corpus}/${r.file}`], r.file).toBeDefined();
  });
});

describe.each(manifest)('$corpus/$file (§$section, $expected)', (row) => {
  const key = `${row.corpus}/${row.file}`;
  const outcome = EXPECT[key] as Outcome;
  const bytes = bytesOf(row);

  if (outcome.kind === 'accept') {
    it('parses as a datagram, validates, and reads the tested details', () => {
      const r = parse(bytes);
      expect(r.ok, r.ok ? '' : `${r.error.code} ${r.error.reason}`).toBe(true);
      if (!r.ok) return;
      expect(validate(r.message)).toEqual({ ok: true });
      outcome.check?.(r.message, bytes);
    });
    it('serializes unedited to the bytes it was parsed from', () => {
      const r = parse(bytes);
      if (!r.ok) throw new Error(r.error.reason);
      const out = serialize(r.message);
      expect(Buffer.compare(out, bytes.subarray(0, out.length))).toBe(0);
    });
  } else if (outcome.kind === 'reject') {
    it(`parses, and validate() answers ${outcome.status}`, () => {
      const r = parse(bytes);
      expect(r.ok, r.ok ? '' : `${r.error.code} ${r.error.reason}`).toBe(true);
      if (!r.ok) return;
      const v = validate(r.message);
      expect(v.ok).toBe(false);
      if (v.ok) return;
      expect(v.status).toBe(outcome.status);
      expect(v.reason).toMatch(outcome.reason);
      expect(v.code).toMatch(/^SIP_ERR_/);
      outcome.check?.(r.message);
      expect(Buffer.compare(serialize(r.message), bytes)).toBe(0);
    });
  } else {
    it(`is rejected by parse with ${outcome.code}, keeping what a 400 needs`, () => {
      const r = parse(bytes);
      expect(r.ok).toBe(false);
      if (r.ok) return;
      expect(r.error.code).toBe(outcome.code);
      expect(r.error.reason.length).toBeGreaterThan(0);
      if (outcome.code !== 'SIP_ERR_BAD_STATUS') {
        expect(r.error.partial?.callId).toBeTruthy();
        if (/^(Via|v) *:/im.test(bytes.toString('latin1'))) {
          expect(r.error.partial?.via?.length ?? 0).toBeGreaterThan(0);
        }
      }
    });
  }

  it('gives the same results through SipStreamParser whole and one byte at a time', () => {
    const whole = new SipStreamParser();
    const a = [...whole.push(bytes), ...whole.end()];
    const byByte = new SipStreamParser();
    const b: ParseResult[] = [];
    for (let i = 0; i < bytes.length; i++) b.push(...byByte.push(bytes.subarray(i, i + 1)));
    b.push(...byByte.end());
    const sig = (rs: ParseResult[]): string[] =>
      rs.map((r) => (r.ok ? `msg:${serialize(r.message).toString('latin1')}` : r.error.code));
    expect(sig(b)).toEqual(sig(a));
    expect(a.length).toBeGreaterThan(0);
    // A datagram that parsed and ends with its framed message frames identically on a stream.
    const d = parse(bytes);
    const streamFirst = a[0];
    if (d.ok && streamFirst?.ok && serialize(d.message).length === bytes.length) {
      if (d.message.contentLength() !== undefined) {
        expect(serialize(streamFirst.message).toString('latin1')).toBe(bytes.toString('latin1'));
      }
    }
  });
});

describe('RFC 5118 SDP files with their Content-Length corrected in memory', () => {
  function corrected(file: string): SipMessage {
    const raw = readFileSync(new URL(`rfc5118/${file}`, corpora), 'latin1');
    const split = raw.indexOf('\n\n');
    const bodyLength = Buffer.byteLength(raw.slice(split + 2), 'latin1');
    const fixed = raw.replace(/Content-Length: \d+/, `Content-Length: ${bodyLength}`);
    const r = parse(Buffer.from(fixed, 'latin1'));
    if (!r.ok) throw new Error(r.error.reason);
    return r.message;
  }

  it('ipv6-in-sdp: reads the unbracketed IP6 connection address', () => {
    const m = corrected('ipv6-in-sdp');
    expect(validate(m)).toEqual({ ok: true });
    const media = mediaEndpoints(m.body);
    expect(media.ok && media.media[0]).toMatchObject({
      address: '2001:db8::20',
      addressType: 'IP6',
    });
  });

  it('mult-ip-in-sdp: one IP4 and one IP6 connection', () => {
    const media = mediaEndpoints(corrected('mult-ip-in-sdp').body);
    expect(media.ok && media.media.map((e) => [e.addressType, e.address])).toEqual([
      ['IP4', '192.0.2.1'],
      ['IP6', '2001:db8::1'],
    ]);
  });
});
