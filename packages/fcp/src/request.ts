/**
 * FCP/1.0 requests: parse one framed request (v0.19 line-structured or flat v0.16), and encode
 * v0.19 with CRLF. Parsing never throws; a failure is a value carrying the FCP status to answer.
 */
import type { PortRange } from './backend.js';
import { FcpErrorCode } from './errors.js';
import { formatAddress, parseAddress, parsePrefix, type ParsedPrefix } from './ip.js';
import {
  canonicalPme,
  formatSetOptions,
  pmeKey,
  type FcpAction,
  type FcpInterface,
  type IcmpType,
  type Pme,
  type SetOptions,
} from './pme.js';
import { FcpStatus } from './status.js';

export const FCP_METHODS = ['SET', 'RELEASE', 'QUERY', 'QUERYNAT', 'RELEASENAT'] as const;
export type FcpMethod = (typeof FCP_METHODS)[number];

/** Address/ports of a NAT reservation (QUERYNAT, RELEASENAT). */
export interface NatSpec {
  /** Canonical address text (IPv4; IPv6 as an extension). */
  readonly srcIp: string;
  readonly srcPorts: PortRange;
  /** 6 or 17. */
  readonly proto: number;
  /** QUERYNAT only, optional; its meaning is unspecified and the server ignores it. */
  readonly dstIp?: string | undefined;
}

export interface SetRequest {
  readonly method: 'SET';
  readonly seq: number;
  readonly pme: Pme;
  readonly options: SetOptions;
}
export interface ReleaseRequest {
  readonly method: 'RELEASE';
  readonly seq: number;
  readonly pme: Pme;
}
export interface QueryRequest {
  readonly method: 'QUERY';
  readonly seq: number;
  /** Undefined: no PME line (all rules). */
  readonly pme: Pme | undefined;
}
export interface QueryNatRequest {
  readonly method: 'QUERYNAT';
  readonly seq: number;
  readonly nat: NatSpec;
}
export interface ReleaseNatRequest {
  readonly method: 'RELEASENAT';
  readonly seq: number;
  readonly nat: NatSpec;
}
export type FcpRequest =
  SetRequest | ReleaseRequest | QueryRequest | QueryNatRequest | ReleaseNatRequest;

/** A request that could not be accepted, with the status and detail the server answers. */
export interface RequestError {
  readonly kind: 'error';
  readonly code: FcpErrorCode;
  /** 400, 402 or 503. */
  readonly status: number;
  readonly detail: string;
  /** SEQ if it could be read, else 0. */
  readonly seq: number;
  /** The method if it could be read. */
  readonly method: FcpMethod | undefined;
  /** fcpd answers parser-level failures without the `FCP= SEQ=` prefix; we always add it. */
}

export type RequestParseResult =
  | { readonly kind: 'request'; readonly request: FcpRequest }
  | { readonly kind: 'quit' }
  | RequestError;

// ---------------------------------------------------------------------------------------------
// Tokenizer

export interface Token {
  /** Upper-cased name (before `=`), or the whole word for keywords. */
  readonly name: string;
  /** Text after `=`; undefined for a keyword; '' for `NAME=`. */
  readonly value: string | undefined;
  /** As received (for error texts; sanitised by the response encoder). */
  readonly raw: string;
  readonly line: number;
}

const SP = 0x20;
const HT = 0x09;
const CR = 0x0d;
const LF = 0x0a;
const SEMI = 0x3b;
const COMMA = 0x2c;
const EQ = 0x3d;
const DASH = 0x2d;
const COLON = 0x3a;
const SLASH = 0x2f;

/** No lower-case ASCII letter (names usually arrive upper-case: skip the copy). */
function isUpper(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x61 && c <= 0x7a) return false;
  }
  return true;
}

function isWsp(c: number): boolean {
  return c === SP || c === HT || c === CR;
}

function isGlue(c: number): boolean {
  return c === EQ || c === DASH || c === COLON || c === SLASH;
}

/**
 * Splits request text into tokens (spec §2.5 as fcpd does it): delimiters SP, HT, `;`, `,`, LF;
 * CR is ignored; whitespace around `=`, `-`, `:`, `/` is dropped so `SRCPORT = 1 - 2` is one
 * token. Returns an error text for bytes outside printable US-ASCII.
 */
