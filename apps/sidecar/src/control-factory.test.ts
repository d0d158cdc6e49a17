import { describe, expect, it } from 'vitest';
import { parseArgs } from './config.js';
import { createPinholeControl } from './control-factory.js';
import { MetricsRegistry } from '@pinhole/metrics';
import { silentLogger } from './receiver.js';

const logger = { ...silentLogger, warn: () => undefined, error: () => undefined };
const base = ['--hep', 'udp:127.0.0.1:0', '--server-address', '198.18.0.1:5060'];

function config(extra: string[]) {
  const r = parseArgs([...base, ...extra]);
  if (r.help) throw new Error('unexpected help');
  return r.config;
}

describe('createPinholeControl', () => {
  it('is unwired without an FCP server', async () => {
    const c = createPinholeControl(config([]), { logger, registry: new MetricsRegistry() });
    expect(c.name).toBe('unwired');
    expect(c.drivesFirewall).toBe(false);
    await c.close();
  });

  it('drives the firewall through the engine when --fcp and --protected are given', async () => {
    const registry = new MetricsRegistry();
    const c = createPinholeControl(
      config(['--fcp', 'tcp:127.0.0.1:1', '--protected', '198.18.0.16/28', '--fail-mode=closed']),
      { logger, registry },
    );
    expect(c.name).toBe('transaction+policy+fcp');
    expect(c.drivesFirewall).toBe(true);
    expect(registry.render()).toContain('pinhole_sidecar_answer_to_pinhole_seconds');
    await c.close();
  });

  it('passes the policy settings through', () => {
    const cfg = config([
      '--fcp',
      'tcp:127.0.0.1:1',
      '--protected',
      '198.18.0.16/28',
      '--source-policy',
      'signalling',
      '--max-call-seconds',
      '600',
      '--policy',
      '{"earlyTimerSec":120}',
    ]);
    expect(cfg.policy).toMatchObject({
      protectedNetworks: ['198.18.0.16/28'],
      source: 'signalling',
      maxCallLifetimeSec: 600,
      earlyTimerSec: 120,
    });
  });
});
