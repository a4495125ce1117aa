// Accounts through real clients: keys registered to accounts, authtokens as SSH passwords (OpenSSH via
// askpass, Dropbear via DROPBEAR_PASSWORD), ACLs, reservations (also while their account is offline),
// revocation and kills ending live sessions, and the slowdown of password guessing.
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Client } from 'ssh2'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CLIENTS, FIXTURES, connect, eventually, fetchVia, startTestGateway, startUpstream, type ClientKind, type TestGateway } from './harness.js'
import { freshKeyPair } from '../ssh-keys.js'

const pub = (name: string): string => readFileSync(join(FIXTURES, 'keys', `${name}.pub`), 'utf8')

/** Client options for a password (authtoken) login: no key offered that the gateway knows. */
function passwordLogin (gateway: TestGateway, kind: ClientKind, token: string): { key: string, extra: string[], env: Record<string, string> } {
  if (kind === 'dropbear') return { key: gateway.key('carol', kind), extra: [], env: { DROPBEAR_PASSWORD: token } }
  const askpass = join(gateway.tmp, `askpass-${Math.random().toString(36).slice(2)}.sh`)
  writeFileSync(askpass, `#!/bin/sh\necho '${token}'\n`, { mode: 0o700 })
  return {
    key: gateway.key('carol', kind),
    extra: ['-o', 'BatchMode=no', '-o', 'PreferredAuthentications=password', '-o', 'NumberOfPasswordPrompts=1', '-o', 'LogLevel=INFO'],
    env: { SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: 'force', DISPLAY: ':0' },
  }
}

