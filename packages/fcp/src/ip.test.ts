import { describe, expect, it } from 'vitest';
import {
  formatAddress,
  formatPrefix,
  normalizeClientAddress,
  parseAddress,
  parseIpv4,
  parsePrefix,
  prefixContains,
  prefixOverlaps,
  type ParsedPrefix,
} from './ip.js';

function pfx(t: string): ParsedPrefix {
  const p = parsePrefix(t);
  if (typeof p === 'string') throw new Error(p);
  return p;
}

describe('addresses', () => {
  it.each(['0.0.0.0', '255.255.255.255', '198.18.0.1'])('accepts IPv4 %s', (a) => {
    expect(formatAddress({ family: 4, bytes: parseIpv4(a) ?? [] })).toBe(a);
  });

  it.each(['256.0.0.1', '1.2.3', '1.2.3.4.5', '01.2.3.4', '1..2.3', ' 1.2.3.4', '1.2.3.4 ', ''])(
    'refuses IPv4 %j',
    (a) => {
      expect(parseIpv4(a)).toBeUndefined();
    },
  );

  it.each([
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['::', '::'],
    ['::1', '::1'],
    ['2001:db8:0:1:0:0:0:0', '2001:db8:0:1::'],
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
    ['2001:db8::0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['::ffff:198.18.0.1', '::ffff:c612:1'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
  ])('writes IPv6 %s as RFC 5952 %s', (a, want) => {
    const ip = parseAddress(a);
    expect(ip && formatAddress(ip)).toBe(want);
  });

  it.each(['1::2::3', '12345::', ':1', 'fe80::1%eth0', '1:2:3:4:5:6:7:8:9', 'g::1'])(
    'refuses IPv6 %j',
    (a) => {
      expect(parseAddress(a)).toBeUndefined();
    },
  );

  it('maps IPv4-mapped client addresses to IPv4', () => {
    expect(normalizeClientAddress('::ffff:127.0.0.1')).toBe('127.0.0.1');
    expect(normalizeClientAddress('::1')).toBe('::1');
  });
});

describe('prefixes', () => {
  it('accepts dotted contiguous masks and /len, clears host bits', () => {
    expect(formatPrefix(pfx('10.0.0.5/255.255.255.0'))).toBe('10.0.0.0/255.255.255.0');
    expect(formatPrefix(pfx('10.0.0.5/24'))).toBe('10.0.0.0/255.255.255.0');
    expect(formatPrefix(pfx('10.0.0.5/255.255.255.255'))).toBe('10.0.0.5');
    expect(formatPrefix(pfx('2001:db8::7/64'))).toBe('2001:db8::/64');
    expect(pfx('0.0.0.0/0.0.0.0').prefix).toBe(0);
  });

  it('refuses non-contiguous masks and out-of-range lengths', () => {
    expect(parsePrefix('10.0.0.0/255.0.255.0')).toMatch(/not contiguous/);
    expect(parsePrefix('10.0.0.0/33')).toMatch(/out of range/);
    expect(parsePrefix('::/129')).toMatch(/out of range/);
    expect(parsePrefix('::/ffff::')).toMatch(/invalid IPv6 prefix/);
  });

  it('tests containment and overlap within one family', () => {
    expect(prefixContains(pfx('198.18.0.0/15'), pfx('198.19.3.4'))).toBe(true);
    expect(prefixContains(pfx('198.18.0.0/16'), pfx('198.19.3.4'))).toBe(false);
    expect(prefixContains(pfx('198.18.0.0/24'), pfx('198.18.0.0/16'))).toBe(false);
    expect(prefixOverlaps(pfx('198.18.0.0/24'), pfx('198.18.0.0/16'))).toBe(true);
    expect(prefixContains(pfx('::/0'), pfx('198.18.0.1'))).toBe(false);
  });
});