export function tokenize(text: string): Token[] | string {
  const tokens: Token[] = [];
  let line = 0;
  // A word is text[wordStart, i) plus `glued` (parts before skipped glue whitespace).
  let glued = '';
  let wordStart = -1;
  const flush = (end: number): void => {
    if (wordStart === -1 && glued === '') return;
    const word = wordStart === -1 ? glued : glued + text.slice(wordStart, end);
    glued = '';
    wordStart = -1;
    if (word === '') return;
    const eq = word.indexOf('=');
    const head = eq === -1 ? word : word.slice(0, eq);
    const name = isUpper(head) ? head : head.toUpperCase();
    tokens.push({ name, value: eq === -1 ? undefined : word.slice(eq + 1), raw: word, line });
  };
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === LF) {
      flush(i);
      line++;
      continue;
    }
    if (c === SEMI || c === COMMA) {
      flush(i);
      continue;
    }
    if (isWsp(c)) {
      // Skip a whitespace run; glue it away if a glue character is on either side.
      let j = i;
      while (j < n && isWsp(text.charCodeAt(j))) j++;
      const next = j < n ? text.charCodeAt(j) : LF;
      const inWord = wordStart !== -1 || glued !== '';
      const prev = i > 0 ? text.charCodeAt(i - 1) : -1;
      if (inWord && (isGlue(prev) || isGlue(next))) {
        if (wordStart !== -1) glued += text.slice(wordStart, i);
        wordStart = -1;
      } else {
        flush(i);
      }
      i = j - 1;
      continue;
    }
    if (c < 0x21 || c > 0x7e) return `invalid character 0x${c.toString(16).padStart(2, '0')}`;
    if (wordStart === -1) wordStart = i;
  }
  flush(n);
  return tokens;
}

// ---------------------------------------------------------------------------------------------
// Value parsers: each returns the value or an error text.

const MAX_SEQ = 999_999_999;
const MAX_U32 = 4_294_967_295;

function parseDecimal(v: string, max: number): number | undefined {
  if (v.length === 0 || v.length > 10) return undefined;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return undefined;
  }
  const n = Number(v);
  return n <= max ? n : undefined;
}

function parsePortRange(v: string): PortRange | undefined {
  const dash = v.indexOf('-');
  const lo = parseDecimal(dash === -1 ? v : v.slice(0, dash), 65535);
  const hi = dash === -1 ? lo : parseDecimal(v.slice(dash + 1), 65535);
  if (lo === undefined || hi === undefined || lo > hi) return undefined;
  return [lo, hi];
}

function parseIcmp(v: string): IcmpType | undefined {
  const colon = v.indexOf(':');
  const type = parseDecimal(colon === -1 ? v : v.slice(0, colon), 255);
  const code = colon === -1 ? undefined : parseDecimal(v.slice(colon + 1), 255);
  if (type === undefined || (colon !== -1 && code === undefined)) return undefined;
  return code === undefined ? { type } : { type, code };
}

function parseBool(v: string): boolean | undefined {
  const l = v.toLowerCase();
  return l === 'yes' ? true : l === 'no' ? false : undefined;
}

// Return the literals (not the lower-cased copy) so stored rules share one string.
function parseInterface(v: string): FcpInterface | undefined {
  const l = v.toLowerCase();
  for (const i of ['in', 'out', 'dmz', 'loopback'] as const) if (l === i) return i;
  return undefined;
}

function parseAction(v: string): FcpAction | undefined {
  const l = v.toLowerCase();
  for (const a of ['pass', 'drop', 'reject'] as const) if (l === a) return a;
  return undefined;
}

const PME_NAMES: ReadonlySet<string> = new Set([
  'PROTO',
  'SRCIP',
  'DSTIP',
  'SRCPORT',
  'DSTPORT',
  'TOSFLD',
  'TCPSYNALLOWED',
  'ICMPTYPE',
  'ININTERFACE',
  'OUTINTERFACE',
]);
const SOPT_NAMES: ReadonlySet<string> = new Set([
  'ACTION',
  'TIMER',
  'REFLEXIVE',
  'PRIORITYCLASS',
  'LOG',
  'ICMPMESSAGE',
]);
const METHOD_SET: ReadonlySet<string> = new Set(FCP_METHODS);

interface MutablePme {
  proto?: number;
  src?: ParsedPrefix;
  dst?: ParsedPrefix;
  srcPorts?: PortRange;
  dstPorts?: PortRange;
  tos?: number;
  tcpSynAllowed?: false;
  icmpType?: IcmpType;
  inInterface?: FcpInterface;
  outInterface?: FcpInterface;
}

