// Microbenchmark of traffic policy evaluation, without the network: bench/policy.yml (one IP rule, five
// header rules) compiled once, then one request's evaluation as the HTTP edge runs it: the on_tcp_connect
// and on_http_request steps over a fresh request context, then the on_http_response steps over the upstream's
// response headers. A policy-less endpoint (every phase null) is timed with the same loop as the baseline.
// Reads from dist/: run `npm run build` first.
//
//   node bench/policy-eval.js        env POLICY_EVAL_ITERATIONS=100000 (per batch), POLICY_EVAL_BATCHES=7 (median taken)
import { readFileSync } from 'node:fs'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const { parsePolicy } = await import(join(ROOT, 'dist', 'policy', 'parse.js'))
const { compilePolicy } = await import(join(ROOT, 'dist', 'policy', 'compile.js'))

const ITERATIONS = Math.max(1, Number(process.env.POLICY_EVAL_ITERATIONS || 100_000))
const BATCHES = Math.max(1, Number(process.env.POLICY_EVAL_BATCHES || 7))
const text = readFileSync(join(ROOT, 'bench', 'policy.yml'), 'utf8')

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

/** Median over batches of the µs one call of `fn` takes (after a warm-up batch for the JIT). */
function time (fn, iterations) {
  for (let i = 0; i < Math.min(iterations, 20_000); i++) fn(i)
  const batches = []
  for (let b = 0; b < BATCHES; b++) {
    const start = process.hrtime.bigint()
    for (let i = 0; i < iterations; i++) fn(i)
    batches.push(Number(process.hrtime.bigint() - start) / 1000 / iterations)
  }
  return median(batches)
}

/** What the edge builds per request (http-edge.ts requestContext) for wrk's GET /small. */
const requestContext = (i) => ({
  clientIp: '127.0.0.1', clientPort: 40000 + (i & 0x3fff), serverPort: 80, endpointHost: 'bench-policy.localhost', protocol: 'http',
  method: 'GET', path: '/small', host: 'bench-policy.localhost',
  headers: { host: 'bench-policy.localhost', 'x-forwarded-for': '127.0.0.1', 'x-forwarded-proto': 'http', 'x-forwarded-host': 'bench-policy.localhost' },
})
/** nginx's response headers for /small. */
const responseHeaders = () => ({
  server: 'nginx/1.22.1', date: 'Sat, 21 Nov 2026 22:00:00 GMT', 'content-type': 'text/plain', 'content-length': '100',
  'last-modified': 'Sat, 21 Nov 2026 21:00:00 GMT', connection: 'keep-alive', etag: '"69209a50-64"', 'accept-ranges': 'bytes',
})

let sink = 0
/** One request through the compiled phases, as the edge does (runRequestPhases, then the response steps). */
function evaluate (policy, i, phases = 'all') {
  const ctx = requestContext(i)
  let denial
  if (phases !== 'response') {
    if (policy.onTcpConnect !== null) for (const step of policy.onTcpConnect) if ((denial = step(ctx))) break
    if (!denial && policy.onHttpRequest !== null) for (const step of policy.onHttpRequest) if ((denial = step(ctx))) break
    if (denial) throw new Error(`the bench policy denied the request: ${JSON.stringify(denial)}`)
  }
  const headers = responseHeaders()
  if (phases !== 'request' && policy.onHttpResponse !== null) {
    const res = { request: ctx, status: 200, headers }
    for (const step of policy.onHttpResponse) step(res)
  }
  sink += Object.keys(ctx.headers).length + Object.keys(headers).length
}

const compiled = compilePolicy(parsePolicy(text), 'http')
const none = compilePolicy(parsePolicy('{}'), 'http')
// The policy must do what the bench says it does.
{
  const ctx = requestContext(0)
  for (const step of [...compiled.onTcpConnect, ...compiled.onHttpRequest]) if (step(ctx)) throw new Error('denied')
  const res = { request: ctx, status: 200, headers: responseHeaders() }
  for (const step of compiled.onHttpResponse) step(res)
  if (ctx.headers['x-bench-client'] !== '127.0.0.1' || res.headers['x-served-by'] !== 'porthole bench-policy.localhost' || 'server' in res.headers) {
    throw new Error(`bench/policy.yml did not apply: ${JSON.stringify({ request: ctx.headers, response: res.headers })}`)
  }
}

const compileUs = time(() => compilePolicy(parsePolicy(text), 'http'), Math.max(1, Math.floor(ITERATIONS / 100)))
const baseline = time((i) => evaluate(none, i), ITERATIONS)
const full = time((i) => evaluate(compiled, i), ITERATIONS)
const request = time((i) => evaluate(compiled, i, 'request'), ITERATIONS)
const response = time((i) => evaluate(compiled, i, 'response'), ITERATIONS)

process.stdout.write(`policy-eval: bench/policy.yml (1 IP rule, 5 header rules), node ${process.version}; ${BATCHES} batches of ${ITERATIONS} requests ` +
  `(compile: of ${Math.max(1, Math.floor(ITERATIONS / 100))}), median µs per call\n\n`)
const rows = [
  ['what', 'µs'],
  ['compile once (parsePolicy + compilePolicy)', compileUs.toFixed(1)],
  ['request, no policy (context + response headers only)', baseline.toFixed(3)],
  ['request, policy: all phases', full.toFixed(3)],
  ['  connect + request phases only', request.toFixed(3)],
  ['  response phase only', response.toFixed(3)],
  ['policy cost per request (all phases - no policy)', (full - baseline).toFixed(3)],
]
const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)))
const line = (r) => `| ${r.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`
process.stdout.write(`${line(rows[0])}\n|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|\n${rows.slice(1).map(line).join('\n')}\n`)
if (sink === 0) process.stdout.write('\n')
