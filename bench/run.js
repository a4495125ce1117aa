// `npm run bench`: measures Porthole against the reference it replaces (DESIGN.md, "Performance method").
// One run starts one nginx upstream, an OpenSSH sshd doing a plain `-R` forward, and a Porthole gateway,
// both fed by the same stock `ssh` client, then drives both with the same wrk/curl load in alternating
// rounds and prints Porthole/sshd ratios. The machines are shared and noisy: quote ratios, not absolutes.
// Besides wall-clock figures it reads each gateway's CPU time from /proc around every phase (CPU per request,
// per GiB), which other tenants disturb less than throughput. On a box with 2+ cores the relay under test (sshd,
// Porthole) runs on core 0 and everything else (wrk, curl, h2load, nginx, the ssh clients and agents) on core 1
// (taskset; BENCH_PIN=0 to leave scheduling to the kernel).
// A second part compares Porthole's HTTPS listener with its plain HTTP one (same gateway, same tunnel, same
// load generator, h2load, for both): HTTPS over HTTP/1.1 and over HTTP/2 against plain HTTP/1.1.
// A third compares two endpoints of one Porthole gateway on the same upstream: one with no traffic policy,
// one with bench/policy.yml (an IP rule and five header rules), driven by the same wrk load, alternating.
// A fourth compares the two agent transports on one Porthole gateway and upstream: an endpoint held by the stock
// ssh client and one held by the official ngrok SDK (@ngrok/ngrok, bench/ngrok-agent.js), same wrk and curl load.
// A fifth measures what request capture (the inspector's) costs: two endpoints of one gateway, `http` (captured)
// and `http --inspect=false`, same wrk and curl load, alternating.
//
//   node bench/run.js [--cpu-prof] [--only=sshd|porthole|https|policy|agents|inspect[,...]]
//   env BENCH_DURATION=10s (wrk and h2load duration per round), BENCH_ROUNDS=2 (rounds per target, median taken)
import { spawnSync } from 'node:child_process'
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, rmSync, chmodSync } from 'node:fs'
import { tmpdir, userInfo } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { request as httpRequest } from 'node:http'
import {
  MS_PER_TICK, PINNED, benchGatewayArgs, benchNodeArgs, cleanup, freePort, isStopping, keygen, killAll, median, onCore, pinSelf, processCpuMs, run, sleep, sshClientArgs, startNginx,
  startChild, startSshd, stopChild, treeCpuMs, waitListening, waitReady, writeSite,
} from './processes.js'
import { GATEWAY_NODE_FLAGS } from '../dist/cli/node-flags.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const RESULTS = join(ROOT, 'bench', 'results')
const GIB = 1024 ** 3
const BIG_BYTES = GIB
const DURATION = process.env.BENCH_DURATION || '10s'
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS || 2))
const WARMUP = '2s'
const ARGS = process.argv.slice(2)
const CPU_PROF = ARGS.includes('--cpu-prof')
const ONLY = ARGS.find((a) => a.startsWith('--only='))?.slice('--only='.length).split(',') ?? null
let tmp = null

const PARTS = ['sshd', 'porthole', 'https', 'policy', 'agents', 'inspect']

// --- setup ---------------------------------------------------------------------------------------------

async function startUpstream () {
  const dir = join(tmp, 'nginx')
  writeSite(join(dir, 'www'), { bigBytes: BIG_BYTES })
  const port = await freePort()
  const entry = await startNginx(dir, port, [`server { listen 127.0.0.1:${port}; root ${dir}/www; location = /small { default_type text/plain; } }`])
  await waitReady({ name: 'nginx', port, host: 'localhost', processes: [entry] })
  return { port, entry }
}

