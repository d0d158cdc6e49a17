/**
 * The server's safety policy (issue 4 "Safety"): FCP lets its clients open holes, so the server
 * decides what may be opened. Pure functions over the resolved configuration.
 */
import type { PortRange } from './backend.js';
import type { ResolvedPolicy } from './config.js';
import { formatPrefix, prefixContains, prefixOverlaps, type ParsedPrefix } from './ip.js';
import type { Pme, SetOptions } from './pme.js';

function overlaps(a: PortRange, b: PortRange): boolean {
  return a[0] <= b[1] && b[0] <= a[1];
}

function within(inner: PortRange, outer: PortRange): boolean {
  return inner[0] >= outer[0] && inner[1] <= outer[1];
}

/** The reason a SET is refused (`403 Forbidden: <reason>`), or undefined if it may proceed. */
export function policyViolation(
  policy: ResolvedPolicy,
  pme: Pme,
  options: SetOptions,
  timerSec: number,
): string | undefined {
  const action = options.action ?? 'none';
  if (!policy.allowedActions.has(action)) return `ACTION=${action} is not allowed`;
  if (timerSec === 0 && !policy.allowForever) return 'TIMER=0 (never expires) is not allowed';
  if (timerSec > policy.maxTimerSec) {
    return `TIMER=${timerSec} exceeds the maximum of ${policy.maxTimerSec} seconds`;
  }
  if (pme.proto === undefined) return 'PROTO must be given (no wildcard protocol)';
  if (!policy.allowedProtocols.has(pme.proto)) return `PROTO=${pme.proto} is not allowed`;
  const dst: ParsedPrefix | undefined = pme.dst;
  if (!dst) return 'DSTIP must be given (no wildcard destination address)';
  const minPrefix =
    dst.family === 4 ? policy.minDestinationPrefixV4 : policy.minDestinationPrefixV6;
  if (dst.prefix < minPrefix) {
    return `DSTIP ${formatPrefix(dst)} is wider than /${minPrefix}`;
  }
  if (!policy.protectedNetworks.some((n) => prefixContains(n, dst))) {
    return `DSTIP ${formatPrefix(dst)} is not inside a protected network`;
  }
  if (policy.ownAddresses.some((own) => prefixOverlaps(own, dst))) {
    return `DSTIP ${formatPrefix(dst)} is an address of the firewall itself`;
  }
  const ports = pme.dstPorts;
  if (!ports) return 'DSTPORT must be given (no wildcard destination port)';
  if (ports[1] - ports[0] + 1 > policy.maxDestinationPorts) {
    return `DSTPORT range spans more than ${policy.maxDestinationPorts} ports`;
  }
  if (!policy.allowedPorts.some((r) => within(ports, r))) {
    return `DSTPORT ${ports[0]}-${ports[1]} is outside the allowed port ranges`;
  }
  const hit = policy.protectedPorts.find((r) => overlaps(ports, r));
  if (hit) return `DSTPORT ${ports[0]}-${ports[1]} includes protected port(s) ${hit[0]}-${hit[1]}`;
  return undefined;
}
