// `node bench/scale.js`: is the gateway flat as tunnels grow (issue 13)? Three scenarios, each printing its figure:
//   idle-memory     RSS per idle tunnel at 1,000 / 5,000 (/ 20,000) tunnels, read from /proc/PID/status VmRSS
//   setup-rate      gateway CPU per new tunnel (one SSH session with one -R each) with 0 and with N already up
//   many-endpoints  gateway CPU per request, wrk with a random Host over 1,000 endpoints vs all on one endpoint,
//                   the 1,000 in one SSH session (as one ngrok or frp agent holds many) and in 63
// The agents are ssh2 Clients in this process (many sessions, up to 16 forwards each, a fresh ed25519 key per
// session, source addresses spread over 127.0.0.x), answering forwarded channels with an in-process HTTP server.
// The gateway runs under `taskset -c 0`, this process and wrk under `taskset -c 1` (when the box has 2+ cores),
// so the load generator and the agents do not share the gateway's core. CPU is utime+stime from /proc.
//
//   node bench/scale.js [--only=idle-memory|setup-rate|many-endpoints] [--tunnels=1000,5000] [--up=5000]
//                       [--per-session=16] [--warm-batches=3] [--batches=3] [--cpu-prof] [--heap-snapshots]
//   env BENCH_DURATION=5s BENCH_ROUNDS=2 (many-endpoints wrk runs), BENCH_PORTHOLE_BIN (another build's bin/porthole.js),
//       BENCH_GATEWAY_ARGS (more `porthole serve` flags, space-separated), BENCH_NODE_ARGS (more node flags for the
//       gateway, e.g. "--heapsnapshot-signal=SIGUSR2"), BENCH_GATEWAY_STDOUT (a file that gets a copy of
//       what the gateway prints, e.g. with BENCH_NODE_ARGS=--trace-deopt), BENCH_STREAMS_PER_SESSION (many-endpoints'
//       --max-streams-per-session, default 8,000: room for the 1,000 endpoints' parked streams)
import { spawn, execFileSync } from 'node:child_process'
import { createWriteStream, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, mkdirSync } from 'node:fs'
import { createServer } from 'node:http'
import { cpus, tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import ssh2 from 'ssh2'
import { WebSocket } from 'undici'
import { GATEWAY_NODE_FLAGS } from '../dist/cli/node-flags.js'
import { benchGatewayArgs, benchNodeArgs, median, sleep } from './processes.js'

const { Client, utils } = ssh2
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const ARGS = process.argv.slice(2)
const arg = (name, fallback) => ARGS.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback
const ONLY = arg('only', null)
const TUNNELS = arg('tunnels', '1000,5000').split(',').map(Number)
const UP = Number(arg('up', '5000'))
const DURATION = process.env.BENCH_DURATION || '5s'
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS || 2))
const PER_SESSION = Number(arg('per-session', '16')) // the gateway's default --max-forwards-per-session
const CPU_PROF = ARGS.includes('--cpu-prof')
/** setup-rate: uncounted batches before the measured ones (a running gateway has compiled its session code). */
const WARM_BATCHES = Number(arg('warm-batches', '3'))
/** setup-rate: measured batches per figure, the median taken (consecutive batches vary by +-20%). */
const BATCHES = Number(arg('batches', '3'))
const HEAP_SNAPSHOTS = ARGS.includes('--heap-snapshots')
const TWO_CORES = cpus().length >= 2
const CLK_TCK = 100
const PAGE = 4096

if (TWO_CORES) execFileSync('taskset', ['-cp', '1', String(process.pid)], { stdio: 'ignore' })
mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true })

/** Read and write system calls the process has made so far (/proc/PID/io: every read-like and write-like call). */
function syscalls (pid) {
  const io = readFileSync(`/proc/${pid}/io`, 'utf8')
  return Number(/syscr: (\d+)/.exec(io)?.[1] ?? 0) + Number(/syscw: (\d+)/.exec(io)?.[1] ?? 0)
}

