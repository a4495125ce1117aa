// Found by the soak (npm run soak): public TCP clients that reset while their stream is busy make Dropbear's
// dbclient exit with "Unknown channel N", ending the whole agent session and every endpoint on it. ssh2 1.17 sends
// a window adjust for a channel after its own CHANNEL_CLOSE (its windowAdjust() skips 'closed' channels, not
// 'closing' ones, and data still in flight crosses the window threshold); Dropbear frees a channel as soon as
// both closes passed and treats any later message for it as fatal (fix: src/agents/ssh/channel-close.ts).
import { connect as netConnect, createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connect, eventually, fetchVia, startRawUpstream, startTestGateway, type SshClient, type TestGateway } from '../e2e/harness.js'

/** An upstream that sends bytes as fast as the stream takes them, until the connection goes. */
async function firehose (): Promise<{ server: Server, port: number }> {
  const chunk = Buffer.alloc(64 * 1024, 7)
  const server = createServer((socket: Socket) => {
    socket.on('error', () => {})
    const pump = (): void => { while (!socket.destroyed && socket.write(chunk)); }
    socket.on('drain', pump)
    pump()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { server, port: (server.address() as AddressInfo).port }
}

/** Connects to the public port, sends `send`, reads `bytes`, then resets the connection (RST, as a killed client does). */
function readThenReset (port: number, bytes: number, send?: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    let received = 0
    const socket = netConnect(port, '127.0.0.1')
    if (send) socket.write(send)
    socket.on('data', (data: Buffer) => {
      received += data.length
      if (received >= bytes) {
        socket.resetAndDestroy()
        resolve(received)
      }
    })
    socket.on('error', reject)
    socket.on('close', () => { if (received < bytes) reject(new Error(`closed after ${received} of ${bytes} bytes`)) })
  })
}

describe('public TCP clients resetting busy streams', () => {
  let gateway: TestGateway
  let upstream: Awaited<ReturnType<typeof firehose>>
  let echo: Server
  let agent: SshClient
  let echoAgent: SshClient
  let port: number
  let echoPort: number

  beforeAll(async () => {
    const base = 26_200 + Math.floor(Math.random() * 50) * 40 // below the ephemeral range (32768+)
    gateway = await startTestGateway({ flags: { tcpPorts: `${base}-${base + 39}` } })
    upstream = await firehose()
    echo = createServer((socket) => { socket.on('error', () => {}); socket.pipe(socket) })
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve))
    const tcpPort = async (client: SshClient): Promise<number> => Number((await client.waitFor(/Forwarding\s+tcp:\/\/localhost:(\d+)/))[1])
    agent = connect({ kind: 'dropbear', port: gateway.sshPort, key: gateway.key('alice', 'dropbear'), forwards: [`0:127.0.0.1:${upstream.port}`], command: 'tcp' })
    echoAgent = connect({ kind: 'dropbear', port: gateway.sshPort, key: gateway.key('bob', 'dropbear'), forwards: [`0:127.0.0.1:${(echo.address() as AddressInfo).port}`], command: 'tcp' })
    port = await tcpPort(agent)
    echoPort = await tcpPort(echoAgent)
  })
  afterAll(async () => {
    await agent?.kill()
    await echoAgent?.kill()
    upstream?.server.close()
    echo?.close()
    await gateway?.stop()
  })

  it('keep the Dropbear agent connected (no message for a channel after its close)', async () => {
    for (let round = 0; round < 20; round++) {
      // Four at a time, each reset somewhere between 0.5 and 3 MiB: across the 1 MiB window-adjust threshold.
      const results = await Promise.allSettled(Array.from({ length: 4 }, () => readThenReset(port, Math.floor((0.5 + Math.random() * 2.5) * 2 ** 20))))
      expect(agent.output).not.toMatch(/Unknown channel/)
      expect(agent.proc.exitCode).toBeNull()
      expect(results.filter((r) => r.status === 'rejected')).toEqual([])
    }
    expect(await readThenReset(port, 2 ** 20)).toBeGreaterThanOrEqual(2 ** 20)
    expect(agent.proc.exitCode).toBeNull()
  }, 120_000)

  it('finish each channel whose client reset, also when the service echoes (its writes block on the window)', async () => {
    const payload = Buffer.alloc(3 * 2 ** 20, 1)
    for (let round = 0; round < 10; round++) {
      const results = await Promise.allSettled(Array.from({ length: 4 }, () => readThenReset(echoPort, 256 * 1024, payload)))
      expect(results.filter((r) => r.status === 'rejected')).toEqual([])
    }
    // Every service connection ends: the agent flushed, shut the write side, and the channel closed.
    await eventually(async () => (await new Promise<number>((resolve) => echo.getConnections((_e, n) => resolve(n)))) === 0, 30_000)
    expect(echoAgent.output).not.toMatch(/Unknown channel/)
    expect(echoAgent.proc.exitCode).toBeNull()
  }, 120_000)

  it('survive the agent dying in the middle of HTTP responses (no error after the channel closed)', async () => {
    // Found by npm run soak: the gateway died of a TypeError in undici when an agent was killed mid-response. The
    // session's end failed each unfinished channel with an 'error' emitted a tick later, after ssh2 had already
    // emitted 'close' for it (undici had released the socket by then).
    // Answer the request's head and part of a body, then hold.
    const service = await startRawUpstream((socket) => { socket.write(`HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n${'x'.repeat(1000)}`) })
    const http = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('carol', 'openssh'), forwards: [`midway:80:127.0.0.1:${service.port}`], command: 'http' })
    try {
      const [url] = await http.urls()
      const clients = Array.from({ length: 8 }, () => {
        const socket = netConnect(gateway.httpPort, '127.0.0.1')
        socket.on('error', () => {})
        socket.write(`GET / HTTP/1.1\r\nHost: ${new URL(url!).host}\r\n\r\n`)
        return socket
      })
      await Promise.all(clients.map((socket) => new Promise((resolve) => socket.once('data', resolve))))
      await http.kill('SIGKILL')
      // Each client's response is cut (never completed), and the gateway goes on serving.
      await Promise.all(clients.map((socket) => new Promise((resolve) => socket.once('close', resolve))))
      await eventually(async () => [404, 503].includes((await fetchVia(gateway, url!)).status))
      expect(agent.proc.exitCode).toBeNull()
    } finally {
      await http.kill()
      await service.close()
    }
  }, 60_000)
})
