/**
 * The daemon end to end over loopback (memory backend, so no root needed): abuse, metrics,
 * fcpctl, the CLI's exit codes. The FCP core's own tests cover the protocol in depth; these
 * check that the daemon wires it up and survives hostile clients.
 */
import { createSocket } from 'node:dgram';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { FcpClient } from '@pinhole/fcp';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFcpd, type FcpdHandle } from '../src/index.js';
import { CLI, fcpctl, startDaemon, stopDaemon } from './helpers.js';
import { execFile } from 'node:child_process';

const silent = pino({ level: 'silent' });

function setText(seq: number, dst: string, port: number | string, timer = 30): string {
  return `SET FCP=1.0 SEQ=${seq}\r\nPME PROTO=17; DSTIP=${dst}; DSTPORT=${port};\r\nSOPT ACTION=pass; TIMER=${timer};\r\n\r\n`;
}

/** A raw FCP connection that collects reply lines. */
class Raw {
  readonly sock: Socket;
  text = '';
  closed = false;
  constructor(port: number, host = '127.0.0.1', localAddress?: string) {
    this.sock = connect({ port, host, localAddress });
    this.sock.setEncoding('latin1');
    this.sock.on('data', (d: string) => (this.text += d));
    this.sock.on('close', () => (this.closed = true));
    this.sock.on('error', () => undefined);
  }
  send(s: string | Buffer): void {
    this.sock.write(s);
  }
  /** Status lines received so far (`FCP=1.0 SEQ=n CODE ...`). */
  statuses(): string[] {
    return this.text.split(/\r?\n/).filter((l) => /^FCP=1\.0 SEQ=\d+ \d{3}/.test(l));
  }
  async waitStatuses(n: number, ms = 10_000): Promise<string[]> {
    const until = Date.now() + ms;
    while (this.statuses().length < n && !this.closed && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 10));
    }
    return this.statuses();
  }
  async waitClosed(ms = 5000): Promise<boolean> {
    const until = Date.now() + ms;
    while (!this.closed && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    return this.closed;
  }
  end(): void {
    this.sock.destroy();
  }
}

