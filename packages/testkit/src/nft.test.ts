import { describe, expect, it } from 'vitest';
import { countHoles } from './nft.js';

describe('countHoles', () => {
  it('counts the elements of every set but the protected ones', () => {
    const json = JSON.stringify({
      nftables: [
        { metainfo: { version: '1.0.6' } },
        { table: { family: 'inet', name: 'pinhole' } },
        { set: { name: 'protected4', elem: ['198.18.0.0/16'] } },
        { set: { name: 'holes_udp', elem: [1, 2, 3] } },
        { set: { name: 'holes_any' } },
        { set: { name: 'holes_tcp', elem: [4] } },
      ],
    });
    expect(countHoles(json)).toBe(4);
  });

  it('is 0 for a table without pinhole sets', () => {
    expect(countHoles(JSON.stringify({ nftables: [{ table: { name: 'pinhole' } }] }))).toBe(0);
  });
});
