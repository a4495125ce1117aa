// The inspector through a real `ssh -L` and `dbclient -L`: ngrok's agent API shapes (list, detail, delete,
// tunnels, status), one owner never seeing another's requests, direct-tcpip to anything but localhost:4040
// refused without the gateway dialing it, and replay by POST reaching the upstream again.
// (A store the test fills itself, inspect-fakes.ts: the API is checked on exact records; inspector-live.test.ts
// runs the whole path with real capture.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createServer, type AddressInfo } from 'node:net'
import { request } from 'undici'
import type { Endpoint } from '../../src/core/endpoint.js'
import { CLIENTS, connect, eventually, fetchVia, freePort, startTestGateway, type ClientKind, type SshClient, type TestGateway } from './harness.js'
import { recordFor, startFakeInspected, type FakeInspectedScene, type FakeStore, type Seen } from './inspect-fakes.js'

let gateway: TestGateway
let upstream: FakeInspectedScene['upstream']
let store: FakeStore
let seen: Seen[]
const clients: SshClient[] = []

beforeAll(async () => {
  ({ gateway, upstream, store, seen } = await startFakeInspected({ ok: true }))
}, 30_000)

afterAll(async () => {
  await Promise.all(clients.map((c) => c.kill()))
  await gateway?.stop()
  await upstream?.close()
})

interface Session { client: SshClient, url: string, endpoint: Endpoint, api: (path: string, init?: { method?: string, body?: string, headers?: Record<string, string> }) => Promise<{ status: number, json: any, headers: Record<string, unknown> }> }

/** ssh -R (an http endpoint) and -L LOCAL:localhost:4040 in one session; resolves once the inspector answers. */
async function session (kind: ClientKind, key: string): Promise<Session> {
  const local = await freePort()
  const client = connect({ kind, port: gateway.sshPort, key: gateway.key(key, kind), forwards: [`localhost:80:localhost:${upstream.port}`], command: 'http', extra: ['-L', `${local}:localhost:4040`] })
  clients.push(client)
  const [url] = await client.urls()
  const host = new URL(url!).hostname
  const endpoint = gateway.registry.endpoints().find((e) => e.host === host)!
  const api: Session['api'] = async (path, init = {}) => {
    const response = await request(`http://127.0.0.1:${local}${path}`, { method: (init.method ?? 'GET') as 'GET', headers: { ...(init.body ? { 'content-type': 'application/json' } : {}), ...init.headers }, body: init.body })
    const text = await response.body.text()
    return { status: response.statusCode, json: text ? JSON.parse(text) : null, headers: response.headers }
  }
  await eventually(async () => (await api('/api/')).status === 200, 15_000)
  return { client, url: url!, endpoint, api }
}

