/**
 * Table-driven call flows: each fixture in test/fixtures is a sequence of real SIP messages
 * (and transaction outcomes) with the intents, refusals and proxy actions expected after each.
 * Every flow runs twice: as written, and with every message delivered twice (a retransmission
 * or a HEP duplicate), where the repeat must open, refresh and close nothing.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Policy, type PolicyResult } from '../src/index.js';
import { readFlow, render } from './flow.js';

const dir = new URL('./fixtures/', import.meta.url);
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.flow'))
  .sort();

const BASE = {
  protectedNetworks: ['198.18.0.0/16', '2001:db8:1::/48'],
  firewallAddresses: ['198.18.0.1', '2001:db8:1::1'],
};

function run(policy: Policy, step: ReturnType<typeof readFlow>['steps'][number]): PolicyResult {
  const ev = step.event;
  return ev.type === 'sweep' ? policy.sweep(ev.now) : policy.handle(ev);
}

describe('call flow scenarios', () => {
  it('has fixtures', () => {
    expect(files.length).toBeGreaterThan(10);
  });
  for (const file of files) {
    const flow = readFlow(readFileSync(new URL(file, dir), 'utf8'), file);
    describe(`${file}: ${flow.title}`, () => {
      it('yields the expected intents after every message', () => {
        const policy = new Policy({ ...BASE, ...flow.config });
        for (const step of flow.steps) {
          expect(render(run(policy, step)), `${file}:${step.line} ${step.header}`).toEqual(
            step.expect,
          );
        }
      });
      it('yields nothing more when every message arrives twice', () => {
        const policy = new Policy({ ...BASE, ...flow.config });
        for (const step of flow.steps) {
          const first = run(policy, step);
          expect(render(first), `${file}:${step.line} ${step.header}`).toEqual(step.expect);
          if (step.event.type === 'sweep') continue;
          const again = run(policy, step);
          expect(again.intents, `${file}:${step.line} repeated`).toEqual([]);
          expect(again.actions, `${file}:${step.line} repeated`).toEqual(first.actions);
        }
      });
    });
  }
});
