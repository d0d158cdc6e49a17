/**
 * HEP version 3 (EEP, the SIPCAPTURE/HOMER encapsulation protocol) decoder.
 *
 * Wire format: the 4 ASCII bytes `HEP3`, a 16-bit big-endian total length (header included),
 * then chunks. Each chunk is a 16-bit vendor id, a 16-bit type id and a 16-bit length (the
 * 6-byte chunk header included), followed by `length - 6` bytes of data. Vendor id 0 marks the
 * generic chunks of the specification; chunks of other vendors are kept (bounded) or skipped.
 *
 * Every length field is checked against the bytes actually present, and every fixed-size chunk
 * against its size. Bad input is a value (`{ ok: false, error: { code } }`), never a throw.
 */
import { inflateSync, gunzipSync, inflateRawSync } from 'node:zlib';
import { ipFromBytes } from '@pinhole/policy';

/** The magic `HEP3`. */
export const HEP3_MAGIC: readonly number[] = [0x48, 0x45, 0x50, 0x33];
/** Bytes of the packet header (magic + total length) and of a chunk header. */
export const HEP_HEADER_BYTES = 6;
export const HEP_CHUNK_HEADER_BYTES = 6;
/** The total length is 16 bits: no HEP3 packet is larger. */
export const HEP_MAX_PACKET_BYTES = 0xffff;

/** Generic chunk type ids (vendor id 0), as the HEP3 specification numbers them. */
export const HepChunk = {
  ipFamily: 0x0001,
  ipProtocol: 0x0002,
  ipv4Src: 0x0003,
  ipv4Dst: 0x0004,
  ipv6Src: 0x0005,
  ipv6Dst: 0x0006,
  srcPort: 0x0007,
  dstPort: 0x0008,
  timeSeconds: 0x0009,
  timeMicros: 0x000a,
  protocolType: 0x000b,
  captureId: 0x000c,
  keepAliveTimer: 0x000d,
  authKey: 0x000e,
  payload: 0x000f,
  compressedPayload: 0x0010,
  correlationId: 0x0011,
  vlanId: 0x0012,
  groupId: 0x0013,
  srcMac: 0x0014,
  dstMac: 0x0015,
  ethernetType: 0x0016,
  tcpFlags: 0x0017,
  ipTos: 0x0018,
  mos: 0x0019,
  rFactor: 0x001a,
  geoLocation: 0x001b,
  jitter: 0x001c,
  transactionType: 0x001d,
  payloadJsonKeys: 0x001e,
  tagsValues: 0x001f,
  tagType: 0x0020,
} as const;

/** Vendor ids registered in the specification (0 = generic). */
export const HepVendor = {
  generic: 0x0000,
  freeswitch: 0x0001,
  kamailio: 0x0002,
  opensips: 0x0003,
  asterisk: 0x0004,
  homer: 0x0005,
  sipxecs: 0x0006,
} as const;

/** IP protocol family chunk values (they are the BSD `AF_INET` / Linux `AF_INET6` numbers). */
export const HEP_FAMILY_IPV4 = 2;
export const HEP_FAMILY_IPV6 = 10;

/** Protocol type chunk (0x000b) values the sidecar names; anything else is `other`. */
export const HepProtocolType = {
  sip: 1,
  xmpp: 2,
  sdp: 3,
  rtp: 4,
  rtcp: 5,
  mgcp: 6,
  megaco: 7,
  m2ua: 8,
  m3ua: 9,
  iax: 10,
  log: 100,
} as const;
export type HepProtocolName = keyof typeof HepProtocolType | 'other' | 'none';

const PROTOCOL_NAMES = new Map<number, HepProtocolName>(
  Object.entries(HepProtocolType).map(([k, v]) => [v, k as HepProtocolName]),
);

/** A bounded, label-safe name for a protocol type value (for metrics and logs). */
export function hepProtocolName(type: number | undefined): HepProtocolName {
  if (type === undefined) return 'none';
  return PROTOCOL_NAMES.get(type) ?? 'other';
}

