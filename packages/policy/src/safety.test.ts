import { describe, expect, it } from 'vitest';
import { resolveConfig } from './config.js';
import type { Pme } from './intents.js';
import { checkHole, pmeKey } from './safety.js';

const config = resolveConfig({
  protectedNetworks: ['198.18.0.0/16', '2001:db8:1::/48'],
  firewallAddresses: ['198.18.0.1', '2001:db8:1::1'],
  ports: { min: 1024, max: 60000 },
});

function pme(dst: string, port: number, extra: Partial<Pme> = {}): Pme {
  const family = dst.includes(':') ? 6 : 4;
  return {
    protocol: 'udp',
    proto: 17,
    family,
    source: undefined,
    destination: { address: dst, prefix: family === 4 ? 32 : 128 },
    destinationPort: port,
    ...extra,
  };
}

describe('checkHole', () => {
  it('lets a hole toward a protected host on an allowed port pass', () => {
    expect(checkHole(pme('198.18.2.1', 4000), 60, config)).toBeUndefined();
    expect(checkHole(pme('2001:db8:1::5', 4000), 60, config)).toBeUndefined();
    const src = { address: '198.19.0.0', prefix: 24 };
    expect(checkHole(pme('198.18.2.1', 4000, { source: src }), 60, config)).toBeUndefined();
  });

  it.each<[string, Pme, number]>([
    ['destination-not-protected', pme('198.19.2.1', 4000), 60],
    ['destination-not-protected', pme('2001:db8:2::5', 4000), 60],
    ['destination-firewall', pme('198.18.0.1', 4000), 60],
    ['destination-firewall', pme('2001:db8:1::1', 4000), 60],
    ['destination-broadcast', pme('198.18.255.255', 4000), 60],
    ['destination-broadcast', pme('198.18.0.0', 4000), 60],
    ['destination-special', pme('255.255.255.255', 4000), 60],
    ['destination-special', pme('224.0.0.1', 4000), 60],
    ['destination-special', pme('127.0.0.1', 4000), 60],
    ['destination-special', pme('0.0.0.0', 4000), 60],
    ['destination-special', pme('ff02::1', 4000), 60],
    ['destination-special', pme('::', 4000), 60],
    ['destination-special', pme('::1', 4000), 60],
    ['port-out-of-range', pme('198.18.2.1', 80), 60],
    ['port-out-of-range', pme('198.18.2.1', 60001), 60],
    ['port-out-of-range', pme('198.18.2.1', 4000.5), 60],
    ['protocol-not-allowed', pme('198.18.2.1', 4000, { protocol: 'tcp', proto: 6 }), 60],
    ['protocol-not-allowed', pme('198.18.2.1', 4000, { proto: 6 }), 60],
    [
      'address-invalid',
      pme('198.18.2.1', 4000, { destination: { address: '198.18.2.1', prefix: 24 } }),
      60,
    ],
    ['address-invalid', pme('198.018.2.1', 4000), 60],
    ['address-invalid', pme('2001:DB8:1::5', 4000), 60],
    ['address-invalid', pme('198.18.2.1', 4000, { family: 6 }), 60],
    ['source-invalid', pme('198.18.2.1', 4000, { source: { address: 'x', prefix: 32 } }), 60],
    [
      'source-invalid',
      pme('198.18.2.1', 4000, { source: { address: '2001:db8::1', prefix: 128 } }),
      60,
    ],
    [
      'source-invalid',
      pme('198.18.2.1', 4000, { source: { address: '224.0.0.1', prefix: 32 } }),
      60,
    ],
    [
      'source-invalid',
      pme('198.18.2.1', 4000, { source: { address: '198.19.0.1', prefix: 0 } }),
      60,
    ],
    ['timer-invalid', pme('198.18.2.1', 4000), 0],
    ['timer-invalid', pme('198.18.2.1', 4000), 86401],
    ['timer-invalid', pme('198.18.2.1', 4000), Number.NaN],
  ])('refuses with %s: %j timer %d', (code, p, timer) => {
    expect(checkHole(p, timer, config)?.code).toBe(code);
  });

  it('gives each PME one canonical key', () => {
    expect(pmeKey(pme('198.18.2.1', 4000))).toBe('udp 198.18.2.1:4000 from *');
    expect(
      pmeKey(pme('2001:db8:1::5', 4000, { source: { address: '2001:db8:2::', prefix: 64 } })),
    ).toBe('udp [2001:db8:1::5]:4000 from 2001:db8:2::/64');
  });
});
