// Regression: a forward pointed at the gateway's own HTTP port (the README's old TLS example did this for the
// HTTPS port) sent each request back into the same endpoint, around and around, until the session had
// "more than 1024 open streams". The edge marks what it sends upstream (porthole-hop) and answers a request that
// comes back with its own mark 508 PH_1100 at once. A second gateway in the chain is no loop.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connect, fetchVia, startTestGateway, startUpstream, type TestGateway } from './harness.js'

describe('a forward pointed at the gateway itself', () => {
  let gateway: TestGateway
  let other: TestGateway
  let upstream: Awaited<ReturnType<typeof startUpstream>>
  beforeAll(async () => {
    gateway = await startTestGateway()
    other = await startTestGateway()
    upstream = await startUpstream((req, res) => res.end(JSON.stringify(req.headers)))
  })
  afterAll(async () => {
    await upstream.close()
    await Promise.all([gateway.stop(), other.stop()])
  })

  it('answers 508 PH_1100 at once instead of piling up streams', async () => {
    const client = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`loop:80:localhost:${gateway.httpPort}`], command: 'http' })
    try {
      const [url] = await client.urls()
      const res = await fetchVia(gateway, `${url}/`)
      expect(res.status).toBe(508)
      expect(res.body).toContain('PH_1100: loop: this request came back through the gateway itself')
      await client.waitFor(/GET \/ 508/)
      // Without the mark, every request came around again until the session held 1024 streams.
      const [session] = gateway.sessions.sessions()
      expect(session!.openStreams).toBeLessThan(10)
    } finally {
      await client.kill('SIGKILL')
    }
  })

  it('passes through another gateway: each adds its own mark', async () => {
    const back = connect({ kind: 'openssh', port: other.sshPort, key: other.key('bob', 'openssh'), forwards: [`back:80:localhost:${upstream.port}`], command: 'http' })
    // The first gateway's endpoint forwards to the second gateway's HTTP listener, with the Host it routes by.
    const front = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`front:80:localhost:${other.httpPort}`], command: `http --host-header back.localhost:${other.httpPort}` })
    try {
      await back.urls()
      const [url] = await front.urls()
      const res = await fetchVia(gateway, `${url}/`)
      expect(res.status).toBe(200)
      const hops = String(JSON.parse(res.body)['porthole-hop']).split(', ')
      expect(hops).toHaveLength(2)
      expect(hops[0]).not.toBe(hops[1])
    } finally {
      await Promise.all([back.kill('SIGKILL'), front.kill('SIGKILL')])
    }
  })
})
