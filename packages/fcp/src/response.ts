/**
 * FCP/1.0 responses. The server writes the fcpd one-line layout by default
 * (`FCP=1.0 SEQ=n CODE Reason[: detail]`) or the published two-line layout, and always ends with
 * an empty line (spec §6 #2, #3). The client decoder accepts both layouts and the reference
 * fcpd's quirks: the greeting banner, bare `400 ...` lines without `FCP=`/`SEQ=`, `401` text glued
 * to the reason, `closing connection...`, QUERY bodies in either format, `PORT=p-p`.
 */
import type { PortRange } from './backend.js';
import { parseAddress, formatAddress } from './ip.js';
import { formatSetOptions, pmeMembers, type Pme, type SetOptions } from './pme.js';
import { parseRuleLine, type QueryRuleView } from './request.js';
import { isSuccess, reasonPhrase } from './status.js';

export interface NatBinding {
  readonly ip: string;
  readonly ports: PortRange;
}

export interface QueryRuleEntry {
  readonly pme: Pme;
  readonly options: SetOptions;
}

export interface FcpResponse {
  readonly seq: number;
  readonly status: number;
  /** Defaults to the v0.19 phrase of `status`. */
  readonly reason?: string | undefined;
  /** Written after the reason as `: detail` on the same line. */
  readonly detail?: string | undefined;
  /** QUERYNAT 2xx body. */
  readonly nat?: NatBinding | undefined;
  /** QUERY 2xx body. */
  readonly rules?: readonly QueryRuleEntry[] | undefined;
}

export type ResponseStyle = 'fcpd' | 'abnf';

const CRLF = '\r\n';
const MAX_DETAIL = 240;

/** Makes peer- or program-supplied text safe for one response line. */
export function sanitizeText(text: string): string {
  let out = '';
  for (let i = 0; i < text.length && out.length < MAX_DETAIL; i++) {
    const c = text.charCodeAt(i);
    out += c >= 0x20 && c <= 0x7e ? text[i] : '?';
  }
  return out;
}

function fmtRange(r: PortRange): string {
  return r[0] === r[1] ? String(r[0]) : `${r[0]}-${r[1]}`;
}

/** One QUERY body line: `PME <members>; SOPT <opts>;` (spec §6 #17). */
export function formatQueryRule(rule: QueryRuleEntry): string {
  const members = pmeMembers(rule.pme).map((m) => `${m};`);
  const opts = formatSetOptions(rule.options).map((m) => `${m};`);
  const parts: string[] = [];
  if (members.length > 0) parts.push(`PME ${members.join(' ')}`);
  if (opts.length > 0) parts.push(`SOPT ${opts.join(' ')}`);
  return parts.join(' ');
}

export function encodeResponse(r: FcpResponse, style: ResponseStyle = 'fcpd'): string {
  const reason = sanitizeText(r.reason ?? reasonPhrase(r.status));
  const detail = r.detail === undefined ? '' : `: ${sanitizeText(r.detail)}`;
  const head = `FCP=1.0 SEQ=${r.seq}`;
  const status = `${r.status} ${reason}${detail}`;
  let out = style === 'fcpd' ? `${head} ${status}${CRLF}` : `${head}${CRLF}${status}${CRLF}`;
  if (r.nat) out += `IP=${r.nat.ip} PORT=${fmtRange(r.nat.ports)}${CRLF}`;
  if (r.rules) for (const rule of r.rules) out += `${formatQueryRule(rule)}${CRLF}`;
  return out + CRLF;
}

// ---------------------------------------------------------------------------------------------
// Client-side streaming decoder

/** What body the oldest outstanding request expects after a 2xx status. */
export type ResponseBodyKind = 'none' | 'nat' | 'query';

export interface DecodedResponse {
  /** Undefined for a bare status line (fcpd parser errors). */
  readonly seq: number | undefined;
  readonly status: number;
  /** Everything after the three digits, trimmed (may hold fcpd's glued 401 text). */
  readonly reason: string;
  readonly nat?: NatBinding | undefined;
  readonly rules?: readonly QueryRuleView[] | undefined;
}

export type ResponseEvent =
  | { readonly kind: 'response'; readonly response: DecodedResponse }
  /** A line that is not part of any response (banner, `closing connection...`). */
  | { readonly kind: 'junk'; readonly line: string }
  /** A line over the limit: the stream is unusable, close it. */
  | { readonly kind: 'too-long'; readonly limit: number };

export interface ResponseDecoderOptions {
  /** Default 65536. */
  readonly maxLineBytes?: number | undefined;
}

interface Partial {
  seq: number | undefined;
  status: number;
  reason: string;
  nat?: NatBinding;
  rules?: QueryRuleView[];
}

type DecoderState = 'idle' | 'status' | 'nat-body' | 'query-body';

const HEADER = /^\s*FCP\s*=\s*\S+?\s+SEQ\s*=\s*(\d{1,10})\s*(.*)$/i;
const STATUS = /^\s*(\d{3})(?!\d)\s*(.*)$/;

function parseStatus(text: string): { status: number; reason: string } | undefined {
  const m = STATUS.exec(text);
  if (!m?.[1]) return undefined;
  return { status: Number(m[1]), reason: (m[2] ?? '').trim() };
}

