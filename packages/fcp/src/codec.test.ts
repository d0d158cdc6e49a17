import { describe, expect, it } from 'vitest';
import { RequestFramer } from './request-framer.js';
import {
  encodeRequest,
  parseRequest,
  type FcpRequest,
  type RequestParseResult,
} from './request.js';
import {
  encodeResponse,
  ResponseDecoder,
  type ResponseBodyKind,
  type ResponseEvent,
} from './response.js';
import { pmeKey, toFirewallRule, toPme } from './pme.js';
import { FcpStatus, reasonPhrase } from './status.js';

/** Frames `wire` (whole, or one byte at a time) and parses every request. */
function frameAndParse(wire: string, byteByByte: boolean): RequestParseResult[] {
  const framer = new RequestFramer();
  const out: RequestParseResult[] = [];
  const bytes = Buffer.from(wire, 'latin1');
  const chunks = byteByByte ? [...bytes].map((b) => Buffer.from([b])) : [bytes];
  for (const c of chunks) {
    for (const ev of framer.push(c)) {
      if (ev.kind === 'request') out.push(parseRequest(ev.text));
      else if (ev.kind === 'quit') out.push({ kind: 'quit' });
      else throw new Error('too long');
    }
  }
  return out;
}

function both(wire: string): RequestParseResult[] {
  const whole = frameAndParse(wire, false);
  const bytewise = frameAndParse(wire, true);
  expect(bytewise).toEqual(whole);
  return whole;
}

function one(wire: string): RequestParseResult {
  const r = both(wire);
  expect(r).toHaveLength(1);
  return r[0] as RequestParseResult;
}

function req(wire: string): FcpRequest {
  const r = one(wire);
  if (r.kind !== 'request') throw new Error(`expected a request, got ${JSON.stringify(r)}`);
  return r.request;
}

function err(wire: string): { status: number; detail: string; seq: number } {
  const r = one(wire);
  if (r.kind !== 'error') throw new Error(`expected an error, got ${JSON.stringify(r)}`);
  return { status: r.status, detail: r.detail, seq: r.seq };
}

