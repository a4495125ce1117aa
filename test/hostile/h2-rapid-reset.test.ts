// HTTP/2 rapid reset (CVE-2023-44487): a client opens streams and resets each at once, thousands a second,
// so the server starts work it never has to answer for. One stranger doing this must not wedge the endpoint
// (pool connections or SSH channels left behind), starve another endpoint, or stall the gateway.
import { constants as h2 } from 'node:http2'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connect, eventually, fetchVia, h2Session, h2Status, startTestGateway, startUpstream, type SshClient, type TestGateway } from '../e2e/harness.js'

const RESETS_PER_SESSION = 2000
const SESSIONS = 4

describe('HTTP/2 rapid reset', () => {
  let gateway: TestGateway
  let upstream: Awaited<ReturnType<typeof startUpstream>>
  let clients: SshClient[]
  let started = 0

  beforeAll(async () => {
    gateway = await startTestGateway()
    upstream = await startUpstream((req, res) => {
      started++
      // Slow to answer, as a real service doing work: a reset request must not keep it busy.
      const timer = setTimeout(() => res.end('late'), req.url === '/ok' ? 0 : 2000)
      res.once('close', () => clearTimeout(timer))
    })
    clients = ['reset', 'bystander'].map((name) => connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`${name}:80:localhost:${upstream.port}`], command: 'http' }))
    await Promise.all(clients.map((c) => c.urls()))
  })
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.kill('SIGKILL')))
    await upstream.close()
    await gateway.stop()
  })

  /** Opens `count` streams on one session, each reset (RST_STREAM CANCEL) right after its HEADERS; resolves
   *  when the session is done, however it ends (the gateway may well close it for misbehaving). */
  function rapidReset (count: number): Promise<void> {
    const session = h2Session(gateway, 'reset.localhost')
    return new Promise((resolve) => {
      session.once('close', () => resolve())
      let sent = 0
      const burst = (): void => {
        for (let i = 0; i < 100 && sent < count && !session.closed && !session.destroyed; i++, sent++) {
          try {
            const stream = session.request({ ':path': `/work/${sent}`, ':authority': 'reset.localhost' })
            stream.on('error', () => {})
            stream.close(h2.NGHTTP2_CANCEL)
          } catch {
            break // the gateway closed the session: that is an allowed answer
          }
        }
        if (sent < count && !session.closed && !session.destroyed) setImmediate(burst)
        else setTimeout(() => session.destroy(), 200) // an attacker hangs up rather than waiting for its GOAWAY
      }
      session.once('connect', burst)
    })
  }

  it(`${SESSIONS * RESETS_PER_SESSION} streams reset at once leave the endpoint, its neighbour and the gateway serving`, async () => {
    await Promise.all(Array.from({ length: SESSIONS }, () => rapidReset(RESETS_PER_SESSION)))

    // Nothing left behind: no request running or queued, and no SSH channel beyond the pool's idle connections.
    await eventually(() => {
      const open = gateway.ssh.sessions().reduce((sum, s) => sum + s.openStreams, 0)
      const endpoint = gateway.registry.endpoints().find((e) => e.host === 'reset.localhost')!
      const pool = gateway.edge.poolStats(endpoint.id)!
      expect({ running: pool.running, pending: pool.pending, queued: pool.queued }).toEqual({ running: 0, pending: 0, queued: 0 })
      expect(open).toBe(pool.connected)
      return true
    }, 20_000)
    // The upstream never saw more than the resets that reached it, and the endpoint itself still answers.
    expect(started).toBeLessThanOrEqual(SESSIONS * RESETS_PER_SESSION)
    expect((await fetchVia(gateway, 'http://reset.localhost/ok')).status).toBe(200)
    expect((await fetchVia(gateway, 'http://bystander.localhost/ok')).status).toBe(200)
    const session = h2Session(gateway, 'reset.localhost')
    try {
      expect(await h2Status(session, 'reset.localhost', '/ok')).toBe(200)
    } finally {
      session.close()
    }
  })
})
