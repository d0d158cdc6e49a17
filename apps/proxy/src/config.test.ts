import { describe, expect, it } from 'vitest';
import {
  configFromObject,
  DEFAULT_CONFIG,
  parseArgs,
  parseCidr,
  parseFcp,
  parseListen,
  parseRoute,
  sameListeners,
} from './config.js';

function errorOf(fn: () => unknown): { code: string; field: string; message: string } {
  try {
    fn();
  } catch (err) {
    return err as { code: string; field: string; message: string };
  }
  throw new Error('expected an error');
}

describe('config: listen addresses', () => {
  it('parses udp, tcp, IPv4 and bracketed IPv6', () => {
    expect(parseListen('f', 'udp:0.0.0.0:5060')).toEqual({
      transport: 'udp',
      host: '0.0.0.0',
      port: 5060,
      family: 4,
    });
    expect(parseListen('f', 'tcp:[::1]:5070')).toEqual({
      transport: 'tcp',
      host: '::1',
      port: 5070,
      family: 6,
    });
    expect(parseListen('f', 'udp:127.0.0.1').port).toBe(5060);
    expect(parseListen('f', 'udp:127.0.0.1:0').port).toBe(0);
  });

  it('rejects bad listen addresses, naming the field', () => {
    for (const bad of ['sctp:1.2.3.4:5060', 'udp:::1:5060', 'udp:1.2.3.4:70000', 'udp:host:5060']) {
      const e = errorOf(() => parseListen('listen[0]', bad));
      expect(e.code).toBe('PROXY_ERR_CONFIG');
      expect(e.field).toBe('listen[0]');
    }
  });
});

describe('config: routes', () => {
  it('parses default, domain and prefix routes', () => {
    expect(parseRoute('r', 'default=sip:192.0.2.10')).toEqual({
      kind: 'default',
      match: '',
      target: 'sip:192.0.2.10',
    });
    expect(parseRoute('r', 'domain:Example.COM=sip:198.18.0.1:5070;transport=tcp')).toEqual({
      kind: 'domain',
      match: 'example.com',
      target: 'sip:198.18.0.1:5070;transport=tcp',
    });
    expect(parseRoute('r', 'prefix:+4930=sip:gw@198.18.0.2').match).toBe('+4930');
  });

  it('rejects routes without a SIP URI or with an unknown match', () => {
    expect(errorOf(() => parseRoute('--route', 'default=http://x')).field).toBe('--route');
    expect(errorOf(() => parseRoute('--route', 'user:bob=sip:x')).message).toMatch(/expected/);
    expect(errorOf(() => parseRoute('--route', 'prefix:abc=sip:x')).message).toMatch(/prefix/);
    expect(errorOf(() => parseRoute('--route', 'sip:x')).message).toMatch(/MATCH=/);
  });
});

describe('config: fcp servers and protected networks', () => {
  it('parses FCP servers with the reference port as default', () => {
    expect(parseFcp('f', 'tcp:127.0.0.1:12345')).toEqual({
      transport: 'tcp',
      host: '127.0.0.1',
      port: 12345,
    });
    expect(parseFcp('f', '198.18.0.1').port).toBe(12345);
    expect(errorOf(() => parseFcp('--fcp', 'udp:127.0.0.1:1')).field).toBe('--fcp');
  });

  it('normalises CIDRs and rejects bad ones', () => {
    expect(parseCidr('p', '10.0.0.0/8')).toBe('10.0.0.0/8');
    expect(parseCidr('p', '198.18.0.1')).toBe('198.18.0.1/32');
    expect(parseCidr('p', '2001:DB8::/32')).toBe('2001:db8::/32');
    expect(errorOf(() => parseCidr('protected[1]', '10.0.0.0/33')).field).toBe('protected[1]');
    expect(errorOf(() => parseCidr('p', 'example.com/8')).message).toMatch(/not an IP/);
  });
});