function httpGet(
  host: string,
  port: number,
  path: string,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('pinhole-fcpd over loopback (memory backend)', () => {
  let d: FcpdHandle;
  let port: number;
  let udpPort: number;

  beforeAll(async () => {
    d = await startFcpd(
      {
        listen: [
          { transport: 'tcp', host: '127.0.0.1', port: 0 },
          { transport: 'udp', host: '127.0.0.1', port: 0 },
        ],
        backend: 'memory',
        protected: ['198.19.0.0/16'],
        // 127.0.0.2 is loopback but not admitted: the "unauthorized client".
        allowClients: ['127.0.0.1/32'],
        mediaPorts: [1024, 65535],
        metrics: { host: '127.0.0.1', port: 0 },
        limits: { maxRulesPerClient: 10_000, ratePerSec: 0 },
        policy: { protectedPorts: [5060] },
      },
      { logger: silent },
    );
    port = d.addresses[0]?.port ?? 0;
    udpPort = d.addresses[1]?.port ?? 0;
  });

  afterAll(async () => {
    await d.close();
  });

  it('binds the requested listeners on OS-chosen ports', () => {
    expect(d.addresses.map((a) => a.transport)).toEqual(['tcp', 'udp']);
    expect(port).toBeGreaterThan(0);
    expect(d.backend.enforces).toBe(false);
  });

  it('answers 401 to a client outside the ACL and keeps serving others', async () => {
    const intruder = new Raw(port, '127.0.0.1', '127.0.0.2');
    intruder.send(setText(1, '198.19.1.2', 40000));
    const s = await intruder.waitStatuses(1);
    expect(s[0]).toMatch(/ 401 /);
    intruder.end();
    const good = new Raw(port);
    good.send(setText(2, '198.19.1.2', 40000));
    expect((await good.waitStatuses(1))[0]).toMatch(/SEQ=2 200 /);
    good.send('RELEASE FCP=1.0 SEQ=3\r\nPME PROTO=17; DSTIP=198.19.1.2; DSTPORT=40000;\r\n\r\n');
    expect((await good.waitStatuses(2))[1]).toMatch(/SEQ=3 200 /);
    good.end();
  });

  it('refuses forbidden destinations and ports with 403', async () => {
    const c = new Raw(port);
    c.send(setText(1, '203.0.113.9', 40000)); // outside the protected networks
    c.send(setText(2, '198.19.1.2', 22)); // below the media ports
    c.send(setText(3, '198.19.1.2', 5060)); // a protected port
    c.send('SET FCP=1.0 SEQ=4\r\nPME PROTO=17; DSTPORT=40000;\r\nSOPT ACTION=pass;\r\n\r\n'); // no DSTIP
    c.send(setText(5, '198.19.1.2', '1024-65535')); // the whole range
    const s = await c.waitStatuses(5);
    expect(s).toHaveLength(5);
    for (const line of s) expect(line).toMatch(/ 403 Forbidden/);
    c.end();
    expect(d.server.liveRules).toBe(0);
  });

  it('survives an over-long request and garbage bytes; other clients do not notice', async () => {
    const other = new Raw(port);
    const long = new Raw(port);
    long.send(`SET FCP=1.0 SEQ=1\r\nPME ${'PROTO=17; '.repeat(5000)}`);
    const garbage = new Raw(port);
    const bytes = Buffer.alloc(4096);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 131 + 7) % 256;
    garbage.send(bytes);
    garbage.send('\r\n\r\n\x00\xff\r\n\r\nSET\r\n\r\n');
    // Each gets an error reply or a closed connection, never a crash.
    expect(await long.waitClosed()).toBe(true);
    await garbage.waitStatuses(1, 2000);
    expect(garbage.closed || garbage.statuses().every((l) => / 4\d\d /.test(l))).toBe(true);
    other.send(setText(9, '198.19.1.3', 40000));
    expect((await other.waitStatuses(1))[0]).toMatch(/SEQ=9 200 /);
    other.send('RELEASE FCP=1.0 SEQ=10\r\nPME PROTO=17; DSTIP=198.19.1.3; DSTPORT=40000;\r\n\r\n');
    await other.waitStatuses(2);
    for (const c of [other, long, garbage]) c.end();
  });

  it('stops one client at its quota of 10,000 live rules', async () => {
    const c = new Raw(port);
    const n = 10_001;
    let batch = '';
    for (let i = 0; i < n; i++) {
      batch += setText(i + 1, `198.19.${Math.floor(i / 250)}.${(i % 250) + 1}`, 40000);
      if (batch.length > 60_000) {
        c.send(batch);
        batch = '';
      }
    }
    c.send(batch);
    const s = await c.waitStatuses(n, 60_000);
    expect(s).toHaveLength(n);
    expect(s.slice(0, 10_000).every((l) => / 200 OK/.test(l))).toBe(true);
    expect(s[10_000]).toMatch(/SEQ=10001 403 /);
    expect(d.server.liveRules).toBe(10_000);
    // Closing the connection does not release rules: they live until RELEASE or TIMER.
    c.end();
    expect(d.server.liveRules).toBe(10_000);
  });

  it('answers over UDP', async () => {
    const sock = createSocket('udp4');
    const reply = await new Promise<string>((resolve) => {
      sock.on('message', (m) => resolve(m.toString('latin1')));
      sock.send(
        'QUERY FCP=1.0 SEQ=77\r\nPME PROTO=17; DSTIP=198.19.0.1; DSTPORT=40000;\r\n\r\n',
        udpPort,
        '127.0.0.1',
      );
    });
    sock.close();
    expect(reply).toMatch(/^FCP=1\.0 SEQ=77 200 OK/);
    expect(reply).toContain('DSTIP=198.19.0.1');
  });

  it('serves Prometheus metrics', async () => {
    const m = d.metricsAddress!;
    const { status, body } = await httpGet(m.host, m.port, '/metrics');
    expect(status).toBe(200);
    expect(body).toContain('# TYPE fcpd_live_rules gauge');
    expect(body).toMatch(/^fcpd_live_rules 10000$/m);
    expect(body).toMatch(/^fcpd_requests_total\{method="SET",code="200"\} \d+$/m);
    expect(body).toMatch(/^fcpd_requests_total\{method="SET",code="403"\} \d+$/m);
    expect(body).toContain('fcpd_request_duration_seconds_bucket{method="SET",le="+Inf"}');
    expect(body).toContain('fcpd_backend_duration_seconds_count{op="install"}');
    expect(body).toMatch(/^fcpd_refusals_total\{reason="acl"\} [1-9]/m);
    expect(body).toMatch(/^fcpd_refusals_total\{reason="quota"\} [1-9]/m);
    expect(body).toMatch(/^fcpd_backend_enforces 0$/m);
    expect((await httpGet(m.host, m.port, '/nope')).status).toBe(404);
  });

  it('works with the pipelined FcpClient', async () => {
    const client = new FcpClient({ servers: [{ host: '127.0.0.1', port }], keepAlive: false });
    await client.ready();
    const r = await client.set(
      { proto: 'udp', dst: '198.19.200.1', dstPort: [40000, 40001] },
      { timer: 30 },
    );
    // This client is the same owner (127.0.0.1) that is at its quota.
    expect(r.ok).toBe(false);
    expect(r.outcomes[0]?.status).toBe(403);
    client.close();
  });
});