describe('accounts, keys and authtokens', () => {
  let gateway: TestGateway
  let upstream: Awaited<ReturnType<typeof startUpstream>>
  let annToken: string
  let limitedToken: string

  beforeAll(async () => {
    gateway = await startTestGateway()
    upstream = await startUpstream()
    const { identity } = gateway
    await identity.createAccount('ann')
    await identity.createAccount('bob')
    await identity.addKey('ann', pub('alice'))
    await identity.addKey('bob', pub('bob'), { acl: ['bind:bob-openssh', 'bind:bob-dropbear', 'bind:bob-taken', 'bind:*.bob.localhost', 'bind:tcp:*'] })
    await identity.reserve('ann', 'domain', 'shop')
    await identity.reserve('ann', 'domain', 'vault')
    annToken = (await identity.createToken('ann', { description: 'ci' })).token
    limitedToken = (await identity.createToken('ann', { acl: ['bind:ci-only'] })).token
  })
  afterAll(async () => {
    await upstream.close()
    await gateway.stop()
  })

  for (const kind of CLIENTS) {
    it(`${kind}: an account's key binds its reserved name; another account cannot, even while it is offline`, async () => {
      const ann = connect({ kind, port: gateway.sshPort, key: gateway.key('alice', kind), forwards: [`shop:80:localhost:${upstream.port}`], command: 'http' })
      const [url] = await ann.urls()
      expect(url).toMatch(/^http:\/\/shop\.localhost:/)
      expect((await fetchVia(gateway, url!)).status).toBe(200)
      const session = gateway.ssh.sessions().find((s) => s.endpoints.some((e) => e.host === 'shop.localhost'))!
      expect(session).toMatchObject({ account: 'ann', credential: { kind: 'key' }, fingerprint: expect.stringMatching(/^SHA256:/) as unknown })
      await ann.kill()

      // vault was never bound by ann: only the reservation protects it.
      const bob = connect({ kind, port: gateway.sshPort, key: gateway.key('bob', kind), forwards: [`vault:80:localhost:${upstream.port}`], command: 'http' })
      await bob.waitFor(/PH_1011: name vault\.localhost is in use, held or reserved by someone else/)
      expect(await bob.exited).not.toBe(0)
      // A reserved name whose account is not connected is an offline endpoint, not an unknown host.
      expect((await fetchVia(gateway, 'http://vault.localhost/')).status).toBe(503)
    })

    it(`${kind}: an ACL lets a key bind only its names, and says which name was refused`, async () => {
      const allowed = connect({ kind, port: gateway.sshPort, key: gateway.key('bob', kind), forwards: [`bob-${kind}:80:localhost:${upstream.port}`], command: 'http' })
      expect((await fetchVia(gateway, (await allowed.urls())[0]!)).status).toBe(200)
      await allowed.kill()
      const refused = connect({ kind, port: gateway.sshPort, key: gateway.key('bob', kind), forwards: [`other-${kind}:80:localhost:${upstream.port}`], command: 'http' })
      await refused.waitFor(new RegExp(`PH_1025: not allowed to bind other-${kind}\\.localhost: key SHA256:\\S+ may bind only bind:bob-openssh\\.localhost, bind:bob-dropbear`))
      expect(await refused.exited).not.toBe(0)
    })

    it(`${kind}: an authtoken works as the SSH password and logs in as its account`, async () => {
      const login = passwordLogin(gateway, kind, annToken)
      const client = connect({ kind, port: gateway.sshPort, ...login, forwards: [`tok-${kind}:80:localhost:${upstream.port}`], command: 'http' })
      const [url] = await client.urls()
      expect(client.output).toMatch(/^Account\s+ann$/m)
      expect((await fetchVia(gateway, url!)).status).toBe(200)
      const session = gateway.ssh.sessions().find((s) => s.endpoints.some((e) => e.host === `tok-${kind}.localhost`))!
      expect(session).toMatchObject({ account: 'ann', credential: { kind: 'token', id: annToken.split('.')[0] }, fingerprint: null })
      await client.kill()
    })

    it(`${kind}: a token's ACL applies to what it binds`, async () => {
      const login = passwordLogin(gateway, kind, limitedToken)
      const client = connect({ kind, port: gateway.sshPort, ...login, forwards: [`not-ci-${kind}:80:localhost:${upstream.port}`], command: 'http' })
      await client.waitFor(/PH_1025: not allowed to bind not-ci-\S+\.localhost: authtoken tok_\S+ may bind only bind:ci-only\.localhost/)
      expect(await client.exited).not.toBe(0)
    })
  }

  // OpenSSH and Dropbear clients will not use an RSA key under 1024 bits themselves; other clients (ssh2 here) do.
  it('refuses an RSA key under 1024 bits at login (PH_1027), also where anyone may log in', async () => {
    const weak = freshKeyPair('rsa', 768).private
    const anonymous = await startTestGateway()
    try {
      for (const target of [gateway, anonymous]) {
        const banners: string[] = []
        const ssh = new Client()
        ssh.on('banner', (text: string) => banners.push(text))
        const failed = new Promise<Error>((resolve, reject) => {
          ssh.once('error', resolve)
          ssh.once('ready', () => reject(new Error('logged in with a 768-bit RSA key')))
        })
        // publickey first, then keyboard-interactive (which an anonymous gateway would otherwise let in).
        ssh.connect({ host: '127.0.0.1', port: target.sshPort, username: 'tester', privateKey: weak, tryKeyboard: true, readyTimeout: 30_000 })
        ssh.on('keyboard-interactive', (_name, instructions, _lang, _prompts, finish) => { banners.push(instructions); finish([]) })
        expect((await failed).message).toMatch(/authentication methods failed/)
        ssh.end()
        expect(banners.join('')).toMatch(/PH_1027: key SHA256:\S+ \(RSA, 768 bits; at least 1024\) is too weak to log in with; make a new one \(ssh-keygen -t ed25519\)/)
      }
    } finally {
      await anonymous.stop()
    }
  })

  it('refuses a wrong authtoken', async () => {
    const login = passwordLogin(gateway, 'openssh', `${annToken.split('.')[0]}.wrong-secret`)
    const client = connect({ kind: 'openssh', port: gateway.sshPort, ...login, forwards: [`x:80:localhost:${upstream.port}`], command: 'http' })
    expect(await client.exited).not.toBe(0)
    expect(client.output).toMatch(/Permission denied/)
  })

  it('the operator kills a session: the client is told, the endpoint goes offline', async () => {
    const client = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`killme:80:localhost:${upstream.port}`], command: 'http' })
    const [url] = await client.urls()
    const session = gateway.ssh.sessions().find((s) => s.endpoints.some((e) => e.host === 'killme.localhost'))!
    expect(await gateway.ssh.kill(session.id)).toBe(true)
    await client.waitFor(/PH_1026: session closed by the gateway operator/)
    expect(await client.exited).not.toBe(0)
    // ann keeps the name for the grace period, like after a disconnect.
    expect((await fetchVia(gateway, url!)).status).toBe(503)
    expect(await gateway.ssh.kill(session.id)).toBe(false)
  })

  it('a reservation made while someone else holds the name takes it from them', async () => {
    const bob = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('bob', 'openssh'), forwards: [`bob-taken:80:localhost:${upstream.port}`], command: 'http' })
    const [url] = await bob.urls()
    await gateway.identity.reserve('ann', 'domain', 'bob-taken')
    await bob.waitFor(/PH_1011: name bob-taken\.localhost is in use, held or reserved by someone else/)
    // Now ann's (offline) endpoint: bob's upstream is no longer reached.
    await eventually(async () => { expect((await fetchVia(gateway, url!)).headers['porthole-error-code']).toBe('PH_3001'); return true })
    await bob.kill()
    const ann = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`bob-taken:80:localhost:${upstream.port}`], command: 'http' })
    expect((await fetchVia(gateway, (await ann.urls())[0]!)).status).toBe(200)
    await ann.kill()
  })

  for (const kind of CLIENTS) {
    it(`${kind}: revoking a token ends its live session and refuses new ones`, async () => {
      const { token, record } = await gateway.identity.createToken('ann', { description: `revoke-${kind}` })
      const live = connect({ kind, port: gateway.sshPort, ...passwordLogin(gateway, kind, token), forwards: [`rv-${kind}:80:localhost:${upstream.port}`], command: 'http' })
      await live.urls()
      await gateway.identity.revokeToken(record.id)
      await live.waitFor(/PH_1026/)
      expect(await live.exited).not.toBe(0)
      const again = connect({ kind, port: gateway.sshPort, ...passwordLogin(gateway, kind, token), forwards: [`rv-${kind}:80:localhost:${upstream.port}`], command: 'http' })
      expect(await again.exited).not.toBe(0)
      expect(again.output).not.toMatch(/Forwarding/)
    })
  }

  it('removing a key ends its sessions and refuses it afterwards', async () => {
    await gateway.identity.createAccount('dan')
    const record = await gateway.identity.addKey('dan', pub('carol'))
    const live = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('carol', 'openssh'), forwards: [`dan:80:localhost:${upstream.port}`], command: 'http' })
    await live.urls()
    await gateway.identity.removeKey(record.id)
    await live.waitFor(/PH_1026/)
    const again = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('carol', 'openssh'), forwards: [`dan:80:localhost:${upstream.port}`], command: 'http', extra: ['-o', 'BatchMode=no', '-o', 'LogLevel=INFO'] })
    await again.waitFor(/PH_1020: key SHA256:\S+ is not authorized on this gateway/)
    expect(await again.exited).not.toBe(0)
  })

  it('deleting an account ends its live sessions and its keys stop working', async () => {
    await gateway.identity.createAccount('erin')
    await gateway.identity.addKey('erin', pub('carol'))
    const live = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('carol', 'openssh'), forwards: [`erin:80:localhost:${upstream.port}`], command: 'http' })
    const [url] = await live.urls()
    expect((await fetchVia(gateway, url!)).status).toBe(200)
    await gateway.identity.deleteAccount('erin')
    await live.waitFor(/PH_1026/)
    expect(await live.exited).not.toBe(0)
    expect(gateway.registry.lookup('erin.localhost').state).not.toBe('bound')
    const again = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('carol', 'openssh'), forwards: [`erin:80:localhost:${upstream.port}`], command: 'http', extra: ['-o', 'BatchMode=no', '-o', 'LogLevel=INFO'] })
    await again.waitFor(/PH_1020: key SHA256:\S+ is not authorized on this gateway/)
  })

  it('a wildcard granted over another account\'s name serves the rest; their exact name still wins its host', async () => {
    const labelled = await startUpstream((_req, res) => res.end('wildcard owner'))
    try {
      const exact = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`y.crew:80:localhost:${upstream.port}`], command: 'http' })
      await exact.urls()
      // Without a grant the wildcard over ann's name is refused...
      const refused = connect({ kind: 'dropbear', port: gateway.sshPort, ...passwordLogin(gateway, 'dropbear', (await gateway.identity.createToken('bob')).token), forwards: [`*.crew:80:localhost:${labelled.port}`], command: 'http' })
      await refused.waitFor(/PH_1060: name \*\.crew\.localhost is under or above a name held by someone else/)
      // ...with an ACL naming it, it binds, and y.crew stays ann's.
      const granted = (await gateway.identity.createToken('bob', { acl: ['bind:*.crew.localhost'] })).token
      const wildcard = connect({ kind: 'dropbear', port: gateway.sshPort, ...passwordLogin(gateway, 'dropbear', granted), forwards: [`*.crew:80:localhost:${labelled.port}`], command: 'http' })
      await wildcard.waitFor(/Forwarding\s+http:\/\/\*\.crew\.localhost/)
      const own = await fetchVia(gateway, 'http://y.crew.localhost/')
      expect(JSON.parse(own.body)).toMatchObject({ url: '/' }) // ann's upstream echoes the request as JSON
      expect((await fetchVia(gateway, 'http://z.crew.localhost/')).body).toBe('wildcard owner')
      await Promise.all([exact.kill(), refused.kill(), wildcard.kill()])
    } finally {
      await labelled.close()
    }
  })

  it('a second session of the same key takes over its exact name; the old one is told (PH_1023)', async () => {
    const first = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`taken-over:80:localhost:${upstream.port}`], command: 'http' })
    const [url] = await first.urls()
    const second = connect({ kind: 'dropbear', port: gateway.sshPort, key: gateway.key('alice', 'dropbear'), forwards: [`taken-over:80:localhost:${upstream.port}`], command: 'http' })
    expect((await second.urls())[0]).toBe(url)
    await first.waitFor(/PH_1023: endpoint https:\/\/taken-over\.localhost:\d+ was taken over by a newer session of the same key/)
    const holder = gateway.ssh.sessions().find((s) => s.endpoints.some((e) => e.host === 'taken-over.localhost'))
    expect(holder?.clientVersion).toMatch(/dropbear/i)
    await Promise.all([first.kill(), second.kill()])
  })
})

