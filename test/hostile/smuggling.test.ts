// The request-smuggling corpus, against the HTTP and the HTTPS (TLS, ALPN http/1.1) listeners, through a real
// endpoint (`ssh -R` to an upstream server that records every request it parsed and every byte it got). Each case
// is raw bytes no HTTP library would send: CL.TE, TE.CL, Transfer-Encoding obfuscations, duplicate or signed
// Content-Length, obs-fold, bare LF, NUL/CR in values, chunk-size overflow and extensions, pipelining after a
// body, Upgrade smuggling (h2c, and `Connection: Upgrade` answered without 101 followed by a second request).
// Each must end either refused by the edge (4xx with porthole-error-code, nothing of it completed upstream) or as
// exactly the requests the client meant, with their bodies. Every hidden request asks for a path containing
// "smuggled", which the endpoint's policy denies: the upstream receiving one means the edge and the upstream
// disagreed on where a request ends.
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connect, eventually, rawRequest, startTestGateway, type SshClient, type TestGateway } from '../e2e/harness.js'

interface Received { method: string, url: string, body: string, complete: boolean, settled: boolean, upgrade: boolean, after: string }

/** A body cut short: the edge aborted the request, and an SSH channel can only end with EOF, not a reset. */
const CUT_SHORT = 'HPE_INVALID_EOF_STATE'

