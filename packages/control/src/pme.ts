/**
 * The policy's hole as an FCP packet-matching expression. The policy speaks in prefixes
 * (`{ address, prefix }`); FCP takes `a.b.c.d[/len]` text. A host prefix (/32, /128) is written
 * as the bare address so the FCP server's canonical key is the same one a query shows.
 */
import type { Pme } from '@pinhole/policy';

/** The PME shape sent on the FCP port (`PmeInput` of @pinhole/fcp accepts it). */
export interface FcpPmeInput {
  readonly proto?: number;
  readonly src?: string;
  readonly dst?: string;
  readonly dstPort?: number;
}

function prefixText(p: { address: string; prefix: number }, family: 4 | 6): string {
  return p.prefix === (family === 4 ? 32 : 128) ? p.address : `${p.address}/${p.prefix}`;
}

/** The FCP packet-matching expression of a policy hole. No source = any sender. */
export function toFcpPme(pme: Pme): FcpPmeInput {
  return {
    proto: pme.proto,
    ...(pme.source ? { src: prefixText(pme.source, pme.family) } : {}),
    dst: prefixText(pme.destination, pme.family),
    dstPort: pme.destinationPort,
  };
}
