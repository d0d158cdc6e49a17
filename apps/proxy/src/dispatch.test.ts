import { describe, expect, it } from 'vitest';
import { callIdOf, ownerOf } from './dispatch.js';

describe('worker dispatch', () => {
  it('finds the Call-ID in long and compact form without a full parse', () => {
    const long = Buffer.from(
      'INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCall-ID:  abc@h \r\nCSeq: 1 INVITE\r\n\r\n',
    );
    const compact = Buffer.from('SIP/2.0 200 OK\r\nv: SIP/2.0/UDP h\r\ni: xyz\r\n\r\n');
    expect(callIdOf(long)).toBe('abc@h');
    expect(callIdOf(compact)).toBe('xyz');
  });

  it('does not look into the body', () => {
    const m = Buffer.from('OPTIONS sip:a SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\nCall-ID: body\r\n');
    expect(callIdOf(m)).toBeUndefined();
  });

  it('gives every Call-ID one owner, spread over the workers', () => {
    const owners = new Map<number, number>();
    for (let i = 0; i < 1000; i++) {
      const o = ownerOf(`call-${i}@198.18.0.2`, 4);
      expect(o).toBe(ownerOf(`call-${i}@198.18.0.2`, 4));
      owners.set(o, (owners.get(o) ?? 0) + 1);
    }
    expect([...owners.keys()].sort()).toEqual([0, 1, 2, 3]);
    for (const n of owners.values()) expect(n).toBeGreaterThan(150);
  });
});
