/**
 * The proof: real sipp calls through pinhole-proxy running in a firewall namespace with its
 * embedded fcpd on the nftables backend. caller (198.18.1.2) ── firewall (198.18.1.1 |
 * 198.19.1.1) ── callee (198.19.1.2, protected network 198.19.1.0/24). Media is real UDP,
 * checked where it arrives.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  holeCount,
  sipp,
  sleep,
  systemTestGate,
  type JsonLogProcess,
  type LogLine,
  type UdpAgent,
  udpReaches,
  type RoutedTopology,
} from '@pinhole/testkit';
import {
  CALLEE,
  CALLER,
  INSIDE_NET,
  PROXY,
  expectNothingLeft,
  startE2e,
  stopE2e,
  stream,
  uac,
  uas,
} from './harness.js';

const MEDIA = 40000;
const MOVED = 40002;
const MEDIA2 = 40004;

describe.runIf(systemTestGate('proxy e2e', ['root', 'nft', 'netns', 'sipp']))(
  'pinhole-proxy: real calls through a real firewall',
  () => {
    let topo: RoutedTopology | undefined;
    let proxy: JsonLogProcess | undefined;
    let caller: UdpAgent;
    let callee: UdpAgent;

    const reaches = (port: number): Promise<boolean> =>
      udpReaches(caller, callee, CALLEE, port, { attempts: 3, intervalMs: 100 });

    /** Polls until media toward `port` passes (or the bound is hit); returns when it did. */
    async function passesWithin(port: number, ms: number): Promise<number | undefined> {
      const end = Date.now() + ms;
      while (Date.now() < end) {
        if (await udpReaches(caller, callee, CALLEE, port, { attempts: 1, intervalMs: 80 })) {
          return Date.now();
        }
      }
      return undefined;
    }

    function logsSince(mark: number, pred: (l: LogLine) => boolean): LogLine[] {
      return proxy!.lines.slice(mark).filter(pred);
    }
    const relayed = (status: number) => (l: LogLine) =>
      l.msg === 'response relayed' && l.status === status;
    const forwarded = (method: string) => (l: LogLine) =>
      l.msg === 'request forwarded' && l.method === method;

    beforeAll(async () => {
      ({ topo, proxy, caller, callee } = await startE2e(
        [
          '--listen',
          `udp:${PROXY}`,
          '--route',
          `default=sip:${CALLEE}:5060`,
          '--route',
          `prefix:4000=sip:${CALLEE}:5062`,
          '--protected',
          INSIDE_NET,
          '--timer-c-ms',
          '5000',
          '--log-level',
          'debug',
          '--policy',
          JSON.stringify({ sessionTimerMarginSec: 0 }),
        ],
        [MEDIA],
        [MEDIA, MOVED, MEDIA2],
      ));
    }, 60_000);

    afterAll(() => stopE2e({ topo, proxy, caller, callee }));

    it('reaches its embedded fcpd over the in-process link, which programs the kernel from its own thread', () => {
      const lines = proxy!.lines;
      expect(
        lines.some((l) => l.msg === 'FCP server connected' && l.server === 'local:embedded'),
      ).toBe(true);
      expect(
        lines.some(
          (l) =>
            l.msg === 'nftables table ready' &&
            l.channel === 'netlink' &&
            l.netlink === 'in-process',
        ),
      ).toBe(true);
    });

    it('drops media before the call, passes every packet sent after the 200 OK is relayed, and closes the hole after BYE', async () => {
      const mark = proxy!.lines.length;
      expect(await reaches(MEDIA)).toBe(false);
      // The caller is outside the protected network: media toward it is not gated at all.
      expect(await udpReaches(callee, caller, CALLER, MEDIA, { attempts: 3 })).toBe(true);

      const uasP = uas(topo!.inside, CALLEE, 'uas-basic.xml', ['-key', 'mport', String(MEDIA)]);
      await sleep(300);
      const sentP = stream(topo!.outside, CALLEE, MEDIA, 3500);
      await sleep(300);
      const uacR = await uac(topo!.outside, CALLER, PROXY, 'uac-basic.xml', [
        '-key',
        'mport',
        '41000',
        '-d',
        '2000',
      ]);
      const uasR = await uasP;
      const sent = await sentP;
      expect(uacR.code, uacR.output).toBe(0);
      expect(uasR.code, uasR.output).toBe(0);

      const invite = logsSince(mark, forwarded('INVITE'))[0]!;
      const ok = logsSince(mark, (l) => relayed(200)(l) && l.method === 'INVITE')[0]!;
      const bye = logsSince(mark, forwarded('BYE'))[0]!;
      expect(invite && ok && bye).toBeTruthy();
      const got = new Set(
        callee.messages
          .filter((m) => m.port === MEDIA && m.data.startsWith('rtp '))
          .map((m) => Number(m.data.split(' ')[1])),
      );
      const before = sent.filter(([, t]) => t < invite.time);
      const during = sent.filter(([, t]) => t > ok.time + 1 && t < bye.time - 1);
      expect(before.length).toBeGreaterThan(10);
      expect(before.filter(([n]) => got.has(n))).toEqual([]);
      expect(during.length).toBeGreaterThan(100);
      // The hole is in the kernel before the 200 leaves: nothing sent after it is lost.
      expect(during.filter(([n]) => !got.has(n))).toEqual([]);

      expect(await reaches(MEDIA)).toBe(false);
      expect(await holeCount(topo!.router)).toBe(0);
    }, 60_000);

    it('passes early media after a 183 with SDP, before the 200 OK', async () => {
      const mark = proxy!.lines.length;
      const uasP = uas(topo!.inside, CALLEE, 'uas-early-media.xml', [
        '-key',
        'mport',
        String(MEDIA),
        '-d',
        '3000',
      ]);
      await sleep(300);
      const uacP = uac(topo!.outside, CALLER, PROXY, 'uac-basic.xml', [
        '-key',
        'mport',
        '41000',
        '-d',
        '500',
      ]);
      const firstMedia = await passesWithin(MEDIA, 2500);
      const [uacR, uasR] = await Promise.all([uacP, uasP]);
      expect(uacR.code, uacR.output).toBe(0);
      expect(uasR.code, uasR.output).toBe(0);
      expect(firstMedia).toBeDefined();
      const early = logsSince(mark, relayed(183))[0]!;
      const ok = logsSince(mark, (l) => relayed(200)(l) && l.method === 'INVITE')[0]!;
      expect(early.time).toBeLessThanOrEqual(firstMedia!);
      expect(firstMedia!).toBeLessThan(ok.time);
      expect(await reaches(MEDIA)).toBe(false);
      expect(await holeCount(topo!.router)).toBe(0);
    }, 60_000);

    it.each([
      {
        end: 'CANCEL and its 487',
        uasScenario: 'uas-ring.xml',
        uasExtra: [],
        uacScenario: 'uac-cancel.xml',
        uacExtra: ['-d', '3000'],
      },
      {
        end: '486 Busy Here',
        uasScenario: 'uas-486.xml',
        uasExtra: ['-d', '3000'],
        uacScenario: 'uac-486.xml',
        uacExtra: [],
      },
    ])(
      'closes the early-media hole after $end',
      async ({ uasScenario, uasExtra, uacScenario, uacExtra }) => {
        const uasP = uas(topo!.inside, CALLEE, uasScenario, [
          '-key',
          'mport',
          String(MEDIA),
          ...uasExtra,
        ]);
        await sleep(300);
        const uacP = uac(topo!.outside, CALLER, PROXY, uacScenario, [
          '-key',
          'mport',
          '41000',
          ...uacExtra,
        ]);
        const during = await passesWithin(MEDIA, 2800);
        const [uacR, uasR] = await Promise.all([uacP, uasP]);
        expect(uacR.code, uacR.output).toBe(0);
        expect(uasR.code, uasR.output).toBe(0);
        expect(during).toBeDefined();
        expect(await reaches(MEDIA)).toBe(false);
        expect(await holeCount(topo!.router)).toBe(0);
      },
      60_000,
    );

    it('answers 408 when nobody answers (Timer C), cancels the callee and closes the hole', async () => {
      const uasP = uas(topo!.inside, CALLEE, 'uas-ring.xml', ['-key', 'mport', String(MEDIA)]);
      await sleep(300);
      const uacR = await uac(topo!.outside, CALLER, PROXY, 'uac-noanswer.xml', [
        '-key',
        'mport',
        '41000',
      ]);
      const uasR = await uasP;
      expect(uacR.code, uacR.output).toBe(0);
      expect(uasR.code, uasR.output).toBe(0);
      expect(await reaches(MEDIA)).toBe(false);
      expect(await holeCount(topo!.router)).toBe(0);
    }, 60_000);

    it('opens the new destination and closes the old one when a re-INVITE moves the media', async () => {
      const mark = proxy!.lines.length;
      const uasP = uas(topo!.inside, CALLEE, 'uas-reinvite.xml', [
        '-key',
        'mport',
        String(MEDIA),
        '-key',
        'newport',
        String(MOVED),
      ]);
      await sleep(300);
      const uacP = uac(topo!.outside, CALLER, PROXY, 'uac-reinvite-move.xml', [
        '-key',
        'mport',
        '41000',
        '-key',
        'newport',
        '41002',
        '-d',
        '3000',
      ]);
      const first = await passesWithin(MEDIA, 2500);
      expect(first).toBeDefined();
      expect(await reaches(MOVED)).toBe(false);
      // Wait for the re-INVITE's 200 to be relayed.
      const second = await proxy!.waitFor(
        (l) =>
          relayed(200)(l) && l.method === 'INVITE' && logsSince(mark, relayed(200)).length >= 2,
        6000,
      );
      expect(second).toBeDefined();
      expect(await passesWithin(MOVED, 2000)).toBeDefined();
      expect(await reaches(MEDIA)).toBe(false);
      const [uacR, uasR] = await Promise.all([uacP, uasP]);
      expect(uacR.code, uacR.output).toBe(0);
      expect(uasR.code, uasR.output).toBe(0);
      expect(await reaches(MOVED)).toBe(false);
      expect(await holeCount(topo!.router)).toBe(0);
    }, 60_000);

    it('answers RFC 4475 torture messages and keeps serving calls', async () => {
      const mark = proxy!.lines.length;
      const corpus = (f: string): string =>
        readFileSync(
          fileURLToPath(new URL(`../../../../shared/corpora/rfc4475/${f}`, import.meta.url)),
          'latin1',
        );
      const badinv = corpus('badinv01.dat');
      const zeromf = corpus('zeromf.dat');
      await caller.send('198.18.1.1', 5060, badinv);
      await caller.send('198.18.1.1', 5060, zeromf);
      await caller.send('198.18.1.1', 5060, '\u0000\u0001garbage that is no SIP at all');
      const local = (status: number) => (l: LogLine) =>
        (l.msg === 'local response' ||
          l.msg === 'invalid request' ||
          l.msg === 'unparsable request answered 400') &&
        (l.status ?? 400) === status;
      expect(
        await proxy!.waitFor((l) => proxy!.lines.indexOf(l) >= mark && local(400)(l), 3000),
      ).toBeDefined();
      expect(
        await proxy!.waitFor((l) => proxy!.lines.indexOf(l) >= mark && local(483)(l), 3000),
      ).toBeDefined();
      expect(
        await proxy!.waitFor(
          (l) => proxy!.lines.indexOf(l) >= mark && l.msg === 'unanswerable garbage dropped',
          3000,
        ),
      ).toBeDefined();
      // And a normal call still goes through.
      const uasP = uas(topo!.inside, CALLEE, 'uas-basic.xml', ['-key', 'mport', String(MEDIA)]);
      await sleep(300);
      const uacR = await uac(topo!.outside, CALLER, PROXY, 'uac-basic.xml', [
        '-key',
        'mport',
        '41000',
        '-d',
        '200',
      ]);
      expect(uacR.code, uacR.output).toBe(0);
      expect((await uasP).code).toBe(0);
    }, 60_000);

    it('keeps media passing past the first session TIMER with re-INVITE refreshes, and lets the hole expire without them', async () => {
      // Two calls at once: callee 5060 (media 40000) refreshed; callee 5062 (media 40004) not.
      // Session-Expires 90 s (the RFC 4028 minimum); the hole's TIMER is 90 s (margin 0).
      const se = ['-key', 'se', '90'];
      const uas1 = uas(
        topo!.inside,
        CALLEE,
        'uas-session-timer.xml',
        ['-key', 'mport', String(MEDIA), ...se],
        200_000,
      );
      const uas2 = sippUas5062(topo!, se);
      await sleep(300);
      const start = Date.now();
      const uac1 = uac(
        topo!.outside,
        CALLER,
        PROXY,
        'uac-session-timer.xml',
        ['-key', 'mport', '41000', '-d', '50000', ...se],
        200_000,
      );
      const uac2 = uac(
        topo!.outside,
        CALLER,
        PROXY,
        'uac-session-timer-norefresh.xml',
        ['-p', '5062', '-key', 'mport', '41004', '-d', '110000', '-s', '4000', ...se],
        200_000,
      );
      expect(await passesWithin(MEDIA, 3000)).toBeDefined();
      expect(await passesWithin(MEDIA2, 3000)).toBeDefined();
      // Past the first TIMER (90 s after the answers, plus the kernel's timeout granularity).
      await sleep(Math.max(0, start + 97_000 - Date.now()));
      expect(await reaches(MEDIA)).toBe(true);
      expect(await reaches(MEDIA2)).toBe(false);
      const results = await Promise.all([uac1, uac2, uas1, uas2]);
      for (const r of results) expect(r.code, r.output).toBe(0);
      expect(await reaches(MEDIA)).toBe(false);
      expect(await holeCount(topo!.router)).toBe(0);
    }, 240_000);

    it('leaves nothing behind: no pinholes, processes or namespaces', async () => {
      await expectNothingLeft({ topo: topo!, proxy: proxy!, caller, callee });
      topo = undefined;
      proxy = undefined;
    }, 60_000);
  },
);

function sippUas5062(topo: RoutedTopology, extra: readonly string[]) {
  return import('./harness.js').then(({ SCENARIOS }) =>
    sipp(
      topo.inside,
      [
        '-sf',
        `${SCENARIOS}uas-session-timer.xml`,
        '-i',
        CALLEE,
        '-p',
        '5062',
        '-mp',
        '16100',
        '-m',
        '1',
        '-key',
        'mport',
        String(MEDIA2),
        ...extra,
      ],
      200_000,
    ),
  );
}
