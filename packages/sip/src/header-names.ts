/**
 * Header-name resolution: compact forms (RFC 3261 §7.3.3 and the IANA SIP header registry) and
 * numeric ids for the headers the typed accessors read, so the hot path compares small integers
 * instead of strings.
 */

/** Ids of well-known headers. `UNKNOWN` (0) means "compare by canonical name". */
export const H = {
  UNKNOWN: 0,
  VIA: 1,
  FROM: 2,
  TO: 3,
  CALL_ID: 4,
  CSEQ: 5,
  MAX_FORWARDS: 6,
  CONTACT: 7,
  ROUTE: 8,
  RECORD_ROUTE: 9,
  CONTENT_LENGTH: 10,
  CONTENT_TYPE: 11,
  EXPIRES: 12,
  SESSION_EXPIRES: 13,
  MIN_SE: 14,
  SUPPORTED: 15,
  REQUIRE: 16,
  PROXY_REQUIRE: 17,
  ALLOW: 18,
  ACCEPT_CONTACT: 19,
  REFERRED_BY: 20,
  REQUEST_DISPOSITION: 21,
  CONTENT_ENCODING: 22,
  IDENTITY_INFO: 23,
  EVENT: 24,
  REFER_TO: 25,
  SUBJECT: 26,
  ALLOW_EVENTS: 27,
  IDENTITY: 28,
  REJECT_CONTACT: 29,
  DATE: 30,
  UNSUPPORTED: 31,
  ACCEPT: 32,
  USER_AGENT: 33,
  SERVER: 34,
  AUTHORIZATION: 35,
  PROXY_AUTHORIZATION: 36,
  WWW_AUTHENTICATE: 37,
  PROXY_AUTHENTICATE: 38,
  WARNING: 39,
  RETRY_AFTER: 40,
  TIMESTAMP: 41,
  PATH: 42,
  SERVICE_ROUTE: 43,
  RSEQ: 44,
  RACK: 45,
  MIN_EXPIRES: 46,
  CONTENT_DISPOSITION: 47,
  REPLACES: 48,
  P_ASSERTED_IDENTITY: 49,
} as const;

/** Canonical lower-case long name per id (index = id). */
export const CANONICAL: readonly string[] = [
  '',
  'via',
  'from',
  'to',
  'call-id',
  'cseq',
  'max-forwards',
  'contact',
  'route',
  'record-route',
  'content-length',
  'content-type',
  'expires',
  'session-expires',
  'min-se',
  'supported',
  'require',
  'proxy-require',
  'allow',
  'accept-contact',
  'referred-by',
  'request-disposition',
  'content-encoding',
  'identity-info',
  'event',
  'refer-to',
  'subject',
  'allow-events',
  'identity',
  'reject-contact',
  'date',
  'unsupported',
  'accept',
  'user-agent',
  'server',
  'authorization',
  'proxy-authorization',
  'www-authenticate',
  'proxy-authenticate',
  'warning',
  'retry-after',
  'timestamp',
  'path',
  'service-route',
  'rseq',
  'rack',
  'min-expires',
  'content-disposition',
  'replaces',
  'p-asserted-identity',
];

/** Properly-cased long names, used when this package writes a header line. */
export const PRETTY: readonly string[] = CANONICAL.map((n) =>
  n === 'call-id'
    ? 'Call-ID'
    : n === 'cseq'
      ? 'CSeq'
      : n === 'min-se'
        ? 'Min-SE'
        : n === 'www-authenticate'
          ? 'WWW-Authenticate'
          : n === 'rseq'
            ? 'RSeq'
            : n === 'rack'
              ? 'RAck'
              : n === 'p-asserted-identity'
                ? 'P-Asserted-Identity'
                : n
                    .split('-')
                    .map((p) => p.charAt(0).toUpperCase() + p.slice(1))
                    .join('-'),
);

/** Compact forms (IANA registry). */
export const COMPACT: Readonly<Record<string, number>> = {
  a: H.ACCEPT_CONTACT,
  b: H.REFERRED_BY,
  c: H.CONTENT_TYPE,
  d: H.REQUEST_DISPOSITION,
  e: H.CONTENT_ENCODING,
  f: H.FROM,
  i: H.CALL_ID,
  j: H.REJECT_CONTACT,
  k: H.SUPPORTED,
  l: H.CONTENT_LENGTH,
  m: H.CONTACT,
  n: H.IDENTITY_INFO,
  o: H.EVENT,
  r: H.REFER_TO,
  s: H.SUBJECT,
  t: H.TO,
  u: H.ALLOW_EVENTS,
  v: H.VIA,
  x: H.SESSION_EXPIRES,
  y: H.IDENTITY,
};