describe.each(CLIENTS)('inspector over %s -L', (kind) => {
  it('serves ngrok\'s agent API shapes for the session owner\'s requests', async () => {
    const s = await session(kind, 'alice')
    await s.api('/api/requests/http', { method: 'DELETE' })
    expect((await s.api('/api/requests/http')).json).toEqual({ requests: [], uri: '/api/requests/http' })

    await fetchVia(gateway, `${s.url}/hook?x=1`, { method: 'POST', body: '{"event":"paid"}', headers: { 'content-type': 'application/json' } })
    const first = recordFor(s.endpoint, { method: 'POST', uri: '/hook?x=1', body: Buffer.from('{"event":"paid"}'), headers: { 'Content-Type': ['application/json'] } })
    store.add(first)
    const second = recordFor(s.endpoint, { uri: '/second', status: 404 })
    store.add(second)

    const list = await s.api('/api/requests/http')
    expect(list.status).toBe(200)
    expect(list.headers['content-type']).toBe('application/json')
    expect(list.json.uri).toBe('/api/requests/http')
    expect(list.json.requests.map((r: { id: string }) => r.id)).toEqual([second.id, first.id])
    const item = list.json.requests[1]
    expect(item).toMatchObject({
      uri: `/api/requests/http/${first.id}`,
      id: first.id,
      tunnel_name: s.endpoint.host,
      remote_addr: '127.0.0.1:50000',
      start: first.start,
      duration: 12_500_000,
      request: { method: 'POST', proto: 'HTTP/1.1', uri: '/hook?x=1', headers: { 'Content-Type': ['application/json'] } },
      response: { status: '200 OK', status_code: 200, proto: 'HTTP/1.1', headers: { 'Content-Type': ['application/json'] } },
    })
    const raw = Buffer.from(item.request.raw, 'base64').toString()
    expect(raw.startsWith('POST /hook?x=1 HTTP/1.1\r\n')).toBe(true)
    expect(raw.endsWith('\r\n\r\n{"event":"paid"}')).toBe(true)
    expect(Buffer.from(item.response.raw, 'base64').toString()).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\n\{"ok":true\}$/)

    expect((await s.api('/api/requests/http?limit=1')).json.requests).toHaveLength(1)
    expect((await s.api(`/api/requests/http?tunnel_name=${s.endpoint.host}`)).json.requests).toHaveLength(2)
    expect((await s.api('/api/requests/http?tunnel_name=other.localhost')).json.requests).toHaveLength(0)
    expect((await s.api('/api/requests/http?limit=lots')).json.error_code).toBe('PH_5001')

    const detail = await s.api(`/api/requests/http/${second.id}`)
    expect(detail.status).toBe(200)
    expect(detail.json.response.status_code).toBe(404)
    const missing = await s.api('/api/requests/http/req_nope')
    expect(missing.status).toBe(404)
    expect(missing.json.error_code).toBe('PH_5031')

    const https = s.url.replace(/^http:/, 'https:').replace(/:\d+$/, `:${gateway.httpsPort}`)
    const tunnels = await s.api('/api/tunnels')
    expect(tunnels.json).toEqual({
      uri: '/api/tunnels',
      tunnels: [{
        name: s.endpoint.host,
        uri: `/api/tunnels/${s.endpoint.host}`,
        public_url: https,
        public_urls: [https, s.url],
        proto: 'https',
        config: { addr: 'localhost:80', inspect: true },
      }],
    })
    const status = await s.api('/api/status')
    expect(status.json).toMatchObject({ status: 'online', tunnels: 1, public_urls: [https, s.url], uri: '/api/status' })
    expect((await s.api('/api/')).json).toMatchObject({ requests_uri: '/api/requests/http', tunnels_uri: '/api/tunnels' })

    const cleared = await s.api('/api/requests/http', { method: 'DELETE' })
    expect(cleared.status).toBe(204)
    expect((await s.api('/api/requests/http')).json.requests).toEqual([])
    await s.client.kill()
  })

  it('replays a captured request to the upstream by POST, as captured and edited', async () => {
    const s = await session(kind, 'carol')
    const original = recordFor(s.endpoint, { method: 'POST', uri: '/webhook', body: Buffer.from('{"n":1}'), headers: { 'Content-Type': ['application/json'], 'X-Signature': ['abc'] } })
    store.add(original)
    const before = seen.length
    const replayed = await s.api('/api/requests/http', { method: 'POST', body: JSON.stringify({ id: original.id, tunnel_name: s.endpoint.host }) })
    expect(replayed.status).toBe(204)
    expect(seen.slice(before)).toEqual([{ method: 'POST', url: '/webhook', body: '{"n":1}' }])
    const list = (await s.api('/api/requests/http')).json.requests
    expect(list[0].replay_of).toBe(original.id)

    const edited = await s.api('/api/requests/http', { method: 'POST', body: JSON.stringify({ id: original.id, method: 'PUT', uri: '/webhook?edited=1', headers: { 'Content-Type': ['text/plain'] }, body: 'changed' }) })
    expect(edited.status).toBe(204)
    expect(seen.at(-1)).toEqual({ method: 'PUT', url: '/webhook?edited=1', body: 'changed' })

    // Edits that would smuggle bytes into the tunnel, and requests not in JSON, are refused before sending.
    const count = seen.length
    for (const body of [{ id: original.id, method: 'GET /x HTTP/1.1\r\n' }, { id: original.id, uri: 'http://elsewhere/' }, { id: original.id, headers: { 'X-A': ['a\r\nb: c'] } }]) {
      expect((await s.api('/api/requests/http', { method: 'POST', body: JSON.stringify(body) })).json.error_code).toBe('PH_5001')
    }
    expect((await s.api('/api/requests/http', { method: 'POST', body: JSON.stringify({ id: original.id }), headers: { 'content-type': 'text/plain' } })).status).toBe(400)
    expect((await s.api('/api/requests/http', { method: 'POST', body: JSON.stringify({ id: 'req_unknown' }) })).json.error_code).toBe('PH_5031')
    expect((await s.api('/api/requests/http', { method: 'POST', body: JSON.stringify({ id: original.id, tunnel_name: 'other.localhost' }) })).json.error_code).toBe('PH_5001')
    expect(seen.length).toBe(count)
    await s.client.kill()
  })
})

