import { defineConfig } from 'vitest/config';

const exclude = ['**/node_modules/**', '**/dist/**'];

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          environment: 'node',
          include: ['{shared,defender,console,main,test/support}/**/*.test.ts'],
          exclude,
        },
      },
      {
        // The real thing: a private dockerd (test/support/global-setup.ts), the real docker CLI. One file at a
        // time, since files share that daemon.
        test: {
          name: 'e2e',
          environment: 'node',
          include: ['test/e2e/**/*.test.ts'],
          exclude,
          globalSetup: ['test/support/global-setup.ts'],
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 120_000,
          teardownTimeout: 60_000,
        },
      },
    ],
  },
});
