/**
 * Property tests (fast-check, bounded budgets): no input throws or hangs, memory stays bounded,
 * and chunked input frames exactly like whole input.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
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

/**
 * Property tests run a fixed number of cases (`numRuns`), never fewer; this explicit bound only
 * keeps a slow, loaded machine (several test suites on two CPUs) from failing them on time.
 */
const PROPERTY_TIMEOUT_MS = 120_000;

const RUNS = 300;
const fixtures = new URL('../bench/fixtures/', import.meta.url);
const corpora = new URL('../../../../shared/corpora/rfc4475/', import.meta.url);
const SEEDS: Buffer[] = [
  readFileSync(new URL('invite.sip', fixtures)),
  readFileSync(new URL('ok200.sip', fixtures)),
  readFileSync(new URL('wsinv.dat', corpora)),
  readFileSync(new URL('intmeth.dat', corpora)),
  readFileSync(new URL('mpart01.dat', corpora)),
  readFileSync(new URL('badinv01.dat', corpora)),
];

/** Touches every accessor: none may throw on any parsed input. */
function readEverything(m: SipMessage): void {
  m.headers();
  m.requestUriParsed();
  m.via();
  m.topVia();
  m.from();
  m.to();
  m.callId();
  m.cseq();
  m.maxForwards();
  m.contacts();
  m.contactStar();
  m.route();
  m.recordRoute();
  m.contentLength();
  m.contentType();
  m.expires();
  m.sessionExpires();
  m.minSE();
  m.supported();
  m.require();
  m.allow();
  m.bodyText();
  validate(m);
  mediaEndpoints(m.body);
}

const signature = (rs: ParseResult[]): string[] =>
  rs.map((r) => (r.ok ? `msg:${serialize(r.message).toString('latin1')}` : r.error.code));

function feed(bytes: Uint8Array, cuts: number[]): ParseResult[] {
  const p = new SipStreamParser({ maxMessageBytes: 8192 });
  const out: ParseResult[] = [];
  let at = 0;
  for (const c of [...new Set(cuts.map((x) => x % (bytes.length + 1)))].sort((a, b) => a - b)) {
    out.push(...p.push(bytes.subarray(at, c)));
    expect(p.buffered).toBeLessThanOrEqual(8192 + bytes.length);
    at = c;
  }
  out.push(...p.push(bytes.subarray(at)), ...p.end());
  return out;
}

const mutated = fc
  .tuple(
    fc.constantFrom(...SEEDS),
    fc.array(
      fc.tuple(fc.nat(), fc.constantFrom('flip', 'insert', 'delete', 'crlf', 'colon'), fc.nat(255)),
      { maxLength: 8 },
    ),
  )
  .map(([seed, edits]) => {
    const bytes = [...seed];
    for (const [pos, op, value] of edits) {
      const at = pos % (bytes.length + 1);
      if (op === 'flip') bytes[at] = value;
      else if (op === 'insert') bytes.splice(at, 0, value);
      else if (op === 'delete') bytes.splice(at, 1);
      else if (op === 'crlf') bytes.splice(at, 0, 13, 10);
      else bytes.splice(at, 0, 58);
    }
    return Buffer.from(bytes);
  });

describe('property: robustness', () => {
  it(
    'parse never throws on random bytes, and accessors never throw',
    () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
          const r = parse(bytes);
          if (r.ok) readEverything(r.message);
          else expect(r.error.code).toMatch(/^SIP_ERR_/);
        }),
        { numRuns: RUNS },
      );
    },
    PROPERTY_TIMEOUT_MS,
  );

  it(
    'parse, accessors and validate never throw on mutated real messages',
    () => {
      fc.assert(
        fc.property(mutated, (bytes) => {
          const r = parse(bytes);
          if (r.ok) {
            readEverything(r.message);
            // an unedited message always serialises to a prefix of its datagram
            const out = serialize(r.message);
            expect(bytes.includes(out)).toBe(true);
          }
        }),
        { numRuns: RUNS },
      );
    },
    PROPERTY_TIMEOUT_MS,
  );

  it(
    'stream framing is the same whole and in random chunks, with bounded buffering',
    () => {
      fc.assert(
        fc.property(
          fc.array(mutated, { minLength: 1, maxLength: 3 }),
          fc.array(fc.nat(), { maxLength: 12 }),
          (messages, cuts) => {
            const stream = Buffer.concat(messages);
            const whole = feed(stream, []);
            const chunked = feed(stream, cuts);
            expect(signature(chunked)).toEqual(signature(whole));
          },
        ),
        { numRuns: RUNS },
      );
    },
    PROPERTY_TIMEOUT_MS,
  );
});

const token = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9.!%*_+`'~-]{0,15}$/);
const userPart = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._~!*'()-]{0,15}$/);
const host = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}[a-z0-9]\.example\.com$/);

describe('property: round trip', () => {
  it(
    'serialize(parse(x)) is x, and edits read back after a reparse',
    () => {
      fc.assert(
        fc.property(
          userPart,
          host,
          token,
          token,
          fc.nat(4294967295),
          fc.integer({ min: 1, max: 255 }),
          fc.string({ maxLength: 200 }),
          fc.constantFrom('\r\n', '\n'),
          (user, h, tag, branch, seq, mf, body, eol) => {
            const bodyBytes = Buffer.from(body, 'utf8');
            const text =
              `MESSAGE sip:${user}@${h} SIP/2.0${eol}` +
              `Via: SIP/2.0/UDP ${h};branch=z9hG4bK${branch}${eol}` +
              `From: <sip:${user}@${h}>;tag=${tag}${eol}To: <sip:${user}@${h}>${eol}` +
              `Call-ID: ${branch}@${h}${eol}CSeq: ${seq} MESSAGE${eol}Max-Forwards: ${mf}${eol}` +
              `Content-Type: text/plain${eol}Content-Length: ${bodyBytes.length}${eol}${eol}`;
            const bytes = Buffer.concat([Buffer.from(text, 'utf8'), bodyBytes]);
            const r = parse(bytes);
            if (!r.ok) throw new Error(r.error.reason);
            const m = r.message;
            expect(Buffer.compare(serialize(m), bytes)).toBe(0);
            expect(validate(m)).toEqual({ ok: true });
            expect(m.topVia()?.branch).toBe(`z9hG4bK${branch}`);
            expect(m.from()?.tag).toBe(tag);
            expect(m.cseq()).toEqual({ seq, method: 'MESSAGE' });
            m.decrementMaxForwards();
            m.prependVia(`SIP/2.0/TCP proxy.example.com;branch=z9hG4bK${tag}`);
            m.setBody(`${body}!`);
            const again = parse(serialize(m));
            if (!again.ok) throw new Error(again.error.reason);
            expect(again.message.maxForwards()).toBe(mf - 1);
            expect(again.message.via().map((v) => v.branch)).toEqual([
              `z9hG4bK${tag}`,
              `z9hG4bK${branch}`,
            ]);
            expect(again.message.bodyText()).toBe(`${body}!`);
            expect(again.message.contentLength()).toBe(Buffer.byteLength(`${body}!`));
          },
        ),
        { numRuns: RUNS },
      );
    },
    PROPERTY_TIMEOUT_MS,
  );
});