async function startPorthole () {
  const dataDir = join(tmp, 'porthole')
  mkdirSync(dataDir)
  const sshPort = await freePort()
  const httpPort = await freePort()
  const httpsPort = await freePort()
  const agentPort = await freePort()
  const node = [...GATEWAY_NODE_FLAGS, ...benchNodeArgs(), ...(CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', RESULTS] : [])]
  const entry = startChild('porthole', ...onCore(0, process.execPath, [...node, join(ROOT, 'bin', 'porthole.js'), 'serve', '--data-dir', dataDir,
    '--ssh-addr', `127.0.0.1:${sshPort}`, '--http-addr', `127.0.0.1:${httpPort}`, '--https-addr', `127.0.0.1:${httpsPort}`,
    '--agent-addr', `127.0.0.1:${agentPort}`, '--api-addr', 'off', '--log-level', 'warn', ...benchGatewayArgs()]), { stopSignal: 'SIGINT' })
  await waitListening(sshPort, entry)
  return { sshPort, httpPort, httpsPort, agentPort, ca: join(dataDir, 'ca.pem'), entry }
}

/** The stock ssh client holding the tunnel open (-N -R ...); with `command`, it runs that on the gateway
 * instead (-T), `stdin` being sent to it (e.g. http --traffic-policy-file - < policy.yml). */
function startTunnel (name, key, sshPort, forward, command, stdin) {
  const session = command === undefined ? ['-N'] : ['-T']
  return startChild(`ssh client (${name})`, 'ssh', [...sshClientArgs(key, sshPort), '-o', 'LogLevel=ERROR', ...session, '-R', forward,
    `${userInfo().username}@127.0.0.1`, ...(command === undefined ? [] : [command])], { stdin })
}

/** Connects once with -v and reads the negotiated algorithms from the debug output (client defaults). */
function probeAlgorithms (key, sshPort) {
  return new Promise((resolve) => {
    const found = {}
    let entry = null
    let finished = false
    const done = () => {
      if (finished) return
      finished = true
      clearTimeout(timer)
      stopChild(entry, 1000).then(() => resolve(found))
    }
    const timer = setTimeout(done, 10_000)
    entry = startChild('ssh -v probe', 'ssh', [...sshClientArgs(key, sshPort), '-v', '-N', `${userInfo().username}@127.0.0.1`], {
      quiet: true,
      onStderr: (text) => {
        const kex = /kex: algorithm: (\S+)/.exec(text)
        if (kex) found.kex = kex[1]
        const hostKey = /kex: host key algorithm: (\S+)/.exec(text)
        if (hostKey) found.hostKey = hostKey[1]
        const cipher = /kex: server->client cipher: (\S+) MAC: (\S+)/.exec(text)
        if (cipher) { found.cipher = cipher[1]; found.mac = cipher[2] }
        if (/Authenticated to|Permission denied/.test(text)) done()
      },
    })
    entry.child.once('exit', done)
  })
}

/** The per-connection sshd processes' CPU ms (the listener only accepts, and is left out). */
const sshdCpuMs = (root) => treeCpuMs(root, { withRoot: false })

const cpuDelta = (before, after) => ({ gateway: after.gateway - before.gateway, client: after.client - before.client })

// --- measurements ----------------------------------------------------------------------------------

const TIME_UNITS = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

function parseTime (text) {
  const match = /^([\d.]+)(us|ms|s|m|h)$/.exec(text)
  if (!match) throw new Error(`unparsable wrk time ${text}`)
  return Number(match[1]) * TIME_UNITS[match[2]]
}

function parseWrk (out) {
  const number = (re) => { const m = re.exec(out); return m ? m[1] : null }
  const rps = number(/Requests\/sec:\s+([\d.]+)/)
  const requests = number(/(\d+) requests in /)
  const p50 = number(/^\s+50%\s+(\S+)/m)
  const p99 = number(/^\s+99%\s+(\S+)/m)
  if (rps === null || requests === null || p50 === null || p99 === null) throw new Error(`unparsable wrk output:\n${out}`)
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out)
  return {
    rps: Number(rps),
    requests: Number(requests),
    p50Ms: parseTime(p50),
    p99Ms: parseTime(p99),
    non2xx: Number(number(/Non-2xx or 3xx responses: (\d+)/) ?? 0),
    socketErrors: socket ? socket.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0,
  }
}

function wrk (target, duration) {
  return run('wrk', ['-t1', '-c50', `-d${duration}`, '--latency', '-H', `Host: ${target.host}`, `http://127.0.0.1:${target.port}/small`])
}

async function download (target) {
  const out = await run('curl', ['-s', '-o', '/dev/null', '--max-time', '300', '-w', '%{speed_download} %{size_download} %{http_code}',
    '-H', `Host: ${target.host}`, `http://127.0.0.1:${target.port}/big`])
  const [speed, size, status] = out.trim().split(' ').map(Number)
  if (status !== 200 || size !== BIG_BYTES) throw new Error(`${target.name}: /big gave HTTP ${status}, ${size} bytes`)
  return speed / 1e6
}

/** The first 256 MiB of /big, not counted: a gateway's first download also pays for compiling its hot paths
 *  (15-25% more CPU per GiB than later ones; bench/README.md, "Single-stream download"), which round 1 measured. */
async function warmDownload (target) {
  const out = await run('curl', ['-s', '-o', '/dev/null', '--max-time', '300', '-r', `0-${WARM_BYTES - 1}`, '-w', '%{size_download} %{http_code}',
    '-H', `Host: ${target.host}`, `http://127.0.0.1:${target.port}/big`])
  const [size, status] = out.trim().split(' ').map(Number)
  if (status !== 206 || size !== WARM_BYTES) throw new Error(`${target.name}: warm-up range of /big gave HTTP ${status}, ${size} bytes`)
}
const WARM_BYTES = 256 * 1024 * 1024

/** Seconds since the target's gateway started: lets a --cpu-prof profile be cut into phases (top-functions --window). */
const since = (target) => Number(((performance.now() - target.startedAt) / 1000).toFixed(2))

/** Gateway and ssh client CPU figures of one round, from the raw CPU ms of its wrk and /big phases. */
function cpuFigures (wrkCpu, bigCpu, requests) {
  return {
    cpuUsPerReq: wrkCpu.gateway * 1000 / requests,
    cpuMsPerGiB: bigCpu.gateway / (BIG_BYTES / GIB),
    clientCpuMsPerGiB: bigCpu.client / (BIG_BYTES / GIB),
    cpu: { wrk: wrkCpu, big: bigCpu },
  }
}

async function measure (target, round) {
  await wrk(target, WARMUP)
  const wrkStart = since(target)
  const cpuStart = target.cpu()
  const wrkOut = await wrk(target, DURATION)
  const cpuWrk = target.cpu()
  const bigStart = since(target)
  const mbps = await download(target)
  const cpuBig = target.cpu()
  const phases = { wrk: [wrkStart, bigStart], big: [bigStart, since(target)] }
  const http = parseWrk(wrkOut)
  const cpu = cpuFigures(cpuDelta(cpuStart, cpuWrk), cpuDelta(cpuWrk, cpuBig), http.requests)
  const sample = { target: target.name, round, ...http, mbps, ...cpu, phases }
  process.stdout.write(`  round ${round} ${target.name.padEnd(8)} ${http.rps.toFixed(0)} req/s  p50 ${http.p50Ms.toFixed(2)} ms  p99 ${http.p99Ms.toFixed(2)} ms  ${mbps.toFixed(1)} MB/s` +
    `  cpu ${cpu.cpuUsPerReq.toFixed(1)} µs/req ${cpu.cpuMsPerGiB.toFixed(0)} ms/GiB (client ${cpu.clientCpuMsPerGiB.toFixed(0)} ms/GiB)` +
    (http.non2xx || http.socketErrors ? `  (non-2xx ${http.non2xx}, socket errors ${http.socketErrors})` : '') + '\n')
  return sample
}

// --- Porthole HTTPS vs plain HTTP ----------------------------------------------------------------------
// Same gateway, same tunnel, same load generator for every variant: h2load, because wrk takes the TLS SNI
// from the URL host and bench.localhost does not resolve here, while h2load sends SNI and :authority from
// the URL and dials --connect-to instead. Plain HTTP is measured with h2load too (--h1), so the ratios
// compare listeners, not load generators. -m1: one request in flight per connection, as with wrk.

const HTTPS_HOST = 'bench.localhost'
const HTTPS_VARIANTS = [
  { name: 'http', label: 'http h1', scheme: 'http', alpn: 'http/1.1', curl: '--http1.1', curlVersion: '1.1' },
  { name: 'https-h1', label: 'https h1', scheme: 'https', alpn: 'http/1.1', curl: '--http1.1', curlVersion: '1.1' },
  { name: 'https-h2', label: 'https h2', scheme: 'https', alpn: 'h2', curl: '--http2', curlVersion: '2' },
]
const H2LOAD = '-t1 -c50 -m1'

const variantPort = (target, variant) => (variant.scheme === 'https' ? target.httpsPort : target.port)

/** curl options reaching the variant's listener: --resolve/--cacert for https (SNI bench.localhost), Host for http. */
function curlTarget (target, variant, path) {
  const port = variantPort(target, variant)
  return variant.scheme === 'https'
    ? [variant.curl, '--resolve', `${HTTPS_HOST}:${port}:127.0.0.1`, '--cacert', target.ca, `https://${HTTPS_HOST}:${port}${path}`]
    : [variant.curl, '-H', `Host: ${HTTPS_HOST}`, `http://127.0.0.1:${port}${path}`]
}

/** Polls until GET /small over HTTPS answers 200 with a certificate the local CA verifies. */
async function waitHttpsReady (target, ms = 20_000) {
  const deadline = Date.now() + ms
  let last = ''
  while (Date.now() < deadline) {
    for (const entry of target.processes) if (entry.exited) throw new Error(`${entry.name} exited: ${entry.log}`)
    try {
      const status = await run('curl', ['-s', '-o', '/dev/null', '--max-time', '2', '-w', '%{http_code}', ...curlTarget(target, HTTPS_VARIANTS[1], '/small')])
      if (status.trim() === '200') return
      last = `HTTP ${status.trim()}`
    } catch (error) { last = error.message.split('\n').slice(0, 2).join(' ') }
    await sleep(200)
  }
  throw new Error(`porthole https endpoint did not answer 200 within ${ms} ms (last: ${last})`)
}

/** Percentile (nearest rank) of an ascending array. */
const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p / 100 * sorted.length) - 1))]

