/**
 * A deliberately small SIP reader for the sidecar's tests, standing in for `parse` of
 * @pinhole/sip while that parser is being written. It implements only what the normalizer and
 * the seam read (start line, Via, From/To tags, Call-ID, CSeq, Content-Type); the tests switch
 * to the real parser where it is available (`sipParser()` below).
 */
import type { ParseResult, SipMessage, Via } from '@pinhole/sip';
import type { SipParser } from '../../src/observation.js';

const COMPACT: Record<string, string> = {
  v: 'via',
  f: 'from',
  t: 'to',
  i: 'call-id',
  c: 'content-type',
  l: 'content-length',
};

function fail(code: string, reason: string): ParseResult {
  return { ok: false, error: { code, reason } };
}

function parseVia(value: string): Via | undefined {
  const m =
    /^\s*(SIP\s*\/\s*2\.0)\s*\/\s*([A-Za-z]+)\s+(\[[^\]]+\]|[^;:\s]+)(?::([0-9]+))?\s*(.*)$/.exec(
      value,
    );
  if (!m) return undefined;
  const params = new Map<string, string>();
  for (const p of (m[5] ?? '').split(';')) {
    const t = p.trim();
    if (t.length === 0) continue;
    const eq = t.indexOf('=');
    params.set((eq === -1 ? t : t.slice(0, eq)).toLowerCase(), eq === -1 ? '' : t.slice(eq + 1));
  }
  const host = m[3] ?? '';
  return {
    protocol: 'SIP/2.0',
    transport: (m[2] ?? '').toUpperCase(),
    host: host.replace(/^\[|\]$/g, ''),
    ipv6: host.startsWith('['),
    port: m[4] !== undefined ? Number(m[4]) : undefined,
    branch: params.get('branch'),
    received: params.get('received'),
    rport: undefined,
    maddr: undefined,
    ttl: undefined,
    params,
    raw: value,
  };
}

export const fakeParse: SipParser = (bytes) => {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  const end = text.indexOf('\r\n\r\n');
  if (end === -1) return fail('SIP_ERR_INCOMPLETE', 'no end of headers');
  const lines = text.slice(0, end).split('\r\n');
  const start = lines[0] ?? '';
  const req = /^([A-Za-z]+) (\S+) SIP\/2\.0$/.exec(start);
  const res = /^SIP\/2\.0 ([0-9]{3}) ?(.*)$/.exec(start);
  if (!req && !res) return fail('SIP_ERR_BAD_START_LINE', 'bad start line');
  const headers: { name: string; value: string }[] = [];
  for (const line of lines.slice(1)) {
    const c = line.indexOf(':');
    if (c === -1) return fail('SIP_ERR_BAD_HEADER', 'header without colon');
    const raw = line.slice(0, c).trim().toLowerCase();
    headers.push({ name: COMPACT[raw] ?? raw, value: line.slice(c + 1).trim() });
  }
  const get = (n: string): string | undefined => headers.find((h) => h.name === n)?.value;
  const all = (n: string): string[] =>
    headers.filter((h) => h.name === n).flatMap((h) => h.value.split(',').map((v) => v.trim()));
  const tag = (v: string | undefined): string | undefined =>
    /;\s*tag=([^;>\s]+)/i.exec(v ?? '')?.[1];
  const cseqRaw = /^([0-9]+)\s+([A-Za-z]+)$/.exec(get('cseq') ?? '');
  const cseq = cseqRaw ? { seq: Number(cseqRaw[1]), method: cseqRaw[2] ?? '' } : undefined;
  const vias = all('via')
    .map(parseVia)
    .filter((v): v is Via => v !== undefined);
  const nameAddr = (v: string | undefined) =>
    v === undefined
      ? undefined
      : { tag: tag(v), raw: v, displayName: undefined, params: new Map() };
  const message = {
    isRequest: req !== null,
    method: req ? (req[1] ?? '') : (cseq?.method ?? ''),
    requestUri: req ? (req[2] ?? '') : '',
    status: res ? Number(res[1]) : 0,
    reason: res ? (res[2] ?? '') : '',
    version: 'SIP/2.0',
    body: bytes.subarray(Buffer.byteLength(text.slice(0, end + 4))),
    get: (n: string) => get(COMPACT[n.toLowerCase()] ?? n.toLowerCase()),
    callId: () => get('call-id'),
    cseq: () => cseq,
    via: () => vias,
    topVia: () => vias[0],
    from: () => nameAddr(get('from')),
    to: () => nameAddr(get('to')),
    contentType: () => get('content-type')?.split(';')[0]?.trim().toLowerCase(),
  };
  return { ok: true, message: message as unknown as SipMessage };
};

/** The real parser of @pinhole/sip when it is built with `parse`, else the stand-in above. */
export async function sipParser(): Promise<{ parse: SipParser; real: boolean }> {
  const mod = (await import('@pinhole/sip')) as unknown as Record<string, unknown>;
  return typeof mod.parse === 'function'
    ? { parse: mod.parse as SipParser, real: true }
    : { parse: fakeParse, real: false };
}
