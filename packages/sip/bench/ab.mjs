// In-process A/B of two builds of this package (e.g. a scratch copy of an older dist/ and the
// current one): both are loaded into one process and measured in alternating short rounds of
// process CPU time, so both see the same machine load. Prints the best time of each and the
// median (and quartiles) of the per-round ratio B/A.
//
//   node bench/ab.mjs <dist A> <dist B> [parse|read|forward] [invite|ok200] [rounds]
//
// A scratch copy of an older dist/ needs this repository's node_modules above it (a symlink).
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const [A, B, op = 'read', msg = 'invite', roundsText = '30'] = process.argv.slice(2);
if (A === undefined || B === undefined) throw new Error('usage: ab.mjs <dist A> <dist B> ...');
const libs = [
  await import(pathToFileURL(`${A}/index.js`).href),
  await import(pathToFileURL(`${B}/index.js`).href),
];
const buf = readFileSync(new URL(`./fixtures/${msg}.sip`, import.meta.url));
const ROUNDS = Math.min(Math.max(Math.trunc(Number(roundsText)), 4), 200);
const NEW_VIA = 'SIP/2.0/UDP 198.18.0.1:5060;branch=z9hG4bKbench.1';
const NEW_RR = '<sip:198.18.0.1;lr>';
const size = (v) => (typeof v === 'string' ? v.length : Number(v) || 0);
let sink = 0;

function make({ parse, serialize }) {
  const ops = {
    parse: () => {
      const r = parse(buf);
      sink += r.ok ? r.message.status : 1;
    },
    read: () => {
      const m = parse(buf).message;
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
    forward: () => {
      const m = parse(buf).message;
      if (m.isRequest) {
        m.decrementMaxForwards();
        m.prependRecordRoute(NEW_RR);
        m.prependVia(NEW_VIA);
      } else m.removeTopVia();
      sink += serialize(m).length;
    },
  };
  const fn = ops[op];
  if (fn === undefined) throw new Error(`unknown op ${op}`);
  return fn;
}
const fns = libs.map(make);
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
/** ns per call over `ms` of process CPU time (bounded in wall time too). */
function measure(fn, ms) {
  let n = 0;
  const start = cpuMs();
  const wallEnd = performance.now() + ms * 20;
  let now = start;
  while (now - start < ms && performance.now() < wallEnd) {
    for (let i = 0; i < 500; i++) fn();
    n += 500;
    now = cpuMs();
  }
  return ((now - start) * 1e6) / n;
}
for (const fn of fns) measure(fn, 300); // warm-up
const ratios = [];
const best = [Infinity, Infinity];
for (let r = 0; r < ROUNDS; r++) {
  const t = [0, 0];
  for (const i of r % 2 === 0 ? [0, 1] : [1, 0]) t[i] = measure(fns[i], 40);
  ratios.push(t[1] / t[0]);
  best[0] = Math.min(best[0], t[0]);
  best[1] = Math.min(best[1], t[1]);
}
ratios.sort((x, y) => x - y);
const q = (f) => ratios[Math.min(ratios.length - 1, Math.floor(ratios.length * f))].toFixed(3);
let load = 'n/a';
try {
  load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
} catch {
  // not Linux
}
console.log(
  `${op} ${msg}: A best ${best[0].toFixed(0)} ns, B best ${best[1].toFixed(0)} ns; ` +
    `B/A per round: median ${q(0.5)} (quartiles ${q(0.25)}-${q(0.75)}) over ${ROUNDS} rounds; ` +
    `load ${load}${sink === 42 ? ' ' : ''}`,
);