describe('requests: spec §4 examples', () => {
  it('parses the E19 scenario 1 QUERYNAT (§4.1)', () => {
    const r = req(
      'QUERYNAT FCP=1.0 SEQ=394\r\nSRCIP=192.168.99.3; SRCPORT=3333-3334; PROTO=17;\r\n\r\n',
    );
    expect(r).toEqual({
      method: 'QUERYNAT',
      seq: 394,
      nat: { srcIp: '192.168.99.3', srcPorts: [3333, 3334], proto: 17 },
    });
  });

  it('parses the E19 scenario 1 SET with the TOS modifier and no trailing ";" (§4.1)', () => {
    const r = req(
      'SET FCP=1.0 SEQ=395\r\nPME PROTO=17; SRCIP=192.168.99.3; DSTIP=168.56.34.2; SRCPORT=3333-3334; DSTPORT=5353-5354;\r\nSOPT ACTION=pass, TOSFLD=4; TIMER=30\r\n\r\n',
    );
    if (r.method !== 'SET') throw new Error('not SET');
    expect(r.seq).toBe(395);
    expect(pmeKey(r.pme)).toBe(
      'PROTO=17; SRCIP=192.168.99.3; DSTIP=168.56.34.2; SRCPORT=3333-3334; DSTPORT=5353-5354;',
    );
    expect(r.options).toEqual({ action: 'pass', tosModifier: 4, timer: 30 });
  });

  it('parses the E19 scenario 2 exchange (§4.2)', () => {
    const r = both(
      'QUERYNAT FCP=1.0 SEQ=101\r\nSRCIP=217.130.254.3; SRCPORT=2222-2223; PROTO=17;\r\n\r\n' +
        'SET FCP=1.0 SEQ=102\r\nPME PROTO=17; SRCIP=217.130.254.3; DSTIP=58.34.68.123; SRCPORT=2222-2223; DSTPORT=3456-3457;\r\nSOPT ACTION=pass, TOSFLD=4; TIMER=30\r\n\r\n',
    );
    expect(r.map((x) => (x.kind === 'request' ? x.request.seq : -1))).toEqual([101, 102]);
  });

  it('parses the §4.3 SET, QUERY and RELEASE', () => {
    const set = req(
      'SET FCP=1.0 SEQ=1\r\nPME PROTO=17; SRCIP=10.0.0.5; DSTIP=1.2.3.4; SRCPORT=3333-3334; DSTPORT=5353-5354;\r\nSOPT ACTION=pass; TIMER=30\r\n\r\n',
    );
    expect(set.method).toBe('SET');
    expect(req('QUERY FCP=1.0 SEQ=4\r\n\r\n')).toEqual({ method: 'QUERY', seq: 4, pme: undefined });
    const rel = req(
      'RELEASE FCP=1.0 SEQ=8\r\nPME PROTO=17; SRCIP=10.0.0.5; DSTIP=1.2.3.4; SRCPORT=3333-3334; DSTPORT=5353-5354;\r\n\r\n',
    );
    if (rel.method !== 'RELEASE' || set.method !== 'SET') throw new Error('methods');
    expect(pmeKey(rel.pme)).toBe(pmeKey(set.pme));
  });

  it('answers FCP=2.0 with 503 and the version as detail (§4.3)', () => {
    expect(err('SET FCP=2.0 SEQ=13\r\n\r\n')).toEqual({ status: 503, detail: '2.0', seq: 13 });
  });

  it('answers an unknown AVP with 400 unknown token (§4.3, §6 #8)', () => {
    expect(err('SET FCP=1.0 SEQ=14\r\nPME FOO=bar;\r\n\r\n')).toMatchObject({
      status: 400,
      detail: 'unknown token "FOO=bar"',
      seq: 14,
    });
  });

  it('parses ICMPTYPE and ACTION=reject ICMPMESSAGE (§4.3)', () => {
    const r = req(
      'SET FCP=1.0 SEQ=18\r\nPME PROTO=1; ICMPTYPE=8:0; SRCIP=10.0.0.12;\r\nSOPT ACTION=reject ICMPMESSAGE=3:3\r\n\r\n',
    );
    if (r.method !== 'SET') throw new Error('not SET');
    expect(r.pme.icmpType).toEqual({ type: 8, code: 0 });
    expect(r.options).toEqual({ action: 'reject', icmpMessage: { type: 3, code: 3 } });
  });

  it('answers an unknown method with 400 misplaced token (§4.3)', () => {
    expect(err('FOO FCP=1.0 SEQ=34\r\n\r\n')).toMatchObject({ status: 400, seq: 34 });
  });

  it('frames two pipelined requests in one segment', () => {
    const r = both('QUERY FCP=1.0 SEQ=31\r\n\r\nQUERY FCP=1.0 SEQ=32\r\n\r\n');
    expect(r).toHaveLength(2);
  });

  it('reports QUIT on its own line (§6 #33)', () => {
    expect(both('quit\r\n')).toEqual([{ kind: 'quit' }]);
  });
});

