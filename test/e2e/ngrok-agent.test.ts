// The official ngrok agent SDK (@ngrok/ngrok, pinned in package.json) against Porthole's agent listener: the same
// names, modules, registry and edge as an SSH client's forwards. Conformance: http with mapped options, tcp, tls
// passthrough, traffic policy, several listeners in one session, unbind, refusals in ngrok's error format, the
// admin view of the session, kill, revoked tokens, flow control with 100 MB each way, 200 concurrent requests,
// heartbeat loss and reconnect after a gateway restart.
import { createHash, randomBytes } from 'node:crypto'
import { createServer as createNetServer, connect as netConnect, type AddressInfo, type Server as NetServer, type Socket } from 'node:net'
import { createServer as createHttp2Server } from 'node:http2'
import { createServer as createTlsServer, connect as tlsConnect } from 'node:tls'
import type ngrok from '@ngrok/ngrok'
import WebSocket, { WebSocketServer } from 'ws'
import { request } from 'undici'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { eventually, fetchVia, ngrokSession, startTestGateway, startUpstream, type TestGateway } from './harness.js'

const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`

describe('ngrok agent SDK', () => {
  let gateway: TestGateway
  let upstream: Awaited<ReturnType<typeof startUpstream>>
  const sessions: ngrok.Session[] = []
  const session = async (options: Parameters<typeof ngrokSession>[1] = {}): Promise<ngrok.Session> => {
    const opened = await ngrokSession(gateway, options)
    sessions.push(opened)
    return opened
  }

  beforeAll(async () => {
    gateway = await startTestGateway()
    upstream = await startUpstream((req, res) => {
      res.setHeader('content-type', 'application/json')
      res.setHeader('x-upstream', 'yes')
      res.end(JSON.stringify({ url: req.url, headers: req.headers, body: 'x'.repeat(2000) }))
    })
  })
  afterEach(async () => {
    await Promise.all(sessions.splice(0).map((s) => s.close().catch(() => {})))
  })
  afterAll(async () => {
    await upstream.close()
    await gateway.stop()
  })

  const hostOf = (listener: ngrok.Listener): string => new URL(listener.url()!).hostname
  /** The gateway's view of an SDK session: the ngrok session that appeared since `before` (ids). The SDK's own
   *  close() leaves its connection to the heartbeat check, so earlier tests' sessions may still be listed. */
  const ids = (): Set<string> => new Set(gateway.sessions.sessions().map((info) => info.id))
  const infoOf = (before: Set<string>) => gateway.sessions.sessions().find((info) => info.clientType === 'ngrok' && !before.has(info.id))

  it('http with basic auth: a random name under the domain, refused without credentials', async () => {
    const listener = await (await session()).httpEndpoint().basicAuth('ann', 's3cret-pw').listenAndForward(`http://localhost:${upstream.port}`)
    expect(listener.url()).toMatch(new RegExp(`^https://[a-z0-9]+\\.localhost:${gateway.httpsPort}$`))
    const host = hostOf(listener)
    expect((await fetchVia(gateway, `http://${host}/x`)).status).toBe(401)
    const ok = await fetchVia(gateway, `http://${host}/x?y=1`, { headers: { authorization: basic('ann', 's3cret-pw') } })
    expect(ok.status).toBe(200)
    const seen = JSON.parse(ok.body) as { url: string, headers: Record<string, string> }
    expect(seen.url).toBe('/x?y=1')
    expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1')
  })

  it('a chosen domain, header modules, compression and a user-agent filter act as the SSH flags do', async () => {
    const listener = await (await session()).httpEndpoint().domain('sdk-mods.localhost')
      .requestHeader('X-Added', 'yes').removeRequestHeader('x-drop')
      .responseHeader('X-Served-By', 'porthole').removeResponseHeader('x-upstream')
      .compression().denyUserAgent('^curl/')
      .listenAndForward(`http://localhost:${upstream.port}`)
    expect(listener.url()).toBe(`https://sdk-mods.localhost:${gateway.httpsPort}`)
    const res = await fetchVia(gateway, 'http://sdk-mods.localhost/h', { headers: { 'x-drop': '1', 'accept-encoding': 'identity', 'user-agent': 'test' } })
    expect(res.status).toBe(200)
    const seen = JSON.parse(res.body) as { headers: Record<string, string> }
    expect(seen.headers['x-added']).toBe('yes')
    expect(seen.headers['x-drop']).toBeUndefined()
    expect(res.headers['x-served-by']).toBe('porthole')
    expect(res.headers['x-upstream']).toBeUndefined()
    const gz = await fetchVia(gateway, 'http://sdk-mods.localhost/h', { headers: { 'accept-encoding': 'gzip', 'user-agent': 'test' } })
    expect(gz.headers['content-encoding']).toBe('gzip')
    expect((await fetchVia(gateway, 'http://sdk-mods.localhost/h', { headers: { 'user-agent': 'curl/8.0' } })).status).toBe(403)
  })

  it('IP restrictions and a traffic policy document deny as they would for SSH', async () => {
    const s = await session()
    const denied = await s.httpEndpoint().denyCidr('127.0.0.0/8').listenAndForward(`http://localhost:${upstream.port}`)
    expect((await fetchVia(gateway, `http://${hostOf(denied)}/`)).status).toBe(403)
    const policy = JSON.stringify({ on_http_request: [{ expressions: ["req.url.path.startsWith('/admin')"], actions: [{ type: 'deny', config: { status_code: 418 } }] }] })
    const policed = await s.httpEndpoint().trafficPolicy(policy).listenAndForward(`http://localhost:${upstream.port}`)
    expect((await fetchVia(gateway, `http://${hostOf(policed)}/admin/x`)).status).toBe(418)
    expect((await fetchVia(gateway, `http://${hostOf(policed)}/public`)).status).toBe(200)
  })

  it('an option Porthole cannot honour, or a bad policy, is refused in ngrok\'s error format and nothing is bound', async () => {
    const before = ids()
    const s = await session()
    await expect(s.httpEndpoint().mutualTlsca(Buffer.from(gateway.caPem)).listenAndForward(`http://localhost:${upstream.port}`)).rejects.toThrow(/PH_1071: this gateway cannot honour ngrok option .*MutualTLSCA/)
    await expect(s.httpEndpoint().trafficPolicy('on_http_request: [{expressions: ["req.nope == 1"], actions: [{type: deny}]}]').listenAndForward(`http://localhost:${upstream.port}`)).rejects.toThrow(/PH_1008/)
    await expect(s.httpEndpoint().domain('bad_name!.localhost').listenAndForward(`http://localhost:${upstream.port}`)).rejects.toThrow(/PH_1072/)
    expect(infoOf(before)!.endpoints).toEqual([])
    expect(gateway.registry.lookup('bad_name!.localhost').state).toBe('unknown')
  })

  it('several listeners in one session; closing one unbinds only it; the admin view lists them and the client', async () => {
    const before = ids()
    const s = await session()
    const one = await s.httpEndpoint().domain('sdk-one.localhost').listenAndForward(`http://localhost:${upstream.port}`)
    const two = await s.httpEndpoint().domain('sdk-two.localhost').listenAndForward(`http://localhost:${upstream.port}`)
    const listed = infoOf(before)!
    expect(listed).toMatchObject({ clientType: 'ngrok', credential: { kind: 'anonymous', id: null }, remoteAddr: '127.0.0.1' })
    expect(listed.clientVersion).toMatch(/^ngrok-javascript 1\.7\.0$/)
    expect(listed.endpoints.map((e) => e.host).sort()).toEqual(['sdk-one.localhost', 'sdk-two.localhost'])
    // The admin API lists it beside SSH sessions, with its client type.
    const { key } = await gateway.identity.createApiKey({ description: 'sdk-test' })
    const api = await request(`http://127.0.0.1:${gateway.apiPort}/api/sessions/${listed.id}`, { headers: { authorization: `Bearer ${key}` } })
    expect(await api.body.json()).toMatchObject({ id: listed.id, client_type: 'ngrok', client_version: 'ngrok-javascript 1.7.0', credential: { kind: 'anonymous' } })
    await one.close()
    await eventually(async () => (await fetchVia(gateway, 'http://sdk-one.localhost/')).headers['porthole-error-code'] === 'PH_3001')
    expect((await fetchVia(gateway, 'http://sdk-two.localhost/')).status).toBe(200)
    expect(two.url()).toBe(`https://sdk-two.localhost:${gateway.httpsPort}`)
    expect(infoOf(before)!.endpoints.map((e) => e.host)).toEqual(['sdk-two.localhost'])
  })

  it('kill from the admin side stops each tunnel (the SDK drops its listener) and ends the session', async () => {
    const before = ids()
    const s = await session()
    await s.httpEndpoint().domain('sdk-kill.localhost').listenAndForward(`http://localhost:${upstream.port}`)
    const info = infoOf(before)!
    expect(await gateway.sessions.kill(info.id)).toBe(true)
    expect(gateway.sessions.sessions().some((x) => x.id === info.id)).toBe(false)
    expect((await fetchVia(gateway, 'http://sdk-kill.localhost/')).headers['porthole-error-code']).toBe('PH_3001')
    // The SDK reconnects on its own (its token is still good), but the stopped tunnel is not bound again: once a
    // new listener is bound on the reconnected session (the SDK re-binds old tunnels before that), it is the only one.
    await eventually(() => infoOf(new Set([...before, info.id])))
    // A listen sent in the instant before the SDK swaps in its new session goes to the dead one and never answers
    // (an SDK quirk): such an attempt is given up after a few seconds and tried again.
    const listen = (): Promise<ngrok.Listener | undefined> => s.httpEndpoint().domain('sdk-after-kill.localhost').listenAndForward(`http://localhost:${upstream.port}`).catch(() => undefined)
    const later = await eventually(() => Promise.race([listen(), new Promise<undefined>((resolve) => setTimeout(resolve, 3000, undefined))]), 30_000)
    expect(later.url()).toBe(`https://sdk-after-kill.localhost:${gateway.httpsPort}`)
    expect(infoOf(new Set([...before, info.id]))!.endpoints.map((e) => e.host)).toEqual(['sdk-after-kill.localhost'])
    expect((await fetchVia(gateway, 'http://sdk-kill.localhost/')).headers['porthole-error-code']).toBe('PH_3001')
  })

  it('the SDK may dial the HTTPS port instead: a ClientHello naming the gateway, not an endpoint, reaches the agent listener', async () => {
    const before = ids()
    const s = await session({ serverAddr: `localhost:${gateway.httpsPort}` })
    const listener = await s.httpEndpoint().domain('sdk-via-https').listenAndForward(`http://localhost:${upstream.port}`)
    expect(infoOf(before)).toMatchObject({ clientType: 'ngrok' })
    expect((await fetchVia(gateway, `${listener.url()}/via`)).status).toBe(200)
  })

  it('tcp: a port from the pool, a stream per connection, PROXY-free and byte exact', async () => {
    const echo = await startEcho()
    try {
      const listener = await (await session()).tcpEndpoint().listenAndForward(`tcp://localhost:${echo.port}`)
      const url = new URL(listener.url()!)
      expect(url.protocol).toBe('tcp:')
      const socket = netConnect(Number(url.port), '127.0.0.1')
      socket.end('ping over tcp')
      expect(await collect(socket)).toBe('ping over tcp')
    } finally {
      echo.server.close()
    }
  })

  it('tls: passthrough by SNI to the agent\'s TLS service, which presents its own certificate', async () => {
    const { certPem, keyPem } = await selfSigned(gateway, 'sdk-tls.localhost')
    const service = createTlsServer({ key: keyPem, cert: certPem }, (socket) => socket.end('hello from tls service'))
    await new Promise<void>((resolve) => service.listen(0, '127.0.0.1', resolve))
    try {
      const listener = await (await session()).tlsEndpoint().domain('sdk-tls.localhost').listenAndForward(`tls://localhost:${(service.address() as AddressInfo).port}`)
      expect(listener.url()).toBe(`tls://sdk-tls.localhost:${gateway.httpsPort}`)
      const socket = tlsConnect({ port: gateway.httpsPort, host: '127.0.0.1', servername: 'sdk-tls.localhost', ca: certPem })
      expect(await collect(socket)).toBe('hello from tls service')
      expect(socket.getPeerCertificate().fingerprint256).toBe(new (await import('node:crypto')).X509Certificate(certPem).fingerprint256)
    } finally {
      service.close()
    }
  })

  it('200 concurrent requests all arrive, each answered whole', async () => {
    const listener = await (await session()).httpEndpoint().listenAndForward(`http://localhost:${upstream.port}`)
    const host = hostOf(listener)
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => fetchVia(gateway, `http://${host}/n/${i}`)))
    results.forEach((res, i) => {
      expect(res.status).toBe(200)
      expect((JSON.parse(res.body) as { url: string }).url).toBe(`/n/${i}`)
    })
  })

  it('flow control: 100 MB each way at once over one tcp stream, SHA-256 equal', async () => {
    const SIZE = 100 * 1024 * 1024
    const chunk = randomBytes(1024 * 1024)
    const expected = createHash('sha256')
    for (let sent = 0; sent < SIZE; sent += chunk.length) expected.update(chunk)
    const digest = expected.digest('hex')
    // The service hashes what it receives while it sends 100 MB of its own.
    let serviceDigest: Promise<string> = Promise.resolve('')
    const service = createNetServer({ allowHalfOpen: true }, (socket) => {
      serviceDigest = new Promise((resolve) => {
        const hash = createHash('sha256')
        socket.on('data', (data: Buffer) => hash.update(data))
        socket.on('end', () => resolve(hash.digest('hex')))
      })
      pump(socket, chunk, SIZE)
    })
    await new Promise<void>((resolve) => service.listen(0, '127.0.0.1', resolve))
    try {
      const listener = await (await session()).tcpEndpoint().listenAndForward(`tcp://localhost:${(service.address() as AddressInfo).port}`)
      // Both ends keep writing after the other's FIN (half-close), as the 100 MB each way need.
      const socket = netConnect({ port: Number(new URL(listener.url()!).port), host: '127.0.0.1', allowHalfOpen: true })
      const received = new Promise<string>((resolve, reject) => {
        const hash = createHash('sha256')
        socket.on('data', (data: Buffer) => hash.update(data))
        socket.on('end', () => resolve(hash.digest('hex')))
        socket.on('error', reject)
      })
      pump(socket, chunk, SIZE)
      expect(await received).toBe(digest)
      await eventually(async () => (await serviceDigest) !== '')
      expect(await serviceDigest).toBe(digest)
    } finally {
      service.close()
    }
  }, 120_000)
})

