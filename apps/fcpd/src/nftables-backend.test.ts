import { describe, expect, it } from 'vitest';
import { commandNetns } from './nftables-backend.js';

describe('commandNetns: where the in-process netlink socket must be made', () => {
  it('plain nft runs in this process namespace', () => {
    expect(commandNetns(['nft'])).toBe('');
    expect(commandNetns(['/usr/sbin/nft'])).toBe('');
  });

  it('ip netns exec NAME nft runs in /run/netns/NAME', () => {
    expect(commandNetns(['ip', 'netns', 'exec', 'fw', 'nft'])).toBe('/run/netns/fw');
    expect(commandNetns(['/sbin/ip', 'netns', 'exec', 'ph-1.a_b', '/usr/sbin/nft'])).toBe(
      '/run/netns/ph-1.a_b',
    );
  });

  it('any other wrapper, or a name that is not a plain file name, is left to the helper', () => {
    expect(commandNetns(['sudo', 'nft'])).toBeUndefined();
    expect(commandNetns(['env', 'ip', 'netns', 'exec', 'fw', 'nft'])).toBeUndefined();
    expect(commandNetns(['ip', 'netns', 'exec', '..', 'nft'])).toBeUndefined();
    expect(commandNetns(['ip', 'netns', 'exec', 'a/b', 'nft'])).toBeUndefined();
    expect(commandNetns(['ip', '-n', 'fw', 'nft'])).toBeUndefined();
    expect(commandNetns(['ip', 'netns', 'exec', 'fw', 'nft', '-j'])).toBeUndefined();
    expect(commandNetns([])).toBeUndefined();
  });
});
