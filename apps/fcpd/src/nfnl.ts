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

/** One netlink attribute: header, payload, padding to 4 bytes. */
function attr(type: number, payload: Buffer): Buffer {
  const len = 4 + payload.length;
  const out = Buffer.alloc(align4(len));
  out.writeUInt16LE(len, 0);
  out.writeUInt16LE(type, 2);
  payload.copy(out, 4);
  return out;
}

function nested(type: number, parts: readonly Buffer[]): Buffer {
  return attr(type | NLA_F_NESTED, Buffer.concat(parts));
}

function cstring(s: string): Buffer {
  return Buffer.from(`${s}\0`, 'latin1');
}

/**
 * The key of an element of a hash hole set from its nft text (`198.18.0.1 . 17 . 40000`, with
 * a source address first in the `*sd` sets): every component padded to 4 bytes.
 */
export function keyBytes(text: string): Buffer {
  const parts = text.split(' . ');
  const out: number[] = [];
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i] as string;
    if (i >= parts.length - 2) {
      const n = Number(p);
      if (!/^\d{1,5}$/.test(p) || n > 65535 || (i === parts.length - 2 && n > 255)) {
        throw new RangeError(`bad element component ${p}`);
      }
      // inet_proto: one byte; inet_service: two bytes, network order; both padded to 4.
      if (i === parts.length - 2) out.push(n, 0, 0, 0);
      else out.push(n >> 8, n & 0xff, 0, 0);
    } else {
      const a = parseAddress(p);
      if (!a) throw new RangeError(`bad element address ${p}`);
      out.push(...a.bytes);
    }
  }
  return Buffer.from(out);
}

/** nft's userdata TLV holding an element comment (as the nft CLI writes it). */
export function commentUserdata(comment: string): Buffer {
  const text = Buffer.from(comment, 'utf8');
  if (text.length + 1 > 255) throw new RangeError('comment too long for nft userdata');
  return Buffer.concat([
    Buffer.from([NFTNL_UDATA_SET_ELEM_COMMENT, text.length + 1]),
    text,
    Buffer.from([0]),
  ]);
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

/**
 * One NFTA_LIST_ELEM attribute: the key, and for an addition its timeout (ms; 0 or undefined =
 * none) and comment.
 */
export function elementAttr(key: Buffer, timeoutMs?: number, comment?: string): Buffer {
  const parts = [nested(NFTA_SET_ELEM_KEY, [attr(NFTA_DATA_VALUE, key)])];
  if (timeoutMs !== undefined && timeoutMs > 0) {
    const t = Buffer.alloc(8);
    t.writeBigUInt64BE(BigInt(timeoutMs));
    parts.push(attr(NFTA_SET_ELEM_TIMEOUT, t));
  }
  if (comment !== undefined) parts.push(attr(NFTA_SET_ELEM_USERDATA, commentUserdata(comment)));
  return nested(NFTA_LIST_ELEM, parts);
}

export type SetElemKind = 'new' | 'del';

/** Where the table and set name attributes start in a set-element message (for error offsets). */
export interface SetElemLayout {
  readonly tableAt: number;
  readonly setAt: number;
}

export function setElemLayout(table: string): SetElemLayout {
  const tableAt = MSG_HEAD;
  const setAt = tableAt + align4(4 + table.length + 1);
  return { tableAt, setAt };
}

/**
 * An NFT_MSG_NEWSETELEM (`add element`: an existing element is left as it is) or
 * NFT_MSG_DELSETELEM message in family inet, with NLM_F_ACK. `elements` is the concatenation of
 * `elementAttr` results. The sequence number is written by `encodeBatch`.
 */
export function setElemMessage(
  kind: SetElemKind,
  table: string,
  set: string,
  elements: Buffer,
): Buffer {
  const body = Buffer.concat([
    attr(NFTA_SET_ELEM_LIST_TABLE, cstring(table)),
    attr(NFTA_SET_ELEM_LIST_SET, cstring(set)),
    attr(NFTA_SET_ELEM_LIST_ELEMENTS | NLA_F_NESTED, elements),
  ]);
  const type = kind === 'new' ? NFT_MSG_NEWSETELEM : NFT_MSG_DELSETELEM;
  const flags = NLM_F_REQUEST | NLM_F_ACK | (kind === 'new' ? NLM_F_CREATE : 0);
  return header(
    MSG_HEAD + body.length,
    (NFNL_SUBSYS_NFTABLES << 8) | type,
    flags,
    NFPROTO_INET,
    0,
    body,
  );
}

function header(
  len: number,
  type: number,
  flags: number,
  family: number,
  resId: number,
  body: Buffer | undefined,
): Buffer {
  const out = Buffer.alloc(align4(len));
  out.writeUInt32LE(len, 0);
  out.writeUInt16LE(type, 4);
  out.writeUInt16LE(flags, 6);
  // seq (8) and portid (12) stay 0 here.
  out.writeUInt8(family, 16);
  out.writeUInt8(0, 17); // NFNETLINK_V0
  out.writeUInt16BE(resId, 18);
  body?.copy(out, MSG_HEAD);
  return out;
}

/**
 * A whole batch: BEGIN (sequence `firstSeq`), the messages (sequences firstSeq+1...), END.
 * The messages' buffers get their sequence numbers written in place.
 */
export function encodeBatch(messages: readonly Buffer[], firstSeq: number): Buffer {
  const begin = header(
    MSG_HEAD,
    NFNL_MSG_BATCH_BEGIN,
    NLM_F_REQUEST,
    NFPROTO_UNSPEC,
    NFNL_SUBSYS_NFTABLES,
    undefined,
  );
  begin.writeUInt32LE(firstSeq >>> 0, 8);
  const end = header(
    MSG_HEAD,
    NFNL_MSG_BATCH_END,
    NLM_F_REQUEST,
    NFPROTO_UNSPEC,
    NFNL_SUBSYS_NFTABLES,
    undefined,
  );
  for (let i = 0; i < messages.length; i++) {
    (messages[i] as Buffer).writeUInt32LE((firstSeq + 1 + i) >>> 0, 8);
  }
  end.writeUInt32LE((firstSeq + 1 + messages.length) >>> 0, 8);
  return Buffer.concat([begin, ...messages, end]);
}

/** The request frame to the helper: u32 length, u32 id (little-endian), the batch. */
export function encodeFrame(id: number, batch: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32LE(batch.length, 0);
  head.writeUInt32LE(id >>> 0, 4);
  return Buffer.concat([head, batch]);
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
