// `npm run soak`: a bounded soak of the data path. For --seconds (default 60) it moves checksummed bytes through a
// real gateway (built dist/, in this process) to an HTTP endpoint (OpenSSH `ssh -R`) and a TCP endpoint (Dropbear
// `dbclient -R`): HTTP downloads of seeded bytes, HTTP uploads echoed back, TCP echoes; random sizes up to
// --max-mb (default 4). Public clients are killed (TCP reset) at random moments, and each agent is killed and
// reconnected now and then (--reconnect-every seconds, 0 = never). Every transfer that completes is compared by
// length and sha256; a completed transfer with other bytes, or a stream that ends cleanly short of its length,
// is lost data. Prints a table, the gateway process's memory before and after (after a GC: run with
// --expose-gc), writes bench/results/soak-*.json, and exits 1 on any lost or altered byte.
//
//   npm run soak -- [--seconds 60] [--workers 4] [--max-mb 4] [--kill-rate 0.25] [--reconnect-every 12] [--usual-h1]
//   (--usual-h1: the gateway runs without the HTTP/1.1 fast path, src/edge/fast-h1.ts, on by default)
import { spawn } from 'node:child_process'
import { createCipheriv, createHash, randomBytes, randomInt } from 'node:crypto'
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer as createHttpServer, request as httpRequest } from 'node:http'
import { connect as netConnect, createServer as createNetServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
const { loadConfig } = await import(join(ROOT, 'dist/config/load.js'))
const { startGateway } = await import(join(ROOT, 'dist/gateway.js'))
const { createLogger } = await import(join(ROOT, 'dist/log.js'))

const { values: opts } = parseArgs({
  options: {
    seconds: { type: 'string', default: '60' },
    workers: { type: 'string', default: '4' },
    'max-mb': { type: 'string', default: '4' },
    'kill-rate': { type: 'string', default: '0.25' },
    'reconnect-every': { type: 'string', default: '12' },
    'usual-h1': { type: 'boolean', default: false },
  },
})
const SECONDS = Number(opts.seconds)
const WORKERS = Number(opts.workers)
const MAX_BYTES = Math.round(Number(opts['max-mb']) * 1024 * 1024)
const KILL_RATE = Number(opts['kill-rate'])
const RECONNECT_MS = Number(opts['reconnect-every']) * 1000
for (const [name, value] of [['seconds', SECONDS], ['workers', WORKERS], ['max-mb', MAX_BYTES], ['kill-rate', KILL_RATE], ['reconnect-every', RECONNECT_MS]]) {
  if (!Number.isFinite(value) || value < 0) {
    process.stderr.write(`soak: --${name} wants a number >= 0\n`)
    process.exit(2)
  }
}
const gc = globalThis.gc ?? null
if (!gc) process.stderr.write('soak: run node with --expose-gc for memory figures after a GC (npm run soak does)\n')

// --- seeded bytes: an AES-CTR keystream, the same on both sides -------------------------------------------

const CHUNK = 64 * 1024
const ZEROS = Buffer.alloc(CHUNK)
function keystream (seed) {
  return createCipheriv('aes-128-ctr', createHash('sha256').update(seed).digest().subarray(0, 16), Buffer.alloc(16))
}
function expectedDigest (seed, size) {
  const cipher = keystream(seed)
  const hash = createHash('sha256')
  for (let left = size; left > 0; left -= CHUNK) hash.update(cipher.update(left >= CHUNK ? ZEROS : ZEROS.subarray(0, left)))
  return hash.digest('hex')
}

// --- upstreams -----------------------------------------------------------------------------------------

function startHttpUpstream () {
  const server = createHttpServer((req, res) => {
    const url = new URL(req.url, 'http://upstream')
    if (req.method === 'GET' && url.pathname === '/blob') {
      const size = Number(url.searchParams.get('size'))
      const cipher = keystream(url.searchParams.get('seed'))
      res.writeHead(200, { 'content-length': size, 'content-type': 'application/octet-stream' })
      let left = size
      const pump = () => {
        while (left > 0) {
          const n = Math.min(CHUNK, left)
          left -= n
          if (!res.write(cipher.update(n === CHUNK ? ZEROS : ZEROS.subarray(0, n)))) return void res.once('drain', pump)
        }
        res.end()
      }
      res.on('close', () => { left = 0 })
      return pump()
    }
    if (req.method === 'POST' && url.pathname === '/echo') {
      res.writeHead(200, { 'content-length': req.headers['content-length'], 'content-type': 'application/octet-stream' })
      req.pipe(res)
      return
    }
    res.writeHead(404).end()
  })
  server.on('clientError', (_error, socket) => socket.destroy())
  return listen(server)
}

function startEchoUpstream () {
  const server = createNetServer((socket) => {
    socket.on('error', () => {})
    socket.pipe(socket)
  })
  return listen(server)
}

function listen (server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: server.address().port })))
}

