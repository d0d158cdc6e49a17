/**
 * RFC 4475 torture messages sent at the proxy over loopback UDP, byte-exact from the shared
 * corpus: the answers the RFC expects of a proxy (400 with a reason, 505, 416, 420, 483),
 * silence for responses and unanswerable garbage, normal forwarding for the valid ones.
 */
import { createSocket, type Socket } from 'node:dgram';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseArgs } from '../src/config.js';
import { callIdOf } from '../src/dispatch.js';
import { startProxy, type RunningProxy } from '../src/proxy.js';

const CORPUS = fileURLToPath(new URL('../../../../shared/corpora/rfc4475/', import.meta.url));

const quiet = { info: () => {}, warn: () => {}, debug: () => {}, error: () => {} };

/** What the proxy must do with each file: a status (or list of acceptable ones), 'silent', or 'forward'. */
const EXPECT: Readonly<
  Record<string, number | readonly number[] | 'silent' | 'forward' | 'not-400'>
> = {
  // 3.1.1 valid messages: processed normally (forwarded by the default route).
  // Its Route names a host that does not resolve here: processed normally, answered 503.
  'wsinv.dat': 'not-400',
  'intmeth.dat': 'forward',
  'esc01.dat': 'forward',
  'escnull.dat': 'forward',
  'esc02.dat': 'forward',
  'lwsdisp.dat': 'forward',
  'longreq.dat': 'forward',
  'dblreq.dat': 'forward',
  'semiuri.dat': 'forward',
  'transports.dat': 'forward',
  // Routed by its Route header to 127.0.0.1:5080, not to the default route.
  'mpart01.dat': 'not-400',
  'unreason.dat': 'silent',
  'noreason.dat': 'silent',
  // 3.1.2 invalid messages.
  'badinv01.dat': 400,
  'clerr.dat': 400,
  'ncl.dat': [400, 0],
  'scalar02.dat': 400,
  'scalarlg.dat': 'silent',
  'quotbal.dat': 400,
  'ltgtruri.dat': 400,
  'lwsruri.dat': 400,
  'lwsstart.dat': 400,
  'trws.dat': 400,
  'escruri.dat': [400, -1],
  // "may reject": @pinhole/sip's validate does (RFC 3261 §20.17 allows only GMT).
  'baddate.dat': [400, -1],
  'regbadct.dat': 400,
  'badaspec.dat': 400,
  'baddn.dat': 400,
  'badvers.dat': 505,
  'mismatch01.dat': 400,
  'mismatch02.dat': [501, 400],
  'bigcode.dat': 'silent',
  // 3.2 and 3.3.
  'badbranch.dat': 'not-400',
  'insuf.dat': 400,
  'unkscm.dat': 416,
  'novelsc.dat': [416, 404],
  'unksm2.dat': 'not-400',
  'bext01.dat': 420,
  'invut.dat': 'forward',
  'regaut01.dat': 'forward',
  'multi01.dat': 400,
  'mcl01.dat': [400, 0],
  'bcast.dat': 'silent',
  'zeromf.dat': 483,
  'cparam01.dat': 'forward',
  // cparam02 and regescrt reuse cparam01's branch and sent-by: by RFC 3261 §17.2.3 they match
  // its server transaction, so the proxy answers them as retransmissions, never with a 400.
  'cparam02.dat': 'not-400',
  'regescrt.dat': 'not-400',
  'sdp01.dat': 'not-400',
  'inv2543.dat': 'forward',
  'test.dat': [400, 0],
};

describe.runIf(existsSync(CORPUS))('RFC 4475 torture tests against the proxy', () => {
  let proxy: RunningProxy;
  let client: Socket;
  let hole: Socket;
  const allAnswers: Buffer[] = [];
  const allForwarded: Buffer[] = [];

  beforeAll(async () => {
    hole = createSocket('udp4');
    await new Promise<void>((r) => hole.bind(0, '127.0.0.1', r));
    hole.on('message', (m) => allForwarded.push(m));
    const { config } = parseArgs([
      '--listen',
      'udp:127.0.0.1:0',
      '--route',
      `default=sip:127.0.0.1:${hole.address().port}`,
    ]);
    proxy = await startProxy({ config, logger: quiet });
    client = createSocket('udp4');
    await new Promise<void>((r) => client.bind(0, '127.0.0.1', r));
    client.on('message', (m) => allAnswers.push(m));
  });

  afterAll(async () => {
    await proxy?.stop();
    client?.close();
    hole?.close();
  });

  it('covers every file of the corpus', () => {
    const files = readFileSafe();
    expect(Object.keys(EXPECT).sort()).toEqual(files);
  });

  for (const [file, want] of Object.entries(EXPECT)) {
    it(`${file}: ${Array.isArray(want) ? want.join(' or ') : String(want)}`, async () => {
      allAnswers.length = 0;
      allForwarded.length = 0;
      const bytes = readFileSync(`${CORPUS}${file}`);
      const port = proxy.listeners[0]!.port;
      client.send(bytes, port, '127.0.0.1');
      await new Promise((r) => setTimeout(r, 250));
      // Earlier files' INVITEs are still being retransmitted: look at this file's Call-ID only.
      const callId = callIdOf(bytes);
      const mine = (b: Buffer): boolean =>
        callId === undefined || b.toString('latin1').includes(callId);
      const answers = allAnswers.filter(mine);
      const forwarded = allForwarded.filter(mine);
      const finals = answers
        .map((a) => /^SIP\/2\.0 (\d{3})/.exec(a.toString('latin1'))?.[1])
        .map(Number)
        .filter((s) => s >= 200);
      const status = finals[0];
      if (want === 'silent') {
        expect(answers).toHaveLength(0);
        expect(forwarded).toHaveLength(0);
      } else if (want === 'forward') {
        expect(finals).not.toContain(400);
        expect(forwarded.length).toBeGreaterThan(0);
      } else if (want === 'not-400') {
        expect(finals).not.toContain(400);
      } else {
        const ok = Array.isArray(want) ? want : [want];
        // 0: silence is acceptable; -1: forwarding is acceptable.
        const outcome = status ?? (forwarded.length > 0 ? -1 : 0);
        expect(ok).toContain(outcome);
        if (status === 400) {
          const line = answers.find((a) => a.toString('latin1').startsWith('SIP/2.0 400'))!;
          // 400 carries a reason that says what is wrong.
          expect(line.toString('latin1').split('\r\n')[0]!.length).toBeGreaterThan(
            'SIP/2.0 400 '.length,
          );
        }
        if (status === 420) {
          expect(answers.some((a) => /\r\nUnsupported: /i.test(a.toString('latin1')))).toBe(true);
        }
      }
    });
  }
});

function readFileSafe(): string[] {
  return readFileSync(`${CORPUS}../MANIFEST.tsv`, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('rfc4475\t'))
    .map((l) => l.split('\t')[1]!)
    .sort();
}
