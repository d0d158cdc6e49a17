/**
 * nf_tables set-element messages in the kernel's netlink format (UAPI <linux/netfilter/
 * nf_tables.h> and <linux/netfilter/nfnetlink.h>), and the framing spoken with the
 * `pinhole-nfnl` helper (native/pinhole-nfnl.c), which relays the bytes to a NETLINK_NETFILTER
 * socket. Pure functions: everything here is unit-tested without a kernel.
 *
 * A batch is NFNL_MSG_BATCH_BEGIN, NFT_MSG_NEWSETELEM / NFT_MSG_DELSETELEM messages (each with
 * NLM_F_ACK, so the kernel answers every one: 0 or an errno), NFNL_MSG_BATCH_END. The kernel
 * applies a batch as one transaction: if one message fails, none is applied.
 *
 * Element layout (what `nft --debug=netlink add element` writes):
 * - key: the components of the set's concatenated type, each padded to 4 bytes: ipv4_addr 4,
 *   ipv6_addr 16, inet_proto 1 (+3), inet_service 2 in network byte order (+2);
 * - NFTA_SET_ELEM_TIMEOUT: milliseconds, 64-bit big-endian (absent: no timeout);
 * - NFTA_SET_ELEM_USERDATA: nft's userdata TLVs; the comment is type 0
 *   (NFTNL_UDATA_SET_ELEM_COMMENT), one length byte, the text and its NUL.
 */
import { constants } from 'node:os';
import { parseAddress } from '@pinhole/fcp';

// nlmsghdr flags and types
const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NLM_F_CREATE = 0x400;
const NLA_F_NESTED = 0x8000;
export const NFNL_MSG_BATCH_BEGIN = 0x10;
export const NFNL_MSG_BATCH_END = 0x11;
const NFNL_SUBSYS_NFTABLES = 10;
export const NFT_MSG_NEWSETELEM = 12;
export const NFT_MSG_DELSETELEM = 14;
const NFPROTO_INET = 1;
const NFPROTO_UNSPEC = 0;

// attribute types
const NFTA_SET_ELEM_LIST_TABLE = 1;
const NFTA_SET_ELEM_LIST_SET = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS = 3;
const NFTA_LIST_ELEM = 1;
const NFTA_SET_ELEM_KEY = 1;
const NFTA_SET_ELEM_TIMEOUT = 4;
const NFTA_SET_ELEM_USERDATA = 6;
const NFTA_DATA_VALUE = 1;
const NFTNL_UDATA_SET_ELEM_COMMENT = 0;

/** nlmsghdr (16) + nfgenmsg (4). */
const MSG_HEAD = 20;

const align4 = (n: number): number => (n + 3) & ~3;

/** The bytes of one key component, appended to `out` at `at`; returns the next offset. */
function writeAddress(text: string, out: Buffer, at: number): number {
  const a = parseAddress(text);
  if (!a) throw new RangeError(`bad element address ${text}`);
  for (const b of a.bytes) out[at++] = b;
  return at;
}

/**
 * The keys of elements of one hash hole set from their nft text (`198.18.0.1 . 17 . 40000`,
 * with a source address first in the `*sd` sets), concatenated: every component padded to 4
 * bytes. All keys of one call must have the same shape. Throws RangeError on a bad key.
 */
export function keyBytes(texts: readonly string[]): { keys: Buffer; keyLen: number } {
  const first = texts[0];
  if (first === undefined) return { keys: Buffer.alloc(0), keyLen: 0 };
  const shape = first.split(' . ');
  let keyLen = 8;
  for (let i = 0; i < shape.length - 2; i++) keyLen += (shape[i] as string).includes(':') ? 16 : 4;
  const out = Buffer.alloc(keyLen * texts.length);
  for (let k = 0; k < texts.length; k++) {
    const parts = (texts[k] as string).split(' . ');
    if (parts.length !== shape.length) throw new RangeError(`bad element key ${texts[k]}`);
    let at = k * keyLen;
    for (let i = 0; i < parts.length - 2; i++) at = writeAddress(parts[i] as string, out, at);
    const proto = parts[parts.length - 2] as string;
    const port = parts[parts.length - 1] as string;
    if (!/^\d{1,3}$/.test(proto) || Number(proto) > 255) {
      throw new RangeError(`bad element protocol ${proto}`);
    }
    if (!/^\d{1,5}$/.test(port) || Number(port) > 65535) {
      throw new RangeError(`bad element port ${port}`);
    }
    if (at !== k * keyLen + keyLen - 8) throw new RangeError(`bad element key ${texts[k]}`);
    // inet_proto: one byte; inet_service: two bytes in network order; both padded to 4.
    out[at] = Number(proto);
    out.writeUInt16BE(Number(port), at + 4);
  }
  return { keys: out, keyLen };
}

