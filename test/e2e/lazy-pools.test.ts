// Upstream pools made on the first request and released when idle (issue 13: an idle tunnel's pool was a third
// of its memory). Through the real OpenSSH client: a bound endpoint has no pool; the first request makes one;
// once its tunnel streams are closed (the upstream's short keep-alive) the edge's sweep releases it; a request
// after that makes a new pool and is answered like the first.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connect, eventually, fetchVia, startTestGateway, startUpstream, type SshClient, type TestGateway } from './harness.js'

describe('lazy upstream pools', () => {
  let gateway: TestGateway
  let app: Awaited<ReturnType<typeof startUpstream>>
  let client: SshClient
  beforeAll(async () => {
    // The usual path's pools: the fast path (on by default) relays plain HTTP/1.1 over streams of its own.
    gateway = await startTestGateway({ flags: { fastH1: false }, parts: { poolSweepMs: 100 } })
    app = await startUpstream((req, res) => res.end(`hello ${req.url}`))
    app.server.keepAliveTimeout = 200 // closes idle tunnel streams soon, so that the pool goes idle
    client = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`lazy:80:localhost:${app.port}`], command: 'http' })
    await client.urls(1)
  })
  afterAll(async () => {
    await client?.kill()
    await app?.close()
    await gateway?.stop()
  })

  it('makes the pool on the first request, releases it when idle, and makes a new one for the next request', async () => {
    const endpoint = gateway.registry.endpoints().find((e) => e.host === 'lazy.localhost')!
    expect(gateway.edge.poolStats(endpoint.id)).toBeUndefined() // bound, no request yet: no pool
    const first = await fetchVia(gateway, 'http://lazy.localhost/one')
    expect(first.status).toBe(200)
    expect(first.body).toBe('hello /one')
    expect(gateway.edge.poolStats(endpoint.id)).toBeDefined()
    await eventually(() => gateway.edge.poolStats(endpoint.id) === undefined, 20_000) // stream closed, two idle sweeps
    const second = await fetchVia(gateway, 'http://lazy.localhost/two')
    expect(second.status).toBe(200)
    expect(second.body).toBe('hello /two')
    expect(gateway.edge.poolStats(endpoint.id)).toBeDefined()
  })

  it('keeps a pool whose stream is open (keep-alive) across sweeps', async () => {
    const endpoint = gateway.registry.endpoints().find((e) => e.host === 'lazy.localhost')!
    app.server.keepAliveTimeout = 60_000
    // A fresh stream under the long keep-alive: wait for the old one to go, then open one.
    await eventually(() => gateway.edge.poolStats(endpoint.id) === undefined, 20_000)
    expect((await fetchVia(gateway, 'http://lazy.localhost/three')).status).toBe(200)
    const stats = gateway.edge.poolStats(endpoint.id)!
    expect(stats.connected).toBe(1)
    await new Promise((resolve) => setTimeout(resolve, 500)) // five sweeps
    expect(gateway.edge.poolStats(endpoint.id)?.connected).toBe(1)
  })
})
