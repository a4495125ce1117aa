// End-to-end harness: the real gateway (in process, ephemeral ports, temp data dir), the real OpenSSH `ssh`
// and Dropbear `dbclient` binaries as child processes, real upstream servers, and an HTTP client.
import { spawn, type ChildProcess } from 'node:child_process'
import { copyFileSync, chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createServer as createNetServer, Socket, connect as netConnect, type AddressInfo } from 'node:net'
import { connect as http2Connect, type ClientHttp2Session } from 'node:http2'
import { connect as tlsConnect, createServer as createTlsServer, type ConnectionOptions, type TLSSocket } from 'node:tls'
import { createHash, randomInt } from 'node:crypto'
import { tmpdir } from 'node:os'
import type { Duplex } from 'node:stream'
import { join, resolve } from 'node:path'
import ngrok from '@ngrok/ngrok'
import { Client, type ClientChannel } from 'ssh2'
import { request as undiciRequest } from 'undici'
import { loadConfig } from '../../src/config/load.js'
import type { ServerConfig } from '../../src/config/schema.js'
import { startGateway, type GatewayParts, type RunningGateway } from '../../src/gateway.js'
import { createLogger } from '../../src/log.js'

export const FIXTURES = resolve(import.meta.dirname, '../../fixtures')
export type ClientKind = 'openssh' | 'dropbear'
export const CLIENTS: ClientKind[] = ['openssh', 'dropbear']

export interface TestGateway extends RunningGateway {
  readonly dataDir: string
  readonly tmp: string
  /** Copies of the fixture keys with mode 0600 (ssh refuses group-readable keys). */
  key (name: string, kind: ClientKind): string
  stop (): Promise<void>
}

export interface GatewayOptions {
  flags?: Record<string, unknown>
  tune?: Partial<ServerConfig>
  dataDir?: string
  /** Parts handed to startGateway (the inspector's store and replay). */
  parts?: GatewayParts
}

/**
 * PORTHOLE_TEST_FAST_H1=0 (the usual-h1 project in vitest.config.ts): every test gateway runs without the HTTP/1.1
 * fast path (on by default), so the HTTP files check the usual path as well: both must say the same.
 */
const FAST_H1_RUN = process.env.PORTHOLE_TEST_FAST_H1 === '0' ? { fastH1: false } : {}

export async function startTestGateway (options: GatewayOptions = {}): Promise<TestGateway> {
  const tmp = mkdtempSync(join(tmpdir(), 'porthole-e2e-'))
  const dataDir = options.dataDir ?? join(tmp, 'data')
  const config = {
    ...loadConfig({ sshAddr: '127.0.0.1:0', httpAddr: '127.0.0.1:0', httpsAddr: '127.0.0.1:0', apiAddr: '127.0.0.1:0', agentAddr: '127.0.0.1:0', dataDir, logLevel: 'silent', ...FAST_H1_RUN, ...options.flags }, {}),
    ...options.tune,
  }
  const log = createLogger(process.env.PORTHOLE_TEST_LOG ?? 'silent', process.stderr)
  const gateway = await startGateway(config, log, options.parts)
  return Object.assign(Object.create(null) as object, gateway, {
    dataDir,
    tmp,
    key (name: string, kind: ClientKind): string {
      const file = kind === 'openssh' ? name : `${name}.dropbear`
      const target = join(tmp, file)
      copyFileSync(join(FIXTURES, 'keys', file), target)
      chmodSync(target, 0o600)
      return target
    },
    async stop (): Promise<void> {
      await gateway.close()
      rmSync(tmp, { recursive: true, force: true })
    },
  }) as TestGateway
}

/** `porthole serve` as its own process (from dist/: `npm test` builds it first), for tests that must keep
 *  running while the gateway's event loop is busy, or that kill it. Loopback listeners, anonymous keys. */
