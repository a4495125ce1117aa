// Child-process and socket helpers for the benches: start/stop long-running children (each in its own
// process group, stopped by pid on exit), run short commands, pick free ports and poll until ready, read a
// process tree's CPU from /proc, and the ssh client's options.
import { execFileSync, spawn } from 'node:child_process'
import { chmodSync, closeSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { createServer, Socket } from 'node:net'
import { join } from 'node:path'
import { request } from 'node:http'

// --- cores ----------------------------------------------------------------------------------------

/** On a box with 2+ cores (and BENCH_PIN not 0) the relay under test gets core 0 and everything else core 1. */
export const PINNED = cpus().length >= 2 && process.env.BENCH_PIN !== '0'

/** Moves this process (all its threads) to `core`; the children it starts afterwards inherit it. */
export function pinSelf (core) {
  if (PINNED) execFileSync('taskset', ['-a', '-p', '-c', String(core), String(process.pid)], { stdio: 'ignore' })
}

/** [cmd, args] that run `cmd` on `core` (as they are when not pinned); taskset execs it, so the pid is cmd's. */
// BENCH_NODE_ARGS: more node flags for the gateway (e.g. `--trace-gc`, or `--max-semi-space-size=16` to try
// another value than GATEWAY_NODE_FLAGS'), after ours so that a repeated V8 flag overrides ours.
export const benchNodeArgs = () => (process.env.BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean)
/** BENCH_GATEWAY_ARGS: more `porthole serve` flags (e.g. `--fast-h1 --inspect=false`), space-separated. */
export const benchGatewayArgs = () => (process.env.BENCH_GATEWAY_ARGS ?? '').split(' ').filter(Boolean)

/** [cmd, args] run on `core` (taskset) when pinning; as it is when not pinning or `core` is undefined. */
export const onCore = (core, cmd, args) => (PINNED && core !== undefined ? ['taskset', ['-c', String(core), cmd, ...args]] : [cmd, args])

/** Every child process we started, with the signal that stops it cleanly. */
const children = new Set()
let stopping = false

/** Starts a long-running child in its own process group (so Ctrl-C reaches only us; we stop it). */
/** `stdin`: text written to the child's stdin, which is then closed (else stdin is /dev/null). */
export function startChild (name, cmd, args, { stopSignal = 'SIGTERM', onStderr, quiet = false, stdin } = {}) {
  const child = spawn(cmd, args, { detached: true, stdio: [stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] })
  if (stdin !== undefined) {
    child.stdin.on('error', () => {}) // an early exit is reported below
    child.stdin.end(stdin)
  }
  const entry = { name, child, stopSignal, exited: false, log: '' }
  const keep = (data) => { entry.log = (entry.log + data.toString()).slice(-4000) }
  child.stdout.on('data', keep)
  child.stderr.on('data', (data) => { keep(data); onStderr?.(data.toString()) })
  child.on('exit', (code, signal) => {
    entry.exited = true
    entry.exitCode = code
    if (!stopping && !quiet) process.stderr.write(`bench: ${name} exited early (${signal ?? code})\n${entry.log}\n`)
  })
  child.on('error', (error) => { process.stderr.write(`bench: cannot start ${name}: ${error.message}\n`) })
  children.add(entry)
  return entry
}

function waitExit (entry, ms) {
  if (entry.exited) return Promise.resolve(true)
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms)
    entry.child.once('exit', () => { clearTimeout(timer); resolve(true) })
  })
}

/** Stops one child: its clean signal first, SIGKILL if it lingers. */
export async function stopChild (entry, ms = 5000) {
  if (!entry.exited) {
    try { process.kill(entry.child.pid, entry.stopSignal) } catch {}
    if (!(await waitExit(entry, ms))) {
      try { process.kill(entry.child.pid, 'SIGKILL') } catch {}
      await waitExit(entry, 1000)
    }
  }
  children.delete(entry)
}

/** Runs a short command to completion, returning stdout (rejects on non-zero exit). */
export function run (cmd, args, { timeoutMs = 300_000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => { out += d })
    child.stderr.on('data', (d) => { err += d })
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      if (code === 0) resolve(out)
      else reject(new Error(`${cmd} ${args.join(' ')} exited ${code}\n${err}${out}`))
    })
  })
}

export const isStopping = () => stopping

/** Stops every child still running, then removes the temp dir (if any). Runs once. */
export async function cleanup (tmp) {
  if (stopping) return
  stopping = true
  await Promise.all([...children].map((entry) => stopChild(entry)))
  if (tmp) rmSync(tmp, { recursive: true, force: true })
}

/** Last resort from a synchronous 'exit' handler. */
export function killAll () {
  for (const entry of children) try { process.kill(entry.child.pid, 'SIGKILL') } catch {}
}

export function freePort () {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** The middle value (the mean of the two middle ones for an even count). */
export const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

/** One GET over a fresh connection; resolves to the status code (or 0 on a network error). */
export function httpStatus (port, host, path) {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host }, agent: false, timeout: 2000 }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode))
    })
    req.on('timeout', () => req.destroy())
    req.on('error', () => resolve(0))
    req.end()
  })
}

