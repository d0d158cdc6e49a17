/**
 * The controller against a real FCP server (@pinhole/fcp's FcpServer with its MemoryBackend) over
 * loopback TCP, through the real FcpClient: what the proxy and the sidecar run in production,
 * minus nftables.
 */
import { createServer, type Socket } from 'node:net';
import { FcpClient, FcpServer, MemoryBackend } from '@pinhole/fcp';
import { Policy } from '@pinhole/policy';
import { afterEach, describe, expect, it } from 'vitest';
import { PinholeController } from '../src/controller.js';
import { ALICE, BOB, PROTECTED, answer, bye, invite, sdp } from '../src/test-messages.js';

const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(
  serverPolicy: { protectedPorts?: (number | [number, number])[] } = {},
): Promise<{ server: FcpServer; client: FcpClient; control: PinholeController }> {
  const server = new FcpServer(
    {
      listen: [{ transport: 'tcp', host: '127.0.0.1', port: 0 }],
      policy: { protectedNetworks: [PROTECTED], ownAddresses: ['198.18.0.1'], ...serverPolicy },
    },
    new MemoryBackend(),
  );
  await server.start();
  cleanups.push(() => server.stop());
  const port = server.addresses()[0]?.port ?? 0;
  return { server, ...(await controllerOn(port, 1000, 'closed', 5000)) };
}

/** An FcpClient on 127.0.0.1:`port` and a controller driving it; both closed after the test. */
async function controllerOn(
  port: number,
  requestTimeoutMs: number,
  failMode: 'open' | 'closed',
  deadlineMs: number,
): Promise<{ client: FcpClient; control: PinholeController }> {
  const client = new FcpClient({
    servers: [{ host: '127.0.0.1', port }],
    keepAlive: false,
    requestTimeoutMs,
  });
  cleanups.push(() => client.close());
  await client.ready(5000);
  const control = new PinholeController({
    policy: new Policy({ protectedNetworks: [PROTECTED] }),
    fcp: client,
    sweepMs: 0,
    failMode,
    deadlineMs,
  });
  cleanups.push(() => control.close());
  return { client, control };
}

async function secondClient(server: FcpServer): Promise<FcpClient> {
  const client = new FcpClient({
    servers: [{ host: '127.0.0.1', port: server.addresses()[0]?.port ?? 0 }],
    keepAlive: false,
    requestTimeoutMs: 1000,
  });
  cleanups.push(() => client.close());
  await client.ready(5000);
  return client;
}

describe('PinholeController with FcpClient and FcpServer (MemoryBackend, loopback TCP)', () => {
  it('opens the holes an answer needs before the hold releases it, with the policy TIMER', async () => {
    const { server, control } = await setup();
    control.handle({ type: 'sip', message: invite('e1', sdp(ALICE, 4000)) });
    const exec = control.handle({ type: 'sip', message: answer('e1', sdp(BOB, 5000)) });
    const verdict = await control.hold(exec, { context: { callId: 'e1' } });
    expect(verdict).toMatchObject({ action: 'relay', outcome: 'acknowledged' });
    // Acknowledged means installed: the rules are in the firewall when the hold releases.
    const rules = server.rules();
    expect(rules.map((r) => r.key).sort()).toHaveLength(2);
    const open = exec.result.intents[0];
    expect(open?.kind).toBe('open');
    expect(rules[0]?.timerSec).toBe(open?.kind === 'open' ? open.timerSec : -1);
  });

  it('releases the holes at BYE', async () => {
    const { server, control } = await setup();
    control.handle({ type: 'sip', message: invite('e2', sdp(ALICE, 4000)) });
    await control.settled(control.handle({ type: 'sip', message: answer('e2', sdp(BOB, 5000)) }));
    expect(server.liveRules).toBe(2);
    const exec = control.handle({ type: 'sip', message: bye('e2') });
    expect(await Promise.all(exec.releases)).toEqual([true, true]);
    expect(server.liveRules).toBe(0);
  });

  it('counts a RELEASE of holes the firewall no longer has as expired, not failed', async () => {
    const { server, client } = await setup();
    const outcomes: string[] = [];
    const counting = new PinholeController({
      policy: new Policy({ protectedNetworks: [PROTECTED] }),
      fcp: client,
      sweepMs: 0,
      metrics: { pinhole: (o) => outcomes.push(o) },
    });
    cleanups.push(() => counting.close());
    counting.handle({ type: 'sip', message: invite('e5', sdp(ALICE, 4000)) });
    await counting.settled(counting.handle({ type: 'sip', message: answer('e5', sdp(BOB, 5000)) }));
    expect(server.liveRules).toBe(2);
    // The rules vanish at the firewall first (as when their TIMER runs out there): another
    // client releases them.
    const other = await secondClient(server);
    for (const r of server.rules()) expect((await other.release(r.pme)).ok).toBe(true);
    expect(server.liveRules).toBe(0);
    // The server answers the controller's RELEASEs 400 "no matching rule found to release".
    const exec = counting.handle({ type: 'sip', message: bye('e5') });
    expect(await Promise.all(exec.releases)).toEqual([true, true]);
    expect(outcomes).toEqual(['opened', 'opened', 'expired', 'expired']);
  });

  it('fails the held answer when the firewall refuses a hole (fail mode closed)', async () => {
    // The FCP server protects ports 5000-5001: its own safety policy refuses the SETs.
    const { server, control } = await setup({ protectedPorts: [[5000, 5001]] });
    control.handle({ type: 'sip', message: invite('e3', sdp(ALICE, 4000)) });
    const exec = control.handle({ type: 'sip', message: answer('e3', sdp(BOB, 5000)) });
    expect(await control.hold(exec)).toMatchObject({ action: 'fail', outcome: 'refused' });
    expect(server.liveRules).toBe(0);
  });

  it('lets the fail mode decide when the firewall does not answer before the deadline', async () => {
    // A TCP peer that accepts the connection and never answers: a stuck firewall daemon.
    const sockets: Socket[] = [];
    const silent = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    cleanups.push(async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
    });
    const address = silent.address();
    const port = typeof address === 'object' && address ? address.port : 0;
    const { control } = await controllerOn(port, 300, 'open', 20);
    control.handle({ type: 'sip', message: invite('e4', sdp(ALICE, 4000)) });
    const exec = control.handle({ type: 'sip', message: answer('e4', sdp(BOB, 5000)) });
    expect(await control.hold(exec)).toMatchObject({ action: 'relay', outcome: 'deadline' });
    // The SETs still end (failed at the client's request deadline); nothing is left in flight.
    expect(await Promise.all(exec.sets)).toEqual([false, false]);
    await control.idle();
    expect(control.inFlight).toBe(0);
  });
});
