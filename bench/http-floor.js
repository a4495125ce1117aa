// `node bench/http-floor.js [rounds]` (no build, no gateway): what relaying one keep-alive request costs a node
// process before any SSH, policy, capture or metrics, to set issue 13's per-request target (<= 2.0x sshd's
// plain -R) against what an HTTP-aware relay on node's HTTP stack can reach at best. An upstream node server
// in a child process answers ~100 bytes; this process relays wrk's requests (-t1 -c50, 5 s after a 2 s
// warm-up) to it in four ways, in alternating rounds, each measured as this process's CPU µs per request:
//   bytes   net sockets piped both ways, one upstream connection per client connection (what sshd's -R does,
//           without the crypto): no HTTP parsing at all
//   undici  node's HTTP server + an undici Pool, the response streamed back (what the edge does, minus SSH,
//           modules, capture and metrics)
//   native  node's own llhttp parser (the one inside its HTTP server) used directly on the sockets: each request
//           head parsed, rebuilt (one header added) and written upstream, each response parsed for its status and
//           end but passed back as the bytes that came; one upstream connection per client connection. The
//           floor of an HTTP/1.1 relay of our own on a native parser (issue 13's option (a)), before timeouts,
//           back-pressure, pooling and errors. It reaches node's parser through the undocumented `_http_common`.
//   answer  node's HTTP server answering itself (the HTTP server's own share)
// Then node's own price of HTTP/2 (issue 13 asks for HTTP/2 <= 1.3x HTTP/1.1 per request): node's TLS server
// answering itself over HTTP/1.1 and over HTTP/2 (ALPN), h2load -t1 -c50 -m1 as `npm run bench` drives the
// gateway's HTTPS listener, in alternating rounds (needs `h2load` and `openssl` for a throwaway certificate).
// The gateway's own figures are `npm run bench` (cpu µs/req against sshd in one run, and its HTTPS table).
import { createServer } from 'node:http'
import { createSecureServer } from 'node:http2'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer as createNetServer, connect } from 'node:net'
import { fork, execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { createRequire } from 'node:module'
import { Pool } from 'undici'

const { HTTPParser, methods } = createRequire(import.meta.url)('_http_common')

const run = promisify(execFile)
const ROUNDS = Number(process.argv[2] ?? 3)
const BODY = 'x'.repeat(99) + '\n'

if (process.argv[2] === '--upstream') {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': BODY.length })
    res.end(BODY)
  })
  server.keepAliveTimeout = 60_000
  server.listen(0, '127.0.0.1', () => process.send(server.address().port))
} else {
  const upstream = fork(new URL(import.meta.url).pathname, ['--upstream'])
  const upPort = await new Promise((resolve) => upstream.once('message', resolve))

  const relays = {
    bytes: () => createNetServer((client) => {
      const up = connect(upPort, '127.0.0.1')
      client.pipe(up).pipe(client)
      client.on('error', () => up.destroy())
      up.on('error', () => client.destroy())
    }),
    undici: () => {
      const pool = new Pool(`http://127.0.0.1:${upPort}`, { connections: 100, pipelining: 1, keepAliveTimeout: 30_000 })
      return createServer((req, res) => {
        pool.dispatch({ method: req.method, path: req.url, headers: req.headers, body: null }, {
          onRequestStart () {},
          onResponseStart (_c, status, headers) { res.writeHead(status, headers) },
          onResponseData (_c, chunk) { res.write(chunk) },
          onResponseEnd () { res.end() },
          onResponseError (_c, error) { res.destroy(error) },
        })
      })
    },
    native: () => createNetServer((client) => {
      const up = connect(upPort, '127.0.0.1')
      const requests = new HTTPParser()
      requests.initialize(HTTPParser.REQUEST, {})
      const responses = new HTTPParser()
      responses.initialize(HTTPParser.RESPONSE, {})
      let pending = []
      requests[HTTPParser.kOnHeaders] = (headers) => { pending = pending.concat(headers) }
      requests[HTTPParser.kOnHeadersComplete] = (_major, _minor, headers, method, url) => {
        const all = headers ?? pending
        pending = []
        let head = `${methods[method]} ${url} HTTP/1.1\r\n`
        for (let i = 0; i < all.length; i += 2) head += `${all[i]}: ${all[i + 1]}\r\n`
        up.write(`${head}x-forwarded-for: ${client.remoteAddress}\r\n\r\n`)
      }
      requests[HTTPParser.kOnBody] = (chunk) => { up.write(chunk) }
      requests[HTTPParser.kOnMessageComplete] = () => {}
      let status = 0
      responses[HTTPParser.kOnHeadersComplete] = (_major, _minor, _headers, _method, _url, statusCode) => { status = statusCode }
      responses[HTTPParser.kOnBody] = () => {}
      responses[HTTPParser.kOnMessageComplete] = () => { if (status === 0) client.destroy() }
      client.on('data', (data) => { if (requests.execute(data) instanceof Error) client.destroy() })
      up.on('data', (data) => {
        if (responses.execute(data) instanceof Error) client.destroy()
        else client.write(data)
      })
      client.on('error', () => up.destroy())
      up.on('error', () => client.destroy())
      client.on('close', () => up.destroy())
    }),
    answer: () => createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': BODY.length })
      res.end(BODY)
    }),
  }

  const measure = async (make) => {
    const server = make()
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
    const url = `http://127.0.0.1:${server.address().port}/small`
    await run('wrk', ['-t1', '-c50', '-d2s', url])
    const started = process.cpuUsage()
    const { stdout } = await run('wrk', ['-t1', '-c50', '-d5s', url])
    const cpu = process.cpuUsage(started)
    server.closeAllConnections?.()
    server.close()
    const requests = Number(/(\d+) requests in/.exec(stdout)[1])
    // A relay that answered wrongly must not pass for a cheap one.
    if (/Non-2xx|Socket errors/.test(stdout) || requests < 1000) throw new Error(`wrk saw errors through the relay:\n${stdout}`)
    return (cpu.user + cpu.system) / requests
  }

  const results = Object.fromEntries(Object.keys(relays).map((name) => [name, []]))
  for (let round = 0; round < ROUNDS; round++) {
    const names = Object.keys(relays)
    for (const name of round % 2 === 0 ? names : names.reverse()) {
      const us = await measure(relays[name])
      results[name].push(us)
      console.log(`round ${round + 1} ${name.padEnd(6)} ${us.toFixed(1)} µs/request`)
    }
  }
  const median = (values) => [...values].sort((a, b) => a - b)[values.length >> 1]
  const m = Object.fromEntries(Object.entries(results).map(([name, values]) => [name, median(values)]))
  console.log(`median µs/request: bytes ${m.bytes.toFixed(1)}, undici ${m.undici.toFixed(1)}, native ${m.native.toFixed(1)}, answer ${m.answer.toFixed(1)}; undici / bytes ${(m.undici / m.bytes).toFixed(2)}, native / bytes ${(m.native / m.bytes).toFixed(2)}`)
  upstream.kill()

  const dir = mkdtempSync(join(tmpdir(), 'porthole-floor-'))
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=localhost',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')])
  const tls = { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')), allowHTTP1: true }
  rmSync(dir, { recursive: true, force: true })
  const h2load = async (alpn) => {
    const server = createSecureServer(tls, (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': BODY.length })
      res.end(BODY)
    })
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
    const args = ['-t1', '-c50', '-m1', ...(alpn === 'h1' ? ['--h1'] : []), `https://127.0.0.1:${server.address().port}/small`]
    await run('h2load', ['-D2', ...args])
    const started = process.cpuUsage()
    const { stdout } = await run('h2load', ['-D5', ...args])
    const cpu = process.cpuUsage(started)
    server.close()
    return (cpu.user + cpu.system) / Number(/requests: \d+ total, \d+ started, (\d+) done/.exec(stdout)[1])
  }
  const tlsResults = { h1: [], h2: [] }
  for (let round = 0; round < ROUNDS; round++) {
    for (const alpn of round % 2 === 0 ? ['h1', 'h2'] : ['h2', 'h1']) {
      const us = await h2load(alpn)
      tlsResults[alpn].push(us)
      console.log(`round ${round + 1} tls ${alpn}  ${us.toFixed(1)} µs/request`)
    }
  }
  const h1 = median(tlsResults.h1)
  const h2 = median(tlsResults.h2)
  console.log(`median µs/request, node's TLS server answering: h1 ${h1.toFixed(1)}, h2 ${h2.toFixed(1)}; h2 / h1 ${(h2 / h1).toFixed(2)}`)
}
