// What a piece of per-request work costs on its own: a bare node HTTP server answering ~100 bytes, driven by wrk
// (-t1 -c50, 5 s after a 2 s warm-up), in this process, so process.cpuUsage over the measured run is the server's
// CPU. Used by capture-cost.js and metrics-cost.js, each with the work it measures in `before`.
import { createServer } from 'node:http'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'

const run = promisify(execFile)
const BODY = 'x'.repeat(99) + '\n'

/** Serves with `before(req, res)` run per request before the answer; resolves with CPU µs per request and req/s. */
export async function serverCost (before) {
  let count = 0
  const server = createServer((req, res) => {
    count++
    before(req, res)
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': BODY.length })
    res.end(BODY)
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const url = `http://127.0.0.1:${server.address().port}/small`
  await run('wrk', ['-t1', '-c50', '-d2s', url])
  count = 0
  const started = process.cpuUsage()
  const { stdout } = await run('wrk', ['-t1', '-c50', '-d5s', url])
  const cpu = process.cpuUsage(started)
  server.closeAllConnections()
  server.close()
  return { us: (cpu.user + cpu.system) / count, rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)[1]) }
}

export const median = (values) => [...values].sort((a, b) => a - b)[values.length >> 1]

/** A routed endpoint as the edge's watchResponse, capture and observedEndpoint read it: what both cost benches hand them. */
export const BENCH_ENDPOINT = { id: 'ep_bench', host: 'bench.localhost', owner: { id: 'bench-owner', account: null }, agent: { transport: 'ssh', sessionId: 'bench' }, hooks: {} }
