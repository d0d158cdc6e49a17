import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FakeTimers, settle } from '../test/helpers.js';
import { MemoryBackend } from './memory-backend.js';
import { FcpServer, type FcpClientInfo } from './server.js';

type Op =
  | { kind: 'set'; port: number; owner: number; action: 'pass' | 'drop'; timer: number }
  | { kind: 'release'; port: number; owner: number }
  | { kind: 'advance'; seconds: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant('set' as const),
    port: fc.integer({ min: 40000, max: 40004 }),
    owner: fc.integer({ min: 1, max: 2 }),
    action: fc.constantFrom<'pass' | 'drop'>('pass', 'drop'),
    timer: fc.integer({ min: 1, max: 20 }),
  }),
  fc.record({
    kind: fc.constant('release' as const),
    port: fc.integer({ min: 40000, max: 40004 }),
    owner: fc.integer({ min: 1, max: 2 }),
  }),
  fc.record({ kind: fc.constant('advance' as const), seconds: fc.integer({ min: 1, max: 15 }) }),
);

interface ModelRule {
  owner: number;
  action: string;
  expiresAt: number;
}

function who(n: number): FcpClientInfo {
  const address = `127.0.0.${n}`;
  return { address, port: 1, transport: 'tcp', owner: address, authenticated: false };
}

describe('property: the rule table follows the spec semantics (model-based)', () => {
  it('statuses, expiry and the backend agree with a simple model for random sequences', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 40 }), async (ops) => {
        const timers = new FakeTimers();
        const backend = new MemoryBackend({ now: () => timers.now() });
        const server = new FcpServer(
          {
            listen: [{ transport: 'tcp', host: '127.0.0.1', port: 0 }],
            policy: { protectedNetworks: ['198.18.0.0/16'] },
            limits: { ratePerSec: 0 },
          },
          backend,
          { timers },
        );
        const model = new Map<number, ModelRule>();
        let seq = 0;
        for (const o of ops) {
          const pme = `PME PROTO=17; DSTIP=198.18.0.2; DSTPORT=${'port' in o ? o.port : 0};`;
          if (o.kind === 'advance') {
            timers.advance(o.seconds * 1000);
            await settle();
            for (const [k, r] of model) if (r.expiresAt <= timers.now()) model.delete(k);
            continue;
          }
          const m = model.get(o.port);
          let want: number;
          if (o.kind === 'set') {
            const text = `SET FCP=1.0 SEQ=${++seq}\r\n${pme}\r\nSOPT ACTION=${o.action}; TIMER=${o.timer};\r\n\r\n`;
            if (!m) want = 200;
            else if (m.owner !== o.owner) want = 403;
            else want = m.action === o.action ? 201 : 202;
            if (want !== 403) {
              model.set(o.port, {
                owner: o.owner,
                action: o.action,
                expiresAt: timers.now() + o.timer * 1000,
              });
            }
            const reply = await server.handle(text, who(o.owner));
            expect(reply).toMatch(new RegExp(`^FCP=1\\.0 SEQ=${seq} ${want} `));
          } else {
            const text = `RELEASE FCP=1.0 SEQ=${++seq}\r\n${pme}\r\n\r\n`;
            want = !m ? 400 : m.owner !== o.owner ? 403 : 200;
            if (want === 200) model.delete(o.port);
            const reply = await server.handle(text, who(o.owner));
            expect(reply).toMatch(new RegExp(`^FCP=1\\.0 SEQ=${seq} ${want} `));
          }
        }
        await settle();
        const table = server
          .rules()
          .map((r) => [r.firewallRule.dstPorts?.[0], r.owner, r.options.action])
          .sort();
        const expected = [...model]
          .map(([port, r]) => [port, `127.0.0.${r.owner}`, r.action])
          .sort();
        expect(table).toEqual(expected);
        expect(backend.size).toBe(model.size);
        await server.stop();
      }),
      { numRuns: 150 },
    );
  });
});