// --- agents: real ssh clients, killed and restarted --------------------------------------------------------

class Agent {
  constructor (name, spawnArgs) {
    this.name = name
    this.spawnArgs = spawnArgs
    this.child = null
    this.url = null
    this.epoch = 0
    this.reconnects = 0
    this.away = true
    this.stopping = false
    /** Exits nobody asked for: a gateway that drops a healthy agent. */
    this.exits = []
  }

  async start () {
    const [bin, args, env] = this.spawnArgs()
    const child = spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } })
    this.child = child
    let output = ''
    const url = await new Promise((resolve, reject) => {
      const onData = (data) => {
        output += data
        const match = /Forwarding\s+((?:http|tcp):\/\/\S+)/.exec(output)
        if (match) resolve(match[1])
      }
      child.stdout.setEncoding('utf8').on('data', onData)
      child.stderr.setEncoding('utf8').on('data', onData)
      child.once('exit', (code, signal) => reject(new Error(`${this.name} agent exited (${signal ?? code}) before binding:\n${output}`)))
    })
    this.url = new URL(url)
    this.away = false
    child.once('exit', (code, signal) => {
      if (this.child !== child || this.stopping) return
      this.away = true
      this.exits.push(`${this.name} agent exited on its own (${signal ?? code}): ${output.trim().split('\n').slice(-3).join(' | ')}`)
    })
  }

  /** Kills the agent (as a crash would: SIGKILL) and connects a new one with the same key. */
  async reconnect () {
    this.away = true
    this.epoch++
    this.reconnects++
    await this.stop('SIGKILL')
    this.stopping = false
    await this.start()
  }

  stop (signal = 'SIGTERM') {
    this.stopping = true
    const child = this.child
    if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
    return new Promise((resolve) => {
      child.once('exit', () => resolve())
      child.kill(signal)
    })
  }
}

// --- transfers ------------------------------------------------------------------------------------------

const KINDS = ['http download', 'http echo', 'tcp echo']
const OUTCOMES = ['verified', 'killed', 'refused', 'interrupted', 'error', 'truncated', 'corrupt']
const stats = Object.fromEntries(KINDS.map((kind) => [kind, { tried: 0, bytes: 0, ...Object.fromEntries(OUTCOMES.map((o) => [o, 0])) }]))
const samples = { error: [], truncated: [], corrupt: [] }

function randomSize () {
  // Log-uniform from 1 byte to MAX_BYTES: many small transfers, some large ones.
  return Math.max(1, Math.floor(Math.exp(Math.random() * Math.log(MAX_BYTES))))
}

