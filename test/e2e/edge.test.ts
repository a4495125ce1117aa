// The HTTP edge as a reverse proxy, through a real OpenSSH tunnel: error codes for broken, slow and
// oversized upstreams and requests; hop-by-hop headers; Host and Location rewriting.
import { createServer, type Server } from 'node:net'
import type { AddressInfo } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connect, fetchVia, rawRequest, startTestGateway, startUpstream, type SshClient, type TestGateway } from './harness.js'

async function rawUpstream (onConnection: (socket: import('node:net').Socket) => void): Promise<{ server: Server, port: number }> {
  const server = createServer(onConnection)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { server, port: (server.address() as AddressInfo).port }
}

describe('http edge', () => {
  let gateway: TestGateway
  const clients: SshClient[] = []
  const servers: Server[] = []
  const expose = async (name: string, port: number, command = 'http'): Promise<string> => {
    const client = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`${name}:80:localhost:${port}`], command })
    clients.push(client)
    return (await client.urls())[0]!
  }

  beforeAll(async () => {
    gateway = await startTestGateway({ tune: { upstreamTimeoutMs: 500 } })
  })
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.kill('SIGKILL')))
    for (const server of servers) server.close()
    await gateway.stop()
  })

  it('answers PH_3003 when the upstream speaks garbage, and the terminal logs the code', async () => {
    const garbage = await rawUpstream((socket) => socket.end('this is not http\r\n\r\n'))
    servers.push(garbage.server)
    const url = await expose('garbage', garbage.port)
    const res = await fetchVia(gateway, `${url}/`)
    expect(res.status).toBe(502)
    expect(res.headers['porthole-error-code']).toBe('PH_3003')
    expect(res.body).toMatch(/^502 Bad Gateway\nPH_3003: the upstream service sent an invalid HTTP response/)
    await clients.at(-1)!.waitFor(/GET \/ 502 \d+ms PH_3003/)
  })

  it('answers PH_3004 when the upstream does not answer in time', async () => {
    const silent = await rawUpstream(() => {})
    servers.push(silent.server)
    const url = await expose('silent', silent.port)
    const res = await fetchVia(gateway, `${url}/`)
    expect(res.status).toBe(504)
    expect(res.headers['porthole-error-code']).toBe('PH_3004')
  })

  it('answers PH_3005 (431) for oversized request headers', async () => {
    const app = await startUpstream()
    servers.push(app.server)
    const url = await expose('bighead', app.port)
    const res = await fetchVia(gateway, `${url}/`, { headers: { 'x-big': 'a'.repeat(20_000) } })
    expect(res.status).toBe(431)
    expect(res.headers['porthole-error-code']).toBe('PH_3005')
  })

  it('answers PH_3006 for oversized upstream response headers', async () => {
    const app = await startUpstream((_req, res) => { res.setHeader('x-huge', 'b'.repeat(40_000)); res.end('x') })
    servers.push(app.server)
    const url = await expose('bigresp', app.port)
    const res = await fetchVia(gateway, `${url}/`)
    expect(res.status).toBe(502)
    expect(res.headers['porthole-error-code']).toBe('PH_3006')
  })

  it('keeps hop-by-hop headers, and those named in Connection, on their hop', async () => {
    const app = await startUpstream((req, res) => {
      res.setHeader('x-internal', 'secret')
      res.setHeader('connection', 'x-internal')
      res.end(JSON.stringify(req.headers))
    })
    servers.push(app.server)
    const url = await expose('hops', app.port)
    // A raw request: HTTP clients refuse to send these headers themselves.
    const reply = await rawRequest(gateway.httpPort, `GET / HTTP/1.1\r\nHost: ${new URL(url).host}\r\nConnection: close, x-private\r\n` +
      'X-Private: 1\r\nTE: trailers\r\nProxy-Authorization: Basic eA==\r\nKeep-Alive: timeout=5\r\n\r\n')
    const [head, body] = reply.split('\r\n\r\n') as [string, string]
    expect(head).toMatch(/^HTTP\/1\.1 200 OK/)
    expect(head.toLowerCase()).not.toContain('x-internal')
    const seen = JSON.parse(body)
    expect(seen['x-private']).toBeUndefined()
    expect(seen.te).toBeUndefined()
    expect(seen['proxy-authorization']).toBeUndefined()
    expect(seen['keep-alive']).toBeUndefined()
  })

  it('rewrites Host for the upstream and Location back to the public URL', async () => {
    const app = await startUpstream((req, res) => {
      res.writeHead(302, { location: `http://${req.headers.host}/next?a=1`, 'x-seen-host': String(req.headers.host) })
      res.end()
    })
    servers.push(app.server)
    const url = await expose('rehost', app.port, 'http --host-header rewrite')
    const res = await fetchVia(gateway, `${url}/`)
    expect(res.status).toBe(302)
    expect(res.headers['x-seen-host']).toBe('localhost')
    expect(res.headers.location).toBe(`${url}/next?a=1`)
    const fixed = await expose('fixedhost', app.port, 'http --host-header app.internal:3000')
    const res2 = await fetchVia(gateway, `${fixed}/`)
    expect(res2.headers['x-seen-host']).toBe('app.internal:3000')
    expect(res2.headers.location).toBe(`${fixed}/next?a=1`)
  })

  it('does not let bytes after a refused upgrade reach the upstream as a second request (smuggling regression)', async () => {
    const seen: { url: string, user?: string }[] = []
    const app = await startUpstream((req, res) => {
      seen.push({ url: req.url ?? '', user: req.headers['x-internal-user'] as string | undefined })
      res.setHeader('porthole-error-code', 'PH_3001')
      res.end('no upgrade here')
    })
    servers.push(app.server)
    const url = await expose('smuggle', app.port, 'http --request-header-remove x-internal-user')
    const host = new URL(url).host
    const reply = await rawRequest(gateway.httpPort, `GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n` +
      `GET /admin HTTP/1.1\r\nHost: ${host}\r\nX-Internal-User: root\r\n\r\n`)
    expect(reply).toMatch(/^HTTP\/1\.1 200 OK\r\n/)
    expect(reply.toLowerCase()).not.toContain('porthole-error-code')
    expect(reply).toContain('no upgrade here')
    expect(seen).toEqual([{ url: '/', user: undefined }])
  })

  it('answers 400 PH_3007 to a Host that is not a host name', async () => {
    const reply = await rawRequest(gateway.httpPort, 'GET / HTTP/1.1\r\nHost: evil.example/.team.localhost\r\nConnection: close\r\n\r\n')
    expect(reply).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n[\s\S]*porthole-error-code: PH_3007/)
  })

  it('answers PH_3007 to a malformed request', async () => {
    const reply = await rawRequest(gateway.httpPort, 'GET / HTTP/1.1\r\nHost: x.localhost\r\nBad Header\r\n\r\n')
    expect(reply).toMatch(/^HTTP\/1\.1 400 Bad Request\r\nporthole-error-code: PH_3007\r\n/)
  })
})
