#!/usr/bin/env node
/**
 * pinhole-fcpctl: a command-line FCP/1.0 client for operators and tests.
 *
 *   pinhole-fcpctl [--server tcp:127.0.0.1:12345] [--timeout MS] [--json] COMMAND [PME options]
 *
 * Exit codes: 0 the server answered 2xx; 1 it answered an error status; 2 usage error;
 * 3 no answer (connection refused, timeout, unreadable reply).
 */
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { parseArgs } from 'node:util';
import {
  ResponseDecoder,
  encodeRequest,
  reasonPhrase,
  toPme,
  type DecodedResponse,
  type FcpRequest,
  type PmeInput,
  type PortRange,
  type ResponseBodyKind,
} from '@pinhole/fcp';
import { parseEndpoint, parsePortRange } from './config.js';

const USAGE = `Usage: pinhole-fcpctl [--server tcp|udp:ADDR:PORT] [--timeout MS] [--json] COMMAND [options]

Commands:
  set        open (or keep alive) a hole     PME options, --timer SEC, --action pass|drop|reject
  release    close a hole                    PME options
  query      list holes (all, or matching)   PME options (optional)
  querynat   ask which address/port a flow uses   --src ADDR --src-port P[-Q] --proto tcp|udp
  releasenat free a QUERYNAT reservation     --src ADDR --src-port P[-Q] --proto tcp|udp

PME options:
  --proto udp|tcp|sctp|N  --dst ADDR[/LEN]  --dst-port P[-Q]  --src ADDR[/LEN]  --src-port P[-Q]

  --server   FCP server (default tcp:127.0.0.1:12345)
  --timeout  answer deadline in ms (default 5000)
  --seq      SEQ number to send (default 1)
  --json     print the decoded answer as JSON

Exit codes: 0 success (2xx), 1 error status, 2 usage error, 3 no answer.
`;

class UsageError extends Error {}

function proto(v: string | undefined): PmeInput['proto'] {
  if (v === undefined) return undefined;
  if (v === 'udp' || v === 'tcp' || v === 'sctp' || v === 'icmp') return v;
  if (/^\d{1,3}$/.test(v) && Number(v) <= 255) return Number(v);
  throw new UsageError(`--proto: unknown protocol "${v}"`);
}