function cpuMs (pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 1000 / CLK_TCK
}

/** CPU ms of the gateway's main thread and of all its other threads (GC helpers, JIT compilers, libuv pool). */
function threadCpuMs (pid) {
  let main = 0
  let other = 0
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let fields
    try {
      fields = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8').split(') ')[1].split(' ')
    } catch {
      continue // the thread ended
    }
    const ms = (Number(fields[11]) + Number(fields[12])) * 1000 / CLK_TCK
    if (tid === String(pid)) main += ms
    else other += ms
  }
  return { main, other }
}

function rssKiB (pid) {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return Number(match[1])
}

/** RSS once it stops moving (two reads 1 s apart within 1%), at most ~15 s. */
async function settledRss (pid) {
  let last = rssKiB(pid)
  for (let i = 0; i < 15; i++) {
    await sleep(1000)
    const now = rssKiB(pid)
    if (Math.abs(now - last) <= last * 0.01) return now
    last = now
  }
  return last
}

// --- gateway -----------------------------------------------------------------------------------------------

async function startGateway (extra = [], nodeFlags = []) {
  const dataDir = mkdtempSync(join(tmpdir(), 'porthole-scale-'))
  const args = [...(TWO_CORES ? ['-c', '0', process.execPath] : [process.execPath]), '--max-old-space-size=4096', ...GATEWAY_NODE_FLAGS,
    ...nodeFlags, ...benchNodeArgs(),
    ...(HEAP_SNAPSHOTS ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${join(ROOT, 'bench', 'results')}`] : []), ...(CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${join(ROOT, 'bench', 'results')}`] : []), process.env.BENCH_PORTHOLE_BIN ?? join(ROOT, 'bin', 'porthole.js'), 'serve',
    '--ssh-addr', '127.0.0.1:0', '--http-addr', '127.0.0.1:0', '--https-addr', '127.0.0.1:0', '--api-addr', 'off', '--agent-addr', 'off',
    '--data-dir', dataDir, '--log-level', 'info', '--inspect=false',
    // The caps that would stop the bench long before memory does (an anonymous loopback gateway):
    '--max-anonymous-sessions', '100000', '--max-anonymous-sessions-per-source', '100000',
    '--max-startups', '1000:30:100000', '--per-source-max-startups', '100000', '--max-anonymous-holds', '1000000', ...extra,
    ...benchGatewayArgs()]
  const startedAt = Date.now()
  const proc = spawn(TWO_CORES ? 'taskset' : args.shift(), args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PORTHOLE_LOG_LEVEL: 'info' } })
  let out = ''
  let err = ''
  proc.stdout.setEncoding('utf8').on('data', (text) => { if (out.length < 1e6) out += text })
  // BENCH_GATEWAY_STDOUT=FILE: a copy of all the gateway prints (e.g. with BENCH_NODE_ARGS=--trace-deopt).
  if (process.env.BENCH_GATEWAY_STDOUT) proc.stdout.pipe(createWriteStream(process.env.BENCH_GATEWAY_STDOUT))
  proc.stderr.setEncoding('utf8').on('data', (text) => { if (err.length < 1e6) err += text })
  for (let i = 0; i < 300; i++) {
    const line = out.split('\n').find((l) => l.includes('porthole gateway listening'))
    if (line) {
      const info = JSON.parse(line)
      const port = (addr) => Number(addr.split(':').at(-1))
      // The node process itself (taskset execs it: same pid).
      const tail = () => out.split('\n').filter((l) => /"level":(40|50|60)/.test(l)).slice(-5).join('\n') + err.slice(-2000)
      return { proc, pid: proc.pid, startedAt, stderr: () => err, metrics: info.metrics && info.metrics !== 'off' ? port(info.metrics) : null, ssh: port(info.ssh), http: port(info.http), dataDir, tail, stop: () => stopGateway(proc, dataDir) }
    }
    if (proc.exitCode !== null) throw new Error(`gateway exited: ${err}${out}`)
    await sleep(100)
  }
  throw new Error(`gateway did not start: ${err}`)
}