export interface GatewayProcess {
  readonly proc: ChildProcess
  readonly sshPort: number
  readonly httpPort: number
  /** The fixture key `name` with mode 0600. */
  key (name: string): string
  output (): string
  stop (): Promise<void>
}

export async function startGatewayProcess (args: string[] = []): Promise<GatewayProcess> {
  const tmp = mkdtempSync(join(tmpdir(), 'porthole-proc-'))
  const bin = resolve(import.meta.dirname, '../../bin/porthole.js')
  const proc = spawn(process.execPath, [bin, 'serve', '--ssh-addr', '127.0.0.1:0', '--http-addr', '127.0.0.1:0', '--https-addr', '127.0.0.1:0',
    '--api-addr', '127.0.0.1:0', '--agent-addr', '127.0.0.1:0', '--data-dir', join(tmp, 'data'), '--log-level', 'info', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  proc.stdout!.setEncoding('utf8').on('data', (text: string) => { out += text })
  proc.stderr!.setEncoding('utf8').on('data', (text: string) => { out += text })
  const exited = new Promise((resolve) => proc.once('exit', resolve))
  const port = (address: string): number => Number(address.split(':').at(-1))
  const listening = await eventually(() => {
    const line = out.split('\n').find((l) => l.includes('porthole gateway listening'))
    if (!line) throw new Error(`not listening yet (exit ${proc.exitCode}): ${out}`)
    return JSON.parse(line) as { ssh: string, http: string }
  }, 30_000)
  return {
    proc,
    sshPort: port(listening.ssh),
    httpPort: port(listening.http),
    key (name: string): string {
      const target = join(tmp, name)
      copyFileSync(join(FIXTURES, 'keys', name), target)
      chmodSync(target, 0o600)
      return target
    },
    output: () => out,
    async stop (): Promise<void> {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
      await exited
      rmSync(tmp, { recursive: true, force: true })
    },
  }
}

/** A running ssh/dbclient child with its combined output. */
export class SshClient {
  readonly proc: ChildProcess
  output = ''
  readonly exited: Promise<number | null>

  constructor (proc: ChildProcess) {
    this.proc = proc
    proc.stdout!.setEncoding('utf8').on('data', (text: string) => { this.output += text })
    proc.stderr!.setEncoding('utf8').on('data', (text: string) => { this.output += text })
    this.exited = new Promise((resolve) => proc.once('exit', (code) => resolve(code)))
  }

  async waitFor (pattern: RegExp, timeoutMs = 15_000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const match = this.output.match(pattern)
      if (match) return match
      if (Date.now() > deadline || this.proc.exitCode !== null) {
        throw new Error(`timed out waiting for ${pattern} (exit ${this.proc.exitCode}); output:\n${this.output}`)
      }
      await sleep(20)
    }
  }

  /** The URLs of the Forwarding lines (text output). */
  async urls (count = 1): Promise<string[]> {
    const pattern = new RegExp(`(?:Forwarding\\s+http://\\S+[\\s\\S]*?){${count}}`)
    await this.waitFor(pattern)
    return [...this.output.matchAll(/Forwarding\s+(http:\/\/\S+)/g)].map((m) => m[1]!)
  }

  kill (signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill(signal)
    return this.exited
  }
}

export interface ClientOptions {
  kind: ClientKind
  port: number
  key: string
  forwards: string[]
  command?: string
  noSession?: boolean // -N
  extra?: string[]
  /** Extra environment (DROPBEAR_PASSWORD, SSH_ASKPASS...). */
  env?: Record<string, string>
}

export function connect (options: ClientOptions): SshClient {
  const forwards = options.forwards.flatMap((f) => ['-R', f])
  const command = options.command !== undefined && !options.noSession ? [options.command] : []
  let args: string[]
  let bin: string
  if (options.kind === 'openssh') {
    bin = 'ssh'
    // ssh keeps the first value it sees of an option, so the test's own options go first.
    args = [
      ...(options.extra ?? []),
      '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', '-o', 'BatchMode=yes',
      '-o', 'IdentitiesOnly=yes', '-o', 'ExitOnForwardFailure=yes', ...(options.extra?.some((a) => /^-t+$/.test(a)) ? [] : ['-T']),
      '-i', options.key, '-p', String(options.port), ...forwards, ...(options.noSession ? ['-N'] : []),
      'tester@127.0.0.1', ...command,
    ]
  } else {
    bin = 'dbclient'
    args = [
      '-y', '-y', '-i', options.key, '-p', String(options.port), ...forwards, ...(options.noSession ? ['-N'] : []),
      ...(options.extra ?? []), 'tester@127.0.0.1', ...command,
    ]
  }
  return new SshClient(spawn(bin, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, HOME: tmpdir(), ...options.env } }))
}