/** Stable error codes of the decoder. */
export const HepErrorCode = {
  /** Fewer than 6 bytes: no room for the header. */
  tooShort: 'HEP_ERR_TOO_SHORT',
  /** Does not start with `HEP3` (HEP v1/v2 are not supported). */
  badMagic: 'HEP_ERR_BAD_MAGIC',
  /** The total length is below 6 or above the bytes available. */
  badLength: 'HEP_ERR_BAD_LENGTH',
  /** Bytes after the packet the total length describes (one datagram must be one packet). */
  trailingBytes: 'HEP_ERR_TRAILING_BYTES',
  /** A chunk header does not fit, or its length is below 6 or runs past the packet. */
  badChunkLength: 'HEP_ERR_BAD_CHUNK_LENGTH',
  /** A fixed-size generic chunk has the wrong size (e.g. an IPv4 address that is not 4 bytes). */
  badChunkSize: 'HEP_ERR_BAD_CHUNK_SIZE',
  /** A generic chunk appears twice. */
  duplicateChunk: 'HEP_ERR_DUPLICATE_CHUNK',
  /** Both a payload and a compressed payload chunk. */
  twoPayloads: 'HEP_ERR_TWO_PAYLOADS',
  /** More chunks than `maxChunks`. */
  tooManyChunks: 'HEP_ERR_TOO_MANY_CHUNKS',
  /** The compressed payload is not zlib, gzip or raw deflate data. */
  inflateFailed: 'HEP_ERR_INFLATE_FAILED',
  /** The compressed payload inflates past `maxInflatedBytes`. */
  inflateTooLarge: 'HEP_ERR_INFLATE_TOO_LARGE',
  /** The IP family chunk says one family, the address chunks another. */
  familyMismatch: 'HEP_ERR_FAMILY_MISMATCH',
} as const;
export type HepErrorCode = (typeof HepErrorCode)[keyof typeof HepErrorCode];

export interface HepDecodeError {
  readonly code: HepErrorCode;
  readonly reason: string;
  /** Byte offset in the packet where the problem was found. */
  readonly offset: number;
}

/** A chunk of a non-generic vendor, or a generic chunk type the decoder does not interpret. */
export interface HepRawChunk {
  readonly vendorId: number;
  readonly typeId: number;
  readonly data: Uint8Array;
}

/** A decoded HEP3 packet. Fields are undefined when their chunk was absent. */
export interface HepPacket {
  readonly version: 3;
  /** The total length field (equals the bytes decoded). */
  readonly length: number;
  /** 2 (IPv4) or 10 (IPv6) per the specification; any other value is kept as sent. */
  readonly ipFamily: number | undefined;
  /** IP protocol number: 17 UDP, 6 TCP, 132 SCTP. */
  readonly ipProtocol: number | undefined;
  /** Canonical text (dotted IPv4, RFC 5952 IPv6). */
  readonly srcAddress: string | undefined;
  readonly dstAddress: string | undefined;
  readonly srcPort: number | undefined;
  readonly dstPort: number | undefined;
  readonly timeSeconds: number | undefined;
  readonly timeMicros: number | undefined;
  readonly protocolType: number | undefined;
  /** Capture agent id (32-bit in HEP3; a 16-bit chunk from older agents is accepted). */
  readonly captureId: number | undefined;
  readonly keepAliveTimer: number | undefined;
  readonly authKey: Uint8Array | undefined;
  /** The captured payload as bytes (inflated when it came in a compressed chunk). */
  readonly payload: Uint8Array | undefined;
  /** True when `payload` came from the compressed payload chunk. */
  readonly compressed: boolean;
  readonly correlationId: Uint8Array | undefined;
  readonly vlanId: number | undefined;
  /** Chunk 0x0013 ("group id"; Kamailio and heplify fill it with the node name). */
  readonly nodeName: string | undefined;
  /** Chunks of vendors other than 0, and generic chunk types not interpreted above (bounded). */
  readonly otherChunks: readonly HepRawChunk[];
  /** How many chunks were skipped because `otherChunks` was full. */
  readonly skippedChunks: number;
}