async function stopGateway (proc, dataDir) {
  if (proc.exitCode === null) {
    proc.kill(CPU_PROF ? 'SIGINT' : 'SIGTERM')
    await Promise.race([new Promise((resolve) => proc.once('exit', resolve)), sleep(10_000)])
    if (proc.exitCode === null) proc.kill('SIGKILL')
  }
  rmSync(dataDir, { recursive: true, force: true })
}

// --- agents --------------------------------------------------------------------------------------------------

let upstreamServer = null
/** An in-process HTTP upstream fed the forwarded channels directly (no loopback socket). */
function upstream () {
  upstreamServer ??= createServer({ keepAliveTimeout: 300_000 }, (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 100 })
    res.end('x'.repeat(99) + '\n')
  })
  return upstreamServer
}

/** A fresh ed25519 key (each session its own owner). ssh2 now and then cannot parse one it generated: retry. */
function newKey () {
  for (;;) {
    const key = utils.generateKeyPairSync('ed25519').private
    if (!(utils.parseKey(key) instanceof Error)) return key
  }
}

let sourceCounter = 0
/** One SSH session holding `names` (each '' for a random name, or a label); resolves once every forward is bound. */
async function openSession (gateway, names) {
  const conn = new Client()
  const key = newKey()
  const localAddress = `127.0.0.${1 + (sourceCounter++ % 200)}`
  conn.on('tcp connection', (_info, accept) => upstream().emit('connection', accept()))
  await new Promise((resolve, reject) => {
    conn.once('ready', resolve)
    conn.on('error', (error) => reject(new Error(`${error.message}; gateway says:\n${gateway.tail()}`)))
    conn.connect({ host: '127.0.0.1', port: gateway.ssh, localAddress, username: 'bench', privateKey: key, readyTimeout: 60_000, keepaliveInterval: 0 })
  })
  await Promise.all(names.map((name) => new Promise((resolve, reject) => conn.forwardIn(name, 80, (error) => error ? reject(error) : resolve()))))
  return conn
}

let nameCounter = 0
/** `count` tunnels in sessions of up to PER_SESSION, `parallel` sessions connecting at once; names from nameOf(i). */
async function openTunnels (gateway, count, nameOf = () => `n${nameCounter++}`, parallel = 16) {
  const sessions = []
  let next = 0
  const worker = async () => {
    while (next < count) {
      const from = next
      next = Math.min(count, next + PER_SESSION)
      const names = []
      for (let i = from; i < next; i++) names.push(nameOf(i))
      sessions.push(await openSession(gateway, names))
    }
  }
  await Promise.all(Array.from({ length: parallel }, worker))
  return sessions
}

function closeAll (sessions) {
  for (const conn of sessions) conn.end()
}

// --- scenarios ---------------------------------------------------------------------------------------------

/** The gateway's V8 heap in use and external memory (prom-client's process metrics on --metrics-addr), bytes. */
async function heapOf (gateway) {
  if (gateway.metrics === null) return null
  const text = await (await fetch(`http://127.0.0.1:${gateway.metrics}/metrics`)).text()
  const read = (name) => Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1] ?? NaN)
  const newSpace = Number(/^nodejs_heap_space_size_total_bytes\{space="new"\} (\S+)/m.exec(text)?.[1] ?? 0)
  return { heapUsed: read('nodejs_heap_size_used_bytes'), external: read('nodejs_external_memory_bytes'), newSpace }
}

