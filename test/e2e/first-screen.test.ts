// What a new user sees from `porthole serve` (`npm start`): the start line, then one human line on stderr with
// the ssh command to try (real port); and the moment anonymous access ends because an operator added the first
// account credential: the CLI says so, the gateway logs a warning, and its start line counts account keys and
// authtokens (it said `keys=0` with keys in the identity store).
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { ANONYMOUS_ENDED } from '../../src/cli/admin.js'
import { tryLine } from '../../src/cli/try-line.js'
import { eventually } from './harness.js'

const BIN = resolve(import.meta.dirname, '../../bin/porthole.js')

interface Proc { proc: ChildProcess, stdout: () => string, stderr: () => string, exited: Promise<number | null> }

function run (args: string[], env: Record<string, string> = {}): Proc {
  const proc = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PORTHOLE_API_URL: '', PORTHOLE_API_KEY: '', ...env } })
  let out = ''
  let err = ''
  proc.stdout!.setEncoding('utf8').on('data', (t: string) => { out += t })
  proc.stderr!.setEncoding('utf8').on('data', (t: string) => { err += t })
  return { proc, stdout: () => out, stderr: () => err, exited: new Promise((r) => proc.once('exit', (code) => r(code))) }
}

async function done (p: Proc): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const code = await p.exited
  return { code, stdout: p.stdout(), stderr: p.stderr() }
}

interface StartLine { ssh: string, api: string, anonymous: boolean, keys: number, tokens: number }

async function serve (dataDir: string): Promise<{ server: Proc, line: StartLine }> {
  const server = run(['serve', '--ssh-addr', '127.0.0.1:0', '--http-addr', '127.0.0.1:0', '--https-addr', '127.0.0.1:0', '--api-addr', '127.0.0.1:0',
    '--agent-addr', '127.0.0.1:0', '--data-dir', dataDir])
  const line = await eventually(() => {
    const found = server.stdout().split('\n').find((l) => l.includes('porthole gateway listening'))
    if (!found) throw new Error(`not listening yet: ${server.stderr()}`)
    return JSON.parse(found) as StartLine
  }, 20_000)
  return { server, line }
}

describe('the first screen of porthole serve', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'porthole-first-'))
  const servers: Proc[] = []
  afterAll(async () => {
    for (const s of servers) s.proc.kill('SIGKILL')
    await Promise.all(servers.map((s) => s.exited))
    rmSync(tmp, { recursive: true, force: true })
  })

  it('prints the ssh command to try (stderr, real port), keeps stdout JSON, and says when anonymous access ends', async () => {
    const dataDir = join(tmp, 'data')
    const { server, line } = await serve(dataDir)
    servers.push(server)
    const sshPort = Number(line.ssh.split(':').at(-1))
    expect(line).toMatchObject({ anonymous: true, keys: 0, tokens: 0 })
    await eventually(() => server.stderr().includes('try:'))
    expect(server.stderr()).toBe(`try: ssh -p ${sshPort} -R 80:localhost:3000 localhost http\n`)
    for (const l of server.stdout().split('\n').filter(Boolean)) expect(() => JSON.parse(l)).not.toThrow()

    const apiKey = await done(run(['api-keys', 'create', '--data-dir', dataDir]))
    expect(apiKey.code).toBe(0)
    const env = { PORTHOLE_API_URL: `http://${line.api}`, PORTHOLE_API_KEY: apiKey.stdout.trim() }
    expect((await done(run(['accounts', 'create', 'ann'], env))).code).toBe(0)
    const token = await done(run(['tokens', 'create', 'ann', '--acl', 'bind:demo.localhost'], env))
    expect(token.code).toBe(0)
    expect(token.stderr).toMatch(/^Created authtoken tok_\w+ for ann; it is shown only this once\.\n/)
    expect(token.stderr.endsWith(ANONYMOUS_ENDED)).toBe(true)
    const second = await done(run(['tokens', 'create', 'ann'], env))
    expect(second.stderr).not.toContain('anonymous')

    const warning = await eventually(() => server.stdout().split('\n').find((l) => l.includes('anonymous access ended')))
    expect(JSON.parse(warning)).toMatchObject({ level: 40, keys: 0, tokens: 1 })

    server.proc.kill('SIGTERM')
    expect(await server.exited).toBe(0)
    const again = await serve(dataDir)
    servers.push(again.server)
    expect(again.line).toMatchObject({ anonymous: false, keys: 0, tokens: 2 })
  })

  it('names the domain, not a wildcard address, when the SSH listener is public; no -p on port 22', () => {
    expect(tryLine('0.0.0.0', 22, 'tunnel.example.com')).toBe('try: ssh -R 80:localhost:3000 tunnel.example.com http')
    expect(tryLine('::1', 2222, 'localhost')).toBe('try: ssh -p 2222 -R 80:localhost:3000 localhost http')
  })
})