/**
 * A loopback port for what needs a number rather than port 0 (ssh -L, pebble's config file): a random free one
 * from 24100-28399, below Linux's ephemeral range (32768+) where the kernel picks ports for port-0 listeners and
 * outgoing connections, so nothing else in the suite lands on it between this check and its use (tests' tcp
 * pools sit elsewhere: 20000-24039, 28500-31999). Use port 0 wherever the listener can report its port.
 */
export async function freePort (): Promise<number> {
  for (let tries = 0; ; tries++) {
    const port = 24_100 + randomInt(4_300)
    const free = await new Promise<boolean>((resolve) => {
      const server = createNetServer()
      server.once('error', () => resolve(false))
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
    })
    if (free) return port
    if (tries === 50) throw new Error('freePort: no free port in 24100-28399')
  }
}

export function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** `promise`, or a rejection naming `what` once `ms` pass: a step that hangs fails as itself, not as the test's
 *  60 s timeout. (A real client's call, such as the ngrok SDK's, has no deadline of its own.) */
export function within<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((resolve, reject) => { timer = setTimeout(() => reject(new Error(`${what}: not done within ${ms} ms`)), ms) })
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer))
}

export interface NgrokSessionOptions {
  /** Default: any text (anonymous mode takes any authtoken). */
  authtoken?: string
  /** Default: localhost:<the agent listener's port>. */
  serverAddr?: string
  heartbeatIntervalMs?: number
  /** Called by the SDK when its session dropped (it reconnects on its own). */
  onDisconnect?: (addr: string, error: string) => void
}

/** A session of the official ngrok SDK (@ngrok/ngrok) on the gateway's agent listener, trusting its CA. */
export function ngrokSession (gateway: { agentPort: number | null, caPem: string }, options: NgrokSessionOptions = {}): Promise<ngrok.Session> {
  let builder = new ngrok.SessionBuilder()
    .authtoken(options.authtoken ?? 'any-token')
    .serverAddr(options.serverAddr ?? `localhost:${gateway.agentPort}`)
    .caCert(Buffer.from(gateway.caPem))
  if (options.heartbeatIntervalMs !== undefined) builder = builder.heartbeatInterval(options.heartbeatIntervalMs)
  if (options.onDisconnect) {
    const onDisconnect = options.onDisconnect
    builder = builder.handleDisconnection((addr, error) => { onDisconnect(addr, error); return true })
  }
  return builder.connect()
}

/** An upstream HTTP server on a free loopback port; the handler defaults to an echo of the request. */
export async function startUpstream (handler?: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ server: Server, port: number, close: () => Promise<void> }> {
  const server = createServer(handler ?? ((req, res) => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers }))
  }))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }),
  }
}

export interface Fetched { status: number, headers: Record<string, string | string[] | undefined>, body: string }