describe('requests: syntax variants the server accepts (§2.5, §6 #1, #6, #7, #9)', () => {
  const canonical = 'PROTO=17; DSTIP=198.18.0.2; DSTPORT=40000-40001;';

  it.each([
    [
      'v0.19 CRLF',
      'SET FCP=1.0 SEQ=7\r\nPME PROTO=17; DSTIP=198.18.0.2; DSTPORT=40000-40001;\r\nSOPT ACTION=pass; TIMER=30;\r\n\r\n',
    ],
    [
      'bare LF',
      'SET FCP=1.0 SEQ=7\nPME PROTO=17; DSTIP=198.18.0.2; DSTPORT=40000-40001;\nSOPT ACTION=pass; TIMER=30;\n\n',
    ],
    [
      'lower case',
      'set fcp=1.0 seq=7\npme proto=17; dstip=198.18.0.2; dstport=40000-40001;\nsopt action=PASS; timer=30;\n\n',
    ],
    [
      'spaces around = - and ;',
      'SET FCP = 1.0 SEQ = 7\r\nPME PROTO = 17 ; DSTIP = 198.18.0.2 ; DSTPORT = 40000 - 40001\r\nSOPT ACTION = pass , TIMER = 30\r\n\r\n',
    ],
    [
      'commas and tabs',
      'SET\tFCP=1.0\tSEQ=7\r\nPME\tPROTO=17,DSTIP=198.18.0.2,DSTPORT=40000-40001\r\nSOPT ACTION=pass,TIMER=30\r\n\r\n',
    ],
    [
      'flat v0.16',
      'SET FCP=1.0 SEQ=7 PROTO=17 DSTIP=198.18.0.2 DSTPORT=40000-40001 ACTION=pass TIMER=30\r\n\r\n',
    ],
    [
      'host mask and leading zeros',
      'SET FCP=1.0 SEQ=7\r\nPME PROTO=017; DSTIP=198.18.0.2/255.255.255.255; DSTPORT=40000-040001;\r\nSOPT ACTION=pass; TIMER=30;\r\n\r\n',
    ],
    [
      'empty line with trailing blanks',
      'SET FCP=1.0 SEQ=7\r\nPME PROTO=17; DSTIP=198.18.0.2; DSTPORT=40000-40001;\r\nSOPT ACTION=pass; TIMER=30;\r\n \t\r\n',
    ],
  ])('%s', (_name, wire) => {
    const r = req(wire);
    if (r.method !== 'SET') throw new Error('not SET');
    expect(r.seq).toBe(7);
    expect(pmeKey(r.pme)).toBe(canonical);
    expect(r.options).toEqual({ action: 'pass', timer: 30 });
  });

  it('maps the legacy QUERYNAT names IP/PORT/UPPERPORT (§6 #1)', () => {
    expect(req('QUERYNAT FCP=1.0 SEQ=5 IP=10.0.0.1 PORT=3000 UPPERPORT=3001 PROTO=17\n\n')).toEqual(
      {
        method: 'QUERYNAT',
        seq: 5,
        nat: { srcIp: '10.0.0.1', srcPorts: [3000, 3001], proto: 17 },
      },
    );
  });

  it('accepts IPv6 addresses with /prefix as an extension', () => {
    const r = req(
      'SET FCP=1.0 SEQ=9\r\nPME PROTO=17; SRCIP=2001:DB8:0:0::0/64; DSTIP=2001:db8:1::0002; DSTPORT=5000;\r\nSOPT ACTION=pass; TIMER=20;\r\n\r\n',
    );
    if (r.method !== 'SET') throw new Error('not SET');
    expect(pmeKey(r.pme)).toBe('PROTO=17; SRCIP=2001:db8::/64; DSTIP=2001:db8:1::2; DSTPORT=5000;');
    // The backend's view carries the same key, computed or handed over by the caller.
    const fw = toFirewallRule(r.pme, 'pass');
    expect(fw.key).toBe(pmeKey(r.pme));
    expect(toFirewallRule(r.pme, 'pass', fw.key)).toEqual(fw);
    expect(fw.dst).toEqual({ address: '2001:db8:1::2', prefix: 128 });
  });

  it('treats SEQ as optional (reply SEQ=0)', () => {
    expect(req('QUERY FCP=1.0\r\n\r\n')).toEqual({ method: 'QUERY', seq: 0, pme: undefined });
  });
});