/** One transfer. `kill`: received-byte count at which the client resets its connection, or null. */
function transfer (kind, agent, httpPort) {
  const size = randomSize()
  const kill = Math.random() < KILL_RATE ? randomInt(0, size) : null
  const epoch = agent.epoch
  const started = { away: agent.away }
  return new Promise((resolve) => {
    const hash = createHash('sha256')
    let received = 0
    let killed = false
    let settled = false
    let expected
    let socket = null
    const finish = (outcome, detail) => {
      if (settled) return
      settled = true
      // A failure while the agent was being replaced is that replacement's doing, unless bytes were lost.
      if ((outcome === 'error' || outcome === 'refused') && (started.away || agent.away || agent.epoch !== epoch)) outcome = outcome === 'refused' ? 'refused' : 'interrupted'
      resolve({ kind, outcome, size, received, detail })
    }
    const onBytes = (chunk) => {
      received += chunk.length
      hash.update(chunk)
      if (kill !== null && received >= kill && !killed) {
        killed = true
        socket?.resetAndDestroy()
        finish('killed')
      }
    }
    const complete = () => {
      if (received !== size) return finish(received < size ? 'truncated' : 'corrupt', `${received} of ${size} bytes`)
      const digest = hash.digest('hex')
      finish(digest === expected ? 'verified' : 'corrupt', digest === expected ? undefined : `sha256 ${digest} != ${expected}`)
    }

    if (kind === 'tcp echo') {
      const body = randomBytes(size)
      expected = createHash('sha256').update(body).digest('hex')
      // allowHalfOpen: our side stays writable after the peer's end, for the probe below.
      socket = netConnect({ port: Number(agent.url.port), host: '127.0.0.1', allowHalfOpen: true })
      socket.on('data', (chunk) => {
        onBytes(chunk)
        if (!killed && received >= size) {
          if (received === size) socket.end()
          complete()
        }
      })
      socket.on('error', (error) => finish(received === 0 && error.code === 'ECONNREFUSED' ? 'refused' : 'error', error.code ?? error.message))
      socket.on('end', () => {
        if (killed || received >= size) return
        const replaced = started.away || agent.away || agent.epoch !== epoch
        // An end short of the length may be a reset in disguise: libuv (Node 20's 1.46) reports a reset that
        // arrives while bytes are still queued as a plain end (EPOLLHUP after a partial read: it skips the read
        // that would fail, libuv#2319, #4997). The socket's pending error tells the two apart: a one-byte write
        // fails with ECONNRESET after a reset while established, and succeeds, or fails with EPIPE (a reset
        // after the FIN, in CLOSE_WAIT), after a real FIN (Linux's tcp_reset).
        socket.write(Buffer.alloc(1), (error) => {
          socket.destroy()
          if (error?.code === 'ECONNRESET') return finish('error', `reset after ${received} of ${size} bytes`)
          // A clean end short of the length: the stream was cut and looked whole to a client without framing.
          // With nothing received while the agent was away it is a refusal (a listener can only accept, then close).
          if (received === 0 && replaced) finish('refused', 'closed with nothing received while the agent was away')
          else finish('truncated', `clean end after ${received} of ${size} bytes${replaced ? ' (its agent was gone)' : ''}`)
        })
      })
      socket.on('close', () => finish('error', `closed after ${received} of ${size} bytes`))
      socket.write(body)
      if (kill === 0) { killed = true; socket.resetAndDestroy(); finish('killed') }
      return
    }

    const seed = randomBytes(8).toString('hex')
    const upload = kind === 'http echo' ? randomBytes(size) : null
    expected = upload ? createHash('sha256').update(upload).digest('hex') : expectedDigest(seed, size)
    const req = httpRequest({
      host: '127.0.0.1',
      port: httpPort,
      agent: false,
      method: upload ? 'POST' : 'GET',
      path: upload ? '/echo' : `/blob?size=${size}&seed=${seed}`,
      headers: { host: agent.url.host, ...(upload ? { 'content-length': size } : {}) },
    })
    req.on('socket', (s) => {
      socket = s
      if (kill === 0) { killed = true; s.resetAndDestroy(); finish('killed') }
    })
    req.on('error', (error) => finish('error', error.code ?? error.message))
    req.on('response', (res) => {
      if (res.statusCode !== 200) {
        res.resume()
        return finish('refused', `${res.statusCode} ${res.headers['porthole-error-code'] ?? ''}`)
      }
      if (Number(res.headers['content-length']) !== size) finish('corrupt', `content-length ${res.headers['content-length']} for ${size} bytes`)
      res.on('data', onBytes)
      res.on('end', () => { if (!killed) complete() })
      res.on('aborted', () => finish('error', `response aborted after ${received} of ${size} bytes`))
      res.on('error', (error) => finish('error', error.code ?? error.message))
    })
    req.end(upload ?? undefined)
  })
}