/**
 * The keys of the hash elements of an exact hole: `[src .] dst . proto . port` for every port
 * of `ports` (inclusive), concatenated (what `keyBytes` makes of the same elements' text, built
 * without going through text). Throws RangeError on a bad address.
 */
export function holeKeyBytes(
  src: string | undefined,
  dst: string,
  proto: number,
  ports: readonly [number, number],
): { keys: Buffer; keyLen: number } {
  const d = parseAddress(dst);
  const sa = src === undefined ? undefined : parseAddress(src);
  if (!d || (src !== undefined && !sa)) throw new RangeError(`bad element address`);
  const head = sa === undefined ? d.bytes : [...sa.bytes, ...d.bytes];
  const keyLen = head.length + 8;
  const n = ports[1] - ports[0] + 1;
  if (!(n >= 1 && proto >= 0 && proto <= 255 && ports[0] >= 0 && ports[1] <= 65535)) {
    throw new RangeError('bad element protocol or ports');
  }
  const out = Buffer.alloc(keyLen * n);
  for (let i = 0, at = 0; i < n; i++) {
    for (const b of head) out[at++] = b;
    out[at] = proto;
    out.writeUInt16BE(ports[0] + i, at + 4);
    at += 8;
  }
  return { keys: out, keyLen };
}

/** nft's userdata TLV holding an element comment (as the nft CLI writes it). */
export function commentUserdata(comment: string): Buffer {
  const n = Buffer.byteLength(comment, 'utf8');
  if (n + 1 > 255) throw new RangeError('comment too long for nft userdata');
  const out = Buffer.allocUnsafe(n + 3);
  out[0] = NFTNL_UDATA_SET_ELEM_COMMENT;
  out[1] = n + 1;
  out.write(comment, 2, 'utf8');
  out[n + 2] = 0;
  return out;
}

/** Reads the comment back from nft userdata TLVs (undefined if there is none). */
export function decodeUserdata(b: Buffer): string | undefined {
  let off = 0;
  while (off + 2 <= b.length) {
    const type = b[off] as number;
    const len = b[off + 1] as number;
    if (off + 2 + len > b.length) return undefined;
    if (type === NFTNL_UDATA_SET_ELEM_COMMENT && len > 0) {
      return b.toString('utf8', off + 2, off + 2 + len - 1);
    }
    off += 2 + len;
  }
  return undefined;
}

export type SetElemKind = 'new' | 'del';

/**
 * One NFT_MSG_NEWSETELEM (`add element`: an element that exists is left as it is) or
 * NFT_MSG_DELSETELEM message in family inet, with NLM_F_ACK.
 */
export interface SetElemMessage {
  readonly kind: SetElemKind;
  readonly set: string;
  /** `keyBytes(...).keys`: the elements' keys, `keyLen` bytes each. */
  readonly keys: Buffer;
  readonly keyLen: number;
  /** Element timeout in ms (0 = none); additions only. */
  readonly timeoutMs: number;
  /** `commentUserdata(...)`, additions only. */
  readonly userdata: Buffer | undefined;
}

/**
 * An empty NEWSETELEM on `set`: it changes nothing, and the kernel acknowledges it when the
 * table and set exist and the sender may change them (the netlink channel's probe).
 */
export function emptyNewSetElem(set: string): SetElemMessage {
  return { kind: 'new', set, keys: Buffer.alloc(0), keyLen: 0, timeoutMs: 0, userdata: undefined };
}

/** Where the table and set name attributes start in a set-element message (error offsets). */
export interface SetElemLayout {
  readonly tableAt: number;
  readonly setAt: number;
}

export function setElemLayout(table: string): SetElemLayout {
  const tableAt = MSG_HEAD;
  const setAt = tableAt + align4(4 + table.length + 1);
  return { tableAt, setAt };
}

