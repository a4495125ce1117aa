// Name squatting next to someone else's name (issue 9, item 10): with A's `myapp` bound, another key could
// bind `x.myapp` or `*.myapp`, or `team` above A's `*.team`, and set cookies that A's hosts receive. Two real
// keys (anonymous on loopback), real clients: the second key is refused with PH_1060 on its terminal, nothing
// of it is routed, and A's endpoint keeps serving A's upstream.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CLIENTS, FIXTURES, connect, fetchVia, startTestGateway, startUpstream, type SshClient, type TestGateway } from '../e2e/harness.js'

describe.each(CLIENTS)('names next to another key\'s with %s', (kind) => {
  let gateway: TestGateway
  let upstreamA: Awaited<ReturnType<typeof startUpstream>>
  let upstreamB: Awaited<ReturnType<typeof startUpstream>>
  const clients: SshClient[] = []
  const open = (key: 'alice' | 'bob', name: string): SshClient => {
    const upstream = key === 'alice' ? upstreamA : upstreamB
    const client = connect({ kind, port: gateway.sshPort, key: gateway.key(key, kind), forwards: [`${name}:80:localhost:${upstream.port}`], command: 'http' })
    clients.push(client)
    return client
  }
  /** What the public side gets at `host`: A's or B's upstream, or the gateway's error code. */
  const served = async (host: string): Promise<string> => {
    const res = await fetchVia(gateway, `http://${host}/`)
    return res.status === 200 ? res.body : String(res.headers['porthole-error-code'])
  }
  /** Key B asks for `name`: refused with PH_1060 on its terminal, with a non-zero exit where the client says. */
  const refused = async (name: string): Promise<void> => {
    const intruder = open('bob', name)
    await intruder.waitFor(new RegExp(`PH_1060: name ${name.replace(/[.*]/g, '\\$&')}\\.localhost is under or above a name held by someone else`))
    if (kind === 'openssh') expect(await intruder.exited).not.toBe(0) // ExitOnForwardFailure
    await intruder.kill()
  }

  beforeAll(async () => {
    gateway = await startTestGateway()
    upstreamA = await startUpstream((_req, res) => res.end('A'))
    upstreamB = await startUpstream((_req, res) => res.end('B'))
  })
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.kill('SIGKILL')))
    await Promise.all([upstreamA.close(), upstreamB.close()])
    await gateway.stop()
  })

  it('refuses x.myapp and *.myapp under A\'s myapp; A keeps serving', async () => {
    const owner = open('alice', `myapp-${kind}`)
    await owner.urls()
    await refused(`x.myapp-${kind}`)
    await refused(`*.myapp-${kind}`)
    expect(await served(`myapp-${kind}.localhost`)).toBe('A')
    expect(await served(`x.myapp-${kind}.localhost`)).toBe('PH_3000')
  })

  it('refuses team above A\'s *.team, and a parent above A\'s exact name; A keeps serving', async () => {
    const owner = open('alice', `*.team-${kind}`)
    await owner.waitFor(/Forwarding\s+http:\/\/\*\.team/)
    await refused(`team-${kind}`)
    expect(await served(`y.team-${kind}.localhost`)).toBe('A')
    expect(await served(`team-${kind}.localhost`)).toBe('PH_3000')

    const deep = open('alice', `api.shop-${kind}`)
    await deep.urls()
    await refused(`shop-${kind}`)
    expect(await served(`api.shop-${kind}.localhost`)).toBe('A')
  })

  it('lets the other key bind a sibling', async () => {
    const sibling = open('bob', `myapp2-${kind}`)
    await sibling.urls()
    expect(await served(`myapp2-${kind}.localhost`)).toBe('B')
  })
})

// The operator can grant a name next to another's: a reservation of the account, or an ACL entry naming it.
describe('names next to another account\'s, granted by the operator', () => {
  let gateway: TestGateway
  let upstreamA: Awaited<ReturnType<typeof startUpstream>>
  let upstreamB: Awaited<ReturnType<typeof startUpstream>>
  const clients: SshClient[] = []
  const open = (key: 'alice' | 'bob', name: string): SshClient => {
    const upstream = key === 'alice' ? upstreamA : upstreamB
    const client = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key(key, 'openssh'), forwards: [`${name}:80:localhost:${upstream.port}`], command: 'http' })
    clients.push(client)
    return client
  }
  const served = async (host: string): Promise<string> => (await fetchVia(gateway, `http://${host}/`)).body

  beforeAll(async () => {
    gateway = await startTestGateway()
    upstreamA = await startUpstream((_req, res) => res.end('A'))
    upstreamB = await startUpstream((_req, res) => res.end('B'))
    const pub = (name: string): string => readFileSync(join(FIXTURES, 'keys', `${name}.pub`), 'utf8')
    const { identity } = gateway
    await identity.createAccount('ann')
    await identity.createAccount('bob')
    await identity.addKey('ann', pub('alice'))
    await identity.addKey('bob', pub('bob'), { acl: ['bind:app', 'bind:*.wide.localhost'] })
    await identity.reserve('ann', 'domain', 'x.app')
    await identity.createAccount('cy')
    await identity.addKey('cy', pub('carol'))
    await identity.reserve('ann', 'domain', 'shop.team')
  })
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.kill('SIGKILL')))
    await Promise.all([upstreamA.close(), upstreamB.close()])
    await gateway.stop()
  })

  it('a reservation grants its name under another account\'s; an ACL entry grants a wildcard over another\'s name', async () => {
    await open('bob', 'app').urls()
    await open('alice', 'x.app').urls() // reserved by ann
    expect(await served('app.localhost')).toBe('B')
    expect(await served('x.app.localhost')).toBe('A')
    await open('alice', 'y.app').waitFor(/PH_1060: name y\.app\.localhost/) // not reserved

    await open('alice', 'z.wide').urls()
    await open('bob', '*.wide').waitFor(/Forwarding\s+http:\/\/\*\.wide\.localhost/) // bob's ACL names it
    expect(await served('z.wide.localhost')).toBe('A') // ann's exact name still wins its host
    expect(await served('other.wide.localhost')).toBe('B')
  })

  it('refuses a name above another account\'s reservation (PH_1060), even while nobody is bound there', async () => {
    const client = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('carol', 'openssh'), forwards: [`team:80:localhost:${upstreamB.port}`], command: 'http' })
    clients.push(client)
    await client.waitFor(/PH_1060: name team\.localhost/)
    expect(await client.exited).not.toBe(0)
    expect((await fetchVia(gateway, 'http://team.localhost/')).status).toBe(404)
  })
})
