// Admission exhaustion (issue 9 item 7): one party must not lock others out of SSH logins, names or the
// admin API. Silent sockets from many source addresses (all of 127/8 is loopback), floods of anonymous
// sessions and of freshly made keys, and wrong API keys, each against caps tuned small.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import {
  FIXTURES, connect, eventually, fetchVia, libraryForward, libraryLogin, rawConnect, startTestGateway, startUpstream, writeTemp,
  type LibraryLogin, type RawConnection, type SshClient, type TestGateway,
} from '../e2e/harness.js'
import { freshPrivateKey } from '../ssh-keys.js'

let upstream: Awaited<ReturnType<typeof startUpstream>>
let keysDir: string
let authorizedKeys: string
beforeAll(async () => {
  upstream = await startUpstream()
  keysDir = mkdtempSync(join(tmpdir(), 'porthole-admission-'))
  authorizedKeys = writeTemp(keysDir, 'authorized_keys', readFileSync(join(FIXTURES, 'keys', 'alice.pub'), 'utf8'))
})
afterAll(async () => {
  await upstream.close()
  rmSync(keysDir, { recursive: true, force: true })
})

const clients: SshClient[] = []
const logins: LibraryLogin[] = []
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.kill()))
  for (const login of logins.splice(0)) login.client?.end()
})

describe('unauthenticated connections', () => {
  let gateway: TestGateway
  const sockets: RawConnection[] = []
  beforeAll(async () => {
    gateway = await startTestGateway({ tune: { maxStartups: { start: 30, rate: 30, full: 60 }, perSourceMaxStartups: 4, loginTimeoutMs: 60_000 } })
  })
  afterAll(async () => {
    for (const s of sockets) s.socket.destroy()
    await gateway.stop()
  })

  it('520 silent sockets from 26 addresses reset nobody logged in and leave room for a login from another source', async () => {
    const alice = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`early:80:localhost:${upstream.port}`], command: 'http' })
    clients.push(alice)
    const [url] = await alice.urls()
    // 20 from alice's own address, then 20 from each of 25 others, one source at a time.
    for (let source = 1; source <= 26; source++) {
      const batch = Array.from({ length: 20 }, () => rawConnect(gateway.sshPort, `127.0.0.${source}`))
      sockets.push(...batch)
      await Promise.all(batch.map((s) => s.connected))
    }
    // The user already logged in from the flooded address is untouched.
    expect((await fetchVia(gateway, url!)).status).toBe(200)
    // A real login from a source that holds no connection yet gets in (a flooding source gives up its oldest).
    const bob = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('bob', 'openssh'), forwards: [`late:80:localhost:${upstream.port}`], command: 'http', extra: ['-b', '127.0.0.99'] })
    clients.push(bob)
    const [late] = await bob.urls()
    expect((await fetchVia(gateway, late!)).status).toBe(200)
    // Past the per-source cap the NEW connection is refused with one line and a clean close, not a reset;
    // the first four from that address were admitted.
    const second = sockets.slice(20, 40)
    const refused = (): RawConnection[] => second.filter((s) => s.received().startsWith('PH_'))
    await eventually(() => refused().length === 16)
    for (const s of refused()) {
      expect(s.received()).toMatch(/^PH_1050: too many connections not yet logged in from 127\.0\.0\.2 \(4, the limit per source\)/)
      expect(await s.closed).toEqual({ reset: false })
    }
    expect(gateway.ssh.connections.map((c) => c.login.remoteAddr).sort()).toEqual(['127.0.0.1', '127.0.0.99'])
  })
})

