/**
 * The netlink channel against the real kernel, in a network namespace this test creates, both
 * in process (the pinhole-nfnl.node addon, its socket made in the namespace) and through the
 * pinhole-nfnl helper: what it adds and deletes is exactly what `nft -j list set` shows (keys,
 * timeout, comment), kernel refusals come back as specific errors, a dead helper is restarted,
 * and the backend takes the in-process channel by default, the helper for wrappers the addon
 * cannot imitate, and falls back to the nft CLI when neither can run.
 */
import type { FirewallRule } from '@pinhole/fcp';
import { cleanupNetns, createNetns, systemTestGate, type Netns } from '@pinhole/testkit';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { NftError } from '../src/nft-channel.js';
import { NetlinkChannel, builtAddonPath, builtHelperPath } from '../src/nfnl-channel.js';
import { commentUserdata, describeError, keyBytes, type SetElemMessage } from '../src/nfnl.js';
import { NftablesBackend } from '../src/nftables-backend.js';
import { canonicalKey } from '../src/nft-ruleset.js';

const ok = systemTestGate('fcpd netlink helper', ['root', 'nft', 'ip', 'netns']);

interface ListedElem {
  val: unknown;
  timeout?: number;
  expires?: number;
  comment?: string;
}

describe.runIf(ok)('pinhole-nfnl in a network namespace', () => {
  let ns: Netns;
  let helper: string;

  beforeAll(async () => {
    const h = builtHelperPath();
    // Under PINHOLE_REQUIRE_SYSTEM_TESTS the helper and the addon must have been built.
    if (h === undefined || builtAddonPath() === undefined) {
      throw new Error(
        'dist/pinhole-nfnl or dist/pinhole-nfnl.node is not built: run npm run build',
      );
    }
    helper = h;
    ns = await createNetns('nl');
    // The table and sets as the daemon creates them (through the nft CLI).
    const b = new NftablesBackend({
      protected: ['198.19.0.0/16'],
      nftCommand: ns.argv('nft'),
      channel: 'cli',
    });
    await b.open();
    await b.close();
  });

  afterAll(async () => {
    await cleanupNetns();
  });

  // Each case starts from empty hole sets, whatever an earlier case left behind.
  beforeEach(async () => {
    const t = 'inet pinhole';
    await ns.exec('nft', [
      `flush set ${t} h4d; flush set ${t} h4sd; flush set ${t} h6d; flush set ${t} h6sd`,
    ]);
  });

  /** A pass rule toward one host and a port range (optionally from one source host). */
  function hole(dst: string, ports: readonly [number, number], src?: string): FirewallRule {
    const base = {
      family: 4 as const,
      proto: 17,
      src: src === undefined ? undefined : { address: src, prefix: 32 },
      srcPorts: undefined,
      dst: { address: dst, prefix: 32 },
      dstPorts: ports,
      action: 'pass' as const,
    };
    return { key: canonicalKey(base), ...base };
  }

  type Mode = 'in-process' | 'helper';
  const channelOf = (mode: Mode): NetlinkChannel =>
    mode === 'helper'
      ? new NetlinkChannel({ argv: ns.argv(helper) })
      : new NetlinkChannel({ inProcess: { netns: `/run/netns/${ns.name}` } });

  async function listed(set: string): Promise<ListedElem[]> {
    const { stdout } = await ns.exec('nft', ['-j', '-n', 'list', 'set', 'inet', 'pinhole', set]);
    const doc = JSON.parse(stdout) as { nftables: { set?: { elem?: unknown[] } }[] };
    const s = doc.nftables.find((x) => x.set !== undefined)?.set;
    return (s?.elem ?? []).map((e) =>
      typeof e === 'object' && e !== null && 'elem' in e
        ? (e as { elem: ListedElem }).elem
        : { val: e },
    );
  }

  function add(set: string, keys: string[], timeoutMs: number, comment: string): SetElemMessage {
    const k = keyBytes(keys);
    return {
      kind: 'new',
      set,
      keys: k.keys,
      keyLen: k.keyLen,
      timeoutMs,
      userdata: commentUserdata(comment),
    };
  }

  function del(set: string, keys: string[]): SetElemMessage {
    const k = keyBytes(keys);
    return { kind: 'del', set, keys: k.keys, keyLen: k.keyLen, timeoutMs: 0, userdata: undefined };
  }

  it.each(['in-process', 'helper'] as const)(
    '%s: adds elements that nft lists with the same keys, timeout and comment, then deletes them',
    async (mode) => {
      const ch = channelOf(mode);
      expect(ch.mode).toBe(mode);
      const res = await ch.run('pinhole', [
        add('h4d', ['198.19.0.1 . 17 . 40000', '198.19.0.1 . 17 . 40001'], 30_000, 'ph1;o=a;t=30'),
        add('h4sd', ['198.18.0.7 . 198.19.0.2 . 6 . 5060'], 60_000, 'ph1;o=b;t=60'),
        add('h6d', ['2001:db8::5 . 132 . 3000'], 0, 'ph1;o=c;t=0'),
        add('h6sd', ['2001:db8::1 . 2001:db8::2 . 17 . 65535'], 5_000, 'ph1;o=d;t=5'),
      ]);
      expect(res.map((r) => r.errno)).toEqual([0, 0, 0, 0]);

      const h4d = await listed('h4d');
      expect(h4d.map((e) => e.val)).toEqual([
        { concat: ['198.19.0.1', 17, 40000] },
        { concat: ['198.19.0.1', 17, 40001] },
      ]);
      expect(h4d.map((e) => [e.timeout, e.comment])).toEqual([
        [30, 'ph1;o=a;t=30'],
        [30, 'ph1;o=a;t=30'],
      ]);
      const h4sd = await listed('h4sd');
      expect(h4sd.map((e) => [e.val, e.timeout, e.comment])).toEqual([
        [{ concat: ['198.18.0.7', '198.19.0.2', 6, 5060] }, 60, 'ph1;o=b;t=60'],
      ]);
      const h6d = await listed('h6d');
      // TIMER 0: no timeout, the element stays until deleted.
      expect(h6d.map((e) => [e.val, e.timeout, e.comment])).toEqual([
        [{ concat: ['2001:db8::5', 132, 3000] }, undefined, 'ph1;o=c;t=0'],
      ]);
      const h6sd = await listed('h6sd');
      expect(h6sd.map((e) => [e.val, e.timeout, e.comment])).toEqual([
        [{ concat: ['2001:db8::1', '2001:db8::2', 17, 65535] }, 5, 'ph1;o=d;t=5'],
      ]);

      const gone = await ch.run('pinhole', [
        del('h4d', ['198.19.0.1 . 17 . 40000', '198.19.0.1 . 17 . 40001']),
        del('h4sd', ['198.18.0.7 . 198.19.0.2 . 6 . 5060']),
        del('h6d', ['2001:db8::5 . 132 . 3000']),
        del('h6sd', ['2001:db8::1 . 2001:db8::2 . 17 . 65535']),
      ]);
      expect(gone.map((r) => r.errno)).toEqual([0, 0, 0, 0]);
      for (const s of ['h4d', 'h4sd', 'h6d', 'h6sd']) expect(await listed(s)).toEqual([]);
      await ch.close();
    },
  );

  it.each(['in-process', 'helper'] as const)(
    '%s: reports a missing element, set or table as a specific error, and applies nothing of a failed batch',
    async (mode) => {
      const ch = channelOf(mode);
      const [missing] = await ch.run('pinhole', [del('h4d', ['198.19.9.9 . 17 . 40000'])]);
      expect(describeError('del', 'pinhole', 'h4d', missing?.errno ?? 0, missing?.offset)).toBe(
        'element does not exist in inet pinhole h4d (ENOENT)',
      );
      const [noSet] = await ch.run('pinhole', [
        add('nosuch', ['198.19.0.1 . 17 . 1'], 1000, 'ph1;o=a;t=1'),
      ]);
      expect(describeError('new', 'pinhole', 'nosuch', noSet?.errno ?? 0, noSet?.offset)).toBe(
        'set inet pinhole nosuch does not exist (ENOENT)',
      );
      const [noTable] = await ch.run('nosuchtable', [
        add('h4d', ['198.19.0.1 . 17 . 1'], 1000, 'ph1;o=a;t=1'),
      ]);
      expect(describeError('new', 'nosuchtable', 'h4d', noTable?.errno ?? 0, noTable?.offset)).toBe(
        'table inet nosuchtable does not exist (ENOENT)',
      );

      // One bad message fails the whole batch: the good addition before it is not applied.
      const res = await ch.run('pinhole', [
        add('h4d', ['198.19.0.3 . 17 . 40000'], 30_000, 'ph1;o=a;t=30'),
        del('h4d', ['198.19.9.9 . 17 . 40000']),
      ]);
      expect(res.map((r) => r.errno)).toEqual([0, 2]);
      expect(await listed('h4d')).toEqual([]);
      await ch.close();
    },
  );

  it('restarts a helper that died; the batch in flight fails with a clear error', async () => {
    const ch = channelOf('helper');
    await ch.start();
    const pid = ch.pid;
    expect(pid).toBeDefined();
    // `ip netns exec` execs the helper: the pid is the helper's.
    process.kill(pid as number, 'SIGKILL');
    const dead = await ch
      .run('pinhole', [add('h4d', ['198.19.0.4 . 17 . 40000'], 30_000, 'ph1;o=a;t=30')])
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    // Either the death was noticed before the batch (it runs on a new helper) or the batch
    // failed with an NftError naming the helper.
    if (dead !== undefined) {
      expect(dead).toBeInstanceOf(NftError);
      expect((dead as NftError).message).toMatch(/netlink helper/);
    }
    const again = await ch.run('pinhole', [del('h4d', ['198.19.0.4 . 17 . 40000'])]);
    expect(again.map((r) => r.errno)).toEqual([dead === undefined ? 0 : 2]);
    expect(ch.starts).toBe(2);
    expect(await listed('h4d')).toEqual([]);
    await ch.close();
  });

  it('the backend falls back to the nft CLI when the helper cannot run, unless netlink was required', async () => {
    const warnings: string[] = [];
    const logger = { info: () => undefined, warn: (_o: object, msg: string) => warnings.push(msg) };
    const mk = (channel: 'netlink' | undefined) =>
      new NftablesBackend({
        protected: ['198.19.0.0/16'],
        nftCommand: ns.argv('nft'),
        helperCommand: ns.argv('/nonexistent/pinhole-nfnl'),
        channel,
        logger,
      });
    const auto = mk(undefined);
    await auto.open();
    expect(auto.channel).toBe('cli');
    expect(warnings).toContain('netlink channel unavailable: using the nft CLI channel');
    const rule = hole('198.19.0.5', [40000, 40000]);
    await auto.install(rule, { owner: 'a', timerSec: 30 });
    expect((await listed('h4d')).map((e) => e.val)).toEqual([
      { concat: ['198.19.0.5', 17, 40000] },
    ]);
    await auto.remove(rule);
    await auto.close();
    await expect(mk('netlink').open()).rejects.toThrow(/nft.channel netlink unavailable/);
  });

  it('in process: a socket that cannot be made in the namespace is a clear error', async () => {
    const ch = new NetlinkChannel({ inProcess: { netns: '/run/netns/pinhole-no-such-ns' } });
    await expect(ch.start()).rejects.toThrow(
      /netlink socket in \/run\/netns\/pinhole-no-such-ns: .*No such file or directory/,
    );
    await expect(
      ch.run('pinhole', [add('h4d', ['198.19.0.8 . 17 . 40000'], 30_000, 'ph1;o=a;t=30')]),
    ).rejects.toThrow(/No such file or directory/);
    await ch.close();
    expect(await listed('h4d')).toEqual([]);
  });

  it('the backend runs netlink in process for `ip netns exec NAME nft`, and through the helper for other wrappers', async () => {
    const inProc = new NftablesBackend({
      protected: ['198.19.0.0/16'],
      nftCommand: ns.argv('nft'),
    });
    await inProc.open();
    expect([inProc.channel, inProc.netlinkMode]).toEqual(['netlink', 'in-process']);
    await inProc.close();
    // `env ip netns exec NAME nft` is a wrapper the addon does not imitate: the helper runs
    // behind the same wrapper.
    const wrapped = new NftablesBackend({
      protected: ['198.19.0.0/16'],
      nftCommand: ['env', ...ns.argv('nft')],
    });
    await wrapped.open();
    expect([wrapped.channel, wrapped.netlinkMode]).toEqual(['netlink', 'helper']);
    const rule = hole('198.19.0.9', [40000, 40000]);
    await wrapped.install(rule, { owner: 'a', timerSec: 30 });
    expect((await listed('h4d')).map((e) => e.val)).toEqual([
      { concat: ['198.19.0.9', 17, 40000] },
    ]);
    await wrapped.remove(rule);
    await wrapped.close();
  });

  it('the backend splits a transaction of more than 1,024 messages into several batches', async () => {
    const tx: number[] = [];
    const b = new NftablesBackend({
      protected: ['198.19.0.0/16'],
      nftCommand: ns.argv('nft'),
      onTransaction: (ops) => tx.push(ops),
    });
    await b.open();
    expect(b.channel).toBe('netlink');
    const rules = Array.from({ length: 600 }, (_, i) => {
      return hole(`198.19.2.${i % 250}`, [30000 + i, 30000 + i]);
    });
    await Promise.all(rules.map((r) => b.install(r, { owner: 'a', timerSec: 30 })));
    // A refresh of a known rule is add + delete + add: 1,800 messages in one transaction.
    tx.length = 0;
    await Promise.all(rules.map((r) => b.install(r, { owner: 'a', timerSec: 90 })));
    expect(tx).toEqual([600]);
    const listed90 = await listed('h4d');
    expect(listed90).toHaveLength(600);
    expect(listed90.every((e) => e.timeout === 90 && e.comment?.includes(';t=90;'))).toBe(true);
    await Promise.all(rules.map((r) => b.remove(r)));
    expect(await listed('h4d')).toEqual([]);
    await b.close();
  });

  it('the backend on the netlink channel adopts what it installed after a restart', async () => {
    const mk = () =>
      new NftablesBackend({ protected: ['198.19.0.0/16'], nftCommand: ns.argv('nft') });
    const b = mk();
    await b.open();
    expect(b.channel).toBe('netlink');
    const rule = hole('198.19.0.6', [40000, 40001], '198.18.0.7');
    await b.install(rule, { owner: '127.0.0.1', timerSec: 60 });
    await b.close();
    const again = mk();
    const adopted = await again.open();
    expect(adopted.map((r) => [r.rule.key, r.meta.owner, r.meta.timerSec])).toEqual([
      [rule.key, '127.0.0.1', 60],
    ]);
    expect(adopted[0]?.remainingMs).toBeGreaterThan(50_000);
    await again.remove(rule);
    expect(await listed('h4sd')).toEqual([]);
    await again.close();
  });
});
