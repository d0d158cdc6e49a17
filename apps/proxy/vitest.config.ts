import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 60_000,
    reporters: process.env.PINHOLE_TEST_RESULTS_DIR ? ['default', 'json'] : ['default'],
    outputFile: process.env.PINHOLE_TEST_RESULTS_DIR
      ? { json: process.env.PINHOLE_TEST_RESULTS_DIR + '/' + 'proxy' + '.json' }
      : undefined,
  },
});
