// The inspector's server alone, fed with real TCP sockets on port 0 standing in for SSH channels: what a
// client can make it do is bounded (live views and connections per owner, body size), each connection is
// served as the owner it was handed with, and replay requests are validated before anything is sent.
import { afterEach, describe, expect, it } from 'vitest'
import { createServer, type AddressInfo, type Server } from 'node:net'
import { request } from 'undici'
import pino from 'pino'
import { createInspector, type Inspector, type InspectorView } from '../../src/inspect/server.js'
import { parseReplayRequest } from '../../src/inspect/replay-request.js'
import { acceptsDirect } from '../../src/agents/ssh/inspector-access.js'
import type { CapturedRequest, InspectStore } from '../../src/inspect/record.js'

function memoryStore (): InspectStore & { listeners: number } {
  const records: CapturedRequest[] = []
  const listeners = new Set<{ ownerId: string, fn: (r: CapturedRequest) => void }>()
  return {
    get listeners () { return listeners.size },
    add (record) { records.unshift(record); for (const l of listeners) if (l.ownerId === record.ownerId) l.fn(record) },
    list: (ownerId, options = {}) => records.filter((r) => r.ownerId === ownerId).slice(0, options.limit ?? 100),
    get: (ownerId, id) => records.find((r) => r.ownerId === ownerId && r.id === id),
    clear: (ownerId) => { for (let i = records.length - 1; i >= 0; i--) if (records[i]!.ownerId === ownerId) records.splice(i, 1) },
    subscribe (ownerId, fn) { const entry = { ownerId, fn }; listeners.add(entry); return () => { listeners.delete(entry) } },
  }
}

function record (ownerId: string, id: string): CapturedRequest {
  const message = { headers: { Host: ['a.localhost'] }, body: Buffer.alloc(0), bodySize: 0, truncated: false }
  return {
    id, ownerId, endpointId: 'ep', tunnelName: 'a.localhost', remoteAddr: '1.2.3.4:5', start: new Date(0).toISOString(), durationMs: 1,
    request: { ...message, method: 'GET', proto: 'HTTP/1.1', uri: '/' },
    response: { ...message, status: '200 OK', statusCode: 200, proto: 'HTTP/1.1' },
  }
}

const view = (ownerId: string): InspectorView => ({ ownerId, account: null, tunnels: () => [], session: () => ({}) })

let listener: Server | null = null
let inspector: Inspector | null = null

afterEach(async () => {
  inspector?.close()
  await new Promise((resolve) => (listener ? listener.close(resolve) : resolve(null)))
  listener = null
})

/** A port whose every connection is served as `owner` (the owner is the first path segment of nothing: one per port). */
async function serve (options: Partial<Parameters<typeof createInspector>[0]> & { store: InspectStore }, ownerId = 'alice'): Promise<string> {
  inspector = createInspector({ replay: async () => {}, log: pino({ level: 'silent' }), ...options })
  listener = createServer((socket) => inspector!.serve(socket, view(ownerId)))
  await new Promise<void>((resolve) => listener!.listen(0, '127.0.0.1', resolve))
  return `http://localhost:${(listener.address() as AddressInfo).port}`
}