/** req/s, counts and TLS details from h2load's summary; p50/p99 from its per-request log (main phase only:
 * requests that straddle the end of the warm-up are logged with status 0, their duration is still right). */
function parseH2load (out, logFile, variant) {
  const number = (re) => { const m = re.exec(out); return m ? m[1] : null }
  const rps = number(/finished in [\d.]+\w+, ([\d.]+) req\/s/)
  const counts = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(out)
  const statuses = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out)
  const alpn = number(/Application protocol: (\S+)/)
  if (rps === null || !counts || !statuses) throw new Error(`unparsable h2load output:\n${out}`)
  if (alpn !== variant.alpn) throw new Error(`${variant.name}: h2load negotiated ${alpn}, expected ${variant.alpn}\n${out}`)
  const durations = []
  for (const line of readFileSync(logFile, 'utf8').split('\n')) if (line) durations.push(Number(line.split('\t')[2]) / 1000)
  if (durations.length === 0) throw new Error(`${variant.name}: h2load logged no requests\n${out}`)
  durations.sort((a, b) => a - b)
  return {
    rps: Number(rps),
    requests: Number(counts[4]),
    p50Ms: percentile(durations, 50),
    p99Ms: percentile(durations, 99),
    non2xx: statuses.slice(2).reduce((sum, n) => sum + Number(n), 0),
    errors: Number(counts[5]) + Number(counts[6]) + Number(counts[7]),
    tls: variant.scheme === 'https' ? { protocol: number(/TLS Protocol: (\S+)/), cipher: number(/Cipher: (\S+)/), serverTempKey: number(/Server Temp Key: (.+)/)?.trim() ?? null, alpn } : null,
  }
}

