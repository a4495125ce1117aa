// `npm run bench`: measures Porthole against the reference it replaces (DESIGN.md, "Performance method").
// One run starts one nginx upstream, an OpenSSH sshd doing a plain `-R` forward, and a Porthole gateway,
// both fed by the same stock `ssh` client, then drives both with the same wrk/curl load in alternating
// rounds and prints Porthole/sshd ratios. The machines are shared and noisy: quote ratios, not absolutes.
// Besides wall-clock figures it reads each gateway's CPU time from /proc around every phase (CPU per request,
// per GiB), which other tenants disturb less than throughput.
//
//   node bench/run.js [--cpu-prof] [--only=sshd|porthole]
//   env BENCH_DURATION=10s (wrk duration per round), BENCH_ROUNDS=2 (rounds per target, median taken)
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, readdirSync, chmodSync, truncateSync, closeSync, openSync } from 'node:fs'
import { tmpdir, userInfo } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { cleanup, freePort, isStopping, killAll, run, startChild, stopChild, waitListening, waitReady } from './processes.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const RESULTS = join(ROOT, 'bench', 'results')
const GIB = 1024 ** 3
const BIG_BYTES = GIB
const SMALL_BODY = 'x'.repeat(99) + '\n'
const DURATION = process.env.BENCH_DURATION || '10s'
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS || 2))
const WARMUP = '2s'
const ARGS = process.argv.slice(2)
const CPU_PROF = ARGS.includes('--cpu-prof')
const ONLY = ARGS.find((a) => a.startsWith('--only='))?.slice('--only='.length) ?? null
let tmp = null

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

// --- setup ---------------------------------------------------------------------------------------------

function nginxConfig (dir, port) {
  return `worker_processes 1;
error_log ${dir}/error.log warn;
pid ${dir}/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  types { }
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:${port};
    root ${dir}/www;
    location = /small { default_type text/plain; }
    location = /big { }
  }
}
`
}

async function startNginx () {
  const dir = join(tmp, 'nginx')
  mkdirSync(join(dir, 'www'), { recursive: true })
  writeFileSync(join(dir, 'www', 'small'), SMALL_BODY)
  closeSync(openSync(join(dir, 'www', 'big'), 'w'))
  truncateSync(join(dir, 'www', 'big'), BIG_BYTES) // sparse: reads as zeros, costs no disk
  const port = await freePort()
  writeFileSync(join(dir, 'nginx.conf'), nginxConfig(dir, port))
  const entry = startChild('nginx', 'nginx', ['-c', join(dir, 'nginx.conf'), '-p', dir, '-g', 'daemon off;'], { stopSignal: 'SIGQUIT' })
  await waitReady({ name: 'nginx', port, host: 'localhost', processes: [entry] })
  return { port, entry }
}

function keygen (file) {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', file])
  return file
}

/** Options shared by every ssh client invocation, for both targets. */
function sshClientArgs (key, port) {
  return ['-F', '/dev/null', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes',
    '-o', 'IdentitiesOnly=yes', '-o', 'ExitOnForwardFailure=yes', '-i', key, '-p', String(port)]
}

async function startSshd (clientKey) {
  const dir = join(tmp, 'sshd')
  mkdirSync(dir)
  mkdirSync('/run/sshd', { recursive: true }) // privilege separation directory sshd insists on
  const hostKey = keygen(join(dir, 'host_ed25519'))
  const authorized = join(dir, 'authorized_keys')
  writeFileSync(authorized, readFileSync(`${clientKey}.pub`))
  chmodSync(authorized, 0o600)
  const port = await freePort()
  const conf = join(dir, 'sshd_config')
  writeFileSync(conf, [
    `Port ${port}`, 'ListenAddress 127.0.0.1', `HostKey ${hostKey}`, `AuthorizedKeysFile ${authorized}`,
    'PubkeyAuthentication yes', 'PasswordAuthentication no', 'KbdInteractiveAuthentication no', 'PermitRootLogin yes',
    'GatewayPorts yes', 'AllowTcpForwarding yes', 'UsePAM no', 'PidFile none', 'StrictModes no', 'UseDNS no',
    'LogLevel ERROR', '',
  ].join('\n'))
  const entry = startChild('sshd', '/usr/sbin/sshd', ['-D', '-e', '-f', conf])
  await waitListening(port, entry)
  return { port, entry }
}

async function startPorthole () {
  const dataDir = join(tmp, 'porthole')
  mkdirSync(dataDir)
  const sshPort = await freePort()
  const httpPort = await freePort()
  const node = CPU_PROF ? ['--cpu-prof', '--cpu-prof-dir', RESULTS] : []
  const entry = startChild('porthole', process.execPath, [...node, join(ROOT, 'bin', 'porthole.js'), 'serve', '--data-dir', dataDir,
    '--ssh-addr', `127.0.0.1:${sshPort}`, '--http-addr', `127.0.0.1:${httpPort}`, '--log-level', 'warn'], { stopSignal: 'SIGINT' })
  await waitListening(sshPort, entry)
  return { sshPort, httpPort, entry }
}

/** The stock ssh client holding the tunnel open (-N -R ...). */
function startTunnel (name, key, sshPort, forward) {
  return startChild(`ssh client (${name})`, 'ssh', [...sshClientArgs(key, sshPort), '-o', 'LogLevel=ERROR', '-N', '-R', forward, `${userInfo().username}@127.0.0.1`])
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

// --- CPU time (/proc) -----------------------------------------------------------------------------

const MS_PER_TICK = 1000 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim())