interface MutableOptions {
  action?: FcpAction;
  timer?: number;
  reflexive?: boolean;
  priorityClass?: number;
  log?: number;
  tosModifier?: number;
  icmpMessage?: IcmpType;
}

/** Applies one PME member to `pme`; returns an error text (400) or undefined. */
export function applyPmeMember(pme: MutablePme, name: string, v: string): string | undefined {
  switch (name) {
    case 'PROTO': {
      const n = parseDecimal(v, 255);
      if (n === undefined) return `PROTO must be a number 0..255`;
      pme.proto = n;
      return undefined;
    }
    case 'SRCIP':
    case 'DSTIP': {
      const p = parsePrefix(v);
      if (typeof p === 'string') return `${name}: ${p}`;
      if (name === 'SRCIP') pme.src = p;
      else pme.dst = p;
      return undefined;
    }
    case 'SRCPORT':
    case 'DSTPORT': {
      const r = parsePortRange(v);
      if (!r) return `${name} must be a port or port range 0..65535`;
      if (name === 'SRCPORT') pme.srcPorts = r;
      else pme.dstPorts = r;
      return undefined;
    }
    case 'TOSFLD': {
      const n = parseDecimal(v, 255);
      if (n === undefined) return 'TOSFLD must be 0..255';
      pme.tos = n;
      return undefined;
    }
    case 'TCPSYNALLOWED': {
      const b = parseBool(v);
      if (b === undefined) return 'TCPSYNALLOWED must be yes or no';
      if (b) delete pme.tcpSynAllowed;
      else pme.tcpSynAllowed = false;
      return undefined;
    }
    case 'ICMPTYPE': {
      const t = parseIcmp(v);
      if (!t) return 'ICMPTYPE must be type[:code], 0..255';
      pme.icmpType = t;
      return undefined;
    }
    case 'ININTERFACE':
    case 'OUTINTERFACE': {
      const i = parseInterface(v);
      if (!i) return `${name} must be in, out, dmz or loopback`;
      if (name === 'ININTERFACE') pme.inInterface = i;
      else pme.outInterface = i;
      return undefined;
    }
    default:
      return `unknown token "${name}"`;
  }
}

/** Applies one SOPT member; `prev` is the preceding token (for the ACTION modifiers). */
function applyOption(o: MutableOptions, name: string, v: string, prev: Token | undefined) {
  switch (name) {
    case 'ACTION': {
      const a = parseAction(v);
      if (!a) return 'ACTION must be drop, pass or reject';
      o.action = a;
      return undefined;
    }
    case 'TIMER': {
      const n = parseDecimal(v, MAX_U32);
      if (n === undefined) return 'TIMER must be 0..4294967295 seconds';
      o.timer = n;
      return undefined;
    }
    case 'REFLEXIVE': {
      const b = parseBool(v);
      if (b === undefined) return 'REFLEXIVE must be yes or no';
      o.reflexive = b;
      return undefined;
    }
    case 'PRIORITYCLASS': {
      const n = parseDecimal(v, MAX_U32);
      if (n === undefined) return 'PRIORITYCLASS must be 0..4294967295';
      o.priorityClass = n;
      return undefined;
    }
    case 'LOG': {
      const n = parseDecimal(v, 255);
      if (n === undefined) return 'LOG must be 0..255';
      o.log = n;
      return undefined;
    }
    case 'ICMPMESSAGE': {
      if (prev?.name !== 'ACTION' || parseAction(prev.value ?? '') !== 'reject') {
        return 'ICMPMESSAGE must directly follow ACTION=reject';
      }
      const t = parseIcmp(v);
      if (!t) return 'ICMPMESSAGE must be type[:code], 0..255';
      o.icmpMessage = t;
      return undefined;
    }
    default:
      return `unknown token "${name}"`;
  }
}

// ---------------------------------------------------------------------------------------------
// Request parser

function fail(
  status: number,
  detail: string,
  seq: number,
  method: FcpMethod | undefined,
): RequestError {
  const code =
    status === FcpStatus.VERSION_NOT_SUPPORTED
      ? FcpErrorCode.VERSION
      : status === FcpStatus.INVALID_VALUE
        ? FcpErrorCode.INVALID_VALUE
        : FcpErrorCode.BAD_REQUEST;
  return { kind: 'error', code, status, detail, seq, method };
}

