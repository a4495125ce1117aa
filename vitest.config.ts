import { defineConfig } from 'vitest/config'

/**
 * The HTTP files that run a second time with the HTTP/1.1 fast path on (PORTHOLE_TEST_FAST_H1, test/e2e/harness.ts):
 * what they check of the usual path must hold for the fast path too. Not the files about the upstream pool's own
 * counters (lazy-pools, hostile/cancel), which the fast path does not use, nor those with no plain-HTTP/1.1 request.
 */
const FAST_H1_PARITY = [
  'test/e2e/edge.test.ts', 'test/e2e/http-endpoints.test.ts', 'test/e2e/upstream.test.ts', 'test/e2e/header-split.test.ts',
  'test/e2e/loop.test.ts', 'test/e2e/streams.test.ts', 'test/e2e/metrics.test.ts', 'test/e2e/observe.test.ts',
  'test/e2e/inspect-capture.test.ts', 'test/e2e/inspector.test.ts',
  ...['smuggling', 'request-targets', 'slowloris', 'half-close', 'upstream-close', 'upstream-1xx-trailers', 'channel-close', 'late-options', 'agent-death']
    .map((name) => `test/hostile/${name}.test.ts`),
]

export default defineConfig({
  test: {
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // e2e files each own their ports, temp dirs and processes, so files run in parallel.
    fileParallelism: true,
    projects: [
      { extends: true, test: { name: 'main', include: ['test/**/*.test.ts'] } },
      { extends: true, test: { name: 'fast-h1', include: FAST_H1_PARITY, env: { PORTHOLE_TEST_FAST_H1: '1' } } },
    ],
  },
})
