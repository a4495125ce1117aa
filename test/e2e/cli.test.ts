// `porthole serve` as a real process: start-up refusals, host keys on disk, JSON terminal output, a pty
// session closed with Ctrl-C, and a graceful shutdown on SIGTERM that tells connected users.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connect, eventually, FIXTURES, startGatewayProcess, startUpstream, type SshClient } from './harness.js'
import { copyFileSync, chmodSync } from 'node:fs'
import { request } from 'undici'

const BIN = resolve(import.meta.dirname, '../../bin/porthole.js')

function run (args: string[]): { proc: ChildProcess, stdout: () => string, stderr: () => string, exited: Promise<number | null> } {
  const proc = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  proc.stdout!.setEncoding('utf8').on('data', (t: string) => { out += t })
  proc.stderr!.setEncoding('utf8').on('data', (t: string) => { err += t })
  return { proc, stdout: () => out, stderr: () => err, exited: new Promise((r) => proc.once('exit', (code) => r(code))) }
}

describe('porthole serve', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'porthole-cli-'))
  afterAll(() => rmSync(tmp, { recursive: true, force: true }))

  it('refuses a public listener without keys, with one line and a non-zero status', async () => {
    const server = run(['serve', '--ssh-addr', '0.0.0.0:0', '--data-dir', join(tmp, 'a')])
    expect(await server.exited).toBe(2)
    expect(server.stderr()).toMatch(/^PH_2002: refusing to start: listening on 0\.0\.0\.0:0 \(not loopback\) with no --authorized-keys; add keys or pass --allow-anonymous\n$/)
  })

  it('refuses an unknown option', async () => {
    const server = run(['serve', '--ssh-adr', '127.0.0.1:0'])
    expect(await server.exited).toBe(2)
    expect(server.stderr()).toBe('PH_2001: invalid configuration: unknown option --ssh-adr; did you mean --ssh-addr?\n')
  })

  it('refuses a cap out of range from flags and env, naming the setting, and lists every cap in --help', async () => {
    const flag = run(['serve', '--max-sessions-per-key', '0', '--data-dir', join(tmp, 'b')])
    expect(await flag.exited).toBe(2)
    expect(flag.stderr()).toBe('PH_2001: invalid configuration: max-sessions-per-key: want a whole number from 1 to 1000000, got "0"\n')
    const help = run(['serve', '--help'])
    expect(await help.exited).toBe(0)
    for (const cap of ['max-sessions', 'max-anonymous-sessions', 'max-sessions-per-key', 'max-forwards-per-session', 'max-streams-per-session',
      'keepalive-interval', 'keepalive-count-max', 'command-wait', 'upstream-timeout', 'upstream-connections', 'max-request-header-size', 'max-response-header-size']) {
      expect(help.stdout()).toContain(`--${cap} `)
    }
  })

  describe('running', () => {
    let server: ReturnType<typeof run>
    let sshPort: number
    let httpPort: number
    let httpsPort: number
    let upstream: Awaited<ReturnType<typeof startUpstream>>
    const dataDir = join(tmp, 'data')
    const key = join(tmp, 'alice')

    beforeAll(async () => {
      copyFileSync(join(FIXTURES, 'keys', 'alice'), key)
      chmodSync(key, 0o600)
      upstream = await startUpstream()
      server = run(['serve', '--ssh-addr', '127.0.0.1:0', '--http-addr', '127.0.0.1:0', '--https-addr', '127.0.0.1:0', '--api-addr', '127.0.0.1:0', '--agent-addr', '127.0.0.1:0', '--data-dir', dataDir])
      const line = await eventually(() => {
        const found = server.stdout().split('\n').find((l) => l.includes('porthole gateway listening'))
        if (!found) throw new Error(`not listening yet: ${server.stderr()}`)
        return JSON.parse(found) as { ssh: string, http: string, https: string }
      }, 20_000)
      sshPort = Number(line.ssh.split(':').at(-1))
      httpPort = Number(line.http.split(':').at(-1))
      httpsPort = Number(line.https.split(':').at(-1))
    })
    afterAll(async () => {
      server.proc.kill('SIGKILL')
      await upstream.close()
    })

    it('created ed25519 and rsa host keys and the local CA keys with mode 0600', () => {
      for (const file of ['ssh_host_ed25519_key', 'ssh_host_rsa_key', 'ca-key.pem', 'leaf-key.pem']) {
        expect(statSync(join(dataDir, file)).mode & 0o777).toBe(0o600)
      }
    })

    it('prints JSON lines with --output json', async () => {
      const client = connect({ kind: 'openssh', port: sshPort, key, forwards: [`json:80:localhost:${upstream.port}`], command: 'http --output json' })
      await client.waitFor(/(\{"event":"endpoint".*\}\n){2}/)
      const endpoints = client.output.split('\n').filter((l) => l.includes('"endpoint"')).map((l) => JSON.parse(l))
      expect(endpoints).toEqual([
        { event: 'endpoint', url: `https://json.localhost:${httpsPort}`, proto: 'http', bind: 'json:80' },
        { event: 'endpoint', url: `http://json.localhost:${httpPort}`, proto: 'http', bind: 'json:80' },
      ])
      const res = await request(`http://127.0.0.1:${httpPort}/x?y=1`, { headers: { host: 'json.localhost' } })
      await res.body.text()
      const requestLine = await client.waitFor(/\{"event":"request".*\}/)
      expect(JSON.parse(requestLine[0])).toMatchObject({ event: 'request', method: 'GET', path: '/x?y=1', status: 200, client_ip: '127.0.0.1' })
      await client.kill()
    })

    it('closes a pty session on Ctrl-C', async () => {
      const client = connect({ kind: 'openssh', port: sshPort, key, forwards: [`pty:80:localhost:${upstream.port}`], command: 'http', extra: ['-tt'] })
      await client.waitFor(/Forwarding\s+http:\/\/pty\.localhost:\d+ -> -R pty:80\x1b\[K\r\n/) // the live view's line (a pty)
      client.proc.stdin!.write('\x03')
      await client.exited
      await eventually(async () => {
        const res = await request(`http://127.0.0.1:${httpPort}/`, { headers: { host: 'pty.localhost' } })
        await res.body.text()
        return res.statusCode === 503
      })
    })

    it('on SIGTERM tells connected users, closes their sessions and exits 0', async () => {
      const clients: SshClient[] = [
        connect({ kind: 'openssh', port: sshPort, key, forwards: [`bye:80:localhost:${upstream.port}`], command: 'http' }),
        connect({ kind: 'dropbear', port: sshPort, key: (() => { const k = join(tmp, 'alice.dropbear'); copyFileSync(join(FIXTURES, 'keys', 'alice.dropbear'), k); chmodSync(k, 0o600); return k })(), forwards: [`bye2:80:localhost:${upstream.port}`], command: 'http' }),
      ]
      await Promise.all(clients.map((c) => c.urls()))
      server.proc.kill('SIGTERM')
      expect(await server.exited).toBe(0)
      for (const client of clients) {
        await client.waitFor(/PH_1021: gateway is shutting down/)
        await client.exited
      }
    })
  })

  it('on SIGINT (Ctrl-C in the terminal that runs it) shuts down the same way and exits 0', async () => {
    const gateway = await startGatewayProcess()
    const upstream = await startUpstream()
    try {
      const client = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice'), forwards: [`int:80:localhost:${upstream.port}`], command: 'http' })
      await client.urls()
      const exited = new Promise<number | null>((resolve) => gateway.proc.once('exit', (code) => resolve(code)))
      gateway.proc.kill('SIGINT')
      expect(await exited).toBe(0)
      await client.waitFor(/PH_1021: gateway is shutting down/)
      expect(await client.exited).not.toBe(0)
      expect(gateway.output()).toMatch(/"signal":"SIGINT".*"msg":"shutting down"/)
      expect(gateway.output()).toMatch(/"msg":"stopped"/)
    } finally {
      await upstream.close()
      await gateway.stop()
    }
  })
})