/** Has the gateway (started with --heap-snapshots) write a heap snapshot (after a full GC); returns its path. */
async function heapSnapshot (gateway) {
  const dir = join(ROOT, 'bench', 'results')
  const before = new Set(readdirSync(dir))
  process.kill(gateway.pid, 'SIGUSR2')
  for (let i = 0; i < 600; i++) {
    await sleep(500)
    const made = readdirSync(dir).find((f) => f.endsWith('.heapsnapshot') && !before.has(f))
    // Written once the size stops changing.
    if (made) {
      const size = () => statSync(join(dir, made)).size
      let last = -1
      while (size() !== last) {
        last = size()
        await sleep(1000)
      }
      return join(dir, made)
    }
  }
  throw new Error('no heap snapshot')
}

async function idleMemory () {
  const rows = []
  for (const n of TUNNELS) {
    // The node inspector (not Porthole's) only to ask for full GCs: RSS is read once as it is, and once after one.
    const gateway = await startGateway(['--metrics-addr', '127.0.0.1:0'], ['--inspect=127.0.0.1:0'])
    try {
      const warm = await openTunnels(gateway, 32) // so that lazily loaded code is in the baseline
      closeAll(warm)
      await sleep(2000)
      await collectGarbage(gateway)
      const base = await settledRss(gateway.pid)
      const baseHeap = await heapOf(gateway)
      const baseSnapshot = HEAP_SNAPSHOTS ? await heapSnapshot(gateway) : null
      const started = Date.now()
      // A session per tunnel waits the gateway's settle time (500 ms) for a command before binding: more at once.
      const sessions = await openTunnels(gateway, n, undefined, PER_SESSION === 1 ? 64 : 16)
      const setupS = (Date.now() - started) / 1000
      const rss = await settledRss(gateway.pid)
      const heap = await heapOf(gateway)
      await collectGarbage(gateway)
      const rssGc = await settledRss(gateway.pid)
      const heapGc = await heapOf(gateway)
      const heapPer = heap && baseHeap ? { heapUsed: (heap.heapUsed - baseHeap.heapUsed) / n, heapUsedAfterGc: (heapGc.heapUsed - baseHeap.heapUsed) / n, external: (heapGc.external - baseHeap.external) / n } : null
      const perTunnel = (rss - base) * 1024 / n
      const perTunnelGc = (rssGc - base) * 1024 / n
      // The young generation grows once while the tunnels are set up (to --max-semi-space-size): a constant of the
      // process, not of the tunnels; the figure net of it is what the tunnels themselves hold.
      const youngGrowth = heap && baseHeap ? heap.newSpace - baseHeap.newSpace : 0
      const youngGrowthGc = heapGc && baseHeap ? heapGc.newSpace - baseHeap.newSpace : 0
      const netPerTunnel = (((rss - base) * 1024) - youngGrowth) / n
      const netPerTunnelGc = (((rssGc - base) * 1024) - youngGrowthGc) / n
      rows.push({ tunnels: n, sessions: sessions.length, baseMiB: base / 1024, rssMiB: rss / 1024, rssAfterGcMiB: rssGc / 1024, bytesPerTunnel: perTunnel, bytesPerTunnelAfterGc: perTunnelGc, youngGenerationGrowthMiB: youngGrowth / 2 ** 20, youngGenerationGrowthAfterGcMiB: youngGrowthGc / 2 ** 20, netBytesPerTunnel: netPerTunnel, netBytesPerTunnelAfterGc: netPerTunnelGc, heapPerTunnel: heapPer, setupS })
      const kb = (bytes) => (bytes / 1024).toFixed(1)
      console.log(`idle-memory: ${n} tunnels (${sessions.length} sessions of up to ${PER_SESSION}, set up in ${setupS.toFixed(1)} s): RSS ${(base / 1024).toFixed(0)} -> ${(rss / 1024).toFixed(0)} MiB, ${(rssGc / 1024).toFixed(0)} after a full GC; per idle tunnel ${kb(perTunnel)} KB, ${kb(perTunnelGc)} after a GC; net of the young generation's growth (a constant: ${(youngGrowth / 2 ** 20).toFixed(0)} MiB, ${(youngGrowthGc / 2 ** 20).toFixed(0)} after the GC) ${kb(netPerTunnel)} KB, ${kb(netPerTunnelGc)} after a GC${heapPer ? `; V8 heap in use per tunnel ${kb(heapPer.heapUsed)} KB, ${kb(heapPer.heapUsedAfterGc)} after a GC, external ${kb(heapPer.external)} KB` : ''}`)
      if (HEAP_SNAPSHOTS) console.log(`idle-memory: heap snapshots: node bench/heap-diff.js ${baseSnapshot} ${await heapSnapshot(gateway)} ${n}`)
      closeAll(sessions)
    } finally {
      await gateway.stop()
    }
  }
  return rows
}

