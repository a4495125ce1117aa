// No silent caps (issue 13): every cap an SSH user can hit is told in one line with its code before the connection
// closes, with real ssh (BatchMode, as unattended tunnels run, at OpenSSH's default LogLevel) and dbclient. Caps are
// tuned small here; their defaults and settings are in test/unit/config.test.ts.
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir as osTmpdir } from 'node:os'
import { join } from 'node:path'
import ssh2 from 'ssh2'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { CLIENTS, FIXTURES, connect, eventually, fetchVia, ngrokSession, rawConnect, startTestGateway, startUpstream, writeTemp, type ClientKind, type SshClient, type TestGateway } from './harness.js'
import { freshPrivateKey } from '../ssh-keys.js'

const { Client } = ssh2
let gateway: TestGateway
let upstream: Awaited<ReturnType<typeof startUpstream>>
const clients: SshClient[] = []

let tmpdir: string
beforeAll(async () => {
  tmpdir = mkdtempSync(join(osTmpdir(), 'porthole-caps-'))
  upstream = await startUpstream()
  // alice and bob are known keys, each its own owner (authorized_keys); the gateway is not anonymous.
  const keys = writeTemp(tmpdir, 'authorized_keys', ['alice', 'bob'].map((name) => readFileSync(join(FIXTURES, 'keys', `${name}.pub`), 'utf8')).join(''))
  gateway = await startTestGateway({
    flags: { authorizedKeys: [keys] },
    tune: { maxSessions: 2, maxSessionsPerKey: 1, maxForwardsPerSession: 1, maxStreamsPerSession: 1, perSourceMaxStartups: 1, loginTimeoutMs: 60_000 },
  })
  // An account for the authtoken test (an account's keys would share one budget: the account's).
  await gateway.identity.createAccount('team')
})
afterAll(async () => {
  await upstream.close()
  await gateway.stop()
  rmSync(tmpdir, { recursive: true, force: true })
})
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.kill()))
  // Also the startup places: with one per source, a connection the gateway has not yet seen close (a test's raw
  // socket) would refuse the next test's first client with PH_1050.
  await eventually(() => gateway.ssh.connections.length === 0 && gateway.ssh.startupsPending === 0)
})

/** ssh as unattended tunnels run it (BatchMode, default LogLevel), or dbclient. */
function client (kind: ClientKind, key: string, options: { forwards?: string[], extra?: string[] } = {}): SshClient {
  const c = connect({
    kind, port: gateway.sshPort, key: gateway.key(key, kind), command: 'http',
    forwards: options.forwards ?? [`${key}-${kind}:80:localhost:${upstream.port}`],
    extra: [...(kind === 'openssh' ? ['-o', 'LogLevel=INFO'] : []), ...(options.extra ?? [])],
  })
  clients.push(c)
  return c
}