describe('requests: errors are values with the status to answer', () => {
  it.each([
    ['402 for an AVP without value', 'SET FCP=1.0 SEQ=1\nPME PROTO=;\n\n', 402],
    ['402 for a bare AVP name', 'SET FCP=1.0 SEQ=1\nPME PROTO\n\n', 402],
    ['400 duplicate AVP (§6 #34)', 'SET FCP=1.0 SEQ=1\nPME PROTO=17; PROTO=6;\n\n', 400],
    ['400 ports without TCP/UDP', 'SET FCP=1.0 SEQ=1\nPME PROTO=1; DSTPORT=5000;\n\n', 400],
    ['400 port > 65535', 'SET FCP=1.0 SEQ=1\nPME PROTO=17; DSTPORT=70000;\n\n', 400],
    ['400 lo > hi', 'SET FCP=1.0 SEQ=1\nPME PROTO=17; DSTPORT=6000-5000;\n\n', 400],
    [
      '400 non-contiguous mask (§6 #22)',
      'SET FCP=1.0 SEQ=1\nPME DSTIP=10.0.0.0/255.0.255.0;\n\n',
      400,
    ],
    ['400 octal-looking address', 'SET FCP=1.0 SEQ=1\nPME DSTIP=010.0.0.1;\n\n', 400],
    ['400 SOPT in RELEASE', 'RELEASE FCP=1.0 SEQ=1\nPME PROTO=17;\nSOPT ACTION=pass;\n\n', 400],
    ['400 ACTION not pass/drop/reject', 'SET FCP=1.0 SEQ=1\nSOPT ACTION=accept;\n\n', 400],
    ['400 PME after SOPT', 'SET FCP=1.0 SEQ=1\nSOPT ACTION=pass;\nPME PROTO=17;\n\n', 400],
    ['400 duplicate method', 'SET FCP=1.0 SEQ=1 SET\n\n', 400],
    ['400 FCP not after method', 'SET SEQ=1 FCP=1.0\n\n', 400],
    ['400 NAT PROTO=1', 'QUERYNAT FCP=1.0 SEQ=1\nSRCIP=10.0.0.1; SRCPORT=5; PROTO=1;\n\n', 400],
    ['400 NAT without SRCIP', 'QUERYNAT FCP=1.0 SEQ=1\nSRCPORT=5; PROTO=17;\n\n', 400],
    ['400 non-ASCII byte', 'SET FCP=1.0 SEQ=1\nPME PROTO=1\u00e9;\n\n', 400],
    ['400 families mixed', 'SET FCP=1.0 SEQ=1\nPME SRCIP=::1; DSTIP=10.0.0.1;\n\n', 400],
  ])('%s', (_name, wire, status) => {
    expect(err(wire).status).toBe(status);
  });

  it('carries the SEQ of the failing request when it could be read', () => {
    expect(err('SET FCP=1.0 SEQ=77\nPME BOGUS=1;\n\n').seq).toBe(77);
  });

  it('stops at the size limit', () => {
    const framer = new RequestFramer({ maxRequestBytes: 100 });
    const evs = framer.push(Buffer.from(`SET FCP=1.0 SEQ=1\n${'PME PROTO=17;'.repeat(20)}\n\n`));
    expect(evs).toEqual([{ kind: 'too-long', limit: 100 }]);
    expect(framer.push(Buffer.from('QUERY FCP=1.0\n\n'))).toEqual([]);
  });

  it('recognises only complete empty lines; a CR alone does not end a request', () => {
    const framer = new RequestFramer();
    expect(framer.push(Buffer.from('QUERY FCP=1.0 SEQ=1\r\n\r'))).toEqual([]);
    expect(framer.push(Buffer.from('\n'))).toHaveLength(1);
  });
});

describe('requests: encoder writes v0.19 with CRLF and round-trips', () => {
  const pme = toPme({
    proto: 'udp',
    src: '198.18.1.0/24',
    dst: '198.18.0.2',
    dstPort: [40000, 40001],
  });
  const cases: FcpRequest[] = [
    { method: 'SET', seq: 1, pme, options: { action: 'pass', timer: 30 } },
    { method: 'SET', seq: 2, pme, options: { action: 'pass', tosModifier: 4, timer: 0, log: 2 } },
    {
      method: 'SET',
      seq: 3,
      pme: toPme({ proto: 'icmp', dst: '198.18.0.2', icmpType: { type: 8 } }),
      options: { action: 'reject', icmpMessage: { type: 3, code: 1 }, reflexive: false },
    },
    { method: 'RELEASE', seq: 4, pme },
    { method: 'QUERY', seq: 5, pme: undefined },
    { method: 'QUERY', seq: 6, pme: toPme({ proto: 'tcp', dst: '2001:db8::/64', dstPort: 5061 }) },
    { method: 'QUERYNAT', seq: 7, nat: { srcIp: '198.18.0.9', srcPorts: [3000, 3001], proto: 17 } },
    {
      method: 'RELEASENAT',
      seq: 8,
      nat: { srcIp: '198.18.0.9', srcPorts: [3000, 3000], proto: 6 },
    },
  ];
  it.each(cases.map((c) => [c.method, c] as const))('%s', (_m, c) => {
    const wire = encodeRequest(c);
    expect(wire.endsWith('\r\n\r\n')).toBe(true);
    expect(wire.replace(/\r\n/g, '')).not.toMatch(/[\r\n]/);
    expect(req(wire)).toEqual(c);
  });

  it('writes the spec example byte for byte', () => {
    const wire = encodeRequest({
      method: 'SET',
      seq: 395,
      pme: toPme({
        proto: 17,
        src: '192.168.99.3',
        dst: '168.56.34.2',
        srcPort: [3333, 3334],
        dstPort: [5353, 5354],
      }),
      options: { action: 'pass', tosModifier: 4, timer: 30 },
    });
    expect(wire).toBe(
      'SET FCP=1.0 SEQ=395\r\nPME PROTO=17; SRCIP=192.168.99.3; DSTIP=168.56.34.2; SRCPORT=3333-3334; DSTPORT=5353-5354;\r\nSOPT ACTION=pass, TOSFLD=4; TIMER=30;\r\n\r\n',
    );
  });
});

