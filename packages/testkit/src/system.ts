import { execFileSync } from 'node:child_process';

/** What a system test needs from the machine. */
export type SystemRequirement = 'root' | 'nft' | 'ip' | 'netns' | 'sipp' | 'kamailio';

/** True when CI demands that system tests run instead of skipping (`.ci/run` sets it). */
export function systemTestsRequired(): boolean {
  return process.env.PINHOLE_REQUIRE_SYSTEM_TESTS === '1';
}

function hasCommand(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function netnsWorks(): boolean {
  if (process.getuid?.() !== 0 || !hasCommand('ip')) return false;
  const name = `pinhole-probe-${process.pid}`;
  try {
    execFileSync('ip', ['netns', 'add', name], { stdio: 'ignore' });
    execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Returns the reasons the requirements are not met on this machine (empty when they are). */
export function missingRequirements(reqs: readonly SystemRequirement[]): string[] {
  const missing: string[] = [];
  for (const r of reqs) {
    switch (r) {
      case 'root':
        if (process.getuid?.() !== 0) missing.push('not running as root');
        break;
      case 'nft':
        if (!hasCommand('nft')) missing.push('nft not found (apt-get install nftables)');
        break;
      case 'ip':
        if (!hasCommand('ip')) missing.push('ip not found (apt-get install iproute2)');
        break;
      case 'netns':
        if (!netnsWorks())
          missing.push('cannot create network namespaces (needs root and iproute2)');
        break;
      case 'sipp':
        if (!hasCommand('sipp')) missing.push('sipp not found (apt-get install sip-tester)');
        break;
      case 'kamailio':
        if (!hasCommand('kamailio')) missing.push('kamailio not found (apt-get install kamailio)');
        break;
    }
  }
  return missing;
}

/**
 * Decides whether a system test suite runs. Returns `true` when every requirement is met.
 * When some are missing it prints why and returns `false` (use with `describe.skipIf(!ok)`),
 * unless PINHOLE_REQUIRE_SYSTEM_TESTS=1, where it throws so the suite fails loudly instead.
 */
export function systemTestGate(suite: string, reqs: readonly SystemRequirement[]): boolean {
  const missing = missingRequirements(reqs);
  if (missing.length === 0) return true;
  const msg = `${suite}: system test skipped: ${missing.join('; ')}`;
  if (systemTestsRequired()) {
    throw new Error(`${msg} (PINHOLE_REQUIRE_SYSTEM_TESTS=1 demands it runs)`);
  }
  console.warn(msg);
  return false;
}
