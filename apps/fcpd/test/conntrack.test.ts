/**
 * Does a released hole stay usable for a UDP flow conntrack already knows? Topology as in
 * kernel.test.ts (198.18.1.2 outside ── router running fcpd ── inside 198.19.1.2), with two UDP
 * endpoints that keep their sockets: the inside one echoes, so a flow is established both ways
 * (conntrack ESTABLISHED/ASSURED) exactly like bidirectional RTP.
 *
 * - standalone mode: the gate accepts by conntrack state only `ct direction reply`, so a flow
 *   the outside opened through a hole is dropped again after RELEASE, established or not;
 * - a flow the inside host opened itself is a reply flow: it never needed a hole (documented);
 * - mark mode: the site's ruleset decides. With the usual `ct state established accept` before
 *   the mark check, the established flow of a released hole keeps passing; with the two lines
 *   the README recommends before it, it is dropped.
 */
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import {
  cleanupNetns,
  createRoutedTopology,
  liveNetns,
  systemTestGate,
  type Netns,
  type RoutedTopology,
} from '@pinhole/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fcpctl, startDaemon, stopDaemon, type RunningDaemon } from './helpers.js';

const ok = systemTestGate('fcpd conntrack', ['root', 'nft', 'ip', 'netns']);

// One UDP socket that stays open: prints what it receives, sends on command, echoes if asked.
const PEER = `
const dgram = require('node:dgram');
const [address, port, echo] = process.argv.slice(1);
const s = dgram.createSocket('udp4');
const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
s.on('message', (m, r) => {
  const data = m.toString();
  out({ data, from: r.address, fromPort: r.port });
  if (echo === 'echo' && !data.startsWith('echo:')) s.send('echo:' + data, r.port, r.address);
});
s.bind(Number(port), address, () => out({ port: s.address().port }));
require('node:readline').createInterface({ input: process.stdin }).on('line', (l) => {
  const c = JSON.parse(l);
  s.send(c.data, c.port, c.host);
});
process.stdin.on('end', () => process.exit(0));
`;

class Peer {
  readonly port: number;
  readonly received: string[] = [];
  readonly #child: ChildProcess;
  readonly #waiters: (() => void)[] = [];

  private constructor(child: ChildProcess, port: number) {
    this.#child = child;
    this.port = port;
  }

  static start(ns: Netns, address: string, echo: boolean): Promise<Peer> {
    const child = ns.spawn(process.execPath, ['-e', PEER, address, '0', echo ? 'echo' : '']);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('peer did not start')), 10_000);
      let peer: Peer | undefined;
      createInterface({ input: child.stdout! }).on('line', (line) => {
        const m = JSON.parse(line) as { port?: number; data?: string };
        if (m.port !== undefined) {
          clearTimeout(t);
          peer = new Peer(child, m.port);
          resolve(peer);
        } else if (m.data !== undefined && peer) {
          peer.received.push(m.data);
          for (const w of peer.#waiters.splice(0)) w();
        }
      });
    });
  }

  send(host: string, port: number, data: string): void {
    this.#child.stdin!.write(JSON.stringify({ host, port, data }) + '\n');
  }

  /** Resolves true once `data` arrived, false after `ms`. */
  async got(data: string, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!this.received.includes(data)) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    return true;
  }

  close(): void {
    this.#child.stdin!.end();
  }
}

let seq = 0;
/** Sends fresh probes from `from` to `to` (at most 5, 150 ms apart); true if one arrived. */
async function reaches(from: Peer, to: Peer, host: string): Promise<boolean> {
  for (let i = 0; i < 5; i++) {
    const tag = `p${++seq}`;
    from.send(host, to.port, tag);
    if (await to.got(tag, 150)) return true;
  }
  return false;
}

async function established(out: Peer, inn: Peer, host: string): Promise<boolean> {
  for (let i = 0; i < 5; i++) {
    const tag = `e${++seq}`;
    out.send(host, inn.port, tag);
    if (await out.got(`echo:${tag}`, 200)) return true;
  }
  return false;
}

interface Setup {
  t: RoutedTopology;
  fcpd: RunningDaemon;
  out: Peer;
  inn: Peer;
}

async function setup(mode: 'standalone' | 'mark'): Promise<Setup> {
  const t = await createRoutedTopology();
  const fcpd = await startDaemon(
    [
      ...['--listen', 'tcp:127.0.0.1:0', '--backend', 'nftables', '--nft-mode', mode],
      ...['--protected', t.insideNet, '--media-ports', '1024-65535'],
    ],
    t.router,
  );
  const out = await Peer.start(t.outside, t.outsideAddr, false);
  const inn = await Peer.start(t.inside, t.insideAddr, true);
  return { t, fcpd, out, inn };
}

async function teardown(s: Setup | undefined): Promise<void> {
  s?.out.close();
  s?.inn.close();
  if (s) await stopDaemon(s.fcpd, 'SIGKILL');
  await cleanupNetns();
}