/** GETs (or other) a public URL: connects to the gateway's HTTP port and sends the URL's Host. */
export async function fetchVia (gateway: { httpPort: number }, url: string, init: { method?: string, headers?: Record<string, string>, body?: string } = {}): Promise<Fetched> {
  const parsed = new URL(url)
  const response = await undiciRequest(`http://127.0.0.1:${gateway.httpPort}${parsed.pathname}${parsed.search}`, {
    method: (init.method ?? 'GET') as 'GET',
    headers: { host: parsed.host, ...init.headers },
    body: init.body,
  })
  return { status: response.statusCode, headers: response.headers, body: await response.body.text() }
}

/**
 * Sends raw bytes to a listener on 127.0.0.1 and collects everything until the server closes; over TLS when
 * `tls` is given (its servername is the SNI). Resolves with what arrived even when the connection is reset.
 */
export async function rawRequest (port: number, text: string, tls?: ConnectionOptions): Promise<string> {
  const socket = tls === undefined ? new Socket() : tlsConnect({ host: '127.0.0.1', port, ...tls })
  await new Promise<void>((resolve, reject) => {
    if (tls === undefined) socket.connect(port, '127.0.0.1', resolve)
    else socket.once('secureConnect', resolve)
    socket.once('error', reject)
  })
  let reply = ''
  socket.setEncoding('utf8').on('data', (t: string) => { reply += t })
  socket.on('error', () => {})
  socket.write(text)
  await new Promise((resolve) => socket.once('close', resolve))
  return reply
}

/**
 * Polls until fn() returns a value other than false, undefined or null without throwing, for state that settles
 * asynchronously; resolves with that value. A check made of expect() calls ends with `return true` (returning
 * nothing means "not yet": a find() that found nothing must not end the wait).
 */
export async function eventually<T> (fn: () => Promise<T | false | undefined | null> | T | false | undefined | null, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      const value = await fn()
      if (value !== false && value !== undefined && value !== null) return value as T
    } catch (error) {
      if (Date.now() > deadline) throw error
    }
    if (Date.now() > deadline) throw new Error('eventually: condition never held')
    await sleep(50)
  }
}

export function writeTemp (dir: string, name: string, text: string): string {
  const file = join(dir, name)
  writeFileSync(file, text)
  return file
}

/** A raw TCP connection, optionally from another loopback source address (127.0.0.2, ...: all of 127/8 is local). */
export interface RawConnection {
  readonly socket: Socket
  readonly connected: Promise<void>
  /** Resolves when the socket closes: whether the peer reset it (ECONNRESET) rather than closing cleanly. */
  readonly closed: Promise<{ reset: boolean }>
  /** What the peer sent so far. */
  received (): string
}

export function rawConnect (port: number, localAddress?: string): RawConnection {
  const socket = netConnect({ host: '127.0.0.1', port, ...(localAddress ? { localAddress } : {}) })
  let text = ''
  let reset = false
  socket.setEncoding('latin1').on('data', (chunk: string) => { text += chunk })
  socket.on('error', (error: NodeJS.ErrnoException) => { if (error.code === 'ECONNRESET') reset = true })
  return {
    socket,
    connected: new Promise((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) }),
    closed: new Promise((resolve) => socket.once('close', () => resolve({ reset }))),
    received: () => text,
  }
}

/**
 * Sends `text` to 127.0.0.1:`port` (an echo service behind a tcp endpoint), ends its side once as many bytes came
 * back, and resolves with the bytes echoed when the connection has closed; rejects on a socket error.
 */
export async function echoOnce (port: number, text: string, timeoutMs = 15_000): Promise<number> {
  const socket = netConnect({ host: '127.0.0.1', port })
  socket.write(text)
  let echoed = 0
  let ended = false
  socket.on('data', (chunk: Buffer) => { if ((echoed += chunk.length) === Buffer.byteLength(text)) socket.end() })
  socket.on('end', () => { ended = true })
  const closed = new Promise((resolve, reject) => { socket.once('close', resolve); socket.once('error', reject) })
  try {
    await within(closed, timeoutMs, `echoOnce to port ${port}`)
  } catch (error) {
    socket.destroy()
    throw new Error(`${(error as Error).message} (${echoed} of ${Buffer.byteLength(text)} bytes echoed, ${ended ? 'peer ended' : 'peer never ended'})`)
  }
  return echoed
}

