// What an upstream may legally send around its response reaches the public client (issue 9 item 9, response
// side): an unsolicited `100 Continue` is skipped (it was a 502 PH_3003: undici refuses a 100), 103 Early
// Hints are passed on (they were dropped), and trailer fields are forwarded on chunked HTTP/1.1 and on HTTP/2
// (they were dropped). The upstream is a raw socket writing exact bytes; the clients are node's HTTP/1.1
// client and node:http2 through the real gateway and a real OpenSSH tunnel.
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import type { Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { join } from 'node:path'
import { CertStore } from '../../src/certs/cert-store.js'
import { connect, h2Session, sleep, startRawUpstream, startTestGateway, type SshClient, type TestGateway } from '../e2e/harness.js'

const NAME = 'raw.localhost'
const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'
const HINTS = 'HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\nX-Internal: secret\r\n\r\n'
/** A body that looks like a 100 Continue head: it must arrive unaltered. */
const LOOKALIKE = 'HTTP/1.1 100 Continue\r\n\r\n'

/** Each path's answer: pieces written with a short pause between them (an interim head split across writes). */
const ANSWERS: Record<string, string[]> = {
  '/continue': [`HTTP/1.1 100 Continue\r\n\r\n${OK}`],
  '/continue-split': ['HTTP/1.1 10', '0 Continue\r\nX-A: b\r\n', '\r\n', 'HTTP/1.1 100 Continue\r\n\r\n', OK],
  '/processing': [`HTTP/1.1 102 Processing\r\n\r\n${OK}`],
  '/hints': [HINTS, OK],
  '/trailers': ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n2\r\nok\r\n', '0\r\nX-Checksum: abc123\r\nPorthole-Error-Code: PH_9999\r\n\r\n'],
  '/lookalike': [`HTTP/1.1 200 OK\r\nContent-Length: ${LOOKALIKE.length}\r\n\r\n`, LOOKALIKE],
}

interface Seen { status: number, body: string, informational: { status: number, headers: IncomingHttpHeaders }[], trailers: Record<string, unknown> }

async function answer (socket: Socket, head: string): Promise<void> {
  const path = head.split(' ')[1] ?? '/'
  const pieces = ANSWERS[path.split('?')[0]!] ?? ['HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n']
  for (const [i, piece] of pieces.entries()) {
    if (i > 0) await sleep(30)
    socket.write(piece)
  }
}

describe('interim responses and trailers from the upstream', () => {
  let gateway: TestGateway
  let upstream: Awaited<ReturnType<typeof startRawUpstream>>
  let tlsUpstream: Awaited<ReturnType<typeof startRawUpstream>>
  let client: SshClient
  let tlsClient: SshClient
  let host: string
  let tlsHost: string

  beforeAll(async () => {
    gateway = await startTestGateway()
    upstream = await startRawUpstream((socket, head) => void answer(socket, head))
    client = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`raw:80:localhost:${upstream.port}`], command: 'http' })
    // The same answers over TLS to the service (--upstream-tls): the 100 is dropped on the TLS socket's plaintext.
    const cert = new CertStore({ dataDir: join(gateway.tmp, 'service-ca') }).issue('localhost')
    tlsUpstream = await startRawUpstream((socket, head) => void answer(socket, head), { key: cert.keyPem, cert: cert.certPem })
    tlsClient = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`rawtls:80:localhost:${tlsUpstream.port}`], command: 'http --upstream-tls' })
    const [[url], [tlsUrl]] = await Promise.all([client.urls(), tlsClient.urls()])
    host = new URL(url!).host
    tlsHost = new URL(tlsUrl!).host
  })
  afterAll(async () => {
    await Promise.all([client.kill('SIGKILL'), tlsClient.kill('SIGKILL')])
    await tlsUpstream.close()
    await upstream.close()
    await gateway.stop()
  })

  /** HTTP/1.1 through the plain listener with node's client (it reports 1xx as 'information'). */
  function h1 (path: string, options: { method?: string, body?: string, headers?: Record<string, string>, host?: string } = {}): Promise<Seen> {
    return new Promise((resolve, reject) => {
      const informational: Seen['informational'] = []
      const req = httpRequest({ host: '127.0.0.1', port: gateway.httpPort, path, method: options.method ?? 'GET', headers: { host: options.host ?? host, ...options.headers } }, (res) => {
        let body = ''
        res.setEncoding('latin1').on('data', (chunk: string) => { body += chunk })
        res.once('end', () => resolve({ status: res.statusCode!, body, informational, trailers: res.trailers }))
      })
      req.on('information', (info) => informational.push({ status: info.statusCode, headers: info.headers }))
      req.once('error', reject)
      req.end(options.body)
    })
  }

  /** HTTP/2 through the HTTPS listener (1xx arrive as 'headers', trailers as 'trailers'). */
  function h2 (path: string): Promise<Seen> {
    const session = h2Session(gateway, NAME)
    return new Promise<Seen>((resolve, reject) => {
      const informational: Seen['informational'] = []
      let trailers: Record<string, unknown> = {}
      let status = 0
      let body = ''
      const stream = session.request({ ':path': path, ':authority': NAME, te: 'trailers' })
      stream.on('headers', (headers) => informational.push({ status: Number(headers[':status']), headers }))
      stream.on('response', (headers) => { status = Number(headers[':status']) })
      stream.on('trailers', (fields) => { trailers = fields })
      stream.setEncoding('latin1').on('data', (chunk: string) => { body += chunk })
      stream.once('end', () => resolve({ status, body, informational, trailers }))
      stream.once('error', reject)
    }).finally(() => session.close())
  }

  it('an unsolicited 100 Continue is skipped: the client gets the final response (h1, h2, split across writes, with a body)', async () => {
    for (const seen of [await h1('/continue'), await h2('/continue'), await h1('/continue-split'), await h2('/continue-split'), await h1('/continue', { method: 'POST', body: 'x'.repeat(1000) })]) {
      expect(seen).toMatchObject({ status: 200, body: 'ok' })
      expect(seen.informational.filter((info) => info.status === 100)).toEqual([])
    }
    // The upstream connection is still good for the next request.
    expect(await h1('/continue')).toMatchObject({ status: 200, body: 'ok' })
    for (const path of ['/continue', '/continue-split', '/continue']) {
      expect(await h1(path, { host: tlsHost })).toMatchObject({ status: 200, body: 'ok' })
    }
  })

  it('a client that sent Expect: 100-continue gets one 100 (from the gateway), then the final response', async () => {
    const seen = await h1('/continue', { method: 'POST', body: 'x'.repeat(100), headers: { expect: '100-continue' } })
    expect(seen).toMatchObject({ status: 200, body: 'ok' })
  })

  it('103 Early Hints reach the client before the final response, with their Link only; 102 is skipped', async () => {
    for (const seen of [await h1('/hints'), await h2('/hints')]) {
      expect(seen).toMatchObject({ status: 200, body: 'ok' })
      expect(seen.informational).toHaveLength(1)
      expect(seen.informational[0]!.status).toBe(103)
      expect(seen.informational[0]!.headers.link).toBe('</style.css>; rel=preload; as=style')
      expect(seen.informational[0]!.headers['x-internal']).toBeUndefined()
    }
    for (const seen of [await h1('/processing'), await h2('/processing')]) {
      expect(seen).toMatchObject({ status: 200, body: 'ok', informational: [] })
    }
  })

  it('trailer fields are forwarded on chunked HTTP/1.1 and on HTTP/2; porthole-error-code is not', async () => {
    for (const seen of [await h1('/trailers', { headers: { te: 'trailers' } }), await h2('/trailers'), await h1('/trailers', { host: tlsHost })]) {
      expect(seen).toMatchObject({ status: 200, body: 'ok' })
      expect(seen.trailers['x-checksum']).toBe('abc123')
      expect(seen.trailers['porthole-error-code']).toBeUndefined()
    }
  })

  it('a body that looks like a 100 Continue head arrives unaltered', async () => {
    for (const seen of [await h1('/lookalike'), await h2('/lookalike')]) {
      expect(seen).toMatchObject({ status: 200, body: LOOKALIKE })
    }
  })
})
