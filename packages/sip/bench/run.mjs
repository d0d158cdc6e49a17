// Benchmark: @pinhole/sip (built dist/) against the npm `sip` package (0.0.6) and `drachtio-sip`,
// side by side in one process, on a realistic INVITE and 200 OK with SDP.
//
//   npm run build -w @pinhole/sip && npm run bench -w @pinhole/sip
//
// BENCH_SECONDS (default 0.2) is the CPU time per measurement (process.cpuUsage, so time the
// process is not running does not count); BENCH_ROUNDS (default 7) interleaved rounds, best kept
// per library: on a shared machine, short rounds give every library the same chance of a quiet
// moment. Bounded: total run time is about rounds x 28 measurements x 1.4 BENCH_SECONDS.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { parse, serialize } from '../dist/index.js';

const require = createRequire(import.meta.url);
const sip = require('sip');
const drachtio = require('drachtio-sip');

const SECONDS = Math.min(Math.max(Number(process.env.BENCH_SECONDS ?? '0.2'), 0.05), 5);
const ROUNDS = Math.min(Math.max(Math.trunc(Number(process.env.BENCH_ROUNDS ?? '7')), 1), 20);
const fixtures = {
  INVITE: readFileSync(new URL('./fixtures/invite.sip', import.meta.url)),
  '200 OK': readFileSync(new URL('./fixtures/ok200.sip', import.meta.url)),
};
const NEW_VIA = 'SIP/2.0/UDP 198.18.0.1:5060;branch=z9hG4bKbench.1';

let sink = 0;
const size = (v) => (typeof v === 'string' ? v.length : Number(v) || 0);
// Fixed arity (no rest array per call): the harness costs every library the same few ns. The
// values of the last call are kept, so the check below can compare what each library read.
const last = [];
function consume(a, b, c, d, e, f, g, h) {
  sink += size(a) + size(b) + size(c) + size(d) + size(e) + size(f) + size(g) + size(h);
  last[0] = a;
  last[1] = b;
  last[2] = c;
  last[3] = d;
  last[4] = e;
  last[5] = f;
  last[6] = g;
  last[7] = h;
}

// ---- "read what a proxy needs": top Via branch, CSeq, Call-ID, From/To tags, Max-Forwards,
// Content-Length, from the raw bytes of one datagram.
const read = {
  '@pinhole/sip': (buf) => {
    const r = parse(buf);
    if (!r.ok) throw new Error(r.error.reason);
    const m = r.message;
    const cseq = m.cseq();
    consume(
      m.topVia()?.branch,
      cseq?.seq,
      cseq?.method,
      m.callId(),
      m.from()?.tag,
      m.to()?.tag,
      m.maxForwards(),
      m.contentLength(),
    );
  },
  'sip@0.0.6': (buf) => {
    const m = sip.parse(buf);
    const h = m.headers;
    consume(
      h.via[0].params.branch,
      h.cseq.seq,
      h.cseq.method,
      h['call-id'],
      h.from.params.tag,
      h.to.params.tag,
      +h['max-forwards'],
      +h['content-length'],
    );
  },
  'drachtio-sip (eager)': (buf) => {
    const m = drachtio.parser.parseSipMessage(buf.toString('utf8'), false);
    const h = m.headers;
    consume(
      h.via[0].params.branch,
      h.cseq.seq,
      h.cseq.method,
      h['call-id'],
      h.from.params.tag,
      h.to?.params.tag,
      +h['max-forwards'],
      +h['content-length'],
    );
  },
  'drachtio-sip (lazy)': (buf) => {
    const m = new drachtio.SipMessage(buf.toString('utf8'));
    const cseq = m.getParsedHeader('cseq');
    consume(
      m.getParsedHeader('via')[0].params.branch,
      cseq.seq,
      cseq.method,
      m.get('call-id'),
      m.getParsedHeader('from').params.tag,
      m.getParsedHeader('to').params.tag,
      +m.get('max-forwards'),
      +m.get('content-length'),
    );
  },
};

// Same work check: every library reads the same values from each fixture.
for (const [msgName, buf] of Object.entries(fixtures)) {
  const seen = {};
  for (const [implName, fn] of Object.entries(read)) {
    fn(buf);
    // an absent Max-Forwards (the 200 OK) is undefined here and NaN from `+undefined` there
    const norm = last.map((v) => (v === undefined || Number.isNaN(v) ? null : String(v)));
    seen[implName] = JSON.stringify(norm);
  }
  if (new Set(Object.values(seen)).size !== 1) {
    throw new Error(`read ${msgName}: libraries disagree: ${JSON.stringify(seen, null, 1)}`);
  }
}

// ---- parse only: framing and header index (for the competitors, their full parse).
const parseOnly = {
  '@pinhole/sip': (buf) => {
    const r = parse(buf);
    if (!r.ok) throw new Error(r.error.reason);
    consume(r.message.status);
  },
  'sip@0.0.6': (buf) => consume(sip.parse(buf).status),
  'drachtio-sip (eager)': (buf) =>
    consume(drachtio.parser.parseSipMessage(buf.toString('utf8'), false).status),
  'drachtio-sip (lazy)': (buf) => consume(new drachtio.SipMessage(buf.toString('utf8')).status),
};