describe('ngrok agent SDK: more options and streams', () => {
  let gateway: TestGateway
  const sessions: ngrok.Session[] = []
  const session = async (): Promise<ngrok.Session> => {
    const opened = await ngrokSession(gateway)
    sessions.push(opened)
    return opened
  }
  beforeAll(async () => { gateway = await startTestGateway() })
  afterEach(async () => { await Promise.all(sessions.splice(0).map((s) => s.close().catch(() => {}))) })
  afterAll(async () => { await gateway.stop() })

  it('webhook verification: GitHub\'s documented delivery passes, a tampered one is refused before the service', async () => {
    // https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries (the example there).
    const received: string[] = []
    const upstream = await startUpstream((req, res) => {
      let body = ''
      req.setEncoding('utf8').on('data', (chunk: string) => { body += chunk })
      req.on('end', () => { received.push(body); res.end('delivered') })
    })
    try {
      const listener = await (await session()).httpEndpoint().webhookVerification('github', "It's a Secret to Everybody").listenAndForward(`http://localhost:${upstream.port}`)
      const signature = 'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17'
      const ok = await fetchVia(gateway, `${listener.url()}/hook`, { method: 'POST', headers: { 'x-hub-signature-256': signature }, body: 'Hello, World!' })
      expect(ok.body).toBe('delivered')
      const tampered = await fetchVia(gateway, `${listener.url()}/hook`, { method: 'POST', headers: { 'x-hub-signature-256': signature }, body: 'Hello, World?' })
      expect(tampered.headers['porthole-error-code']).toBe('PH_3105')
      expect(received).toEqual(['Hello, World!'])
    } finally {
      await upstream.close()
    }
  })

  it('OAuth with the user\'s own app sends visitors to the provider; without one it is refused', async () => {
    const s = await session()
    const listener = await s.httpEndpoint().oauth('github', undefined, undefined, undefined, 'my-client-id', 'my-client-secret').listenAndForward('http://localhost:9')
    const res = await fetchVia(gateway, `${listener.url()}/private`)
    expect(res.status).toBe(302)
    expect(String(res.headers.location)).toMatch(/^https:\/\/github\.com\/login\/oauth\/authorize\?.*client_id=my-client-id/)
    await expect(s.httpEndpoint().oauth('github').listenAndForward('http://localhost:9')).rejects.toThrow(/PH_1071: .*OAuth.*client_id/)
  })

  it('a WebSocket and a 20 MB upload go through a proxy stream intact', async () => {
    const upstream = await startUpstream((req, res) => {
      const hash = createHash('sha256')
      req.on('data', (chunk: Buffer) => hash.update(chunk))
      req.on('end', () => res.end(hash.digest('hex')))
    })
    const wss = new WebSocketServer({ server: upstream.server })
    wss.on('connection', (ws) => ws.on('message', (data) => ws.send(`echo ${String(data)}`)))
    try {
      const listener = await (await session()).httpEndpoint().listenAndForward(`http://localhost:${upstream.port}`)
      const host = new URL(listener.url()!).hostname
      const body = randomBytes(20 * 1024 * 1024)
      const res = await fetchVia(gateway, `http://${host}/upload`, { method: 'POST', body: body as unknown as string })
      expect(res.body).toBe(createHash('sha256').update(body).digest('hex'))
      const ws = new WebSocket(`ws://127.0.0.1:${gateway.httpPort}/ws`, { headers: { host } })
      await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
      const reply = new Promise<string>((resolve) => ws.once('message', (data) => resolve(String(data))))
      ws.send('through the SDK')
      expect(await reply).toBe('echo through the SDK')
      ws.close()
    } finally {
      wss.close()
      await upstream.close()
    }
  })

  it('appProtocol http2 (ForwardsProto): the edge speaks HTTP/2 to an h2c service through the agent', async () => {
    const service = createHttp2Server((req, res) => res.end(`h2 ${req.httpVersion}`))
    await new Promise<void>((resolve) => service.listen(0, '127.0.0.1', resolve))
    try {
      const listener = await (await session()).httpEndpoint().appProtocol('http2').listenAndForward(`http://localhost:${(service.address() as AddressInfo).port}`)
      expect((await fetchVia(gateway, listener.url()!)).body).toBe('h2 2.0')
    } finally {
      service.close()
    }
  })

  it('tcp with PROXY protocol v1: the agent\'s service learns the public client', async () => {
    let received = ''
    const service = createNetServer((socket) => {
      socket.setEncoding('utf8')
      socket.on('data', (chunk: string) => {
        received += chunk
        if (received.includes('payload')) socket.end('ok')
      })
    })
    await new Promise<void>((resolve) => service.listen(0, '127.0.0.1', resolve))
    try {
      const listener = await (await session()).tcpEndpoint().proxyProto('1').listenAndForward(`tcp://localhost:${(service.address() as AddressInfo).port}`)
      const publicPort = Number(new URL(listener.url()!).port)
      const socket = netConnect(publicPort, '127.0.0.1')
      const localPort = await new Promise<number>((resolve) => socket.once('connect', () => resolve(socket.localPort!)))
      socket.write('payload')
      expect(await collect(socket)).toBe('ok')
      expect(received).toMatch(new RegExp(`^PROXY TCP4 127\\.0\\.0\\.1 127\\.0\\.0\\.1 ${localPort} ${publicPort}\\r\\npayload$`))
    } finally {
      service.close()
    }
  })
})

