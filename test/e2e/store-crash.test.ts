// Crash safety of the identity store under the admin API: `porthole serve` as a real process takes a burst of
// concurrent account creations and is SIGKILLed in the middle; identity.json must still parse and hold every
// creation the API acknowledged (2xx), and a restarted server on the same data dir must list them all.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { request } from 'undici'
import { afterAll, describe, expect, it } from 'vitest'
import { FileIdentityStore } from '../../src/identity/file-store.js'
import { Identity } from '../../src/identity/identity.js'
import { eventually } from './harness.js'

const BIN = resolve(import.meta.dirname, '../../bin/porthole.js')
const WRITES = 200
const IN_FLIGHT = 20
const KILL_AFTER = 60

interface Server { proc: ChildProcess, apiPort: number, exited: Promise<unknown>, out: () => string }

async function serve (dataDir: string): Promise<Server> {
  const proc = spawn(process.execPath, [BIN, 'serve', '--ssh-addr', '127.0.0.1:0', '--http-addr', '127.0.0.1:0', '--https-addr', '127.0.0.1:0',
    '--api-addr', '127.0.0.1:0', '--agent-addr', '127.0.0.1:0', '--data-dir', dataDir, '--log-level', 'info'], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  proc.stdout!.setEncoding('utf8').on('data', (t: string) => { out += t })
  proc.stderr!.setEncoding('utf8').on('data', (t: string) => { err += t })
  const exited = new Promise((resolve) => proc.once('exit', resolve))
  const line = await eventually(() => {
    const found = out.split('\n').find((l) => l.includes('porthole gateway listening'))
    if (!found) throw new Error(`not listening yet: ${err}`)
    return JSON.parse(found) as { api: string }
  }, 30_000)
  return { proc, apiPort: Number(line.api.split(':').at(-1)), exited, out: () => out }
}

describe('identity store crash safety', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'porthole-crash-'))
  const dataDir = join(tmp, 'data')
  const running: Server[] = []
  afterAll(() => {
    for (const server of running) server.proc.kill('SIGKILL')
    rmSync(tmp, { recursive: true, force: true })
  })

  it('keeps every acknowledged write when the server is SIGKILLed during a burst', async () => {
    const store = new FileIdentityStore(dataDir)
    const { key } = await new Identity(store, { domain: 'localhost', tcpPorts: { lo: 20000, hi: 20999 } }).createApiKey({ description: 'crash test' })
    await store.close()
    const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' }

    const first = await serve(dataDir)
    running.push(first)
    const acknowledged: string[] = []
    let failed = 0
    let next = 0
    let killedAt = -1
    const worker = async (): Promise<void> => {
      while (next < WRITES) {
        const name = `crash-${next++}`
        try {
          const response = await request(`http://127.0.0.1:${first.apiPort}/api/accounts`, { method: 'POST', headers, body: JSON.stringify({ name }) })
          await response.body.text()
          if (response.statusCode >= 200 && response.statusCode < 300) acknowledged.push(name)
          else failed++
        } catch {
          failed++ // the server is gone: this write was never acknowledged
        }
        if (acknowledged.length >= KILL_AFTER && killedAt < 0) {
          killedAt = acknowledged.length
          first.proc.kill('SIGKILL')
        }
      }
    }
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker))
    await first.exited
    // Calls are logged with the API key's id, never the key. (Not one line per acknowledged write: a call is
    // logged after its answer went out, and the SIGKILL can land in between.)
    const logged = first.out().split('\n').filter((l) => l.includes('"api request"')).map((l) => JSON.parse(l))
    expect(logged.length).toBeGreaterThanOrEqual(acknowledged.length - IN_FLIGHT)
    expect(logged[0]).toMatchObject({ level: 30, component: 'api', method: 'POST', path: '/api/accounts', status: 201, api_key: key.split('.')[0] })
    expect(first.out()).not.toContain(key.split('.')[1])
    expect(killedAt).toBeGreaterThanOrEqual(KILL_AFTER)

    // The file parses and holds every acknowledged account (and maybe a few whose answer never arrived).
    const data = JSON.parse(readFileSync(join(dataDir, 'identity.json'), 'utf8')) as { accounts: Array<{ name: string }> }
    const stored = new Set(data.accounts.map((a) => a.name))
    const missing = acknowledged.filter((name) => !stored.has(name))
    console.log(`crash test: ${WRITES} writes sent, ${acknowledged.length} acknowledged (SIGKILL after ${killedAt}), ${failed} failed, ${stored.size} in identity.json, ${missing.length} acknowledged but missing`)
    expect(missing).toEqual([])
    expect(stored.size).toBeGreaterThanOrEqual(acknowledged.length)
    expect(stored.size).toBeLessThan(WRITES)

    // A new server on the same data dir (the dead one's lock file is taken over) lists them through the API.
    const second = await serve(dataDir)
    running.push(second)
    const listed: string[] = []
    let uri: string | null = '/api/accounts?limit=100'
    while (uri !== null) {
      const response = await request(`http://127.0.0.1:${second.apiPort}${uri}`, { headers })
      expect(response.statusCode).toBe(200)
      const page = await response.body.json() as { accounts: Array<{ name: string }>, next_page_uri: string | null }
      listed.push(...page.accounts.map((a) => a.name))
      uri = page.next_page_uri
    }
    expect(new Set(listed)).toEqual(stored)
    // And it takes writes again.
    const more = await request(`http://127.0.0.1:${second.apiPort}/api/accounts`, { method: 'POST', headers, body: JSON.stringify({ name: 'after-crash' }) })
    expect(more.statusCode).toBe(201)
    await more.body.text()
    second.proc.kill('SIGTERM')
    await second.exited
    expect(JSON.parse(readFileSync(join(dataDir, 'identity.json'), 'utf8')).accounts.map((a: { name: string }) => a.name)).toContain('after-crash')
  })
  it('loses nothing when offline api-keys create runs during a burst of API writes', async () => {
    const dir = join(tmp, 'concurrent')
    const store = new FileIdentityStore(dir)
    const { key } = await new Identity(store, { domain: 'localhost', tcpPorts: { lo: 20000, hi: 20999 } }).createApiKey()
    await store.close()
    const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' }
    const server = await serve(dir)
    running.push(server)
    const cliKeys = Array.from({ length: 4 }, () => new Promise<string>((resolve, reject) => {
      const proc = spawn(process.execPath, [BIN, 'api-keys', 'create', '--data-dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] })
      let out = ''
      proc.stdout.setEncoding('utf8').on('data', (t: string) => { out += t })
      proc.once('exit', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`api-keys create exited ${code}`))))
    }))
    const names = Array.from({ length: 80 }, (_, i) => `both-${i}`)
    const answers: number[] = []
    for (let i = 0; i < names.length; i += 10) {
      answers.push(...await Promise.all(names.slice(i, i + 10).map(async (name) => {
        const response = await request(`http://127.0.0.1:${server.apiPort}/api/accounts`, { method: 'POST', headers, body: JSON.stringify({ name }) })
        await response.body.text()
        return response.statusCode
      })))
    }
    const made = await Promise.all(cliKeys)
    expect(answers.every((status) => status === 201)).toBe(true)
    const data = JSON.parse(readFileSync(join(dir, 'identity.json'), 'utf8')) as { accounts: Array<{ name: string }>, apiKeys: Array<{ id: string }> }
    expect(data.accounts.map((a) => a.name).sort()).toEqual([...names].sort())
    expect(data.apiKeys.map((k) => k.id).sort()).toEqual([key, ...made].map((k) => k.split('.')[0]).sort())
    // The running server takes the keys made behind its back.
    for (const made1 of made) {
      const response = await eventually(async () => {
        const answer = await request(`http://127.0.0.1:${server.apiPort}/api/api_keys`, { headers: { authorization: `Bearer ${made1}` } })
        await answer.body.text()
        if (answer.statusCode !== 200) throw new Error(`status ${answer.statusCode}`)
        return answer
      })
      expect(response.statusCode).toBe(200)
    }
    server.proc.kill('SIGTERM')
    await server.exited
  })
})
