import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryBackend } from './memory-backend.js';
import { pmeKey, toPme, type PmeInput } from './pme.js';
import { RequestFramer, type FramerEvent } from './request-framer.js';
import { encodeRequest, parseRequest, type FcpRequest } from './request.js';
import { ResponseDecoder, encodeResponse, type ResponseEvent } from './response.js';
import { FcpServer } from './server.js';

const RUNS = 300;

/** Splits `bytes` at the given cut points. */
function split(bytes: Uint8Array, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of [...points, bytes.length]) {
    out.push(Buffer.from(bytes.subarray(prev, p)));
    prev = p;
  }
  return out;
}

// Text made of FCP-ish pieces, so the inputs reach deep into the parser.
const fcpish = fc
  .array(
    fc.oneof(
      fc.constantFrom(
        'SET',
        'RELEASE',
        'QUERY',
        'QUERYNAT',
        'RELEASENAT',
        'PME',
        'SOPT',
        'FCP=1.0',
        'SEQ=',
        'PROTO=17',
        'SRCIP=',
        'DSTIP=198.18.0.2',
        '/255.255.0.0',
        '/64',
        'DSTPORT=',
        '40000-40001',
        '-',
        ':',
        '=',
        ';',
        ',',
        ' ',
        '\t',
        '\r\n',
        '\n',
        '\r',
        'ACTION=pass',
        'TIMER=',
        'REFLEXIVE=yes',
        'TOSFLD=4',
        'ICMPTYPE=8:0',
        'ICMPMESSAGE=3:3',
        'IP=',
        'PORT=',
        'UPPERPORT=',
        '2001:db8::1',
        'quit',
        '\0',
        '\xff',
        '99999999999',
      ),
      fc.string({ maxLength: 8 }),
    ),
    { maxLength: 40 },
  )
  .map((parts) => parts.join(''));

describe('property: parsers never throw, and chunking never changes the result', () => {
  it('parseRequest returns a value for any input', () => {
    fc.assert(
      fc.property(fc.oneof(fcpish, fc.string({ maxLength: 300 })), (text) => {
        const r = parseRequest(text);
        expect(['request', 'quit', 'error']).toContain(r.kind);
        if (r.kind === 'error') expect([400, 402, 503]).toContain(r.status);
      }),
      { numRuns: RUNS * 3 },
    );
  });

  it('RequestFramer yields the same events for any split of the same bytes', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fcpish.map((s) => Buffer.from(s, 'latin1')),
          fc.uint8Array({ maxLength: 600 }).map((b) => Buffer.from(b)),
        ),
        fc.array(fc.nat(), { maxLength: 20 }),
        (bytes, cuts) => {
          const run = (chunks: Buffer[]): FramerEvent[] => {
            const f = new RequestFramer({ maxRequestBytes: 256 });
            return chunks.flatMap((c) => f.push(c));
          };
          expect(run(split(bytes, cuts))).toEqual(run([bytes]));
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('ResponseDecoder yields the same events for any split, and never throws', () => {
    const replies = fc
      .array(
        fc.oneof(
          fc.constantFrom(
            'FCP=1.0 SEQ=1 200 OK\r\n',
            'FCP=1.0 SEQ=2\r\n',
            '201 Keeping Alive\r\n',
            'IP=1.2.3.4 PORT=5-6\r\n',
            '\r\n',
            '\n',
            'PROTO=17 DSTIP=1.2.3.4 ACTION=DROP TIMER=3 ;\n',
            '400 Bad Request\n',
            'Welcome\n',
            'SOPT ACTION=pass;\r\n',
          ),
          fc.string({ maxLength: 20 }),
        ),
        { maxLength: 30 },
      )
      .map((p) => p.join(''));
    fc.assert(
      fc.property(
        replies,
        fc.array(fc.nat(), { maxLength: 10 }),
        fc.array(fc.constantFrom<'none' | 'nat' | 'query'>('none', 'nat', 'query'), {
          maxLength: 10,
        }),
        (text, cuts, kinds) => {
          const run = (chunks: Buffer[]): ResponseEvent[] => {
            let matched = 0;
            const d = new ResponseDecoder(
              (i) => kinds[(matched + i) % Math.max(1, kinds.length)] ?? 'none',
              { maxLineBytes: 200 },
            );
            return chunks.flatMap((c) => {
              const evs = d.push(c);
              matched += evs.filter((e) => e.kind === 'response').length;
              return evs;
            });
          };
          const bytes = Buffer.from(text, 'latin1');
          expect(run(split(bytes, cuts))).toEqual(run([bytes]));
        },
      ),
      { numRuns: RUNS },
    );
  });
});

const port = fc.integer({ min: 0, max: 65535 });
const range = fc
  .tuple(port, port)
  .map(([a, b]) => (a <= b ? ([a, b] as [number, number]) : ([b, a] as [number, number])));
const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join('.'));
const prefix = fc.oneof(
  v4,
  fc.tuple(v4, fc.integer({ min: 0, max: 32 })).map(([a, l]) => `${a}/${l}`),
  fc.ipV6().map((a) => a),
  fc.tuple(fc.ipV6(), fc.integer({ min: 0, max: 128 })).map(([a, l]) => `${a}/${l}`),
);
const pmeInput: fc.Arbitrary<PmeInput> = fc.record(
  {
    proto: fc.constantFrom(6, 17),
    dst: prefix,
    dstPort: fc.oneof(port, range),
    srcPort: fc.oneof(port, range),
    tos: fc.nat(255),
  },
  { requiredKeys: ['proto'] },
);