describe('ngrok agent SDK: accounts, liveness and restarts', () => {
  it('an account authtoken logs in as the account; a wrong one is refused; revoking ends the live session and refuses it after', async () => {
    const gateway = await startTestGateway()
    const upstream = await startUpstream()
    try {
      await gateway.identity.createAccount('ann')
      const { token, record } = await gateway.identity.createToken('ann', { acl: ['bind:sdk-acl'] })
      // Another account's credential keeps the gateway out of anonymous mode once ann's token is revoked.
      await gateway.identity.createAccount('bob')
      await gateway.identity.createToken('bob')
      await expect(ngrokSession(gateway, { authtoken: 'phat_wrong.nope' })).rejects.toThrow(/PH_1024/)
      const s = await ngrokSession(gateway, { authtoken: token })
      try {
        await expect(s.httpEndpoint().domain('elsewhere.localhost').listenAndForward(`http://localhost:${upstream.port}`)).rejects.toThrow(/PH_1025: not allowed to bind elsewhere\.localhost/)
        const listener = await s.httpEndpoint().domain('sdk-acl.localhost').listenAndForward(`http://localhost:${upstream.port}`)
        expect(listener.url()).toBe(`https://sdk-acl.localhost:${gateway.httpsPort}`)
        const info = gateway.sessions.sessions().find((x) => x.clientType === 'ngrok')!
        expect(info).toMatchObject({ account: 'ann', credential: { kind: 'token', id: record.id } })
        await gateway.identity.revokeToken(record.id)
        await eventually(() => !gateway.sessions.sessions().some((x) => x.id === info.id))
        expect((await fetchVia(gateway, 'http://sdk-acl.localhost/')).headers['porthole-error-code']).toBe('PH_3001')
        // The SDK keeps reconnecting with the revoked token: refused, as a new agent with it is.
        await s.close().catch(() => {})
        await expect(ngrokSession(gateway, { authtoken: token })).rejects.toThrow(/PH_1024/)
        expect(gateway.sessions.sessions().filter((x) => x.clientType === 'ngrok')).toEqual([])
      } finally {
        await s.close().catch(() => {})
      }
    } finally {
      await upstream.close()
      await gateway.stop()
    }
  })

  it('a session whose heartbeats stop (the SDK\'s own close() leaves its connection open) is dropped by the gateway', async () => {
    // The SDK announces a 1 s interval: the gateway waits two of them (more than its own tolerance, 0.6 s here).
    const gateway = await startTestGateway({ tune: { keepaliveIntervalMs: 300, keepaliveCountMax: 2 } })
    const upstream = await startUpstream((_req, res) => res.end('up'))
    try {
      const s = await ngrokSession(gateway, { heartbeatIntervalMs: 1 })
      const listener = await s.httpEndpoint().listenAndForward(`http://localhost:${upstream.port}`)
      const info = gateway.sessions.sessions().find((x) => x.clientType === 'ngrok')!
      // Alive past its own interval and the gateway's tolerance: its beats and the echoes of the gateway's arrive.
      await new Promise((resolve) => setTimeout(resolve, 2500))
      expect(gateway.sessions.sessions().some((x) => x.id === info.id)).toBe(true)
      expect((await fetchVia(gateway, listener.url()!)).body).toBe('up')
      await s.close()
      await eventually(() => !gateway.sessions.sessions().some((x) => x.id === info.id))
      expect((await fetchVia(gateway, listener.url()!)).headers['porthole-error-code']).toBe('PH_3001')
    } finally {
      await upstream.close()
      await gateway.stop()
    }
  })

  it('reconnects after a gateway restart and gets the same URL back', async () => {
    const first = await startTestGateway()
    const upstream = await startUpstream((_req, res) => res.end('still here'))
    const ports = { ssh: first.sshPort, http: first.httpPort, https: first.httpsPort, agent: first.agentPort! }
    const s = await ngrokSession(first)
    let second: TestGateway | undefined
    try {
      const listener = await s.httpEndpoint().listenAndForward(`http://localhost:${upstream.port}`)
      const url = listener.url()!
      expect((await fetchVia(first, url)).body).toBe('still here')
      await first.close()
      second = await startTestGateway({
        dataDir: first.dataDir,
        flags: { sshAddr: `127.0.0.1:${ports.ssh}`, httpAddr: `127.0.0.1:${ports.http}`, httpsAddr: `127.0.0.1:${ports.https}`, agentAddr: `127.0.0.1:${ports.agent}` },
      })
      const again = second
      await eventually(async () => (await fetchVia(again, url)).body === 'still here', 30_000)
      expect(listener.url()).toBe(url)
    } finally {
      await s.close().catch(() => {})
      await upstream.close()
      await second?.stop()
      await first.stop()
    }
  }, 60_000)
})