function elementSize(m: SetElemMessage): number {
  // LIST_ELEM { KEY { DATA_VALUE key } [TIMEOUT u64] [USERDATA ud] }
  let n = 4 + 4 + 4 + align4(m.keyLen);
  if (m.kind === 'new' && m.timeoutMs > 0) n += 12;
  if (m.kind === 'new' && m.userdata !== undefined) n += align4(4 + m.userdata.length);
  return n;
}

function messageSize(table: string, m: SetElemMessage): number {
  const count = m.keyLen === 0 ? 0 : m.keys.length / m.keyLen;
  return (
    MSG_HEAD +
    align4(4 + table.length + 1) +
    align4(4 + m.set.length + 1) +
    4 +
    count * elementSize(m)
  );
}

/** Writes an attribute header; returns the payload offset. */
function attrHead(out: Buffer, at: number, len: number, type: number): number {
  // Plain byte stores: the checked writeUInt16LE was a visible share of the encoding's time.
  out[at] = len & 0xff;
  out[at + 1] = len >>> 8;
  out[at + 2] = type & 0xff;
  out[at + 3] = type >>> 8;
  return at + 4;
}

function writeString(out: Buffer, at: number, type: number, s: string): number {
  const len = 4 + s.length + 1;
  at = attrHead(out, at, len, type);
  out.write(s, at, 'latin1');
  out[at + s.length] = 0;
  return at - 4 + align4(len);
}

function writeHeader(
  out: Buffer,
  at: number,
  len: number,
  type: number,
  flags: number,
  seq: number,
  family: number,
  resId: number,
): void {
  out.writeUInt32LE(len, at);
  out.writeUInt16LE(type, at + 4);
  out.writeUInt16LE(flags, at + 6);
  out.writeUInt32LE(seq >>> 0, at + 8);
  out.writeUInt32LE(0, at + 12);
  out[at + 16] = family;
  out[at + 17] = 0; // NFNETLINK_V0
  out.writeUInt16BE(resId, at + 18);
}

function writeMessage(
  out: Buffer,
  at: number,
  table: string,
  m: SetElemMessage,
  seq: number,
): number {
  const len = messageSize(table, m);
  const type =
    (NFNL_SUBSYS_NFTABLES << 8) | (m.kind === 'new' ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM);
  const flags = NLM_F_REQUEST | NLM_F_ACK | (m.kind === 'new' ? NLM_F_CREATE : 0);
  writeHeader(out, at, len, type, flags, seq, NFPROTO_INET, 0);
  let p = at + MSG_HEAD;
  p = writeString(out, p, NFTA_SET_ELEM_LIST_TABLE, table);
  p = writeString(out, p, NFTA_SET_ELEM_LIST_SET, m.set);
  p = attrHead(out, p, len - (p - at), NFTA_SET_ELEM_LIST_ELEMENTS | NLA_F_NESTED);
  const size = elementSize(m);
  const timeout = m.kind === 'new' && m.timeoutMs > 0;
  const ud = m.kind === 'new' ? m.userdata : undefined;
  for (let k = 0; k + m.keyLen <= m.keys.length && m.keyLen > 0; k += m.keyLen) {
    p = attrHead(out, p, size, NFTA_LIST_ELEM | NLA_F_NESTED);
    p = attrHead(out, p, 8 + m.keyLen, NFTA_SET_ELEM_KEY | NLA_F_NESTED);
    p = attrHead(out, p, 4 + m.keyLen, NFTA_DATA_VALUE);
    m.keys.copy(out, p, k, k + m.keyLen);
    p += align4(m.keyLen);
    if (timeout) {
      p = attrHead(out, p, 12, NFTA_SET_ELEM_TIMEOUT);
      out.writeBigUInt64BE(BigInt(m.timeoutMs), p);
      p += 8;
    }
    if (ud !== undefined) {
      p = attrHead(out, p, 4 + ud.length, NFTA_SET_ELEM_USERDATA);
      ud.copy(out, p);
      out.fill(0, p + ud.length, p + align4(ud.length));
      p += align4(ud.length);
    }
  }
  return p;
}

/**
 * The request frame to the helper (u32 length and u32 id, little-endian) and the batch:
 * BEGIN (sequence `firstSeq`), the messages (sequences firstSeq+1...), END. One allocation.
 */
