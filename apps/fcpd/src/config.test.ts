import { describe, expect, it } from 'vitest';
import {
  FcpdConfigError,
  checkCidr,
  parseCli,
  parseEndpoint,
  parsePortRange,
  validateFcpdConfig,
} from './config.js';

function fieldOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(FcpdConfigError);
    return (e as FcpdConfigError).field;
  }
  return undefined;
}

describe('parseEndpoint', () => {
  it('reads tcp and udp endpoints, IPv6 in brackets', () => {
    expect(parseEndpoint('tcp:127.0.0.1:12345', 'x')).toEqual({
      transport: 'tcp',
      host: '127.0.0.1',
      port: 12345,
    });
    expect(parseEndpoint('udp:[::1]:0', 'x')).toEqual({ transport: 'udp', host: '::1', port: 0 });
  });

  it.each(['127.0.0.1:1', 'sctp:127.0.0.1:1', 'tcp:localhost:1', 'tcp:1.2.3.4:70000', 'tcp:::1:5'])(
    'refuses %s',
    (text) => {
      expect(fieldOf(() => parseEndpoint(text, '--listen'))).toBe('--listen');
    },
  );
});

describe('parsePortRange', () => {
  it('reads ranges in text and array form', () => {
    expect(parsePortRange('1024-65535', 'p')).toEqual([1024, 65535]);
    expect(parsePortRange('40000', 'p')).toEqual([40000, 40000]);
    expect(parsePortRange([1, 2], 'p')).toEqual([1, 2]);
    expect(parsePortRange(7, 'p')).toEqual([7, 7]);
  });
  it.each(['2-1', '70000', 'a-b', [1], [1, 2, 3], ''])('refuses %j', (v) => {
    expect(fieldOf(() => parsePortRange(v, 'mediaPorts'))).toBe('mediaPorts');
  });
});

describe('checkCidr', () => {
  it('accepts networks and hosts of both families', () => {
    for (const c of ['10.0.0.0/8', '198.19.1.2', '2001:db8::/32', '::1']) {
      expect(checkCidr(c, 'f')).toBe(c);
    }
  });
  it.each(['10.0.0.0/33', '10.0.0/8', 'x', '::/129', '1.2.3.4/8/9'])('refuses %s', (c) => {
    expect(fieldOf(() => checkCidr(c, 'protected[0]'))).toBe('protected[0]');
  });
});

describe('validateFcpdConfig', () => {
  it('accepts a complete file', () => {
    const c = validateFcpdConfig({
      listen: ['tcp:127.0.0.1:12345', 'udp:127.0.0.1:12345'],
      backend: 'nftables',
      protected: ['10.0.0.0/8'],
      allowClients: ['127.0.0.0/8'],
      mediaPorts: '1024-65535',
      metrics: 'tcp:127.0.0.1:9464',
      nft: {
        mode: 'mark',
        table: 'pinhole',
        hooks: ['forward', 'input'],
        mark: '0x10',
        channel: 'cli',
        helperCommand: ['/opt/pinhole-nfnl'],
        shards: 2,
        shard: 1,
      },
      policy: { maxTimerSec: 3600 },
      limits: { maxRulesPerClient: 100 },
      logLevel: 'warn',
    });
    expect(c.listen).toEqual([
      { transport: 'tcp', host: '127.0.0.1', port: 12345 },
      { transport: 'udp', host: '127.0.0.1', port: 12345 },
    ]);
    expect(c.mediaPorts).toEqual([1024, 65535]);
    expect(c.metrics).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(c.nft).toEqual({
      mode: 'mark',
      table: 'pinhole',
      hooks: ['forward', 'input'],
      mark: 16,
      channel: 'cli',
      helperCommand: ['/opt/pinhole-nfnl'],
      shards: 2,
      shard: 1,
    });
  });

  it.each([
    [{ backend: 'iptables' }, 'backend'],
    [{ listen: [] }, 'listen'],
    [{ listen: ['tcp:127.0.0.1:1', 'bogus'] }, 'listen[1]'],
    [{ protected: ['10.0.0.0/8', 'nope'] }, 'protected[1]'],
    [{ nft: { mode: 'drop' } }, 'nft.mode'],
    [{ nft: { table: 'bad name' } }, 'nft.table'],
    [{ nft: { hooks: ['output'] } }, 'nft.hooks'],
    [{ nft: { mark: 0 } }, 'nft.mark'],
    [{ nft: { colour: 1 } }, 'nft.colour'],
    [{ nft: { splitBursts: 'yes' } }, 'nft.splitBursts'],
    [{ nft: { channel: 'socket' } }, 'nft.channel'],
    [{ nft: { helperCommand: [] } }, 'nft.helperCommand'],
    [{ nft: { shards: 0 } }, 'nft.shards'],
    [{ nft: { shards: 65 } }, 'nft.shards'],
    [{ nft: { shards: 2, shard: 2 } }, 'nft.shard'],
    [{ nft: { shard: 1 } }, 'nft.shard'],
    [{ metrics: 'udp:127.0.0.1:1' }, 'metrics'],
    [{ logLevel: 'loud' }, 'logLevel'],
    [{ prtected: [] }, 'prtected'],
    [{ policy: 3 }, 'policy'],
  ])('names the field of %j', (input, field) => {
    expect(fieldOf(() => validateFcpdConfig(input))).toBe(field);
  });
});