/** Writes `total` bytes of `chunk` repeated, with backpressure, then ends. */
function pump (socket: Socket, chunk: Buffer, total: number): void {
  let sent = 0
  const write = (): void => {
    while (sent < total) {
      sent += chunk.length
      if (!socket.write(chunk)) return void socket.once('drain', write)
    }
    socket.end()
  }
  write()
}

function collect (socket: Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = ''
    socket.setEncoding('utf8')
    socket.on('data', (data: string) => { text += data })
    socket.on('end', () => resolve(text))
    socket.on('error', reject)
  })
}

async function startEcho (): Promise<{ server: NetServer, port: number }> {
  const server = createNetServer({ allowHalfOpen: true }, (socket) => socket.pipe(socket))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { server, port: (server.address() as AddressInfo).port }
}

/** A certificate for `name` from a CA of the test's own (not the gateway's: passthrough never terminates). */
async function selfSigned (_gateway: TestGateway, name: string): Promise<{ certPem: string, keyPem: string }> {
  const forge = (await import('node-forge')).default
  const keys = forge.pki.rsa.generateKeyPair(2048)
  const cert = forge.pki.createCertificate()
  cert.publicKey = keys.publicKey
  cert.serialNumber = '01'
  cert.validity.notBefore = new Date(Date.now() - 60_000)
  cert.validity.notAfter = new Date(Date.now() + 86_400_000)
  cert.setSubject([{ name: 'commonName', value: name }])
  cert.setIssuer([{ name: 'commonName', value: name }])
  cert.setExtensions([{ name: 'subjectAltName', altNames: [{ type: 2, value: name }] }])
  cert.sign(keys.privateKey, forge.md.sha256.create())
  return { certPem: forge.pki.certificateToPem(cert), keyPem: forge.pki.privateKeyToPem(keys.privateKey) }
}