/** A gateway of its own (its login throttle fresh) where an authtoken exists, so SSH passwords are checked. */
async function gatewayWithToken (): Promise<TestGateway> {
  const gateway = await startTestGateway()
  await gateway.identity.createAccount('ann')
  await gateway.identity.createToken('ann')
  return gateway
}

describe('password guessing', () => {
  let gateway: TestGateway
  beforeAll(async () => { gateway = await gatewayWithToken() })
  afterAll(async () => { await gateway.stop() })

  it('slows down wrong authtokens from one address after a few failures', async () => {
    const attempt = async (): Promise<number> => {
      const started = Date.now()
      const client = connect({ kind: 'dropbear', port: gateway.sshPort, ...passwordLogin(gateway, 'dropbear', 'tok_guess.guess'), forwards: ['g:80:localhost:1'], command: 'http' })
      expect(await client.exited).not.toBe(0)
      return Date.now() - started
    }
    // dbclient sends DROPBEAR_PASSWORD once (password method), then has nothing for keyboard-interactive:
    // one failure per connection. Three failures are free; the attempts after wait 1 s, 2 s, 4 s...
    for (let i = 0; i < 4; i++) await attempt()
    expect(await attempt()).toBeGreaterThanOrEqual(1900)
  })
})

describe('wrong authtokens on one connection', () => {
  let gateway: TestGateway
  beforeAll(async () => { gateway = await gatewayWithToken() })
  afterAll(async () => { await gateway.stop() })

  it('drops the connection after three wrong tokens, whatever the client would still try', async () => {
    // ssh2's client as a patient guesser: it offers one wrong token after another on the same connection.
    let tried = 0
    const client = new Client()
    const ended = new Promise<string>((resolve) => {
      client.once('ready', () => resolve('logged in'))
      client.once('error', (error) => resolve(error.message))
      client.once('close', () => resolve('closed'))
    })
    client.connect({
      host: '127.0.0.1',
      port: gateway.sshPort,
      username: 'guesser',
      readyTimeout: 60_000,
      authHandler: (_methods, _partial, next) => {
        if (tried >= 10) return next(false as never)
        tried++
        next({ type: 'password', username: 'guesser', password: `tok_guess${tried}.wrong` })
      },
    })
    expect(await ended).not.toBe('logged in')
    expect(tried).toBe(3)
    client.end()
  })
})
