// Streams users rely on (issue 9, item 8): a public client that sends its request and then shuts its write
// side (`nc -N`, an HTTP/1.0-style exchange) must still get the whole answer, through tcp endpoints and
// through tls passthrough; and when the agent dies mid-stream the public client must see a reset
// (ECONNRESET), never a clean end that would pass a truncated stream off as complete.
import { createHash, randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { connect as netConnect, createServer as createNetServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { connect as tlsConnect, createServer as createTlsServer } from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CertStore } from '../../src/certs/cert-store.js'
import { CLIENTS, connect, startTestGateway, type SshClient, type TestGateway } from '../e2e/harness.js'

const SIZE = 5_000_000
const payload = randomBytes(SIZE)
const payloadSha = createHash('sha256').update(payload).digest('hex')
const REQUEST = Buffer.from('GET / HTTP/1.0\r\n\r\n')

/** Sent before the agent is killed: the upstream's stream is open and unfinished when the agent dies. */
const PART = 1_000_000

/** What an upstream does with a connection: answer once the request ends, or send a part and stay open. */
type Behaviour = 'answer-after-eof' | 'part-then-open'

function serve (socket: Socket, behaviour: Behaviour, requests: Buffer[]): void {
  socket.on('error', () => {})
  if (behaviour === 'part-then-open') {
    socket.write(payload.subarray(0, PART))
    return
  }
  const chunks: Buffer[] = []
  socket.on('data', (chunk: Buffer) => chunks.push(chunk))
  socket.once('end', () => {
    requests.push(Buffer.concat(chunks))
    socket.end(payload)
  })
}

/**
 * Reads everything the public side gets until it ends or fails: the byte count, digest and how it ended.
 * `onPart` runs once PART bytes are in. (The agent is killed only then: with unread bytes still queued,
 * Node's libuv reports a reset after a partial read as a plain end, so a Node client could not tell.)
 */
function collect (socket: Socket, onPart?: () => void): Promise<{ bytes: number, sha: string, ending: string }> {
  const hash = createHash('sha256')
  let bytes = 0
  return new Promise((resolve) => {
    socket.on('data', (chunk: Buffer) => {
      bytes += chunk.length
      hash.update(chunk)
      if (bytes === PART) onPart?.()
    })
    socket.once('end', () => resolve({ bytes, sha: hash.digest('hex'), ending: 'end' }))
    socket.once('error', (error: NodeJS.ErrnoException) => resolve({ bytes, sha: '', ending: error.code ?? error.message }))
  })
}

describe.each(CLIENTS)('half-close and agent death with %s', (kind) => {
  let gateway: TestGateway
  let tcpUpstream: Server
  let tlsUpstream: Server
  let behaviour: Behaviour = 'answer-after-eof'
  const requests: Buffer[] = []
  const clients: SshClient[] = []
  const certs = { ca: '', name: `half-${kind}.localhost` }
  const agent = (forward: string, command: string): SshClient => {
    const client = connect({ kind, port: gateway.sshPort, key: gateway.key('alice', kind), forwards: [forward], command })
    clients.push(client)
    return client
  }
  const tcpAgent = async (): Promise<{ client: SshClient, port: number }> => {
    const client = agent(`0:localhost:${(tcpUpstream.address() as AddressInfo).port}`, 'tcp')
    const port = Number((await client.waitFor(/Forwarding\s+tcp:\/\/localhost:(\d+)/))[1])
    return { client, port }
  }

  beforeAll(async () => {
    gateway = await startTestGateway()
    tcpUpstream = createNetServer({ allowHalfOpen: true }, (socket) => serve(socket, behaviour, requests))
    const own = new CertStore({ dataDir: join(gateway.tmp, 'own') })
    const issued = own.issue(certs.name)
    certs.ca = own.caPem
    tlsUpstream = createTlsServer({ key: issued.keyPem, cert: issued.certPem, allowHalfOpen: true }, (socket) => serve(socket, behaviour, requests))
    await Promise.all([tcpUpstream, tlsUpstream].map((server) => new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))))
  })
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.kill('SIGKILL')))
    tcpUpstream.close()
    tlsUpstream.close()
    await gateway.stop()
  })

  it('tcp: a client that writes, then ends its side, gets all 5,000,000 bytes back (sha256)', async () => {
    behaviour = 'answer-after-eof'
    const { client, port } = await tcpAgent()
    const socket = netConnect({ host: '127.0.0.1', port })
    const result = collect(socket)
    socket.end(REQUEST)
    expect(await result).toEqual({ bytes: SIZE, sha: payloadSha, ending: 'end' })
    expect(requests.at(-1)).toEqual(REQUEST)
    await client.kill()
  })

  it('tls passthrough: a client that writes, then ends its side, gets all 5,000,000 bytes back (sha256)', async () => {
    behaviour = 'answer-after-eof'
    const client = agent(`half-${kind}:443:localhost:${(tlsUpstream.address() as AddressInfo).port}`, 'tls')
    await client.waitFor(new RegExp(`Forwarding\\s+tls://half-${kind}\\.localhost`))
    const socket = tlsConnect({ host: '127.0.0.1', port: gateway.httpsPort, servername: certs.name, ca: certs.ca })
    const result = collect(socket)
    await new Promise((resolve) => socket.once('secureConnect', resolve))
    socket.end(REQUEST)
    expect(await result).toEqual({ bytes: SIZE, sha: payloadSha, ending: 'end' })
    expect(requests.at(-1)).toEqual(REQUEST)
    await client.kill()
  })

  it('tcp: the agent killed mid-stream resets the public client (ECONNRESET, not a clean end)', async () => {
    behaviour = 'part-then-open'
    const { client, port } = await tcpAgent()
    const socket = netConnect({ host: '127.0.0.1', port })
    const result = await collect(socket, () => { void client.kill('SIGKILL') })
    expect(result.bytes).toBe(PART)
    expect(result.ending).toBe('ECONNRESET')
  })

  it('tls passthrough: the agent killed mid-stream resets the public client', async () => {
    behaviour = 'part-then-open'
    const client = agent(`dies-${kind}:443:localhost:${(tlsUpstream.address() as AddressInfo).port}`, 'tls')
    await client.waitFor(new RegExp(`Forwarding\\s+tls://dies-${kind}\\.localhost`))
    const socket = tlsConnect({ host: '127.0.0.1', port: gateway.httpsPort, servername: `dies-${kind}.localhost`, rejectUnauthorized: false })
    const result = await collect(socket, () => { void client.kill('SIGKILL') })
    expect(result.bytes).toBe(PART)
    expect(result.ending).toBe('ECONNRESET')
  })

  it('an upstream the agent cannot reach resets the public client (tcp and tls passthrough), never a clean empty end', async () => {
    const closed = createNetServer()
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
    const deadPort = (closed.address() as AddressInfo).port
    await new Promise((resolve) => closed.close(resolve))
    const tcp = agent(`0:localhost:${deadPort}`, 'tcp')
    const port = Number((await tcp.waitFor(/Forwarding\s+tcp:\/\/localhost:(\d+)/))[1])
    const tcpResult = await collect(netConnect({ host: '127.0.0.1', port }))
    expect(tcpResult).toMatchObject({ bytes: 0, ending: 'ECONNRESET' })
    const tls = agent(`nowhere-${kind}:443:localhost:${deadPort}`, 'tls')
    await tls.waitFor(new RegExp(`Forwarding\\s+tls://nowhere-${kind}\\.localhost`))
    const tlsResult = await collect(tlsConnect({ host: '127.0.0.1', port: gateway.httpsPort, servername: `nowhere-${kind}.localhost`, rejectUnauthorized: false }))
    expect(tlsResult).toMatchObject({ bytes: 0, ending: 'ECONNRESET' })
  })
})
