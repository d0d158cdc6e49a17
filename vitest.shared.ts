import { defineConfig, type ViteUserConfig } from 'vitest/config';

/**
 * The vitest configuration every workspace shares. Under CI (`PINHOLE_TEST_RESULTS_DIR` set by
 * `.ci/run`) each package also writes a JSON report that `scripts/summarize-tests.mjs` counts.
 */
export function pinholeVitestConfig(name: string): ViteUserConfig {
  const results = process.env.PINHOLE_TEST_RESULTS_DIR;
  return defineConfig({
    test: {
      include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
      testTimeout: 60_000,
      hookTimeout: 60_000,
      reporters: results ? ['default', 'json'] : ['default'],
      ...(results ? { outputFile: { json: `${results}/${name}.json` } } : {}),
    },
  });
}