/** One h2load run: WARMUP (connections opened and kept, not counted), then DURATION measured. The gateway's
 * CPU is read when the warm-up ends (timer from the spawn) and after h2load exits. */
async function h2load (target, variant) {
  const port = variantPort(target, variant)
  const logFile = join(tmp, 'h2load.log')
  rmSync(logFile, { force: true }) // h2load appends
  const protocol = variant.alpn === 'h2' ? ['--npn-list=h2'] : ['--h1']
  const args = [...H2LOAD.split(' '), '-D', DURATION, `--warm-up-time=${WARMUP}`, `--log-file=${logFile}`, ...protocol,
    `--connect-to=127.0.0.1:${port}`, `${variant.scheme}://${HTTPS_HOST}:${port}/small`]
  let start = null
  const timer = setTimeout(() => { start = { at: since(target), cpu: target.cpu() } }, parseTime(WARMUP))
  let out
  try { out = await run('h2load', args) } finally { clearTimeout(timer) }
  if (!start) throw new Error(`h2load ${variant.name} exited before its warm-up ended:\n${out}`)
  const end = { at: since(target), cpu: target.cpu() }
  return { ...parseH2load(out, logFile, variant), window: [start.at, end.at], wrkCpu: cpuDelta(start.cpu, end.cpu) }
}

async function downloadVariant (target, variant) {
  const out = await run('curl', ['-s', '-o', '/dev/null', '--max-time', '300', '-w', '%{speed_download} %{size_download} %{http_code} %{http_version}',
    ...curlTarget(target, variant, '/big')])
  const [speed, size, status, version] = out.trim().split(' ')
  if (Number(status) !== 200 || Number(size) !== BIG_BYTES || version !== variant.curlVersion) {
    throw new Error(`${variant.name}: /big gave HTTP ${status} (version ${version}), ${size} bytes`)
  }
  return Number(speed) / 1e6
}

/** One round of the HTTPS part: per variant, h2load on /small then one curl download of /big. The variant
 * order rotates with the round, so no variant always runs first. */
async function measureHttps (target, round) {
  const samples = []
  const shift = (round - 1) % HTTPS_VARIANTS.length
  for (const variant of [...HTTPS_VARIANTS.slice(shift), ...HTTPS_VARIANTS.slice(0, shift)]) {
    const { window, wrkCpu, tls, ...http } = await h2load(target, variant)
    const bigStart = since(target)
    const cpuBefore = target.cpu()
    const mbps = await downloadVariant(target, variant)
    const bigCpu = cpuDelta(cpuBefore, target.cpu())
    const cpu = cpuFigures(wrkCpu, bigCpu, http.requests)
    const sample = { target: variant.name, round, ...http, mbps, ...cpu, tls, phases: { h2load: window, big: [bigStart, since(target)] } }
    process.stdout.write(`  round ${round} ${variant.label.padEnd(8)} ${http.rps.toFixed(0)} req/s  p50 ${http.p50Ms.toFixed(2)} ms  p99 ${http.p99Ms.toFixed(2)} ms  ${mbps.toFixed(1)} MB/s` +
      `  cpu ${cpu.cpuUsPerReq.toFixed(1)} µs/req ${cpu.cpuMsPerGiB.toFixed(0)} ms/GiB (client ${cpu.clientCpuMsPerGiB.toFixed(0)} ms/GiB)` +
      (http.non2xx || http.errors ? `  (non-2xx ${http.non2xx}, failed/errored/timeout ${http.errors})` : '') + '\n')
    samples.push(sample)
  }
  return samples
}

// --- Porthole with a traffic policy vs without ------------------------------------------------------
// Same gateway, same upstream, same wrk load: two endpoints, one bound with no policy, one with
// bench/policy.yml sent on stdin (--traffic-policy-file -). Alternating, the order swapped every round.

const POLICY_FILE = join(ROOT, 'bench', 'policy.yml')
const POLICY_VARIANTS = [
  { name: 'no-policy', label: 'no policy', sub: 'bench-plain' },
  { name: 'policy', label: 'policy', sub: 'bench-policy' },
]
const POLICY_METRICS = [['rps', 'req/s'], ['p50Ms', 'p50 ms'], ['p99Ms', 'p99 ms'], ['cpuUsPerReq', 'cpu µs/req']]

/** Response headers of one GET /small through a target. */
function responseHeaders (target) {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port: target.port, path: '/small', headers: { host: target.host }, agent: false, timeout: 5000 }, (res) => {
      res.resume()
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers }))
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', reject)
    req.end()
  })
}

