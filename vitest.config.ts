import { defineConfig } from 'vitest/config'

/**
 * The HTTP files that run a second time with the HTTP/1.1 fast path off (PORTHOLE_TEST_FAST_H1=0, test/e2e/harness.ts):
 * what they check must hold for the usual path too (it takes HTTP/2, and HTTP/1.1 with a policy or module). Not
 * the files that turn the fast path off themselves (the upstream pool's own counters: lazy-pools, hostile/cancel),
 * nor those with no plain-HTTP/1.1 request.
 */
const USUAL_H1_PARITY = [
  'test/e2e/edge.test.ts', 'test/e2e/http-endpoints.test.ts', 'test/e2e/https.test.ts', 'test/e2e/upstream.test.ts', 'test/e2e/header-split.test.ts',
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
      { extends: true, test: { name: 'usual-h1', include: USUAL_H1_PARITY, env: { PORTHOLE_TEST_FAST_H1: '0' } } },
    ],
  },
})
