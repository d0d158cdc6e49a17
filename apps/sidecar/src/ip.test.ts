import { describe, expect, it } from 'vitest';
import { canonicalIp, parseCidr } from './ip.js';

describe('canonicalIp', () => {
  it.each([
    ['198.18.0.1', '198.18.0.1'],
    ['[2001:DB8::1]', '2001:db8::1'],
    ['2001:db8:0:0:0:0:0:1', '2001:db8::1'],
    ['::', '::'],
    ['::ffff:198.18.0.1', '::ffff:198.18.0.1'],
    ['0:0:0:0:0:ffff:c612:1', '::ffff:198.18.0.1'],
  ])('canonicalises %s', (input, want) => {
    expect(canonicalIp(input)?.address).toBe(want);
  });

  it.each([
    '',
    '1.2.3',
    '1.2.3.4.5',
    '01.2.3.4',
    '256.1.1.1',
    '1::2::3',
    'g::1',
    'example.org',
    '1:2:3:4:5:6:7:8:9',
  ])('rejects %j', (input) => {
    expect(canonicalIp(input)).toBeUndefined();
  });
});

describe('parseCidr', () => {
  it('parses prefixes and bare hosts', () => {
    expect(parseCidr('10.0.0.0/8')).toEqual({ address: '10.0.0.0', family: 4, prefix: 8 });
    expect(parseCidr('2001:db8::1')).toEqual({ address: '2001:db8::1', family: 6, prefix: 128 });
  });
  it('rejects bad prefixes with a reason', () => {
    expect(parseCidr('10.0.0.0/33')).toMatch(/0\.\.32/);
    expect(parseCidr('10.0.0.0/')).toMatch(/prefix/);
    expect(parseCidr('x/8')).toMatch(/not an IP/);
  });
});