/** A full GC in the gateway, through the node inspector it was started with (HeapProfiler.collectGarbage). */
async function collectGarbage (gateway) {
  const url = /Debugger listening on (ws:\/\/\S+)/.exec(gateway.stderr())?.[1]
  if (!url) throw new Error('no inspector URL from the gateway')
  const socket = new WebSocket(url)
  await new Promise((resolve, reject) => {
    socket.onopen = () => socket.send(JSON.stringify({ id: 1, method: 'HeapProfiler.collectGarbage' }))
    socket.onmessage = (event) => { if (JSON.parse(event.data).id === 1) resolve() }
    socket.onerror = () => reject(new Error('inspector connection failed'))
  })
  socket.close()
}

/** Names of the named forwards setup-rate opens, unique over all its batches. */
let namedForwards = 0
async function setupRate () {
  const gateway = await startGateway()
  const batch = 320
  /** `batch` tunnels: a session with one random-name -R each (per 1), or named forwards in sessions of `per`. */
  const measure = async (label, per = 1) => {
    const sessions = []
    let next = 0
    const before = cpuMs(gateway.pid)
    const threadsBefore = threadCpuMs(gateway.pid)
    const started = process.hrtime.bigint()
    const worker = async () => {
      while (next < batch) {
        next += per
        sessions.push(await openSession(gateway, per === 1 ? [''] : Array.from({ length: per }, () => `s${namedForwards++}`)))
      }
    }
    await Promise.all(Array.from({ length: Math.min(32, batch / per) }, worker))
    const wallS = Number(process.hrtime.bigint() - started) / 1e9
    const window = `${((Date.now() - gateway.startedAt) / 1000 - wallS).toFixed(0)}-${((Date.now() - gateway.startedAt) / 1000).toFixed(0)}`
    await sleep(300) // replies written, bookkeeping after the last bind done
    const ms = (cpuMs(gateway.pid) - before - 300 * idleCpuPerMs) / batch
    const threads = threadCpuMs(gateway.pid)
    const mainMs = (threads.main - threadsBefore.main) / batch
    const otherMs = (threads.other - threadsBefore.other) / batch
    closeAll(sessions)
    await sleep(1500)
    console.log(`setup-rate: ${label}: ${ms.toFixed(2)} ms gateway CPU per new tunnel (${per === 1 ? 'session + -R' : `sessions of ${per} -R`}), ${(1000 / ms).toFixed(0)} tunnels/s per free core (main thread ${mainMs.toFixed(2)}, other threads ${otherMs.toFixed(2)}); wall ${(batch / wallS).toFixed(0)}/s${CPU_PROF ? ` (profile window ~${window} s)` : ''}`)
    return { label, cpuMsPerTunnel: ms, mainThreadMs: mainMs, otherThreadsMs: otherMs, perCoreRate: 1000 / ms, wallRate: batch / wallS }
  }
  // The gateway's idle CPU (timers), subtracted from the settle time.
  const idleBefore = cpuMs(gateway.pid)
  await sleep(1000)
  const idleCpuPerMs = (cpuMs(gateway.pid) - idleBefore) / 1000
  try {
    for (let i = 0; i < WARM_BATCHES; i++) await measure('warm-up')
    /** The batch with the median CPU per tunnel of BATCHES alike. */
    const medianOf = async (label, per = 1) => {
      const runs = []
      for (let i = 0; i < BATCHES; i++) runs.push(await measure(label, per))
      const ms = median(runs.map((r) => r.cpuMsPerTunnel))
      const picked = runs.find((r) => r.cpuMsPerTunnel === ms) ?? { ...runs[0], cpuMsPerTunnel: ms, perCoreRate: 1000 / ms }
      if (BATCHES > 1) console.log(`setup-rate: ${label}${per === 1 ? '' : ` (sessions of ${per})`}: median of ${BATCHES} batches ${ms.toFixed(2)} ms, ${(1000 / ms).toFixed(0)} tunnels/s per free core`)
      return { ...picked, batches: runs }
    }
    const empty = await medianOf('0 up')
    const empty16 = await medianOf('0 up', 16)
    const up = await openTunnels(gateway, UP)
    await sleep(2000)
    const loaded = await medianOf(`${UP} up`)
    const loaded16 = await medianOf(`${UP} up`, 16)
    const ratio = loaded.cpuMsPerTunnel / empty.cpuMsPerTunnel
    const ratio16 = loaded16.cpuMsPerTunnel / empty16.cpuMsPerTunnel
    console.log(`setup-rate: CPU per setup with ${UP} up / with 0 up: ${ratio.toFixed(2)} (a session per tunnel), ${ratio16.toFixed(2)} (sessions of 16)`)
    closeAll(up)
    return { empty, loaded, ratio, empty16, loaded16, ratio16 }
  } finally {
    await gateway.stop()
  }
}

