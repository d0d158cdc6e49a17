/**
 * The scanner recognises header names with a DFA (header-names.ts); the caller-facing lookup
 * `resolveName` uses a map. Both must name every header the same way, in any case, and the DFA
 * must never name a header that is not exactly a known spelling.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CANONICAL, COMPACT, H, resolveName, resolveWireName } from './header-names.js';
import { parse } from './index.js';

/**
 * Property tests run a fixed number of cases (`numRuns`), never fewer; this explicit bound only
 * keeps a slow, loaded machine (several test suites on two CPUs) from failing them on time.
 */
const PROPERTY_TIMEOUT_MS = 120_000;

function wireId(name: string): number {
  const bytes = Buffer.from(name, 'latin1');
  return resolveWireName(bytes, 0, bytes.length);
}

const spellings = [...CANONICAL.slice(1), ...Object.keys(COMPACT)];
const TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~";

describe('header names on the wire (RFC 3261 §7.3.1, §7.3.3: case-insensitive, compact forms)', () => {
  it('recognises every long and compact spelling in lower, upper and mixed case', () => {
    for (const s of spellings) {
      const id = resolveName(s).id;
      expect(id).not.toBe(H.UNKNOWN);
      const mixed = [...s].map((c, i) => (i % 2 === 0 ? c.toUpperCase() : c)).join('');
      for (const variant of [s, s.toUpperCase(), mixed]) expect(wireId(variant)).toBe(id);
    }
  });

  it('names nothing that is a prefix, an extension or a one-byte change of a spelling', () => {
    for (const s of spellings) {
      for (const near of [s.slice(0, -1), `${s}x`, `${s}-`, `${s.slice(0, -1)}_`, `x${s}`]) {
        expect(wireId(near)).toBe(resolveName(near).id);
      }
    }
  });

  it(
    'agrees with resolveName on random token names and mutated spellings',
    () => {
      const tokenName = fc
        .array(fc.constantFrom(...TOKEN_CHARS), { minLength: 1, maxLength: 24 })
        .map((cs) => cs.join(''));
      const mutated = fc
        .tuple(fc.constantFrom(...spellings), fc.nat(), fc.constantFrom(...TOKEN_CHARS))
        .map(([s, at, c]) => {
          const i = at % (s.length + 1);
          return s.slice(0, i) + c + s.slice(i + 1);
        });
      fc.assert(
        fc.property(fc.oneof(tokenName, mutated), (name) => {
          expect(wireId(name)).toBe(resolveName(name).id);
        }),
        { numRuns: 2000 },
      );
    },
    PROPERTY_TIMEOUT_MS,
  );

  it('reads the compact forms of a message as their long names', () => {
    const r = parse(
      'INVITE sip:b@example.com SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\nf: <sip:a@example.com>;tag=1\r\n' +
        't: <sip:b@example.com>\r\ni: c1\r\nCSEQ: 1 INVITE\r\nl: 0\r\n\r\n',
    );
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    const m = r.message;
    expect(m.topVia()?.branch).toBe('z9hG4bK1');
    expect(m.from()?.tag).toBe('1');
    expect(m.callId()).toBe('c1');
    expect(m.cseq()).toEqual({ seq: 1, method: 'INVITE' });
    expect(m.contentLength()).toBe(0);
  });
});