export type HepDecodeResult =
  | { readonly ok: true; readonly packet: HepPacket }
  | { readonly ok: false; readonly error: HepDecodeError };

export interface HepDecodeOptions {
  /** Largest size the compressed payload may inflate to (default 65_535). */
  readonly maxInflatedBytes?: number;
  /** Most chunks in one packet (default 256; a packet has room for at most 10_921). */
  readonly maxChunks?: number;
  /** Most non-generic chunks kept in `otherChunks` (default 16); the rest are counted and skipped. */
  readonly maxOtherChunks?: number;
  /** Accept bytes after the packet instead of failing with HEP_ERR_TRAILING_BYTES (default false). */
  readonly allowTrailingBytes?: boolean;
}

const DEFAULT_MAX_INFLATED = 65_535;
const DEFAULT_MAX_CHUNKS = 256;
const DEFAULT_MAX_OTHER = 16;

/** Fixed data sizes of generic chunks (chunk length minus its header). */
const FIXED_SIZES: ReadonlyMap<number, readonly number[]> = new Map([
  [HepChunk.ipFamily, [1]],
  [HepChunk.ipProtocol, [1]],
  [HepChunk.ipv4Src, [4]],
  [HepChunk.ipv4Dst, [4]],
  [HepChunk.ipv6Src, [16]],
  [HepChunk.ipv6Dst, [16]],
  [HepChunk.srcPort, [2]],
  [HepChunk.dstPort, [2]],
  [HepChunk.timeSeconds, [4]],
  [HepChunk.timeMicros, [4]],
  [HepChunk.protocolType, [1]],
  [HepChunk.captureId, [4, 2]],
  [HepChunk.keepAliveTimer, [2]],
  [HepChunk.vlanId, [2]],
]);

function fail(code: HepErrorCode, reason: string, offset: number): HepDecodeResult {
  return { ok: false, error: { code, reason, offset } };
}

function u16(b: Uint8Array, o: number): number {
  return ((b[o] ?? 0) << 8) | (b[o + 1] ?? 0);
}

function u32(b: Uint8Array, o: number): number {
  return (
    ((b[o] ?? 0) * 0x1000000 +
      (((b[o + 1] ?? 0) << 16) | ((b[o + 2] ?? 0) << 8) | (b[o + 3] ?? 0))) >>>
    0
  );
}

/** True when the 4 bytes at `offset` are `HEP3`. */
export function isHep3Magic(b: Uint8Array, offset = 0): boolean {
  return (
    b[offset] === 0x48 && b[offset + 1] === 0x45 && b[offset + 2] === 0x50 && b[offset + 3] === 0x33
  );
}

