// End-to-end harness: the real gateway (in process, ephemeral ports, temp data dir), the real OpenSSH `ssh`
// and Dropbear `dbclient` binaries as child processes, real upstream servers, and an HTTP client.
import { spawn, type ChildProcess } from 'node:child_process'
import { copyFileSync, chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { request as undiciRequest } from 'undici'
import { loadConfig } from '../../src/config/load.js'
import type { ServerConfig } from '../../src/config/schema.js'
import { startGateway, type RunningGateway } from '../../src/gateway.js'
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
}

export async function startTestGateway (options: GatewayOptions = {}): Promise<TestGateway> {
  const tmp = mkdtempSync(join(tmpdir(), 'porthole-e2e-'))
  const dataDir = options.dataDir ?? join(tmp, 'data')
  const config = {
    ...loadConfig({ sshAddr: '127.0.0.1:0', httpAddr: '127.0.0.1:0', httpsAddr: '127.0.0.1:0', apiAddr: '127.0.0.1:0', dataDir, logLevel: 'silent', ...options.flags }, {}),
    ...options.tune,
  }
  const log = createLogger(process.env.PORTHOLE_TEST_LOG ?? 'silent', process.stderr)
  const gateway = await startGateway(config, log)
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
    '--api-addr', '127.0.0.1:0', '--data-dir', join(tmp, 'data'), '--log-level', 'info', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
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

export function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
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

/** Polls until fn() stops throwing (or returns truthy), for state that settles asynchronously. */
export async function eventually<T> (fn: () => Promise<T> | T, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      const value = await fn()
      if (value !== false) return value
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
