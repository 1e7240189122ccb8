import { defineConfig } from 'vitest/config';

/**
 * Two tiers. `pure` (ops, models, losses, data, the recipe table) starts no server; `integration`
 * (store, workflows, API, CLI, end to end) shares one headless Temporal dev server, one versitygw
 * and one workflow bundle, started by its global setup. `vitest run --project pure` is the
 * quickest loop; ALIGN_SKIP_SLOW=1 also skips the slow end-to-end tests.
 */
export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Native threads and the Temporal/S3 servers share 2 cores: keep test files in few processes.
    maxWorkers: 2,
    reporters: ['default', './test/summary-reporter.ts'],
    projects: [
      { extends: true, test: { name: 'pure', include: ['test/{kernels,models,algorithms}/**/*.test.ts'] } },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/{store,activities,workflows,infra,e2e}/**/*.test.ts'],
          globalSetup: ['./test/global-setup.ts'],
        },
      },
    ],
  },
});
