import { afterEach, describe, expect, it } from 'vitest';
import { missingRequirements, systemTestGate } from './system.js';

describe('systemTestGate', () => {
  const saved = process.env.PINHOLE_REQUIRE_SYSTEM_TESTS;
  afterEach(() => {
    if (saved === undefined) delete process.env.PINHOLE_REQUIRE_SYSTEM_TESTS;
    else process.env.PINHOLE_REQUIRE_SYSTEM_TESTS = saved;
  });

  it('passes when nothing is required', () => {
    expect(missingRequirements([])).toEqual([]);
    expect(systemTestGate('empty', [])).toBe(true);
  });

  it('names every missing requirement', () => {
    const missing = missingRequirements(['root', 'nft']);
    const isRoot = process.getuid?.() === 0;
    expect(missing.some((m) => m.includes('root'))).toBe(!isRoot);
  });

  it('fails instead of skipping when PINHOLE_REQUIRE_SYSTEM_TESTS=1', () => {
    const missing = missingRequirements(['root']);
    process.env.PINHOLE_REQUIRE_SYSTEM_TESTS = '1';
    if (missing.length > 0) {
      expect(() => systemTestGate('needs-root', ['root'])).toThrow(/PINHOLE_REQUIRE_SYSTEM_TESTS/);
    } else {
      expect(systemTestGate('needs-root', ['root'])).toBe(true);
    }
  });
});
