// The media window with everything in the loop: sipp calls through a real Kamailio (the
// repository's kamailio.cfg) whose HEP3 stream drives pinhole-sidecar, which drives pinhole-fcpd
// on nftables, in network namespaces (caller 198.18.1.2 -- firewall 198.18.1.1 | 198.19.1.1 --
// callee 198.19.1.2), as in test/e2e.test.ts. A stream of UDP packets, one every INTERVAL ms,
// goes from the caller toward the callee's media port for the whole run; for each call, the
// window is the time from the callee's sipp sending its 200 OK (sipp's message log) to the first
// packet sent after it that passes the nftables firewall, and the packets sent in between are
// the ones dropped.
//
// Needs root, nft, ip netns, sipp and kamailio (prints why and exits 0 otherwise); bounded by
// WINDOW_CALLS calls (default 20, one per second) and a hard deadline. Uses the built dist/ of
// the sidecar, fcpd and testkit.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  cleanupNetns,
  createRoutedTopology,
  eventually,
  JsonLogProcess,
  missingRequirements,
  sipp,
} from '@pinhole/testkit';

const CALLS = Math.max(1, Math.min(200, Number(process.env.WINDOW_CALLS ?? 20)));
const INTERVAL = 2;
const CALLER = '198.18.1.2';
const CALLEE = '198.19.1.2';
const KAMAILIO = '198.18.1.1';
const MEDIA = 40000;
const CAPTURE_ID = 2001;
const SIDECAR_CLI = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
const FCPD_CLI = fileURLToPath(new URL('../../fcpd/dist/cli.js', import.meta.url));
const KAMAILIO_CFG = fileURLToPath(new URL('../kamailio/kamailio.cfg', import.meta.url));
const SCENARIOS = fileURLToPath(new URL('../../proxy/test/scenarios/', import.meta.url));
// Everything ends by then, whatever happens.
const DEADLINE_MS = CALLS * 1000 + 60_000;

// sipp writes its message log in local time; make that UTC.
process.env.TZ = 'UTC';

// Runs in the caller's namespace: `<seq> <send time ms>` every INTERVAL ms to host:port until
// stdin closes (or the bound), then prints [[seq, sendTime], ...].
const STREAMER = `
const dgram = require('node:dgram');
const [host, port, every, maxMs] = process.argv.slice(1);
const s = dgram.createSocket('udp4');
const sent = [];
let seq = 0;
const now = () => performance.timeOrigin + performance.now();
const t = setInterval(() => {
  const at = now();
  const n = ++seq;
  sent.push([n, at]);
  s.send(n + ' ' + at, Number(port), host);
}, Number(every));
const end = () => { clearInterval(t); process.stdout.write(JSON.stringify(sent) + '\\n'); s.close(); };
const bound = setTimeout(end, Number(maxMs));
process.stdin.on('end', () => { clearTimeout(bound); end(); });
process.stdin.resume();
`;

// Runs in the callee's namespace: records the sequence numbers that arrive, prints them when
// stdin closes (or the bound).
const RECEIVER = `
const dgram = require('node:dgram');
const [host, port, maxMs] = process.argv.slice(1);
const s = dgram.createSocket('udp4');
const got = [];
s.on('message', (m) => got.push(Number(String(m).split(' ')[0])));
s.bind(Number(port), host, () => process.stdout.write('ready\\n'));
const end = () => { process.stdout.write(JSON.stringify(got) + '\\n'); s.close(); process.exit(0); };
const bound = setTimeout(end, Number(maxMs));
process.stdin.on('end', () => { clearTimeout(bound); end(); });
process.stdin.resume();
`;

function portOf(field) {
  const first = Array.isArray(field) ? String(field[0]) : String(field ?? '');
  return Number(first.slice(first.lastIndexOf(':') + 1));
}

