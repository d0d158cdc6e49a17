/**
 * The daemon against the real kernel firewall. Topology (all addresses from 198.18.0.0/15):
 *
 *   outside 198.18.1.2 ── router (forwards; runs pinhole-fcpd, nftables backend, standalone
 *   mode gating 198.19.1.0/24 ports 1024-65535) ── inside 198.19.1.2 (UDP receiver)
 *
 * fcpd and fcpctl both run inside the router namespace (FCP over its loopback).
 */
import { existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import {
  UdpAgent,
  cleanupNetns,
  createRoutedTopology,
  eventually,
  liveNetns,
  run,
  systemTestGate,
  udpReaches,
  type RoutedTopology,
} from '@pinhole/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fcpctl, startDaemon, stopDaemon, type RunningDaemon } from './helpers.js';

const ok = systemTestGate('fcpd against the kernel', ['root', 'nft', 'ip', 'netns']);

describe.runIf(ok)('pinhole-fcpd with the nftables backend in network namespaces', () => {
  let t: RoutedTopology;
  let out: UdpAgent;
  let inn: UdpAgent;
  let port: number;
  let fcpd: RunningDaemon | undefined;
  const names: string[] = [];
  const pids: number[] = [];

  const args = (): string[] => [
    '--listen',
    'tcp:127.0.0.1:0',
    '--backend',
    'nftables',
    '--protected',
    t.insideNet,
    '--media-ports',
    '1024-65535',
    '--log-level',
    'debug',
  ];
  const start = async (): Promise<RunningDaemon> => {
    fcpd = await startDaemon(args(), t.router);
    pids.push(fcpd.child.pid ?? -1);
    return fcpd;
  };
  const ctl = (...a: string[]) => fcpctl(['--server', fcpd?.server ?? '', ...a], t.router);
  const pme = (): string[] => ['--proto', 'udp', '--dst', t.insideAddr, '--dst-port', String(port)];
  const passes = () => udpReaches(out, inn, t.insideAddr, port, { attempts: 20, intervalMs: 100 });
  const dropped = async () =>
    !(await udpReaches(out, inn, t.insideAddr, port, { attempts: 3, intervalMs: 100 }));
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  beforeAll(async () => {
    t = await createRoutedTopology();
    names.push(t.outside.name, t.router.name, t.inside.name);
    out = UdpAgent.start(t.outside);
    inn = UdpAgent.start(t.inside);
    port = await inn.bind(t.insideAddr, 0);
    await start();
  });

  afterAll(async () => {
    if (fcpd) await stopDaemon(fcpd, 'SIGKILL');
    await cleanupNetns();
    // Nothing is left behind: no namespace (hence no table, no veth), no batch file.
    const { stdout } = await run('ip', ['netns', 'list']);
    for (const n of names) expect(stdout).not.toContain(n);
    expect(liveNetns()).toEqual([]);
    // No nft script file of any daemon this test ran (other test files run in parallel). The
    // channel writes them under /dev/shm when it is writable, else in the OS tmpdir.
    const ours = (f: string) => pids.some((p) => f.startsWith(`pinhole-nft-${p}-`));
    for (const dir of [tmpdir(), '/dev/shm']) {
      const files = existsSync(dir) ? readdirSync(dir) : [];
      expect(files.filter(ours)).toEqual([]);
    }
  });

  it('programs set elements through the netlink helper (the default channel)', () => {
    const ready = fcpd?.logs.find((l) => l.msg === 'nftables table ready');
    expect(ready?.channel).toBe('netlink');
  });

  it('drops UDP toward the protected media port before SET', async () => {
    expect(await dropped()).toBe(true);
    // Traffic outside the gated range is left to the site's rules (here: passes).
    const low = await inn.bind(t.insideAddr, 900);
    expect(await udpReaches(out, inn, t.insideAddr, low, { attempts: 10 })).toBe(true);
  });

  it('passes after SET and is dropped again after RELEASE', async () => {
    const set = await ctl('set', ...pme(), '--timer', '30');
    expect(set.stdout).toMatch(/^200 OK/);
    expect(set.code).toBe(0);
    expect(await passes()).toBe(true);
    const rel = await ctl('release', ...pme());
    expect(rel.stdout).toMatch(/^200 OK/);
    expect(await dropped()).toBe(true);
  });

  it('is dropped again when TIMER runs out without keep-alive', async () => {
    expect((await ctl('set', ...pme(), '--timer', '3')).code).toBe(0);
    expect(await passes()).toBe(true);
    // Bounded: 60 polls 100 ms apart.
    expect(await eventually(dropped, 60, 100)).toBe(true);
    const q = await ctl('query', ...pme());
    expect(q.stdout).toContain('(0 rules)');
  });

  it('keeps passing past the first TIMER with keep-alives', async () => {
    await ctl('release', ...pme()); // clean slate whatever an earlier test left
    const t0 = Date.now();
    expect((await ctl('set', ...pme(), '--timer', '4')).stdout).toMatch(/^200/);
    // Keep-alive about every second (each fcpctl run also takes a moment) for 5.5 s: past the
    // first 4 s TIMER. 201 proves the rule was still alive when the keep-alive arrived.
    while (Date.now() - t0 < 5500) {
      await sleep(500);
      expect((await ctl('set', ...pme(), '--timer', '4')).stdout).toMatch(/^201 Keeping Alive/);
    }
    expect(Date.now() - t0).toBeGreaterThan(4000);
    expect(await passes()).toBe(true);
    expect(await eventually(dropped, 80, 100)).toBe(true);
  });

  it('keeps the hole and its expiry across kill -9 and a restart', async () => {
    const d1 = fcpd!;
    await ctl('release', ...pme());
    // TIMER 6 s: room for a restart and a QUERY on a loaded machine before it runs out.
    expect((await ctl('set', ...pme(), '--timer', '6')).stdout).toMatch(/^200/);
    const setAt = Date.now();
    expect(await stopDaemon(d1, 'SIGKILL')).toBe('SIGKILL');
    // The kernel holds the hole without the daemon.
    expect(await passes()).toBe(true);
    const d2 = await start();
    const adopted = d2.logs.find((l) => l.msg === 'nftables table ready');
    expect(adopted?.adopted).toBe(1);
    const q = await ctl('query');
    expect(q.stdout).toContain(`DSTIP=${t.insideAddr}; DSTPORT=${port};`);
    expect(q.stdout).toContain('TIMER=6');
    expect(await passes()).toBe(true);
    // It still expires on its original schedule (6 s after the SET), in the kernel and in QUERY.
    expect(await eventually(dropped, 100, 100)).toBe(true);
    expect(Date.now() - setAt).toBeGreaterThan(4000);
    expect(
      await eventually(async () => (await ctl('query')).stdout.includes('(0 rules)'), 30, 100),
    ).toBe(true);
  });

  it('shuts down gracefully on SIGTERM and leaves the rules in the kernel', async () => {
    expect((await ctl('set', ...pme(), '--timer', '30')).code).toBe(0);
    expect(await stopDaemon(fcpd!, 'SIGTERM')).toBe(0);
    expect(fcpd!.logs.some((l) => String(l.msg).includes('stopped'))).toBe(true);
    expect(await passes()).toBe(true);
    const { stdout } = await t.router.exec('nft', ['list', 'set', 'inet', 'pinhole', 'h4d']);
    expect(stdout).toContain(`${t.insideAddr} . udp . ${port}`);
    // A restarted daemon adopts it and can release it.
    await start();
    expect((await ctl('release', ...pme())).stdout).toMatch(/^200 OK/);
    expect(await dropped()).toBe(true);
  });
});
