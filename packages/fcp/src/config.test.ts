import { describe, expect, it } from 'vitest';
import { validateServerConfig } from './config.js';
import { policyViolation } from './policy.js';
import { toPme } from './pme.js';

const listen = [{ transport: 'tcp', host: '127.0.0.1', port: 0 }];

describe('validateServerConfig names the offending field', () => {
  it.each([
    [null, '(root)'],
    [{}, 'listen'],
    [{ listen: {} }, 'listen'],
    [{ listen: [{ transport: 'sctp', host: '127.0.0.1', port: 1 }] }, 'listen[0].transport'],
    [{ listen: [{ transport: 'tcp', host: 'localhost', port: 1 }] }, 'listen[0].host'],
    [{ listen: [{ transport: 'tcp', host: '127.0.0.1', port: 70000 }] }, 'listen[0].port'],
    [{ listen: [{ transport: 'tls', host: '127.0.0.1', port: 1 }] }, 'listen[0].tls'],
    [{ listen, allowClients: ['10.0.0.0/33'] }, 'allowClients[0]'],
    [{ listen, policy: { protectedNetworks: 'x' } }, 'policy.protectedNetworks'],
    [
      {
        listen,
        policy: {
          allowedPorts: [
            [1024, 65535],
            [10, 5],
          ],
        },
      },
      'policy.allowedPorts[1]',
    ],
    [{ listen, policy: { maxTimerSec: 0 } }, 'policy.maxTimerSec'],
    [{ listen, policy: { allowForever: 'yes' } }, 'policy.allowForever'],
    [{ listen, policy: { allowedActions: ['accept'] } }, 'policy.allowedActions[0]'],
    [{ listen, limits: { ratePerSec: -1 } }, 'limits.ratePerSec'],
    [{ listen, nat: { masquerade: [], publicAddress: 'x' } }, 'nat.publicAddress'],
    [
      { listen, nat: { masquerade: [], publicAddress: '198.18.0.1', reservationSec: 5 } },
      'nat.reservationSec',
    ],
    [{ listen, responseStyle: 'json' }, 'responseStyle'],
  ])('%j → %s', (input, field) => {
    expect(() => validateServerConfig(input)).toThrow(
      expect.objectContaining({ code: 'FCP_ERR_CONFIG', field }),
    );
  });

  it('fills safe defaults: loopback ACL, no protected network, ports ≥ 1024, no forever', () => {
    const c = validateServerConfig({ listen });
    expect(c.allowClients.map((p) => p.prefix)).toEqual([8, 128]);
    expect(c.policy.protectedNetworks).toEqual([]);
    expect(c.policy.allowedPorts).toEqual([[1024, 65535]]);
    expect(c.policy.allowForever).toBe(false);
    expect(c.policy.defaultTimerSec).toBe(60);
    // Fail closed: with no protected network, nothing may be opened.
    const pme = toPme({ proto: 'udp', dst: '198.18.0.2', dstPort: 40000 });
    expect(policyViolation(c.policy, pme, { action: 'pass' }, 60)).toMatch(/protected network/);
  });
});
