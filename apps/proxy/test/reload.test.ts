/**
 * SIGHUP reloads the policy settings too (app.reload is what the CLI's SIGHUP handler calls):
 * live calls are re-decided under the new rules, and an invalid policy is refused as a whole.
 */
import { parse, type SipMessage } from '@pinhole/sip';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { startApp, type AppHandle } from '../src/app.js';
import { parseArgs } from '../src/config.js';
import { sdp } from './core-harness.js';

function msg(text: string): SipMessage {
  const r = parse(text);
  if (!r.ok) throw new Error(r.error.reason);
  return r.message;
}

const head = (first: string, to: string, cseq: string): string[] => [
  first,
  'Via: SIP/2.0/UDP 198.18.0.2:5062;branch=z9hG4bKrl1',
  'From: <sip:alice@198.18.0.2>;tag=a1',
  `To: <sip:bob@198.19.0.2>${to}`,
  'Call-ID: reload-1',
  `CSeq: ${cseq}`,
];

function withBody(lines: string[], body: string): SipMessage {
  return msg(
    [...lines, 'Content-Type: application/sdp', `Content-Length: ${body.length}`, '', body].join(
      '\r\n',
    ),
  );
}

describe('configuration reload (SIGHUP)', () => {
  const apps: AppHandle[] = [];
  afterAll(async () => {
    for (const a of apps) await a.stop();
  });

  const args = ['--listen', 'udp:127.0.0.1:0', '--route', 'default=sip:127.0.0.1:9'];

  it('applies new policy settings: holes the new protected networks no longer cover are released', async () => {
    const { config } = parseArgs([...args, '--protected', '198.19.0.0/16']);
    const app = await startApp({
      config,
      logger: pino({ level: 'silent' }),
      embeddedBackend: 'memory',
    });
    apps.push(app);
    const control = app.firewall.control;
    control.handle({
      type: 'sip',
      message: withBody(
        [...head('INVITE sip:bob@198.19.0.2 SIP/2.0', '', '1 INVITE'), 'Max-Forwards: 70'],
        sdp('198.18.0.2', 41000),
      ),
    });
    const ok = control.handle({
      type: 'sip',
      message: withBody(head('SIP/2.0 200 OK', ';tag=b1', '1 INVITE'), sdp('198.19.0.2', 40000)),
    });
    expect(await control.settled(ok)).toBe(true);
    expect(app.fcpd?.server.liveRules).toBe(2);

    const next = parseArgs([...args, '--protected', '198.20.0.0/16']).config;
    await app.reload(next);
    await control.idle();
    expect(control.policy.config.protectedNetworks.map((p) => p.address.text)).toEqual([
      '198.20.0.0',
    ]);
    expect(app.fcpd?.server.liveRules).toBe(0);
  });

  it('refuses an invalid policy and keeps the old settings', async () => {
    const { config } = parseArgs([...args, '--protected', '198.19.0.0/16']);
    const app = await startApp({
      config,
      logger: pino({ level: 'silent' }),
      embeddedBackend: 'memory',
    });
    apps.push(app);
    const bad = parseArgs([...args, '--protected', '198.19.0.0/16', '--policy', '{"ports":"x"}']);
    await expect(app.reload(bad.config)).rejects.toMatchObject({ code: 'PROXY_ERR_CONFIG' });
    expect(app.firewall.control.policy.config.protectedNetworks[0]?.address.text).toBe(
      '198.19.0.0',
    );
  });
});