describe('pinhole-fcpd and pinhole-fcpctl as processes', () => {
  it('serves fcpctl set, query, querynat and release, with exit codes', async () => {
    const fcpd = await startDaemon([
      '--listen',
      'tcp:127.0.0.1:0',
      '--backend',
      'memory',
      '--protected',
      '198.19.0.0/16',
    ]);
    try {
      const warn = fcpd.logs.find((l) => String(l.msg).includes('ENFORCES NOTHING'));
      expect(warn?.level).toBe(40);
      const ctl = (...a: string[]) => fcpctl(['--server', fcpd.server, ...a]);
      const pme = ['--proto', 'udp', '--dst', '198.19.1.2', '--dst-port', '40000-40001'];
      let r = await ctl('set', ...pme, '--timer', '30');
      expect([r.code, r.stdout]).toEqual([0, '200 OK\n']);
      r = await ctl('set', ...pme, '--timer', '30');
      expect([r.code, r.stdout]).toEqual([0, '201 Keeping Alive\n']);
      r = await ctl('query');
      expect(r.stdout).toContain('DSTIP=198.19.1.2; DSTPORT=40000-40001;');
      expect(r.stdout).toContain('(1 rule)');
      r = await ctl('querynat', '--src', '198.19.1.2', '--src-port', '4000-4001', '--proto', 'udp');
      expect(r.stdout).toContain('IP=198.19.1.2 PORT=4000-4001');
      r = await ctl('release', ...pme);
      expect(r.code).toBe(0);
      r = await ctl('release', ...pme);
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(/^400 /);
      r = await ctl('set', '--proto', 'udp', '--dst', '8.8.8.8', '--dst-port', '5000');
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(/^403 Forbidden/);
      r = await ctl('frobnicate');
      expect(r.code).toBe(2);
      const closed = await fcpctl(['--server', 'tcp:127.0.0.1:1', '--timeout', '2000', 'query']);
      expect(closed.code).toBe(3);
    } finally {
      expect(await stopDaemon(fcpd, 'SIGTERM')).toBe(0);
    }
  });

  it('exits 2 naming the field of a bad configuration', async () => {
    const res = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        [CLI, '--backend', 'memory', '--media-ports', '70000'],
        (err, _o, stderr) =>
          resolve({ code: typeof err?.code === 'number' ? err.code : 0, stderr }),
      );
    });
    expect(res.code).toBe(2);
    expect(res.stderr).toContain('--media-ports');
  });
});
