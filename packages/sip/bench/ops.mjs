// Fixed-count driver for CPU-independent comparisons (instruction counts under
// `valgrind --tool=callgrind`, or process CPU time): runs one @pinhole/sip path N times.
//
//   node bench/ops.mjs <parse|read|cseq|forward> <invite|ok200> <N> [dist directory]
//
// Instructions per message = (Ir at N2 - Ir at N1) / (N2 - N1): start-up and warm-up cancel out.
// Run with `node --single-threaded` under valgrind so compilation happens at the same points.
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const [op = 'read', msg = 'invite', nText = '100000', dist] = process.argv.slice(2);
const { parse, serialize } = await import(
  dist === undefined ? '../dist/index.js' : pathToFileURL(`${dist}/index.js`).href
);
const buf = readFileSync(new URL(`./fixtures/${msg}.sip`, import.meta.url));
const N = Math.min(Math.max(Math.trunc(Number(nText)), 0), 10_000_000);
const NEW_VIA = 'SIP/2.0/UDP 198.18.0.1:5060;branch=z9hG4bKbench.1';
const NEW_RR = '<sip:198.18.0.1;lr>';
let sink = 0;
const size = (v) => (typeof v === 'string' ? v.length : Number(v) || 0);

const ops = {
  parse: () => {
    const r = parse(buf);
    sink += r.ok ? r.message.status : 1;
  },
  read: () => {
    const r = parse(buf);
    if (!r.ok) throw new Error(r.error.reason);
    const m = r.message;
    const cseq = m.cseq();
    sink +=
      size(m.topVia()?.branch) +
      size(cseq?.seq) +
      size(cseq?.method) +
      size(m.callId()) +
      size(m.from()?.tag) +
      size(m.to()?.tag) +
      size(m.maxForwards()) +
      size(m.contentLength());
  },
  cseq: () => {
    const r = parse(buf);
    if (!r.ok) throw new Error(r.error.reason);
    const c = r.message.cseq();
    sink += size(c?.seq) + size(c?.method);
  },
  forward: () => {
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
    sink += serialize(m).length;
  },
};
const fn = ops[op];
if (fn === undefined) throw new Error(`unknown op ${op}`);
const t0 = process.cpuUsage();
for (let i = 0; i < N; i++) fn();
const t = process.cpuUsage(t0);
console.log(
  JSON.stringify({ op, msg, N, cpuNsPerMsg: N > 0 ? ((t.user + t.system) * 1000) / N : 0, sink }),
);
