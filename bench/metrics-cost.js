// `node bench/metrics-cost.js [rounds]` (after `npm run build`): what Prometheus metrics (issue 12) cost per HTTP
// request, alone: a bare node HTTP server answering ~100 bytes, driven by wrk (-t1 -c50, 5 s after a 2 s warm-up),
// with and without metrics, in alternating rounds. "on" runs the HTTP edge's own watchResponse once the observe channel has a
// subscriber (counts the response bytes written, builds an HttpRequestObserved when the response closes, publishes it) and what the metrics subscriber does with it (a counter, a histogram, a byte counter).
// "off" is an unobserved gateway: the edge checks hasSubscribers and builds nothing. "edge" subscribes a no-op
// instead of the metrics: the edge's share of "on". Prints the server's CPU µs per request (process.cpuUsage over
// the measured run) and req/s, then the medians and their differences.
import { httpRequestChannel } from '../dist/observe/channels.js'
import { watchResponse } from '../dist/edge/response-watch.js'
import { createMetrics } from '../dist/observe/metrics.js'
import { BENCH_ENDPOINT, median, serverCost } from './server-cost.js'

const ROUNDS = Number(process.argv[2] ?? 3)


/** What the HTTP edge does per request: watchResponse (src/edge/response-watch.ts), with no capture. */
function observe (req, res, started) {
  watchResponse(req, res, BENCH_ENDPOINT, 'http', { authority: req.headers.host ?? '', path: req.url }, started, null)
}

const noop = () => {}

async function round (mode) {
  const on = mode === 'on'
  if (mode === 'edge') httpRequestChannel.subscribe(noop)
  const metrics = on ? createMetrics({ sessions: { sessions: () => [], kill: async () => false }, endpoints: { endpoints: () => [] } }) : null
  const result = await serverCost((req, res) => {
    if (httpRequestChannel.hasSubscribers) observe(req, res, performance.now())
  })
  if (metrics) {
    const text = await metrics.render()
    if (!/porthole_http_requests_total\{scheme="http",status_class="2xx",code=""\} [1-9]/.test(text)) throw new Error('metrics did not count the requests')
    metrics.close()
  }
  if (mode === 'edge') httpRequestChannel.unsubscribe(noop)
  return result
}

const results = { off: [], edge: [], on: [] }
const MODES = ['off', 'edge', 'on']
for (let i = 0; i < ROUNDS; i++) {
  for (const mode of [...MODES.slice(i % 3), ...MODES.slice(0, i % 3)]) {
    const r = await round(mode)
    results[mode].push(r)
    console.log(`round ${i + 1} metrics ${mode.padEnd(3)} ${r.us.toFixed(1)} µs/req  ${Math.round(r.rps)} req/s`)
  }
}
const [off, edge, on] = MODES.map((mode) => median(results[mode].map((r) => r.us)))
console.log(`median: off ${off.toFixed(1)}, edge ${edge.toFixed(1)}, on ${on.toFixed(1)} µs/req: metrics cost ${(on - off).toFixed(1)} µs of CPU per request (${(edge - off).toFixed(1)} the edge's observation, ${(on - edge).toFixed(1)} the metrics subscriber)`)
