import { defineConfig } from 'vitest/config';

// unit: pure code, no network, files run in parallel.
// integration / e2e: real redis-server, gRPC on 127.0.0.1:0 and child processes; one file at a time because
// they start servers and processes of their own and must not starve each other on a two-core machine.
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 10_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          fileParallelism: false,
          testTimeout: 60_000,
          hookTimeout: 60_000,
          setupFiles: ['test/helpers/leak-guard.ts'],
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 120_000,
          setupFiles: ['test/helpers/leak-guard.ts'],
        },
      },
    ],
  },
});