describe('inspector server bounds', () => {
  it('serves each connection as the owner it was handed with', async () => {
    const store = memoryStore()
    store.add(record('alice', 'req_a'))
    store.add(record('bob', 'req_b'))
    const base = await serve({ store }, 'bob')
    const list = await (await request(`${base}/api/requests/http`)).body.json() as { requests: Array<{ id: string }> }
    expect(list.requests.map((r) => r.id)).toEqual(['req_b'])
  })

  it('caps live views per owner and frees a place when one closes', async () => {
    const store = memoryStore()
    const base = await serve({ store, maxStreamsPerOwner: 2 })
    const open = await Promise.all([1, 2].map(() => request(`${base}/api/events`)))
    expect(open.map((r) => r.statusCode)).toEqual([200, 200])
    expect(store.listeners).toBe(2)
    const third = await request(`${base}/api/events`)
    expect(third.statusCode).toBe(429)
    expect((await third.body.json() as { error_code: string }).error_code).toBe('PH_5030')
    // A record reaches the open views as an SSE event in ngrok's shape.
    const reader = open[0]!.body[Symbol.asyncIterator]()
    store.add(record('alice', 'req_live'))
    let text = ''
    while (!text.includes('req_live')) text += String((await reader.next()).value)
    expect(text).toMatch(/event: request\nid: req_live\ndata: \{"uri":"\/api\/requests\/http\/req_live"/)
    open[1]!.body.destroy()
    await new Promise<void>((resolve) => { const check = (): void => { if (store.listeners === 1) resolve(); else setImmediate(check) }; check() })
    expect((await request(`${base}/api/events`)).statusCode).toBe(200)
    open[0]!.body.destroy()
  })

  it('caps connections per owner', async () => {
    const base = await serve({ store: memoryStore(), maxConnectionsPerOwner: 1 })
    const first = await request(`${base}/api/events`) // holds its connection
    const second = await request(`${base}/api/`, { reset: true })
    expect(second.statusCode).toBe(429)
    expect((await second.body.json() as { error_code: string }).error_code).toBe('PH_5030')
    first.body.destroy()
  })

  it('refuses replay bodies over the limit without reading them whole', async () => {
    const store = memoryStore()
    store.add(record('alice', 'req_1'))
    const base = await serve({ store, maxBodyBytes: 1024 })
    const big = JSON.stringify({ id: 'req_1', body: 'x'.repeat(4096) })
    const response = await request(`${base}/api/requests/http`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: big })
    expect(response.statusCode).toBe(413)
    expect((await response.body.json() as { error_code: string }).error_code).toBe('PH_5007')
  })

  it('answers unknown paths and methods with catalogue codes, and serves the page', async () => {
    const base = await serve({ store: memoryStore() })
    expect((await (await request(`${base}/api/nope`)).body.json() as { error_code: string }).error_code).toBe('PH_5003')
    expect((await (await request(`${base}/api/tunnels`, { method: 'DELETE' })).body.json() as { error_code: string }).error_code).toBe('PH_5006')
    const page = await request(`${base}/`)
    expect(page.statusCode).toBe(200)
    expect(page.headers['content-security-policy']).toContain("default-src 'self'")
    expect(await page.body.text()).toContain('<title>Porthole inspector</title>')
    expect((await request(`${base}/../package.json`)).statusCode).toBe(404)
  })
})

describe('replay request parsing', () => {
  it('takes ngrok\'s {id, tunnel_name} and the UI\'s edits', () => {
    expect(parseReplayRequest(Buffer.from('{"id":"req_1","tunnel_name":"a.localhost"}'))).toEqual({ id: 'req_1', tunnelName: 'a.localhost' })
    const parsed = parseReplayRequest(Buffer.from(JSON.stringify({ id: 'req_1', method: 'PUT', uri: '/x?y=1', headers: { 'X-A': 'b', 'X-B': ['c', 'd'] }, body: 'aGk=', body_encoding: 'base64' })))
    expect(parsed.edits).toEqual({ method: 'PUT', uri: '/x?y=1', headers: { 'X-A': ['b'], 'X-B': ['c', 'd'] }, body: Buffer.from('hi') })
  })

  it.each([
    ['not json', 'JSON body'],
    ['[]', 'JSON body'],
    ['{}', 'id'],
    ['{"id":"r","method":"GET /"}', 'method'],
    ['{"id":"r","uri":"//evil/x y"}', 'uri'],
    ['{"id":"r","uri":"http://x/"}', 'uri'],
    ['{"id":"r","headers":{"Bad Name":"x"}}', 'header name'],
    ['{"id":"r","headers":{"X":"a\\r\\nInjected: 1"}}', 'header X'],
    ['{"id":"r","body":1}', 'body'],
    ['{"id":"r","body":"x","body_encoding":"hex"}', 'body_encoding'],
  ])('refuses %s', (body, field) => {
    expect(() => parseReplayRequest(Buffer.from(body))).toThrow(field)
  })
})

describe('which -L destinations the gateway answers', () => {
  it('only localhost:4040, in its three spellings', () => {
    for (const host of ['localhost', 'LOCALHOST', '127.0.0.1', '::1', '[::1]']) expect(acceptsDirect(host, 4040), host).toBe(true)
    for (const [host, port] of [['localhost', 4041], ['127.0.0.1', 22], ['127.0.0.2', 4040], ['example.com', 4040], ['0.0.0.0', 4040], ['localhost.evil.com', 4040]] as const) {
      expect(acceptsDirect(host, port), `${host}:${port}`).toBe(false)
    }
  })
})
