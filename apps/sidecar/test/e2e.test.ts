/**
 * The proof: real sipp calls through a real Kamailio (the repository's kamailio.cfg, record-
 * routing, siptrace HEP3) in a firewall namespace, mirrored to pinhole-sidecar, which drives
 * pinhole-fcpd on the nftables backend in the same namespace. caller (198.18.1.2) ── firewall
 * (198.18.1.1 | 198.19.1.1; Kamailio on 198.18.1.1:5060) ── callee (198.19.1.2, protected
 * network 198.19.1.0/24). Media is real UDP, checked where it arrives. The sidecar only sees
 * copies of what Kamailio already relayed, so media is polled (bounded) rather than expected at
 * the instant a response leaves.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cleanupNetns,
  createRoutedTopology,
  eventually,
  holeCount,
  JsonLogProcess,
  liveNetns,
  run,
  sipp,
  sleep,
  systemTestGate,
  UdpAgent,
  udpReaches,
  type RoutedTopology,
  type SippResult,
} from '@pinhole/testkit';
import { KAMAILIO_CFG } from './support/kamailio.js';
import { FCPD_CLI, OWN_SCENARIOS, SCENARIOS, SIDECAR_CLI } from './support/netns-e2e.js';

const CALLER = '198.18.1.2';
const CALLEE = '198.19.1.2';
const KAMAILIO = '198.18.1.1';
const CAPTURE_ID = 2001;
const MEDIA = 40000;
/** Media ports of the session-timer calls refreshed by UPDATE and never refreshed. */
const MEDIA_UPDATE = 40008;
const MEDIA_NOREFRESH = 40004;
/** RFC 4028 §4: Min-SE "MUST NOT be less than 90 seconds"; the shortest session interval. */
const SESSION_EXPIRES = 90;
/** sipp's own bound for the session-timer calls (about 106 s long). */
const LONG_SIPP_MS = 180_000;

/** Where one sipp of a call listens: SIP port, sipp's media port, the SDP's media port. */
interface SippSide {
  readonly sipPort: number;
  readonly sippMediaPort: number;
  readonly sdpPort: number;
  readonly timeoutMs?: number;
}
const DEFAULT_CALLEE: SippSide = { sipPort: 5060, sippMediaPort: 16000, sdpPort: MEDIA };
const DEFAULT_CALLER: SippSide = { sipPort: 5060, sippMediaPort: 16000, sdpPort: 41000 };

/** The `listen`/`hep` field of a start-up log line: the port behind `udp:`/`tcp:HOST:PORT`. */
function portOf(field: unknown): number {
  const first = Array.isArray(field) ? String(field[0]) : '';
  const port = Number(first.slice(first.lastIndexOf(':') + 1));
  if (!Number.isInteger(port) || port <= 0) throw new Error(`no port in ${JSON.stringify(field)}`);
  return port;
}

