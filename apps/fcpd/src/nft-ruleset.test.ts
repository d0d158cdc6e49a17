import { fromFirewallRule, pmeKey, type FirewallRule } from '@pinhole/fcp';
import { describe, expect, it } from 'vitest';
import {
  adoptElements,
  canonicalKey,
  decodeComment,
  encodeComment,
  parseListing,
  parseSetName,
  ruleElements,
  setupScript,
  unsupportedReason,
  type RulesetOptions,
} from './nft-ruleset.js';

function rule(p: Partial<FirewallRule>): FirewallRule {
  const base = {
    family: 4 as const,
    proto: 17,
    src: undefined,
    srcPorts: undefined,
    dst: { address: '198.19.1.2', prefix: 32 },
    dstPorts: [40000, 40001] as const,
    action: 'pass' as const,
    ...p,
  };
  return { key: canonicalKey(base), ...base };
}

const opts: RulesetOptions = {
  table: 'pinhole',
  mode: 'standalone',
  hooks: ['forward'],
  protected: ['198.19.1.0/24', '2001:db8::/32'],
  mediaPorts: [1024, 65535],
  mark: 0x100000,
};

describe('ruleElements', () => {
  it('expands a host destination and a short port range into hash elements', () => {
    expect(ruleElements(rule({}))).toEqual({
      set: 'h4d',
      keys: ['198.19.1.2 . 17 . 40000', '198.19.1.2 . 17 . 40001'],
    });
  });

  it('uses the source-address hash set for a host source', () => {
    const r = rule({ src: { address: '198.18.1.2', prefix: 32 }, dstPorts: [5000, 5000] });
    expect(ruleElements(r)).toEqual({ set: 'h4sd', keys: ['198.18.1.2 . 198.19.1.2 . 17 . 5000'] });
  });

  it('puts prefixes, source ports and wide ranges into the interval set', () => {
    expect(ruleElements(rule({ src: { address: '198.18.0.0', prefix: 16 } }))).toEqual({
      set: 'w4',
      keys: ['198.18.0.0/16 . 198.19.1.2 . 17 . 0-65535 . 40000-40001'],
    });
    expect(ruleElements(rule({ srcPorts: [3333, 3334] })).keys).toEqual([
      '0.0.0.0/0 . 198.19.1.2 . 17 . 3333-3334 . 40000-40001',
    ]);
    expect(ruleElements(rule({ dstPorts: [10000, 20000] })).set).toBe('w4');
  });

  it('handles IPv6', () => {
    const r = rule({ family: 6, dst: { address: '2001:db8::5', prefix: 128 }, dstPorts: [7, 7] });
    expect(ruleElements(r)).toEqual({ set: 'h6d', keys: ['2001:db8::5 . 17 . 7'] });
    const w = rule({ family: 6, dst: { address: '2001:db8::', prefix: 64 } });
    expect(ruleElements(w).keys).toEqual(['::/0 . 2001:db8::/64 . 17 . 0-65535 . 40000-40001']);
  });
});

describe('unsupportedReason', () => {
  it('accepts pass holes with a destination and a port protocol', () => {
    expect(unsupportedReason(rule({}))).toBeUndefined();
  });
  it.each([
    ['drop', { action: 'drop' as const }],
    ['no protocol', { proto: 0 }],
    ['ICMP', { proto: 1, dstPorts: undefined }],
    ['no destination', { dst: undefined }],
  ])('refuses %s', (_n, p) => {
    expect(unsupportedReason(rule(p))).toMatch(/nftables/);
  });
});

