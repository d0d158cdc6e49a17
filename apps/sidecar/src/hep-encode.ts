/**
 * HEP3 encoder, for tests, benchmarks and tools (the sidecar itself only decodes). It writes the
 * generic chunks in the order Kamailio's siptrace does, then any extra chunks as given.
 */
import { deflateSync } from 'node:zlib';
import { HepChunk, HepVendor, HEP_FAMILY_IPV4, HEP_FAMILY_IPV6 } from './hep.js';
import { parseIp } from '@pinhole/policy';

export interface HepEncodeInput {
  /** Source and destination addresses (both IPv4 or both IPv6). */
  readonly srcAddress: string;
  readonly dstAddress: string;
  readonly srcPort: number;
  readonly dstPort: number;
  /** IP protocol number; default 17 (UDP). */
  readonly ipProtocol?: number;
  readonly timeSeconds?: number;
  readonly timeMicros?: number;
  /** Protocol type; default 1 (SIP). */
  readonly protocolType?: number;
  readonly captureId?: number;
  readonly authKey?: string | Uint8Array;
  readonly payload?: string | Uint8Array;
  /** Send the payload zlib-compressed in chunk 0x0010 instead of chunk 0x000f. */
  readonly compress?: boolean;
  readonly correlationId?: string | Uint8Array;
  readonly nodeName?: string;
  /** Extra chunks appended as given (vendor chunks, unknown types, hostile ones). */
  readonly extraChunks?: readonly {
    readonly vendorId?: number;
    readonly typeId: number;
    readonly data: Uint8Array;
  }[];
}

function bytes(v: string | Uint8Array): Uint8Array {
  return typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
}

/** One chunk: vendor id, type id, length (header included), data. */
export function hepChunk(vendorId: number, typeId: number, data: Uint8Array): Buffer {
  const b = Buffer.alloc(6 + data.length);
  b.writeUInt16BE(vendorId, 0);
  b.writeUInt16BE(typeId, 2);
  b.writeUInt16BE((6 + data.length) & 0xffff, 4);
  b.set(data, 6);
  return b;
}

function uint(n: number, size: 1 | 2 | 4): Buffer {
  const b = Buffer.alloc(size);
  if (size === 1) b.writeUInt8(n, 0);
  else if (size === 2) b.writeUInt16BE(n, 0);
  else b.writeUInt32BE(n >>> 0, 0);
  return b;
}

/** Prepends the `HEP3` header with the total length to already encoded chunks. */
export function hepFrame(chunks: readonly Uint8Array[]): Buffer {
  const body = Buffer.concat(chunks);
  const head = Buffer.from([0x48, 0x45, 0x50, 0x33, 0, 0]);
  head.writeUInt16BE((6 + body.length) & 0xffff, 4);
  return Buffer.concat([head, body]);
}

/** Encodes a HEP3 packet. Throws on a programmer error (bad address, packet over 65535 bytes). */
export function encodeHep(input: HepEncodeInput): Buffer {
  const src = parseIp(input.srcAddress);
  const dst = parseIp(input.dstAddress);
  if (!src || !dst || src.family !== dst.family) {
    throw new Error(`encodeHep: bad address pair ${input.srcAddress} ${input.dstAddress}`);
  }
  const v6 = src.family === 6;
  const g = HepVendor.generic;
  const chunks: Buffer[] = [
    hepChunk(g, HepChunk.ipFamily, uint(v6 ? HEP_FAMILY_IPV6 : HEP_FAMILY_IPV4, 1)),
    hepChunk(g, HepChunk.ipProtocol, uint(input.ipProtocol ?? 17, 1)),
    hepChunk(g, v6 ? HepChunk.ipv6Src : HepChunk.ipv4Src, src.bytes),
    hepChunk(g, v6 ? HepChunk.ipv6Dst : HepChunk.ipv4Dst, dst.bytes),
    hepChunk(g, HepChunk.srcPort, uint(input.srcPort, 2)),
    hepChunk(g, HepChunk.dstPort, uint(input.dstPort, 2)),
    hepChunk(g, HepChunk.timeSeconds, uint(input.timeSeconds ?? 0, 4)),
    hepChunk(g, HepChunk.timeMicros, uint(input.timeMicros ?? 0, 4)),
    hepChunk(g, HepChunk.protocolType, uint(input.protocolType ?? 1, 1)),
    hepChunk(g, HepChunk.captureId, uint(input.captureId ?? 1, 4)),
  ];
  if (input.authKey !== undefined) chunks.push(hepChunk(g, HepChunk.authKey, bytes(input.authKey)));
  if (input.correlationId !== undefined) {
    chunks.push(hepChunk(g, HepChunk.correlationId, bytes(input.correlationId)));
  }
  if (input.nodeName !== undefined)
    chunks.push(hepChunk(g, HepChunk.groupId, bytes(input.nodeName)));
  if (input.payload !== undefined) {
    const pl = bytes(input.payload);
    chunks.push(
      input.compress === true
        ? hepChunk(g, HepChunk.compressedPayload, deflateSync(pl))
        : hepChunk(g, HepChunk.payload, pl),
    );
  }
  for (const c of input.extraChunks ?? []) chunks.push(hepChunk(c.vendorId ?? g, c.typeId, c.data));
  const total = 6 + chunks.reduce((n, c) => n + c.length, 0);
  if (total > 0xffff) throw new Error(`encodeHep: packet of ${total} bytes exceeds 65535`);
  for (const c of chunks) {
    if (c.length > 0xffff) throw new Error('encodeHep: chunk exceeds 65535 bytes');
  }
  return hepFrame(chunks);
}