/**
 * A login with the ssh2 client library: the client when it got in, else the error. (ssh2 answers
 * keyboard-interactive rounds without prompts itself, so a refusal's instruction is not seen here: check
 * those with the real ssh binary.)
 */
export interface LibraryLogin {
  readonly client: Client | null
  readonly error: Error | null
}

/**
 * Logs in with ssh2's client: with `privateKey` by public key, else anonymously by keyboard-interactive
 * (answering no prompts). Resolves once in or refused; never rejects.
 */
export function libraryLogin (port: number, options: { privateKey?: string, localAddress?: string } = {}): Promise<LibraryLogin> {
  return new Promise((resolve) => {
    const client = new Client()
    client.on('keyboard-interactive', (_name, _text, _lang, prompts, finish) => finish(prompts.map(() => '')))
    client.once('ready', () => resolve({ client, error: null }))
    client.once('error', (error) => {
      client.end()
      resolve({ client: null, error })
    })
    client.connect({
      host: '127.0.0.1',
      port,
      username: 'tester',
      ...(options.localAddress ? { localAddress: options.localAddress } : {}),
      ...(options.privateKey ? { privateKey: options.privateKey } : {}),
      tryKeyboard: true,
      readyTimeout: 30_000,
    })
  })
}

/**
 * Asks for http forwards the way OpenSSH does (tcpip-forward, then a session with the `http` command) and
 * resolves with the host each one got, or rejects with the terminal's output.
 */
export async function libraryForward (client: Client, names: string[], command = 'http'): Promise<string[]> {
  const forwards = names.map((name) => new Promise<number>((resolve, reject) => {
    client.forwardIn(name, 80, (error, port) => (error ? reject(error) : resolve(port)))
  }))
  let output = ''
  client.exec(command, (error, stream) => {
    if (error) return
    stream.on('data', (chunk: Buffer) => { output += chunk.toString() }).stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
  })
  try {
    await Promise.all(forwards)
  } catch (error) {
    await sleep(100)
    throw new Error(`forward refused: ${(error as Error).message}; terminal: ${output}`)
  }
  const hosts = (): string[] => [...new Set([...output.matchAll(/Forwarding\s+https?:\/\/([^:/\s]+)/g)].map((m) => m[1]!))]
  await eventually(() => hosts().length >= names.length)
  return hosts()
}

/** What an exec on a ScriptedClient's session got: the exec reply, everything printed, the exit status. */
export interface ExecOutcome {
  readonly accepted: boolean
  readonly output: () => string
  /** The exit status, or null when the channel closed without one. */
  readonly exit: Promise<number | null>
}

/**
 * The ssh2 library as a client, for tests that need exact timing: each step (a forward, opening the session
 * channel, its exec) goes out when the test says, which ssh and dbclient never allow. Forwarded connections
 * are piped to `upstreamPort`.
 */
export class ScriptedClient {
  readonly client: Client
  readonly #gateway: TestGateway

  private constructor (client: Client, gateway: TestGateway) {
    this.client = client
    this.#gateway = gateway
  }

  static connect (gateway: TestGateway, upstreamPort: number, keyName = 'alice'): Promise<ScriptedClient> {
    const client = new Client()
    client.on('tcp connection', (_info, accept) => {
      const channel = accept()
      const socket = netConnect(upstreamPort, '127.0.0.1')
      socket.on('error', () => channel.destroy())
      channel.on('error', () => socket.destroy())
      channel.pipe(socket).pipe(channel)
    })
    return new Promise((resolve, reject) => {
      client.once('ready', () => {
        client.removeListener('error', reject)
        client.on('error', () => {})
        resolve(new ScriptedClient(client, gateway))
      })
      client.once('error', reject)
      // strictVendor off: ssh2 would otherwise send no-more-sessions only to a server calling itself OpenSSH.
      client.connect({ host: '127.0.0.1', port: gateway.sshPort, username: 'tester', privateKey: readFileSync(join(FIXTURES, 'keys', keyName)), strictVendor: false })
    })
  }

