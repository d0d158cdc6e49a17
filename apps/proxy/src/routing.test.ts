import { describe, expect, it } from 'vitest';
import { parseRoute } from './config.js';
import { dialledNumber, StaticRouter } from './routing.js';

const uri = (scheme: string, user: string | undefined, host: string) => ({ scheme, user, host });

describe('static routing', () => {
  const router = new StaticRouter([
    parseRoute('r', 'default=sip:198.18.0.100'),
    parseRoute('r', 'domain:example.com=sip:198.18.0.1'),
    parseRoute('r', 'domain:sub.example.com=sip:198.18.0.2'),
    parseRoute('r', 'prefix:+49=sip:198.18.0.3'),
    parseRoute('r', 'prefix:+4930=sip:198.18.0.4'),
  ]);

  it('prefers the longest number prefix', () => {
    expect(router.lookup(uri('sip', '+4930123456', 'x.org'))?.target).toBe('sip:198.18.0.4');
    expect(router.lookup(uri('sip', '+4940123', 'x.org'))?.target).toBe('sip:198.18.0.3');
    expect(router.lookup(uri('tel', undefined, '+49-30-123'))?.target).toBe('sip:198.18.0.4');
  });

  it('matches a domain exactly or through its parent', () => {
    expect(router.lookup(uri('sip', 'bob', 'example.com'))?.target).toBe('sip:198.18.0.1');
    expect(router.lookup(uri('sip', 'bob', 'SUB.example.com'))?.target).toBe('sip:198.18.0.2');
    expect(router.lookup(uri('sip', 'bob', 'a.b.example.com'))?.target).toBe('sip:198.18.0.1');
  });

  it('falls back to the default next hop, and to nothing without one', () => {
    expect(router.lookup(uri('sip', 'bob', 'other.net'))?.target).toBe('sip:198.18.0.100');
    expect(new StaticRouter([]).lookup(uri('sip', 'bob', 'x'))).toBeUndefined();
  });

  it('reads dialled numbers from tel: and sip: user parts', () => {
    expect(dialledNumber(uri('sip', '+1 (555) 123', 'h'))).toBe('+1555123');
    expect(dialledNumber(uri('sip', '4930;phone-context=+49', 'h'))).toBe('4930');
    expect(dialledNumber(uri('sip', 'alice', 'h'))).toBeUndefined();
  });
});
