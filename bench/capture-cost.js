// `node bench/capture-cost.js [rounds]` (after `npm run build`): what request capture (issue 11) costs per
// request, alone: a bare node HTTP server answering ~100 bytes, driven by wrk (-t1 -c50, 5 s after a 2 s warm-up),
// with and without a RequestCapture + MemoryInspectStore per request, in alternating rounds. Prints the server's
// CPU µs per request (process.cpuUsage over the measured run) and req/s, then the medians and their difference.
// The whole-gateway figure (SSH, tunnel, undici) is `PORTHOLE_INSPECT=false|true node bench/run.js --only=porthole`.
import { RequestCapture, createReplaySecret } from '../dist/inspect/capture.js'
import { MemoryInspectStore } from '../dist/inspect/store.js'
import { watchResponse } from '../dist/edge/response-watch.js'
import { BENCH_ENDPOINT, median, serverCost } from './server-cost.js'

const ROUNDS = Number(process.argv[2] ?? 3)

function round (capture) {
  const options = { store: new MemoryInspectStore(), replaySecret: createReplaySecret() }
  return serverCost((req, res) => {
    if (!capture) return
    // As the HTTP edge does: the capture, then watchResponse taps the response for it (src/edge/response-watch.ts).
    const record = new RequestCapture(options, BENCH_ENDPOINT, req, res, undefined)
    watchResponse(req, res, BENCH_ENDPOINT, 'http', { authority: req.headers.host ?? '', path: req.url }, performance.now(), record)
    record.upstream({ path: req.url, headers: { host: req.headers.host, 'user-agent': req.headers['user-agent'] ?? '', 'x-forwarded-for': '127.0.0.1' } })
  })
}

const results = { off: [], on: [] }
for (let i = 0; i < ROUNDS; i++) {
  for (const mode of ['off', 'on']) {
    const r = await round(mode === 'on')
    results[mode].push(r)
    console.log(`round ${i + 1} capture ${mode.padEnd(3)} ${r.us.toFixed(1)} µs/req  ${Math.round(r.rps)} req/s`)
  }
}
const off = median(results.off.map((r) => r.us))
const on = median(results.on.map((r) => r.us))
console.log(`median: off ${off.toFixed(1)} µs/req, on ${on.toFixed(1)} µs/req: capture costs ${(on - off).toFixed(1)} µs of CPU per request`)