// ---------------------------------------------------------------------------------------------

function decodeAll(wire: string, kinds: ResponseBodyKind[], byteByByte: boolean): ResponseEvent[] {
  const queue = [...kinds];
  const dec = new ResponseDecoder((i) => queue[i] ?? 'none');
  const out: ResponseEvent[] = [];
  const chunks = byteByByte ? [...wire] : [wire];
  for (const c of chunks) {
    for (const ev of dec.push(c)) {
      out.push(ev);
      if (ev.kind === 'response') queue.shift();
    }
  }
  return out;
}

function decodeBoth(wire: string, kinds: ResponseBodyKind[]): ResponseEvent[] {
  const whole = decodeAll(wire, kinds, false);
  expect(decodeAll(wire, kinds, true)).toEqual(whole);
  return whole;
}

describe('responses: both layouts and fcpd quirks (§3.1, §6 #2-#4)', () => {
  it('decodes the published QUERYNAT reply (two-line layout, §4.1)', () => {
    expect(
      decodeBoth('FCP=1.0 SEQ=394\r\n200 OK\r\nIP=168.56.34.3 PORT=3783-3784\r\n\r\n', ['nat']),
    ).toEqual([
      {
        kind: 'response',
        response: {
          seq: 394,
          status: 200,
          reason: 'OK',
          nat: { ip: '168.56.34.3', ports: [3783, 3784] },
        },
      },
    ]);
  });

  it('decodes the fcpd QUERYNAT reply (one-line layout, bare LF, §4.1)', () => {
    expect(
      decodeBoth('FCP=1.0 SEQ=394 200 OK\nIP=168.56.34.3 PORT=3783-3784\r\n', ['nat']),
    ).toEqual([
      {
        kind: 'response',
        response: {
          seq: 394,
          status: 200,
          reason: 'OK',
          nat: { ip: '168.56.34.3', ports: [3783, 3784] },
        },
      },
    ]);
  });

  it('accepts PORT=p-p (§6 #21)', () => {
    const evs = decodeBoth('FCP=1.0 SEQ=101 200 OK\nIP=217.130.254.3 PORT=2222-2222\r\n', ['nat']);
    expect(evs[0]).toMatchObject({ response: { nat: { ports: [2222, 2222] } } });
  });

  it('decodes SET replies in both layouts, pipelined', () => {
    const evs = decodeBoth(
      'FCP=1.0 SEQ=395\r\n200 OK\r\n\r\nFCP=1.0 SEQ=395 200 OK\r\nFCP=1.0 SEQ=31 200 OK\r\nFCP=1.0 SEQ=32 201 Keeping Alive\r\n',
      ['none', 'none', 'none', 'none'],
    );
    expect(
      evs.map((e) => (e.kind === 'response' ? [e.response.seq, e.response.status] : e)),
    ).toEqual([
      [395, 200],
      [395, 200],
      [31, 200],
      [32, 201],
    ]);
  });

  it('decodes the fcpd QUERY body (§4.3) and the empty QUERY reply', () => {
    const evs = decodeBoth(
      'FCP=1.0 SEQ=4 200 OK\nPROTO=17 SRCIP=10.0.0.5 DSTIP=1.2.3.4 SRCPORT=3333-3334 DSTPORT=5353-5354 ACTION=DROP TIMER=30 \n\r\nFCP=1.0 SEQ=5 200 OK\n\n\r\n',
      ['query', 'query'],
    );
    expect(evs).toHaveLength(2);
    const first = evs[0];
    if (first?.kind !== 'response') throw new Error('no response');
    expect(first.response.rules).toHaveLength(1);
    const rule = first.response.rules?.[0];
    expect(rule?.pme && pmeKey(rule.pme)).toBe(
      'PROTO=17; SRCIP=10.0.0.5; DSTIP=1.2.3.4; SRCPORT=3333-3334; DSTPORT=5353-5354;',
    );
    expect(rule?.options).toEqual({ action: 'drop', timer: 30 });
    expect(evs[1]).toMatchObject({ response: { seq: 5, rules: [] } });
  });

  it('decodes an ABNF-layout QUERY body with PME and SOPT on separate lines', () => {
    const evs = decodeBoth(
      'FCP=1.0 SEQ=6\r\n200 OK\r\nPME PROTO=17; DSTIP=1.2.3.4; DSTPORT=5000;\r\nSOPT ACTION=pass; TIMER=30;\r\n;\r\nPME PROTO=6; DSTIP=1.2.3.5; DSTPORT=5001;\r\nSOPT ACTION=drop; TIMER=5;\r\n\r\n',
      ['query'],
    );
    const r = evs[0];
    if (r?.kind !== 'response') throw new Error('no response');
    expect(r.response.rules?.map((x) => [x.pme && pmeKey(x.pme), x.options.action])).toEqual([
      ['PROTO=17; DSTIP=1.2.3.4; DSTPORT=5000;', 'pass'],
      ['PROTO=6; DSTIP=1.2.3.5; DSTPORT=5001;', 'drop'],
    ]);
  });

  it('skips the fcpd banner and accepts a bare 400 line (§6 #4)', () => {
    const evs = decodeBoth(
      'fcpd v0.1 - GPLed\nWelcome Pilgrim.\n400 Bad Request: misplaced token "34"\n\r\n',
      ['none'],
    );
    expect(evs).toEqual([
      { kind: 'junk', line: 'fcpd v0.1 - GPLed' },
      { kind: 'junk', line: 'Welcome Pilgrim.' },
      {
        kind: 'response',
        response: { seq: undefined, status: 400, reason: 'Bad Request: misplaced token "34"' },
      },
    ]);
  });

  it('keys on the code when the 401 text is glued to the reason (§3.1)', () => {
    const evs = decodeBoth(
      "FCP=1.0 SEQ=0 401 Unauthorizedyour IP isn't in the Access Control List (ACL).\r\n",
      ['none'],
    );
    expect(evs[0]).toMatchObject({ response: { seq: 0, status: 401 } });
  });

  it('does not wait for a QUERYNAT body that never comes', () => {
    const evs = decodeBoth('FCP=1.0 SEQ=1 200 OK\r\nFCP=1.0 SEQ=2 200 OK\r\n', ['nat', 'none']);
    expect(evs.map((e) => e.kind === 'response' && e.response.seq)).toEqual([1, 2]);
  });
});