const ctl = (s: Setup, ...a: string[]) => fcpctl(['--server', s.fcpd.server, ...a], s.t.router);
const hole = (s: Setup): string[] => [
  ...['--proto', 'udp', '--dst', s.t.insideAddr, '--dst-port', String(s.inn.port)],
];

describe.runIf(ok)('conntrack and released holes: standalone mode', () => {
  let s: Setup | undefined;
  beforeAll(async () => {
    s = await setup('standalone');
  });
  afterAll(async () => {
    await teardown(s);
    expect(liveNetns()).toEqual([]);
  });

  it('drops the established flow of a released hole (the gate trusts only reply-direction state)', async () => {
    const x = s!;
    expect(await reaches(x.out, x.inn, x.t.insideAddr)).toBe(false);
    expect((await ctl(x, 'set', ...hole(x), '--timer', '60')).code).toBe(0);
    // Both directions flow: conntrack now holds an ESTABLISHED (ASSURED) entry for it.
    expect(await established(x.out, x.inn, x.t.insideAddr)).toBe(true);
    expect(await established(x.out, x.inn, x.t.insideAddr)).toBe(true);
    expect((await ctl(x, 'release', ...hole(x))).code).toBe(0);
    // Same 5-tuple, conntrack entry still alive: dropped.
    expect(await reaches(x.out, x.inn, x.t.insideAddr)).toBe(false);
  });

  it('lets a flow the inside host opened itself pass without any hole (reply direction, by design)', async () => {
    const x = s!;
    // Fresh sockets: a 5-tuple conntrack has not seen yet.
    const out = await Peer.start(x.t.outside, x.t.outsideAddr, false);
    const inn = await Peer.start(x.t.inside, x.t.insideAddr, false);
    try {
      expect(await reaches(out, inn, x.t.insideAddr)).toBe(false);
      // The protected host sends first (its own outbound RTP, DNS...): the outside's answers
      // on that 5-tuple are replies, which the gate accepts; no hole is involved.
      inn.send(x.t.outsideAddr, out.port, 'hello');
      expect(await out.got('hello', 2000)).toBe(true);
      expect(await reaches(out, inn, x.t.insideAddr)).toBe(true);
    } finally {
      out.close();
      inn.close();
    }
  });
});

// The site's own table in the router: default drop, established first (the usual layout),
// then the mark line from the README.
const siteUsual = (net: string): string => `
table inet site {
  chain site_forward {
    type filter hook forward priority filter + 10; policy drop;
    ct state established,related accept
    meta mark & 0x00100000 == 0x00100000 accept
    ip saddr ${net} accept
  }
}
`;
// The README's recommendation: the mark check and a drop of unmarked original-direction media
// traffic toward the protected network come before the established rule.
const siteRecommended = (net: string): string => `
table inet site {
  chain site_forward {
    type filter hook forward priority filter + 10; policy drop;
    meta mark & 0x00100000 == 0x00100000 accept
    ct direction original ip daddr ${net} meta l4proto { tcp, udp, sctp } th dport 1024-65535 drop
    ct state established,related accept
    ip saddr ${net} accept
  }
}
`;

describe.runIf(ok)('conntrack and released holes: mark mode', () => {
  let s: Setup | undefined;
  const site = async (text: string): Promise<void> => {
    await s!.t.router.exec(
      'nft',
      ['-f', '-'],
      `add table inet site\ndelete table inet site\n${text}`,
    );
  };
  beforeAll(async () => {
    s = await setup('mark');
  });
  afterAll(async () => {
    await teardown(s);
    expect(liveNetns()).toEqual([]);
  });

  it("with `ct state established accept` first, the site's ruleset keeps a released hole's established flow open", async () => {
    const x = s!;
    await site(siteUsual(x.t.insideNet));
    expect(await reaches(x.out, x.inn, x.t.insideAddr)).toBe(false);
    expect((await ctl(x, 'set', ...hole(x), '--timer', '60')).code).toBe(0);
    expect(await established(x.out, x.inn, x.t.insideAddr)).toBe(true);
    expect((await ctl(x, 'release', ...hole(x))).code).toBe(0);
    // The documented pitfall: conntrack state, not the hole, lets it in.
    expect(await reaches(x.out, x.inn, x.t.insideAddr)).toBe(true);
  });

  it('with the recommended lines before it, the released hole closes for the established flow too', async () => {
    const x = s!;
    await site(siteRecommended(x.t.insideNet));
    expect((await ctl(x, 'set', ...hole(x), '--timer', '60')).code).toBe(0);
    expect(await established(x.out, x.inn, x.t.insideAddr)).toBe(true);
    expect((await ctl(x, 'release', ...hole(x))).code).toBe(0);
    expect(await reaches(x.out, x.inn, x.t.insideAddr)).toBe(false);
    // The inside's own traffic still flows.
    x.inn.send(x.t.outsideAddr, x.out.port, 'hello-mark');
    expect(await x.out.got('hello-mark', 2000)).toBe(true);
  });
});