  /** Bytes the gateway has read from this client so far: it grows once the gateway parsed what we sent. */
  gatewayBytesIn (): number {
    const local = (this.client as unknown as { _sock: { localPort: number } })._sock.localPort
    return this.#gateway.ssh.connections.find((c) => c.login.remotePort === local)?.describe().bytesIn ?? 0
  }

  /** tcpip-forward; resolves with the port the gateway reports, rejects when it refuses. */
  forward (bindAddr: string, bindPort: number): Promise<number> {
    return new Promise((resolve, reject) => this.client.forwardIn(bindAddr, bindPort, (err, port) => (err ? reject(err) : resolve(port))))
  }

  noMoreSessions (): void {
    this.client.openssh_noMoreSessions(() => {})
  }

  /** Opens a session channel and sends nothing on it (ssh2's exec() would send its exec right away). */
  openSession (): Promise<ClientChannel> {
    const internals = this.client as unknown as { _chanMgr: { add: (cb: unknown) => number }, _protocol: { session: (id: number, window: number, packet: number) => void } }
    return new Promise((resolve, reject) => {
      const opened = Object.assign((err: Error | undefined, channel: ClientChannel) => (err ? reject(err) : resolve(channel)), { type: 'session' })
      internals._protocol.session(internals._chanMgr.add(opened), 2 * 1024 * 1024, 32 * 1024)
    })
  }

  /** Sends exec on a session channel opened by openSession(). */
  exec (session: ClientChannel, command: string): Promise<ExecOutcome> {
    let output = ''
    session.on('data', (data: Buffer) => { output += data.toString() })
    session.stderr.on('data', (data: Buffer) => { output += data.toString() })
    session.on('error', () => {})
    const exit = new Promise<number | null>((resolve) => {
      let status: number | null = null
      session.on('exit', (code: number | null) => { status = code })
      session.once('close', () => resolve(status))
    })
    const internals = session as unknown as { _callbacks: Array<(failed: unknown) => void>, outgoing: { id: number }, _client: { _protocol: { exec: (id: number, command: string, wantReply: boolean) => void } } }
    return new Promise((resolve) => {
      internals._callbacks.push((failed) => resolve({ accepted: !failed, output: () => output, exit }))
      internals._client._protocol.exec(internals.outgoing.id, command, true)
    })
  }

  /** Opens a session and execs `command` on it. */
  async run (command: string): Promise<ExecOutcome> {
    return this.exec(await this.openSession(), command)
  }

  end (): void {
    this.client.end()
  }
}

/** An HTTP/2 session to the gateway's HTTPS port for `servername`, trusting the gateway's CA. */
export function h2Session (gateway: { httpsPort: number, caPem: string }, servername: string): ClientHttp2Session {
  const session = http2Connect(`https://127.0.0.1:${gateway.httpsPort}`, { ca: gateway.caPem, servername })
  session.on('error', () => {})
  return session
}

/** The status of one GET on an HTTP/2 session (the body is read and dropped). */
export function h2Status (session: ClientHttp2Session, authority: string, path = '/'): Promise<number> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':path': path, ':authority': authority })
    stream.once('response', (headers) => resolve(Number(headers[':status'])))
    stream.once('error', reject)
    stream.resume()
  })
}

/** A TLS connection to the gateway's HTTPS port for `servername` offering `alpn`, once the handshake is done. */
export function tlsTo (gateway: { httpsPort: number, caPem: string }, servername: string, alpn: string[]): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port: gateway.httpsPort, ca: gateway.caPem, servername, ALPNProtocols: alpn }, () => {
      socket.off('error', reject)
      resolve(socket)
    })
    socket.once('error', reject)
  })
}