function ports(v: string | undefined, flag: string): PortRange | undefined {
  if (v === undefined) return undefined;
  try {
    return parsePortRange(v, flag);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

function request(
  command: string,
  v: Record<string, string | boolean | undefined>,
  seq: number,
): FcpRequest {
  const s = (k: string): string | undefined => {
    const x = v[k];
    return typeof x === 'string' ? x : undefined;
  };
  const pmeInput: PmeInput = {
    proto: proto(s('proto')),
    src: s('src'),
    dst: s('dst'),
    srcPort: ports(s('src-port'), '--src-port'),
    dstPort: ports(s('dst-port'), '--dst-port'),
  };
  const pme = (): ReturnType<typeof toPme> => {
    try {
      return toPme(pmeInput);
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
  };
  switch (command) {
    case 'set': {
      const action = s('action') ?? 'pass';
      if (action !== 'pass' && action !== 'drop' && action !== 'reject') {
        throw new UsageError('--action must be pass, drop or reject');
      }
      const timerText = s('timer');
      if (timerText !== undefined && !/^\d{1,10}$/.test(timerText)) {
        throw new UsageError('--timer must be a number of seconds');
      }
      const timer = timerText === undefined ? undefined : Number(timerText);
      return { method: 'SET', seq, pme: pme(), options: { action, timer } };
    }
    case 'release':
      return { method: 'RELEASE', seq, pme: pme() };
    case 'query': {
      const any = ['proto', 'src', 'dst', 'src-port', 'dst-port'].some((k) => v[k] !== undefined);
      return { method: 'QUERY', seq, pme: any ? pme() : undefined };
    }
    case 'querynat':
    case 'releasenat': {
      const srcIp = s('src');
      const srcPorts = ports(s('src-port'), '--src-port');
      const p = proto(s('proto'));
      const num = p === 'udp' ? 17 : p === 'tcp' ? 6 : p;
      if (srcIp === undefined || srcPorts === undefined || (num !== 6 && num !== 17)) {
        throw new UsageError(`${command} needs --src, --src-port and --proto tcp|udp`);
      }
      return {
        method: command === 'querynat' ? 'QUERYNAT' : 'RELEASENAT',
        seq,
        nat: { srcIp, srcPorts, proto: num },
      };
    }
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

function bodyKind(req: FcpRequest): ResponseBodyKind {
  return req.method === 'QUERY' ? 'query' : req.method === 'QUERYNAT' ? 'nat' : 'none';
}

/** Sends one request and resolves with the first response (rejects on timeout or error). */
export function exchange(
  server: { transport: string; host: string; port: number },
  req: FcpRequest,
  timeoutMs: number,
): Promise<DecodedResponse> {
  const text = encodeRequest(req);
  const decoder = new ResponseDecoder(() => bodyKind(req));
  return new Promise((resolve, reject) => {
    let done = false;
    let cleanup = (): void => undefined;
    const finish = (err: Error | undefined, r?: DecodedResponse): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      cleanup();
      if (err) reject(err);
      else if (r) resolve(r);
    };
    const timer = setTimeout(
      () => finish(new Error(`no answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const feed = (chunk: Buffer): void => {
      for (const ev of decoder.push(chunk)) {
        if (ev.kind === 'response') return finish(undefined, ev.response);
        if (ev.kind === 'too-long') return finish(new Error('reply line too long'));
      }
    };
    if (server.transport === 'udp') {
      const sock = createSocket(server.host.includes(':') ? 'udp6' : 'udp4');
      cleanup = () => sock.close();
      sock.on('error', (e) => finish(e));
      // One datagram is one whole reply: finish it even without the trailing empty line.
      sock.on('message', (m) => {
        feed(m);
        if (!done) feed(Buffer.from('\r\n\r\n'));
      });
      sock.send(text, server.port, server.host);
    } else {
      const sock = connect(server.port, server.host);
      cleanup = () => sock.destroy();
      sock.on('error', (e) => finish(e));
      sock.on('data', feed);
      sock.on('end', () => finish(new Error('connection closed before the answer')));
      sock.write(text);
    }
  });
}

function human(req: FcpRequest, r: DecodedResponse): string {
  const reason = r.reason === '' ? reasonPhrase(r.status) : r.reason;
  let out = `${r.status} ${reason}\n`;
  if (r.nat) {
    const [lo, hi] = r.nat.ports;
    out += `IP=${r.nat.ip} PORT=${lo === hi ? lo : `${lo}-${hi}`}\n`;
  }
  if (req.method === 'QUERY') {
    const rules = r.rules ?? [];
    for (const rule of rules) out += `${rule.text.trim()}\n`;
    out += `(${rules.length} rule${rules.length === 1 ? '' : 's'})\n`;
  }
  return out;
}

async function main(): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: process.argv.slice(2),
      allowPositionals: true,
      strict: true,
      options: {
        server: { type: 'string', default: 'tcp:127.0.0.1:12345' },
        timeout: { type: 'string', default: '5000' },
        seq: { type: 'string', default: '1' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        proto: { type: 'string' },
        src: { type: 'string' },
        dst: { type: 'string' },
        'src-port': { type: 'string' },
        'dst-port': { type: 'string' },
        timer: { type: 'string' },
        action: { type: 'string' },
      },
    });
  } catch (e) {
    process.stderr.write(`pinhole-fcpctl: ${(e as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const v = parsed.values;
  if (v.help === true) {
    process.stdout.write(USAGE);
    return 0;
  }
  let req: FcpRequest;
  let server;
  try {
    const command = parsed.positionals[0];
    if (command === undefined || parsed.positionals.length > 1) {
      throw new UsageError('give exactly one command');
    }
    if (!/^\d{1,9}$/.test(v.seq)) throw new UsageError('--seq must be a number');
    if (!/^\d{1,7}$/.test(v.timeout)) throw new UsageError('--timeout must be milliseconds');
    try {
      server = parseEndpoint(v.server, '--server');
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    req = request(command, v, Number(v.seq));
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`pinhole-fcpctl: ${e.message}\n\n${USAGE}`);
    return 2;
  }
  let r: DecodedResponse;
  try {
    r = await exchange(server, req, Number(v.timeout));
  } catch (e) {
    process.stderr.write(`pinhole-fcpctl: ${v.server}: ${(e as Error).message}\n`);
    return 3;
  }
  const json = { ...r, rules: r.rules?.map((x) => x.text.trim()) };
  process.stdout.write(v.json === true ? `${JSON.stringify(json)}\n` : human(req, r));
  return r.status >= 200 && r.status <= 299 ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`pinhole-fcpctl: ${(e as Error).stack ?? String(e)}\n`);
    process.exitCode = 3;
  },
);
