// Request targets and authorities a hostile client chooses (issue 9 items 3 and 9): an absolute-form target
// must not slip past path rules or reach the upstream as-is, HTTP/2 :authority and Host must not route to one
// endpoint while policy sees another, a TLS connection serves only the endpoint its SNI was made for (and never a
// --schemes http endpoint), and malformed authorities (two Hosts, bad ports) or unserved target forms
// (OPTIONS *, CONNECT) are the client's error with a code, never a 502 and never an upstream hit.
// Raw sockets, tls.connect and node:http2 client frames against the real gateway and a real OpenSSH tunnel.
import { connect as h2Connect, type ClientHttp2Session, type OutgoingHttpHeaders } from 'node:http2'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connect, rawRequest, startTestGateway, startUpstream, type SshClient, type TestGateway } from '../e2e/harness.js'

const DENY_ADMIN = `on_http_request:
  - expressions: ["req.url.path.startsWith('/admin')"]
    actions: [{ type: deny }]
`

interface H2Answer { status: number, code: string | undefined, body: string }

function h2Request (session: ClientHttp2Session, headers: OutgoingHttpHeaders): Promise<H2Answer> {
  return new Promise((resolve, reject) => {
    const stream = session.request(headers, { endStream: headers[':method'] !== 'CONNECT' })
    if (headers[':method'] === 'CONNECT') stream.end()
    let status = 0
    let code: string | undefined
    let body = ''
    stream.on('response', (h) => {
      status = Number(h[':status'])
      code = h['porthole-error-code'] as string | undefined
    })
    stream.setEncoding('utf8').on('data', (t: string) => { body += t })
    stream.once('end', () => resolve({ status, code, body }))
    stream.once('error', reject)
  })
}