/** A connection that sends `start`, then one byte of `drip` about every `everyMs` (200), never finishing; `closed`
 *  resolves with what the server sent once the server has closed it. */
export function dripper (socket: Duplex, start: Buffer, drip: Buffer, everyMs = 200): { closed: Promise<string>, started: Promise<void> } {
  let received = ''
  let at = 0
  socket.on('data', (chunk: Buffer) => { received += chunk.toString('latin1') })
  socket.on('error', () => {})
  const started = new Promise<void>((resolve) => socket.write(start, () => resolve()))
  const timer = setInterval(() => {
    if (!socket.writable) return
    socket.write(drip.subarray(at % drip.length, (at % drip.length) + 1))
    at++
  }, everyMs)
  const closed = new Promise<string>((resolve) => socket.once('close', () => {
    clearInterval(timer)
    resolve(received)
  }))
  return { closed, started }
}

/** HTTP/2 by hand (RFC 9113): frame types and flags the hostile tests write. */
export const H2 = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, CONTINUATION: 9, END_STREAM: 1, ACK: 1, END_HEADERS: 4 } as const
/** The client connection preface and an empty SETTINGS frame. */
export const H2_PREFACE = Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])])

/** One frame: the 9-byte header (24-bit length, type, flags, 31-bit stream id) and its payload. */
export function h2Frame (type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9)
  head.writeUIntBE(payload.length, 0, 3)
  head[3] = type
  head[4] = flags
  head.writeUInt32BE(stream, 5)
  return Buffer.concat([head, payload])
}

/** An HPACK string literal (no Huffman), length in a 7-bit prefix. */
function hpackString (text: string): Buffer {
  const bytes = Buffer.from(text, 'latin1')
  if (bytes.length < 127) return Buffer.concat([Buffer.from([bytes.length]), bytes])
  const length: number[] = [127]
  for (let rest = bytes.length - 127; ; rest >>= 7) {
    if (rest < 128) { length.push(rest); break }
    length.push((rest & 127) | 128)
  }
  return Buffer.concat([Buffer.from(length), bytes])
}

/** An HPACK header block for GET (or POST) https://`authority``path` (static-table :method, :scheme; :path and
 *  :authority as literals without indexing), plus `extra` fields as literals with new names. */
export function hpackGet (authority: string, path = '/', extra: Array<[string, string]> = [], method: 'GET' | 'POST' = 'GET'): Buffer {
  const parts = [Buffer.from([method === 'GET' ? 0x82 : 0x83, 0x87]), Buffer.from([0x04]), hpackString(path), Buffer.from([0x01]), hpackString(authority)]
  for (const [name, value] of extra) parts.push(Buffer.from([0x00]), hpackString(name), hpackString(value))
  return Buffer.concat(parts)
}

export interface H2Frame { type: number, flags: number, stream: number, payload: Buffer }

/** Reads the frames a server sends on `socket` (after its preface), ACKing its SETTINGS; `next` waits for one
 *  that matches (or null once the socket has closed without it). */
