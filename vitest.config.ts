import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Native threads and the Temporal/S3 servers share 2 cores: keep test files in few processes.
    maxWorkers: 2,
    reporters: ['default', './test/summary-reporter.ts'],
    // A headless Temporal dev server and versitygw for the whole run (TEMPORAL_ADDRESS, ALIGN_S3_*).
    globalSetup: ['./test/global-setup.ts'],
  },
});