function inflatePayload(
  data: Uint8Array,
  max: number,
  offset: number,
): { ok: true; bytes: Uint8Array } | { ok: false; result: HepDecodeResult } {
  const opts = { maxOutputLength: max };
  // Senders disagree on the container: zlib (RFC 1950) is what the specification's "inflate"
  // names, gzip (RFC 1952) is what several agents send; raw deflate is the last resort.
  const attempts =
    data[0] === 0x1f && data[1] === 0x8b
      ? [gunzipSync]
      : (data[0] ?? 0) % 16 === 8 && u16(data, 0) % 31 === 0
        ? [inflateSync, inflateRawSync]
        : [inflateRawSync];
  let tooLarge = false;
  for (const fn of attempts) {
    try {
      return { ok: true, bytes: new Uint8Array(fn(data, opts)) };
    } catch (err) {
      if (
        (err as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE' ||
        err instanceof RangeError
      ) {
        tooLarge = true;
      }
    }
  }
  return tooLarge
    ? {
        ok: false,
        result: fail(
          HepErrorCode.inflateTooLarge,
          `compressed payload inflates past ${max} bytes`,
          offset,
        ),
      }
    : {
        ok: false,
        result: fail(HepErrorCode.inflateFailed, 'compressed payload does not inflate', offset),
      };
}

type Mutable = { -readonly [K in keyof HepPacket]: HepPacket[K] };

/**
 * Decodes one HEP3 packet. The data chunks (`payload`, `authKey`, ...) are views into `buf`
 * (no copy); copy them if `buf` is reused.
 */
export function decodeHep(buf: Uint8Array, options: HepDecodeOptions = {}): HepDecodeResult {
  const maxInflated = options.maxInflatedBytes ?? DEFAULT_MAX_INFLATED;
  const maxChunks = options.maxChunks ?? DEFAULT_MAX_CHUNKS;
  const maxOther = options.maxOtherChunks ?? DEFAULT_MAX_OTHER;

  if (buf.length < HEP_HEADER_BYTES) {
    return fail(HepErrorCode.tooShort, `${buf.length} bytes is shorter than a HEP header`, 0);
  }
  if (!isHep3Magic(buf, 0)) {
    return fail(HepErrorCode.badMagic, 'packet does not start with HEP3', 0);
  }
  const total = u16(buf, 4);
  if (total < HEP_HEADER_BYTES || total > buf.length) {
    return fail(
      HepErrorCode.badLength,
      `total length ${total} does not fit the ${buf.length} bytes received`,
      4,
    );
  }
  if (total < buf.length && options.allowTrailingBytes !== true) {
    return fail(
      HepErrorCode.trailingBytes,
      `${buf.length - total} bytes after the ${total}-byte packet`,
      total,
    );
  }

  const p: Mutable = {
    version: 3,
    length: total,
    ipFamily: undefined,
    ipProtocol: undefined,
    srcAddress: undefined,
    dstAddress: undefined,
    srcPort: undefined,
    dstPort: undefined,
    timeSeconds: undefined,
    timeMicros: undefined,
    protocolType: undefined,
    captureId: undefined,
    keepAliveTimer: undefined,
    authKey: undefined,
    payload: undefined,
    compressed: false,
    correlationId: undefined,
    vlanId: undefined,
    nodeName: undefined,
    otherChunks: [],
    skippedChunks: 0,
  };
  const other: HepRawChunk[] = [];
  let seen = 0; // bit n set: generic chunk type n (1..0x13) already decoded
  let srcFamily: 4 | 6 | undefined;
  let dstFamily: 4 | 6 | undefined;
  let compressedData: { data: Uint8Array; offset: number } | undefined;
  let chunks = 0;
  let skipped = 0;

  let off = HEP_HEADER_BYTES;
  while (off < total) {
    if (++chunks > maxChunks) {
      return fail(HepErrorCode.tooManyChunks, `more than ${maxChunks} chunks`, off);
    }
    if (total - off < HEP_CHUNK_HEADER_BYTES) {
      return fail(HepErrorCode.badChunkLength, 'chunk header runs past the packet', off);
    }
    const vendorId = u16(buf, off);
    const typeId = u16(buf, off + 2);
    const len = u16(buf, off + 4);
    if (len < HEP_CHUNK_HEADER_BYTES || len > total - off) {
      return fail(
        HepErrorCode.badChunkLength,
        `chunk 0x${vendorId.toString(16)}:0x${typeId.toString(16)} length ${len} does not fit (${total - off} bytes left)`,
        off + 4,
      );
    }
    const start = off + HEP_CHUNK_HEADER_BYTES;
    const size = len - HEP_CHUNK_HEADER_BYTES;
    // Views are made only for variable-length data; fixed-size values are read in place.
    const chunkOff = off;
    off += len;

    if (vendorId !== HepVendor.generic) {
      if (other.length < maxOther)
        other.push({ vendorId, typeId, data: buf.subarray(start, start + size) });
      else skipped++;
      continue;
    }
    const fixed = FIXED_SIZES.get(typeId);
    if (fixed !== undefined && !fixed.includes(size)) {
      return fail(
        HepErrorCode.badChunkSize,
        `generic chunk 0x${typeId.toString(16)} has ${size} data bytes, expected ${fixed.join(' or ')}`,
        chunkOff,
      );
    }
    const known = typeId >= HepChunk.ipFamily && typeId <= HepChunk.groupId;
    if (known) {
      if ((seen & (1 << typeId)) !== 0) {
        return fail(
          HepErrorCode.duplicateChunk,
          `generic chunk 0x${typeId.toString(16)} appears twice`,
          chunkOff,
        );
      }
      seen |= 1 << typeId;
    }
    switch (typeId) {
      case HepChunk.ipFamily:
        p.ipFamily = buf[start];
        break;
      case HepChunk.ipProtocol:
        p.ipProtocol = buf[start];
        break;
      case HepChunk.ipv4Src:
      case HepChunk.ipv6Src:
        if (p.srcAddress !== undefined) {
          return fail(HepErrorCode.duplicateChunk, 'two source address chunks', chunkOff);
        }
        srcFamily = size === 4 ? 4 : 6;
        p.srcAddress = addressText(buf, start, size);
        break;
      case HepChunk.ipv4Dst:
      case HepChunk.ipv6Dst:
        if (p.dstAddress !== undefined) {
          return fail(HepErrorCode.duplicateChunk, 'two destination address chunks', chunkOff);
        }
        dstFamily = size === 4 ? 4 : 6;
        p.dstAddress = addressText(buf, start, size);
        break;
      case HepChunk.srcPort:
        p.srcPort = u16(buf, start);
        break;
      case HepChunk.dstPort:
        p.dstPort = u16(buf, start);
        break;
      case HepChunk.timeSeconds:
        p.timeSeconds = u32(buf, start);
        break;
      case HepChunk.timeMicros:
        p.timeMicros = u32(buf, start);
        break;
      case HepChunk.protocolType:
        p.protocolType = buf[start];
        break;
      case HepChunk.captureId:
        p.captureId = size === 4 ? u32(buf, start) : u16(buf, start);
        break;
      case HepChunk.keepAliveTimer:
        p.keepAliveTimer = u16(buf, start);
        break;
      case HepChunk.authKey:
        p.authKey = buf.subarray(start, start + size);
        break;
      case HepChunk.payload:
        if (compressedData) {
          return fail(HepErrorCode.twoPayloads, 'payload and compressed payload', chunkOff);
        }
        p.payload = buf.subarray(start, start + size);
        break;
      case HepChunk.compressedPayload:
        if (p.payload) {
          return fail(HepErrorCode.twoPayloads, 'payload and compressed payload', chunkOff);
        }
        compressedData = { data: buf.subarray(start, start + size), offset: chunkOff };
        break;
      case HepChunk.correlationId:
        p.correlationId = buf.subarray(start, start + size);
        break;
      case HepChunk.vlanId:
        p.vlanId = u16(buf, start);
        break;
      case HepChunk.groupId:
        p.nodeName = Buffer.from(buf.buffer, buf.byteOffset + start, size).toString('utf8');
        break;
      default:
        if (other.length < maxOther)
          other.push({ vendorId, typeId, data: buf.subarray(start, start + size) });
        else skipped++;
    }
  }

  const family = p.ipFamily;
  if (
    (family === HEP_FAMILY_IPV4 && (srcFamily === 6 || dstFamily === 6)) ||
    (family === HEP_FAMILY_IPV6 && (srcFamily === 4 || dstFamily === 4)) ||
    (srcFamily !== undefined && dstFamily !== undefined && srcFamily !== dstFamily)
  ) {
    return fail(HepErrorCode.familyMismatch, 'address chunks do not match the IP family', 6);
  }
  if (compressedData) {
    const inflated = inflatePayload(compressedData.data, maxInflated, compressedData.offset);
    if (!inflated.ok) return inflated.result;
    p.payload = inflated.bytes;
    p.compressed = true;
  }
  p.otherChunks = other;
  p.skippedChunks = skipped;
  return { ok: true, packet: p };
}

/**
 * Canonical text of an address chunk (4 or 16 bytes, guaranteed by FIXED_SIZES): dotted quad, or
 * RFC 5952 text for IPv6 (IPv4-mapped addresses stay IPv6 here; the normalizer unmaps them).
 */
function addressText(buf: Uint8Array, start: number, size: number): string {
  return ipFromBytes(buf.subarray(start, start + size))?.text ?? '';
}
