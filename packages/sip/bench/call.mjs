// One proxied call's use of @pinhole/sip, the way apps/proxy (its core, @pinhole/transaction
// and @pinhole/policy) uses it: the bench scenario of `apps/proxy/bench/core.mjs` (INVITE with
// SDP, 180, 200 with SDP, ACK, BYE, 200; a 100 Trying built locally), each message parsed,
// validated, read by the accessors the core, the transaction layer and the policy call, edited
// (received/rport, Via, Record-Route, Max-Forwards, Route) and serialised; each SDP read with
// `mediaEndpoints`. No sockets, no other package: the calls are replayed in the proxy's order.
//
//   node bench/call.mjs [N calls] [dist directory] [alloc|cpu|profile]
//
// `alloc` (the default) prints the bytes allocated on the V8 heap per call, after a warm-up:
//   node --single-threaded --max-semi-space-size=64 --min-semi-space-size=64 bench/call.mjs 100
// It runs 12 windows of N calls and measures the used heap before and after each; a window in
// which a collection ran (a young generation of 64 MiB holds about 4 windows) is left out, and
// the median of the others is printed (they agree within ~0.01 %).
// `cpu` prints CPU time per call; under `valgrind --tool=callgrind node --single-threaded`, the
// instruction count per call is (Ir at N2 - Ir at N1) / (N2 - N1).
// `profile` prints the bytes per call by function (sampling heap profiler, inclusive).
import { Session } from 'node:inspector/promises';
import { getHeapStatistics, GCProfiler } from 'node:v8';
import { pathToFileURL } from 'node:url';

const [nText = '200', dist, mode = 'alloc'] = process.argv.slice(2);
const sip = await import(
  dist === undefined || dist === '' ? '../dist/index.js' : pathToFileURL(`${dist}/index.js`).href
);
const { parse, serialize, validate, buildResponse, mediaEndpoints, parseUri } = sip;
const N = Math.min(Math.max(Math.trunc(Number(nText)), 0), 1_000_000);

const UAC = 5061;
const UAS = 5062;
const PROXY_RR = '<sip:127.0.0.1:5060;lr>';
let sink = 0;

function invite(n) {
  const sdp =
    'v=0\r\no=pinhole 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n' +
    `m=audio ${40000 + 2 * (n % 10000)} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n`;
  return [
    'INVITE sip:service@127.0.0.1:5060 SIP/2.0',
    `Via: SIP/2.0/UDP 127.0.0.1:${UAC};branch=z9hG4bK-${n}-1;rport`,
    `From: sipp <sip:sipp@127.0.0.1:${UAC}>;tag=caller${n}`,
    'To: service <sip:service@127.0.0.1:5060>',
    `Call-ID: ${n}-bench@127.0.0.1`,
    'CSeq: 1 INVITE',
    `Contact: <sip:sipp@127.0.0.1:${UAC};transport=UDP>`,
    'Max-Forwards: 70',
    'Subject: Pinhole test',
    'Content-Type: application/sdp',
    `Content-Length: ${sdp.length}`,
    '',
    sdp,
  ].join('\r\n');
}

/** The callee's responses: its request's Vias (the proxy's on top), To with a tag, Record-Route. */
function response(n, status, reason, method, seq, withSdp) {
  const sdp = withSdp
    ? 'v=0\r\no=pinhole 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 198.19.1.2\r\nt=0 0\r\n' +
      `m=audio ${20000 + 2 * (n % 10000)} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n`
    : '';
  return [
    `SIP/2.0 ${status} ${reason}`,
    `Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-ph1a2b3c4d.${n.toString(36)};rport`,
    `Via: SIP/2.0/UDP 127.0.0.1:${UAC};branch=z9hG4bK-${n}-${seq};rport=${UAC};received=127.0.0.1`,
    `From: sipp <sip:sipp@127.0.0.1:${UAC}>;tag=caller${n}`,
    `Call-ID: ${n}-bench@127.0.0.1`,
    `CSeq: ${seq} ${method}`,
    `To: service <sip:service@127.0.0.1:5060>;tag=callee${n}`,
    ...(method === 'INVITE' ? [`Record-Route: ${PROXY_RR}`] : []),
    ...(method === 'INVITE' ? [`Contact: <sip:127.0.0.1:${UAS};transport=udp>`] : []),
    ...(withSdp ? ['Content-Type: application/sdp'] : []),
    `Content-Length: ${sdp.length}`,
    '',
    sdp,
  ].join('\r\n');
}