// ---- forward path, what a stateless proxy does to the message it relays, then serialise it to
// bytes (RFC 3261 §16.6 for a request, §16.7 for a response):
//   request (INVITE): decrement Max-Forwards, prepend a Record-Route, prepend a Via;
//   response (200 OK): remove the top Via (the proxy's own).
// Each library makes the same edits through its own API; the output is the edited message.
const NEW_RR = '<sip:198.18.0.1;lr>';
const forward = {
  '@pinhole/sip': (buf) => {
    const r = parse(buf);
    if (!r.ok) throw new Error(r.error.reason);
    const m = r.message;
    if (m.isRequest) {
      m.decrementMaxForwards();
      m.prependRecordRoute(NEW_RR);
      m.prependVia(NEW_VIA);
    } else {
      m.removeTopVia();
    }
    const out = serialize(m);
    consume(out.length);
    return out;
  },
  'sip@0.0.6': (buf) => {
    const m = sip.parse(buf);
    const h = m.headers;
    if (m.method !== undefined) {
      h['max-forwards'] = +h['max-forwards'] - 1;
      const rr = { uri: 'sip:198.18.0.1;lr', params: {} };
      if (h['record-route'] === undefined) h['record-route'] = [rr];
      else h['record-route'].unshift(rr);
      h.via.unshift({
        version: '2.0',
        protocol: 'UDP',
        host: '198.18.0.1',
        port: 5060,
        params: { branch: 'z9hG4bKbench.1' },
      });
    } else {
      h.via.shift();
    }
    const out = Buffer.from(sip.stringify(m), 'binary');
    consume(out.length);
    return out;
  },
  'drachtio-sip (lazy)': (buf) => {
    // drachtio's stringifier needs string headers (its lazy mode) for unparsed ones; a header's
    // lines are joined into one comma-separated string.
    const m = new drachtio.SipMessage(buf.toString('utf8'));
    const h = m.headers;
    if (m.method !== undefined) {
      h['max-forwards'] = String(+h['max-forwards'] - 1);
      const rr = h['record-route'];
      h['record-route'] = rr === undefined ? NEW_RR : `${NEW_RR},${rr}`;
      h.via = `${NEW_VIA},${h.via}`;
    } else {
      const comma = h.via.indexOf(',');
      if (comma === -1) delete h.via;
      else h.via = h.via.slice(comma + 1);
    }
    const out = Buffer.from(m.toString(), 'utf8');
    consume(out.length);
    return out;
  },
};

// Same work check: every library's forwarded bytes carry the same edits (read back with
// @pinhole/sip): Via list, Record-Route list, Max-Forwards, and the body.
for (const [msgName, buf] of Object.entries(fixtures)) {
  const summary = {};
  for (const [implName, fn] of Object.entries(forward)) {
    const r = parse(fn(buf));
    if (!r.ok) throw new Error(`${implName} forward output does not parse: ${r.error.reason}`);
    const m = r.message;
    summary[implName] = JSON.stringify([
      m.via().map((v) => v.branch),
      m.recordRoute().map((a) => a.uri.host),
      m.maxForwards(),
      m.bodyText(),
    ]);
  }
  const distinct = new Set(Object.values(summary));
  if (distinct.size !== 1) {
    throw new Error(`forward ${msgName}: libraries disagree: ${JSON.stringify(summary, null, 1)}`);
  }
}

/** Process CPU time in ms: robust against other processes competing for the CPUs. */
function cpuMs() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function measure(fn, buf) {
  // warm-up
  const warmEnd = performance.now() + Math.min(200, SECONDS * 400);
  while (performance.now() < warmEnd) for (let i = 0; i < 100; i++) fn(buf);
  let n = 0;
  const wallEnd = performance.now() + SECONDS * 4000; // hard bound on a starved machine
  const start = cpuMs();
  const end = start + SECONDS * 1000;
  let now = start;
  while (now < end && performance.now() < wallEnd) {
    for (let i = 0; i < 200; i++) fn(buf);
    n += 200;
    now = cpuMs();
  }
  return (n / (now - start)) * 1000;
}

const results = [];
for (const [opName, impls] of [
  ['parse only', parseOnly],
  ['read', read],
  ['forward', forward],
]) {
  for (const [msgName, buf] of Object.entries(fixtures)) {
    const best = {};
    for (let round = 0; round < ROUNDS; round++) {
      for (const [implName, fn] of Object.entries(impls)) {
        const rate = measure(fn, buf);
        best[implName] = Math.max(best[implName] ?? 0, rate);
      }
    }
    results.push({ opName, msgName, size: buf.length, best });
  }
}

const fmt = (n) => Math.round(n).toLocaleString('en-US');
const cpu = cpus()[0]?.model ?? 'unknown';
console.log(`node ${process.version}, ${cpus().length} CPUs, ${cpu}`);
console.log(
  `${ROUNDS} rounds x ${SECONDS}s of process CPU time per measurement, best round kept\n`,
);
console.log('| operation | message | parser | messages/s | vs faster competitor |');
console.log('|---|---|---|---:|---:|');
for (const { opName, msgName, size, best } of results) {
  const competitors = Object.entries(best).filter(([k]) => k !== '@pinhole/sip');
  const fastest = Math.max(...competitors.map(([, v]) => v));
  for (const [impl, rate] of Object.entries(best)) {
    const ratio = impl === '@pinhole/sip' ? `**${(rate / fastest).toFixed(1)}x**` : '';
    console.log(`| ${opName} | ${msgName} (${size} B) | ${impl} | ${fmt(rate)} | ${ratio} |`);
  }
}
if (sink === 42) console.log('');