describe('request targets and authorities', () => {
  let gateway: TestGateway
  let upstream: Awaited<ReturnType<typeof startUpstream>>
  const clients: SshClient[] = []
  /** Every request the upstream received: method, target and Host. */
  const seen: { method: string, url: string, host: string | undefined, forwardedHost: string | undefined }[] = []
  const reached = (marker: string): unknown[] => seen.filter((s) => s.url.includes(marker))
  let http: (name: string) => string // name -> authority on the plain HTTP port
  let https: (name: string) => string
  const open = async (forwards: string[], command: string, stdin?: string): Promise<SshClient> => {
    const client = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards, command })
    if (stdin !== undefined) client.proc.stdin!.end(stdin)
    clients.push(client)
    await client.waitFor(new RegExp(`(?:Forwarding[\\s\\S]*?){${forwards.length}}`))
    return client
  }
  const tls = (servername: string): { servername: string, ca: string } => ({ servername, ca: gateway.caPem })
  const h2 = (servername: string): ClientHttp2Session => h2Connect(`https://127.0.0.1:${gateway.httpsPort}`, tls(servername))

  beforeAll(async () => {
    gateway = await startTestGateway()
    upstream = await startUpstream((req, res) => {
      seen.push({ method: req.method!, url: req.url!, host: req.headers.host, forwardedHost: req.headers['x-forwarded-host'] as string | undefined })
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ url: req.url, host: req.headers.host }))
    })
    http = (name) => `${name}.localhost:${gateway.httpPort}`
    https = (name) => `${name}.localhost:${gateway.httpsPort}`
    await Promise.all([
      open([`guard:80:localhost:${upstream.port}`], 'http --traffic-policy-file -', DENY_ADMIN),
      open([`other:80:localhost:${upstream.port}`, `*.wild:80:localhost:${upstream.port}`], 'http'),
      open([`plain:80:localhost:${upstream.port}`], 'http --schemes http'),
    ])
  })
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.kill('SIGKILL')))
    await upstream.close()
    await gateway.stop()
  })

  it('absolute-form target under a deny rule: 403 by the policy, the upstream never sees it', async () => {
    const reply = await rawRequest(gateway.httpPort, `GET http://${http('guard')}/admin/abs1 HTTP/1.1\r\nHost: ${http('guard')}\r\nConnection: close\r\n\r\n`)
    expect(reply).toMatch(/^HTTP\/1\.1 403 [\s\S]*porthole-error-code: PH_3102/)
    // The target's authority routes, not Host: naming a policy-free endpoint in Host changes nothing.
    const viaHost = await rawRequest(gateway.httpPort, `GET http://${http('guard')}/admin/abs2 HTTP/1.1\r\nHost: ${http('other')}\r\nConnection: close\r\n\r\n`)
    expect(viaHost).toMatch(/^HTTP\/1\.1 403 [\s\S]*porthole-error-code: PH_3102/)
    const upper = await rawRequest(gateway.httpPort, `GET HTTP://${http('GUARD')}/admin/abs3 HTTP/1.1\r\nHost: ${http('guard')}\r\nConnection: close\r\n\r\n`)
    expect(upper).toMatch(/^HTTP\/1\.1 403 [\s\S]*porthole-error-code: PH_3102/)
    const upgrade = await rawRequest(gateway.httpPort, `GET http://${http('guard')}/admin/abs4 HTTP/1.1\r\nHost: ${http('other')}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`)
    expect(upgrade).toMatch(/^HTTP\/1\.1 403 [\s\S]*porthole-error-code: PH_3102/)
    expect(reached('/admin/abs')).toEqual([])
  })

  it('absolute-form target allowed: the upstream gets the origin-form path and the target\'s authority as Host', async () => {
    const reply = await rawRequest(gateway.httpPort, `GET http://${http('guard')}/ok-abs?q=1 HTTP/1.1\r\nHost: ${http('other')}\r\nConnection: close\r\n\r\n`)
    expect(reply).toMatch(/^HTTP\/1\.1 200 /)
    expect(reached('/ok-abs')).toEqual([{ method: 'GET', url: '/ok-abs?q=1', host: http('guard'), forwardedHost: http('guard') }])
    const bare = await rawRequest(gateway.httpPort, `GET http://${http('guard')} HTTP/1.1\r\nHost: ${http('guard')}\r\nConnection: close\r\n\r\n`)
    expect(bare).toMatch(/^HTTP\/1\.1 200 [\s\S]*"url":"\/"/)
  })

  it('absolute-form target of another scheme than the connection\'s: 421, nothing upstream', async () => {
    const reply = await rawRequest(gateway.httpPort, `GET https://${http('guard')}/scheme-abs HTTP/1.1\r\nHost: ${http('guard')}\r\nConnection: close\r\n\r\n`)
    expect(reply).toMatch(/^HTTP\/1\.1 421 [\s\S]*porthole-error-code: PH_3015/)
    const ftp = await rawRequest(gateway.httpPort, `GET ftp://${http('guard')}/scheme-abs HTTP/1.1\r\nHost: ${http('guard')}\r\nConnection: close\r\n\r\n`)
    expect(ftp).toMatch(/^HTTP\/1\.1 400 [\s\S]*porthole-error-code: PH_3014/)
    const userinfo = await rawRequest(gateway.httpPort, `GET http://x@${http('guard')}/scheme-abs HTTP/1.1\r\nHost: ${http('guard')}\r\nConnection: close\r\n\r\n`)
    expect(userinfo).toMatch(/^HTTP\/1\.1 400 [\s\S]*porthole-error-code: PH_3013/)
    expect(reached('/scheme-abs')).toEqual([])
  })

  it('HTTP/2: :authority routes, and a Host naming another endpoint is refused rather than routed', async () => {
    const session = h2('guard.localhost')
    try {
      const split = await h2Request(session, { ':path': '/admin/h2', ':authority': https('guard'), host: https('other') })
      expect([split.status, split.code]).toEqual([400, 'PH_3012'])
      const ok = await h2Request(session, { ':path': '/ok-h2', ':authority': https('guard'), host: https('GUARD') })
      expect(ok.status).toBe(200)
      const denied = await h2Request(session, { ':path': '/admin/h2', ':authority': https('guard') })
      expect([denied.status, denied.code]).toEqual([403, 'PH_3102'])
      expect(reached('/admin/h2')).toEqual([])
      expect(reached('/ok-h2')).toEqual([{ method: 'GET', url: '/ok-h2', host: https('guard'), forwardedHost: https('guard') }])
    } finally {
      session.close()
    }
  })

  it('HTTPS: a Host (or :authority) of another endpoint than the SNI name answers 421; a wildcard\'s own names share a connection', async () => {
    const h1 = await rawRequest(gateway.httpsPort, `GET /sni-h1 HTTP/1.1\r\nHost: ${https('other')}\r\nConnection: close\r\n\r\n`, tls('guard.localhost'))
    expect(h1).toMatch(/^HTTP\/1\.1 421 [\s\S]*porthole-error-code: PH_3015/)
    const session = h2('guard.localhost')
    try {
      const answer = await h2Request(session, { ':path': '/sni-h2', ':authority': https('other') })
      expect([answer.status, answer.code]).toEqual([421, 'PH_3015'])
      const unbound = await h2Request(session, { ':path': '/sni-h2', ':authority': https('nobody') })
      expect([unbound.status, unbound.code]).toEqual([421, 'PH_3015'])
    } finally {
      session.close()
    }
    expect(reached('/sni-')).toEqual([])
    // Browsers coalesce names a certificate covers onto one connection: *.wild's names are one endpoint's.
    const wild = h2('a.wild.localhost')
    try {
      expect((await h2Request(wild, { ':path': '/coalesced', ':authority': https('b.wild') })).status).toBe(200)
      expect(reached('/coalesced')).toEqual([{ method: 'GET', url: '/coalesced', host: https('b.wild'), forwardedHost: https('b.wild') }])
    } finally {
      wild.close()
    }
  })

  it('--schemes http endpoint over HTTPS: refused through another name\'s connection, no upstream hit', async () => {
    await expect(rawRequest(gateway.httpsPort, `GET /tls-plain HTTP/1.1\r\nHost: ${https('plain')}\r\nConnection: close\r\n\r\n`, tls('plain.localhost'))).rejects.toThrow()
    const reply = await rawRequest(gateway.httpsPort, `GET /tls-plain HTTP/1.1\r\nHost: ${https('plain')}\r\nConnection: close\r\n\r\n`, tls('guard.localhost'))
    expect(reply).toMatch(/^HTTP\/1\.1 421 /)
    expect(reached('/tls-plain')).toEqual([])
  })

  it('--schemes http endpoint over HTTPS: refused on a connection opened before its name was rebound http-only', async () => {
    const first = await open([`rebind:80:localhost:${upstream.port}`], 'http')
    const session = h2('rebind.localhost')
    try {
      expect((await h2Request(session, { ':path': '/rebind-1', ':authority': https('rebind') })).status).toBe(200)
      await first.kill('SIGKILL')
      await open([`rebind:80:localhost:${upstream.port}`], 'http --schemes http')
      const answer = await h2Request(session, { ':path': '/rebind-2', ':authority': https('rebind') })
      expect([answer.status, answer.code]).toEqual([421, 'PH_3016'])
      expect(reached('/rebind-2')).toEqual([])
    } finally {
      session.close()
    }
  })

  it('two Host headers: 400 PH_3012, not 502, and nothing upstream', async () => {
    // No answer to anything after it on the same connection: it closes after the 400 (Node may still have
    // parsed and handled a request pipelined in the same packet; only its answer is dropped).
    const reply = await rawRequest(gateway.httpPort, `GET /two-hosts HTTP/1.1\r\nHost: ${http('other')}\r\nHost: ${http('guard')}\r\n\r\n` +
      `GET /after-two-hosts HTTP/1.1\r\nHost: ${http('other')}\r\nConnection: close\r\n\r\n`)
    expect(reply).toMatch(/^HTTP\/1\.1 400 [\s\S]*porthole-error-code: PH_3012/)
    expect(reply.match(/HTTP\/1\.1 /g)).toHaveLength(1)
    const same = await rawRequest(gateway.httpPort, `GET /two-hosts HTTP/1.1\r\nHost: ${http('other')}\r\nHost: ${http('other')}\r\nConnection: close\r\n\r\n`)
    expect(same).toMatch(/^HTTP\/1\.1 400 [\s\S]*porthole-error-code: PH_3012/)
    expect(reached('/two-hosts')).toEqual([])
  })

  it('OPTIONS * and CONNECT are refused at the edge with 400 PH_3014 (as nginx does), over HTTP/1.1 and HTTP/2', async () => {
    const star = await rawRequest(gateway.httpPort, `OPTIONS * HTTP/1.1\r\nHost: ${http('other')}\r\nConnection: close\r\n\r\n`)
    expect(star).toMatch(/^HTTP\/1\.1 400 [\s\S]*porthole-error-code: PH_3014/)
    const tunnel = await rawRequest(gateway.httpPort, `CONNECT ${http('other')} HTTP/1.1\r\nHost: ${http('other')}\r\n\r\n`)
    expect(tunnel).toMatch(/^HTTP\/1\.1 400 [\s\S]*porthole-error-code: PH_3014/)
    const session = h2('other.localhost')
    try {
      expect(await h2Request(session, { ':method': 'OPTIONS', ':path': '*', ':authority': https('other') })).toMatchObject({ status: 400, code: 'PH_3014' })
      expect(await h2Request(session, { ':method': 'CONNECT', ':authority': https('other') })).toMatchObject({ status: 400, code: 'PH_3014' })
    } finally {
      session.close()
    }
    expect(seen.filter((s) => s.method === 'OPTIONS' || s.method === 'CONNECT')).toEqual([])
  })

  it('a bad port in Host or in the target\'s authority: 400 PH_3013, nothing upstream', async () => {
    for (const port of ['99999', 'abc', '', '0', '80x', '-1']) {
      const reply = await rawRequest(gateway.httpPort, `GET /bad-port HTTP/1.1\r\nHost: other.localhost:${port}\r\nConnection: close\r\n\r\n`)
      expect(reply, `Host other.localhost:${port}`).toMatch(/^HTTP\/1\.1 400 [\s\S]*porthole-error-code: PH_3013/)
    }
    const target = await rawRequest(gateway.httpPort, `GET http://other.localhost:99999/bad-port HTTP/1.1\r\nHost: ${http('other')}\r\nConnection: close\r\n\r\n`)
    expect(target).toMatch(/^HTTP\/1\.1 400 [\s\S]*porthole-error-code: PH_3013/)
    const session = h2('other.localhost')
    try {
      expect(await h2Request(session, { ':path': '/bad-port', ':authority': 'other.localhost:abc' })).toMatchObject({ status: 400, code: 'PH_3013' })
    } finally {
      session.close()
    }
    expect(reached('/bad-port')).toEqual([])
  })
})
