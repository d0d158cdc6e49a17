/**
 * `--workers 2` with the embedded fcpd, on the nftables backend, in the firewall namespace of the
 * e2e topology: each worker embeds its own fcpd writing its own shard of the one table (`h4d`
 * for worker 0, `h4d_1` for worker 1), so the SET that holds a 200 OK is answered inside the
 * worker that relays it. A call owned by each worker (its Call-ID chosen so) must open its hole
 * in that worker's sets only, pass media while it is up, and leave nothing behind.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  holeCount,
  sleep,
  systemTestGate,
  type JsonLogProcess,
  type UdpAgent,
  udpReaches,
  type RoutedTopology,
} from '@pinhole/testkit';
import { ownerOf } from '../src/dispatch.js';
import {
  CALLEE,
  CALLER,
  INSIDE_NET,
  PROXY,
  expectNothingLeft,
  startE2e,
  stopE2e,
  uac,
  uas,
} from './harness.js';

const MEDIA = 40100;

/** A sipp `-cid_str` whose first call's Call-ID (`%u` = 1) the given worker of 2 owns. */
function callIdFor(worker: number): string {
  for (let i = 0; ; i++) {
    if (ownerOf(`pinhole-workers-${i}-1`, 2) === worker) return `pinhole-workers-${i}-%u`;
  }
}

describe.runIf(systemTestGate('proxy e2e (workers)', ['root', 'nft', 'netns', 'sipp']))(
  'pinhole-proxy --workers 2: an embedded fcpd in each worker, one nftables table',
  () => {
    let topo: RoutedTopology | undefined;
    let proxy: JsonLogProcess | undefined;
    let caller: UdpAgent;
    let callee: UdpAgent;

    const reaches = (attempts: number): Promise<boolean> =>
      udpReaches(caller, callee, CALLEE, MEDIA, { attempts, intervalMs: 100 });
    const setHas = async (set: string): Promise<boolean> => {
      const { stdout } = await topo!.router.exec('nft', ['list', 'set', 'inet', 'pinhole', set]);
      return stdout.includes(`${CALLEE} . udp . ${MEDIA}`);
    };

    beforeAll(async () => {
      ({ topo, proxy, caller, callee } = await startE2e(
        [
          '--listen',
          `udp:${PROXY}`,
          '--route',
          `default=sip:${CALLEE}:5060`,
          '--protected',
          INSIDE_NET,
          '--workers',
          '2',
          '--log-level',
          'info',
        ],
        [MEDIA],
        [MEDIA],
      ));
    }, 60_000);

    afterAll(() => stopE2e({ topo, proxy, caller, callee }));

    it('sets the table up once for two shards, and each worker opens its own embedded fcpd on it', () => {
      const lines = proxy!.lines;
      const ready = lines.filter((l) => l.msg === 'nftables table ready');
      // The primary's one-shot setup, then one backend per worker, each on its own shard.
      expect(ready.map((l) => l.shard).sort()).toEqual([0, 0, 1]);
      expect(ready.every((l) => l.shards === 2)).toBe(true);
      const embedded = lines.filter((l) => l.msg === 'embedded fcpd started');
      // No socket of its own: a listen in a cluster worker would be the primary's shared port.
      expect(embedded.every((l) => l.fcp === 'in-process link only')).toBe(true);
      expect(embedded.map((l) => [l.worker, l.shard]).sort()).toEqual([
        [0, 0],
        [1, 1],
      ]);
      expect(
        lines.filter((l) => l.msg === 'FCP server connected' && l.server === 'local:embedded'),
      ).toHaveLength(2);
    });

    it.each([
      [0, 'h4d', 'h4d_1'],
      [1, 'h4d_1', 'h4d'],
    ])(
      'a call worker %i owns opens its hole in %s only, passes media, and closes it after BYE',
      async (worker, own, other) => {
        expect(await reaches(3)).toBe(false);
        const uasP = uas(topo!.inside, CALLEE, 'uas-basic.xml', ['-key', 'mport', String(MEDIA)]);
        await sleep(300);
        const uacP = uac(topo!.outside, CALLER, PROXY, 'uac-basic.xml', [
          '-key',
          'mport',
          '41000',
          '-cid_str',
          callIdFor(worker),
          '-d',
          '3000',
        ]);
        // While the call is up (bounded: 50 polls 50 ms apart).
        let seen = false;
        for (let i = 0; i < 50 && !seen; i++) {
          seen = await setHas(own);
          if (!seen) await sleep(50);
        }
        expect(seen).toBe(true);
        expect(await setHas(other)).toBe(false);
        expect(await reaches(20)).toBe(true);
        const [uacR, uasR] = await Promise.all([uacP, uasP]);
        expect(uacR.code, uacR.output).toBe(0);
        expect(uasR.code, uasR.output).toBe(0);
        expect(await reaches(3)).toBe(false);
        expect(await holeCount(topo!.router)).toBe(0);
      },
      60_000,
    );

    it('leaves nothing behind: no pinholes, processes or namespaces', async () => {
      await expectNothingLeft({ topo: topo!, proxy: proxy!, caller, callee });
      topo = undefined;
      proxy = undefined;
    }, 60_000);
  },
);
