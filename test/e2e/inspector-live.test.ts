// The whole inspection path with nothing stood in: a request through a real `ssh -R` tunnel is captured by the edge,
// listed by the owner's inspector through that session's `ssh -L ...:localhost:4040` in ngrok's agent API shape,
// and replayed from there through the same policy and tunnel to the service again; another key sees none of it,
// and an endpoint bound with --inspect=false is never captured.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { request } from 'undici'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { FIXTURES, connect, eventually, fetchVia, freePort, ngrokSession, startTestGateway, startUpstream, type SshClient, type TestGateway } from './harness.js'

interface Listed { requests: Array<{ id: string, tunnel_name: string, request: { method: string, uri: string, raw: string }, response: { status_code: number }, replay_of?: string }> }

describe('inspection end to end (real capture, real inspector, real replay)', () => {
  let gateway: TestGateway
  let upstream: Awaited<ReturnType<typeof startUpstream>>
  const clients: SshClient[] = []
  const seen: string[] = []

  beforeAll(async () => {
    gateway = await startTestGateway()
    upstream = await startUpstream((req, res) => {
      let body = ''
      req.setEncoding('utf8').on('data', (t: string) => { body += t }).on('end', () => {
        seen.push(`${req.method} ${req.url} ${body}`)
        res.end('stored')
      })
    })
  })
  afterAll(async () => {
    for (const client of clients) await client.kill()
    await upstream.close()
    await gateway.stop()
  })

  /** A session of `key` forwarding `name` with `command`, and its inspector reached through -L. */
  async function open (key: string, name: string, command = 'http'): Promise<{ url: string, api: (path: string, init?: { method?: string, body?: string }) => Promise<{ status: number, json: unknown }> }> {
    const local = await freePort()
    const client = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key(key, 'openssh'), forwards: [`${name}:80:localhost:${upstream.port}`], command, extra: ['-L', `${local}:localhost:4040`] })
    clients.push(client)
    const url = (await client.urls())[0]!
    const api = async (path: string, init: { method?: string, body?: string } = {}): Promise<{ status: number, json: unknown }> => {
      const response = await request(`http://localhost:${local}${path}`, {
        method: (init.method ?? 'GET') as 'GET',
        ...(init.body !== undefined ? { body: init.body, headers: { 'content-type': 'application/json' } } : {}),
      })
      const text = await response.body.text()
      return { status: response.statusCode, json: text === '' ? null : JSON.parse(text) }
    }
    await eventually(async () => (await api('/api/status').catch(() => ({ status: 0 }))).status === 200, 15_000)
    return { url, api }
  }

  it('captures a POST, lists it through -L, and replays it to the service through the tunnel', async () => {
    const { url, api } = await open('alice', 'live-inspect')
    expect((await fetchVia(gateway, `${url}/hook?x=1`, { method: 'POST', body: '{"event":"paid"}', headers: { 'content-type': 'application/json' } })).body).toBe('stored')
    const listed = await eventually(async () => {
      const { json } = await api('/api/requests/http')
      return (json as Listed).requests.length === 1 ? json as Listed : undefined
    })
    const record = listed.requests[0]!
    expect(record).toMatchObject({ tunnel_name: 'live-inspect.localhost', request: { method: 'POST', uri: '/hook?x=1' }, response: { status_code: 200 } })
    expect(Buffer.from(record.request.raw, 'base64').toString()).toMatch(/^POST \/hook\?x=1 HTTP\/1\.1\r\n[\s\S]*\r\n\r\n\{"event":"paid"\}$/)
    const tunnels = (await api('/api/tunnels')).json as { tunnels: Array<{ public_url: string }> }
    expect(tunnels.tunnels.map((t) => new URL(t.public_url).hostname)).toContain('live-inspect.localhost')

    expect((await api('/api/requests/http', { method: 'POST', body: JSON.stringify({ id: record.id }) })).status).toBe(204)
    await eventually(() => seen.filter((line) => line === 'POST /hook?x=1 {"event":"paid"}').length === 2)
    const after = await eventually(async () => {
      const { json } = await api('/api/requests/http')
      return (json as Listed).requests.length === 2 ? json as Listed : undefined
    })
    expect(after.requests[0]).toMatchObject({ replay_of: record.id, request: { uri: '/hook?x=1' } })

    // Another key's inspector sees none of it, even asking by id.
    const other = await open('bob', 'other-inspect')
    expect(((await other.api('/api/requests/http')).json as Listed).requests).toEqual([])
    expect((await other.api(`/api/requests/http/${record.id}`)).status).toBe(404)
  })

  it('the live stream (SSE) carries each request in the list\'s shape and as ngrok\'s http_request_complete.v0 event', async () => {
    const local = await freePort()
    const client = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`live-events:80:localhost:${upstream.port}`], command: 'http', extra: ['-L', `${local}:localhost:4040`] })
    clients.push(client)
    const url = (await client.urls())[0]!
    const events = await eventually(async () => request(`http://localhost:${local}/api/events`).catch(() => undefined), 15_000)
    let text = ''
    events.body.setEncoding('utf8').on('data', (chunk: string) => { text += chunk })
    await fetchVia(gateway, `${url}/streamed?y=2`)
    await eventually(() => text.includes('event: http_request_complete.v0'))
    const request1 = JSON.parse(/event: request\nid: \S+\ndata: (.+)\n/.exec(text)![1]!) as { request: { uri: string } }
    expect(request1.request.uri).toBe('/streamed?y=2')
    const complete = JSON.parse(/event: http_request_complete\.v0\ndata: (.+)\n/.exec(text)![1]!) as { event_type: string, object: { http: { request: { method: string, url: { path: string, query: string } }, response: { status_code: number } } } }
    expect(complete).toMatchObject({ event_type: 'http_request_complete.v0', object: { http: { request: { method: 'GET', url: { path: '/streamed', query: 'y=2' } }, response: { status_code: 200 } } } })
    events.body.destroy()
  })

  it('an endpoint bound with --inspect=false is never captured', async () => {
    const { url, api } = await open('carol', 'no-inspect', 'http --inspect=false')
    expect((await fetchVia(gateway, `${url}/private`)).body).toBe('stored')
    await eventually(() => seen.some((line) => line.startsWith('GET /private')))
    expect(((await api('/api/requests/http')).json as Listed).requests).toEqual([])
  })
})