/**
 * Parses one request (the text of one framed request, without or with its final empty line).
 * Accepts v0.19 (`PME`/`SOPT` lines) and flat v0.16 (all AVPs in any line, members assigned by
 * name), legacy QUERYNAT names `IP`/`PORT`/`UPPERPORT` (spec §6 #1), any case.
 */
export function parseRequest(text: string): RequestParseResult {
  const toks = tokenize(text);
  if (typeof toks === 'string') return fail(400, toks, prescanSeq(text), undefined);
  const first = toks[0];
  if (!first) return fail(400, 'empty request', 0, undefined);
  if (first.name === 'QUIT' && first.value === undefined && toks.length === 1) {
    return { kind: 'quit' };
  }
  let seq = 0;
  for (const t of toks) {
    if (t.name === 'SEQ') {
      const n = parseDecimal(t.value ?? '', MAX_SEQ);
      if (n !== undefined) seq = n;
      break;
    }
  }
  if (first.value !== undefined || !METHOD_SET.has(first.name)) {
    return fail(400, `misplaced token "${first.raw}"`, seq, undefined);
  }
  const method = first.name as FcpMethod;
  const fcp = toks[1];
  if (fcp?.name !== 'FCP') return fail(400, 'FCP must follow the method', seq, method);
  if (fcp.value === undefined || fcp.value === '') {
    return fail(402, 'Must specify value for FCP', seq, method);
  }
  // §2.6: any other value → 503 Version Not Supported: <value>.
  if (fcp.value !== '1.0') return fail(503, fcp.value, seq, method);
  let i = 2;
  const seqTok = toks[2];
  if (seqTok?.name === 'SEQ') {
    if (seqTok.value === undefined || seqTok.value === '') {
      return fail(402, 'Must specify value for SEQ', seq, method);
    }
    if (parseDecimal(seqTok.value, MAX_SEQ) === undefined) {
      return fail(400, 'SEQ must be 0..999999999', 0, method);
    }
    i = 3;
  }
  const body = toks.slice(i);
  switch (method) {
    case 'SET':
    case 'RELEASE':
    case 'QUERY':
      return parseRuleRequest(method, seq, body);
    case 'QUERYNAT':
    case 'RELEASENAT':
      return parseNatRequest(method, seq, body);
  }
}

function prescanSeq(text: string): number {
  const m = /SEQ\s*=\s*(\d{1,9})\b/i.exec(text);
  return m?.[1] ? Number(m[1]) : 0;
}

function commonTokenError(t: Token, seq: number, method: FcpMethod): RequestError | undefined {
  if (METHOD_SET.has(t.name) && t.value === undefined) {
    return fail(400, `${t.name} only allowed initially`, seq, method);
  }
  if (t.name === 'FCP' || t.name === 'SEQ') {
    return fail(400, `duplicate or misplaced ${t.name}`, seq, method);
  }
  return undefined;
}