function parseNatLine(line: string): NatBinding | undefined {
  const m = /^\s*IP\s*=\s*(\S+)\s+PORT\s*=\s*(\d{1,5})(?:\s*-\s*(\d{1,5}))?\s*;?\s*$/i.exec(line);
  if (!m?.[1] || !m[2]) return undefined;
  const ip = parseAddress(m[1]);
  const lo = Number(m[2]);
  const hi = m[3] === undefined ? lo : Number(m[3]);
  if (!ip || lo > 65535 || hi > 65535 || lo > hi) return undefined;
  return { ip: formatAddress(ip), ports: [lo, hi] };
}

function isBlank(line: string): boolean {
  return line.trim() === '';
}

export class ResponseDecoder {
  readonly maxLineBytes: number;
  readonly #expect: (index: number) => ResponseBodyKind;
  /** Responses emitted during the current push() (not yet seen by the caller). */
  #emittedInPush = 0;
  #partialLine = '';
  #state: DecoderState = 'idle';
  #cur: Partial | undefined;
  #headerSeq: number | undefined;
  #failed = false;

  /**
   * `expect(index)` tells what body the outstanding request awaits; `index` counts the
   * responses already returned by the current `push()` call that the caller has not matched yet
   * (0 = the oldest outstanding request). Consulted at each 2xx status line.
   */
  constructor(expect: (index: number) => ResponseBodyKind, options: ResponseDecoderOptions = {}) {
    this.#expect = expect;
    this.maxLineBytes = options.maxLineBytes ?? 65536;
  }

  push(chunk: Buffer | string): ResponseEvent[] {
    if (this.#failed) return [];
    const events: ResponseEvent[] = [];
    this.#emittedInPush = 0;
    const text = this.#partialLine + (typeof chunk === 'string' ? chunk : chunk.toString('latin1'));
    let start = 0;
    for (;;) {
      const lf = text.indexOf('\n', start);
      if (lf === -1) break;
      this.#line(text.slice(start, lf).replace(/\r/g, ''), events);
      start = lf + 1;
    }
    this.#partialLine = text.slice(start);
    if (this.#partialLine.length > this.maxLineBytes) {
      this.#failed = true;
      events.push({ kind: 'too-long', limit: this.maxLineBytes });
    }
    return events;
  }

  #emit(events: ResponseEvent[]): void {
    const c = this.#cur;
    if (c) {
      const response: DecodedResponse = {
        seq: c.seq,
        status: c.status,
        reason: c.reason,
        ...(c.nat ? { nat: c.nat } : {}),
        ...(c.rules ? { rules: c.rules } : {}),
      };
      events.push({ kind: 'response', response });
      this.#emittedInPush++;
    }
    this.#cur = undefined;
    this.#state = 'idle';
  }

  #startStatus(
    seq: number | undefined,
    st: { status: number; reason: string },
    ev: ResponseEvent[],
  ) {
    this.#cur = { seq, status: st.status, reason: st.reason };
    const kind = isSuccess(st.status) ? this.#expect(this.#emittedInPush) : 'none';
    if (kind === 'nat') this.#state = 'nat-body';
    else if (kind === 'query') {
      this.#cur.rules = [];
      this.#state = 'query-body';
    } else this.#emit(ev);
  }

  #line(line: string, ev: ResponseEvent[]): void {
    switch (this.#state) {
      case 'idle': {
        if (isBlank(line)) return;
        const h = HEADER.exec(line);
        if (h) {
          const seq = Number(h[1]);
          const rest = h[2] ?? '';
          if (rest.trim() === '') {
            this.#headerSeq = seq;
            this.#state = 'status';
            return;
          }
          const st = parseStatus(rest);
          if (st) this.#startStatus(seq, st, ev);
          else ev.push({ kind: 'junk', line });
          return;
        }
        const st = parseStatus(line);
        if (st) this.#startStatus(undefined, st, ev);
        else ev.push({ kind: 'junk', line });
        return;
      }
      case 'status': {
        if (isBlank(line)) return;
        const st = parseStatus(line);
        if (st) {
          this.#startStatus(this.#headerSeq, st, ev);
          return;
        }
        // Not a status: the header was junk; re-read this line from idle.
        ev.push({ kind: 'junk', line: `FCP=1.0 SEQ=${this.#headerSeq}` });
        this.#state = 'idle';
        this.#line(line, ev);
        return;
      }
      case 'nat-body': {
        if (isBlank(line)) {
          this.#emit(ev);
          return;
        }
        const nat = parseNatLine(line);
        if (nat && this.#cur) {
          this.#cur.nat = nat;
          this.#emit(ev);
          return;
        }
        this.#emit(ev);
        this.#line(line, ev);
        return;
      }
      case 'query-body': {
        if (isBlank(line)) {
          this.#emit(ev);
          return;
        }
        if (HEADER.test(line)) {
          this.#emit(ev);
          this.#line(line, ev);
          return;
        }
        const rules = this.#cur?.rules;
        if (!rules) return;
        let text = line.trim();
        if (text.endsWith(';')) text = text.slice(0, -1).trimEnd();
        if (text === '') return;
        const last = rules[rules.length - 1];
        // ABNF layout: the SOPT line of a rule follows its PME line.
        if (last && /^SOPT\b/i.test(text) && !/\bSOPT\b/i.test(last.text)) {
          rules[rules.length - 1] = parseRuleLine(`${last.text} ${text}`);
        } else {
          rules.push(parseRuleLine(text));
        }
        return;
      }
    }
  }
}