describe('responses: every status code, both layouts, whole and byte by byte', () => {
  const codes = Object.values(FcpStatus);
  for (const style of ['fcpd', 'abnf'] as const) {
    it.each(codes)(`${style} %i`, (status) => {
      const wire = encodeResponse({ seq: 42, status, detail: 'why' }, style);
      expect(wire.endsWith('\r\n\r\n')).toBe(true);
      const evs = decodeBoth(wire, ['none']);
      expect(evs).toEqual([
        {
          kind: 'response',
          response: { seq: 42, status, reason: `${reasonPhrase(status)}: why` },
        },
      ]);
    });
  }

  it('writes the fcpd layout by default', () => {
    expect(encodeResponse({ seq: 395, status: 200 })).toBe('FCP=1.0 SEQ=395 200 OK\r\n\r\n');
    expect(encodeResponse({ seq: 395, status: 200 }, 'abnf')).toBe(
      'FCP=1.0 SEQ=395\r\n200 OK\r\n\r\n',
    );
    expect(
      encodeResponse(
        { seq: 101, status: 200, nat: { ip: '217.130.254.3', ports: [2222, 2223] } },
        'abnf',
      ),
    ).toBe('FCP=1.0 SEQ=101\r\n200 OK\r\nIP=217.130.254.3 PORT=2222-2223\r\n\r\n');
  });

  it('never lets a detail break the line structure', () => {
    const wire = encodeResponse({ seq: 1, status: 400, detail: 'x\r\nFCP=1.0 SEQ=2 200 OK' });
    expect(wire.split('\r\n')).toHaveLength(3);
  });
});