function parseRuleRequest(
  method: 'SET' | 'RELEASE' | 'QUERY',
  seq: number,
  body: Token[],
): RequestParseResult {
  const pme: MutablePme = {};
  const opts: MutableOptions = {};
  const seen = new Set<string>();
  let section: 'none' | 'pme' | 'sopt' = 'none';
  let sawPmeKeyword = false;
  let sawAnyMember = false;
  let prev: Token | undefined;
  for (const t of body) {
    const common = commonTokenError(t, seq, method);
    if (common) return common;
    if (t.value === undefined && (t.name === 'PME' || t.name === 'SOPT')) {
      if (t.name === 'PME') {
        if (sawPmeKeyword || section === 'sopt') {
          return fail(400, 'misplaced token "PME"', seq, method);
        }
        sawPmeKeyword = true;
        section = 'pme';
      } else {
        if (method !== 'SET') return fail(400, `SOPT is not allowed with ${method}`, seq, method);
        if (section === 'sopt') return fail(400, 'misplaced token "SOPT"', seq, method);
        section = 'sopt';
      }
      prev = t;
      continue;
    }
    const isModifierTos =
      t.name === 'TOSFLD' && prev?.name === 'ACTION' && parseAction(prev.value ?? '') === 'pass';
    const isPme = PME_NAMES.has(t.name) && !isModifierTos;
    const isOpt = SOPT_NAMES.has(t.name) || isModifierTos;
    if (!isPme && !isOpt) {
      if (t.name === 'IP' || t.name === 'PORT' || t.name === 'UPPERPORT') {
        return fail(400, `${t.name} is only valid in QUERYNAT/RELEASENAT`, seq, method);
      }
      return fail(400, `unknown token "${t.raw}"`, seq, method);
    }
    // §2.5: method keywords carry no value, all other AVPs must (402).
    if (t.value === undefined || t.value === '') {
      return fail(402, `Must specify value for ${t.name}`, seq, method);
    }
    const slot = isModifierTos ? 'ACTION.TOSFLD' : t.name;
    // §6 #34: 400 for any duplicate AVP.
    if (seen.has(slot)) return fail(400, `duplicate ${t.name}`, seq, method);
    seen.add(slot);
    if (isPme) {
      if (section === 'sopt') return fail(400, `${t.name} not allowed in SetOptions`, seq, method);
      const err = applyPmeMember(pme, t.name, t.value);
      if (err) return fail(400, err, seq, method);
      sawAnyMember = true;
    } else {
      if (method !== 'SET') {
        return fail(400, `${t.name} is not allowed with ${method}`, seq, method);
      }
      section = 'sopt';
      if (isModifierTos) {
        const n = parseDecimal(t.value, 255);
        if (n === undefined) return fail(400, 'TOSFLD must be 0..255', seq, method);
        opts.tosModifier = n;
      } else {
        const err = applyOption(opts, t.name, t.value, prev);
        if (err) return fail(400, err, seq, method);
      }
    }
    prev = t;
  }
  const canon = canonicalPme(pme);
  if (typeof canon === 'string') return fail(400, canon, seq, method);
  switch (method) {
    case 'SET':
      return { kind: 'request', request: { method, seq, pme: canon, options: opts } };
    case 'RELEASE':
      return { kind: 'request', request: { method, seq, pme: canon } };
    case 'QUERY':
      return {
        kind: 'request',
        request: { method, seq, pme: sawPmeKeyword || sawAnyMember ? canon : undefined },
      };
  }
}

function parseNatRequest(
  method: 'QUERYNAT' | 'RELEASENAT',
  seq: number,
  body: Token[],
): RequestParseResult {
  let srcIp: string | undefined;
  let dstIp: string | undefined;
  let proto: number | undefined;
  let lo: number | undefined;
  let hi: number | undefined;
  const seen = new Set<string>();
  for (const t of body) {
    const common = commonTokenError(t, seq, method);
    if (common) return common;
    const known = ['SRCIP', 'SRCPORT', 'PROTO', 'DSTIP', 'IP', 'PORT', 'UPPERPORT'];
    if (!known.includes(t.name)) return fail(400, `unknown token "${t.raw}"`, seq, method);
    if (t.value === undefined || t.value === '') {
      return fail(402, `Must specify value for ${t.name}`, seq, method);
    }
    // Legacy v0.16 names map onto the v0.19 ones (spec §6 #1, lenient mode).
    const name = t.name === 'IP' ? 'SRCIP' : t.name === 'PORT' ? 'SRCPORT' : t.name;
    if (seen.has(name)) return fail(400, `duplicate ${t.name}`, seq, method);
    seen.add(name);
    switch (name) {
      case 'SRCIP':
      case 'DSTIP': {
        const ip = parseAddress(t.value);
        if (!ip) return fail(400, `${t.name} must be an IP address without mask`, seq, method);
        if (name === 'SRCIP') srcIp = formatAddress(ip);
        else dstIp = formatAddress(ip);
        if (name === 'DSTIP' && method === 'RELEASENAT') {
          return fail(400, 'DSTIP is not allowed in RELEASENAT', seq, method);
        }
        break;
      }
      case 'SRCPORT': {
        const r = parsePortRange(t.value);
        if (!r) return fail(400, 'SRCPORT must be a port or port range', seq, method);
        if (t.name === 'PORT' && r[0] !== r[1]) {
          return fail(400, 'PORT must be a single port', seq, method);
        }
        [lo, hi] = [r[0], t.name === 'PORT' && hi !== undefined ? hi : r[1]];
        break;
      }
      case 'UPPERPORT': {
        const n = parseDecimal(t.value, 65535);
        if (n === undefined) return fail(400, 'UPPERPORT must be 0..65535', seq, method);
        hi = n;
        break;
      }
      case 'PROTO': {
        const n = parseDecimal(t.value, 255);
        if (n !== 6 && n !== 17) {
          return fail(400, `PROTO=${t.value} makes no sense in ${method}`, seq, method);
        }
        proto = n;
        break;
      }
    }
  }
  if (srcIp === undefined) {
    return fail(400, `SRCIP must be specified in ${method} statement`, seq, method);
  }
  if (lo === undefined) {
    return fail(400, `SRCPORT must be specified in ${method} statement`, seq, method);
  }
  if (proto === undefined) {
    return fail(400, `PROTO must be specified in ${method} statement`, seq, method);
  }
  const high = hi ?? lo;
  if (high < lo) return fail(400, 'UPPERPORT is below the port', seq, method);
  const nat: NatSpec = { srcIp, srcPorts: [lo, high], proto, ...(dstIp ? { dstIp } : {}) };
  return { kind: 'request', request: { method, seq, nat } };
}