export function h2Reader (socket: Duplex): { frames: H2Frame[], next: (match: (frame: H2Frame) => boolean) => Promise<H2Frame | null>, closed: Promise<void> } {
  const frames: H2Frame[] = []
  const waiting: Array<{ match: (frame: H2Frame) => boolean, resolve: (frame: H2Frame | null) => void }> = []
  let buffered = Buffer.alloc(0)
  let ended = false
  socket.on('error', () => {})
  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk])
    while (buffered.length >= 9) {
      const length = buffered.readUIntBE(0, 3)
      if (buffered.length < 9 + length) break
      const frame = { type: buffered[3]!, flags: buffered[4]!, stream: buffered.readUInt32BE(5) & 0x7fffffff, payload: buffered.subarray(9, 9 + length) }
      buffered = buffered.subarray(9 + length)
      frames.push(frame)
      if (frame.type === H2.SETTINGS && (frame.flags & H2.ACK) === 0 && socket.writable) socket.write(h2Frame(H2.SETTINGS, H2.ACK, 0))
      for (const waiter of waiting.filter((w) => w.match(frame))) {
        waiting.splice(waiting.indexOf(waiter), 1)
        waiter.resolve(frame)
      }
    }
  })
  const closed = new Promise<void>((resolve) => socket.once('close', () => {
    ended = true
    for (const waiter of waiting.splice(0)) waiter.resolve(null)
    resolve()
  }))
  const next = (match: (frame: H2Frame) => boolean): Promise<H2Frame | null> => {
    const seen = frames.find(match)
    if (seen !== undefined) return Promise.resolve(seen)
    if (ended) return Promise.resolve(null)
    return new Promise((resolve) => waiting.push({ match, resolve }))
  }
  return { frames, next, closed }
}

/**
 * An upstream that answers each request with exact bytes: a net.Server that reads a request head (up to the
 * blank line, then skips a Content-Length body) and calls `answer` with the socket and that head. With `tls`
 * (a key and certificate) it speaks TLS.
 */
export async function startRawUpstream (answer: (socket: Socket, head: string) => void, tls?: { key: string, cert: string }): Promise<{ port: number, close: () => Promise<void> }> {
  const sockets = new Set<Socket>()
  const onSocket = (socket: Socket): void => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    let buffered = ''
    let skip = 0
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('latin1')
      for (;;) {
        const skipped = Math.min(skip, buffered.length)
        buffered = buffered.slice(skipped)
        skip -= skipped
        const end = skip > 0 ? -1 : buffered.indexOf('\r\n\r\n')
        if (end === -1) return
        const head = buffered.slice(0, end)
        buffered = buffered.slice(end + 4)
        skip = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0)
        answer(socket, head)
      }
    })
  }
  const server = tls === undefined ? createNetServer(onSocket) : createTlsServer(tls, onSocket)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise((resolve) => { for (const socket of sockets) socket.destroy(); server.close(() => resolve()) }),
  }
}

/** How a public stream ended: every byte read, and 'end' (the peer's FIN) or the error code (ECONNRESET...). */
export interface StreamEnding { readonly bytes: number, readonly sha: string, readonly ending: string }

/**
 * Reads a socket to its end and says how it ended, telling a reset from a FIN even when Node cannot: libuv
 * 1.46 (Node 20) reports a reset that arrives while bytes are still queued as a plain end (EPOLLHUP after a
 * partial read skips the read that would fail; libuv#2319, #4997). The socket must be made with
 * `allowHalfOpen: true`: at the end, a one-byte write fails with ECONNRESET if the peer reset while the
 * connection was established, and succeeds (or fails with EPIPE: a reset after the FIN) if a FIN came first.
 * `onData` sees each chunk with the running byte count.
 */
export function readToEnding (socket: Socket, onData?: (bytes: number) => void): Promise<StreamEnding> {
  const hash = createHash('sha256')
  let bytes = 0
  return new Promise((resolve) => {
    let settled = false
    const settle = (ending: string): void => {
      if (settled) return
      settled = true
      socket.destroy()
      resolve({ bytes, sha: hash.digest('hex'), ending })
    }
    socket.on('data', (chunk: Buffer) => {
      bytes += chunk.length
      hash.update(chunk)
      onData?.(bytes)
    })
    socket.on('error', (error: NodeJS.ErrnoException) => settle(error.code ?? error.message))
    socket.once('end', () => {
      if (socket.writableEnded) return settle('end') // we had ended our side: nothing left to probe with
      socket.write(Buffer.alloc(1), (error?: Error | null) => settle((error as NodeJS.ErrnoException | null)?.code === 'ECONNRESET' ? 'ECONNRESET' : 'end'))
    })
    socket.once('close', () => settle('closed'))
  })
}
