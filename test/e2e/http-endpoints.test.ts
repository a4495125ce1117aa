// HTTP endpoints end to end with each real SSH client: naming, several forwards, ownership across
// reconnects, modules (basic auth, CIDR, headers), and error codes when the upstream is missing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CLIENTS, connect, eventually, fetchVia, startTestGateway, startUpstream, type SshClient, type TestGateway } from './harness.js'

describe.each(CLIENTS)('http endpoints with %s', (kind) => {
  let gateway: TestGateway
  let upstream: Awaited<ReturnType<typeof startUpstream>>
  const clients: SshClient[] = []
  const open = (options: Omit<Parameters<typeof connect>[0], 'kind' | 'port' | 'key'> & { key?: string }): SshClient => {
    const client = connect({ ...options, kind, port: gateway.sshPort, key: options.key ?? gateway.key('alice', kind) })
    clients.push(client)
    return client
  }
  const target = (): string => `localhost:${upstream.port}`

  beforeAll(async () => {
    gateway = await startTestGateway()
    upstream = await startUpstream()
  })
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.kill('SIGKILL')))
    await upstream.close()
    await gateway.stop()
  })

  it('gives a random name and proxies to the upstream', async () => {
    const client = open({ forwards: [`80:${target()}`], command: 'http' })
    const [url] = await client.urls()
    expect(url).toMatch(new RegExp(`^http://[a-z][a-z2-9]{5}\\.localhost:${gateway.httpPort}$`))
    const res = await fetchVia(gateway, `${url}/hello?x=1`)
    expect(res.status).toBe(200)
    const echoed = JSON.parse(res.body)
    expect(echoed.url).toBe('/hello?x=1')
    expect(echoed.headers['x-forwarded-for']).toBe('127.0.0.1')
    expect(echoed.headers['x-forwarded-proto']).toBe('http')
    expect(echoed.headers['x-forwarded-host']).toBe(new URL(url!).host)
    await client.waitFor(/GET \/hello\?x=1 200 \d+ms/)
    await client.kill()
  })

  it('binds a bare label under the base domain', async () => {
    const client = open({ forwards: [`named-${kind}:80:${target()}`], command: 'http' })
    const [url] = await client.urls()
    expect(url).toBe(`http://named-${kind}.localhost:${gateway.httpPort}`)
    expect((await fetchVia(gateway, `${url}/`)).status).toBe(200)
    await client.kill()
  })

  it('binds a wildcard below a label; exact names win over it', async () => {
    const wild = open({ forwards: [`*.team-${kind}:80:${target()}`], command: 'http --response-header-add "X-Which: wildcard"' })
    await wild.urls()
    const res = await fetchVia(gateway, `http://anything.team-${kind}.localhost/`)
    expect(res.status).toBe(200)
    expect(res.headers['x-which']).toBe('wildcard')
    const exact = open({ forwards: [`exact.team-${kind}:80:${target()}`], command: 'http --response-header-add "X-Which: exact"' })
    await exact.urls()
    expect((await fetchVia(gateway, `http://exact.team-${kind}.localhost/`)).headers['x-which']).toBe('exact')
    expect((await fetchVia(gateway, `http://other.team-${kind}.localhost/`)).headers['x-which']).toBe('wildcard')
    await Promise.all([wild.kill(), exact.kill()])
  })

  it('refuses a wildcard over the whole base domain', async () => {
    const client = open({ forwards: [`*.localhost:80:${target()}`], command: 'http' })
    await client.waitFor(/PH_1012/)
    expect(gateway.registry.lookup('whatever.localhost').state).toBe('unknown')
    await client.kill()
  })

  it('works with -N (no session, no banner)', async () => {
    const client = open({ forwards: [`quiet-${kind}:80:${target()}`], noSession: true })
    const res = await eventually(async () => {
      const r = await fetchVia(gateway, `http://quiet-${kind}.localhost/`)
      if (r.status !== 200) throw new Error(`status ${r.status}`)
      return r
    })
    expect(JSON.parse(res.body).url).toBe('/')
    await client.kill()
  })

  it('binds two -R in one session', async () => {
    const second = await startUpstream((_req, res) => res.end('second'))
    const client = open({ forwards: [`one-${kind}:80:${target()}`, `two-${kind}:80:localhost:${second.port}`], command: 'http' })
    const urls = await client.urls(2)
    expect(urls.sort()).toEqual([`http://one-${kind}.localhost:${gateway.httpPort}`, `http://two-${kind}.localhost:${gateway.httpPort}`])
    expect(JSON.parse((await fetchVia(gateway, `http://one-${kind}.localhost/`)).body).url).toBe('/')
    expect((await fetchVia(gateway, `http://two-${kind}.localhost/`)).body).toBe('second')
    await client.kill()
    await second.close()
  })

  it('gives the same random name back to the same key, and refuses it to another key', async () => {
    const key = gateway.key('carol', kind)
    const first = open({ key, forwards: [`80:${target()}`], command: 'http' })
    const [url] = await first.urls()
    await first.kill()
    const host = new URL(url!).hostname
    await eventually(() => gateway.registry.lookup(host).state === 'offline')
    expect((await fetchVia(gateway, `${url}/`)).headers['porthole-error-code']).toBe('PH_3001')

    const again = open({ key, forwards: [`80:${target()}`], command: 'http' })
    expect(await again.urls()).toEqual([url])
    await again.kill()

    const label = host.split('.')[0]!
    const intruder = open({ key: gateway.key('bob', kind), forwards: [`${label}:80:${target()}`], command: 'http' })
    await intruder.waitFor(/PH_1011: name .* is in use, held or reserved by someone else/)
    expect(gateway.registry.lookup(host).state).toBe('offline')
    await intruder.kill()
  })

  it('refuses a name bound by another key while it is online', async () => {
    const owner = open({ forwards: [`taken-${kind}:80:${target()}`], command: 'http' })
    await owner.urls()
    const intruder = open({ key: gateway.key('bob', kind), forwards: [`taken-${kind}:80:${target()}`], command: 'http' })
    await intruder.waitFor(/PH_1011/)
    if (kind === 'openssh') expect(await intruder.exited).not.toBe(0)
    expect((await fetchVia(gateway, `http://taken-${kind}.localhost/`)).status).toBe(200)
    await Promise.all([owner.kill(), intruder.kill()])
  })

  it('enforces basic auth: 401 without, 200 with, and the credential stays at the edge', async () => {
    const client = open({ forwards: [`auth-${kind}:80:${target()}`], command: 'http --basic-auth ann:s3cret --basic-auth bo:pw' })
    const [url] = await client.urls()
    const denied = await fetchVia(gateway, `${url}/`)
    expect(denied.status).toBe(401)
    expect(denied.headers['porthole-error-code']).toBe('PH_3101')
    expect(denied.headers['www-authenticate']).toMatch(/^Basic realm=/)
    const wrong = await fetchVia(gateway, `${url}/`, { headers: { authorization: `Basic ${Buffer.from('ann:nope').toString('base64')}` } })
    expect(wrong.status).toBe(401)
    const ok = await fetchVia(gateway, `${url}/`, { headers: { authorization: `Basic ${Buffer.from('bo:pw').toString('base64')}` } })
    expect(ok.status).toBe(200)
    expect(JSON.parse(ok.body).headers.authorization).toBeUndefined()
    await client.kill()
  })

  it('denies by CIDR on the TCP peer address, whatever X-Forwarded-For says', async () => {
    const client = open({ forwards: [`cidr-${kind}:80:${target()}`], command: 'http --cidr-deny 127.0.0.0/8' })
    const [url] = await client.urls()
    const res = await fetchVia(gateway, `${url}/`, { headers: { 'x-forwarded-for': '8.8.8.8' } })
    expect(res.status).toBe(403)
    expect(res.headers['porthole-error-code']).toBe('PH_3100')
    await client.kill()
    const allow = open({ forwards: [`cidr2-${kind}:80:${target()}`], command: 'http --cidr-allow 127.0.0.1/32 --cidr-allow ::1' })
    const [allowed] = await allow.urls()
    expect((await fetchVia(gateway, `${allowed}/`)).status).toBe(200)
    await allow.kill()
  })

  it('adds and removes request and response headers', async () => {
    const app = await startUpstream((req, res) => {
      res.setHeader('x-powered-by', 'secret-stack')
      res.setHeader('x-kept', 'yes')
      res.end(JSON.stringify(req.headers))
    })
    const command = "http --request-header-add 'X-Team: blue' --request-header-remove x-drop --response-header-add 'X-Frame-Options: DENY' --response-header-remove x-powered-by"
    const client = open({ forwards: [`hdr-${kind}:80:localhost:${app.port}`], command })
    const [url] = await client.urls()
    const res = await fetchVia(gateway, `${url}/`, { headers: { 'x-drop': 'gone', 'x-team': 'spoofed' } })
    const seen = JSON.parse(res.body)
    expect(seen['x-team']).toBe('blue')
    expect(seen['x-drop']).toBeUndefined()
    expect(res.headers['x-frame-options']).toBe('DENY')
    expect(res.headers['x-powered-by']).toBeUndefined()
    expect(res.headers['x-kept']).toBe('yes')
    await client.kill()
    await app.close()
  })

  it('answers PH_3002 when the agent cannot reach its upstream', async () => {
    const dead = await startUpstream()
    const port = dead.port
    await dead.close()
    const client = open({ forwards: [`down-${kind}:80:localhost:${port}`], command: 'http' })
    const [url] = await client.urls()
    const res = await fetchVia(gateway, `${url}/`)
    expect(res.status).toBe(502)
    expect(res.headers['porthole-error-code']).toBe('PH_3002')
    await client.kill()
  })

  it('answers PH_3000 for a host nobody bound', async () => {
    const res = await fetchVia(gateway, 'http://nobody-here.localhost/')
    expect(res.status).toBe(404)
    expect(res.headers['porthole-error-code']).toBe('PH_3000')
  })

  it('refuses an unknown flag with a code, non-zero exit status and nothing bound', async () => {
    const client = open({ forwards: [`badflag-${kind}:80:${target()}`], command: 'http --basic-aut a:b' })
    await client.waitFor(/PH_1001: unknown option --basic-aut; did you mean --basic-auth\?/)
    expect(await client.exited).not.toBe(0)
    expect(gateway.registry.lookup(`badflag-${kind}.localhost`).state).toBe('unknown')
  })

  it('prints http --help', async () => {
    const client = open({ forwards: [`help-${kind}:80:${target()}`], command: 'http --help' })
    await client.waitFor(/--basic-auth/)
    expect(await client.exited).toBe(0)
    expect(gateway.registry.lookup(`help-${kind}.localhost`).state).toBe('unknown')
  })

  it('an upstream cannot set porthole-error-code', async () => {
    const app = await startUpstream((_req, res) => { res.setHeader('porthole-error-code', 'PH_3000'); res.end('ok') })
    const client = open({ forwards: [`spoof-${kind}:80:localhost:${app.port}`], command: 'http' })
    const [url] = await client.urls()
    const res = await fetchVia(gateway, `${url}/`)
    expect(res.status).toBe(200)
    expect(res.headers['porthole-error-code']).toBeUndefined()
    await client.kill()
    await app.close()
  })
})
