// The HTTP/1.1 fast path (--fast-h1, src/edge/fast-h1.ts) through a real OpenSSH tunnel: which requests it
// takes (edge.fastRelayed says), that it hands everything else to the usual path at a request boundary, and what
// the client and the upstream see: the same headers, framing, error codes, capture, terminal line and deadlines as
// the usual path gives. The HTTP files also run whole with it on (the fast-h1 project in vitest.config.ts).
import { createHash } from 'node:crypto'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo, Socket } from 'node:net'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { Client } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CertStore } from '../../src/certs/cert-store.js'
import type { Endpoint } from '../../src/core/endpoint.js'
import { connect, eventually, h2Session, h2Status, rawConnect, sleep, rawRequest, startRawUpstream, startTestGateway, startUpstream, type SshClient, type TestGateway } from './harness.js'

/** The endpoint bound as `name`.localhost. */
function endpointNamed (gateway: TestGateway, name: string): Endpoint {
  return gateway.registry.endpoints().find((e) => e.host === `${name}.localhost`)!
}

/** A chunked body's data and trailer section (each chunk's size line checked). */
function dechunk (text: string): { body: string, trailers: string } {
  let body = ''
  let rest = text
  for (;;) {
    const line = rest.indexOf('\r\n')
    const size = parseInt(rest.slice(0, line), 16)
    if (Number.isNaN(size)) throw new Error(`not a chunk size: ${JSON.stringify(rest.slice(0, 20))}`)
    rest = rest.slice(line + 2)
    if (size === 0) return { body, trailers: rest.replace(/\r\n$/, '') }
    body += rest.slice(0, size)
    rest = rest.slice(size + 2)
  }
}