describe('element comments', () => {
  it('round-trips owner, timer, expiry and port ranges', () => {
    const c = {
      owner: 'cert:pbx one;x=1',
      timerSec: 30,
      expiresAt: 1_800_000_000_123,
      srcPorts: [3333, 3334] as const,
      dstPorts: [40000, 40001] as const,
    };
    const text = encodeComment(c);
    expect(text).not.toMatch(/"/);
    expect(decodeComment(text)).toEqual(c);
  });

  it('ignores comments it did not write', () => {
    expect(decodeComment('hello')).toBeUndefined();
    expect(decodeComment('ph1;t=3')).toBeUndefined();
  });
});

describe('canonicalKey', () => {
  it('spells the rule like the FCP canonical PME', () => {
    expect(rule({ src: { address: '198.18.0.0', prefix: 16 } }).key).toBe(
      'PROTO=17; SRCIP=198.18.0.0/255.255.0.0; DSTIP=198.19.1.2; DSTPORT=40000-40001;',
    );
    expect(rule({ dstPorts: [5, 5], srcPorts: [0, 65535] }).key).toBe(
      'PROTO=17; DSTIP=198.19.1.2; DSTPORT=5;',
    );
  });
});

describe('canonicalKey agrees with @pinhole/fcp', () => {
  it.each([
    rule({}),
    rule({ src: { address: '198.18.0.0', prefix: 16 }, srcPorts: [3333, 3334] }),
    rule({ dstPorts: [7, 7], src: { address: '198.18.1.2', prefix: 32 } }),
    rule({ family: 6, dst: { address: '2001:db8::5', prefix: 128 } }),
    rule({ family: 6, dst: { address: '2001:db8::', prefix: 64 }, proto: 6 }),
  ])('for $key', (r) => {
    const pme = fromFirewallRule(r);
    expect(pme).toBeDefined();
    expect(pmeKey(pme!)).toBe(r.key);
  });
});

describe('setupScript', () => {
  it('declares every set, replaces the protected networks and gates the media ports', () => {
    const s = setupScript(opts, []);
    for (const set of ['h4d', 'h4sd', 'w4', 'h6d', 'h6sd', 'w6']) expect(s).toContain(` ${set} {`);
    expect(s).toContain('flush set inet pinhole protected4');
    expect(s).toContain('add element inet pinhole protected4 { 198.19.1.0/24 }');
    expect(s).toContain('add element inet pinhole protected6 { 2001:db8::/32 }');
    expect(s).toContain('th dport 1024-65535 jump gate_forward');
    expect(s).toContain('counter drop');
    expect(s).not.toMatch(/policy drop/);
  });

  it('flushes every chain it declares, so a setup that raced another one adds no rule twice', () => {
    const s = setupScript(opts, []).split('\n');
    for (const c of ['holes', 'gate_forward', 'sa_forward']) {
      const add = s.findIndex((l) => l.startsWith(`add chain inet pinhole ${c}`));
      expect(add).toBeGreaterThan(0);
      expect(s[add + 1]).toBe(`flush chain inet pinhole ${c}`);
      expect(s.findIndex((l) => l.startsWith(`add rule inet pinhole ${c} `))).toBeGreaterThan(add);
    }
  });

  it('in mark mode only marks', () => {
    const s = setupScript({ ...opts, mode: 'mark' }, []);
    expect(s).toContain('meta mark set meta mark or 0x100000');
    expect(s).not.toContain('drop');
    expect(s).toContain('priority mangle');
  });

  it('flushes existing chains and deletes the ones the mode no longer uses', () => {
    const s = setupScript({ ...opts, mode: 'mark' }, ['sa_forward', 'gate_forward', 'holes']);
    expect(s).toContain('flush chain inet pinhole sa_forward');
    expect(s).toContain('delete chain inet pinhole sa_forward');
    expect(s).toContain('delete chain inet pinhole gate_forward');
    expect(s).not.toContain('delete chain inet pinhole holes');
    expect(s.indexOf('flush chain inet pinhole holes')).toBeLessThan(
      s.indexOf('delete chain inet pinhole sa_forward'),
    );
  });
});

describe('shards', () => {
  it('names each shard its own sets and looks a packet up in all of them', () => {
    const s = setupScript({ ...opts, shards: 3 }, []);
    for (const name of ['h4d', 'h4d_1', 'h4d_2', 'w6', 'w6_1', 'w6_2']) {
      expect(s).toContain(`add set inet pinhole ${name} {`);
    }
    expect(s).toContain(
      'add rule inet pinhole holes ip daddr . meta l4proto . th dport @h4d accept',
    );
    expect(s).toContain('ip daddr . meta l4proto . th dport @h4d_2 accept');
    expect(s).toContain('ip6 saddr . ip6 daddr . meta l4proto . th dport @h6sd_1 accept');
    expect(s).not.toContain('h4d_3');
  });

  it('deletes the hole sets of shards it no longer has, after flushing the chains', () => {
    const s = setupScript(
      { ...opts, shards: 2 },
      ['holes'],
      ['h4d', 'h4d_1', 'h4d_2', 'w6_3', 'protected4', 'h4d_x'],
    );
    expect(s).toContain('delete set inet pinhole h4d_2');
    expect(s).toContain('delete set inet pinhole w6_3');
    expect(s).not.toContain('delete set inet pinhole h4d_1');
    expect(s).not.toContain('delete set inet pinhole protected4');
    expect(s).not.toContain('delete set inet pinhole h4d_x');
    expect(s.indexOf('flush chain inet pinhole holes')).toBeLessThan(
      s.indexOf('delete set inet pinhole h4d_2'),
    );
  });

  it('parses set names back into set and shard', () => {
    expect(parseSetName('h4sd')).toEqual({ set: 'h4sd', shard: 0 });
    expect(parseSetName('w6_12')).toEqual({ set: 'w6', shard: 12 });
    for (const bad of ['h4d_0', 'h4d_01', 'protected4', 'h4d_', 'xh4d', 'h4d_100']) {
      expect(parseSetName(bad)).toBeUndefined();
    }
  });

  it('lists the elements of every shard with their shard', () => {
    const json = JSON.stringify({
      nftables: [
        { set: { name: 'h4d', elem: [{ elem: { val: { concat: ['198.19.1.2', 'udp', 1] } } }] } },
        { set: { name: 'h4d_1', elem: [{ elem: { val: { concat: ['198.19.1.3', 'udp', 2] } } }] } },
        { set: { name: 'protected4', elem: ['198.19.1.0/24'] } },
      ],
    });
    const l = parseListing(json);
    expect(l.sets).toEqual(['h4d', 'h4d_1', 'protected4']);
    expect(l.elements.map((e) => [e.set, e.shard])).toEqual([
      ['h4d', 0],
      ['h4d', 1],
    ]);
  });
});

describe('adoptElements', () => {
  const now = 1_800_000_000_000;
  const listing = JSON.stringify({
    nftables: [
      { metainfo: { version: '1.0.6' } },
      { chain: { family: 'inet', table: 'pinhole', name: 'sa_forward' } },
      {
        set: {
          name: 'h4d',
          elem: [
            {
              elem: {
                val: { concat: ['198.19.1.2', 'udp', 40000] },
                timeout: 30,
                expires: 20,
                comment: encodeComment({
                  owner: '127.0.0.1',
                  timerSec: 30,
                  expiresAt: now + 20_400,
                  srcPorts: undefined,
                  dstPorts: [40000, 40001],
                }),
              },
            },
            {
              elem: {
                val: { concat: ['198.19.1.2', 'udp', 40001] },
                timeout: 30,
                expires: 20,
                comment: encodeComment({
                  owner: '127.0.0.1',
                  timerSec: 30,
                  expiresAt: now + 20_400,
                  srcPorts: undefined,
                  dstPorts: [40000, 40001],
                }),
              },
            },
            { elem: { val: { concat: ['198.19.1.9', 'udp', 1] }, comment: 'manual' } },
          ],
        },
      },
      {
        set: {
          name: 'w4',
          elem: [
            {
              elem: {
                val: {
                  concat: [
                    { prefix: { addr: '198.18.0.0', len: 16 } },
                    '198.19.1.3',
                    'tcp',
                    { range: [0, 65535] },
                    { range: [5000, 5001] },
                  ],
                },
                comment: encodeComment({
                  owner: '::1',
                  timerSec: 0,
                  expiresAt: undefined,
                  srcPorts: undefined,
                  dstPorts: [5000, 5001],
                }),
              },
            },
          ],
        },
      },
    ],
  });

  it('rebuilds one rule per hole with its owner, TIMER and remaining lifetime', () => {
    const { chains, elements } = parseListing(listing);
    expect(chains).toEqual(['sa_forward']);
    const { rules, foreign } = adoptElements(elements, now);
    expect(foreign).toHaveLength(1);
    expect(rules).toHaveLength(2);
    const [udp, tcp] = rules;
    expect(udp?.rule.key).toBe('PROTO=17; DSTIP=198.19.1.2; DSTPORT=40000-40001;');
    expect(udp?.meta).toEqual({ owner: '127.0.0.1', timerSec: 30 });
    expect(udp?.remainingMs).toBe(20_400);
    expect(tcp?.rule.key).toBe(
      'PROTO=6; SRCIP=198.18.0.0/255.255.0.0; DSTIP=198.19.1.3; DSTPORT=5000-5001;',
    );
    expect(tcp?.remainingMs).toBeUndefined();
    expect(ruleElements(tcp!.rule).set).toBe('w4');
  });

  it('trusts the kernel when the comment disagrees with it', () => {
    const { elements } = parseListing(listing);
    const { rules } = adoptElements(elements, now + 60_000);
    expect(rules[0]?.remainingMs).toBe(20_000);
  });
});