/** The policy endpoint must really run the policy (and the other none), or the comparison means nothing. */
async function checkPolicyApplied (plain, policy) {
  const [a, b] = [await responseHeaders(plain), await responseHeaders(policy)]
  if (a.status !== 200 || a.headers['x-served-by'] !== undefined || a.headers.server === undefined) {
    throw new Error(`no-policy endpoint: unexpected response ${a.status} ${JSON.stringify(a.headers)}`)
  }
  if (b.status !== 200 || b.headers['x-served-by'] !== `porthole ${policy.host}` || b.headers.server !== undefined) {
    throw new Error(`policy endpoint: the policy did not apply: ${b.status} ${JSON.stringify(b.headers)}`)
  }
}

/** One wrk run (after the warm-up) with the gateway's CPU read around it. */
async function measureWrk (target, round) {
  await wrk(target, WARMUP)
  const start = since(target)
  const cpuStart = target.cpu()
  const out = await wrk(target, DURATION)
  const cpu = cpuDelta(cpuStart, target.cpu())
  const http = parseWrk(out)
  const sample = { target: target.name, round, ...http, cpuUsPerReq: cpu.gateway * 1000 / http.requests, cpu: { wrk: cpu }, phases: { wrk: [start, since(target)] } }
  process.stdout.write(`  round ${round} ${target.label.padEnd(9)} ${http.rps.toFixed(0)} req/s  p50 ${http.p50Ms.toFixed(2)} ms  p99 ${http.p99Ms.toFixed(2)} ms` +
    `  cpu ${sample.cpuUsPerReq.toFixed(1)} µs/req` + (http.non2xx || http.socketErrors ? `  (non-2xx ${http.non2xx}, socket errors ${http.socketErrors})` : '') + '\n')
  if (http.non2xx) throw new Error(`${target.name}: ${http.non2xx} non-2xx responses`)
  return sample
}

function summarisePolicy (samples) {
  const medians = {}
  for (const { name } of POLICY_VARIANTS) {
    const mine = samples.filter((s) => s.target === name)
    medians[name] = Object.fromEntries(POLICY_METRICS.map(([key]) => [key, median(mine.map((s) => s[key]))]))
  }
  const ratio = Object.fromEntries(POLICY_METRICS.map(([key]) => [key, medians.policy[key] / medians['no-policy'][key]]))
  return { medians, ratio }
}

function printPolicyTable ({ medians, ratio }) {
  process.stdout.write('\nPorthole policy / no policy (same gateway and upstream; bench/policy.yml: 1 IP rule, 5 header rules)\n')
  const rows = [['metric', 'no policy', 'policy', 'ratio (policy/no policy)']]
  for (const [key, label] of POLICY_METRICS) rows.push([label, fmt(medians['no-policy'][key]), fmt(medians.policy[key]), ratio[key].toFixed(3)])
  printRows(rows)
}

// --- agents part: the same gateway and upstream, an ssh client's endpoint against an ngrok SDK's ----------

const AGENT_VARIANTS = [{ name: 'ssh', label: 'ssh -R', sub: 'bench-ssh' }, { name: 'ngrok', label: 'ngrok SDK', sub: 'bench-ngrok' }]

const INSPECT_VARIANTS = [{ name: 'off', label: '--inspect=false', sub: 'bench-noinspect', command: 'http --inspect=false' }, { name: 'on', label: 'captured', sub: 'bench-inspect', command: 'http' }]

/** Medians per variant of a two-variant part, and the second over the first. */
function summarisePair (samples, variants) {
  const medians = {}
  for (const { name } of variants) {
    const mine = samples.filter((s) => s.target === name)
    medians[name] = Object.fromEntries(METRICS.map(([key]) => [key, median(mine.map((s) => s[key]))]))
  }
  const [base, other] = variants.map((v) => v.name)
  const ratio = Object.fromEntries(METRICS.map(([key]) => [key, medians[other][key] / medians[base][key]]))
  return { medians, ratio }
}

function printPairTable ({ medians, ratio }, variants, title) {
  process.stdout.write(`\n${title}\n`)
  const [base, other] = variants
  const rows = [['metric', base.label, other.label, `ratio (${other.name}/${base.name})`]]
  for (const [key, label] of METRICS) rows.push([label, fmt(medians[base.name][key]), fmt(medians[other.name][key]), ratio[key].toFixed(2)])
  printRows(rows)
}

// --- report ----------------------------------------------------------------------------------------

const METRICS = [['rps', 'req/s'], ['mbps', 'MB/s'], ['p50Ms', 'p50 ms'], ['p99Ms', 'p99 ms'],
  ['cpuUsPerReq', 'cpu µs/req'], ['cpuMsPerGiB', 'cpu ms/GiB'], ['clientCpuMsPerGiB', 'client cpu ms/GiB']]

function summarise (samples, names) {
  const medians = {}
  for (const name of names) {
    const mine = samples.filter((s) => s.target === name)
    medians[name] = Object.fromEntries(METRICS.map(([key]) => [key, median(mine.map((s) => s[key]))]))
  }
  const ratio = names.length === 2
    ? Object.fromEntries(METRICS.map(([key]) => [key, medians.porthole[key] / medians.sshd[key]]))
    : null
  return { medians, ratio }
}

