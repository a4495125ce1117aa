// Regressions from a security review: connections that never log in (silent before the SSH ident line, or
// stuck in authentication) must not pin file descriptors or session slots; they are destroyed on time.
import { createConnection, type Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connect, eventually, startTestGateway, startUpstream, type TestGateway } from './harness.js'

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

  /** A raw TCP connection that sends nothing: what it received, and when it closed (ms after it opened). */
  const open = async (): Promise<{ socket: Socket, received: () => string, closed: Promise<number> }> => {
    const socket = createConnection({ host: '127.0.0.1', port: gateway.sshPort })
    socket.on('error', () => {})
    let text = ''
    socket.setEncoding('latin1').on('data', (chunk: string) => { text += chunk })
    const started = Date.now()
    const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now() - started)))
    await new Promise((resolve) => socket.once('connect', resolve))
    return { socket, received: () => text, closed }
  }

  it('destroys a connection that never sends its ident line, at the login deadline', async () => {
    const silent = await open()
    // Closed by the login deadline (3 s here), not for another reason: the gateway's ident line and nothing else.
    expect(await silent.closed).toBeGreaterThanOrEqual(2900)
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
