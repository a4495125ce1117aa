import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // e2e files each own their ports, temp dirs and processes, so files run in parallel.
    fileParallelism: true,
  },
})