/** An upstream that records each request (complete or not), bytes after an upgrade request, and parse errors. */
async function recordingUpstream (): Promise<{ server: Server, port: number, requests: Received[], parseErrors: string[], bytes: () => string }> {
  const requests: Received[] = []
  const parseErrors: string[] = []
  let bytes = ''
  const server = createServer((req, res) => {
    const record = receive(req, false)
    req.on('end', () => {
      record.complete = true
      res.end(`ok ${req.url}`)
    })
  })
  function receive (req: IncomingMessage, upgrade: boolean): Received {
    const record: Received = { method: req.method!, url: req.url!, body: '', complete: false, settled: upgrade, upgrade, after: '' }
    requests.push(record)
    req.once('close', () => { record.settled = true })
    req.setEncoding('latin1')
    req.on('data', (text: string) => { record.body += text })
    return record
  }
  // An upgrade request is answered without 101: the edge must relay that and send nothing more of the connection.
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const record = receive(req, true)
    record.complete = true
    record.after = head.toString('latin1')
    socket.on('data', (chunk: Buffer) => { record.after += chunk.toString('latin1') })
    socket.on('error', () => {})
    socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${`no upgrade ${req.url}`.length}\r\n\r\nno upgrade ${req.url}`)
  })
  server.on('connection', (socket: Socket) => socket.on('data', (chunk: Buffer) => { bytes += chunk.toString('latin1') }))
  server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
    if (error.code !== CUT_SHORT) parseErrors.push(`${error.code}: ${error.message}`)
    socket.destroy()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { server, port: (server.address() as AddressInfo).port, requests, parseErrors, bytes: () => bytes }
}

type Outcome =
  /** The edge answers 4xx with a porthole-error-code; no request of the case completes upstream. */
  | 'refused'
  /** The upstream gets exactly these requests of the case (path suffix and body), in order. */
  | { bodies: string[] }
  /** Either of the above (a matter of leniency, not safety). */
  | { either: string[] }

interface Case { name: string, outcome: Outcome, bytes: (path: string, host: string) => string }

const SMUGGLED = (host: string): string => `GET /smuggled HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`
/** A request line and Host header, then the rest of the head as given. */
const post = (path: string, host: string, headers: string, body: string): string => `POST ${path} HTTP/1.1\r\nHost: ${host}\r\n${headers}\r\n${body}`

const CASES: Case[] = [
  { name: 'baseline: Content-Length body', outcome: { bodies: ['hello'] }, bytes: (p, h) => post(p, h, 'Content-Length: 5\r\nConnection: close\r\n', 'hello') },
  { name: 'baseline: chunked body', outcome: { bodies: ['hello'] }, bytes: (p, h) => post(p, h, 'Transfer-Encoding: chunked\r\nConnection: close\r\n', '5\r\nhello\r\n0\r\n\r\n') },
  { name: 'CL.TE: Content-Length and chunked', outcome: 'refused', bytes: (p, h) => post(p, h, 'Content-Length: 6\r\nTransfer-Encoding: chunked\r\n', `0\r\n\r\n${SMUGGLED(h)}`) },
  { name: 'TE.CL: chunked and a short Content-Length', outcome: 'refused', bytes: (p, h) => { const s = SMUGGLED(h); return post(p, h, 'Transfer-Encoding: chunked\r\nContent-Length: 4\r\n', `${s.length.toString(16)}\r\n${s}\r\n0\r\n\r\n`) } },
  { name: 'TE.CL with Content-Length: 0', outcome: 'refused', bytes: (p, h) => post(p, h, 'Transfer-Encoding: chunked\r\nContent-Length: 0\r\n', `5\r\nhello\r\n0\r\n\r\n${SMUGGLED(h)}`) },
  { name: 'TE.TE: Transfer-Encoding: xchunked', outcome: 'refused', bytes: (p, h) => post(p, h, 'Transfer-Encoding: xchunked\r\nContent-Length: 5\r\n', `hello${SMUGGLED(h)}`) },
  { name: 'TE.TE: xchunked alone', outcome: 'refused', bytes: (p, h) => post(p, h, 'Transfer-Encoding: xchunked\r\n', `5\r\nhello\r\n0\r\n\r\n${SMUGGLED(h)}`) },
  { name: 'TE.TE: space before the colon', outcome: 'refused', bytes: (p, h) => post(p, h, 'Transfer-Encoding : chunked\r\nContent-Length: 5\r\n', `hello${SMUGGLED(h)}`) },
  { name: 'TE.TE: header line starting with a space', outcome: 'refused', bytes: (p, h) => post(p, h, 'Content-Length: 5\r\n Transfer-Encoding: chunked\r\n', `hello${SMUGGLED(h)}`) },
  { name: 'TE.TE: chunked, identity', outcome: 'refused', bytes: (p, h) => post(p, h, 'Transfer-Encoding: chunked, identity\r\n', `5\r\nhello\r\n0\r\n\r\n${SMUGGLED(h)}`) },
  { name: 'TE.TE: identity, chunked', outcome: { either: ['hello'] }, bytes: (p, h) => post(p, h, 'Transfer-Encoding: identity, chunked\r\n', `5\r\nhello\r\n0\r\n\r\n${SMUGGLED(h)}`) },
  { name: 'TE.TE: tab before the value', outcome: { bodies: ['hello'] }, bytes: (p, h) => post(p, h, 'Transfer-Encoding:\tchunked\r\n', `5\r\nhello\r\n0\r\n\r\n${SMUGGLED(h)}`) },
  { name: 'TE.TE: trailing tab and space', outcome: { either: ['hello'] }, bytes: (p, h) => post(p, h, 'Transfer-Encoding: chunked \t\r\n', `5\r\nhello\r\n0\r\n\r\n${SMUGGLED(h)}`) },
  { name: 'TE.TE: vertical tab in the value', outcome: 'refused', bytes: (p, h) => post(p, h, 'Transfer-Encoding: \vchunked\r\nContent-Length: 5\r\n', `hello${SMUGGLED(h)}`) },
  { name: 'TE.TE: upper case CHUNKED', outcome: { bodies: ['hello'] }, bytes: (p, h) => post(p, h, 'Transfer-Encoding: CHUNKED\r\n', `5\r\nhello\r\n0\r\n\r\n${SMUGGLED(h)}`) },
  { name: 'TE.TE: duplicate chunked headers', outcome: { either: ['hello'] }, bytes: (p, h) => post(p, h, 'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n', `5\r\nhello\r\n0\r\n\r\n${SMUGGLED(h)}`) },
  { name: 'TE.TE: chunked then identity header', outcome: 'refused', bytes: (p, h) => post(p, h, 'Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\nContent-Length: 5\r\n', `hello${SMUGGLED(h)}`) },
  { name: 'CL.CL: two differing Content-Length', outcome: 'refused', bytes: (p, h) => post(p, h, 'Content-Length: 5\r\nContent-Length: 41\r\n', `hello${SMUGGLED(h)}`) },
  { name: 'CL.CL: two equal Content-Length', outcome: { either: ['hello'] }, bytes: (p, h) => post(p, h, 'Content-Length: 5\r\nContent-Length: 5\r\n', `hello${SMUGGLED(h)}`) },
  { name: 'CL.CL: list value 5, 5', outcome: { either: ['hello'] }, bytes: (p, h) => post(p, h, 'Content-Length: 5, 5\r\n', `hello${SMUGGLED(h)}`) },
  { name: 'CL with a plus sign', outcome: 'refused', bytes: (p, h) => post(p, h, 'Content-Length: +5\r\n', `hello${SMUGGLED(h)}`) },
  { name: 'CL with a minus sign', outcome: 'refused', bytes: (p, h) => post(p, h, 'Content-Length: -5\r\n', `hello${SMUGGLED(h)}`) },
  { name: 'CL in hex', outcome: 'refused', bytes: (p, h) => post(p, h, 'Content-Length: 0x5\r\n', `hello${SMUGGLED(h)}`) },
  { name: 'CL with inner whitespace', outcome: 'refused', bytes: (p, h) => post(p, h, 'Content-Length: 5 0\r\n', `hello${SMUGGLED(h)}`) },
  { name: 'CL with surrounding whitespace', outcome: { bodies: ['hello'] }, bytes: (p, h) => post(p, h, 'Content-Length:   5  \r\n', `hello${SMUGGLED(h)}`) },
  { name: 'CL overflowing 64 bits', outcome: 'refused', bytes: (p, h) => post(p, h, 'Content-Length: 18446744073709551621\r\n', `hello${SMUGGLED(h)}`) },
  { name: 'obs-fold continuation of a header', outcome: { either: [''] }, bytes: (p, h) => `GET ${p} HTTP/1.1\r\nHost: ${h}\r\nX-Folded: a\r\n b\r\n\r\n${SMUGGLED(h)}` },
  { name: 'obs-fold hiding a Content-Length', outcome: { either: [''] }, bytes: (p, h) => `GET ${p} HTTP/1.1\r\nHost: ${h}\r\nX-Folded: a\r\n Content-Length: 41\r\n\r\n${SMUGGLED(h)}` },
  { name: 'bare LF line endings', outcome: { either: [''] }, bytes: (p, h) => `GET ${p} HTTP/1.1\nHost: ${h}\nConnection: close\n\n${SMUGGLED(h)}` },
  { name: 'bare LF inside a header value', outcome: { either: [''] }, bytes: (p, h) => `GET ${p} HTTP/1.1\r\nHost: ${h}\r\nX-A: a\nContent-Length: 41\r\n\r\n${SMUGGLED(h)}` },
  { name: 'bare CR inside a header value', outcome: 'refused', bytes: (p, h) => `GET ${p} HTTP/1.1\r\nHost: ${h}\r\nX-A: a\rContent-Length: 41\r\n\r\n${SMUGGLED(h)}` },
  { name: 'NUL inside a header value', outcome: 'refused', bytes: (p, h) => `GET ${p} HTTP/1.1\r\nHost: ${h}\r\nX-A: a\0b\r\n\r\n${SMUGGLED(h)}` },
  { name: 'chunk size overflowing 64 bits', outcome: 'refused', bytes: (p, h) => post(p, h, 'Transfer-Encoding: chunked\r\n', `10000000000000005\r\nhello\r\n0\r\n\r\n${SMUGGLED(h)}`) },
  { name: 'chunk size not hex', outcome: 'refused', bytes: (p, h) => post(p, h, 'Transfer-Encoding: chunked\r\n', `5g\r\nhello\r\n0\r\n\r\n${SMUGGLED(h)}`) },
  { name: 'chunk longer than its size', outcome: 'refused', bytes: (p, h) => post(p, h, 'Transfer-Encoding: chunked\r\n', `3\r\nhello\r\n0\r\n\r\n${SMUGGLED(h)}`) },
  { name: 'chunk extensions', outcome: { bodies: ['hello'] }, bytes: (p, h) => post(p, h, 'Transfer-Encoding: chunked\r\nConnection: close\r\n', `5;name=value;flag\r\nhello\r\n0;last=1\r\n\r\n`) },
  { name: 'chunk extension with a quoted CRLF', outcome: { either: ['hello'] }, bytes: (p, h) => post(p, h, 'Transfer-Encoding: chunked\r\n', `5;x="a\r\n0\r\n\r\n${SMUGGLED(h)}"\r\nhello\r\n0\r\n\r\n`) },
  { name: 'chunk size with a bare LF', outcome: { either: ['hello'] }, bytes: (p, h) => post(p, h, 'Transfer-Encoding: chunked\r\nConnection: close\r\n', `5\nhello\r\n0\r\n\r\n`) },
  { name: 'trailer fields naming framing headers', outcome: 'refused', bytes: (p, h) => post(p, h, 'Transfer-Encoding: chunked\r\nConnection: close\r\n', `5\r\nhello\r\n0\r\nContent-Length: 41\r\nTransfer-Encoding: identity\r\n\r\n`) },
  { name: 'pipelined request after a Content-Length body', outcome: { bodies: ['hello', ''] }, bytes: (p, h) => `${post(p, h, 'Content-Length: 5\r\n', 'hello')}GET ${p}/second HTTP/1.1\r\nHost: ${h}\r\nConnection: close\r\n\r\n` },
  { name: 'pipelined request after a chunked body', outcome: { bodies: ['hello', ''] }, bytes: (p, h) => `${post(p, h, 'Transfer-Encoding: chunked\r\n', '5\r\nhello\r\n0\r\n\r\n')}GET ${p}/second HTTP/1.1\r\nHost: ${h}\r\nConnection: close\r\n\r\n` },
  { name: 'hidden request after a body is seen (and denied) by the edge', outcome: { bodies: ['hello'] }, bytes: (p, h) => post(p, h, 'Content-Length: 5\r\n', `hello${SMUGGLED(h)}`) },
  { name: 'GET with a body, then a hidden request', outcome: { bodies: ['hello'] }, bytes: (p, h) => `GET ${p} HTTP/1.1\r\nHost: ${h}\r\nContent-Length: 5\r\n\r\nhello${SMUGGLED(h)}` },
  { name: 'h2c upgrade with the HTTP/2 preface behind it', outcome: { bodies: [''] }, bytes: (p, h) => `GET ${p} HTTP/1.1\r\nHost: ${h}\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\nPRI * HTTP/2.0\r\n\r\nSM\r\n\r\n${SMUGGLED(h)}` },
  { name: 'Connection: Upgrade answered without 101, then a second request', outcome: { bodies: [''] }, bytes: (p, h) => `GET ${p} HTTP/1.1\r\nHost: ${h}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n${SMUGGLED(h)}` },
  { name: 'Upgrade with a Content-Length body, then a second request', outcome: { either: [''] }, bytes: (p, h) => `POST ${p} HTTP/1.1\r\nHost: ${h}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 5\r\n\r\nhello${SMUGGLED(h)}` },
]

/** Status and porthole-error-code of each response head in what the edge sent back, in order. */
function responsesIn (raw: string): { status: number, code: string | undefined }[] {
  return [...raw.matchAll(/(?:^|\r\n)HTTP\/1\.[01] (\d{3})[^\r\n]*\r\n((?:[^\r\n]+\r\n)*)\r\n/g)].map((m) => ({
    status: Number(m[1]),
    code: /^porthole-error-code: *(\S+)/im.exec(m[2]!)?.[1],
  }))
}

const denySmuggled = JSON.stringify({ on_http_request: [{ expressions: ["req.url.path.contains('smuggled')"], actions: [{ type: 'deny' }] }] })

describe('request smuggling corpus', () => {
  let gateway: TestGateway
  let upstream: Awaited<ReturnType<typeof recordingUpstream>>
  let client: SshClient
  let host: string

  beforeAll(async () => {
    gateway = await startTestGateway()
    upstream = await recordingUpstream()
    client = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`smuggle:80:127.0.0.1:${upstream.port}`], command: `http --traffic-policy '${denySmuggled}'` })
    const [url] = await client.urls()
    host = new URL(url!).hostname
  })
  afterAll(async () => {
    await client?.kill()
    upstream?.server.closeAllConnections()
    upstream?.server.close()
    await gateway?.stop()
  })

  let serial = 0
  const refusedPaths: string[] = []
  for (const listener of ['http', 'https'] as const) {
    it.each(CASES)(`${listener}: $name`, async (testCase) => {
      const path = `/case-${++serial}`
      const port = listener === 'http' ? gateway.httpPort : gateway.httpsPort
      const tls = listener === 'https' ? { servername: host, ALPNProtocols: ['http/1.1'], rejectUnauthorized: false } : undefined
      const raw = await rawRequest(port, testCase.bytes(path, host), tls)
      const exchange = { raw, responses: responsesIn(raw) }
      // Pipelined requests may reach the upstream in either order (the edge forwards them concurrently over
      // pooled connections and answers in order): compare them in the order the client sent them.
      const mine = upstream.requests.filter((r) => r.url === path || r.url.startsWith(`${path}/`)).sort((a, b) => a.url.length - b.url.length)

      // Never a hidden request, never bytes the upstream could not parse, never anything after a refused upgrade.
      expect(upstream.requests.filter((r) => r.url.includes('smuggled'))).toEqual([])
      expect(upstream.parseErrors).toEqual([])
      for (const r of mine.filter((m) => m.upgrade)) expect(r.after).toBe('')

      expect(exchange.responses.length, exchange.raw).toBeGreaterThan(0)
      const first = exchange.responses[0]!
      const refused = first.status >= 400 && first.status < 500 && first.code !== undefined && mine.every((r) => !r.complete)
      const bodies = (expected: string[]): boolean => {
        if (mine.length !== expected.length || !mine.every((r) => r.complete)) return false
        return mine.every((r, i) => r.body === expected[i]) && exchange.responses.slice(0, expected.length).every((r) => r.status === 200)
      }
      const outcome = testCase.outcome
      const summary = { responses: exchange.responses, upstream: mine.map(({ url, body, complete }) => ({ url, body, complete })) }
      if (refused) refusedPaths.push(path)
      if (outcome === 'refused') expect(refused, JSON.stringify(summary)).toBe(true)
      else if ('bodies' in outcome) expect(bodies(outcome.bodies), JSON.stringify(summary)).toBe(true)
      else expect(refused || bodies(outcome.either), JSON.stringify(summary)).toBe(true)
      // A hidden request the edge parsed itself is denied by the policy, never answered 200.
      for (const response of exchange.responses.slice(mine.length)) expect(response.status).toBeGreaterThanOrEqual(400)
    }, 20_000)
  }

  it('completed none of the refused requests upstream, once every forwarded request has settled', async () => {
    expect(refusedPaths.length).toBeGreaterThan(30)
    await eventually(() => upstream.requests.every((r) => r.settled))
    const completed = upstream.requests.filter((r) => r.complete && refusedPaths.some((p) => r.url === p || r.url.startsWith(`${p}/`)))
    expect(completed).toEqual([])
    expect(upstream.parseErrors).toEqual([])
    expect(upstream.bytes()).not.toMatch(/(^|\r\n)(GET|POST) \/smuggled/) // no forwarded body here carries one
  })
})
