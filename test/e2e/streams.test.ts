// Data paths end to end with each real SSH client: 100 MB each way with matching SHA-256 (bodies are
// streamed, never buffered whole), WebSocket echo through an upgrade, and a client killed mid-request.
import { createHash, randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { request } from 'undici'
import WebSocket, { WebSocketServer } from 'ws'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CLIENTS, connect, eventually, fetchVia, startTestGateway, startUpstream, type SshClient, type TestGateway } from './harness.js'

const MB = 1024 * 1024
const SIZE = 100 * MB
// One pseudo-random 1 MiB block repeated: cheap to produce, still defeats any accidental compression.
const BLOCK = randomBytes(MB)

function payload (): Readable {
  let sent = 0
  return new Readable({
    read () {
      if (sent >= SIZE) return this.push(null)
      sent += BLOCK.length
      this.push(BLOCK)
    },
  })
}

const expectedHash = (() => {
  const hash = createHash('sha256')
  for (let i = 0; i < SIZE / MB; i++) hash.update(BLOCK)
  return hash.digest('hex')
})()

describe.each(CLIENTS)('streams with %s', (kind) => {
  let gateway: TestGateway
  let upstream: Awaited<ReturnType<typeof startUpstream>>
  let wss: WebSocketServer
  let client: SshClient
  let url: string

  beforeAll(async () => {
    gateway = await startTestGateway()
    upstream = await startUpstream((req, res) => {
      if (req.url === '/download') {
        res.writeHead(200, { 'content-type': 'application/octet-stream' })
        payload().pipe(res)
      } else if (req.url === '/upload') {
        const hash = createHash('sha256')
        let bytes = 0
        req.on('data', (chunk: Buffer) => { hash.update(chunk); bytes += chunk.length })
        req.on('end', () => res.end(JSON.stringify({ bytes, sha256: hash.digest('hex') })))
      } else if (req.url === '/slow') {
        res.writeHead(200)
        res.write('started\n')
        // never ends: the test kills the SSH client meanwhile
      } else {
        res.end('ok')
      }
    })
    wss = new WebSocketServer({ server: upstream.server })
    wss.on('connection', (socket, req) => {
      socket.send(`hello ${req.headers['x-forwarded-for']}`)
      socket.on('message', (data, binary) => socket.send(data, { binary }))
    })
    client = connect({ kind, port: gateway.sshPort, key: gateway.key('alice', kind), forwards: [`stream-${kind}:80:localhost:${upstream.port}`], command: 'http' })
    ;[url] = await client.urls() as [string]
  })
  afterAll(async () => {
    await client.kill('SIGKILL')
    wss.close()
    await upstream.close()
    await gateway.stop()
  })

  it('downloads 100 MB with a matching SHA-256', async () => {
    const res = await request(`http://127.0.0.1:${gateway.httpPort}/download`, { headers: { host: new URL(url).host } })
    expect(res.statusCode).toBe(200)
    const hash = createHash('sha256')
    let bytes = 0
    for await (const chunk of res.body) { hash.update(chunk); bytes += chunk.length }
    expect(bytes).toBe(SIZE)
    expect(hash.digest('hex')).toBe(expectedHash)
  })

  it('uploads 100 MB with a matching SHA-256 (chunked, streamed)', async () => {
    const res = await request(`http://127.0.0.1:${gateway.httpPort}/upload`, { method: 'POST', headers: { host: new URL(url).host }, body: payload() })
    expect(res.statusCode).toBe(200)
    expect(await res.body.json()).toEqual({ bytes: SIZE, sha256: expectedHash })
  })

  it('echoes over a WebSocket', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${gateway.httpPort}/ws`, { headers: { host: new URL(url).host } })
    const messages: string[] = []
    ws.on('message', (data) => messages.push(data.toString()))
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
    await eventually(() => messages.length >= 1)
    expect(messages[0]).toBe('hello 127.0.0.1')
    const big = randomBytes(256 * 1024).toString('base64')
    ws.send('ping')
    ws.send(big)
    await eventually(() => messages.length >= 3)
    expect(messages.slice(1)).toEqual(['ping', big])
    ws.close()
  })

  it('removes the endpoint at once when the client is killed mid-request', async () => {
    const doomed = connect({ kind, port: gateway.sshPort, key: gateway.key('bob', kind), forwards: [`doomed-${kind}:80:localhost:${upstream.port}`], command: 'http' })
    await doomed.urls()
    const res = await request(`http://127.0.0.1:${gateway.httpPort}/slow`, { headers: { host: `doomed-${kind}.localhost` } })
    expect(res.statusCode).toBe(200)
    // The first part has arrived (the response is mid-way), then the client dies.
    let received = ''
    const firstPart = new Promise<void>((resolve) => res.body.on('data', (chunk: Buffer) => { received += chunk.toString(); resolve() }))
    const ending = new Promise<string>((resolve) => { res.body.once('end', () => resolve('end')); res.body.once('error', () => resolve('error')) })
    await firstPart
    expect(received).toBe('started\n')
    await doomed.kill('SIGKILL')
    expect(await ending).toBe('error') // the half-sent response is cut, not passed off as complete
    await eventually(() => gateway.registry.lookup(`doomed-${kind}.localhost`).state === 'offline')
    expect(gateway.registry.endpoints().some((e) => e.host === `doomed-${kind}.localhost`)).toBe(false)
    const after = await fetchVia(gateway, `http://doomed-${kind}.localhost/`)
    expect(after.status).toBe(503)
    expect(after.headers['porthole-error-code']).toBe('PH_3001')
  })
})
