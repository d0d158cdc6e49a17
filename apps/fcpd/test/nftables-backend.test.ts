import type { FirewallRule } from '@pinhole/fcp';
import {
  UdpAgent,
  cleanupNetns,
  eventually,
  createRoutedTopology,
  systemTestGate,
  udpReaches,
  type RoutedTopology,
} from '@pinhole/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalKey } from '../src/nft-ruleset.js';
import { NftablesBackend } from '../src/nftables-backend.js';

const ok = systemTestGate('fcpd nftables backend', ['root', 'nft', 'ip', 'netns']);

function hole(dst: string, port: number, extra: Partial<FirewallRule> = {}): FirewallRule {
  const base = {
    family: 4 as const,
    proto: 17,
    src: undefined,
    srcPorts: undefined,
    dst: { address: dst, prefix: 32 },
    dstPorts: [port, port] as const,
    action: 'pass' as const,
    ...extra,
  };
  return { key: canonicalKey(base), ...base };
}

describe.runIf(ok).each(['netlink', 'cli'] as const)(
  'NftablesBackend in a network namespace (%s channel)',
  (channel) => {
    let t: RoutedTopology;
    let out: UdpAgent;
    let inn: UdpAgent;
    let port: number;

    beforeAll(async () => {
      t = await createRoutedTopology();
      out = UdpAgent.start(t.outside);
      inn = UdpAgent.start(t.inside);
      port = await inn.bind(t.insideAddr, 0);
    });

    afterAll(async () => {
      await cleanupNetns();
    });

    const backend = (o: Partial<ConstructorParameters<typeof NftablesBackend>[0]> = {}) =>
      new NftablesBackend({
        protected: [t.insideNet],
        nftCommand: t.router.argv('nft'),
        channel,
        ...o,
      });

    const reaches = (attempts = 20) => udpReaches(out, inn, t.insideAddr, port, { attempts });
    const blocked = async () => !(await udpReaches(out, inn, t.insideAddr, port, { attempts: 3 }));

    it('opens and closes a hole, and touches no other table', async () => {
      await t.router.exec('nft', ['add table ip sitefilter']);
      expect(await reaches()).toBe(true);
      const b = backend();
      expect(await b.open()).toEqual([]);
      expect(b.channel).toBe(channel);
      expect(await blocked()).toBe(true);
      const r = hole(t.insideAddr, port);
      await b.install(r, { owner: '127.0.0.1', timerSec: 30 });
      expect(await reaches()).toBe(true);
      await b.remove(r);
      expect(await blocked()).toBe(true);
      // Removing an absent rule succeeds.
      await b.remove(r);
      await b.close();
      const { stdout } = await t.router.exec('nft', ['list', 'tables']);
      expect(stdout).toContain('table ip sitefilter');
      expect(stdout).toContain('table inet pinhole');
    });

    it('coalesces concurrent calls into few transactions and isolates a failing one', async () => {
      const tx: number[] = [];
      const b = backend({ onTransaction: (ops: number) => tx.push(ops) });
      await b.open();
      const rules = Array.from({ length: 200 }, (_, i) => hole('198.19.1.50', 20000 + i));
      const results = await Promise.allSettled([
        ...rules.map((r) => b.install(r, { owner: 'a', timerSec: 30 })),
        // nft rejects this element (not an address): the batch fails, is retried and bisected,
        // and only this one is refused.
        b.install(hole('198.19.1.999', 40000), { owner: 'a', timerSec: 30 }),
        // An owner too long for the element comment is refused before reaching nft.
        b.install(hole('198.19.1.51', 40000), { owner: 'x'.repeat(200), timerSec: 30 }),
      ]);
      expect(results.slice(0, 200).every((r) => r.status === 'fulfilled')).toBe(true);
      expect(String((results[200] as PromiseRejectedResult).reason)).toContain('198.19.1.999');
      expect(results[200]?.status).toBe('rejected');
      expect(results[201]?.status).toBe('rejected');
      // Every call made in one turn shares one transaction (201 operations), which fails; the
      // retry (201) and the bisection take O(log n) more, not one per operation.
      expect(tx.slice(0, 3)).toEqual([201, 201, 101]);
      expect(tx.length).toBeLessThanOrEqual(2 + 2 * 9);
      const { stdout } = await t.router.exec('nft', ['list', 'set', 'inet', 'pinhole', 'h4d']);
      expect(stdout.match(/198\.19\.1\.50 \. udp/g)).toHaveLength(200);
      tx.length = 0;
      await Promise.all(rules.map((r) => b.remove(r)));
      expect(tx.length).toBeLessThanOrEqual(2);
      await b.close();
    });

    it('with splitBursts, a burst from idle goes as two alternating transactions', async () => {
      const tx: number[] = [];
      const b = backend({ splitBursts: true, onTransaction: (ops: number) => tx.push(ops) });
      await b.open();
      const rules = Array.from({ length: 100 }, (_, i) => hole('198.19.1.60', 21000 + i));
      await Promise.all(rules.map((r) => b.install(r, { owner: 'a', timerSec: 30 })));
      expect(tx).toEqual([50, 50]);
      tx.length = 0;
      await Promise.all(rules.map((r) => b.remove(r)));
      expect(tx).toEqual([50, 50]);
      // Small bursts stay whole.
      tx.length = 0;
      const few = rules.slice(0, 10);
      await Promise.all(few.map((r) => b.install(r, { owner: 'a', timerSec: 30 })));
      await Promise.all(few.map((r) => b.remove(r)));
      expect(tx).toEqual([10, 10]);
      await b.close();
    });

    it('refuses a second rule that would share a kernel element with a live one', async () => {
      const b = backend();
      await b.open();
      const a = hole('198.19.1.70', 40000, { dstPorts: [40000, 40001] });
      const inner = hole('198.19.1.70', 40001);
      await b.install(a, { owner: 'a', timerSec: 30 });
      // Removing `a` would close `inner`'s hole too: refused up front (the server answers 501).
      expect(b.unsupported(inner)).toMatch(
        /overlaps the live rule .*198\.19\.1\.70 \. 17 \. 40001/,
      );
      await expect(b.install(inner, { owner: 'b', timerSec: 30 })).rejects.toThrow(/overlaps/);
      // The rule itself (a refresh) is not an overlap.
      expect(b.unsupported(a)).toBeUndefined();
      await b.install(a, { owner: 'a', timerSec: 30 });
      await b.remove(a);
      expect(b.unsupported(inner)).toBeUndefined();
      await b.install(inner, { owner: 'b', timerSec: 30 });
      await b.remove(inner);
      await b.close();
    });

    it('adopts rules with their remaining lifetime after a restart', async () => {
      const b1 = backend();
      await b1.open();
      const r = hole(t.insideAddr, port, { src: { address: t.outsideAddr, prefix: 32 } });
      await b1.install(r, { owner: '127.0.0.7', timerSec: 20 });
      await b1.close();
      const b2 = backend();
      const adopted = await b2.open();
      expect(adopted).toHaveLength(1);
      expect(adopted[0]?.rule).toEqual(r);
      expect(adopted[0]?.meta).toEqual({ owner: '127.0.0.7', timerSec: 20 });
      expect(adopted[0]?.remainingMs).toBeGreaterThan(10_000);
      expect(adopted[0]?.remainingMs).toBeLessThanOrEqual(20_000);
      expect(await reaches()).toBe(true);
      // A refresh restarts the kernel timer.
      await b2.install(r, { owner: '127.0.0.7', timerSec: 100 });
      const { stdout } = await t.router.exec('nft', ['list', 'set', 'inet', 'pinhole', 'h4sd']);
      expect(stdout).toMatch(/timeout 1m40s/);
      await b2.remove(r);
      expect(await blocked()).toBe(true);
      await b2.close();
    });

    it('shares the table between shards: each writes, removes and adopts only its own holes', async () => {
      const a = backend({ shards: 2, shard: 0 });
      await a.open();
      const b = backend({ shards: 2, shard: 1 });
      await b.open();
      expect(await blocked()).toBe(true);
      // The same hole from both shards: two elements in two sets, each the shard's own.
      const r = hole(t.insideAddr, port);
      await b.install(r, { owner: 'w1', timerSec: 30 });
      expect(await reaches()).toBe(true);
      await a.install(r, { owner: 'w0', timerSec: 30 });
      const set1 = await t.router.exec('nft', ['list', 'set', 'inet', 'pinhole', 'h4d_1']);
      expect(set1.stdout).toContain(`${t.insideAddr} . udp . ${port}`);
      // Shard 0 removing its element leaves shard 1's hole open.
      await a.remove(r);
      expect(await reaches()).toBe(true);
      await a.close();
      await b.close();
      // Restarted, each shard adopts its own elements only.
      const a2 = backend({ shards: 2, shard: 0 });
      expect(await a2.open()).toEqual([]);
      const b2 = backend({ shards: 2, shard: 1 });
      const adopted = await b2.open();
      expect(adopted.map((x) => [x.rule, x.meta.owner])).toEqual([[r, 'w1']]);
      await a2.close();
      await b2.close();
      // Back to one daemon: the setup deletes the second shard's sets and its hole with them,
      // and says so.
      const warned: { elements?: number; shards?: number; msg: string }[] = [];
      const one = backend({
        logger: {
          info: () => undefined,
          warn: (o: object, msg: string) => warned.push({ ...o, msg }),
        },
      });
      expect(await one.open()).toEqual([]);
      const w = warned.find((x) => /beyond nft\.shards/.test(x.msg));
      expect([w?.shards, w?.elements]).toEqual([1, 1]);
      const { stdout } = await t.router.exec('nft', ['list', 'table', 'inet', 'pinhole']);
      expect(stdout).not.toContain('h4d_1');
      expect(await blocked()).toBe(true);
      await one.close();
      expect(() => backend({ shards: 2, shard: 2 })).toThrow(/invalid nft shard: 2/);
    });

    it('two daemons setting the table up at once leave every rule once', async () => {
      await t.router.exec('nft', ['add table inet pinhole; delete table inet pinhole']);
      const a = backend({ shards: 2, shard: 0 });
      const b = backend({ shards: 2, shard: 1 });
      await Promise.all([a.open(), b.open()]);
      const { stdout } = await t.router.exec('nft', ['list', 'chain', 'inet', 'pinhole', 'holes']);
      // 6 sets × 2 shards, each looked up by one rule.
      expect(stdout.match(/ accept/g)).toHaveLength(12);
      const gate = await t.router.exec('nft', ['list', 'chain', 'inet', 'pinhole', 'gate_forward']);
      expect(gate.stdout.match(/drop/g)).toHaveLength(1);
      await a.close();
      await b.close();
    });

    it('opens holes with a source prefix and port ranges through the interval set', async () => {
      const b = backend();
      await b.open();
      const r = hole(t.insideAddr, port, {
        src: { address: '198.18.1.0', prefix: 24 },
        dstPorts: [port - 100 < 1024 ? port : port - 100, port],
      });
      await b.install(r, { owner: 'a', timerSec: 30 });
      const { stdout } = await t.router.exec('nft', ['list', 'set', 'inet', 'pinhole', 'w4']);
      expect(stdout).toContain('198.18.1.0/24');
      expect(await reaches()).toBe(true);
      // A keep-alive of an interval element restarts its timer too.
      await b.install(r, { owner: 'a', timerSec: 200 });
      const after = await t.router.exec('nft', ['list', 'set', 'inet', 'pinhole', 'w4']);
      expect(after.stdout).toMatch(/timeout 3m20s/);
      expect(after.stdout.match(/198\.18\.1\.0\/24/g)).toHaveLength(1);
      // A source outside the prefix does not match.
      const other = hole(t.insideAddr, port, { src: { address: '198.18.2.0', prefix: 24 } });
      await b.remove(r);
      await b.install(other, { owner: 'a', timerSec: 30 });
      expect(await blocked()).toBe(true);
      await b.remove(other);
      await b.close();
    });

    it('installs and removes IPv6 holes in their own sets', async () => {
      const b = backend({ protected: [t.insideNet, '2001:db8::/32'] });
      await b.open();
      const v6: FirewallRule = {
        key: 'PROTO=17; DSTIP=2001:db8::5; DSTPORT=40000-40001;',
        family: 6,
        proto: 17,
        src: undefined,
        srcPorts: undefined,
        dst: { address: '2001:db8::5', prefix: 128 },
        dstPorts: [40000, 40001],
        action: 'pass',
      };
      await b.install(v6, { owner: '::1', timerSec: 30 });
      const list = async () =>
        (await t.router.exec('nft', ['list', 'set', 'inet', 'pinhole', 'h6d'])).stdout;
      expect(await list()).toContain('2001:db8::5 . udp . 40001');
      await b.close();
      const b2 = backend({ protected: [t.insideNet, '2001:db8::/32'] });
      const adopted = await b2.open();
      expect(adopted.map((a) => a.rule)).toEqual([v6]);
      await b2.remove(v6);
      expect(await list()).not.toContain('2001:db8::5');
      await b2.close();
    });

    it('lets the kernel close a hole by itself', async () => {
      const b = backend();
      await b.open();
      await b.install(hole(t.insideAddr, port), { owner: 'a', timerSec: 2 });
      expect(await reaches()).toBe(true);
      await b.close();
      // Bounded: at most 60 polls 100 ms apart (the TIMER is 2 s).
      expect(await eventually(blocked, 60, 100)).toBe(true);
    });

    it('gates the input hook when the firewall host itself is protected', async () => {
      const fw = t.routerInsideAddr;
      const rcv = UdpAgent.start(t.router);
      const fwPort = await rcv.bind(fw, 0);
      const reachesFw = (attempts: number) => udpReaches(out, rcv, fw, fwPort, { attempts });
      expect(await reachesFw(20)).toBe(true);
      const b = backend({ protected: [`${fw}/32`], hooks: ['forward', 'input'] });
      await b.open();
      expect(await reachesFw(3)).toBe(false);
      const r = hole(fw, fwPort);
      await b.install(r, { owner: 'a', timerSec: 30 });
      expect(await reachesFw(20)).toBe(true);
      await b.remove(r);
      expect(await reachesFw(3)).toBe(false);
      await b.close();
      await rcv.close();
    });

    it('in mark mode only marks: the site ruleset decides', async () => {
      const b = backend({ mode: 'mark' });
      await b.open();
      const { stdout } = await t.router.exec('nft', ['list', 'table', 'inet', 'pinhole']);
      expect(stdout).not.toContain('drop');
      expect(stdout).not.toContain('sa_forward');
      // Nothing is dropped by pinhole itself in mark mode.
      expect(await reaches()).toBe(true);
      await t.router.exec(
        'nft',
        ['-f', '-'],
        `table ip sitefilter {\n chain sitefwd {\n type filter hook forward priority filter; policy accept;\n meta mark & 0x00100000 == 0x00100000 accept\n udp dport ${port} drop\n }\n}\n`,
      );
      expect(await blocked()).toBe(true);
      const r = hole(t.insideAddr, port);
      await b.install(r, { owner: 'a', timerSec: 30 });
      expect(await reaches()).toBe(true);
      await b.remove(r);
      expect(await blocked()).toBe(true);
      await b.close();
      await t.router.exec('nft', ['delete', 'table', 'ip', 'sitefilter']);
    });
  },
);