// --- the run --------------------------------------------------------------------------------------------

function memory () {
  gc?.()
  gc?.()
  const { rss, heapUsed } = process.memoryUsage()
  return { rssMB: rss / 2 ** 20, heapMB: heapUsed / 2 ** 20 }
}

async function main () {
  const tmp = mkdtempSync(join(tmpdir(), 'porthole-soak-'))
  const key = (file) => { const target = join(tmp, file); copyFileSync(join(ROOT, 'fixtures/keys', file), target); chmodSync(target, 0o600); return target }
  const tcpBase = 30000 + randomInt(0, 300) * 100
  const config = loadConfig({ sshAddr: '127.0.0.1:0', httpAddr: '127.0.0.1:0', httpsAddr: '127.0.0.1:0', apiAddr: 'off', agentAddr: 'off', tcpPorts: `${tcpBase}-${tcpBase + 99}`, dataDir: join(tmp, 'data'), logLevel: 'silent', fastH1: !opts['usual-h1'] }, {})
  const gateway = await startGateway(config, createLogger(process.env.SOAK_LOG ?? 'silent', process.stderr))
  const httpUp = await startHttpUpstream()
  const echoUp = await startEchoUpstream()
  const sshOpts = ['-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', '-o', 'BatchMode=yes', '-o', 'IdentitiesOnly=yes', '-o', 'ExitOnForwardFailure=yes', '-T']
  const httpAgent = new Agent('http (ssh)', () => ['ssh', [...sshOpts, '-i', key('alice'), '-p', String(gateway.sshPort), '-R', `soak:80:127.0.0.1:${httpUp.port}`, 'soak@127.0.0.1', 'http'], { HOME: tmp }])
  const tcpAgent = new Agent('tcp (dbclient)', () => ['dbclient', ['-y', '-y', '-i', key('bob.dropbear'), '-p', String(gateway.sshPort), '-R', `0:127.0.0.1:${echoUp.port}`, 'soak@127.0.0.1', 'tcp'], { HOME: tmp }])
  await Promise.all([httpAgent.start(), tcpAgent.start()])
  const agentFor = (kind) => (kind === 'tcp echo' ? tcpAgent : httpAgent)

  // One transfer of each kind first, so the figure "before" includes what the first requests allocate.
  for (const kind of KINDS) await transfer(kind, agentFor(kind), gateway.httpPort)
  const before = memory()
  const started = Date.now()
  const deadline = started + SECONDS * 1000
  process.stderr.write(`soak: ${SECONDS} s, ${WORKERS} workers, sizes up to ${(MAX_BYTES / 2 ** 20).toFixed(1)} MiB, kill rate ${KILL_RATE}, agents reconnected every ~${RECONNECT_MS / 1000} s\n`)

  let stopping = false
  const reconnects = RECONNECT_MS > 0
    ? (async () => {
        let turn = 0
        while (!stopping) {
          await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS * (0.5 + Math.random())))
          if (stopping || Date.now() > deadline) break
          await [httpAgent, tcpAgent][turn++ % 2].reconnect()
        }
      })()
    : Promise.resolve()

  const worker = async () => {
    while (Date.now() < deadline) {
      const kind = KINDS[randomInt(0, KINDS.length)]
      const agent = agentFor(kind)
      if (agent.away) await new Promise((resolve) => setTimeout(resolve, 20)) // still counted: it may be refused
      const result = await transfer(kind, agent, gateway.httpPort)
      const row = stats[kind]
      row.tried++
      row[result.outcome]++
      if (result.outcome === 'verified') row.bytes += result.size
      if (samples[result.outcome] && samples[result.outcome].length < 5) samples[result.outcome].push(`${kind}: ${result.detail}`)
    }
  }
  await Promise.all(Array.from({ length: WORKERS }, worker))
  stopping = true
  await reconnects

  // Let the gateway drop what the killed connections left, then measure.
  await new Promise((resolve) => setTimeout(resolve, 1000))
  const after = memory()
  const elapsed = (Date.now() - started) / 1000

  const total = { tried: 0, bytes: 0, ...Object.fromEntries(OUTCOMES.map((o) => [o, 0])) }
  for (const row of Object.values(stats)) for (const field of Object.keys(total)) total[field] += row[field]
  const columns = ['tried', ...OUTCOMES, 'MB verified']
  const lines = [['', ...columns]]
  for (const [name, row] of [...Object.entries(stats), ['total', total]]) lines.push([name, ...columns.map((c) => (c === 'MB verified' ? (row.bytes / 1e6).toFixed(1) : String(row[c])))])
  const widths = lines[0].map((_, i) => Math.max(...lines.map((l) => l[i].length)))
  const table = lines.map((l) => l.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ')).join('\n')
  const mem = [
    `memory after GC${gc ? '' : ' (no --expose-gc: without a GC)'}:  rss ${before.rssMB.toFixed(1)} -> ${after.rssMB.toFixed(1)} MiB (${(after.rssMB - before.rssMB).toFixed(1)}),`,
    `heap ${before.heapMB.toFixed(1)} -> ${after.heapMB.toFixed(1)} MiB (${(after.heapMB - before.heapMB).toFixed(1)})`,
  ].join(' ')
  const lost = total.corrupt + total.truncated
  process.stdout.write(`\nsoak: ${elapsed.toFixed(0)} s, agent reconnects: http ${httpAgent.reconnects}, tcp ${tcpAgent.reconnects}\n${table}\n${mem}\n`)
  process.stdout.write('verified: length and sha256 equal; killed: the client reset its connection on purpose; refused: an error answer or\n' +
    'connection refused; interrupted: broken while its agent was replaced; error: broken otherwise; truncated: a clean end short\n' +
    'of the length (lost bytes); corrupt: other bytes than sent (altered bytes).\n')
  const exits = [...httpAgent.exits, ...tcpAgent.exits]
  for (const line of exits) process.stdout.write(`${line}\n`)
  for (const [outcome, list] of Object.entries(samples)) if (list.length > 0) process.stdout.write(`${outcome}, first ones:\n  ${list.join('\n  ')}\n`)
  process.stdout.write(lost === 0 ? `OK: ${total.verified} transfers verified, ${(total.bytes / 1e6).toFixed(1)} MB, no lost or altered byte\n` : `FAIL: ${lost} transfers lost or altered bytes\n`)

  const results = join(ROOT, 'bench', 'results')
  mkdirSync(results, { recursive: true })
  writeFileSync(join(results, `soak-${new Date().toISOString().replace(/[:.]/g, '-')}.json`), `${JSON.stringify({ seconds: elapsed, workers: WORKERS, maxBytes: MAX_BYTES, killRate: KILL_RATE, reconnectEveryMs: RECONNECT_MS, reconnects: { http: httpAgent.reconnects, tcp: tcpAgent.reconnects }, stats, total, memory: { before, after }, samples }, null, 2)}\n`)

  await Promise.all([httpAgent.stop(), tcpAgent.stop()])
  await gateway.close()
  httpUp.server.closeAllConnections()
  httpUp.server.close()
  echoUp.server.close()
  rmSync(tmp, { recursive: true, force: true })
  return lost === 0 ? 0 : 1
}

main().then((code) => process.exit(code), (error) => {
  process.stderr.write(`soak: ${error.stack ?? error}\n`)
  process.exit(2)
})
