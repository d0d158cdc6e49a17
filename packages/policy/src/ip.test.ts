import { describe, expect, it } from 'vitest';
import { inNetwork, ipv4Bounds, parseIp, parseNetwork, specialAddress } from './ip.js';

describe('parseIp', () => {
  it.each([
    ['198.18.0.1', 4, '198.18.0.1'],
    ['0.0.0.0', 4, '0.0.0.0'],
    ['255.255.255.255', 4, '255.255.255.255'],
    ['2001:DB8::1', 6, '2001:db8::1'],
    ['[2001:db8::1]', 6, '2001:db8::1'],
    ['2001:db8:0:0:0:0:0:1', 6, '2001:db8::1'],
    ['2001:db8:0:1:0:0:0:1', 6, '2001:db8:0:1::1'],
    ['2001:0:0:1:0:0:0:1', 6, '2001:0:0:1::1'],
    ['2001:0:0:1:1:0:0:1', 6, '2001::1:1:0:0:1'],
    ['::', 6, '::'],
    ['::1', 6, '::1'],
    ['::ffff:198.18.1.1', 6, '::ffff:c612:101'],
    ['fe80::', 6, 'fe80::'],
    ['1:2:3:4:5:6:7:8', 6, '1:2:3:4:5:6:7:8'],
    ['1:0:3:4:5:6:7:8', 6, '1:0:3:4:5:6:7:8'],
  ])('reads %s as IPv%i %s (RFC 5952 text for IPv6)', (text, family, canonical) => {
    const a = parseIp(text);
    expect(a?.family).toBe(family);
    expect(a?.text).toBe(canonical);
  });

  it.each([
    '',
    '198.18.0',
    '198.18.0.1.2',
    '198.018.0.1',
    '256.1.1.1',
    '1.2.3.-1',
    ' 1.2.3.4x',
    'host.example.com',
    'fe80::1%eth0',
    '1::2::3',
    '1:2:3:4:5:6:7:8:9',
    '1:2:3:4:5:6:7::8',
    '12345::',
    'g::1',
    '::ffff:300.1.1.1',
  ])('refuses %j', (text) => {
    expect(parseIp(text)).toBeUndefined();
  });
});

describe('networks', () => {
  it('parses CIDR networks and tests membership', () => {
    const r = parseNetwork('198.18.0.0/15');
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(inNetwork(parseIp('198.19.255.255')!, r.network)).toBe(true);
    expect(inNetwork(parseIp('198.20.0.0')!, r.network)).toBe(false);
    expect(inNetwork(parseIp('2001:db8::1')!, r.network)).toBe(false);
    const v6 = parseNetwork('2001:db8:1::/48');
    expect(v6.ok && inNetwork(parseIp('2001:db8:1:ffff::1')!, v6.network)).toBe(true);
    expect(v6.ok && inNetwork(parseIp('2001:db8:2::1')!, v6.network)).toBe(false);
  });

  it.each(['10.0.0.1/8', '10.0.0.0/33', '10.0.0.0/x', 'nope/8', '2001:db8::/129'])(
    'refuses %s',
    (text) => {
      expect(parseNetwork(text).ok).toBe(false);
    },
  );

  it('finds the network and directed-broadcast address of an IPv4 network', () => {
    const r = parseNetwork('198.18.4.0/22');
    if (!r.ok) throw new Error('parse');
    expect(ipv4Bounds(r.network)?.map((a) => a.text)).toEqual(['198.18.4.0', '198.18.7.255']);
  });
});

describe('specialAddress', () => {
  it.each([
    ['0.0.0.0', 'unspecified'],
    ['127.0.0.1', 'loopback'],
    ['224.0.0.1', 'multicast'],
    ['239.255.255.250', 'multicast'],
    ['255.255.255.255', 'broadcast'],
    ['240.0.0.1', 'reserved'],
    ['169.254.1.1', 'link-local'],
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['ff02::1', 'multicast'],
    ['fe80::1', 'link-local'],
    ['::ffff:10.0.0.1', 'ipv4-mapped'],
    ['198.18.0.1', undefined],
    ['2001:db8::1', undefined],
  ])('%s is %s', (text, kind) => {
    expect(specialAddress(parseIp(text)!)).toBe(kind);
  });
});