describe('logins: strangers do not starve known users (SSH sessions, admin API)', () => {
  let gateway: TestGateway
  beforeAll(async () => {
    gateway = await startTestGateway({
      flags: { authorizedKeys: [authorizedKeys], allowAnonymous: true },
      tune: { maxSessions: 3, maxAnonymousSessions: 4, maxAnonymousSessionsPerSource: 2 },
    })
  })
  afterAll(async () => { await gateway.stop() })

  it('a flood of anonymous sessions does not lock out a known key, and each refusal says why', async () => {
    // Real ssh without a key logs in anonymously by keyboard-interactive; refusals arrive as a userauth banner.
    const anonymous = (localAddress: string): SshClient => {
      const client = connect({
        kind: 'openssh', port: gateway.sshPort, key: gateway.key('bob', 'openssh'), forwards: [`80:localhost:${upstream.port}`], command: 'http',
        extra: ['-b', localAddress, '-o', 'PubkeyAuthentication=no', '-o', 'BatchMode=no', '-o', 'LogLevel=INFO'],
      })
      clients.push(client)
      return client
    }
    await anonymous('127.0.0.1').urls()
    await anonymous('127.0.0.1').urls()
    const perSource = anonymous('127.0.0.1')
    await perSource.waitFor(/PH_1055: too many anonymous sessions from 127\.0\.0\.1 \(2\)/)
    expect(await perSource.exited).not.toBe(0)
    await anonymous('127.0.0.2').urls()
    await anonymous('127.0.0.3').urls()
    const full = anonymous('127.0.0.4')
    await full.waitFor(/PH_1054: anonymous sessions are full \(4 of 4\)/)
    expect(await full.exited).not.toBe(0)
    // A fresh key is anonymous too: a real ssh client is told why (keyboard-interactive instruction).
    const keyFile = writeTemp(gateway.tmp, 'stranger', freshPrivateKey())
    ;(await import('node:fs')).chmodSync(keyFile, 0o600)
    const stranger = connect({ kind: 'openssh', port: gateway.sshPort, key: keyFile, forwards: [`stranger:80:localhost:${upstream.port}`], command: 'http', extra: ['-b', '127.0.0.5', '-o', 'BatchMode=no', '-o', 'LogLevel=INFO'] })
    clients.push(stranger)
    await stranger.waitFor(/PH_1054: anonymous sessions are full/)
    expect(await stranger.exited).not.toBe(0)
    // The known key logs in, from the flooding address, with either client.
    for (const kind of ['openssh', 'dropbear'] as const) {
      const alice = connect({ kind, port: gateway.sshPort, key: gateway.key('alice', kind), forwards: [`known-${kind}:80:localhost:${upstream.port}`], command: 'http' })
      clients.push(alice)
      const [url] = await alice.urls()
      expect((await fetchVia(gateway, url!)).status).toBe(200)
    }
  })

  it('answers a correct key at once while wrong keys from the same address are held back', async () => {
    const { key } = await gateway.identity.createApiKey({ description: 'ops' })
    const call = (bearer: string, signal?: AbortSignal) => request(`http://127.0.0.1:${gateway.apiPort}/api/sessions`, { headers: { authorization: `Bearer ${bearer}` }, signal })
    const wrong = `${key.slice(0, -4)}xxxx`
    // The first failures are free (typos); the next ones wait 1 s, 2 s, 4 s, 8 s.
    for (let i = 0; i < 3; i++) expect((await call(wrong)).statusCode).toBe(401)
    const aborts = new AbortController()
    const answered: string[] = []
    const held = Array.from({ length: 4 }, (_, i) => call(wrong, aborts.signal).then(async (r) => {
      expect(r.statusCode).toBe(401)
      await r.body.text()
      answered.push(`wrong${i}`)
    }, () => {}))
    // Once the first held-back one is answered, all four are in the throttle.
    await eventually(() => answered.length > 0)
    const right = await call(key)
    expect(right.statusCode).toBe(200)
    await right.body.text()
    // Order, not a timing bound: the correct key was answered while wrong ones were still held back.
    expect(answered.length).toBeLessThan(4)
    aborts.abort()
    await Promise.all(held)
  })
})

describe('name holds: anonymous owners have a budget of their own', () => {
  let gateway: TestGateway
  let dataRoot: string
  beforeAll(async () => {
    // What a flood of fresh keys left behind before a restart: 10,000 anonymous holds for 23 more hours.
    dataRoot = mkdtempSync(join(tmpdir(), 'porthole-holds-'))
    const dataDir = join(dataRoot, 'data')
    mkdirSync(dataDir, { recursive: true })
    const until = Date.now() + 23 * 3600_000
    const holds = Array.from({ length: 10_000 }, (_, i) => ({ host: `flood${i}.localhost`, ownerId: `SHA256:stranger${i % 105}`, random: false, slot: null, expiresAt: until + i, anonymous: true }))
    writeFileSync(join(dataDir, 'names.json'), JSON.stringify({ version: 1, holds }))
    gateway = await startTestGateway({ dataDir, flags: { authorizedKeys: [authorizedKeys], allowAnonymous: true }, tune: { maxAnonymousHolds: 6 } })
  })
  afterAll(async () => {
    await gateway.stop()
    rmSync(dataRoot, { recursive: true, force: true })
  })

  it('fresh anonymous keys filling their budget give way oldest first; a known owner and a new stranger still get names', async () => {
    const anonymousHolds = (): string[] => gateway.registry.holds().filter((h) => h.anonymous).map((h) => h.host)
    // A known owner's name is in a budget strangers cannot touch.
    const alice = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`mine:80:localhost:${upstream.port}`], command: 'http' })
    clients.push(alice)
    await alice.urls()
    await alice.kill()
    expect(anonymousHolds()).toHaveLength(6) // the newest of the restored flood
    await eventually(() => typeof gateway.registry.holds().find((h) => h.host === 'mine.localhost')?.expiresAt === 'number')
    // Five fresh keys, two names each, one after another: every bind succeeds, the oldest offline go.
    const bound: string[] = []
    for (let i = 0; i < 5; i++) {
      const login = await libraryLogin(gateway.sshPort, { privateKey: freshPrivateKey() })
      logins.push(login)
      expect(login.error).toBeNull()
      bound.push(...await libraryForward(login.client!, [`fresh${i}a`, `fresh${i}b`]))
      login.client!.end()
      await eventually(() => gateway.registry.holds().filter((h) => h.host.startsWith(`fresh${i}`) && h.expiresAt !== null).length === 2)
    }
    expect(bound).toHaveLength(10)
    expect(anonymousHolds().sort()).toEqual(['fresh2a', 'fresh2b', 'fresh3a', 'fresh3b', 'fresh4a', 'fresh4b'].map((n) => `${n}.localhost`))
    expect(gateway.registry.lookup('fresh0a.localhost').state).toBe('unknown')
    // A new stranger with a real client gets a name too, and the known owner's name stays held for her.
    const keyFile = writeTemp(gateway.tmp, 'newcomer', freshPrivateKey())
    ;(await import('node:fs')).chmodSync(keyFile, 0o600)
    const newcomer = connect({ kind: 'openssh', port: gateway.sshPort, key: keyFile, forwards: [`newcomer:80:localhost:${upstream.port}`], command: 'http' })
    clients.push(newcomer)
    const [url] = await newcomer.urls()
    expect((await fetchVia(gateway, url!)).status).toBe(200)
    expect(gateway.registry.lookup('mine.localhost').state).toBe('offline')
    expect(anonymousHolds()).toHaveLength(6)
  })
})