// ---------------------------------------------------------------------------------------------
// Encoder (v0.19, CRLF, `;` after every AVP, empty line at the end; spec §6.1 client 2)

const CRLF = '\r\n';

function fmtRange(r: PortRange): string {
  return r[0] === r[1] ? String(r[0]) : `${r[0]}-${r[1]}`;
}

export function encodeRequest(req: FcpRequest): string {
  return encodeRequestWithSeq(req, req.seq);
}

/** A request without its SEQ (the client assigns it when it sends). */
export type RequestWithoutSeq =
  | Omit<SetRequest, 'seq'>
  | Omit<ReleaseRequest, 'seq'>
  | Omit<QueryRequest, 'seq'>
  | Omit<QueryNatRequest, 'seq'>
  | Omit<ReleaseNatRequest, 'seq'>;

/** `encodeRequest` with the SEQ given apart (the client assigns it; no copy of the request). */
export function encodeRequestWithSeq(req: RequestWithoutSeq, seq: number): string {
  let out = `${req.method} FCP=1.0 SEQ=${seq}${CRLF}`;
  switch (req.method) {
    case 'SET':
    case 'RELEASE':
    case 'QUERY': {
      // The PME line is the canonical key text (pmeKey).
      const key = req.pme ? pmeKey(req.pme) : '';
      if (key !== '') out += `PME ${key}${CRLF}`;
      if (req.method === 'SET') {
        const opts = formatSetOptions(req.options);
        if (opts.length > 0) out += `SOPT ${opts.map((m) => `${m};`).join(' ')}${CRLF}`;
      }
      break;
    }
    case 'QUERYNAT':
    case 'RELEASENAT': {
      const n = req.nat;
      out += `SRCIP=${n.srcIp}; SRCPORT=${fmtRange(n.srcPorts)}; PROTO=${n.proto};`;
      if (req.method === 'QUERYNAT' && n.dstIp) out += ` DSTIP=${n.dstIp};`;
      out += CRLF;
      break;
    }
  }
  return out + CRLF;
}

/** A rule as listed in a QUERY response body; `pme` undefined if the line did not parse. */
export interface QueryRuleView {
  readonly pme: Pme | undefined;
  readonly options: SetOptions;
  /** The line(s) as received. */
  readonly text: string;
}

/**
 * Parses one rule of a QUERY response tolerantly (spec §6 #17): `PME`/`SOPT` keywords optional,
 * `;` or whitespace between AVPs, values in any case (fcpd prints `ACTION=DROP`).
 */
export function parseRuleLine(text: string): QueryRuleView {
  const toks = tokenize(text);
  const pme: MutablePme = {};
  const opts: MutableOptions = {};
  if (typeof toks === 'string') return { pme: undefined, options: opts, text };
  let bad = false;
  let prev: Token | undefined;
  for (const t of toks) {
    if (t.value === undefined) {
      if (t.name !== 'PME' && t.name !== 'SOPT') bad = true;
      prev = t;
      continue;
    }
    const modTos =
      t.name === 'TOSFLD' && prev?.name === 'ACTION' && parseAction(prev.value ?? '') === 'pass';
    if (modTos) {
      const n = parseDecimal(t.value, 255);
      if (n === undefined) bad = true;
      else opts.tosModifier = n;
    } else if (PME_NAMES.has(t.name)) {
      if (applyPmeMember(pme, t.name, t.value)) bad = true;
    } else if (applyOption(opts, t.name, t.value, prev)) {
      bad = true;
    }
    prev = t;
  }
  const canon = canonicalPme(pme);
  return { pme: bad || typeof canon === 'string' ? undefined : canon, options: opts, text };
}
