// TCP endpoints with each real SSH client: a port from the pool (or the one asked for), 50 MB both ways
// through an echo server with matching SHA-256, IP rules on connect, and ports held for their owner.
import { createHash, randomBytes, randomInt } from 'node:crypto'
import { createConnection, createServer, type AddressInfo, type Server } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CLIENTS, connect, eventually, startTestGateway, type SshClient, type TestGateway } from './harness.js'

const MB = 1024 * 1024

/** Sends `size` bytes to host:port and reads back what the echo server returns; resolves both digests. */
async function echoThrough (port: number, size: number): Promise<{ sent: string, received: string, bytes: number }> {
  const block = randomBytes(MB)
  const sentHash = createHash('sha256')
  const receivedHash = createHash('sha256')
  const socket = createConnection({ host: '127.0.0.1', port })
  let received = 0
  socket.on('data', (chunk: Buffer) => {
    receivedHash.update(chunk)
    received += chunk.length
    if (received >= size) socket.end()
  })
  await new Promise((resolve) => socket.once('connect', resolve))
  for (let sent = 0; sent < size; sent += block.length) {
    sentHash.update(block)
    if (!socket.write(block)) await new Promise((resolve) => socket.once('drain', resolve))
  }
  await new Promise((resolve, reject) => { socket.once('close', resolve); socket.once('error', reject) })
  return { sent: sentHash.digest('hex'), received: receivedHash.digest('hex'), bytes: received }
}

describe.each(CLIENTS)('tcp endpoints with %s', (kind) => {
  let gateway: TestGateway
  let echo: Server
  let echoPort: number
  const clients: SshClient[] = []
  const base = 22_000 + randomInt(2_000) // below Linux's ephemeral range (32768+), where upstreams on port 0 land
  const open = (options: Omit<Parameters<typeof connect>[0], 'kind' | 'port' | 'key'> & { key?: string }): SshClient => {
    const client = connect({ ...options, kind, port: gateway.sshPort, key: options.key ?? gateway.key('alice', kind) })
    clients.push(client)
    return client
  }
  const tcpPort = async (client: SshClient): Promise<number> => Number((await client.waitFor(/Forwarding\s+tcp:\/\/localhost:(\d+)/))[1])

  beforeAll(async () => {
    gateway = await startTestGateway({ flags: { tcpPorts: `${base}-${base + 39}` } })
    echo = createServer((socket) => socket.pipe(socket))
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve))
    echoPort = (echo.address() as AddressInfo).port
  })
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.kill('SIGKILL')))
    echo.close()
    await gateway.stop()
  })

  it('-R 0 gets a port from the pool; 50 MB echo both ways with matching SHA-256', async () => {
    const extra = kind === 'openssh' ? ['-o', 'LogLevel=INFO'] : []
    const client = open({ forwards: [`0:localhost:${echoPort}`], command: 'tcp', extra })
    const port = await tcpPort(client)
    expect(port).toBeGreaterThanOrEqual(base)
    expect(port).toBeLessThanOrEqual(base + 39)
    if (kind === 'openssh') await client.waitFor(new RegExp(`Allocated port ${port} for remote forward`))
    const result = await echoThrough(port, 50 * MB)
    expect(result.bytes).toBe(50 * MB)
    expect(result.received).toBe(result.sent)
    await client.waitFor(/TCP 127\.0\.0\.1:\d+ closed \d+ms in 52428800B out 52428800B/)
    await client.kill()
  })

  it('binds the port asked for; without a command a non-http port is tcp', async () => {
    const wanted = base + 30 + (kind === 'openssh' ? 0 : 1)
    const client = open({ forwards: [`${wanted}:localhost:${echoPort}`], noSession: kind === 'dropbear' })
    await eventually(() => gateway.registry.lookupTcp(wanted) !== undefined)
    const result = await echoThrough(wanted, MB)
    expect(result.received).toBe(result.sent)
    await client.kill()
  })

  it('closes connections denied by --cidr-deny without reaching the upstream', async () => {
    const client = open({ forwards: [`0:localhost:${echoPort}`], command: 'tcp --cidr-deny 127.0.0.1/32' })
    const port = await tcpPort(client)
    const socket = createConnection({ host: '127.0.0.1', port })
    let data = ''
    socket.on('data', (chunk) => { data += chunk.toString() })
    socket.on('error', () => {})
    socket.write('hello')
    await new Promise((resolve) => socket.once('close', resolve))
    expect(data).toBe('')
    await client.kill()
  })

  it('holds the port for its owner after a disconnect, and gives it back on reconnect', async () => {
    const key = gateway.key('carol', kind)
    const first = open({ key, forwards: [`0:localhost:${echoPort}`], command: 'tcp' })
    const port = await tcpPort(first)
    await first.kill()
    await eventually(() => gateway.registry.lookupTcp(port) === undefined)
    const refused = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ host: '127.0.0.1', port })
      socket.once('connect', () => { socket.destroy(); resolve(false) })
      socket.once('error', () => resolve(true))
    })
    expect(refused).toBe(true) // the listener is gone with the tunnel

    const intruder = open({ key: gateway.key('bob', kind), forwards: [`${port}:localhost:${echoPort}`], command: 'tcp' })
    await intruder.waitFor(new RegExp(`PH_1030: port ${port} is in use, held or reserved by someone else`))
    await intruder.kill()

    const again = open({ key, forwards: [`0:localhost:${echoPort}`], command: 'tcp' })
    expect(await tcpPort(again)).toBe(port)
    await again.kill()
  })

  it('refuses a port outside the pool and a named tcp forward', async () => {
    const outside = open({ forwards: [`${base - 1}:localhost:${echoPort}`], command: 'tcp' })
    await outside.waitFor(/PH_1031: port \d+ \(pool \d+-\d+\) is outside/)
    const named = open({ forwards: [`db:${base + 5}:localhost:${echoPort}`], command: 'tcp' })
    await named.waitFor(/PH_1034: tcp endpoints take no name \("db"\)/)
  })
})
