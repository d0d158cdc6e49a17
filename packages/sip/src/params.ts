/** Header parameters: *( SEMI generic-param ), generic-param = token [ EQUAL gen-value ] (RFC 3261 §25.1). */
import { DQUOTE, SEMI, TOKEN } from './bytes.js';
import { readQuoted, skipWs, tokenEnd } from './lex.js';

/** gen-value = token / host / quoted-string: token characters plus `:` `[` `]` for hosts. */
function valueEnd(s: string, i: number): number {
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c > 0x7f) break;
    if (TOKEN[c] !== 1 && c !== 0x3a && c !== 0x5b && c !== 0x5d) break;
    i++;
  }
  return i;
}

/** The parameters of a value that has none: one shared, never-written map. */
const NO_PARAMS: ReadonlyMap<string, string> = new Map();

/**
 * Reads parameters starting at `i` (at a `;`, possibly after whitespace). Names are lower-cased,
 * quoted values are unquoted, valueless parameters map to `''`. Returns the index where parsing
 * stopped (the caller checks it reached the end), or undefined on an empty or malformed
 * parameter (`;;`, `;=x`, `;a=`).
 */
export function readParams(
  s: string,
  i: number,
): { params: ReadonlyMap<string, string>; end: number } | undefined {
  // No Map for a value without parameters (most Contact, Route and Record-Route values).
  let params: Map<string, string> | undefined;
  for (;;) {
    const j = skipWs(s, i);
    if (j >= s.length || s.charCodeAt(j) !== SEMI) return { params: params ?? NO_PARAMS, end: j };
    const nameStart = skipWs(s, j + 1);
    const nameEnd = tokenEnd(s, nameStart);
    if (nameEnd === nameStart) return undefined;
    const name = s.slice(nameStart, nameEnd).toLowerCase();
    let k = skipWs(s, nameEnd);
    let value = '';
    if (k < s.length && s.charCodeAt(k) === 0x3d) {
      k = skipWs(s, k + 1);
      if (k < s.length && s.charCodeAt(k) === DQUOTE) {
        const q = readQuoted(s, k);
        if (q === undefined) return undefined;
        value = q.text;
        k = q.end;
      } else {
        const e = valueEnd(s, k);
        if (e === k) return undefined;
        value = s.slice(k, e);
        k = e;
      }
      i = k;
    } else {
      i = nameEnd;
    }
    (params ??= new Map<string, string>()).set(name, value);
  }
}