const fmt = (v) => (v === undefined ? '-' : v >= 100 ? v.toFixed(0) : v.toFixed(2))

function printTable ({ medians, ratio }) {
  const rows = [['metric', 'sshd', 'porthole', 'ratio (porthole/sshd)']]
  for (const [key, label] of METRICS) {
    rows.push([label, fmt(medians.sshd?.[key]), fmt(medians.porthole?.[key]), ratio ? ratio[key].toFixed(2) : '-'])
  }
  printRows(rows)
}

/** The HTTPS part's metrics: the ssh client's CPU is left out (the same tunnel carries every variant). */
const HTTPS_METRICS = METRICS.filter(([key]) => key !== 'clientCpuMsPerGiB')

/** Medians per variant, and each https variant over plain http. */
function summariseHttps (samples) {
  const medians = {}
  for (const { name } of HTTPS_VARIANTS) {
    const mine = samples.filter((s) => s.target === name)
    medians[name] = Object.fromEntries(METRICS.map(([key]) => [key, median(mine.map((s) => s[key]))]))
  }
  const ratio = Object.fromEntries(HTTPS_VARIANTS.filter((v) => v.scheme === 'https').map(({ name }) =>
    [`${name}/http`, Object.fromEntries(METRICS.map(([key]) => [key, medians[name][key] / medians.http[key]]))]))
  return { medians, ratio }
}

function printHttpsTable ({ medians, ratio }, tls) {
  process.stdout.write(`\nPorthole HTTPS / HTTP${tls ? ` (${tls.protocol} ${tls.cipher}, key exchange ${tls.serverTempKey})` : ''}\n`)
  const ratios = Object.keys(ratio)
  const rows = [['metric', ...HTTPS_VARIANTS.map((v) => v.label), ...ratios.map((r) => r.replace('https-', 'https ').replace('/http', ' / http'))]]
  for (const [key, label] of HTTPS_METRICS) {
    rows.push([label, ...HTTPS_VARIANTS.map((v) => fmt(medians[v.name][key])), ...ratios.map((r) => ratio[r][key].toFixed(2))])
  }
  printRows(rows)
}

/** A markdown table, columns padded. */
function printRows (rows) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)))
  const line = (r) => `| ${r.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`
  process.stdout.write(`\n${line(rows[0])}\n|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|\n${rows.slice(1).map(line).join('\n')}\n`)
}

/** First line a tool prints about its version (some print it on stderr, wrk exits non-zero). */
function toolVersions () {
  const first = (cmd, args) => {
    const { stdout = '', stderr = '' } = spawnSync(cmd, args, { encoding: 'utf8' })
    return `${stdout}${stderr}`.split('\n').find((line) => line.trim() !== '')?.trim() ?? ''
  }
  return {
    ssh: first('ssh', ['-V']), sshd: first('/usr/sbin/sshd', ['-V']), nginx: first('nginx', ['-v']), wrk: first('wrk', ['-v']), curl: first('curl', ['--version']),
    h2load: first('h2load', ['--version']),
  }
}

// --- main ------------------------------------------------------------------------------------------