describe('caps an SSH user hits are told with their code', () => {
  // First: a connection refused later below may linger for up to 2 s still holding its startup place.
  it.each(CLIENTS)('connections not yet logged in per source (PH_1050), before any key exchange: %s', async (kind) => {
    // One silent connection from 127.0.0.1 takes that source's one place (dbclient has no -b to pick another).
    // Admitted (the gateway's ident came): it holds the place. Refused: the previous case's one is still closing.
    const silent = await eventually(async () => {
      const s = rawConnect(gateway.sshPort)
      await eventually(() => /^(SSH-2\.0|PH_)/.test(s.received()))
      if (s.received().startsWith('SSH-2.0-Porthole')) return s
      s.socket.destroy()
      throw new Error('the place is still taken')
    })
    const c = client(kind, 'alice')
    await c.exited
    silent.socket.destroy()
    // OpenSSH prints the cleartext disconnect at its default LogLevel; Dropbear only says that one was received.
    if (kind === 'openssh') expect(c.output).toMatch(/Received disconnect from 127\.0\.0\.1 port \d+:12: PH_1050: too many connections not yet logged in from 127\.0\.0\.1 \(1, the limit per source\)/)
    else expect(c.output).toMatch(/exited: Disconnect received/)
  })

  it.each(CLIENTS)('sessions per key, then sessions of known keys (PH_1056, PH_1053): %s', async (kind) => {
    await client('openssh', 'alice').urls()
    const again = client(kind, 'alice')
    await again.waitFor(/PH_1056: this key already has 1 sessions, its share \(max-sessions-per-key\)/)
    expect(await again.exited).not.toBe(0)
    await client('openssh', 'bob').urls()
    const full = client(kind, 'bob', { forwards: [`y:80:localhost:${upstream.port}`] })
    // bob's own share is full as well; the gateway's budget is checked first.
    await full.waitFor(/PH_1053: the gateway has 2 sessions of known keys, its max-sessions/)
    expect(await full.exited).not.toBe(0)
    expect(full.output.match(/PH_105\d/g)).toHaveLength(1) // once: the banner, not again as an instruction
  })

  it('a weak key refused first (PH_1027) does not hide the refusal of the next key (PH_1056)', async () => {
    await client('openssh', 'alice').urls()
    const keys = [freshPrivateKey('rsa', 768), readFileSync(gateway.key('alice', 'openssh'), 'utf8')]
    const banners: string[] = []
    const ssh = new Client()
    const closed = new Promise<void>((resolve) => ssh.once('close', () => resolve()))
    ssh.on('error', () => {})
    ssh.on('banner', (text: string) => banners.push(text))
    ssh.connect({
      host: '127.0.0.1', port: gateway.sshPort, username: 'tester', readyTimeout: 30_000,
      authHandler: (_methods, _partial, next) => {
        const key = keys.shift()
        next(key === undefined ? false as never : { type: 'publickey', username: 'tester', key })
      },
    })
    await closed
    expect(banners.join('')).toMatch(/PH_1027: key SHA256:\S+ \(RSA, 768 bits; at least 1024\) is too weak/)
    expect(banners.join('')).toMatch(/PH_1056: this key already has 1 sessions/)
  })

  it.each(CLIENTS)('forwards per session (PH_1018) reach the session\'s terminal: %s', async (kind) => {
    const c = client(kind, 'alice', {
      forwards: [`one-${kind}:80:localhost:${upstream.port}`, `two-${kind}:80:localhost:${upstream.port}`],
      extra: kind === 'openssh' ? ['-o', 'ExitOnForwardFailure=no'] : [],
    })
    await c.waitFor(/PH_1018: too many forwards in one session \(limit 1, the gateway's max-forwards-per-session\)/)
    await c.urls()
  })

  it('too many authentication attempts (PH_1120): an agent offering 22 keys is told which option helps', async () => {
    const keys = Array.from({ length: 22 }, (_, i) => {
      const file = writeTemp(gateway.tmp, `stranger${i}`, freshPrivateKey())
      chmodSync(file, 0o600)
      return file
    })
    const c = connect({
      kind: 'openssh', port: gateway.sshPort, key: keys[0]!, forwards: [`m:80:localhost:${upstream.port}`], command: 'http',
      extra: ['-o', 'LogLevel=INFO', ...keys.slice(1).flatMap((k) => ['-i', k])],
    })
    clients.push(c)
    await c.waitFor(/PH_1120: more than 20 authentication attempts on one connection; offer the right key first \(ssh -i KEY -o IdentitiesOnly=yes\)/)
    expect(await c.exited).toBe(255)
  })

  it('wrong authtokens (PH_1121): the third closes the connection with the reason', async () => {
    await gateway.identity.createToken('team')
    const banners: string[] = []
    const ssh = new Client()
    let tries = 0
    const closed = new Promise<void>((resolve) => ssh.once('close', () => resolve()))
    ssh.on('error', () => {})
    ssh.on('banner', (text: string) => banners.push(text))
    ssh.connect({
      host: '127.0.0.1', port: gateway.sshPort, username: 'tester', readyTimeout: 30_000,
      authHandler: (_methods, _partial, next) => (++tries <= 5 ? next({ type: 'password', username: 'tester', password: `wrong-${tries}` }) : next(false as never)),
    })
    await closed
    expect(banners.join('')).toMatch(/PH_1121: 3 wrong authtokens on one connection; connection closed/)
  })


  it('ngrok agents get the same caps back as Auth and Bind errors with the code (PH_1056, PH_1018)', async () => {
    const { token } = await gateway.identity.createToken('team')
    const first = await ngrokSession(gateway, { authtoken: token })
    try {
      await first.httpEndpoint().domain('ngrok-one.localhost').listenAndForward(`http://localhost:${upstream.port}`)
      await expect(first.httpEndpoint().domain('ngrok-two.localhost').listenAndForward(`http://localhost:${upstream.port}`))
        .rejects.toThrow(/PH_1018: too many forwards in one session \(limit 1, the gateway's max-forwards-per-session\)/)
      await expect(ngrokSession(gateway, { authtoken: token })).rejects.toThrow(/PH_1056: this key already has 1 sessions/)
    } finally {
      await first.close()
    }
  })

  it.each(CLIENTS)('streams per session (PH_1122 on the terminal; the visitor gets 502 PH_3002): %s', async (kind) => {
    let release = (): void => {}
    const held = new Promise<void>((resolve) => { release = resolve })
    const slow = await startUpstream((_req, res) => { void held.then(() => res.end('late')) })
    try {
      const c = client(kind, 'alice', { forwards: [`slow-${kind}:80:localhost:${slow.port}`] })
      const [url] = await c.urls()
      const first = fetchVia(gateway, url!)
      await eventually(() => gateway.ssh.connections[0]?.describe().openStreams === 1)
      const second = await fetchVia(gateway, url!)
      expect(second.status).toBe(502)
      expect(second.body).toMatch(/PH_3002/)
      await c.waitFor(/PH_1122: this session carries 1 streams at once, the gateway's max-streams-per-session/)
      release()
      expect((await first).body).toBe('late')
    } finally {
      release()
      await slow.close()
    }
  })
})

describe('names per owner (PH_1035): a key with all its names online is told, and its other forwards work', () => {
  let small: TestGateway
  beforeAll(async () => {
    small = await startTestGateway({ flags: { authorizedKeys: [join(tmpdir, 'authorized_keys')] }, tune: { maxHoldsPerOwner: 2 } })
  })
  afterAll(async () => { await small.stop() })

  it.each(CLIENTS)('%s', async (kind) => {
    const c = connect({
      kind, port: small.sshPort, key: small.key('alice', kind), command: 'http',
      forwards: ['one', 'two', 'three'].map((name) => `${name}-${kind}:80:localhost:${upstream.port}`),
      extra: kind === 'openssh' ? ['-o', 'LogLevel=INFO', '-o', 'ExitOnForwardFailure=no'] : [],
    })
    clients.push(c)
    await c.waitFor(/PH_1035: this key already has 2 endpoints online \(the gateway's max-holds-per-owner\)/)
    const urls = await c.urls()
    expect(urls).toHaveLength(2)
    for (const url of urls) expect((await fetchVia(small, url)).status).toBe(200)
    await c.kill()
    // Offline, its two names stay held (in grace) and make room when it binds again: the next case's two first
    // forwards take their places, and only its third is refused.
    await eventually(() => small.registry.holds().filter((h) => h.expiresAt !== null).length === 2)
  })
})
