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

  const open = async (): Promise<{ socket: Socket, closed: Promise<number> }> => {
    const socket = createConnection({ host: '127.0.0.1', port: gateway.sshPort })
    socket.on('error', () => {})
    const started = Date.now()
    const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now() - started)))
    await new Promise((resolve) => socket.once('connect', resolve))
    socket.resume()
    return { socket, closed }
  }

  it('destroys a connection that never sends its ident line', async () => {
    const { closed } = await open()
    expect(await closed).toBeLessThan(8000)
  })

  it('caps connections not yet logged in per source address, and frees the slots when they go', async () => {
    const silent = await Promise.all(Array.from({ length: 20 }, () => open()))
    const extra = await open()
    expect(await extra.closed).toBeLessThan(1500) // refused at once, not at the 3 s deadline
    await Promise.all(silent.map((s) => s.closed))
    const client = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`after:80:localhost:${upstream.port}`], command: 'http' })
    await client.urls()
    await eventually(() => gateway.ssh.connections.length === 1)
    await client.kill()
  })
})
