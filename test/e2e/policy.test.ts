// Traffic policy documents through a real tunnel with each SSH client: sent inline (--traffic-policy) or on
// stdin (--traffic-policy-file - < policy.yml), combined with flags, and refused with its place when bad.
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CLIENTS, connect, fetchVia, startTestGateway, startUpstream, type SshClient, type TestGateway } from './harness.js'

const maintenance = readFileSync(resolve(import.meta.dirname, '../../fixtures/policies/maintenance.yml'), 'utf8')

describe.each(CLIENTS)('traffic policy with %s', (kind) => {
  let gateway: TestGateway
  let upstream: Awaited<ReturnType<typeof startUpstream>>
  const clients: SshClient[] = []
  const open = (name: string, command: string, stdin?: string): SshClient => {
    const client = connect({ kind, port: gateway.sshPort, key: gateway.key('alice', kind), forwards: [`${name}-${kind}:80:localhost:${upstream.port}`], command })
    if (stdin !== undefined) client.proc.stdin!.end(stdin)
    clients.push(client)
    return client
  }

  beforeAll(async () => {
    gateway = await startTestGateway()
    upstream = await startUpstream()
  })
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.kill('SIGKILL')))
    await upstream.close()
    await gateway.stop()
  })

  it('reads a YAML policy from stdin: custom response, redirect, rewrite, response headers', async () => {
    const client = open('maint', 'http --traffic-policy-file -', maintenance)
    const [url] = await client.urls()
    const host = new URL(url!).hostname
    const down = await fetchVia(gateway, `${url}/maintenance`)
    expect(down.status).toBe(503)
    expect(down.body).toBe(`down for maintenance, ${host}`)
    const moved = await fetchVia(gateway, `${url}/old/page?q=1`)
    expect(moved.status).toBe(301)
    expect(moved.headers.location).toBe(`${url}/new/page?q=1`) // the gateway's port stays in the URL
    const rewritten = await fetchVia(gateway, `${url}/v1/users?id=7`)
    expect(JSON.parse(rewritten.body).url).toBe('/api/v1/users?id=7')
    expect(rewritten.headers['x-served-by']).toBe(`porthole ${host}`)
  })

  it('takes an inline JSON policy after the flags\' rules', async () => {
    const policy = JSON.stringify({ on_http_request: [{ expressions: ["req.method == 'DELETE'"], actions: [{ type: 'deny', config: { status_code: 405 } }] }] })
    const client = open('inline', `http --basic-auth ann:pw --traffic-policy '${policy}'`)
    const [url] = await client.urls()
    const auth = { authorization: `Basic ${Buffer.from('ann:pw').toString('base64')}` }
    expect((await fetchVia(gateway, `${url}/`, { method: 'DELETE' })).status).toBe(401) // the flag's rule runs first
    const denied = await fetchVia(gateway, `${url}/`, { method: 'DELETE', headers: auth })
    expect(denied.status).toBe(405)
    expect(denied.headers['porthole-error-code']).toBe('PH_3102')
    expect((await fetchVia(gateway, `${url}/`, { headers: auth })).status).toBe(200)
  })

  it('refuses a bad policy with its place, a non-zero exit and nothing bound', async () => {
    const client = open('badpolicy', 'http --traffic-policy-file -', 'on_http_request:\n  - actions:\n      - type: redirect\n        config: {}\n')
    await client.waitFor(/PH_1008: invalid traffic policy: on_http_request\[0\]\.actions\[0\]\.config\.to: /)
    expect(await client.exited).not.toBe(0)
    expect(gateway.registry.lookup(`badpolicy-${kind}.localhost`).state).toBe('unknown')
  })
})
