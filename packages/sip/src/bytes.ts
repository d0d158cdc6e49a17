/** Named bytes and character classes shared by the scanners (RFC 3261 §25.1). */
import { Buffer } from 'node:buffer';

export const HT = 0x09;
export const LF = 0x0a;
export const CR = 0x0d;
export const SP = 0x20;
export const DQUOTE = 0x22;
export const COMMA = 0x2c;
export const SLASH = 0x2f;
export const COLON = 0x3a;
export const SEMI = 0x3b;
export const LAQUOT = 0x3c;
export const EQUAL = 0x3d;
export const RAQUOT = 0x3e;
export const BACKSLASH = 0x5c;

function table(chars: string, ranges: readonly (readonly [number, number])[] = []): Uint8Array {
  const t = new Uint8Array(256);
  for (let i = 0; i < chars.length; i++) t[chars.charCodeAt(i)] = 1;
  for (const [a, b] of ranges) for (let c = a; c <= b; c++) t[c] = 1;
  return t;
}

const ALNUM: readonly (readonly [number, number])[] = [
  [0x30, 0x39],
  [0x41, 0x5a],
  [0x61, 0x7a],
];

/** token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~") */
export const TOKEN: Uint8Array = table("-.!%*_+`'~", ALNUM);
/** word = 1*(alphanum / token marks / "(" / ")" / "<" / ">" / ":" / "\" / DQUOTE / "/" / "[" / "]" / "?" / "{" / "}") */
export const WORD: Uint8Array = table('-.!%*_+`\'~()<>:\\"/[]?{}', ALNUM);
/** user = 1*( unreserved / escaped / user-unreserved ); user-unreserved = & = + $ , ; ? / */
export const USER: Uint8Array = table("-_.!~*'()&=+$,;?/", ALNUM);
/** password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," ) */
export const PASSWORD: Uint8Array = table("-_.!~*'()&=+$,", ALNUM);
/** paramchar = param-unreserved / unreserved / escaped; param-unreserved = [ ] / : & + $ */
export const PARAMCHAR: Uint8Array = table("-_.!~*'()[]/:&+$", ALNUM);
/** hname / hvalue chars: hnv-unreserved = [ ] / ? : + $ */
export const HNVCHAR: Uint8Array = table("-_.!~*'()[]/?:+$", ALNUM);
/** Host name characters (alphanum, "-", "." and, leniently, "_"). */
export const HOSTCHAR: Uint8Array = table('-._', ALNUM);
/** URI scheme characters after the first ALPHA. */
export const SCHEMECHAR: Uint8Array = table('+-.', ALNUM);
/** Telephone-subscriber characters for tel: URIs (RFC 3966), kept liberal. */
export const TELCHAR: Uint8Array = table("-_.!~*'()+#/&=$,:[]%", ALNUM);

export function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

export function isAlpha(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

/** True when every character of `s` is a token character (and `s` is not empty). */
export function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f || TOKEN[c] !== 1) return false;
  }
  return true;
}

/** Parses 1*DIGIT into a number; -1 when not all digits, empty, or above `max`. */
export function parseDigits(s: string, max: number): number {
  if (s.length === 0 || s.length > 20) return -1;
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return -1;
    n = n * 10 + (c - 0x30);
  }
  return n > max ? -1 : n;
}

export const UINT32_MAX = 4_294_967_295;

/**
 * Buffer methods taken once from `Buffer.prototype`. V8's optimized code did not fold
 * `buf.indexOf` to a constant (the head scan's machine code showed a LoadIC call for it on every
 * header line; Node's `Buffer.prototype` has a great many properties): a module constant costs a
 * load instead. Parse −4 %, read −5 % on the bench INVITE.
 * `latin1Slice`, `utf8Slice` and `utf8Write` are Node's internal fast paths (no encoding-name
 * switch); `toString` / `write` stand in where a runtime lacks them.
 */
type BufferInternals = {
  indexOf: (this: Buffer, value: number, byteOffset: number) => number;
  latin1Slice?: (this: Buffer, start: number, end: number) => string;
  utf8Slice?: (this: Buffer, start: number, end: number) => string;
  utf8Write?: (this: Buffer, text: string, offset: number) => number;
};
// (`Buffer.prototype` is typed `any`: the shapes used are named above.)
const internals = Buffer.prototype as BufferInternals;
const bufferIndexOf = internals.indexOf;
const latin1Slice = internals.latin1Slice;
const utf8Slice = internals.utf8Slice;
const utf8WriteImpl = internals.utf8Write;

/** `buf.indexOf(byte, from)`: the first `byte` at or after `from`, -1 when there is none. */
export function indexOfByte(buf: Buffer, byte: number, from: number): number {
  return bufferIndexOf.call(buf, byte, from);
}

/** Decodes `buf[start..end)` as Latin-1 (header names and ASCII values). */
export function decodeLatin1(buf: Buffer, start: number, end: number): string {
  return latin1Slice !== undefined
    ? latin1Slice.call(buf, start, end)
    : buf.toString('latin1', start, end);
}

/** Decodes `buf[start..end)` as UTF-8. */
export function decodeUtf8(buf: Buffer, start: number, end: number): string {
  return utf8Slice !== undefined
    ? utf8Slice.call(buf, start, end)
    : buf.toString('utf8', start, end);
}

/** Writes `text` as UTF-8 at `out[at..)`; returns the byte count (the caller reserved room). */
export function writeUtf8(out: Buffer, at: number, text: string): number {
  return utf8WriteImpl !== undefined
    ? utf8WriteImpl.call(out, text, at)
    : out.write(text, at, 'utf8');
}