/** Collects a child's stdout: `text()`, `ready()` (it printed `ready`), `done` (at exit). */
function collect(child) {
  let out = '';
  child.stdout.on('data', (d) => (out += d.toString()));
  return {
    text: () => out,
    ready: () => out.startsWith('ready\n'),
    done: new Promise((resolve) => child.once('exit', () => resolve(out))),
  };
}

/**
 * The messages in a sipp message log (`-trace_msg`): for each, its time (ms since the epoch),
 * whether sipp sent or received it, and its text.
 */
function sippMessages(log) {
  const out = [];
  for (const block of log.split(/^-{20,} /m).slice(1)) {
    const stamp = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})\.(\d{6})\s*\n(.*)/.exec(block);
    if (!stamp) continue;
    const at = Date.parse(`${stamp[1]}T${stamp[2]}Z`) + Number(stamp[3]) / 1000;
    out.push({ at, sent: /sent/.test(stamp[4]), text: block });
  }
  return out;
}

/** Per call: when the callee sent its 200 OK to the INVITE and when it received the BYE. */
function callTimes(log) {
  const calls = [];
  for (const m of sippMessages(log)) {
    if (m.sent && /^SIP\/2\.0 200 /m.test(m.text) && /^CSeq:\s*\d+ INVITE/im.test(m.text)) {
      calls.push({ ok: m.at, bye: Infinity });
    } else if (!m.sent && /^BYE /m.test(m.text) && calls.length > 0) {
      const last = calls[calls.length - 1];
      if (last.bye === Infinity) last.bye = m.at;
    }
  }
  return calls;
}

function quantile(sorted, q) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

