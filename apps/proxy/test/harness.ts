/**
 * Test harness for the end-to-end tests: the proxy binary and sipp run inside namespaces, the
 * proxy's JSON log lines are collected (testkit's JsonLogProcess), and a media streamer records
 * what it sent. The firewall's pinhole count and `sleep` are testkit's too.
 */
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { startFcpd, type FcpdHandle } from '@pinhole/fcpd';
import { pino } from 'pino';
import {
  cleanupNetns,
  createRoutedTopology,
  holeCount,
  JsonLogProcess,
  liveNetns,
  run,
  sipp,
  UdpAgent,
  type Netns,
  type RoutedTopology,
  type SippResult,
} from '@pinhole/testkit';

export const SCENARIOS: string = fileURLToPath(new URL('./scenarios/', import.meta.url));
export const CLI: string = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

/**
 * A separate fcpd on a loopback port with the memory backend (no kernel, no root), protecting
 * the callee's side (198.19.0.0/16): the `--fcp` target of the tests that run on loopback.
 */
export function startMemoryFcpd(): Promise<FcpdHandle> {
  return startFcpd(
    {
      listen: [{ transport: 'tcp', host: '127.0.0.1', port: 0 }],
      backend: 'memory',
      protected: ['198.19.0.0/16'],
      logLevel: 'silent',
    },
    { logger: pino({ level: 'silent' }) },
  );
}

/** The proxy binary in `ns`, its JSON log lines collected (testkit's JsonLogProcess). */
export function startProxyProcess(ns: Netns, args: readonly string[]): JsonLogProcess {
  return JsonLogProcess.inNetns(ns, process.execPath, [CLI, ...args]);
}

/** The e2e topology's addresses (testkit's routed topology): caller, callee, the protected
 * inside network, and the proxy's SIP listener on the firewall's outside address. */
export const CALLER = '198.18.1.2';
export const CALLEE = '198.19.1.2';
export const INSIDE_NET = '198.19.1.0/24';
export const PROXY = '198.18.1.1:5060';

/** An end-to-end setup: the routed topology, the proxy in its firewall namespace, and UDP
 * agents in the caller's and the callee's namespaces. */
export interface E2e {
  readonly topo: RoutedTopology;
  readonly proxy: JsonLogProcess;
  readonly caller: UdpAgent;
  readonly callee: UdpAgent;
}

/**
 * Creates the topology, starts the proxy with `args` in the firewall namespace (waiting for its
 * `pinhole-proxy listening` line) and binds the media agents: the callee's on `calleePorts` of
 * its address, the caller's on `callerPorts` of its own.
 */
export async function startE2e(
  args: readonly string[],
  callerPorts: readonly number[],
  calleePorts: readonly number[],
): Promise<E2e> {
  const topo = await createRoutedTopology();
  const proxy = startProxyProcess(topo.router, args);
  const up = await proxy.waitFor((l) => l.msg.startsWith('pinhole-proxy listening'), 30_000);
  if (!up) throw new Error(`proxy did not start: ${proxy.stderr.join('\n')}`);
  const caller = UdpAgent.start(topo.outside);
  const callee = UdpAgent.start(topo.inside);
  for (const p of calleePorts) await callee.bind(topo.insideAddr, p);
  for (const p of callerPorts) await caller.bind(topo.outsideAddr, p);
  return { topo, proxy, caller, callee };
}

/** Stops and removes whatever of an `E2e` is still there (afterAll). */
export async function stopE2e(e: Partial<E2e> | undefined): Promise<void> {
  await e?.caller?.close();
  await e?.callee?.close();
  await e?.proxy?.stop();
  await e?.topo?.destroy();
  await cleanupNetns();
}

/** The last test of an e2e suite: no pinhole left, the proxy exits 0, every namespace gone. */
export async function expectNothingLeft(e: E2e): Promise<void> {
  const names = liveNetns();
  expect(await holeCount(e.topo.router)).toBe(0);
  expect(await e.proxy.stop()).toBe(0);
  await stopE2e(e);
  expect(liveNetns()).toEqual([]);
  const { stdout } = await run('ip', ['netns', 'list']);
  for (const n of names) expect(stdout).not.toContain(n);
}

/** UAS in `ns` on ip:5060, SDP media port `mport`. */
export function uas(
  ns: Netns,
  ip: string,
  scenario: string,
  extra: readonly string[] = [],
  timeoutMs = 60_000,
): Promise<SippResult> {
  return sipp(
    ns,
    ['-sf', `${SCENARIOS}${scenario}`, '-i', ip, '-p', '5060', '-mp', '16000', '-m', '1', ...extra],
    timeoutMs,
  );
}

/** UAC in `ns` calling `callee` through the proxy at `proxy`. */
export function uac(
  ns: Netns,
  ip: string,
  proxy: string,
  scenario: string,
  extra: readonly string[] = [],
  timeoutMs = 60_000,
): Promise<SippResult> {
  const port = extra.includes('-p') ? [] : ['-p', '5060'];
  const service = extra.includes('-s') ? [] : ['-s', 'callee'];
  const mp = extra.includes('-mp') ? [] : ['-mp', extra.includes('-p') ? '16200' : '16000'];
  return sipp(
    ns,
    [
      proxy,
      '-sf',
      `${SCENARIOS}${scenario}`,
      '-i',
      ip,
      ...port,
      ...mp,
      '-m',
      '1',
      ...service,
      ...extra,
    ],
    timeoutMs,
  );
}

const STREAMER = `
const dgram = require('node:dgram');
const [host, port, ms, every] = process.argv.slice(1);
const s = dgram.createSocket('udp4');
const sent = [];
let seq = 0;
const end = Date.now() + Number(ms);
const tick = () => {
  if (Date.now() >= end) {
    process.stdout.write(JSON.stringify(sent) + '\\n');
    s.close();
    return;
  }
  const t = Date.now();
  const n = ++seq;
  sent.push([n, t]);
  s.send('rtp ' + n + ' ' + t, Number(port), host);
  setTimeout(tick, Number(every));
};
tick();
`;

/** Sends `rtp <seq> <time>` every `everyMs` for `ms`; resolves with [seq, sendTime] pairs. */
export function stream(
  ns: Netns,
  host: string,
  port: number,
  ms: number,
  everyMs = 2,
): Promise<[number, number][]> {
  const child = ns.spawn(process.execPath, [
    '-e',
    STREAMER,
    host,
    String(port),
    String(ms),
    String(everyMs),
  ]);
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve) => {
    child.once('exit', () => {
      try {
        resolve(JSON.parse(out) as [number, number][]);
      } catch {
        resolve([]);
      }
    });
  });
}