describe('inspector isolation and access', () => {
  it('another key sees none of this owner\'s requests, even by id', async () => {
    const alice = await session('openssh', 'alice')
    const bob = await session('dropbear', 'bob')
    const record = recordFor(alice.endpoint, { uri: '/alice-only' })
    store.add(record)
    expect((await alice.api('/api/requests/http')).json.requests.map((r: { id: string }) => r.id)).toContain(record.id)
    expect((await bob.api('/api/requests/http')).json.requests).toEqual([])
    expect((await bob.api(`/api/requests/http/${record.id}`)).status).toBe(404)
    expect((await bob.api('/api/requests/http', { method: 'POST', body: JSON.stringify({ id: record.id }) })).status).toBe(404)
    expect((await bob.api('/api/tunnels')).json.tunnels.map((t: { name: string }) => t.name)).toEqual([bob.endpoint.host])
    await bob.api('/api/requests/http', { method: 'DELETE' })
    expect((await alice.api(`/api/requests/http/${record.id}`)).status).toBe(200)
    await Promise.all([alice.client.kill(), bob.client.kill()])
  })

  it('refuses pages not opened as localhost (DNS rebinding) and changes from foreign origins', async () => {
    const s = await session('openssh', 'alice')
    const rebound = await s.api('/api/requests/http', { headers: { host: 'evil.example:4040' } })
    expect(rebound.status).toBe(403)
    expect(rebound.json.error_code).toBe('PH_5035')
    const foreign = await s.api('/api/requests/http', { method: 'DELETE', headers: { origin: 'https://evil.example' } })
    expect(foreign.json.error_code).toBe('PH_5035')
    await s.client.kill()
  })

  it.each(CLIENTS)('works for a -N session with %s (no terminal): /api/tunnels tells its URLs', async (kind) => {
    const local = await freePort()
    const client = connect({ kind, port: gateway.sshPort, key: gateway.key('bob', kind), forwards: [`localhost:80:localhost:${upstream.port}`], noSession: true, extra: ['-L', `${local}:localhost:4040`] })
    clients.push(client)
    const tunnels = await eventually(async () => {
      const response = await request(`http://127.0.0.1:${local}/api/tunnels`)
      const json = await response.body.json() as { tunnels: Array<{ public_url: string, config: { addr: string } }> }
      return json.tunnels.length === 1 ? json.tunnels : null
    }, 15_000)
    expect(tunnels[0]!.public_url).toMatch(/^https:\/\/[a-z0-9]+\.localhost:\d+$/)
    expect(tunnels[0]!.config.addr).toBe('localhost:80')
    await client.kill()
  })

  it('says the inspector is off when the operator turned capture off (porthole serve --inspect=false)', async () => {
    const bare = await startTestGateway({ flags: { inspect: false } })
    try {
      const local = await freePort()
      const client = connect({ kind: 'openssh', port: bare.sshPort, key: bare.key('alice', 'openssh'), forwards: [`localhost:80:localhost:${upstream.port}`], command: 'http', extra: ['-L', `${local}:localhost:4040`] })
      clients.push(client)
      await client.urls()
      await expect(request(`http://127.0.0.1:${local}/api/`)).rejects.toThrow()
      await eventually(() => client.output.includes('PH_5034'))
      await client.kill()
    } finally {
      await bare.stop()
    }
  })

  it.each(CLIENTS)('refuses -L to any other port or host with %s, and never dials it', async (kind) => {
    // A listener on the gateway's host the client asks for: it must see no connection at all.
    let dialed = 0
    const bait = createServer((socket) => { dialed++; socket.destroy() })
    await new Promise<void>((resolve) => bait.listen(0, '127.0.0.1', resolve))
    const baitPort = (bait.address() as AddressInfo).port
    const [toPort, toHost, ok] = [await freePort(), await freePort(), await freePort()]
    const client = connect({
      kind,
      port: gateway.sshPort,
      key: gateway.key('alice', kind),
      forwards: [`localhost:80:localhost:${upstream.port}`],
      command: 'http',
      extra: ['-L', `${toPort}:127.0.0.1:${baitPort}`, '-L', `${toHost}:example.com:4040`, '-L', `${ok}:127.0.0.1:4040`],
    })
    clients.push(client)
    await client.urls()
    // The allowed one works (so the others were set up too), the refused ones close without an HTTP answer.
    const good = await eventually(async () => (await request(`http://127.0.0.1:${ok}/api/`)).statusCode, 15_000)
    expect(good).toBe(200)
    for (const port of [toPort, toHost]) {
      await expect(request(`http://127.0.0.1:${port}/api/`)).rejects.toThrow()
    }
    expect(dialed).toBe(0)
    await eventually(() => client.output.includes('PH_5033'))
    bait.close()
    await client.kill()
  })
})