export function encodeBatchFrame(
  id: number,
  table: string,
  messages: readonly SetElemMessage[],
  firstSeq: number,
): Buffer {
  let size = 8 + 2 * MSG_HEAD;
  for (const m of messages) size += messageSize(table, m);
  const out = Buffer.alloc(size);
  out.writeUInt32LE(size - 8, 0);
  out.writeUInt32LE(id >>> 0, 4);
  let at = 8;
  writeHeader(
    out,
    at,
    MSG_HEAD,
    NFNL_MSG_BATCH_BEGIN,
    NLM_F_REQUEST,
    firstSeq,
    NFPROTO_UNSPEC,
    NFNL_SUBSYS_NFTABLES,
  );
  at += MSG_HEAD;
  for (let i = 0; i < messages.length; i++) {
    at = writeMessage(out, at, table, messages[i] as SetElemMessage, firstSeq + 1 + i);
  }
  writeHeader(
    out,
    at,
    MSG_HEAD,
    NFNL_MSG_BATCH_END,
    NLM_F_REQUEST,
    firstSeq + 1 + messages.length,
    NFPROTO_UNSPEC,
    NFNL_SUBSYS_NFTABLES,
  );
  return out;
}

export interface AckRecord {
  readonly seq: number;
  /** 0 = applied (or would have been, see `BatchResult`), else a positive errno. */
  readonly errno: number;
  /** Offset of the blamed attribute in the message, or undefined. */
  readonly offset: number | undefined;
}

export interface HelperReply {
  readonly id: number;
  readonly records: readonly AckRecord[];
}

const REPLY_HEAD = 8;
const RECORD = 12;

/**
 * Streaming decoder of the helper's replies: u32 count, u32 id, count × (u32 seq, i32 error,
 * u32 offset). Bytes may arrive in any split.
 */
export class ReplyDecoder {
  #buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): HelperReply[] {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk]);
    const out: HelperReply[] = [];
    let off = 0;
    for (;;) {
      if (this.#buf.length - off < REPLY_HEAD) break;
      const count = this.#buf.readUInt32LE(off);
      const size = REPLY_HEAD + count * RECORD;
      if (this.#buf.length - off < size) break;
      const id = this.#buf.readUInt32LE(off + 4);
      const records: AckRecord[] = [];
      for (let i = 0; i < count; i++) {
        const r = off + REPLY_HEAD + i * RECORD;
        const o = this.#buf.readUInt32LE(r + 8);
        records.push({
          seq: this.#buf.readUInt32LE(r),
          errno: Math.abs(this.#buf.readInt32LE(r + 4)),
          offset: o === 0xffffffff ? undefined : o,
        });
      }
      out.push({ id, records });
      off += size;
    }
    this.#buf = off === this.#buf.length ? Buffer.alloc(0) : this.#buf.subarray(off);
    return out;
  }

  get pendingBytes(): number {
    return this.#buf.length;
  }
}

const ERRNO_NAMES = new Map<number, string>(
  Object.entries(constants.errno).map(([name, n]) => [n, name]),
);

export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
}

/**
 * A specific message for a refused set-element message: which object the kernel blamed (from
 * the extended ACK's attribute offset) and what was wrong with it.
 */
export function describeError(
  kind: SetElemKind,
  table: string,
  set: string,
  errno: number,
  offset: number | undefined,
): string {
  const layout = setElemLayout(table);
  const name = errnoName(errno);
  const where = `inet ${table} ${set}`;
  if (offset !== undefined && offset >= layout.tableAt && offset < layout.setAt) {
    return errno === constants.errno.ENOENT
      ? `table inet ${table} does not exist (${name})`
      : `table inet ${table} refused (${name})`;
  }
  const setEnd = layout.setAt + align4(4 + set.length + 1);
  if (offset !== undefined && offset >= layout.setAt && offset < setEnd) {
    return errno === constants.errno.ENOENT
      ? `set ${where} does not exist (${name})`
      : `set ${where} refused (${name})`;
  }
  if (errno === constants.errno.ENOENT) {
    return kind === 'del'
      ? `element does not exist in ${where} (${name})`
      : `${where} or its table does not exist (${name})`;
  }
  if (errno === constants.errno.EEXIST) return `element already exists in ${where} (${name})`;
  if (errno === constants.errno.ENFILE || errno === constants.errno.ENOSPC) {
    return `set ${where} is full (${name})`;
  }
  if (errno === constants.errno.EINVAL || errno === constants.errno.ERANGE) {
    return `element refused by ${where}: invalid key, timeout or comment (${name})`;
  }
  return `${kind === 'new' ? 'add' : 'delete'} element in ${where} failed (${name})`;
}