describe('parseCli', () => {
  const files: Record<string, string> = {
    '/cfg.json': JSON.stringify({
      protected: ['10.0.0.0/8'],
      mediaPorts: [2000, 3000],
      nft: { mode: 'mark', table: 'site' },
    }),
    '/bad.json': '{ nope',
    '/badfield.json': JSON.stringify({ nft: { mode: 1 } }),
    '/c.pem': '-----BEGIN CERTIFICATE-----\nc\n-----END CERTIFICATE-----\n',
    '/k.pem': '-----BEGIN PRIVATE KEY-----\nk\n-----END PRIVATE KEY-----\n',
    '/ca.pem': '-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n',
  };
  const read = (p: string): string => {
    const t = files[p];
    if (t === undefined) throw new Error('ENOENT');
    return t;
  };

  it('reads repeatable flags', () => {
    const { config } = parseCli(
      [
        '--listen',
        'tcp:127.0.0.1:1',
        '--listen',
        'udp:127.0.0.1:1',
        '--protected',
        '10.0.0.0/8',
        '--protected',
        '2001:db8::/32',
        '--allow-client',
        '127.0.0.0/8',
        '--nft-mode',
        'mark',
        '--nft-table',
        'inet fw',
        '--nft-hook',
        'input',
        '--nft-channel',
        'netlink',
      ],
      read,
    );
    expect(config.listen).toHaveLength(2);
    expect(config.protected).toEqual(['10.0.0.0/8', '2001:db8::/32']);
    expect(config.nft).toEqual({ mode: 'mark', table: 'fw', hooks: ['input'], channel: 'netlink' });
  });

  it('builds tls: listeners from --tls-cert/--tls-key (and --tls-ca for client certificates)', () => {
    const withCa = parseCli(
      [
        ...['--listen', 'tls:0.0.0.0:12346', '--listen', 'tcp:127.0.0.1:12345'],
        ...['--tls-cert', '/c.pem', '--tls-key', '/k.pem', '--tls-ca', '/ca.pem'],
      ],
      read,
    ).config;
    expect(withCa.listen?.[0]).toEqual({
      transport: 'tls',
      host: '0.0.0.0',
      port: 12346,
      tls: { cert: files['/c.pem'], key: files['/k.pem'], ca: files['/ca.pem'] },
    });
    expect(withCa.listen?.[1]).toEqual({ transport: 'tcp', host: '127.0.0.1', port: 12345 });
    const noCa = parseCli(
      ['--listen', 'tls:[::1]:0', '--tls-cert', '/c.pem', '--tls-key', '/k.pem'],
      read,
    ).config;
    expect(noCa.listen?.[0]?.tls).toEqual({
      cert: files['/c.pem'],
      key: files['/k.pem'],
      requestCert: false,
      rejectUnauthorized: false,
    });
  });

  it('lets flags override the config file, field by field', () => {
    const { config } = parseCli(['--config', '/cfg.json', '--nft-mode', 'standalone'], read);
    expect(config.protected).toEqual(['10.0.0.0/8']);
    expect(config.mediaPorts).toEqual([2000, 3000]);
    expect(config.nft).toEqual({ mode: 'standalone', table: 'site' });
  });

  it.each([
    [['--config', '/missing.json'], '--config'],
    [['--config', '/bad.json'], '--config'],
    [['--config', '/badfield.json'], 'nft.mode'],
    [['--backend', 'pf'], '--backend'],
    [['--nft-mode', 'x'], '--nft-mode'],
    [['--nft-channel', 'pipe'], '--nft-channel'],
    [['--metrics', 'tcp:nohost:1'], '--metrics'],
    [['--unknown'], '(flags)'],
    [['--listen', 'tls:127.0.0.1:1'], '--tls-cert'],
    [['--listen', 'tls:127.0.0.1:1', '--tls-cert', '/c.pem'], '--tls-key'],
    [
      ['--listen', 'tls:127.0.0.1:1', '--tls-cert', '/c.pem', '--tls-key', '/nope.pem'],
      '--tls-key',
    ],
    [
      ['--listen', 'tls:127.0.0.1:1', '--tls-cert', '/cfg.json', '--tls-key', '/k.pem'],
      '--tls-cert',
    ],
    [['--tls-cert', '/c.pem', '--tls-key', '/k.pem'], '--tls-cert'],
  ])('reports %j against %s', (argv, field) => {
    expect(fieldOf(() => parseCli(argv, read))).toBe(field);
  });
});
