// Regressions from a security review: connections that never log in (silent before the SSH ident line, or
// stuck in authentication) must not pin file descriptors or session slots; they are destroyed on time.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connect, eventually, rawConnect, startTestGateway, startUpstream, type RawConnection, type TestGateway } from './harness.js'

describe('ssh connection limits', () => {
  let gateway: TestGateway
  let upstream: Awaited<ReturnType<typeof startUpstream>>
  beforeAll(async () => {
    gateway = await startTestGateway({ tune: { loginTimeoutMs: 3000 } })
    upstream = await startUpstream()
  })
  afterAll(async () => {
    await upstream.close()
    await gateway.stop()
  })

  /** A raw TCP connection that sends nothing (harness rawConnect), once connected. */
  const open = async (): Promise<RawConnection> => {
    const connection = rawConnect(gateway.sshPort)
    await connection.connected
    return connection
  }

  it('destroys a connection that never sends its ident line, at the login deadline', async () => {
    const started = Date.now()
    const silent = await open()
    await silent.closed
    // Closed by the login deadline (3 s here), not for another reason: the gateway's ident line and nothing else.
    expect(Date.now() - started).toBeGreaterThanOrEqual(2900)
    expect(silent.received()).toMatch(/^SSH-2\.0-Porthole\r\n$/)
  })

  it('caps connections not yet logged in per source address, and frees the slots when they go', async () => {
    const silent = await Promise.all(Array.from({ length: 20 }, () => open()))
    let silentClosed = 0
    for (const s of silent) void s.closed.then(() => { silentClosed++ })
    const extra = await open()
    await extra.closed
    // Refused at once with the reason, before any of the 20 reached its deadline.
    expect(extra.received()).toMatch(/^PH_1050: too many connections not yet logged in from 127\.0\.0\.1/)
    expect(silentClosed).toBe(0)
    await Promise.all(silent.map((s) => s.closed))
    const client = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`after:80:localhost:${upstream.port}`], command: 'http' })
    await client.urls()
    await eventually(() => gateway.ssh.connections.length === 1)
    await client.kill()
  })
})
