/**
 * A real Kamailio (apps/sidecar/kamailio/kamailio.cfg: record-routing stateful proxy with
 * siptrace trace_mode=1) mirrors a call to our UDP HEP receiver. The test plays the caller and
 * the callee on loopback sockets and checks every copy the decoder and the normalizer report.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { FcpClient, FcpServer, MemoryBackend } from '@pinhole/fcp';
import { Policy } from '@pinhole/policy';
import { parse } from '@pinhole/sip';
import { systemTestGate } from '@pinhole/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HepPacket } from '../src/hep.js';
import { createEngineControlMetrics, EnginePinholeControl } from '../src/engine-control.js';
import { MetricsRegistry } from '@pinhole/metrics';
import { CaptureNormalizer } from '../src/normalizer.js';
import type { MediaSource, SipObservation } from '../src/observation.js';
import {
  HepIngress,
  HepTcpReceiver,
  HepUdpReceiver,
  silentLogger,
  type HepSource,
} from '../src/receiver.js';
import { createSidecarMetrics } from '../src/sidecar-metrics.js';
import { startKamailio, type RunningKamailio } from './support/kamailio.js';

const CAPTURE_ID = 2001;
const AUTH_KEY = 'pinhole-test-key';
const SDP =
  'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\n';

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function udp(): Promise<Socket> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  return s;
}

function header(msg: string, name: string): string[] {
  const head = msg.slice(0, msg.indexOf('\r\n\r\n'));
  return head
    .split('\r\n')
    .slice(1)
    .filter((l) => l.toLowerCase().startsWith(`${name.toLowerCase()}:`));
}

describe.runIf(systemTestGate('sidecar kamailio', ['kamailio']))(
  'Kamailio siptrace (HEP3, trace_mode=1) into the sidecar',
  () => {
    let kam: RunningKamailio | undefined;
    let rx: HepUdpReceiver | undefined;
    let ua: Socket | undefined;
    let callee: Socket | undefined;
    const packets: HepPacket[] = [];
    const observations: SipObservation[] = [];
    const settled: { obs: SipObservation; source: MediaSource }[] = [];
    const metrics = createSidecarMetrics();
    const uaInbox: string[] = [];
    const calleeInbox: string[] = [];
    let release200: (() => void) | undefined;
    const callId = `pinhole-${process.pid}-${Date.now()}@127.0.0.1`;
    // Pinhole control behind the same normalizer: a real FcpServer with a memory backend. The
    // callee answers with media at 198.18.0.20 (SDP text only; nothing is sent there), the
    // protected side, so the 200 opens holes toward it. Loopback media would be refused by the
    // policy's safety checks.
    let fcpd: FcpServer | undefined;
    let control: EnginePinholeControl | undefined;
    const controlMetrics = createEngineControlMetrics(new MetricsRegistry());

    beforeAll(async () => {
      fcpd = new FcpServer(
        {
          listen: [{ transport: 'tcp', host: '127.0.0.1', port: 0 }],
          policy: { protectedNetworks: ['198.18.0.0/16'], ownAddresses: ['198.18.0.1'] },
          limits: { ratePerSec: 0 },
        },
        new MemoryBackend(),
      );
      await fcpd.start();
      control = new EnginePinholeControl({
        policy: new Policy({ protectedNetworks: ['198.18.0.16/28'] }),
        fcp: new FcpClient({
          servers: [{ host: '127.0.0.1', port: fcpd.addresses()[0]?.port ?? 0 }],
          keepAlive: false,
        }),
        metrics: controlMetrics,
        logger: { ...silentLogger, warn: () => undefined, error: () => undefined },
      });
      ua = await udp();
      callee = await udp();
      const live: { normalizer?: CaptureNormalizer } = {};
      const ingress = new HepIngress({
        captureIds: [CAPTURE_ID],
        authKey: AUTH_KEY,
        metrics,
        onPacket: (p, s) => {
          packets.push(p);
          live.normalizer?.push(p, s);
        },
      });
      rx = new HepUdpReceiver(ingress);
      const hep = await rx.listen({ host: '127.0.0.1', port: 0 });
      kam = await startKamailio({ hepPort: hep.port, captureId: CAPTURE_ID, authKey: AUTH_KEY });
      const kamPort = kam.port;
      // Every peer is on 127.0.0.1, so the server's port tells its copies apart.
      live.normalizer = new CaptureNormalizer({
        serverAddresses: [{ address: '127.0.0.1', port: kamPort }],
        parse,
        metrics,
        onObservation: (o) => {
          observations.push(o);
          control?.observe(o);
        },
        onSettle: (obs, source) => {
          settled.push({ obs, source });
          control?.settle(obs, source);
        },
      });

      const calleePort = callee.address().port;
      const answered = new Set<string>();
      const invites = new Map<string, { text: string; to: RemoteInfo; seen: number }>();
      const reply = (s: string, r: RemoteInfo, code: number, reason: string, body = ''): void => {
        const to = header(s, 'to')[0] ?? 'To: <sip:x@127.0.0.1>';
        const lines = [
          `SIP/2.0 ${code} ${reason}`,
          ...header(s, 'via'),
          ...header(s, 'record-route'),
          ...header(s, 'from'),
          to.includes(';tag=') ? to : `${to};tag=callee-tag`,
          ...header(s, 'call-id'),
          ...header(s, 'cseq'),
          `Contact: <sip:callee@127.0.0.1:${calleePort}>`,
          ...(body ? ['Content-Type: application/sdp'] : []),
          `Content-Length: ${Buffer.byteLength(body)}`,
          '',
          body,
        ];
        callee?.send(lines.join('\r\n'), r.port, r.address);
      };
      callee.on('message', (m: Buffer, r: RemoteInfo) => {
        const s = m.toString('utf8');
        calleeInbox.push(s);
        const cid = header(s, 'call-id')[0] ?? '';
        if (s.startsWith('OPTIONS ')) reply(s, r, 200, 'OK');
        else if (s.startsWith('BYE ')) reply(s, r, 200, 'OK');
        else if (s.startsWith('CANCEL ')) {
          reply(s, r, 200, 'OK');
          const inv = invites.get(cid);
          if (inv) reply(inv.text, inv.to, 487, 'Request Terminated');
        } else if (s.startsWith('INVITE ')) {
          const inv = invites.get(cid) ?? { text: s, to: r, seen: 0 };
          inv.seen++;
          invites.set(cid, inv);
          // A "late" callee ignores the first copy, so Kamailio's Timer A retransmits it.
          if (cid.includes('late') && inv.seen === 1) return;
          const branch = header(s, 'via')[0] ?? '';
          if (answered.has(branch)) return;
          answered.add(branch);
          reply(s, r, 180, 'Ringing');
          release200 = () =>
            reply(
              s,
              r,
              200,
              'OK',
              SDP.replace('40000', '50000').replace(/127\.0\.0\.1/g, '198.18.0.20'),
            );
        }
      });
      ua.on('message', (m: Buffer) => uaInbox.push(m.toString('utf8')));

      // Kamailio is ready once it relays an OPTIONS (retried: it may still be starting).
      const uaPort = ua.address().port;
      for (let i = 0; i < 100 && !uaInbox.some((s) => s.startsWith('SIP/2.0 200')); i++) {
        ua.send(
          [
            `OPTIONS sip:callee@127.0.0.1:${calleePort} SIP/2.0`,
            `Via: SIP/2.0/UDP 127.0.0.1:${uaPort};branch=z9hG4bKprobe${i};rport`,
            'Max-Forwards: 70',
            'From: <sip:probe@127.0.0.1>;tag=probe',
            `To: <sip:callee@127.0.0.1:${calleePort}>`,
            `Call-ID: ${callId.replace('pinhole-', 'probe-')}`,
            `CSeq: ${i + 1} OPTIONS`,
            'Content-Length: 0',
            '',
            '',
          ].join('\r\n'),
          kamPort,
          '127.0.0.1',
        );
        await new Promise((r) => setTimeout(r, 100));
      }
      if (!uaInbox.some((s) => s.startsWith('SIP/2.0 200'))) {
        throw new Error(`Kamailio did not relay OPTIONS; its log:\n${kam.log().slice(-3000)}`);
      }
    });

    afterAll(async () => {
      ua?.close();
      callee?.close();
      await rx?.close();
      await kam?.stop();
      await control?.close();
      await fcpd?.stop();
    });

    it('mirrors a call: every request and reply, in and out, retransmissions and in-dialog requests', async () => {
      if (!ua || !callee || !kam) throw new Error('setup failed');
      const k = kam.port;
      const uaPort = ua.address().port;
      const calleePort = callee.address().port;
      const send = (lines: string[], body = ''): string => {
        const text = [...lines, `Content-Length: ${Buffer.byteLength(body)}`, '', body].join(
          '\r\n',
        );
        ua?.send(text, k, '127.0.0.1');
        return text;
      };
      const common = [
        'Max-Forwards: 70',
        'From: "Jörg Ünal 山田" <sip:joerg@127.0.0.1>;tag=caller-tag',
        `Call-ID: ${callId}`,
      ];
      const inviteLines = [
        `INVITE sip:callee@127.0.0.1:${calleePort} SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${uaPort};branch=z9hG4bKinv1;rport`,
        ...common,
        `To: <sip:callee@127.0.0.1:${calleePort}>`,
        'CSeq: 1 INVITE',
        `Contact: <sip:joerg@127.0.0.1:${uaPort}>`,
        'Content-Type: application/sdp',
      ];
      // Wait for each step's mirrored copies before the next step: Kamailio's worker processes
      // send HEP independently, so copies of different steps could otherwise interleave.
      const mine = () => observations.filter((o) => o.message.callId() === callId);
      const copies = (n: number) => until(() => mine().length >= n, `${n} mirrored copies`);
      const invite = send(inviteLines, SDP);
      await until(
        () => uaInbox.some((s) => s.startsWith('SIP/2.0 180') && s.includes(callId)),
        '180',
      );
      // Retransmit the INVITE: Kamailio absorbs it and retransmits the 180 itself.
      send(inviteLines, SDP);
      await until(
        () => uaInbox.filter((s) => s.startsWith('SIP/2.0 180') && s.includes(callId)).length >= 2,
        'the retransmitted 180',
      );
      await copies(7);
      release200?.();
      await until(
        () => uaInbox.some((s) => s.startsWith('SIP/2.0 200') && s.includes(callId)),
        '200',
      );
      const ok = uaInbox.find((s) => s.startsWith('SIP/2.0 200') && s.includes(callId)) ?? '';
      const routes = header(ok, 'record-route').map(
        (h) => `Route: ${h.slice(h.indexOf(':') + 1).trim()}`,
      );
      expect(routes.length).toBeGreaterThan(0);
      const toWithTag = header(ok, 'to')[0] ?? '';
      const inDialog = (method: string, cseq: number, branch: string): string[] => [
        `${method} sip:callee@127.0.0.1:${calleePort} SIP/2.0`,
        `Via: SIP/2.0/UDP 127.0.0.1:${uaPort};branch=${branch};rport`,
        ...routes,
        ...common,
        toWithTag,
        `CSeq: ${cseq} ${method}`,
      ];
      await copies(9);
      // The 200's copy drove the policy and the FCP client: the callee's media has a hole.
      await until(() => (fcpd?.rules().length ?? 0) > 0, 'the pinhole for the 200');
      const rules = JSON.stringify(fcpd?.rules());
      expect(rules).toContain('198.18.0.20');
      expect(rules).toContain('50000');
      // The server holds the rule before the client has counted its reply: wait for the count.
      await until(
        () => controlMetrics.pinholes.value({ outcome: 'opened' }) > 0,
        'the opened-pinhole count',
      );
      send(inDialog('ACK', 1, 'z9hG4bKack1'));
      await until(() => calleeInbox.some((s) => s.startsWith('ACK ')), 'ACK at the callee');
      await copies(11);
      send(inDialog('BYE', 2, 'z9hG4bKbye1'));
      await until(
        () => uaInbox.some((s) => s.startsWith('SIP/2.0 200') && s.includes('2 BYE')),
        '200 to BYE',
      );
      await copies(15);
      // The BYE's copy closed it.
      await until(() => fcpd?.rules().length === 0, 'the pinhole closed after the BYE');
      // As for the open: the server drops the rule before the client has counted the reply.
      await until(
        () => controlMetrics.pinholes.value({ outcome: 'closed' }) > 0,
        'the closed-pinhole count',
      );
      expect(controlMetrics.pinholes.value({ outcome: 'failed' })).toBe(0);
      expect(controlMetrics.answerToAck.count()).toBeGreaterThan(0);

      const seen = mine().map((o) => {
        const m = o.message;
        const start = m.isRequest ? m.method : String(m.status);
        return `${o.kind === 'received-by-server' ? 'in ' : 'out'} ${start} ${m.cseq()?.method ?? ''} ${o.copy}`;
      });
      const expected = [
        'in  INVITE INVITE first',
        'out 100 INVITE first',
        'out INVITE INVITE twin',
        'in  180 INVITE first',
        'out 180 INVITE twin',
        'in  INVITE INVITE retransmission',
        'out 180 INVITE retransmission',
        'in  200 INVITE first',
        'out 200 INVITE twin',
        'in  ACK ACK first',
        'out ACK ACK twin',
        'in  BYE BYE first',
        'out BYE BYE twin',
        'in  200 BYE first',
        'out 200 BYE twin',
      ];
      // Kamailio's worker processes mirror independently, so copies of different messages may
      // swap places (a 180 mirrored by one worker before another worker's copy of the INVITE it
      // answers); the copies of one message keep their order, which is what 'copy' reflects.
      expect([...seen].sort()).toEqual([...expected].sort());
      const perKey = new Map<string, string[]>();
      for (const o of mine())
        perKey.set(o.key, [...(perKey.get(o.key) ?? []), `${o.kind} ${o.copy}`]);
      expect(perKey.size).toBe(7);
      for (const list of perKey.values()) expect(list[0]).toMatch(/ first$/);
      expect(perKey.get(mine()[0]?.key ?? '')).toEqual([
        'received-by-server first',
        'sent-by-server twin',
        'received-by-server retransmission',
      ]);

      // Addresses: in = UA or callee -> Kamailio, out = Kamailio -> UA or callee.
      const byStart = (kind: string, start: string) =>
        mine().filter(
          (o) =>
            o.kind === kind &&
            (o.message.isRequest ? o.message.method : String(o.message.status)) === start,
        );
      const inviteIn = byStart('received-by-server', 'INVITE')[0];
      const inviteOut = byStart('sent-by-server', 'INVITE')[0];
      expect(inviteIn?.src).toEqual({ address: '127.0.0.1', port: uaPort });
      expect(inviteIn?.dst).toEqual({ address: '127.0.0.1', port: k });
      expect(inviteOut?.src).toEqual({ address: '127.0.0.1', port: k });
      expect(inviteOut?.dst).toEqual({ address: '127.0.0.1', port: calleePort });
      expect(inviteIn?.transport).toBe('UDP');
      // The received copy is byte-exact what the UA sent, non-ASCII display name included.
      expect(Buffer.from(inviteIn?.bytes ?? []).equals(Buffer.from(invite, 'utf8'))).toBe(true);
      // The sent copy is what the callee got: Kamailio's Via and Record-Route on top.
      const got = calleeInbox.find((s) => s.startsWith('INVITE ')) ?? '';
      expect(Buffer.from(inviteOut?.bytes ?? []).toString('utf8')).toBe(got);
      expect(header(got, 'record-route').length).toBe(1);
      // Found by what it is, not by its place: copies of different messages may swap (above).
      const bye200Out = byStart('sent-by-server', '200').find(
        (o) => o.message.cseq()?.method === 'BYE',
      );
      expect(bye200Out?.dst).toEqual({ address: '127.0.0.1', port: uaPort });

      // Settled once per message, from the sent copy wherever there is one.
      const mySettled = settled.filter((s) => s.obs.message.callId() === callId);
      expect(
        mySettled
          .map(
            (s) =>
              `${s.obs.message.isRequest ? s.obs.message.method : s.obs.message.status} ${s.source}`,
          )
          .sort(),
      ).toEqual([
        '100 sent-copy',
        '180 sent-copy',
        '200 sent-copy',
        '200 sent-copy',
        'ACK sent-copy',
        'BYE sent-copy',
        'INVITE sent-copy',
      ]);

      // What the HEP packets themselves carried.
      const mineHep = packets.filter((p) => Buffer.from(p.payload ?? []).includes(callId));
      expect(mineHep).toHaveLength(15);
      for (const p of mineHep) {
        expect(p).toMatchObject({
          ipFamily: 2,
          ipProtocol: 17,
          protocolType: 1,
          captureId: CAPTURE_ID,
          compressed: false,
        });
        expect(Buffer.from(p.authKey ?? []).toString()).toBe(AUTH_KEY);
        expect(Math.abs((p.timeSeconds ?? 0) - Date.now() / 1000)).toBeLessThan(600);
        expect(p.otherChunks).toEqual([]);
      }
      expect(
        metrics.hepPackets.value({ transport: 'udp', type: 'sip', outcome: 'bad_auth_key' }),
      ).toBe(0);
      // Kamailio stamps every copy; the lag from its capture to our arrival is recorded.
      expect(metrics.captureLag.count()).toBeGreaterThanOrEqual(15);
    });

    it("mirrors Kamailio's own Timer A retransmission and the hop-by-hop CANCEL, 487 and ACK", async () => {
      if (!ua || !callee || !kam) throw new Error('setup failed');
      const k = kam.port;
      const uaPort = ua.address().port;
      const calleePort = callee.address().port;
      const lateCall = `late-${callId}`;
      const common = [
        'Max-Forwards: 70',
        'From: <sip:joerg@127.0.0.1>;tag=late-tag',
        `To: <sip:callee@127.0.0.1:${calleePort}>`,
        `Call-ID: ${lateCall}`,
      ];
      const via = `Via: SIP/2.0/UDP 127.0.0.1:${uaPort};branch=z9hG4bKlate1;rport`;
      const send = (lines: string[], body = ''): void => {
        const text = [...lines, `Content-Length: ${Buffer.byteLength(body)}`, '', body].join(
          '\r\n',
        );
        ua?.send(text, k, '127.0.0.1');
      };
      send(
        [
          `INVITE sip:callee@127.0.0.1:${calleePort} SIP/2.0`,
          via,
          ...common,
          'CSeq: 1 INVITE',
          `Contact: <sip:joerg@127.0.0.1:${uaPort}>`,
          'Content-Type: application/sdp',
        ],
        SDP,
      );
      // The callee ignores the first copy; Kamailio retransmits after T1 (500 ms) and the callee
      // answers that one with 180.
      await until(
        () => uaInbox.some((s) => s.startsWith('SIP/2.0 180') && s.includes(lateCall)),
        '180 after the retransmission',
      );
      send([`CANCEL sip:callee@127.0.0.1:${calleePort} SIP/2.0`, via, ...common, 'CSeq: 1 CANCEL']);
      await until(
        () => uaInbox.some((s) => s.startsWith('SIP/2.0 487') && s.includes(lateCall)),
        '487',
      );
      const r487 = uaInbox.find((s) => s.startsWith('SIP/2.0 487') && s.includes(lateCall)) ?? '';
      send([
        `ACK sip:callee@127.0.0.1:${calleePort} SIP/2.0`,
        via,
        ...common.slice(0, 2),
        header(r487, 'to')[0] ?? '',
        `Call-ID: ${lateCall}`,
        'CSeq: 1 ACK',
      ]);
      const mine = () => observations.filter((o) => o.message.callId() === lateCall);
      await until(() => mine().length >= 14, '14 mirrored copies');
      // Give a stray late copy (there should be none) a moment to arrive before counting.
      await new Promise((r) => setTimeout(r, 300));
      const seen = mine()
        .map((o) => {
          const m = o.message;
          const start = m.isRequest ? m.method : String(m.status);
          return `${o.kind === 'received-by-server' ? 'in ' : 'out'} ${start} ${m.cseq()?.method ?? ''} ${o.copy}`;
        })
        .sort();
      expect(seen).toEqual(
        [
          'in  INVITE INVITE first',
          'out 100 INVITE first',
          'out INVITE INVITE twin',
          // Timer A: Kamailio's own retransmission to the silent callee.
          'out INVITE INVITE retransmission',
          'in  180 INVITE first',
          'out 180 INVITE twin',
          'in  CANCEL CANCEL first',
          // tm answers the CANCEL itself ...
          'out 200 CANCEL first',
          // ... and sends its own CANCEL downstream (only its Via: a message of its own).
          'out CANCEL CANCEL first',
          'in  200 CANCEL first',
          'in  487 INVITE first',
          'out 487 INVITE twin',
          // The ACK for a non-2xx is hop-by-hop: tm makes one downstream, absorbs the UA's.
          'out ACK ACK first',
          'in  ACK ACK first',
        ].sort(),
      );
    });
  },
);

describe.runIf(systemTestGate('sidecar kamailio', ['kamailio']))(
  'Kamailio siptrace sending HEP3 over TCP',
  () => {
    let kam: RunningKamailio | undefined;
    let rx: HepTcpReceiver | undefined;
    let ua: Socket | undefined;
    let callee: Socket | undefined;
    const metrics = createSidecarMetrics();
    const got: { packet: HepPacket; source: HepSource }[] = [];
    const observations: SipObservation[] = [];

    afterAll(async () => {
      ua?.close();
      callee?.close();
      await rx?.close();
      await kam?.stop();
    });

    it('frames the TCP stream into packets: every copy of an OPTIONS transaction arrives', async () => {
      ua = await udp();
      callee = await udp();
      const live: { normalizer?: CaptureNormalizer } = {};
      const ingress = new HepIngress({
        captureIds: [CAPTURE_ID],
        metrics,
        onPacket: (packet, source) => {
          got.push({ packet, source });
          live.normalizer?.push(packet, source);
        },
      });
      rx = new HepTcpReceiver(ingress, metrics);
      const hep = await rx.listen({ host: '127.0.0.1', port: 0 });
      kam = await startKamailio({ hepPort: hep.port, captureId: CAPTURE_ID, hepOverTcp: true });
      const k = kam.port;
      live.normalizer = new CaptureNormalizer({
        serverAddresses: [{ address: '127.0.0.1', port: k }],
        parse,
        onObservation: (o) => observations.push(o),
      });
      const calleePort = callee.address().port;
      const uaPort = ua.address().port;
      callee.on('message', (m: Buffer, r: RemoteInfo) => {
        const s = m.toString('utf8');
        if (!s.startsWith('OPTIONS ')) return;
        const lines = [
          'SIP/2.0 200 OK',
          ...header(s, 'via'),
          ...header(s, 'from'),
          `${header(s, 'to')[0] ?? 'To: <sip:x@127.0.0.1>'};tag=tcp-callee`,
          ...header(s, 'call-id'),
          ...header(s, 'cseq'),
          'Content-Length: 0',
          '',
          '',
        ];
        callee?.send(lines.join('\r\n'), r.port, r.address);
      });
      const replies: string[] = [];
      ua.on('message', (m: Buffer) => replies.push(m.toString('utf8')));
      const callId = `tcp-${process.pid}-${Date.now()}@127.0.0.1`;
      for (let i = 0; i < 100 && replies.length === 0; i++) {
        ua.send(
          [
            `OPTIONS sip:callee@127.0.0.1:${calleePort} SIP/2.0`,
            `Via: SIP/2.0/UDP 127.0.0.1:${uaPort};branch=z9hG4bKtcp${i};rport`,
            'Max-Forwards: 70',
            'From: <sip:probe@127.0.0.1>;tag=tcp',
            `To: <sip:callee@127.0.0.1:${calleePort}>`,
            `Call-ID: ${callId}`,
            `CSeq: ${i + 1} OPTIONS`,
            'Content-Length: 0',
            '',
            '',
          ].join('\r\n'),
          k,
          '127.0.0.1',
        );
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(replies.length).toBeGreaterThan(0);
      // The last transaction is complete once its four copies are in.
      const last = () => {
        const seqs = observations.map((o) => o.message.cseq()?.seq ?? 0);
        const top = Math.max(0, ...seqs);
        return observations.filter((o) => o.message.cseq()?.seq === top);
      };
      await until(() => last().length >= 4, 'four copies of the answered OPTIONS');
      expect(
        last()
          .map(
            (o) =>
              `${o.kind} ${o.message.isRequest ? o.message.method : o.message.status} ${o.copy}`,
          )
          .sort(),
      ).toEqual([
        'received-by-server 200 first',
        'received-by-server OPTIONS first',
        'sent-by-server 200 twin',
        'sent-by-server OPTIONS twin',
      ]);
      expect(got.every((g) => g.source.transport === 'tcp')).toBe(true);
      expect(got.every((g) => g.packet.captureId === CAPTURE_ID)).toBe(true);
      expect(metrics.hepTcpConnections.value()).toBeGreaterThanOrEqual(1);
      expect(
        metrics.hepPackets.value({ transport: 'tcp', type: 'unknown', outcome: 'stream_garbage' }),
      ).toBe(0);
    });
  },
);
