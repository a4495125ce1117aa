// `ssh gateway diagnose` with the real clients: what the gateway sees of an anonymous key and of an account's
// key (text and --output json), and of an authtoken login (Dropbear's password): address and port, the client's
// identification line, the SHA256 fingerprint or token id, account, ACL, reservations, the owner's live
// endpoints, and a round-trip time measured by keepalive@openssh.com requests the client answers.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CLIENTS, FIXTURES, connect, startTestGateway, startUpstream, type SshClient, type TestGateway } from './harness.js'

const pub = (name: string): string => readFileSync(join(FIXTURES, 'keys', `${name}.pub`), 'utf8')
const VERSION = { openssh: /^SSH-2\.0-OpenSSH_\S+/, dropbear: /^SSH-2\.0-dropbear_\S+/ }

describe.each(CLIENTS)('ssh gateway diagnose with %s', (kind) => {
  let anonymous: TestGateway
  let accounts: TestGateway
  let upstream: Awaited<ReturnType<typeof startUpstream>>
  let fingerprint: string
  let keyId: string
  let token: { id: string, secret: string }
  const clients: SshClient[] = []
  const run = (gateway: TestGateway, command: string, forwards: string[] = [], key = 'alice', env?: Record<string, string>): SshClient => {
    const client = connect({ kind, port: gateway.sshPort, key: gateway.key(key, kind), forwards, command, env })
    clients.push(client)
    return client
  }

  beforeAll(async () => {
    ;[anonymous, accounts, upstream] = await Promise.all([startTestGateway(), startTestGateway(), startUpstream()])
    const { identity } = accounts
    await identity.createAccount('ann')
    const key = await identity.addKey('ann', pub('alice'), { acl: ['bind:*.ann.localhost', 'bind:shop.localhost'] })
    fingerprint = key.fingerprint
    keyId = key.id
    await identity.reserve('ann', 'domain', 'shop')
    await identity.reserve('ann', 'tcp', String(accounts.config.tcpPorts.lo))
    const created = await identity.createToken('ann', { acl: ['bind:demo.localhost'] })
    token = { id: created.record.id, secret: created.token }
  })
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.kill('SIGKILL')))
    await upstream.close()
    await Promise.all([anonymous.stop(), accounts.stop()])
  })

  it('an anonymous key: address, version, fingerprint, no account, its live endpoint, round trip', async () => {
    const agent = run(anonymous, 'http', [`diag-${kind}:80:localhost:${upstream.port}`])
    await agent.urls()
    const client = run(anonymous, 'diagnose')
    expect(await client.exited).toBe(0)
    const lines = Object.fromEntries(client.output.trim().split('\n').map((l) => [l.slice(0, 14).trim(), l.slice(14).trim()]))
    expect(lines.Client).toMatch(/^127\.0\.0\.1 port \d+$/)
    expect(lines.Version).toMatch(VERSION[kind])
    expect(lines.Key).toBe(fingerprint) // the same fixture key the other gateway knows
    expect(lines.Credential).toBe('anonymous (a key the gateway does not know)')
    expect(lines.Account).toBe('none')
    expect(lines.ACL).toBe('(none)')
    expect(lines.Reservations).toBe('(none)')
    expect(client.output).toMatch(new RegExp(`Endpoints\\s+https://diag-${kind}\\.localhost:${anonymous.httpsPort}\\s+-R diag-${kind}:80\\n\\s+http://diag-${kind}\\.localhost:${anonymous.httpPort}\\s+-R diag-${kind}:80\\n`))
    expect(lines['Round trip']).toMatch(/^\d+(\.\d+)? ms \(keepalive@openssh\.com\)$/)
    await agent.kill()
  })

  it('an account key, --output json: one object with the key, account, ACL, reservations and endpoints', async () => {
    const agent = run(accounts, 'http', [`shop:80:localhost:${upstream.port}`])
    await agent.urls()
    const client = run(accounts, 'diagnose --output json')
    expect(await client.exited).toBe(0)
    const lines = client.output.trim().split('\n').filter((l) => l.startsWith('{')) // dbclient adds host-key notes on stderr
    expect(lines).toHaveLength(1)
    const report = JSON.parse(lines[0]!)
    expect(report).toMatchObject({
      event: 'diagnose',
      client_ip: '127.0.0.1',
      credential: { kind: 'key', id: keyId, fingerprint },
      account: 'ann',
      acl: ['bind:*.ann.localhost', 'bind:shop.localhost'],
      reservations: [{ kind: 'domain', value: 'shop.localhost' }, { kind: 'tcp', value: String(accounts.config.tcpPorts.lo) }],
      endpoints: [
        { url: `https://shop.localhost:${accounts.httpsPort}`, proto: 'http', bind: 'shop:80' },
        { url: `http://shop.localhost:${accounts.httpPort}`, proto: 'http', bind: 'shop:80' },
      ],
    })
    expect(report.client_version).toMatch(VERSION[kind])
    expect(report.client_port).toBeGreaterThan(0)
    expect(report.rtt_ms).toBeGreaterThan(0)
    await agent.kill()
  })

  it('refuses forwards in a diagnose session (PH_1101) and still reports', async () => {
    const client = run(accounts, 'diagnose', [`x.ann:80:localhost:${upstream.port}`])
    await client.exited
    expect(client.output).toContain('PH_1101: `diagnose` shows what the gateway sees of you and binds nothing')
    expect(client.output).toMatch(/Account\s+ann/)
  })

  it.runIf(kind === 'dropbear')('an authtoken (password login): the token id and its ACL, no key', async () => {
    const client = run(accounts, 'diagnose', [], 'carol', { DROPBEAR_PASSWORD: token.secret })
    expect(await client.exited).toBe(0)
    expect(client.output).toMatch(/Key\s+\(none: authtoken as the password\)/)
    expect(client.output).toContain(`authtoken ${token.id}`)
    expect(client.output).toMatch(/ACL\s+bind:demo\.localhost\n/)
    expect(client.output).toMatch(/Reservations\s+shop\.localhost, tcp:\d+\n/)
  })
})