describe('an account sees its ngrok agents in the inspector of its SSH sessions', () => {
  it('an SDK endpoint bound with the account\'s authtoken is listed, and its requests captured, for the account\'s key', async () => {
    const gateway = await startTestGateway()
    const upstream = await startUpstream((_req, res) => res.end('from the sdk'))
    let sdk: Awaited<ReturnType<typeof ngrokSession>> | undefined
    let client: SshClient | undefined
    try {
      await gateway.identity.createAccount('ann')
      await gateway.identity.addKey('ann', readFileSync(join(FIXTURES, 'keys', 'alice.pub'), 'utf8'))
      const { token } = await gateway.identity.createToken('ann')
      sdk = await ngrokSession(gateway, { authtoken: token })
      const listener = await sdk.httpEndpoint().domain('ann-sdk').listenAndForward(`http://localhost:${upstream.port}`)
      expect((await fetchVia(gateway, `${listener.url()}/via-sdk`)).body).toBe('from the sdk')
      const local = await freePort()
      client = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`ann-ssh:80:localhost:${upstream.port}`], command: 'http', extra: ['-L', `${local}:localhost:4040`] })
      await client.urls()
      const get = async (path: string): Promise<unknown> => {
        const response = await request(`http://localhost:${local}${path}`)
        return response.body.json()
      }
      const tunnels = await eventually(async () => (await get('/api/tunnels').catch(() => undefined)) as { tunnels: Array<{ name: string }> } | undefined, 15_000)
      expect(tunnels.tunnels.map((t) => t.name).sort()).toEqual(['ann-sdk.localhost', 'ann-ssh.localhost'])
      const listed = await get('/api/requests/http?tunnel_name=ann-sdk.localhost') as Listed
      expect(listed.requests.map((r) => r.request.uri)).toEqual(['/via-sdk'])
    } finally {
      await client?.kill()
      await sdk?.close().catch(() => {})
      await upstream.close()
      await gateway.stop()
    }
  })
})

