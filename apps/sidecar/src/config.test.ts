import { describe, expect, it } from 'vitest';
import { parseArgs, validateConfig } from './config.js';
import { SidecarConfigError } from './errors.js';

function fieldOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof SidecarConfigError) {
      expect(err.code).toBe('SIDECAR_ERR_CONFIG');
      return err.field;
    }
    throw err;
  }
  return 'no error';
}

const minimal = ['--hep', 'udp:0.0.0.0:9060', '--server-address', '198.18.0.1:5060'];

describe('parseArgs', () => {
  it('parses every flag, repeatable ones included', () => {
    const r = parseArgs([
      '--hep',
      'udp:0.0.0.0:9060',
      '--hep=tcp:[::1]:9061',
      '--fcp',
      'tcp:127.0.0.1:12345',
      '--protected',
      '10.0.0.0/8',
      '--protected',
      '2001:db8::/32',
      '--capture-id',
      '2001',
      '--capture-id',
      '2002',
      '--auth-key',
      'secret',
      '--server-address',
      '198.18.0.1:5060',
      '--server-address',
      '[2001:DB8::1]:5060',
      '--server-address',
      '198.18.0.2',
      '--metrics',
      'tcp:127.0.0.1:9465',
      '--twin-wait-ms',
      '50',
      '--log-level',
      'debug',
    ]);
    if (r.help) throw new Error('unexpected help');
    expect(r.config).toMatchObject({
      hep: [
        { transport: 'udp', host: '0.0.0.0', port: 9060 },
        { transport: 'tcp', host: '::1', port: 9061 },
      ],
      fcp: [{ transport: 'tcp', host: '127.0.0.1', port: 12345 }],
      protected: [
        { address: '10.0.0.0', family: 4, prefix: 8 },
        { address: '2001:db8::', family: 6, prefix: 32 },
      ],
      captureIds: [2001, 2002],
      authKey: 'secret',
      serverAddresses: [
        { address: '198.18.0.1', port: 5060 },
        { address: '2001:db8::1', port: 5060 },
        { address: '198.18.0.2' },
      ],
      metrics: { transport: 'tcp', host: '127.0.0.1', port: 9465 },
      twinWaitMs: 50,
      logLevel: 'debug',
    });
  });

  it('applies defaults', () => {
    const r = parseArgs(minimal);
    if (r.help) throw new Error('unexpected help');
    expect(r.config).toMatchObject({
      fcp: [],
      sourcePolicy: 'any',
      failMode: 'open',
      maxCallSeconds: 7200,
      metrics: undefined,
      captureIds: [],
      authKey: undefined,
      twinWaitMs: 200,
      dedupWindowMs: 32_000,
      tcpOnGarbage: 'close',
      logLevel: 'info',
    });
  });

  it('answers --help', () => {
    expect(parseArgs(['--help']).help).toBe(true);
  });

  it('reads a JSON file and lets flags replace its values', () => {
    const file = JSON.stringify({
      hep: ['udp:0.0.0.0:9060', 'tcp:0.0.0.0:9060'],
      serverAddresses: ['198.18.0.1:5060'],
      captureIds: [7],
      tcp: { onGarbage: 'resync', maxConnections: 8 },
    });
    const r = parseArgs(['--config', 'x.json', '--capture-id', '9'], () => file);
    if (r.help) throw new Error('unexpected help');
    expect(r.config.hep).toHaveLength(2);
    expect(r.config.captureIds).toEqual([9]);
    expect(r.config.tcpOnGarbage).toBe('resync');
    expect(r.config.tcpMaxConnections).toBe(8);
  });

  it.each([
    [['--hep', 'sctp:0.0.0.0:9060', '--server-address', '198.18.0.1'], '--hep[0]'],
    [['--hep', 'udp:0.0.0.0', '--server-address', '198.18.0.1'], '--hep[0]'],
    [['--hep', 'udp:0.0.0.0:70000', '--server-address', '198.18.0.1'], '--hep[0]'],
    [['--hep', 'udp:example.org:9060', '--server-address', '198.18.0.1'], '--hep[0]'],
    [['--server-address', '198.18.0.1'], 'hep'],
    [['--hep', 'udp:0.0.0.0:9060'], 'serverAddresses'],
    [[...minimal, '--server-address', '198.18.0.300'], '--server-address[1]'],
    [[...minimal, '--fcp', 'udp:127.0.0.1:1', '--protected', '10.0.0.0/8'], '--fcp[0]'],
    [[...minimal, '--fcp', 'tcp:127.0.0.1:1'], 'protected'],
    [[...minimal, '--source-policy', 'nobody'], '--source-policy'],
    [[...minimal, '--fail-mode', 'maybe'], '--fail-mode'],
    [[...minimal, '--max-call-seconds', '0'], '--max-call-seconds'],
    [[...minimal, '--policy', '{'], '--policy'],
    [[...minimal, '--protected', '10.0.0.0/33'], '--protected[0]'],
    [[...minimal, '--protected', 'ten'], '--protected[0]'],
    // Host bits set: 198.19.1.5/24 names no network unambiguously (@pinhole/policy's parseNetwork).
    [[...minimal, '--protected', '198.19.1.5/24'], '--protected[0]'],
    [[...minimal, '--capture-id', '-1'], '--capture-id[0]'],
    [[...minimal, '--capture-id', '1.5'], '--capture-id[0]'],
    [[...minimal, '--auth-key', ''], '--auth-key'],
    [[...minimal, '--metrics', 'tcp:1.2.3.4'], '--metrics'],
    [[...minimal, '--twin-wait-ms', 'soon'], '--twin-wait-ms'],
    [[...minimal, '--log-level', 'loud'], '--log-level'],
    [[...minimal, '--bogus', '1'], '--bogus'],
    [[...minimal, '--hep'], '--hep'],
  ])('names the field in errors: %j', (argv, field) => {
    expect(fieldOf(() => parseArgs(argv))).toBe(field);
  });

  it('reads the auth key from a file, without its trailing line end', () => {
    const r = parseArgs([...minimal, '--auth-key-file', 'key.txt'], (path) => {
      expect(path).toBe('key.txt');
      return 's3cret\n';
    });
    expect(!r.help && r.config.authKey).toBe('s3cret');
    const fromJson = parseArgs(['--config', 'c.json'], (path) =>
      path === 'c.json'
        ? JSON.stringify({
            hep: ['udp:0.0.0.0:1'],
            serverAddresses: ['198.18.0.1'],
            authKeyFile: 'k',
          })
        : 'k3y\r\n',
    );
    expect(!fromJson.help && fromJson.config.authKey).toBe('k3y');
    expect(
      fieldOf(() => parseArgs([...minimal, '--auth-key', 'a', '--auth-key-file', 'f'], () => 'x')),
    ).toBe('--auth-key-file');
    expect(
      fieldOf(() =>
        parseArgs([...minimal, '--auth-key-file', 'missing'], () => {
          throw new Error('ENOENT');
        }),
      ),
    ).toBe('--auth-key-file');
    expect(fieldOf(() => parseArgs([...minimal, '--auth-key-file', 'empty'], () => '\n'))).toBe(
      '--auth-key-file',
    );
  });

  it('names JSON fields, nested ones included', () => {
    const base = { hep: ['udp:0.0.0.0:9060'], serverAddresses: ['198.18.0.1'] };
    expect(fieldOf(() => validateConfig({ ...base, tcp: { onGarbage: 'eat' } }))).toBe(
      'tcp.onGarbage',
    );
    expect(fieldOf(() => validateConfig({ ...base, tcp: { nagle: true } }))).toBe('tcp.nagle');
    expect(fieldOf(() => validateConfig({ ...base, extra: 1 }))).toBe('extra');
    expect(fieldOf(() => validateConfig({ ...base, hep: 'udp:0.0.0.0:1' }))).toBe('hep');
    expect(fieldOf(() => validateConfig([]))).toBe('config');
    expect(fieldOf(() => parseArgs(['--config', 'x'], () => '{'))).toBe('--config');
    expect(
      fieldOf(() =>
        parseArgs(['--config', 'x'], () => {
          throw new Error('ENOENT');
        }),
      ),
    ).toBe('--config');
  });
});
