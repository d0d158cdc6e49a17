import { describe, expect, it } from 'vitest';
import { DEFAULTS, resolveConfig, validateConfig } from './config.js';
import { PolicyErrorCode, type PolicyError } from './errors.js';

describe('validateConfig', () => {
  it('applies the defaults', () => {
    const r = validateConfig({ protectedNetworks: ['10.0.0.0/8'] });
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.config.source).toBe('any');
    expect(r.config.openOn).toBe('answer');
    expect(r.config.closeOnBye).toBe('request');
    expect(r.config.ports).toEqual(DEFAULTS.ports);
    expect(r.config.protocols).toEqual(['udp']);
    expect(r.config.sessionTimer).toEqual({ mode: 'observe', intervalSec: 1800, minSESec: 90 });
    expect(r.config.broadcastAddresses.map((a) => a.text)).toEqual(['10.0.0.0', '10.255.255.255']);
  });

  it.each<[unknown, string]>([
    [{}, 'protectedNetworks'],
    [{ protectedNetworks: [] }, 'protectedNetworks'],
    [{ protectedNetworks: 'x' }, 'protectedNetworks'],
    [{ protectedNetworks: ['10.0.0.0/33'] }, 'protectedNetworks[0]'],
    [{ protectedNetworks: ['10.0.0.0/8', 3] }, 'protectedNetworks[1]'],
    [{ protectedNetworks: ['0.0.0.0/0'] }, 'protectedNetworks[0]'],
    [{ protectedNetworks: ['10.0.0.1/8'] }, 'protectedNetworks[0]'],
    [{ protectedNetworks: ['10.0.0.0/8'], firewallAddresses: ['fw'] }, 'firewallAddresses[0]'],
    [{ protectedNetworks: ['10.0.0.0/8'], ports: { min: 0 } }, 'ports.min'],
    [{ protectedNetworks: ['10.0.0.0/8'], ports: { min: 2000, max: 1000 } }, 'ports'],
    [{ protectedNetworks: ['10.0.0.0/8'], ports: { low: 1 } }, 'ports.low'],
    [{ protectedNetworks: ['10.0.0.0/8'], protocols: ['sctp'] }, 'protocols[0]'],
    [{ protectedNetworks: ['10.0.0.0/8'], source: 'via' }, 'source'],
    [{ protectedNetworks: ['10.0.0.0/8'], sourceFallback: 'open' }, 'sourceFallback'],
    [{ protectedNetworks: ['10.0.0.0/8'], sourcePrefix: { ipv4: 33 } }, 'sourcePrefix.ipv4'],
    [{ protectedNetworks: ['10.0.0.0/8'], openOn: 'ringing' }, 'openOn'],
    [{ protectedNetworks: ['10.0.0.0/8'], offerTimerSec: 0 }, 'offerTimerSec'],
    [{ protectedNetworks: ['10.0.0.0/8'], earlyTimerSec: 1.5 }, 'earlyTimerSec'],
    [{ protectedNetworks: ['10.0.0.0/8'], maxCallLifetimeSec: '3600' }, 'maxCallLifetimeSec'],
    [{ protectedNetworks: ['10.0.0.0/8'], maxTimerSec: 100 }, 'earlyTimerSec'],
    [{ protectedNetworks: ['10.0.0.0/8'], sessionTimerMarginSec: -1 }, 'sessionTimerMarginSec'],
    [{ protectedNetworks: ['10.0.0.0/8'], closeOnBye: 'never' }, 'closeOnBye'],
    [{ protectedNetworks: ['10.0.0.0/8'], sessionTimer: { mode: 'force' } }, 'sessionTimer.mode'],
    [
      { protectedNetworks: ['10.0.0.0/8'], sessionTimer: { minSESec: 60 } },
      'sessionTimer.minSESec',
    ],
    [
      { protectedNetworks: ['10.0.0.0/8'], sessionTimer: { minSESec: 600, intervalSec: 300 } },
      'sessionTimer.intervalSec',
    ],
    [
      { protectedNetworks: ['10.0.0.0/8'], sessionTimer: { refresher: 'uac' } },
      'sessionTimer.refresher',
    ],
    [{ protectedNetworks: ['10.0.0.0/8'], maxStreamsPerCall: 0 }, 'maxStreamsPerCall'],
    [{ protectedNetworks: ['10.0.0.0/8'], maxHolesPerDialog: 0 }, 'maxHolesPerDialog'],
    [{ protectedNetworks: ['10.0.0.0/8'], maxCalls: -5 }, 'maxCalls'],
    [{ protectedNetworks: ['10.0.0.0/8'], holes: 3 }, 'holes'],
  ])('names the field of a bad value: %j -> %s', (input, field) => {
    const r = validateConfig(input);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors.map((e) => e.field)).toContain(field);
  });

  it('refuses a non-object', () => {
    expect(validateConfig(null).ok).toBe(false);
    expect(validateConfig([]).ok).toBe(false);
  });

  it('resolveConfig throws POLICY_ERR_CONFIG listing every issue', () => {
    let caught: PolicyError | undefined;
    try {
      resolveConfig({ protectedNetworks: ['x'], openOn: 'never' });
    } catch (e) {
      caught = e as PolicyError;
    }
    expect(caught?.code).toBe(PolicyErrorCode.config);
    expect(caught?.issues.map((i) => i.field)).toEqual(['protectedNetworks[0]', 'openOn']);
    expect(caught?.message).toContain('openOn');
  });
});
