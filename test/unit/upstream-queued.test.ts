// Upstream.queued is read on every request (the per-endpoint queue bound, PH_3010) instead of pool.stats.queued,
// which walks every pool client: it must be the same number, read from undici's own counter.
import { describe, expect, it } from 'vitest'
import type { Dispatcher } from 'undici'
import { Upstream } from '../../src/edge/upstream.js'
import type { Endpoint } from '../../src/core/endpoint.js'

const LIMITS = { connections: 1, timeoutMs: 5_000, maxResponseHeaderSize: 16 * 1024 }

function endpoint (): Endpoint {
  return {
    spec: { proto: 'http', schemes: { http: true, https: false }, upstream: { tls: false, verify: false, cas: null, protocol: 'http1' }, inspect: false },
    dial: () => new Promise(() => {}), // never connects: requests stay queued
  } as unknown as Endpoint
}

const ignore: Dispatcher.DispatchHandler = { onRequestStart: () => {}, onResponseStart: () => {}, onResponseData: () => {}, onResponseEnd: () => {}, onResponseError: () => {} }

describe('Upstream.queued', () => {
  it('is the pool\'s queue length, as pool.stats.queued reports it', async () => {
    const upstream = new Upstream(endpoint(), { needsBody: false } as never, LIMITS)
    expect(upstream.queued).toBe(0)
    for (let i = 0; i < 5; i++) upstream.dispatch({ remoteAddress: '127.0.0.1', remotePort: 1 }, { method: 'GET', path: '/' }, ignore)
    expect(upstream.pool.stats.queued).toBeGreaterThan(0)
    expect(upstream.queued).toBe(upstream.pool.stats.queued)
    await upstream.close()
  })

  it('reads undici\'s counter, not pool.stats (fails if undici moves it: the fallback would be slow again)', async () => {
    const upstream = new Upstream(endpoint(), { needsBody: false } as never, LIMITS)
    for (let i = 0; i < 3; i++) upstream.dispatch({ remoteAddress: '127.0.0.1', remotePort: 1 }, { method: 'GET', path: '/' }, ignore)
    const queued = upstream.pool.stats.queued
    Object.defineProperty(upstream.pool, 'stats', { get: () => { throw new Error('pool.stats read') } })
    expect(upstream.queued).toBe(queued)
    await upstream.close()
  })
})