describe('config: file and flags', () => {
  it('starts with no arguments on udp and tcp 127.0.0.1:5060 with an embedded fcpd', () => {
    const { config, help } = parseArgs([]);
    expect(help).toBe(false);
    expect(config.listen.map((l) => `${l.transport}:${l.host}:${l.port}`)).toEqual([
      'udp:127.0.0.1:5060',
      'tcp:127.0.0.1:5060',
    ]);
    expect(config.fcp).toEqual([]);
    expect(config.failMode).toBe('closed');
  });

  it('reads repeatable and scalar flags', () => {
    const { config } = parseArgs([
      '--listen',
      'udp:0.0.0.0:5060',
      '--listen=tcp:[::]:5060',
      '--route',
      'default=sip:192.0.2.10',
      '--route',
      'prefix:+4930=sip:192.0.2.11',
      '--fcp',
      'tcp:127.0.0.1:12345',
      '--protected',
      '10.0.0.0/8',
      '--source-policy',
      'sdp',
      '--fail-mode',
      'open',
      '--pinhole-deadline-ms',
      '250',
      '--workers',
      '2',
      '--metrics',
      'tcp:127.0.0.1:9464',
    ]);
    expect(config.listen).toHaveLength(2);
    expect(config.listen[1]!.family).toBe(6);
    expect(config.routes.map((r) => r.kind)).toEqual(['default', 'prefix']);
    expect(config.fcp).toHaveLength(1);
    expect(config.protected).toEqual(['10.0.0.0/8']);
    expect(config.sourcePolicy).toBe('sdp');
    expect(config.failMode).toBe('open');
    expect(config.pinholeDeadlineMs).toBe(250);
    expect(config.workers).toBe(2);
    expect(config.metrics).toEqual({ host: '127.0.0.1', port: 9464 });
  });

  it('lets flags override the config file', () => {
    const file = JSON.stringify({
      listen: ['udp:127.0.0.1:5070'],
      routes: [{ match: 'domain:example.com', target: 'sip:198.18.0.9' }],
      failMode: 'open',
      registrar: { minExpires: 30 },
    });
    const { config, configFile } = parseArgs(
      ['--config', 'x.json', '--fail-mode', 'closed'],
      () => file,
    );
    expect(configFile).toBe('x.json');
    expect(config.listen[0]!.port).toBe(5070);
    expect(config.routes[0]!.match).toBe('example.com');
    expect(config.failMode).toBe('closed');
    expect(config.registrar.minExpires).toBe(30);
    expect(config.registrar.maxExpires).toBe(DEFAULT_CONFIG.registrar.maxExpires);
  });

  it('names the field of every error', () => {
    expect(errorOf(() => parseArgs(['--workers', '0'])).field).toBe('--workers');
    // Each worker embeds an fcpd on its own shard of the table: at most 64 of them.
    expect(errorOf(() => parseArgs(['--workers', '65'])).message).toMatch(
      /at most 64 without --fcp/,
    );
    expect(parseArgs(['--workers', '65', '--fcp', 'tcp:127.0.0.1:12345']).config.workers).toBe(65);
    expect(parseArgs(['--workers', '64']).config.workers).toBe(64);
    expect(errorOf(() => parseArgs(['--fail-mode', 'maybe'])).field).toBe('--fail-mode');
    expect(errorOf(() => parseArgs(['--source-policy', 'x'])).field).toBe('--source-policy');
    expect(errorOf(() => parseArgs(['--bogus', '1'])).field).toBe('--bogus');
    expect(errorOf(() => parseArgs(['--listen'])).field).toBe('--listen');
    expect(errorOf(() => parseArgs(['--config', 'f'], () => '{')).field).toBe('--config');
    expect(errorOf(() => configFromObject({ listne: [] })).field).toBe('listne');
    expect(errorOf(() => configFromObject({ routes: [42] })).field).toBe('routes[0]');
    expect(errorOf(() => configFromObject({ pinholeDeadlineMs: -1 })).field).toBe(
      'pinholeDeadlineMs',
    );
    expect(errorOf(() => configFromObject({ registrar: { minExpires: 'x' } })).field).toBe(
      'registrar.minExpires',
    );
    expect(errorOf(() => configFromObject({ registrar: { bogus: 1 } })).field).toBe(
      'registrar.bogus',
    );
    expect(errorOf(() => configFromObject({ overload: { queue: 0.3 } })).field).toBe(
      'overload.queue',
    );
    expect(errorOf(() => configFromObject({ overload: { queueBytes: -1 } })).field).toBe(
      'overload.queueBytes',
    );
    expect(errorOf(() => configFromObject({ overload: { retryAfter: -1 } })).field).toBe(
      'overload.retryAfter',
    );
    expect(errorOf(() => configFromObject({ overload: { queueBytes: 1 } })).message).toMatch(
      /at least 16384/,
    );
    expect(errorOf(() => configFromObject({ overload: { constructor: 1 } })).field).toBe(
      'overload.constructor',
    );
    expect(errorOf(() => configFromObject({ registrar: { toString: 1 } })).field).toBe(
      'registrar.toString',
    );
    expect(errorOf(() => configFromObject({ overload: 5 })).field).toBe('overload');
    expect(errorOf(() => configFromObject([])).field).toBe('(config)');
  });

  it('takes overload control from the file, and the flags over it', () => {
    expect(DEFAULT_CONFIG.overload).toEqual({ queueBytes: 0, retryAfter: 0 });
    const file = JSON.stringify({ overload: { queueBytes: 65536, retryAfter: 30 } });
    expect(parseArgs(['--config', 'x.json'], () => file).config.overload).toEqual({
      queueBytes: 65536,
      retryAfter: 30,
    });
    expect(
      parseArgs(['--config', 'x.json', '--overload-queue-bytes', '0'], () => file).config.overload,
    ).toEqual({ queueBytes: 0, retryAfter: 30 });
    expect(parseArgs(['--overload-queue-bytes', '1048576']).config.overload.queueBytes).toBe(
      1 << 20,
    );
  });

  it('compares listener sets for reload', () => {
    const a = [parseListen('a', 'udp:127.0.0.1:5060'), parseListen('a', 'tcp:127.0.0.1:5060')];
    const b = [parseListen('a', 'tcp:127.0.0.1:5060'), parseListen('a', 'udp:127.0.0.1:5060')];
    expect(sameListeners(a, b)).toBe(true);
    expect(sameListeners(a, [a[0]!])).toBe(false);
  });
});