async function main () {
  if (ONLY && !ONLY.every((part) => PARTS.includes(part))) throw new Error(`--only must be one or more of ${PARTS.join(', ')} (comma-separated)`)
  const wanted = (part) => ONLY === null || ONLY.includes(part)
  if (wanted('https') && spawnSync('h2load', ['--version']).error) {
    throw new Error('the HTTPS part needs h2load on PATH (Debian: apt-get install nghttp2-client); or run --only=sshd / --only=porthole')
  }
  tmp = mkdtempSync(join(tmpdir(), 'porthole-bench-'))
  chmodSync(tmp, 0o755) // nginx workers run as an unprivileged user and must reach www/
  mkdirSync(RESULTS, { recursive: true })
  pinSelf(1) // the load (wrk, curl, h2load), nginx and the agents inherit core 1; sshd and Porthole start on core 0
  const clientKey = keygen(join(tmp, 'client_ed25519'))
  const nginx = await startUpstream()
  const targets = []
  const ciphers = {}
  let https = null // the porthole gateway, for the HTTPS part

  if (wanted('sshd')) {
    const startedAt = performance.now()
    const sshd = await startSshd(join(tmp, 'sshd'), clientKey, { core: 0 })
    const port = await freePort()
    const tunnel = startTunnel('sshd', clientKey, sshd.port, `127.0.0.1:${port}:127.0.0.1:${nginx.port}`)
    const cpu = () => ({ gateway: sshdCpuMs(sshd.entry.child.pid), client: processCpuMs(tunnel.child.pid) })
    targets.push({ name: 'sshd', port, host: `127.0.0.1:${port}`, processes: [sshd.entry, tunnel], startedAt, cpu })
    ciphers.sshd = await probeAlgorithms(clientKey, sshd.port)
  }
  let policyTargets = null // the two endpoints of the policy part
  let agentTargets = null // the two endpoints of the agents part
  let inspectTargets = null // the two endpoints of the inspect part
  if (wanted('porthole') || wanted('https') || wanted('policy') || wanted('agents') || wanted('inspect')) {
    const startedAt = performance.now()
    const porthole = await startPorthole()
    const tunnel = startTunnel('porthole', clientKey, porthole.sshPort, `bench:80:127.0.0.1:${nginx.port}`)
    const cpu = () => ({ gateway: processCpuMs(porthole.entry.child.pid), client: processCpuMs(tunnel.child.pid) })
    const target = { name: 'porthole', port: porthole.httpPort, httpsPort: porthole.httpsPort, ca: porthole.ca, host: 'bench.localhost', processes: [porthole.entry, tunnel], startedAt, cpu }
    if (wanted('porthole')) targets.push(target)
    if (wanted('https')) https = target
    if (wanted('policy')) {
      const gatewayCpu = () => processCpuMs(porthole.entry.child.pid)
      policyTargets = POLICY_VARIANTS.map((variant) => {
        const forward = `${variant.sub}:80:127.0.0.1:${nginx.port}`
        const tunnel = variant.name === 'policy'
          ? startTunnel(`porthole ${variant.label}`, clientKey, porthole.sshPort, forward, 'http --traffic-policy-file -', readFileSync(POLICY_FILE, 'utf8'))
          // The same session shape (-T and an `http` command, whose request lines go to the terminal): with -N
          // the baseline would skip the per-request log line and the comparison would measure that, not the policy.
          : startTunnel(`porthole ${variant.label}`, clientKey, porthole.sshPort, forward, 'http', '')
        return { name: variant.name, label: variant.label, port: porthole.httpPort, host: `${variant.sub}.localhost`, processes: [porthole.entry, tunnel], startedAt,
          cpu: () => ({ gateway: gatewayCpu(), client: processCpuMs(tunnel.child.pid) }) }
      })
    }
    if (wanted('agents')) {
      const gatewayCpu = () => processCpuMs(porthole.entry.child.pid)
      agentTargets = AGENT_VARIANTS.map((variant) => {
        const agent = variant.name === 'ssh'
          ? startTunnel(`porthole ${variant.label}`, clientKey, porthole.sshPort, `${variant.sub}:80:127.0.0.1:${nginx.port}`)
          : startChild('ngrok SDK agent', process.execPath, [join(ROOT, 'bench', 'ngrok-agent.js'), `localhost:${porthole.agentPort}`, porthole.ca,
            `${variant.sub}.localhost`, `http://127.0.0.1:${nginx.port}`])
        return { name: variant.name, label: variant.label, port: porthole.httpPort, host: `${variant.sub}.localhost`, processes: [porthole.entry, agent], startedAt,
          cpu: () => ({ gateway: gatewayCpu(), client: processCpuMs(agent.child.pid) }) }
      })
    }
    if (wanted('inspect')) {
      const gatewayCpu = () => processCpuMs(porthole.entry.child.pid)
      inspectTargets = INSPECT_VARIANTS.map((variant) => {
        const tunnel = startTunnel(`porthole ${variant.label}`, clientKey, porthole.sshPort, `${variant.sub}:80:127.0.0.1:${nginx.port}`, variant.command, '')
        return { name: variant.name, label: variant.label, port: porthole.httpPort, host: `${variant.sub}.localhost`, processes: [porthole.entry, tunnel], startedAt,
          cpu: () => ({ gateway: gatewayCpu(), client: processCpuMs(tunnel.child.pid) }) }
      })
    }
    ciphers.porthole = await probeAlgorithms(clientKey, porthole.sshPort)
  }
  for (const target of targets) await waitReady(target)
  if (https) {
    await waitReady(https)
    await waitHttpsReady(https)
  }
  if (policyTargets) {
    for (const target of policyTargets) await waitReady(target)
    await checkPolicyApplied(...policyTargets)
  }
  if (agentTargets) for (const target of agentTargets) await waitReady(target)
  if (inspectTargets) for (const target of inspectTargets) await waitReady(target)
  // Read /big once straight from nginx: the first read of the sparse file fills the page cache, and would
  // otherwise slow down whichever target downloads first.
  await download({ name: 'nginx (page cache warm-up)', port: nginx.port, host: 'localhost' })
  for (const target of targets) await warmDownload(target)
  // An uncounted 5 s of wrk per wrk target: round 1 still compiled the request path (its CPU per request was
  // ~1.5x later rounds', and a 2-round policy median swung to 1.5x on it).
  for (const target of [...targets, ...(policyTargets ?? []), ...(agentTargets ?? []), ...(inspectTargets ?? [])]) await wrk(target, '5s')

  const load = [targets.length || policyTargets || agentTargets || inspectTargets ? `wrk -t1 -c50 -d${DURATION} (after ${WARMUP} warm-up)` : null, https ? `h2load ${H2LOAD} -D ${DURATION} (after ${WARMUP} warm-up)` : null]
  process.stdout.write(`bench: ${load.filter(Boolean).join(' and ')}${targets.length || https ? ', curl 1 GiB' : ''}; ${ROUNDS} round(s), median taken${CPU_PROF ? '; porthole under --cpu-prof (slower)' : ''}${PINNED ? '; sshd and porthole on core 0, the rest on core 1' : ''}\n`)
  if (https) {
    process.stdout.write(`  https part: h2load ${H2LOAD} -D ${DURATION} --warm-up-time=${WARMUP} for ${HTTPS_VARIANTS.map((v) => v.label).join(', ')} ` +
      `(SNI ${HTTPS_HOST}); curl 1 GiB --http1.1 / --http2\n`)
  }
  for (const [name, found] of Object.entries(ciphers)) {
    process.stdout.write(`  ${name.padEnd(8)} cipher ${found.cipher ?? '?'} (MAC ${found.mac ?? '?'}, kex ${found.kex ?? '?'})\n`)
  }
  if (policyTargets) process.stdout.write(`  policy part: wrk on /small only (no /big), no policy and policy alternating, order swapped each round\n`)
  const samples = []
  const httpsSamples = []
  const policySamples = []
  const agentSamples = []
  const inspectSamples = []
  for (let round = 1; round <= ROUNDS; round++) {
    for (const target of targets) samples.push(await measure(target, round))
    if (https) httpsSamples.push(...await measureHttps(https, round))
    if (policyTargets) {
      for (const target of round % 2 ? policyTargets : [...policyTargets].reverse()) policySamples.push(await measureWrk(target, round))
    }
    if (agentTargets) {
      for (const target of round % 2 ? agentTargets : [...agentTargets].reverse()) agentSamples.push(await measure(target, round))
    }
    if (inspectTargets) {
      for (const target of round % 2 ? inspectTargets : [...inspectTargets].reverse()) inspectSamples.push(await measure(target, round))
    }
  }
  const summary = summarise(samples, targets.map((t) => t.name))
  if (targets.length) printTable(summary)
  const httpsSummary = https ? summariseHttps(httpsSamples) : null
  if (httpsSummary) {
    printHttpsTable(httpsSummary, httpsSamples.find((s) => s.tls)?.tls)
  }
  const policySummary = policyTargets ? summarisePolicy(policySamples) : null
  if (policySummary) printPolicyTable(policySummary)
  const agentsSummary = agentTargets ? summarisePair(agentSamples, AGENT_VARIANTS) : null
  if (agentsSummary) printPairTable(agentsSummary, AGENT_VARIANTS, 'Porthole agent transports: ngrok SDK / ssh -R (same gateway and upstream; client cpu: the ssh client or the SDK process)')
  const inspectSummary = inspectTargets ? summarisePair(inspectSamples, INSPECT_VARIANTS) : null
  if (inspectSummary) printPairTable(inspectSummary, INSPECT_VARIANTS, 'Request capture: captured / --inspect=false (same gateway, upstream and ssh client)')

  const date = new Date().toISOString()
  const file = join(RESULTS, `${date.replace(/[:.]/g, '-')}.json`)
  writeFileSync(file, JSON.stringify({
    date,
    node: process.version,
    tools: toolVersions(),
    settings: { duration: DURATION, warmup: WARMUP, rounds: ROUNDS, wrk: '-t1 -c50', bigBytes: BIG_BYTES, cpuMsPerTick: MS_PER_TICK, cpuProf: CPU_PROF, only: ONLY, pinned: PINNED },
    ciphers,
    medians: summary.medians,
    ratio: summary.ratio,
    samples,
    https: httpsSummary && {
      loadGenerator: `h2load ${H2LOAD} -D ${DURATION} --warm-up-time=${WARMUP} --connect-to=127.0.0.1:PORT (SNI ${HTTPS_HOST})`,
      variants: HTTPS_VARIANTS,
      medians: httpsSummary.medians,
      ratio: httpsSummary.ratio,
      samples: httpsSamples,
    },
    agents: agentsSummary && {
      agent: '@ngrok/ngrok (bench/ngrok-agent.js) against the stock ssh client, same gateway and nginx upstream',
      medians: agentsSummary.medians,
      ratio: agentsSummary.ratio,
      samples: agentSamples,
    },
    inspect: inspectSummary && {
      medians: inspectSummary.medians,
      ratio: inspectSummary.ratio,
      samples: inspectSamples,
    },
    policy: policySummary && {
      document: readFileSync(POLICY_FILE, 'utf8'),
      medians: policySummary.medians,
      ratio: policySummary.ratio,
      samples: policySamples,
    },
  }, null, 2) + '\n')
  process.stdout.write(`\nraw figures: ${file}\n`)
}

process.on('SIGINT', () => { cleanup(tmp).finally(() => process.exit(130)) })
process.on('SIGTERM', () => { cleanup(tmp).finally(() => process.exit(143)) })
process.on('exit', killAll)

let failed = false
try {
  await main()
} catch (error) {
  failed = true
  if (!isStopping()) process.stderr.write(`bench failed: ${error.stack ?? error}\n`)
} finally {
  await cleanup(tmp)
  if (CPU_PROF) {
    process.stdout.write(`cpu profile written to ${RESULTS}; summarise with: node bench/top-functions.js FILE [--window=FROM-TO]\n` +
      '(the "phases" of each porthole sample in the JSON give the wrk and /big windows, and those of each https.samples entry\n' +
      'the h2load and /big windows, in seconds since porthole started)\n')
  }
}
process.exitCode = failed ? 1 : 0