async function main() {
  const missing = missingRequirements(['root', 'nft', 'netns', 'sipp', 'kamailio']);
  if (missing.length > 0) {
    console.log(`media window bench skipped: ${missing.join('; ')}`);
    return 0;
  }
  const deadline = setTimeout(() => {
    console.error('media window bench: deadline passed, giving up');
    void cleanupNetns().then(() => process.exit(1));
  }, DEADLINE_MS);
  const dir = mkdtempSync(join(tmpdir(), 'pinhole-window-'));
  const procs = [];
  let topo;
  try {
    topo = await createRoutedTopology();
    const r = topo.router;
    const fcpd = JsonLogProcess.inNetns(r, process.execPath, [
      FCPD_CLI,
      '--backend',
      'nftables',
      '--nft-mode',
      'standalone',
      '--protected',
      topo.insideNet,
      '--listen',
      'tcp:127.0.0.1:0',
    ]);
    procs.push(fcpd);
    const fcpdUp = await fcpd.waitFor((l) => l.msg === 'pinhole-fcpd started', 20_000);
    if (!fcpdUp) throw new Error(`fcpd did not start: ${fcpd.stderr.join('\n')}`);
    const sidecar = JsonLogProcess.inNetns(r, process.execPath, [
      SIDECAR_CLI,
      '--hep',
      'udp:127.0.0.1:0',
      '--server-address',
      `${KAMAILIO}:5060`,
      '--capture-id',
      String(CAPTURE_ID),
      '--fcp',
      `tcp:127.0.0.1:${portOf(fcpdUp.listen)}`,
      '--protected',
      topo.insideNet,
      '--metrics',
      'tcp:127.0.0.1:0',
      '--log-level',
      'debug',
    ]);
    procs.push(sidecar);
    const sidecarUp = await sidecar.waitFor((l) => l.msg === 'pinhole-sidecar listening', 20_000);
    if (!sidecarUp) throw new Error(`sidecar did not start: ${sidecar.stderr.join('\n')}`);
    const kamailio = JsonLogProcess.inNetns(r, 'kamailio', [
      '-f',
      KAMAILIO_CFG,
      '-DD',
      '-E',
      '-n',
      '1',
      '-l',
      `udp:${KAMAILIO}:5060`,
      '-w',
      dir,
      '-Y',
      dir,
      '-A',
      `HEP_URI="sip:127.0.0.1:${portOf(sidecarUp.hep)}"`,
      '-A',
      `HEP_CAPTURE_ID=${CAPTURE_ID}`,
    ]);
    procs.push(kamailio);
    const kamUp = await eventually(
      async () => (await r.exec('ss', ['-Hlun'])).stdout.includes(`${KAMAILIO}:5060`),
      100,
      100,
    );
    if (!kamUp) throw new Error(`Kamailio did not start: ${kamailio.stderr.join('\n')}`);

    const runMs = CALLS * 1000 + 15_000;
    const receiver = topo.inside.spawn(process.execPath, [
      '-e',
      RECEIVER,
      CALLEE,
      String(MEDIA),
      String(runMs + 2000),
    ]);
    const received = collect(receiver);
    const ready = await eventually(() => received.ready(), 100, 50);
    if (!ready) throw new Error('the media receiver did not start');

    const uasLog = join(dir, 'uas-messages.log');
    const uas = sipp(
      topo.inside,
      [
        '-sf',
        `${SCENARIOS}uas-basic.xml`,
        '-i',
        CALLEE,
        '-p',
        '5060',
        '-mp',
        '16000',
        '-m',
        String(CALLS),
        '-key',
        'mport',
        String(MEDIA),
        '-trace_msg',
        '-message_file',
        uasLog,
      ],
      runMs,
    );
    const listening = await eventually(
      async () => (await topo.inside.exec('ss', ['-Hlun'])).stdout.includes(`${CALLEE}:5060`),
      100,
      50,
    );
    if (!listening) throw new Error('the callee sipp did not start listening');
    const streamer = topo.outside.spawn(process.execPath, [
      '-e',
      STREAMER,
      CALLEE,
      String(MEDIA),
      String(INTERVAL),
      String(runMs),
    ]);
    const sentP = collect(streamer).done;
    // Media flows for a moment before the first call: those packets must all be dropped.
    await new Promise((res) => setTimeout(res, 500));
    const uac = await sipp(
      topo.outside,
      [
        `${CALLEE}:5060`,
        '-rsa',
        `${KAMAILIO}:5060`,
        '-sf',
        `${SCENARIOS}uac-basic.xml`,
        '-i',
        CALLER,
        '-p',
        '5060',
        '-mp',
        '16000',
        '-m',
        String(CALLS),
        '-r',
        '1',
        '-l',
        '1',
        '-s',
        'callee',
        '-key',
        'mport',
        '41000',
        '-d',
        '400',
      ],
      runMs,
    );
    const uasR = await uas;
    await new Promise((res) => setTimeout(res, 300));
    streamer.stdin.end();
    receiver.stdin.end();
    const sent = JSON.parse((await sentP).trim() || '[]');
    const got = new Set(JSON.parse((await received.done).trim().split('\n').pop() || '[]'));
    if (uac.code !== 0 || uasR.code !== 0) {
      console.error(
        `sipp failed: uac ${uac.code}, uas ${uasR.code}\n${uac.output}\n${uasR.output}`,
      );
    }
    const metrics = await r.exec(process.execPath, [
      '-e',
      `fetch(${JSON.stringify(sidecarUp.metrics)}).then((x) => x.text()).then((t) => process.stdout.write(t))`,
    ]);
    const calls = callTimes(readFileSync(uasLog, 'utf8'));
    const settled = sidecar
      .find((l) => l.msg === 'answer pinholes settled' && l.status === 200 && l.ok === true)
      .map((l) => l.time);
    report(calls, sent, got, settled, metrics.stdout);
    return 0;
  } finally {
    clearTimeout(deadline);
    for (const p of procs.reverse()) await p.stop();
    await topo?.destroy();
    await cleanupNetns();
    rmSync(dir, { recursive: true, force: true });
  }
}

