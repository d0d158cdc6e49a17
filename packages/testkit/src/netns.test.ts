import { afterAll, describe, expect, it } from 'vitest';
import {
  cleanupNetns,
  createNetns,
  createRoutedTopology,
  liveNetns,
  randomName,
  run,
} from './netns.js';
import { systemTestGate } from './system.js';
import { UdpAgent, eventually, udpReaches } from './udp-agent.js';

describe('randomName', () => {
  it('starts with ph and fits an interface name', () => {
    for (let i = 0; i < 50; i++) {
      const n = randomName('x');
      expect(n).toMatch(/^phx[0-9a-f]{8}$/);
      expect(n.length).toBeLessThanOrEqual(15);
    }
  });

  it('does not repeat', () => {
    const names = new Set(Array.from({ length: 200 }, () => randomName()));
    expect(names.size).toBe(200);
  });
});

describe('eventually', () => {
  it('stops at the first success', async () => {
    let n = 0;
    expect(await eventually(() => ++n === 3, 10, 1)).toBe(true);
    expect(n).toBe(3);
  });

  it('gives up after the bounded number of attempts', async () => {
    let n = 0;
    expect(await eventually(() => (++n, false), 4, 1)).toBe(false);
    expect(n).toBe(4);
  });
});

describe.runIf(systemTestGate('testkit netns', ['root', 'ip', 'netns']))(
  'network namespaces',
  () => {
    afterAll(async () => {
      await cleanupNetns();
      expect(liveNetns()).toEqual([]);
    });

    it('creates, lists and deletes a namespace and the processes in it', async () => {
      const ns = await createNetns('t');
      const { stdout } = await run('ip', ['netns', 'list']);
      expect(stdout).toContain(ns.name);
      const child = ns.spawn('sleep', ['30']);
      await eventually(
        async () => (await run('ip', ['netns', 'pids', ns.name])).stdout.trim() !== '',
        20,
        50,
      );
      await ns.destroy();
      expect(child.exitCode !== null || child.signalCode !== null).toBe(true);
      expect((await run('ip', ['netns', 'list'])).stdout).not.toContain(ns.name);
    });

    it('routes UDP from outside to inside through the router', async () => {
      const t = await createRoutedTopology();
      const out = UdpAgent.start(t.outside);
      const inn = UdpAgent.start(t.inside);
      const port = await inn.bind(t.insideAddr, 0);
      expect(port).toBeGreaterThan(0);
      expect(await udpReaches(out, inn, t.insideAddr, port, { attempts: 20 })).toBe(true);
      const last = inn.messages.at(-1);
      expect(last?.from).toBe(t.outsideAddr);
      await Promise.all([out.close(), inn.close()]);
      await t.destroy();
      expect((await run('ip', ['netns', 'list'])).stdout).not.toContain(t.router.name);
    });

    it('reports a send toward an unrouted address as an error', async () => {
      const a = await createNetns('a');
      const agent = UdpAgent.start(a);
      const port = await agent.bind('127.0.0.1', 0);
      // 198.18.99.1 is not on any link of this namespace: the datagram cannot arrive.
      await expect(agent.send('198.18.99.1', port, 'x')).rejects.toThrow();
      await agent.close();
    });
  },
);
