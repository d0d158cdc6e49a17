/**
 * The last gate: every `open` and `refresh` intent passes `checkHole` before it leaves the
 * policy, whatever path produced it. The checks look only at the PME, the TIMER and the
 * configuration, so a bug in the offer/answer logic cannot open a hole the configuration forbids.
 */
import type { PolicyConfig } from './config.js';
import type { Pme, RefusalCode } from './intents.js';
import { inNetwork, parseIp, sameAddress, specialAddress } from './ip.js';

export interface SafetyVerdict {
  readonly code: RefusalCode;
  readonly detail: string;
}

/** Canonical identity of a hole: equal keys are the same firewall rule. */
export function pmeKey(p: Pme): string {
  const dst =
    p.family === 6
      ? `[${p.destination.address}]:${p.destinationPort}`
      : `${p.destination.address}:${p.destinationPort}`;
  const src = p.source ? `${p.source.address}/${p.source.prefix}` : '*';
  return `${p.protocol} ${dst} from ${src}`;
}

/** Returns why the hole must not be opened, or undefined when it may. */
export function checkHole(
  pme: Pme,
  timerSec: number,
  config: PolicyConfig,
): SafetyVerdict | undefined {
  if (!config.protocols.includes(pme.protocol)) {
    return { code: 'protocol-not-allowed', detail: `protocol ${pme.protocol} is not allowed` };
  }
  if ((pme.protocol === 'udp' && pme.proto !== 17) || (pme.protocol === 'tcp' && pme.proto !== 6)) {
    return {
      code: 'protocol-not-allowed',
      detail: `protocol number ${pme.proto} ≠ ${pme.protocol}`,
    };
  }
  const dst = parseIp(pme.destination.address);
  if (!dst || dst.family !== pme.family || dst.text !== pme.destination.address) {
    return { code: 'address-invalid', detail: `destination "${pme.destination.address}"` };
  }
  const hostPrefix = dst.family === 4 ? 32 : 128;
  if (pme.destination.prefix !== hostPrefix) {
    return { code: 'address-invalid', detail: 'destination must be a single host' };
  }
  const special = specialAddress(dst);
  if (special) {
    return { code: 'destination-special', detail: `destination ${dst.text} is ${special}` };
  }
  if (config.broadcastAddresses.some((b) => sameAddress(b, dst))) {
    return {
      code: 'destination-broadcast',
      detail: `destination ${dst.text} is a network or broadcast address`,
    };
  }
  if (config.firewallAddresses.some((f) => sameAddress(f, dst))) {
    return { code: 'destination-firewall', detail: `destination ${dst.text} is the firewall` };
  }
  if (!config.protectedNetworks.some((n) => inNetwork(dst, n))) {
    return {
      code: 'destination-not-protected',
      detail: `destination ${dst.text} is outside the protected networks`,
    };
  }
  const port = pme.destinationPort;
  if (!Number.isInteger(port) || port < config.ports.min || port > config.ports.max) {
    return {
      code: 'port-out-of-range',
      detail: `port ${port} outside ${config.ports.min}..${config.ports.max}`,
    };
  }
  if (pme.source) {
    const src = parseIp(pme.source.address);
    const max = pme.family === 4 ? 32 : 128;
    if (
      !src ||
      src.family !== pme.family ||
      src.text !== pme.source.address ||
      !Number.isInteger(pme.source.prefix) ||
      pme.source.prefix < 1 ||
      pme.source.prefix > max
    ) {
      return { code: 'source-invalid', detail: `source "${pme.source.address}"` };
    }
    const s = specialAddress(src);
    if (s) return { code: 'source-invalid', detail: `source ${src.text} is ${s}` };
  }
  if (!Number.isInteger(timerSec) || timerSec < 1 || timerSec > config.maxTimerSec) {
    return { code: 'timer-invalid', detail: `TIMER ${timerSec} outside 1..${config.maxTimerSec}` };
  }
  return undefined;
}