function report(calls, sent, got, settled, metricsText) {
  const windows = [];
  const dropped = [];
  const settleLag = [];
  let alreadyOpen = 0;
  let lostWhileOpen = 0;
  let neverOpened = 0;
  const before = sent.filter(([, t]) => t < (calls[0]?.ok ?? Infinity));
  for (let i = 0; i < calls.length; i++) {
    const { ok, bye } = calls[i];
    const next = calls[i + 1]?.ok ?? Infinity;
    const previous = sent.filter(([, t]) => t < ok).at(-1);
    if (previous && got.has(previous[0])) {
      alreadyOpen++;
      continue;
    }
    const after = sent.filter(([, t]) => t >= ok && t < Math.min(next, bye));
    const firstIdx = after.findIndex(([n]) => got.has(n));
    if (firstIdx < 0) {
      neverOpened++;
      continue;
    }
    const first = after[firstIdx];
    windows.push(first[1] - ok);
    dropped.push(firstIdx);
    const s = settled.find((x) => x >= ok - 1 && x < next);
    if (s !== undefined) settleLag.push(s - ok);
    // Once open, nothing sent before the BYE reached the callee may be lost.
    lostWhileOpen += after.slice(firstIdx).filter(([n]) => !got.has(n)).length;
  }
  const sorted = (a) => [...a].sort((x, y) => x - y);
  const w = sorted(windows);
  const d = sorted(dropped);
  const sl = sorted(settleLag);
  const f = (x) => (Number.isFinite(x) ? x.toFixed(1) : '-');
  const hist = (name) => {
    const sum = Number(new RegExp(`^${name}_sum(?:\\{\\})? (\\S+)`, 'm').exec(metricsText)?.[1]);
    const count = Number(
      new RegExp(`^${name}_count(?:\\{\\})? (\\S+)`, 'm').exec(metricsText)?.[1],
    );
    return count > 0 ? (1000 * sum) / count : NaN;
  };
  const span = sent.length > 1 ? (sent.at(-1)[1] - sent[0][1]) / (sent.length - 1) : NaN;
  console.log(
    `calls: ${calls.length} answered; ${windows.length} measured; ${alreadyOpen} skipped (hole still open from the previous call); ${neverOpened} never opened`,
  );
  console.log(
    `packets: ${sent.length} sent, one every ${f(span)} ms on average (asked: ${INTERVAL} ms); ${before.length} before the first 200 OK, of which passed: ${before.filter(([n]) => got.has(n)).length}; lost after a hole opened and before its BYE: ${lostWhileOpen}`,
  );
  if (process.env.WINDOW_VERBOSE === '1') console.log(`windows (ms): ${w.map(f).join(' ')}`);
  console.log('');
  console.log('| from the callee sending its 200 OK to ... | samples | p50 | p90 | max |');
  console.log('| --- | ---: | ---: | ---: | ---: |');
  console.log(
    `| the first packet through nftables (ms) | ${w.length} | ${f(quantile(w, 0.5))} | ${f(quantile(w, 0.9))} | ${f(w.at(-1))} |`,
  );
  console.log(
    `| packets dropped, one sent every ${f(span)} ms | ${d.length} | ${quantile(d, 0.5)} | ${quantile(d, 0.9)} | ${d.at(-1)} |`,
  );
  console.log(
    `| RTP packets dropped at 20 ms ptime, ceil(window / 20) | ${w.length} | ${Math.ceil(quantile(w, 0.5) / 20)} | ${Math.ceil(quantile(w, 0.9) / 20)} | ${Math.ceil((w.at(-1) ?? NaN) / 20)} |`,
  );
  console.log(
    `| the sidecar logging its SETs acknowledged (ms; log time has 1 ms resolution) | ${sl.length} | ${f(quantile(sl, 0.5))} | ${f(quantile(sl, 0.9))} | ${f(sl.at(-1))} |`,
  );
  console.log('');
  console.log(
    `sidecar histograms, mean: HEP capture lag (every packet) ${f(hist('pinhole_sidecar_hep_capture_lag_seconds'))} ms; answer copy to pinholes acknowledged ${f(hist('pinhole_sidecar_answer_to_pinhole_seconds'))} ms`,
  );
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