/** ppid and utime+stime (clock ticks, all threads) of one process from /proc/PID/stat; null once it is gone. */
function procStat (pid) {
  let text
  try { text = readFileSync(`/proc/${pid}/stat`, 'utf8') } catch { return null }
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ') // comm may hold spaces and parentheses
  return { ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) }
}

/** CPU ms one process has used so far. */
const processCpuMs = (pid) => (procStat(pid)?.ticks ?? 0) * MS_PER_TICK

/** CPU ms used so far by every live process whose parent chain leads to root (the per-connection sshd
 * processes under the listener); root itself only accepts, and is left out. */
function descendantsCpuMs (root) {
  const stats = new Map()
  for (const name of readdirSync('/proc')) {
    const stat = /^\d+$/.test(name) ? procStat(name) : null
    if (stat) stats.set(Number(name), stat)
  }
  const leadsToRoot = (pid) => {
    for (let p = stats.get(pid).ppid; p > 0; p = stats.get(p)?.ppid) if (p === root) return true
    return false
  }
  let ticks = 0
  for (const [pid, stat] of stats) if (leadsToRoot(pid)) ticks += stat.ticks
  return ticks * MS_PER_TICK
}

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

function printTable ({ medians, ratio }) {
  const fmt = (v) => (v === undefined ? '-' : v >= 100 ? v.toFixed(0) : v.toFixed(2))
  const rows = [['metric', 'sshd', 'porthole', 'ratio (porthole/sshd)']]
  for (const [key, label] of METRICS) {
    rows.push([label, fmt(medians.sshd?.[key]), fmt(medians.porthole?.[key]), ratio ? ratio[key].toFixed(2) : '-'])
  }
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
  return { ssh: first('ssh', ['-V']), sshd: first('/usr/sbin/sshd', ['-V']), nginx: first('nginx', ['-v']), wrk: first('wrk', ['-v']), curl: first('curl', ['--version']) }
}

// --- main ------------------------------------------------------------------------------------------

async function main () {
  if (ONLY && !['sshd', 'porthole'].includes(ONLY)) throw new Error('--only must be sshd or porthole')
  tmp = mkdtempSync(join(tmpdir(), 'porthole-bench-'))
  chmodSync(tmp, 0o755) // nginx workers run as an unprivileged user and must reach www/
  mkdirSync(RESULTS, { recursive: true })
  const clientKey = keygen(join(tmp, 'client_ed25519'))
  const nginx = await startNginx()
  const targets = []
  const ciphers = {}

  if (ONLY !== 'porthole') {
    const startedAt = performance.now()
    const sshd = await startSshd(clientKey)
    const port = await freePort()
    const tunnel = startTunnel('sshd', clientKey, sshd.port, `127.0.0.1:${port}:127.0.0.1:${nginx.port}`)
    const cpu = () => ({ gateway: descendantsCpuMs(sshd.entry.child.pid), client: processCpuMs(tunnel.child.pid) })
    targets.push({ name: 'sshd', port, host: `127.0.0.1:${port}`, processes: [sshd.entry, tunnel], startedAt, cpu })
    ciphers.sshd = await probeAlgorithms(clientKey, sshd.port)
  }
  if (ONLY !== 'sshd') {
    const startedAt = performance.now()
    const porthole = await startPorthole()
    const tunnel = startTunnel('porthole', clientKey, porthole.sshPort, `bench:80:127.0.0.1:${nginx.port}`)
    const cpu = () => ({ gateway: processCpuMs(porthole.entry.child.pid), client: processCpuMs(tunnel.child.pid) })
    targets.push({ name: 'porthole', port: porthole.httpPort, host: 'bench.localhost', processes: [porthole.entry, tunnel], startedAt, cpu })
    ciphers.porthole = await probeAlgorithms(clientKey, porthole.sshPort)
  }
  for (const target of targets) await waitReady(target)
  // Read /big once straight from nginx: the first read of the sparse file fills the page cache, and would
  // otherwise slow down whichever target downloads first.
  await download({ name: 'nginx (page cache warm-up)', port: nginx.port, host: 'localhost' })

  process.stdout.write(`bench: wrk -t1 -c50 -d${DURATION} (after ${WARMUP} warm-up), curl 1 GiB; ${ROUNDS} round(s), median taken${CPU_PROF ? '; porthole under --cpu-prof (slower)' : ''}\n`)
  for (const [name, found] of Object.entries(ciphers)) {
    process.stdout.write(`  ${name.padEnd(8)} cipher ${found.cipher ?? '?'} (MAC ${found.mac ?? '?'}, kex ${found.kex ?? '?'})\n`)
  }
  const samples = []
  for (let round = 1; round <= ROUNDS; round++) {
    for (const target of targets) samples.push(await measure(target, round))
  }
  const summary = summarise(samples, targets.map((t) => t.name))
  printTable(summary)

  const date = new Date().toISOString()
  const file = join(RESULTS, `${date.replace(/[:.]/g, '-')}.json`)
  writeFileSync(file, JSON.stringify({
    date,
    node: process.version,
    tools: toolVersions(),
    settings: { duration: DURATION, warmup: WARMUP, rounds: ROUNDS, wrk: '-t1 -c50', bigBytes: BIG_BYTES, cpuMsPerTick: MS_PER_TICK, cpuProf: CPU_PROF, only: ONLY },
    ciphers,
    medians: summary.medians,
    ratio: summary.ratio,
    samples,
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
      '(the "phases" of each porthole sample in the JSON give the wrk and /big windows, in seconds since porthole started)\n')
  }
}
process.exitCode = failed ? 1 : 0