describe('property: encode → parse round trip and canonical identity', () => {
  it('every encodable request parses back to itself', () => {
    fc.assert(
      fc.property(
        pmeInput,
        fc.nat(999_999_999),
        fc.constantFrom<'pass' | 'drop' | 'reject'>('pass', 'drop', 'reject'),
        fc.nat(4_294_967_295),
        fc.constantFrom('SET', 'RELEASE', 'QUERY'),
        (input, seq, action, timer, method) => {
          let pme;
          try {
            pme = toPme(input);
          } catch {
            return; // mixed families: rejected by design
          }
          const req: FcpRequest =
            method === 'SET'
              ? { method, seq, pme, options: { action, timer } }
              : method === 'RELEASE'
                ? { method, seq, pme }
                : { method: 'QUERY', seq, pme };
          const parsed = parseRequest(encodeRequest(req));
          expect(parsed).toEqual({
            kind: 'request',
            request: method === 'QUERY' && pmeKey(pme) === '' ? { ...req, pme: undefined } : req,
          });
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('the canonical key is a fixed point: parsing the key as a PME gives the same key', () => {
    fc.assert(
      fc.property(pmeInput, (input) => {
        let pme;
        try {
          pme = toPme(input);
        } catch {
          return;
        }
        const key = pmeKey(pme);
        const again = parseRequest(`RELEASE FCP=1.0 SEQ=1\r\nPME ${key}\r\n\r\n`);
        expect(
          again.kind === 'request' &&
            again.request.method === 'RELEASE' &&
            pmeKey(again.request.pme),
        ).toBe(key);
      }),
      { numRuns: RUNS },
    );
  });

  it('every response the server can write decodes to the same status and SEQ', () => {
    fc.assert(
      fc.property(
        fc.nat(999_999_999),
        fc.integer({ min: 200, max: 599 }),
        fc.string({ maxLength: 50 }),
        fc.constantFrom<'fcpd' | 'abnf'>('fcpd', 'abnf'),
        (seq, status, detail, style) => {
          const d = new ResponseDecoder(() => 'none');
          const evs = d.push(encodeResponse({ seq, status, detail }, style));
          expect(evs).toHaveLength(1);
          expect(evs[0]).toMatchObject({ kind: 'response', response: { seq, status } });
        },
      ),
      { numRuns: RUNS },
    );
  });
});

describe('property: the server answers any input with one well-formed reply', () => {
  it('handle() never rejects and always writes `FCP=1.0 SEQ=n code ...` + empty line', async () => {
    const server = new FcpServer(
      {
        listen: [{ transport: 'tcp', host: '127.0.0.1', port: 0 }],
        policy: { protectedNetworks: ['0.0.0.0/0', '::/0'] },
        limits: { ratePerSec: 0 },
      },
      new MemoryBackend(),
    );
    const who = {
      address: '127.0.0.1',
      port: 1,
      transport: 'tcp' as const,
      owner: '127.0.0.1',
      authenticated: false,
    };
    await fc.assert(
      fc.asyncProperty(fcpish, async (text) => {
        const reply = await server.handle(text, who);
        expect(reply).toMatch(/^FCP=1\.0 SEQ=\d+ \d{3} [^\r\n]*\r\n(?:[^\r\n]+\r\n)*\r\n$/);
      }),
      { numRuns: RUNS },
    );
  });
});
