import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // Integration tests mount real filesystems and start real daemons; the
    // machine has two cores, so files run one at a time.
    fileParallelism: false,
    pool: 'forks',
  },
});
