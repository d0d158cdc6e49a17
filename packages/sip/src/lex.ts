/**
 * String-level lexing helpers for header values (which are decoded lazily, on first use).
 * Positions are UTF-16 indexes into an already-unfolded value.
 */
import { Buffer } from 'node:buffer';
import { BACKSLASH, COMMA, DQUOTE, HT, LAQUOT, RAQUOT, SP, TOKEN } from './bytes.js';

export function skipWs(s: string, i: number): number {
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c !== SP && c !== HT && c !== 0x0d && c !== 0x0a) break;
    i++;
  }
  return i;
}

export function skipWsBack(s: string, end: number, start: number): number {
  while (end > start) {
    const c = s.charCodeAt(end - 1);
    if (c !== SP && c !== HT && c !== 0x0d && c !== 0x0a) break;
    end--;
  }
  return end;
}

/** End index of the token starting at `i` (== i when there is none). */
export function tokenEnd(s: string, i: number): number {
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c > 0x7f || TOKEN[c] !== 1) break;
    i++;
  }
  return i;
}

/**
 * Reads a quoted-string starting at the DQUOTE at `i`. Returns the unescaped content and the
 * index after the closing quote, or `undefined` when the quote is never closed.
 */
export function readQuoted(s: string, i: number): { text: string; end: number } | undefined {
  let out = '';
  let runStart = i + 1;
  for (let j = i + 1; j < s.length; j++) {
    const c = s.charCodeAt(j);
    if (c === BACKSLASH) {
      if (j + 1 >= s.length) return undefined;
      const n = s.charCodeAt(j + 1);
      // quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
      if (n === 0x0a || n === 0x0d || n > 0x7f) return undefined;
      out += s.slice(runStart, j) + s.charAt(j + 1);
      j++;
      runStart = j + 1;
    } else if (c === DQUOTE) {
      return { text: out + s.slice(runStart, j), end: j + 1 };
    } else if (c < 0x20 && c !== HT && c !== 0x0d && c !== 0x0a) {
      // qdtext excludes controls (other than LWS)
      return undefined;
    }
  }
  return undefined;
}

/**
 * Splits a header value at top-level commas (outside quoted strings and `<...>`), trimming each
 * element. Empty elements are kept (as `''`) so that callers can reject them.
 */
export function splitList(s: string): string[] {
  if (s.indexOf(',') === -1) return [s.trim()];
  const out: string[] = [];
  let start = 0;
  let inQuote = false;
  let inAngle = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (inQuote) {
      if (c === BACKSLASH) i++;
      else if (c === DQUOTE) inQuote = false;
    } else if (c === DQUOTE) inQuote = true;
    else if (c === LAQUOT) inAngle = true;
    else if (c === RAQUOT) inAngle = false;
    else if (c === COMMA && !inAngle) {
      out.push(s.slice(skipWs(s, start), skipWsBack(s, i, start)));
      start = i + 1;
    }
  }
  out.push(s.slice(skipWs(s, start), skipWsBack(s, s.length, start)));
  return out;
}

/** The first top-level list element of `s` (cheaper than `splitList(s)[0]`). */
export function firstListElement(s: string): string {
  if (s.indexOf(',') === -1) return s.trim();
  let inQuote = false;
  let inAngle = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (inQuote) {
      if (c === BACKSLASH) i++;
      else if (c === DQUOTE) inQuote = false;
    } else if (c === DQUOTE) inQuote = true;
    else if (c === LAQUOT) inAngle = true;
    else if (c === RAQUOT) inAngle = false;
    else if (c === COMMA && !inAngle) return s.slice(0, skipWsBack(s, i, 0)).trim();
  }
  return s.trim();
}

/**
 * Replaces each line fold (optional WSP, CRLF or LF, WSP) with a single SP, in one linear pass
 * (a regex here would backtrack quadratically on long runs of spaces).
 */
export function unfold(s: string): string {
  let out = '';
  let runStart = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c !== 0x0a && c !== 0x0d) continue;
    let back = i;
    while (back > runStart && (s.charCodeAt(back - 1) === SP || s.charCodeAt(back - 1) === HT)) {
      back--;
    }
    let j = i;
    while (j < s.length && (s.charCodeAt(j) === 0x0d || s.charCodeAt(j) === 0x0a)) j++;
    while (j < s.length && (s.charCodeAt(j) === SP || s.charCodeAt(j) === HT)) j++;
    out += `${s.slice(runStart, back)} `;
    runStart = j;
    i = j - 1;
  }
  return runStart === 0 ? s : out + s.slice(runStart);
}

/** Decodes %HH escapes once. Returns undefined on a malformed escape. */
export function unescapeOnce(s: string): string | undefined {
  if (s.indexOf('%') === -1) return s;
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x25) {
      const h = parseInt(s.slice(i + 1, i + 3), 16);
      if (i + 2 >= s.length || !/^[0-9a-fA-F]{2}$/.test(s.slice(i + 1, i + 3)) || Number.isNaN(h)) {
        return undefined;
      }
      bytes.push(h);
      i += 2;
    } else if (c < 0x80) {
      bytes.push(c);
    } else {
      const cp = s.codePointAt(i) ?? c;
      const ch = String.fromCodePoint(cp);
      for (const b of Buffer.from(ch, 'utf8')) bytes.push(b);
      i += ch.length - 1;
    }
  }
  return Buffer.from(bytes).toString('utf8');
}
