// `node bench/http-floor.js [rounds]` (no build, no gateway): what relaying one keep-alive request costs a node
// process before any SSH, policy, capture or metrics, to set issue 13's per-request target (<= 2.0x sshd's
// plain -R) against what an HTTP-aware relay on node's HTTP stack can reach at best. An upstream node server
// in a child process answers ~100 bytes; this process relays wrk's requests (-t1 -c50, 5 s after a 2 s
// warm-up) to it in three ways, in alternating rounds, each measured as this process's CPU µs per request:
//   bytes   net sockets piped both ways, one upstream connection per client connection (what sshd's -R does,
//           without the crypto): no HTTP parsing at all
//   undici  node's HTTP server + an undici Pool, the response streamed back (what the edge does, minus SSH,
//           modules, capture and metrics)
//   answer  node's HTTP server answering itself (the HTTP server's own share)
// The gateway's own figure is `npm run bench` (cpu µs/req against sshd in one run).
import { createServer } from 'node:http'
import { createServer as createNetServer, connect } from 'node:net'
import { fork, execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { Pool } from 'undici'

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
  console.log(`median µs/request: bytes ${m.bytes.toFixed(1)}, undici ${m.undici.toFixed(1)}, answer ${m.answer.toFixed(1)}; undici / bytes ${(m.undici / m.bytes).toFixed(2)}`)
  upstream.kill()
}