function inDialog(n, method, seq) {
  return [
    `${method} sip:127.0.0.1:${UAS};transport=udp SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${UAC};branch=z9hG4bK-${n}-${seq}-${method};rport`,
    `Route: ${PROXY_RR}`,
    `From: sipp <sip:sipp@127.0.0.1:${UAC}>;tag=caller${n}`,
    `To: service <sip:service@127.0.0.1:5060>;tag=callee${n}`,
    `Call-ID: ${n}-bench@127.0.0.1`,
    `CSeq: ${seq} ${method}`,
    `Contact: <sip:sipp@127.0.0.1:${UAC};transport=UDP>`,
    'Max-Forwards: 70',
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
}

/** The core's receive(): parse, validate, received/rport on a request's top Via. */
function receive(bytes) {
  const r = parse(bytes);
  if (!r.ok) throw new Error(r.error.reason);
  const msg = r.message;
  if (msg.isRequest) {
    sink += msg.method.toUpperCase().length;
    const v = validate(msg, { proxyRequire: [] });
    if (!v.ok) throw new Error(v.reason);
    const via = msg.topVia();
    const raw = msg.getAll('via')[0] ?? '';
    if (via.rport === true) {
      msg.removeTopVia();
      msg.prependVia(raw.replace(/;\s*rport(?=\s*(;|$))/i, `;rport=${UAC}`));
    }
  } else {
    const v = validate(msg);
    if (!v.ok) throw new Error(v.reason);
    const via = msg.topVia();
    sink += via.host.length + (via.port ?? 0);
  }
  return msg;
}

/** The transaction layer's keys (topVia branch and sent-by, CSeq, method). */
function key(msg) {
  const via = msg.topVia();
  const cseq = msg.cseq();
  sink += `s|${via.branch}|${via.host.toLowerCase()}:${via.port ?? ''}|${cseq.method}`.length;
}

/** The policy's reading of a message (call, dialog, party, session timer, SDP). */
function policy(msg) {
  sink += (msg.callId() ?? '').length + (msg.from()?.tag ?? '').length;
  sink += (msg.cseq()?.seq ?? 0) + (msg.to()?.tag ?? '').length;
  const contact = msg.contacts()[0];
  if (contact) sink += contact.uri.host.length;
  if (msg.isRequest && msg.method === 'INVITE') {
    sink += msg.sessionExpires()?.delta ?? 0;
    sink += msg.minSE() ?? 0;
    sink += msg.supported().length + msg.require().length;
  }
  if (msg.body.length > 0 && msg.contentType() === 'application/sdp') {
    const r = mediaEndpoints(msg.body);
    if (!r.ok) throw new Error(r.error.reason);
    sink += r.media[0].port;
  } else if (!msg.isRequest) {
    sink += msg.sessionExpires()?.delta ?? 0;
  }
}

/** The core's request handling after the layer: clone, loop check, routes, forward. */
function forwardRequest(received, recordRoute, stateless) {
  const msg = received.clone();
  const mf = msg.maxForwards();
  if (mf !== undefined && mf <= 0) throw new Error('483');
  if (!stateless) {
    const parts = [
      msg.requestUri,
      msg.from()?.tag,
      msg.to()?.tag,
      msg.callId(),
      String(msg.cseq()?.seq ?? ''),
      msg.getAll('route').join(','),
      msg.get('proxy-require'),
    ];
    sink += parts.length;
    for (const v of msg.via()) sink += v.host.length + (v.branch?.length ?? 0);
  }
  // §16.4 route preprocessing: the top Route naming this proxy is removed.
  let ruri = msg.requestUriParsed();
  let routes = msg.route();
  if (routes[0] !== undefined && routes[0].uri.port === 5060) msg.removeTopRoute();
  sink += msg.method.toUpperCase().length;
  if (!stateless) {
    ruri = msg.requestUriParsed();
    routes = msg.route();
    sink += ruri.host.length + routes.length + (msg.to()?.tag === undefined ? 1 : 0);
  }
  if (msg.method === 'INVITE') {
    // The Request-URI names the proxy: retarget to the default route.
    const target = parseUri(`sip:127.0.0.1:${UAS}`);
    sink += target.host.length;
    policy(msg);
    msg.setRequestUri(`sip:service@127.0.0.1:${UAS}`);
  } else policy(msg);
  msg.decrementMaxForwards();
  const route = msg.route()[0];
  const hop = route !== undefined ? route.uri : msg.requestUriParsed();
  sink += hop.host.length + (hop.params.get('transport') ?? '').length;
  if (recordRoute) msg.prependRecordRoute(PROXY_RR);
  if (stateless) sink += (msg.topVia()?.branch ?? '').length + msg.callId().length;
  msg.prependVia(`SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-ph1a2b3c4d.${sink & 0xffff};rport`);
  if (!stateless) key(msg);
  sink += serialize(msg).length;
}

/** A response from the callee: the layer's key, our Via off, the policy, relayed upstream. */
function relayResponse(bytes) {
  const msg = receive(bytes);
  key(msg);
  sink += (msg.to()?.tag ?? '').length + msg.callId().length;
  msg.removeTopVia();
  policy(msg);
  sink += serialize(msg).length;
}

/** The datagrams of call `n` as received: made before the measured calls, not counted. */
function datagrams(n) {
  const b = (text) => Buffer.from(text, 'latin1');
  return [
    b(invite(n)),
    b(response(n, 180, 'Ringing', 'INVITE', 1, false)),
    b(response(n, 200, 'OK', 'INVITE', 1, true)),
    b(inDialog(n, 'ACK', 1)),
    b(inDialog(n, 'BYE', 2)),
    b(response(n, 200, 'OK', 'BYE', 2, false)),
  ];
}

function call([invite, ringing, ok, ackBytes, byeBytes, byeOk]) {
  // INVITE: received, matched, 100 Trying built and sent, forwarded with Record-Route.
  const inv = receive(invite);
  key(inv);
  sink += (inv.get('timestamp') ?? '').length;
  const trying = buildResponse(inv, 100, 'Trying', [], {});
  sink += serialize(trying).length;
  forwardRequest(inv, true, false);
  relayResponse(ringing);
  relayResponse(ok);
  // ACK of the 2xx: matched against the accepted INVITE, forwarded statelessly.
  const ack = receive(ackBytes);
  sink += ack.callId().length + ack.cseq().seq + (ack.from()?.tag ?? '').length;
  sink += (ack.to()?.tag ?? '').length;
  forwardRequest(ack, false, true);
  // BYE: a new server transaction, forwarded by the route set; its 200 relayed.
  const bye = receive(byeBytes);
  key(bye);
  forwardRequest(bye, false, false);
  relayResponse(byeOk);
}

// Warm-up (compilation happens here, not in the measured window).
const WARM = Number(process.env.WARM ?? 3000);
for (let i = 0; i < WARM; i++) call(datagrams(1_000_000 + i));
/** The datagrams of calls first..first+count-1. */
const calls = (first, count) => Array.from({ length: count }, (_, i) => datagrams(first + i));

if (mode === 'alloc') {
  // Windows of N calls; a window in which a collection ran is not counted.
  const used = () => getHeapStatistics().used_heap_size;
  const perCall = [];
  for (let w = 0; w < 12; w++) {
    const input = calls(2_000_000 + w * N, N);
    const profiler = new GCProfiler();
    profiler.start();
    const before = used();
    for (let i = 0; i < N; i++) call(input[i]);
    const after = used();
    if (profiler.stop().statistics.length === 0) perCall.push(Math.round((after - before) / N));
  }
  const sorted = [...perCall].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  console.log(JSON.stringify({ N, bytesPerCall: median, windows: perCall, sink: sink & 1 }));
} else if (mode === 'profile') {
  // V8's sampling heap profiler, collected objects included: bytes per call by function,
  // inclusive (a function and everything it calls), largest first.
  const input = calls(2_000_000, N);
  const session = new Session();
  session.connect();
  await session.post('HeapProfiler.enable');
  await session.post('HeapProfiler.startSampling', {
    samplingInterval: 128,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  });
  for (let i = 0; i < N; i++) call(input[i]);
  const { profile } = await session.post('HeapProfiler.stopSampling');
  const inclusive = new Map();
  const walk = (node, stack) => {
    const name = node.callFrame.functionName || '(anonymous)';
    const names = new Set([...stack, name]);
    for (const n of names) inclusive.set(n, (inclusive.get(n) ?? 0) + node.selfSize);
    for (const c of node.children) walk(c, names);
  };
  walk(profile.head, new Set());
  for (const [name, bytes] of [...inclusive]
    .sort((a, b) => b[1] - a[1])
    .slice(0, Number(process.env.TOP ?? 40))) {
    console.log(`${String(Math.round(bytes / N)).padStart(8)}  ${name}`);
  }
} else {
  const input = calls(0, N);
  const t0 = process.cpuUsage();
  for (let i = 0; i < N; i++) call(input[i]);
  const t = process.cpuUsage(t0);
  console.log(
    JSON.stringify({ N, cpuUsPerCall: N > 0 ? (t.user + t.system) / N : 0, sink: sink & 1 }),
  );
}