describe('http fast path (--fast-h1)', () => {
  let gateway: TestGateway
  const clients: SshClient[] = []
  const closers: Array<() => Promise<void>> = []
  const expose = async (name: string, port: number, command = 'http'): Promise<SshClient> => {
    const client = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`${name}:80:localhost:${port}`], command })
    clients.push(client)
    await client.urls()
    return client
  }
  /** One keep-alive connection to the gateway's HTTP port (undici: one socket, one request at a time). */
  const keepAlive = (): Client => {
    const client = new Client(`http://127.0.0.1:${gateway.httpPort}`, { pipelining: 1 })
    closers.push(() => client.close())
    return client
  }
  const get = async (client: Client, host: string, path = '/', headers: Record<string, string> = {}): Promise<{ status: number, headers: Record<string, string | string[] | undefined>, body: string }> => {
    const res = await client.request({ method: 'GET', path, headers: { host, ...headers } })
    return { status: res.statusCode, headers: res.headers, body: await res.body.text() }
  }

  const idOf = (name: string): string => endpointNamed(gateway, name).id
  /** An upstream that answers with what it was sent, and counts its connections (one per tunnel stream). */
  let echo: { port: number, connections: number }
  let host: string

  beforeAll(async () => {
    gateway = await startTestGateway({ flags: { fastH1: true }, tune: { upstreamTimeoutMs: 800, headerTimeoutMs: 600, idleTimeoutMs: 4000 } })
    const upstream = await startUpstream((req, res) => {
      const hash = createHash('sha256')
      let bytes = 0
      req.on('data', (chunk: Buffer) => { bytes += chunk.length; hash.update(chunk) })
      req.on('end', () => {
        if (req.url === '/spoof') res.setHeader('porthole-error-code', 'PH_3001')
        if (req.url === '/trailers') {
          res.writeHead(200, { trailer: 'x-sum, porthole-error-code' })
          res.write('part one;')
          res.addTrailers({ 'x-sum': 'abc', 'porthole-error-code': 'PH_3000' })
          return res.end('part two')
        }
        if (req.url === '/hints') res.writeEarlyHints({ link: '</a.css>; rel=preload' })
        if (req.url === '/empty') return res.writeHead(204).end()
        res.setHeader('content-type', 'application/json')
        res.setHeader('connection', 'keep-alive, x-upstream-hop')
        res.setHeader('x-upstream-hop', 'stays upstream')
        res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, bytes, sha: hash.digest('hex') }))
      })
    })
    echo = { port: upstream.port, connections: 0 }
    upstream.server.on('connection', () => { echo.connections++ })
    closers.push(upstream.close)
    host = 'plain.localhost'
    await expose('plain', upstream.port)
    await expose('other', upstream.port)
    await expose('guarded', upstream.port, 'http --basic-auth ann:pw')
  })
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.kill('SIGKILL')))
    for (const close of closers) await close()
    await gateway.stop()
  })

  it('takes plain requests: one tunnel stream per connection, the usual headers upstream, hop fields kept back', async () => {
    const before = gateway.edge.fastRelayed
    const connectionsBefore = echo.connections
    const client = keepAlive()
    for (const path of ['/one', '/two?x=1', '/three']) {
      const res = await get(client, host, path, { 'x-forwarded-for': '10.0.0.9' })
      expect(res.status).toBe(200)
      const seen = JSON.parse(res.body) as { method: string, url: string, headers: Record<string, string> }
      expect(seen.url).toBe(path)
      expect(seen.headers).toMatchObject({ host, 'x-forwarded-for': '10.0.0.9, 127.0.0.1', 'x-forwarded-proto': 'http', 'x-forwarded-host': host })
      expect(seen.headers['porthole-hop']).toMatch(/^[\w-]+$/)
      expect(res.headers['x-upstream-hop']).toBeUndefined()
      expect(res.headers.date).toBeDefined()
    }
    // Fields the request's Connection names stay on the public hop (undici will not send such a Connection).
    const named = await rawRequest(gateway.httpPort, `GET /named HTTP/1.1\r\nHost: ${host}\r\nConnection: close, x-private\r\nX-Private: hop only\r\n\r\n`)
    expect(named).toMatch(/"url":"\/named"/)
    expect(named).not.toMatch(/hop only/)
    expect(gateway.edge.fastRelayed - before).toBe(4)
    expect(echo.connections - connectionsBefore).toBe(2)
    // Field values are bytes: one that is not ASCII (UTF-8 here) reaches the upstream byte for byte, and comes back.
    const accented = await rawRequest(gateway.httpPort, `GET /bytes HTTP/1.1\r\nHost: ${host}\r\nX-Name: caf\u00e9\r\nConnection: close\r\n\r\n`)
    expect(Buffer.from(JSON.parse(accented.slice(accented.indexOf('{'))).headers['x-name'], 'latin1').toString('utf8')).toBe('caf\u00e9')
    // Only Porthole says porthole-error-code.
    expect((await get(client, host, '/spoof')).headers['porthole-error-code']).toBeUndefined()
    await clients[0]!.waitFor(/GET \/two\?x=1 200 \d+ms/)
  })

  it('takes HTTP/1.1 over TLS too: https upstream headers; a host the connection was not made for goes to the usual path (421)', async () => {
    const before = gateway.edge.fastRelayed
    const tls = new Client(`https://127.0.0.1:${gateway.httpsPort}`, { pipelining: 1, connect: { servername: host, ca: gateway.caPem, ALPNProtocols: ['http/1.1'] } })
    closers.push(() => tls.close())
    for (const path of ['/s1', '/s2']) {
      const res = await get(tls, host, path)
      expect(res.status).toBe(200)
      expect(JSON.parse(res.body).headers).toMatchObject({ host, 'x-forwarded-proto': 'https', 'x-forwarded-host': host })
    }
    expect(gateway.edge.fastRelayed - before).toBe(2)
    await clients[0]!.waitFor(/GET \/s2 200 \d+ms/)
    // Another endpoint's host on a connection made for plain.localhost (undici would open a new one): the usual path's 421.
    const misdirected = await rawRequest(gateway.httpsPort, 'GET /elsewhere HTTP/1.1\r\nHost: other.localhost\r\nConnection: close\r\n\r\n', { servername: host, ca: gateway.caPem, ALPNProtocols: ['http/1.1'] })
    expect(misdirected).toMatch(/^HTTP\/1\.1 421 [^]*porthole-error-code: PH_3015/)
    expect(gateway.edge.fastRelayed - before).toBe(2)
    // HTTP/2 stays on the usual path.
    const session = h2Session(gateway, host)
    try {
      expect(await h2Status(session, host, '/h2')).toBe(200)
    } finally {
      session.close()
    }
    expect(gateway.edge.fastRelayed - before).toBe(2)
  })

  it('never takes an endpoint with a module: basic auth is asked for on every request', async () => {
    const before = gateway.edge.fastRelayed
    const client = keepAlive()
    const refused = await get(client, 'guarded.localhost', '/')
    expect(refused.status).toBe(401)
    expect(refused.headers['porthole-error-code']).toBe('PH_3101')
    const auth = `Basic ${Buffer.from('ann:pw').toString('base64')}`
    expect((await get(client, 'guarded.localhost', '/', { authorization: auth })).status).toBe(200)
    expect(gateway.edge.fastRelayed).toBe(before)
  })

  it('hands a keep-alive connection to the usual path at the first request it does not take', async () => {
    const before = gateway.edge.fastRelayed
    const client = keepAlive()
    expect((await get(client, host, '/fast')).status).toBe(200)
    expect((await get(client, 'guarded.localhost', '/')).status).toBe(401) // same connection, now the server's
    expect((await get(client, host, '/after')).status).toBe(200)
    expect(gateway.edge.fastRelayed - before).toBe(1)
    // HTTP/1.0, Expect and unknown hosts go to the usual path from the start.
    expect(await rawRequest(gateway.httpPort, `GET /old HTTP/1.0\r\nHost: ${host}\r\n\r\n`)).toMatch(/^HTTP\/1\.1 200 /)
    expect(await rawRequest(gateway.httpPort, 'GET / HTTP/1.1\r\nHost: nobody.localhost\r\nConnection: close\r\n\r\n')).toMatch(/^HTTP\/1\.1 404 [^]*PH_3000/)
    expect(gateway.edge.fastRelayed - before).toBe(1)
  })

  it('streams a chunked upload and re-frames a chunked response with its trailers, less porthole-error-code', async () => {
    const body = Buffer.alloc(5 * 1024 * 1024, 7)
    const client = keepAlive()
    const upload = await client.request({ method: 'POST', path: '/upload', headers: { host }, body: Readable.from((function * () { for (let i = 0; i < body.length; i += 65536) yield body.subarray(i, i + 65536) })()) })
    const seen = await upload.body.json() as { bytes: number, sha: string, headers: Record<string, string> }
    expect(seen).toMatchObject({ bytes: body.length, sha: createHash('sha256').update(body).digest('hex') })
    expect(seen.headers['transfer-encoding']).toBe('chunked')
    const reply = await rawRequest(gateway.httpPort, `GET /trailers HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`)
    const [head, ...rest] = reply.split('\r\n\r\n')
    expect(head).toMatch(/^HTTP\/1\.1 200 OK\r\n/)
    expect(head).toMatch(/\r\nTransfer-Encoding: chunked(\r\n|$)/)
    expect(head).toMatch(/\r\nConnection: close(\r\n|$)/)
    expect(dechunk(rest.join('\r\n\r\n'))).toEqual({ body: 'part one;part two', trailers: 'x-sum: abc\r\n' })
  })

  it('captures what it relays for the inspector, as the usual path does: heads both ways, bodies, error codes', async () => {
    const owner = endpointNamed(gateway, 'plain').owner.id
    const before = gateway.edge.fastRelayed
    const client = keepAlive()
    const posted = await client.request({ method: 'POST', path: '/captured?q=1', headers: { host, 'content-type': 'text/plain', 'x-mine': 'yes' }, body: 'hello capture' })
    expect(posted.statusCode).toBe(200)
    const answer = await posted.body.text()
    expect(gateway.edge.fastRelayed - before).toBe(1)
    const record = await eventually(() => gateway.inspect.store.list(owner).find((r) => r.request.uri === '/captured?q=1'))
    expect(record.request).toMatchObject({ method: 'POST', proto: 'HTTP/1.1', bodySize: 13 })
    expect(record.request.body.toString()).toBe('hello capture')
    expect(record.request.headers['X-Mine'] ?? record.request.headers['x-mine']).toEqual(['yes'])
    expect(record.response).toMatchObject({ statusCode: 200, status: '200 OK', proto: 'HTTP/1.1' })
    expect(record.response!.body.toString()).toBe(answer)
    expect(record.errorCode).toBeUndefined()
  })

  it('HEAD, 204 and 103 keep the connection; a pipelined request closes it after the answer before', async () => {
    const client = keepAlive()
    const head = await client.request({ method: 'HEAD', path: '/head', headers: { host } })
    expect(head.statusCode).toBe(200)
    await head.body.text()
    expect((await get(client, host, '/empty')).status).toBe(204)
    const hinted = await rawRequest(gateway.httpPort, `GET /hints HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`)
    expect(hinted).toMatch(/^HTTP\/1\.1 103 Early Hints\r\nLink: <\/a\.css>; rel=preload\r\n\r\nHTTP\/1\.1 200 OK\r\n/)
    const pipelined = await rawRequest(gateway.httpPort, `GET /first HTTP/1.1\r\nHost: ${host}\r\n\r\nGET /second HTTP/1.1\r\nHost: ${host}\r\n\r\n`)
    expect(pipelined.match(/HTTP\/1\.1 200/g)).toHaveLength(1)
    expect(pipelined).toMatch(/\r\nConnection: close\r\n[^]*"url":"\/first"/)
  })

  it('answers PH_3003, PH_3004 and PH_3006 for a broken, silent or oversized upstream, and the terminal says so', async () => {
    const broken = await startRawUpstream((socket, head) => {
      if (head.startsWith('GET /garbage')) socket.end('this is not http\r\n\r\n')
      else if (head.startsWith('GET /cut')) socket.end('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this')
      else if (head.startsWith('GET /big')) socket.write(`HTTP/1.1 200 OK\r\nx-big: ${'a'.repeat(100_000)}\r\n\r\n`)
      // GET /silent: no answer
    })
    closers.push(broken.close)
    const terminal = await expose('broken', broken.port)
    const client = keepAlive()
    const garbage = await get(client, 'broken.localhost', '/garbage')
    expect([garbage.status, garbage.headers['porthole-error-code']]).toEqual([502, 'PH_3003'])
    expect(garbage.body).toMatch(/^502 Bad Gateway\nPH_3003: /)
    await terminal.waitFor(/GET \/garbage 502 \d+ms PH_3003/)
    const silent = await get(keepAlive(), 'broken.localhost', '/silent')
    expect([silent.status, silent.headers['porthole-error-code']]).toEqual([504, 'PH_3004'])
    const big = await get(keepAlive(), 'broken.localhost', '/big')
    expect([big.status, big.headers['porthole-error-code']]).toEqual([502, 'PH_3006'])
    // Cut mid-body: the client sees the connection end early, never a complete response.
    await expect(get(keepAlive(), 'broken.localhost', '/cut')).rejects.toThrow()
  })

  it('a head that is not complete within the header timeout gets 408 PH_3020; the gateway serves others meanwhile', async () => {
    const slow = rawConnect(gateway.httpPort)
    await slow.connected
    let reply = ''
    slow.socket.on('data', (chunk: Buffer) => { reply += chunk.toString() })
    slow.socket.write(`GET / HTTP/1.1\r\nHost: ${host}\r\n`)
    expect((await get(keepAlive(), host, '/meanwhile')).status).toBe(200)
    await slow.closed
    expect(reply).toMatch(/^HTTP\/1\.1 408 [^]*PH_3020/)
  })

  it('keeps streams between exchanges for the next connection, and for a connection that turns to another endpoint', async () => {
    const upstream = await startUpstream((req, res) => res.end(`at ${req.url}`))
    closers.push(upstream.close)
    let connections = 0
    upstream.server.on('connection', () => { connections++ })
    await expose('pool-a', upstream.port)
    await expose('pool-b', upstream.port)
    const before = gateway.edge.fastRelayed
    const parked = (): number => gateway.edge.fastParked(idOf('pool-a'))
    // A new public connection per request (Connection: close): one tunnel stream serves them all.
    for (const path of ['/c1', '/c2', '/c3']) {
      expect(await rawRequest(gateway.httpPort, `GET ${path} HTTP/1.1\r\nHost: pool-a.localhost\r\nConnection: close\r\n\r\n`)).toMatch(new RegExp(`at ${path}$`))
      await eventually(() => parked() === 1)
    }
    expect(connections).toBe(1)
    // One connection for two endpoints (a proxy in front, with many names): a stream each, taken in turn.
    const proxied = keepAlive()
    for (const [name, path] of [['pool-a', '/k1'], ['pool-b', '/k2'], ['pool-a', '/k3'], ['pool-b', '/k4']] as const) {
      expect((await get(proxied, `${name}.localhost`, path)).body).toBe(`at ${path}`)
    }
    expect(connections).toBe(2)
    expect(gateway.edge.fastRelayed - before).toBe(7)
  })

  it('a parked stream the upstream closes is dropped; the next request opens a new one', async () => {
    // An upstream that closes an idle connection soon, and says otherwise (Keep-Alive: timeout=60).
    const upstream = await startUpstream((req, res) => res.setHeader('keep-alive', 'timeout=60').end(`at ${req.url}`))
    closers.push(upstream.close)
    upstream.server.keepAliveTimeout = 300
    let connections = 0
    upstream.server.on('connection', () => { connections++ })
    await expose('pool-short', upstream.port)
    const parked = (): number => gateway.edge.fastParked(idOf('pool-short'))
    expect(await rawRequest(gateway.httpPort, 'GET /one HTTP/1.1\r\nHost: pool-short.localhost\r\nConnection: close\r\n\r\n')).toMatch(/at \/one$/)
    await eventually(() => parked() === 1)
    await eventually(() => parked() === 0) // closed by the upstream while parked
    expect(await rawRequest(gateway.httpPort, 'GET /two HTTP/1.1\r\nHost: pool-short.localhost\r\nConnection: close\r\n\r\n')).toMatch(/at \/two$/)
    expect(connections).toBe(2)
  })

  it('a kept stream the upstream lets go as a GET goes out: the GET is sent once more on a new stream; a POST is not', async () => {
    // The upstream drops each connection at its second request, unanswered: as if its keep-alive ran out then.
    const requests = new Map<Socket, number>()
    const upstream = await startRawUpstream((socket, head) => {
      const seen = (requests.get(socket) ?? 0) + 1
      requests.set(socket, seen)
      if (seen === 2) return void socket.destroy()
      const path = /^\S+ (\S+)/.exec(head)![1]!
      socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${3 + path.length}\r\n\r\nat ${path}`)
    })
    closers.push(upstream.close)
    await expose('replay', upstream.port)
    const parked = (): number => gateway.edge.fastParked(idOf('replay'))
    const send = (method: string, path: string, body?: string): Promise<string> => rawRequest(gateway.httpPort,
      `${method} ${path} HTTP/1.1\r\nHost: replay.localhost\r\nConnection: close\r\n${body === undefined ? '' : `content-length: ${body.length}\r\n`}\r\n${body ?? ''}`)
    expect(await send('GET', '/one')).toMatch(/^HTTP\/1\.1 200[^]*at \/one$/)
    await eventually(() => parked() === 1)
    expect(await send('GET', '/two')).toMatch(/^HTTP\/1\.1 200[^]*at \/two$/) // the kept stream failed; a new one answered
    expect(requests.size).toBe(2)
    await eventually(() => parked() === 1)
    expect(await send('POST', '/three', 'x')).toMatch(/^HTTP\/1\.1 502[^]*PH_3003/)
    expect(requests.size).toBe(2)
  })

  it('a parked stream waits no longer than the upstream\'s Keep-Alive timeout allows, less 2 s (as undici)', async () => {
    // Node's server says `Keep-Alive: timeout=3` for a 3 s keep-alive: the stream may wait 1 s, and is closed by
    // the gateway before the upstream would close it. With timeout=2 it is not parked at all.
    const closedBy: string[] = []
    const upstream = await startUpstream((req, res) => res.end(`at ${req.url}`))
    closers.push(upstream.close)
    upstream.server.keepAliveTimeout = 3000
    upstream.server.on('connection', (socket: Socket) => {
      const opened = performance.now()
      socket.on('end', () => closedBy.push(`gateway after ${Math.round(performance.now() - opened)} ms`))
    })
    await expose('pool-hint', upstream.port)
    const parked = (): number => gateway.edge.fastParked(idOf('pool-hint'))
    const reply = await rawRequest(gateway.httpPort, 'GET /one HTTP/1.1\r\nHost: pool-hint.localhost\r\nConnection: close\r\n\r\n')
    expect(reply).toMatch(/at \/one$/)
    expect(reply).not.toMatch(/keep-alive:/i) // a hop field: the upstream's, not the client's
    await eventually(() => parked() === 1)
    await eventually(() => parked() === 0 && closedBy.length === 1)
    expect(Number(/after (\d+) ms/.exec(closedBy[0]!)![1])).toBeLessThan(2000) // 1 s and a sweep, not the upstream's 3 s
    upstream.server.keepAliveTimeout = 2000
    expect(await rawRequest(gateway.httpPort, 'GET /two HTTP/1.1\r\nHost: pool-hint.localhost\r\nConnection: close\r\n\r\n')).toMatch(/at \/two$/)
    await eventually(() => closedBy.length === 2)
    expect(parked()).toBe(0)
  })

  it('a keep-alive connection idle for the idle timeout is closed; one that keeps sending is not', async () => {
    const request = `GET /idle HTTP/1.1\r\nHost: ${host}\r\n\r\n`
    const idle = rawConnect(gateway.httpPort)
    const busy = rawConnect(gateway.httpPort)
    await Promise.all([idle.connected, busy.connected])
    idle.socket.write(request)
    const opened = performance.now()
    let idleClosedAt = 0
    void idle.closed.then(() => { idleClosedAt = performance.now() })
    for (let i = 0; i < 11; i++) { // 11 x 400 ms: past the idle timeout (4 s; undici keeps a connection 2 s less) in all
      busy.socket.write(request)
      await sleep(400)
    }
    expect(idleClosedAt - opened).toBeGreaterThan(3900)
    expect(idleClosedAt - opened).toBeLessThan(4700) // the timeout plus the sweep's interval (150 ms here), with room
    expect(idle.received().match(/HTTP\/1\.1 200/g)).toHaveLength(1)
    expect(busy.socket.destroyed).toBe(false)
    expect(busy.received().match(/HTTP\/1\.1 200/g)).toHaveLength(11)
    busy.socket.destroy()
  })

  it('a client that leaves mid-response closes its tunnel stream, and the next connection gets a new one', async () => {
    const socket: Socket = rawConnect(gateway.httpPort).socket
    socket.write(`GET /bye HTTP/1.1\r\nHost: ${host}\r\n\r\n`)
    await new Promise((resolve) => socket.once('data', resolve))
    socket.destroy()
    expect((await get(keepAlive(), host, '/next')).status).toBe(200)
  })

  it('an unbound endpoint\'s streams close at once (an open one would hold the agent\'s ssh connection open)', async () => {
    const upstream = await startUpstream((req, res) => res.end(`at ${req.url}`))
    closers.push(upstream.close)
    const open = new Set<Socket>()
    upstream.server.on('connection', (socket: Socket) => { open.add(socket); socket.on('close', () => open.delete(socket)) })
    await expose('leaving', upstream.port)
    const client = keepAlive()
    expect((await get(client, 'leaving.localhost', '/one')).body).toBe('at /one')
    expect(open.size).toBe(1) // the fast path's stream, kept for the next request on this connection
    const leaving = idOf('leaving')
    expect(await rawRequest(gateway.httpPort, 'GET /two HTTP/1.1\r\nHost: leaving.localhost\r\nConnection: close\r\n\r\n')).toMatch(/at \/two$/)
    await eventually(() => gateway.edge.fastParked(leaving) === 1) // a second stream, parked for the next connection
    expect(open.size).toBe(2)
    gateway.registry.unbind(endpointNamed(gateway, 'leaving'))
    await eventually(() => open.size === 0)
    // The same public connection goes on: the name is held for its owner but not bound, and says so.
    expect(gateway.edge.fastParked(leaving)).toBe(0)
    const after = await get(client, 'leaving.localhost', '/three')
    expect(after.status).toBe(503)
  })
})

describe('http fast path: parked streams and the session\'s max-streams-per-session', () => {
  let gateway: TestGateway
  let client: SshClient
  let upstream: Awaited<ReturnType<typeof startUpstream>>
  beforeAll(async () => {
    gateway = await startTestGateway({ flags: { fastH1: true }, tune: { maxStreamsPerSession: 2 } })
    upstream = await startUpstream((req, res) => { setTimeout(() => res.end(`at ${req.url}`), 100) })
    client = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: ['room-a', 'room-b'].map((name) => `${name}:80:localhost:${upstream.port}`), command: 'http' })
    await client.urls()
  })
  afterAll(async () => {
    await client.kill()
    await upstream.close()
    await gateway.stop()
  })

  it('a stream parked for one endpoint gives way to another endpoint of the same session at the cap, instead of a 502', async () => {
    const parkedA = (): number => gateway.edge.fastParked(endpointNamed(gateway, 'room-a').id)
    // Two requests at once to room-a: two streams, the session's two; both parked once their connections end.
    const close = (path: string): Promise<string> => rawRequest(gateway.httpPort, `GET ${path} HTTP/1.1\r\nHost: room-a.localhost\r\nConnection: close\r\n\r\n`)
    const answers = await Promise.all([close('/a1'), close('/a2')])
    expect(answers[0]).toMatch(/at \/a1$/)
    expect(answers[1]).toMatch(/at \/a2$/)
    await eventually(() => parkedA() === 2)
    // room-b needs a stream: the session is at its cap with room-a's idle ones; the older one closes for it.
    const before = gateway.edge.fastRelayed
    expect(await rawRequest(gateway.httpPort, 'GET /b1 HTTP/1.1\r\nHost: room-b.localhost\r\nConnection: close\r\n\r\n')).toMatch(/^HTTP\/1\.1 200[^]*at \/b1$/)
    expect(gateway.edge.fastRelayed - before).toBe(1)
    expect(parkedA()).toBe(1)
    // And room-a still has its other stream.
    expect(await close('/a3')).toMatch(/at \/a3$/)
  })

  it('the same over HTTPS: HTTP/1.1 over TLS takes the fast path too, and its parked streams give way alike', async () => {
    const parked = (name: string): number => gateway.edge.fastParked(endpointNamed(gateway, name).id)
    const over = (name: string, path: string): Promise<string> => rawRequest(gateway.httpsPort,
      `GET ${path} HTTP/1.1\r\nHost: ${name}.localhost\r\nConnection: close\r\n\r\n`, { servername: `${name}.localhost`, ca: gateway.caPem, ALPNProtocols: ['http/1.1'] })
    await eventually(() => parked('room-a') === 0 && parked('room-b') === 0, 8000)
    const before = gateway.edge.fastRelayed
    // Two requests at once to room-a: the session's two streams, both parked once their connections end.
    const answers = await Promise.all([over('room-a', '/s1'), over('room-a', '/s2')])
    expect(answers[0]).toMatch(/^HTTP\/1\.1 200[^]*at \/s1$/)
    expect(answers[1]).toMatch(/^HTTP\/1\.1 200[^]*at \/s2$/)
    await eventually(() => parked('room-a') === 2)
    // room-b needs one: one of room-a's parked streams closes for it.
    expect(await over('room-b', '/s3')).toMatch(/^HTTP\/1\.1 200[^]*at \/s3$/)
    expect(gateway.edge.fastRelayed - before).toBe(3)
    expect(parked('room-a')).toBe(1)
  })

  it('the same with a TLS upstream (--upstream-tls): the room is there once the agent has closed the stream under the TLS', async () => {
    const cert = new CertStore({ dataDir: join(gateway.tmp, 'service-ca') }).issue('localhost')
    const service = createHttpsServer({ key: cert.keyPem, cert: cert.certPem }, (req, res) => { setTimeout(() => res.end(`tls at ${req.url}`), 100) })
    await new Promise<void>((resolve) => service.listen(0, '127.0.0.1', resolve))
    const port = (service.address() as AddressInfo).port
    const tls = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: ['tls-a', 'tls-b'].map((name) => `${name}:80:localhost:${port}`), command: 'http --upstream-tls' })
    try {
      await tls.urls()
      const stats = (name: string) => gateway.edge.poolStats(endpointNamed(gateway, name).id)
      const get = (name: string, path: string): Promise<string> => rawRequest(gateway.httpPort, `GET ${path} HTTP/1.1\r\nHost: ${name}.localhost\r\nConnection: close\r\n\r\n`)
      // Two requests at once to tls-a: its pool opens the session's two streams, TLS over each, and keeps them idle.
      const answers = await Promise.all([get('tls-a', '/t1'), get('tls-a', '/t2')])
      expect(answers[0]).toMatch(/^HTTP\/1\.1 200[^]*tls at \/t1$/)
      expect(answers[1]).toMatch(/^HTTP\/1\.1 200[^]*tls at \/t2$/)
      expect(stats('tls-a')?.connected).toBe(2)
      // tls-b needs one: one of tls-a's closes, and the dial is tried again once the agent has closed the channel.
      expect(await get('tls-b', '/t3')).toMatch(/^HTTP\/1\.1 200[^]*tls at \/t3$/)
      expect(stats('tls-a')?.connected).toBe(1)
    } finally {
      await tls.kill()
      service.closeAllConnections()
      service.close()
    }
  })
})