describe.runIf(systemTestGate('sidecar e2e', ['root', 'nft', 'netns', 'sipp', 'kamailio']))(
  'pinhole-sidecar: Kamailio calls open and close holes in a real firewall',
  () => {
    let topo: RoutedTopology | undefined;
    let fcpd: JsonLogProcess | undefined;
    let sidecar: JsonLogProcess | undefined;
    let kamailio: JsonLogProcess | undefined;
    let kamDir: string | undefined;
    let caller: UdpAgent | undefined;
    let callee: UdpAgent | undefined;

    const reaches = (port: number): Promise<boolean> =>
      udpReaches(caller!, callee!, CALLEE, port, { attempts: 3, intervalMs: 100 });

    /** Polls until media toward `port` passes (or the bound is hit); returns when it did. */
    async function passesWithin(port: number, ms: number): Promise<number | undefined> {
      const end = Date.now() + ms;
      while (Date.now() < end) {
        if (await udpReaches(caller!, callee!, CALLEE, port, { attempts: 1, intervalMs: 80 })) {
          return Date.now();
        }
      }
      return undefined;
    }

    /** Media is dropped again and the table is empty (the BYE/CANCEL copy is processed late). */
    async function closedAgain(ports: readonly number[] = [MEDIA]): Promise<boolean> {
      return eventually(async () => {
        if ((await holeCount(topo!.router)) !== 0) return false;
        for (const p of ports) if (await reaches(p)) return false;
        return true;
      }, 30);
    }

    /**
     * Starts the callee's sipp and waits (bounded) until it listens: under load it can take
     * longer than a fixed pause, and Kamailio fails the call at once if the callee's port is shut.
     */
    async function uas(
      scenario: string,
      extra: readonly string[] = [],
      side: SippSide = DEFAULT_CALLEE,
    ): Promise<{ done: Promise<SippResult> }> {
      const result = sipp(
        topo!.inside,
        [
          '-sf',
          scenario.includes('/') ? scenario : `${SCENARIOS}${scenario}`,
          '-i',
          CALLEE,
          '-p',
          String(side.sipPort),
          '-mp',
          String(side.sippMediaPort),
          '-m',
          '1',
          '-key',
          'mport',
          String(side.sdpPort),
          ...extra,
        ],
        side.timeoutMs,
      );
      const listening = await eventually(
        async () =>
          (await topo!.inside.exec('ss', ['-Hlun'])).stdout.includes(`${CALLEE}:${side.sipPort}`),
        100,
        50,
      );
      if (!listening) throw new Error('the callee sipp did not start listening');
      return { done: result };
    }

    /**
     * The caller addresses the callee (at the callee's `sipPort`); -rsa sends every request to
     * Kamailio instead.
     */
    function uac(
      scenario: string,
      extra: readonly string[] = [],
      side: SippSide = DEFAULT_CALLER,
      calleeSipPort = 5060,
    ): Promise<SippResult> {
      return sipp(
        topo!.outside,
        [
          `${CALLEE}:${calleeSipPort}`,
          '-rsa',
          `${KAMAILIO}:5060`,
          '-sf',
          scenario.includes('/') ? scenario : `${SCENARIOS}${scenario}`,
          '-i',
          CALLER,
          '-p',
          String(side.sipPort),
          '-mp',
          String(side.sippMediaPort),
          '-m',
          '1',
          '-s',
          'callee',
          '-key',
          'mport',
          String(side.sdpPort),
          ...extra,
        ],
        side.timeoutMs,
      );
    }

    /** What the sidecar logged since `mark`: the answers it acted on and its FCP outcomes. */
    function sidecarSaw(mark: number): {
      answers: unknown[];
      opened: number;
      closed: number;
      failed: number;
    } {
      const since = sidecar!.lines.slice(mark);
      return {
        answers: since
          .filter((l) => l.msg === 'answer pinholes settled' && l.ok === true)
          .map((l) => l.status),
        opened: since.filter((l) => l.msg === 'pinhole opened').length,
        closed: since.filter((l) => l.msg === 'pinhole closed').length,
        failed: since.filter((l) => /failed/.test(l.msg)).length,
      };
    }

    /**
     * One call through Kamailio (UAS `uasScenario`, UAC `uacScenario`): media toward the callee
     * must pass within `windowMs` while the call is up, both sipps must succeed, and the hole
     * must be gone afterwards with the sidecar logging a close and no failure. Returns what the
     * sidecar logged during the call.
     */
    async function callAndClose(
      uasScenario: string,
      uasExtra: readonly string[],
      uacScenario: string,
      uacExtra: readonly string[],
      windowMs: number,
    ): Promise<ReturnType<typeof sidecarSaw>> {
      const mark = sidecar!.lines.length;
      const uasP = (await uas(uasScenario, uasExtra)).done;
      const uacP = uac(uacScenario, uacExtra);
      const passed = await passesWithin(MEDIA, windowMs);
      const [uacR, uasR] = await Promise.all([uacP, uasP]);
      expect(uacR.code, uacR.output).toBe(0);
      expect(uasR.code, uasR.output).toBe(0);
      expect(passed, diagnostics()).toBeDefined();
      expect(await closedAgain(), diagnostics()).toBe(true);
      await eventually(() => sidecarSaw(mark).closed > 0, 50, 100);
      const saw = sidecarSaw(mark);
      expect(saw.closed).toBeGreaterThan(0);
      expect(saw.failed).toBe(0);
      return saw;
    }

    const diagnostics = (): string =>
      [
        '--- sidecar',
        ...(sidecar?.stderr ?? []).slice(-20),
        ...(sidecar?.lines ?? []).slice(-30).map((l) => JSON.stringify(l)),
        '--- fcpd',
        ...(fcpd?.stderr ?? []).slice(-20),
        ...(fcpd?.lines ?? []).slice(-10).map((l) => JSON.stringify(l)),
        '--- kamailio',
        ...(kamailio?.stderr ?? []).slice(-30),
      ].join('\n');

    beforeAll(async () => {
      topo = await createRoutedTopology();
      const r = topo.router;
      fcpd = JsonLogProcess.inNetns(r, process.execPath, [
        FCPD_CLI,
        '--backend',
        'nftables',
        '--nft-mode',
        'standalone',
        '--protected',
        topo.insideNet,
        '--listen',
        'tcp:127.0.0.1:0',
      ]);
      const fcpdUp = await fcpd.waitFor((l) => l.msg === 'pinhole-fcpd started', 20_000);
      if (!fcpdUp) throw new Error(`fcpd did not start:\n${diagnostics()}`);
      sidecar = JsonLogProcess.inNetns(r, process.execPath, [
        SIDECAR_CLI,
        '--hep',
        'udp:127.0.0.1:0',
        '--server-address',
        `${KAMAILIO}:5060`,
        '--capture-id',
        String(CAPTURE_ID),
        '--fcp',
        `tcp:127.0.0.1:${portOf(fcpdUp.listen)}`,
        '--protected',
        topo.insideNet,
        '--log-level',
        'debug',
        // The hole's TIMER is the session interval itself, so expiry is observable at 90 s.
        '--policy',
        JSON.stringify({ sessionTimerMarginSec: 0 }),
      ]);
      const sidecarUp = await sidecar.waitFor((l) => l.msg === 'pinhole-sidecar listening', 20_000);
      if (!sidecarUp) throw new Error(`sidecar did not start:\n${diagnostics()}`);
      kamDir = mkdtempSync(join(tmpdir(), 'pinhole-kamailio-e2e-'));
      kamailio = JsonLogProcess.inNetns(r, 'kamailio', [
        '-f',
        KAMAILIO_CFG,
        '-DD',
        '-E',
        // One UDP worker: with two, a 180 and the 200 right behind it can be relayed out of
        // order under load, and sipp's caller counts the late 180 as unexpected.
        '-n',
        '1',
        '-l',
        `udp:${KAMAILIO}:5060`,
        '-w',
        kamDir,
        '-Y',
        kamDir,
        '-A',
        `HEP_URI="sip:127.0.0.1:${portOf(sidecarUp.hep)}"`,
        '-A',
        `HEP_CAPTURE_ID=${CAPTURE_ID}`,
      ]);
      const listening = await eventually(
        async () => (await r.exec('ss', ['-Hlun'])).stdout.includes(`${KAMAILIO}:5060`),
        100,
        100,
      );
      if (!listening) throw new Error(`Kamailio did not start:\n${diagnostics()}`);
      caller = UdpAgent.start(topo.outside);
      callee = UdpAgent.start(topo.inside);
      for (const p of [MEDIA, MEDIA_NOREFRESH, MEDIA_UPDATE]) await callee.bind(CALLEE, p);
      await caller.bind(CALLER, MEDIA);
    }, 60_000);

    afterAll(async () => {
      await caller?.close();
      await callee?.close();
      await kamailio?.stop();
      await sidecar?.stop();
      await fcpd?.stop();
      await topo?.destroy();
      await cleanupNetns();
      if (kamDir) rmSync(kamDir, { recursive: true, force: true });
    }, 60_000);

    it('drops media before the call, passes it once the 200 OK relayed by Kamailio is mirrored, and closes the hole after BYE', async () => {
      expect(await holeCount(topo!.router)).toBe(0);
      expect(await reaches(MEDIA)).toBe(false);
      // The caller is outside the protected network: media toward it is not gated at all.
      expect(await udpReaches(callee!, caller!, CALLER, MEDIA, { attempts: 3 })).toBe(true);

      const saw = await callAndClose('uas-basic.xml', [], 'uac-basic.xml', ['-d', '3000'], 3000);
      // The 200's copy opened the hole (Kamailio's 100 and 180 carry no SDP); the BYE closed it.
      expect(saw.answers).toContain(200);
      expect(saw.opened).toBeGreaterThan(0);
    }, 60_000);

    it('passes early media after a 183 with SDP, before the 200 OK', async () => {
      // The callee pauses 3 s between its 183 and its 200, and the 183 leaves after polling
      // starts: a pass within 2.5 s of now came through the early-media hole.
      const saw = await callAndClose(
        'uas-early-media.xml',
        ['-d', '3000'],
        'uac-basic.xml',
        ['-d', '500'],
        2500,
      );
      expect(saw.answers).toContain(183);
      expect(saw.opened).toBeGreaterThan(0);
    }, 60_000);

    it('closes the early-media hole after CANCEL and its 487', async () => {
      const saw = await callAndClose('uas-ring.xml', [], 'uac-cancel.xml', ['-d', '3000'], 2800);
      expect(saw.answers).toContain(183);
      expect(saw.answers).not.toContain(200);
    }, 60_000);

    it('keeps media passing past the first session TIMER with re-INVITE and UPDATE refreshes, and lets the hole expire without them', async () => {
      // Three calls at once through Kamailio, each with Session-Expires 90 s (refresher uac) and
      // the hole's TIMER 90 s: callee 5060 refreshed by re-INVITE, callee 5064 refreshed by
      // UPDATE without SDP (both at about 35 s and 70 s, BYE at about 105 s), callee 5062 never
      // refreshed (BYE at about 102 s, after its hole has expired).
      const se = ['-key', 'se', String(SESSION_EXPIRES)];
      const long = { timeoutMs: LONG_SIPP_MS };
      const mark = sidecar!.lines.length;
      const refreshUas = `${OWN_SCENARIOS}uas-session-timer-refresh.xml`;
      const uasReinvite = (await uas(refreshUas, se, { ...DEFAULT_CALLEE, ...long })).done;
      const uasNoRefresh = (
        await uas(refreshUas, se, {
          sipPort: 5062,
          sippMediaPort: 16100,
          sdpPort: MEDIA_NOREFRESH,
          ...long,
        })
      ).done;
      const uasUpdate = (
        await uas(refreshUas, se, {
          sipPort: 5064,
          sippMediaPort: 16200,
          sdpPort: MEDIA_UPDATE,
          ...long,
        })
      ).done;
      let noRefreshEnded = false;
      const start = Date.now();
      const uacReinvite = uac('uac-session-timer.xml', [...se, '-d', '35000'], {
        ...DEFAULT_CALLER,
        ...long,
      });
      const uacUpdate = uac(
        `${OWN_SCENARIOS}uac-session-timer-update.xml`,
        [...se, '-d', '35000'],
        { sipPort: 5064, sippMediaPort: 16400, sdpPort: 41008, ...long },
        5064,
      );
      const uacNoRefresh = uac(
        'uac-session-timer-norefresh.xml',
        [...se, '-d', '102000'],
        { sipPort: 5062, sippMediaPort: 16200, sdpPort: 41004, ...long },
        5062,
      ).then((r) => {
        noRefreshEnded = true;
        return r;
      });
      const ports = [MEDIA, MEDIA_UPDATE, MEDIA_NOREFRESH];
      for (const p of ports) expect(await passesWithin(p, 3000), diagnostics()).toBeDefined();

      // Before the first TIMER runs out every hole is still open: nothing closes early.
      await sleep(Math.max(0, start + 80_000 - Date.now()));
      for (const p of ports) expect(await reaches(p), `port ${p} at 80 s`).toBe(true);

      // The first TIMER (90 s after the answers) passes: the unrefreshed hole expires while its
      // call is still up (its BYE comes at about 102 s); the refreshed ones stay open.
      await sleep(Math.max(0, start + 90_000 - Date.now()));
      const expired = await eventually(async () => !(await reaches(MEDIA_NOREFRESH)), 20, 100);
      expect(expired, diagnostics()).toBe(true);
      expect(noRefreshEnded).toBe(false);
      expect(await reaches(MEDIA), 're-INVITE-refreshed hole past the first TIMER').toBe(true);
      expect(await reaches(MEDIA_UPDATE), 'UPDATE-refreshed hole past the first TIMER').toBe(true);

      const results = await Promise.all([
        uacReinvite,
        uacUpdate,
        uacNoRefresh,
        uasReinvite,
        uasUpdate,
        uasNoRefresh,
      ]);
      for (const r of results) expect(r.code, r.output).toBe(0);
      expect(await closedAgain(ports), diagnostics()).toBe(true);
      const since = sidecar!.lines.slice(mark);
      const refreshed = since.filter((l) => l.msg === 'pinhole refreshed');
      // Two refreshes of each refreshed call, each re-setting its RTP and RTCP holes.
      expect(refreshed.length, diagnostics()).toBeGreaterThanOrEqual(4);
      expect(refreshed.every((l) => l.timer === SESSION_EXPIRES)).toBe(true);
      // The policy's sweep noticed the unrefreshed hole's TIMER had passed and released it. The
      // firewall expires the hole by itself at the same TIMER, counted from the SET's arrival
      // (a few ms after the policy's clock reading) and the sweep ticks once a second, so the
      // RELEASE nearly always finds nothing left (FCP 400 "no matching rule"): that is an
      // expiry, logged as such, never a failure. Only when the tick lands inside those few ms
      // does the RELEASE still find the rule and close it.
      const timerExpired = since.filter((l) => l.reason === 'timer-expired');
      expect(timerExpired.length, diagnostics()).toBeGreaterThan(0);
      for (const l of timerExpired) {
        expect(['pinhole already expired at the firewall', 'pinhole closed']).toContain(l.msg);
      }
      expect(
        timerExpired.some((l) => l.msg === 'pinhole already expired at the firewall'),
        diagnostics(),
      ).toBe(true);
      expect(since.filter((l) => /failed/.test(l.msg))).toEqual([]);
    }, 240_000);

    it('leaves nothing behind: no pinholes, processes or namespaces', async () => {
      const names = liveNetns();
      expect(await holeCount(topo!.router)).toBe(0);
      await caller!.close();
      await callee!.close();
      await kamailio!.stop();
      expect(await sidecar!.stop()).toBe(0);
      await fcpd!.stop();
      await topo!.destroy();
      await cleanupNetns();
      expect(liveNetns()).toEqual([]);
      const { stdout } = await run('ip', ['netns', 'list']);
      for (const n of names) expect(stdout).not.toContain(n);
      topo = undefined;
      caller = undefined;
      callee = undefined;
    }, 60_000);
  },
);