/** Polls until GET /small through the target answers 200. */
export async function waitReady (target, ms = 20_000) {
  const deadline = Date.now() + ms
  let status = 0
  while (Date.now() < deadline) {
    for (const entry of target.processes) if (entry.exited) throw new Error(`${entry.name} exited: ${entry.log}`)
    status = await httpStatus(target.port, target.host, '/small')
    if (status === 200) return
    await sleep(100)
  }
  throw new Error(`${target.name} endpoint did not answer 200 within ${ms} ms (last status ${status || 'none'})`)
}

/** Polls until something accepts TCP connections on the port. */
export async function waitListening (port, entry, ms = 15_000) {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (entry.exited) throw new Error(`${entry.name} exited: ${entry.log}`)
    if (await canConnect(port)) return
    await sleep(100)
  }
  throw new Error(`${entry.name} did not listen on ${port} within ${ms} ms`)
}

function canConnect (port) {
  return new Promise((resolve) => {
    const socket = new Socket()
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => resolve(false))
    socket.connect(port, '127.0.0.1')
  })
}

// --- CPU time (/proc) -----------------------------------------------------------------------------

export const MS_PER_TICK = 1000 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim())

/** ppid and utime+stime (clock ticks, all threads) of one process from /proc/PID/stat; null once it is gone. */
export function procStat (pid) {
  let text
  try { text = readFileSync(`/proc/${pid}/stat`, 'utf8') } catch { return null }
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ') // comm may hold spaces and parentheses
  return { ppid: Number(fields[1]), ticks: Number(fields[11]) + Number(fields[12]) }
}

/** CPU ms one process has used so far. */
export const processCpuMs = (pid) => (procStat(pid)?.ticks ?? 0) * MS_PER_TICK

/** CPU ms used so far by every live process whose parent chain leads to root (sshd's per-connection processes,
 *  nginx's worker), and by root itself unless `withRoot` is false (sshd's listener only accepts). */
export function treeCpuMs (root, { withRoot = true } = {}) {
  const stats = new Map()
  for (const name of readdirSync('/proc')) {
    const stat = /^\d+$/.test(name) ? procStat(name) : null
    if (stat) stats.set(Number(name), stat)
  }
  let ticks = 0
  for (const [pid, stat] of stats) {
    const start = withRoot ? pid : stat.ppid
    for (let p = start; p > 0; p = stats.get(p)?.ppid) if (p === root) { ticks += stat.ticks; break }
  }
  return ticks * MS_PER_TICK
}

// --- ssh -------------------------------------------------------------------------------------------

/** A fresh ed25519 key pair (FILE, FILE.pub) without a passphrase; returns FILE. */
export function keygen (file) {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', file])
  return file
}

/** Options shared by every ssh client the benches start: no config, no host-key prompts, this key only. */
export function sshClientArgs (key, port) {
  return ['-F', '/dev/null', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes',
    '-o', 'IdentitiesOnly=yes', '-o', 'ExitOnForwardFailure=yes', '-i', key, '-p', String(port)]
}

/**
 * OpenSSH's sshd for plain `-R` forwards (GatewayPorts), from a temp config in `dir`, letting in `clientKey`
 * (FILE with FILE.pub); on `core` when given (onCore). `config`: more sshd_config lines. Returns its port and entry.
 */
export async function startSshd (dir, clientKey, { core, config = [] } = {}) {
  mkdirSync(dir, { recursive: true })
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
    'LogLevel ERROR', ...config, '',
  ].join('\n'))
  const entry = startChild('sshd', ...onCore(core, '/usr/sbin/sshd', ['-D', '-e', '-f', conf]))
  await waitListening(port, entry)
  return { port, entry }
}

// --- nginx ---------------------------------------------------------------------------------------

/** The upstream's files in `www`: /small (100 bytes) and, with `bigBytes`, /big (sparse: reads as zeros, no disk). */
export function writeSite (www, { bigBytes } = {}) {
  mkdirSync(www, { recursive: true })
  writeFileSync(join(www, 'small'), 'x'.repeat(99) + '\n')
  if (bigBytes !== undefined) {
    closeSync(openSync(join(www, 'big'), 'w'))
    truncateSync(join(www, 'big'), bigBytes)
  }
}

/**
 * An nginx (one worker, keep-alive kept open, no access log) from a config in `dir` with the given `server` and
 * `upstream` blocks, on `core` when given (onCore). Resolves once `port` (one of its listeners) accepts.
 */
export async function startNginx (dir, port, blocks, { name = 'nginx', core } = {}) {
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, 'nginx.conf'), `worker_processes 1; error_log ${dir}/error.log warn; pid ${dir}/nginx.pid;
events { worker_connections 4096; }
http { access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000; keepalive_timeout 300s;
  types { } default_type application/octet-stream;
  client_body_temp_path ${dir}/b; proxy_temp_path ${dir}/p; fastcgi_temp_path ${dir}/f; uwsgi_temp_path ${dir}/u; scgi_temp_path ${dir}/s;
  ${blocks.join('\n  ')} }
`)
  const entry = startChild(name, ...onCore(core, 'nginx', ['-c', join(dir, 'nginx.conf'), '-p', dir, '-g', 'daemon off;']), { stopSignal: 'SIGQUIT' })
  await waitListening(port, entry)
  return entry
}
