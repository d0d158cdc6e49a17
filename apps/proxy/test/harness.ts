/**
 * Test harness for the end-to-end tests: the proxy binary and sipp run inside namespaces, the
 * proxy's JSON log lines are collected (testkit's JsonLogProcess), and a media streamer records
 * what it sent. The firewall's pinhole count and `sleep` are testkit's too.
 */
import { fileURLToPath } from 'node:url';
import { JsonLogProcess, sipp, type Netns, type SippResult } from '@pinhole/testkit';

export const SCENARIOS: string = fileURLToPath(new URL('./scenarios/', import.meta.url));
export const CLI: string = fileURLToPath(new URL('../dist/cli.js', import.meta.url));

/** The proxy binary in `ns`, its JSON log lines collected (testkit's JsonLogProcess). */
export function startProxyProcess(ns: Netns, args: readonly string[]): JsonLogProcess {
  return JsonLogProcess.inNetns(ns, process.execPath, [CLI, ...args]);
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