/** Headers whose value is a comma-separated list (RFC 3261 §7.3.1), split by `getAll`. */
export const LIST_HEADERS: ReadonlySet<string> = new Set([
  'via',
  'contact',
  'route',
  'record-route',
  'supported',
  'require',
  'proxy-require',
  'unsupported',
  'allow',
  'accept',
  'accept-encoding',
  'accept-language',
  'allow-events',
  'content-encoding',
  'content-language',
  'in-reply-to',
  'alert-info',
  'call-info',
  'error-info',
  'warning',
  'path',
  'service-route',
  'p-asserted-identity',
  'p-preferred-identity',
  'accept-contact',
  'reject-contact',
  'request-disposition',
  'reason',
  'history-info',
]);

const BY_NAME = new Map<string, number>();
for (let id = 1; id < CANONICAL.length; id++) BY_NAME.set(CANONICAL[id] ?? '', id);
for (const [letter, id] of Object.entries(COMPACT)) BY_NAME.set(letter, id);

/**
 * Wire-name recognition as a DFA run over the name bytes while the scanner reads them (so a
 * name is looked at once, with no hash and no second comparison pass): a trie of every known
 * spelling, case folded through a byte-class table. `NAME_CLASS[c]` is 0 for bytes that are not
 * token characters (they end a name), 1-26 for letters of either case, 27 for "-" and 28 for
 * the other token characters. States are stored multiplied by 32 (their row's offset), so
 * `NAME_NEXT[state + class]` is the next state: one add and one load a byte on the dependent
 * chain, no shift. `NAME_START` (row 1) is the start, 0 "a token name that is no known
 * spelling" (it stays 0). `NAME_ID[state >>> 5]` is the header id of a name ending in that
 * state (`H.UNKNOWN` elsewhere). The table is 24 KiB: it stays in the L1 cache (a 256-wide row
 * per state, which saves the class read, is 8 times larger and was slower for it).
 */
export const NAME_START = 32;
export const NAME_CLASS: Uint8Array = new Uint8Array(256);
for (let c = 0; c < 256; c++) {
  const cls =
    c >= 0x61 && c <= 0x7a
      ? c - 0x60
      : c >= 0x41 && c <= 0x5a
        ? c - 0x40
        : c === 0x2d
          ? 27
          : (c >= 0x30 && c <= 0x39) || "-.!%*_+`'~".includes(String.fromCharCode(c))
            ? 28
            : 0;
  NAME_CLASS[c] = cls;
}
const trie: number[][] = [new Array<number>(32).fill(0), new Array<number>(32).fill(0)];
const accept: number[] = [H.UNKNOWN, H.UNKNOWN];
for (const [spelling, id] of BY_NAME) {
  let state = 1;
  for (let i = 0; i < spelling.length; i++) {
    const row = trie[state] as number[];
    const cls = NAME_CLASS[spelling.charCodeAt(i)] as number;
    let next = row[cls] as number;
    if (next === 0) {
      next = trie.length;
      trie.push(new Array<number>(32).fill(0));
      accept.push(H.UNKNOWN);
      row[cls] = next;
    }
    state = next;
  }
  accept[state] = id;
}
export const NAME_NEXT: Uint16Array = new Uint16Array(trie.length * 32);
trie.forEach((row, state) =>
  NAME_NEXT.set(
    row.map((next) => next * 32),
    state * 32,
  ),
);
export const NAME_ID: Uint8Array = Uint8Array.from(accept);

/** The id of the header name `buf[start..end)` as the scanner's DFA reads it. */
export function resolveWireName(buf: Uint8Array, start: number, end: number): number {
  let state = NAME_START;
  for (let i = start; i < end; i++) {
    const cls = NAME_CLASS[buf[i] as number] as number;
    if (cls === 0) return H.UNKNOWN;
    state = NAME_NEXT[state + cls] as number;
  }
  return NAME_ID[state >>> 5] as number;
}

const queryCache = new Map<string, { id: number; canonical: string }>();

/** Resolves a header name given by a caller (any case, compact or long) to id and canonical name. */
export function resolveName(name: string): { id: number; canonical: string } {
  const cached = queryCache.get(name);
  if (cached) return cached;
  const lower = name.trim().toLowerCase();
  const id = BY_NAME.get(lower) ?? H.UNKNOWN;
  const r = { id, canonical: id === H.UNKNOWN ? lower : (CANONICAL[id] ?? lower) };
  if (queryCache.size < 1024) queryCache.set(name, r);
  return r;
}