async function manyEndpoints () {
  const endpoints = 1000
  // One agent session may hold all 1,000 (the `shared` load below), as one ngrok or frp agent holds many.
  const gateway = await startGateway(['--max-forwards-per-session', String(endpoints), '--max-holds-per-owner', String(endpoints), '--max-streams-per-session', process.env.BENCH_STREAMS_PER_SESSION ?? String(8 * endpoints)])
  const dir = mkdtempSync(join(tmpdir(), 'porthole-scale-wrk-'))
  try {
    const sessions = await openTunnels(gateway, endpoints, (i) => `e${i}`)
    const shared = await openSession(gateway, Array.from({ length: endpoints }, (_, i) => `s${i}`))
    const script = join(dir, 'hosts.lua')
    // HOSTS endpoints named PREFIX0, PREFIX1, ..., every STRIDE-th: STRIDE=PER_SESSION picks one endpoint of each session.
    writeFileSync(script, `local n = tonumber(os.getenv("HOSTS"))
local stride = tonumber(os.getenv("STRIDE"))
local prefix = os.getenv("PREFIX")
math.randomseed(os.time())
request = function() return wrk.format("GET", "/small", { Host = prefix .. (math.random(0, n - 1) * stride) .. ".localhost" }) end
`)
    // wrk runs in a separate process, so this one (the agents) must keep serving while it runs: run it async.
    const wrkAsync = ([hosts, stride, prefix], duration) => new Promise((resolve, reject) => {
      const before = cpuMs(gateway.pid)
      const callsBefore = syscalls(gateway.pid)
      const from = (Date.now() - gateway.startedAt) / 1000
      const child = spawn(TWO_CORES ? 'taskset' : 'wrk', [...(TWO_CORES ? ['-c', '1', 'wrk'] : []), '-t1', '-c50', `-d${duration}`, '-s', script, `http://127.0.0.1:${gateway.http}/`],
        { env: { ...process.env, HOSTS: String(hosts), STRIDE: String(stride), PREFIX: prefix } })
      let out = ''
      child.stdout.setEncoding('utf8').on('data', (t) => { out += t })
      child.on('error', reject)
      child.on('exit', () => {
        const cpu = cpuMs(gateway.pid) - before
        const calls = syscalls(gateway.pid) - callsBefore
        const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0)
        const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0)
        if (requests === 0 || non2xx > 0) return reject(new Error(`wrk: ${non2xx} error answers:\n${out}`))
        const window = `${Math.ceil(from)}-${Math.floor((Date.now() - gateway.startedAt) / 1000)}`
        resolve({ requests, cpuUsPerRequest: cpu * 1000 / requests, syscallsPerRequest: calls / requests, rps: requests / parseFloat(duration), window })
      })
    })
    // Four loads per round: all on e0 (one endpoint, one session); the 1,000 endpoints of one session (the
    // target's case: the same agent connection, many endpoints); one endpoint in each of the 63 sessions (the
    // spread over SSH connections alone); all 1,000 endpoints over the 63 sessions. shared/one is what the
    // number of endpoints costs; spread/one what spreading the same load over many SSH connections costs (sshd
    // pays that too: bench/spread.js); many/spread the endpoints again, in those 63 sessions.
    const sessionCount = sessions.length
    const loads = { one: [1, 1, 'e'], shared: [endpoints, 1, 's'], spread: [sessionCount, PER_SESSION, 'e'], many: [endpoints, 1, 'e'] }
    const where = { one: '1 session', shared: '1 session', spread: `${sessionCount} sessions`, many: `${sessionCount} sessions` }
    await wrkAsync(loads.many, '2s') // warm-up: every endpoint's streams
    await wrkAsync(loads.shared, '2s')
    const results = { one: [], shared: [], spread: [], many: [] }
    for (let round = 0; round < ROUNDS; round++) {
      const order = round % 2 === 0 ? ['one', 'shared', 'spread', 'many'] : ['many', 'spread', 'shared', 'one']
      for (const load of order) {
        await wrkAsync(loads[load], '1s')
        const result = await wrkAsync(loads[load], DURATION)
        results[load].push(result)
        console.log(`many-endpoints: round ${round + 1}, ${loads[load][0]} endpoint(s) in ${where[load]}: ${result.cpuUsPerRequest.toFixed(1)} µs gateway CPU per request, ${result.syscallsPerRequest.toFixed(2)} reads and writes per request, ${result.rps.toFixed(0)} req/s${CPU_PROF ? ` (profile window ${result.window} s)` : ''}`)
      }
    }
    const cost = (load) => median(results[load].map((r) => r.cpuUsPerRequest))
    const ratio = cost('shared') / cost('one')
    console.log(`many-endpoints: CPU per request, ${endpoints} endpoints / 1 endpoint in one session: ${ratio.toFixed(2)}`)
    console.log(`many-endpoints: over ${sessionCount} sessions, ${endpoints} endpoints / 1 endpoint: ${(cost('many') / cost('one')).toFixed(2)}, of which ${sessionCount} sessions (one endpoint each) / 1: ${(cost('spread') / cost('one')).toFixed(2)}, and ${endpoints} endpoints / ${sessionCount} in the same ${sessionCount} sessions: ${(cost('many') / cost('spread')).toFixed(2)}`)
    const { one, spread, many } = results
    shared.end()
    closeAll(sessions)
    return { one, shared: results.shared, spread, many, ratio, overSessions: cost('many') / cost('one') }
  } finally {
    rmSync(dir, { recursive: true, force: true })
    await gateway.stop()
  }
}

const results = { date: new Date().toISOString(), node: process.version, pinned: TWO_CORES }
if (!ONLY || ONLY === 'idle-memory') results.idleMemory = await idleMemory()
if (!ONLY || ONLY === 'setup-rate') results.setupRate = await setupRate()
if (!ONLY || ONLY === 'many-endpoints') results.manyEndpoints = await manyEndpoints()
mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true })
const file = join(ROOT, 'bench', 'results', `scale-${results.date.replace(/[:.]/g, '-')}.json`)
writeFileSync(file, JSON.stringify(results, null, 1))
console.log(`raw figures: ${file}`)
upstreamServer?.close()
process.exit(0)
