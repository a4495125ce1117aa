// Request capture and replay (issue 11) with real ssh clients: what the edge records of each request (heads,
// bodies up to the cap, binary intact), the switches that turn it off (the endpoint's --inspect=false, the
// gateway's --inspect=false), owners kept apart, replay through the same policy, the replay mark a stranger
// cannot forge, WebSocket handshakes and HTTP/2, and the admin API's view.
import { randomBytes } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { request } from 'undici'
import WebSocket, { WebSocketServer } from 'ws'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { BODY_CAP, REPLAY_HEADER } from '../../src/inspect/capture.js'
import { toNgrokRequest } from '../../src/inspect/ngrok-shape.js'
import type { CapturedRequest } from '../../src/inspect/record.js'
import { connect, eventually, h2Session, startTestGateway, startUpstream, type SshClient, type TestGateway } from './harness.js'

interface Sent { status: number, headers: Record<string, string | string[] | undefined>, body: Buffer }

async function send (gw: { httpPort: number }, url: string, init: { method?: string, headers?: Record<string, string>, body?: Buffer | string } = {}): Promise<Sent> {
  const parsed = new URL(url)
  const response = await request(`http://127.0.0.1:${gw.httpPort}${parsed.pathname}${parsed.search}`, {
    method: (init.method ?? 'GET') as 'GET',
    headers: { host: parsed.host, ...init.headers },
    body: init.body,
  })
  return { status: response.statusCode, headers: response.headers, body: Buffer.from(await response.body.arrayBuffer()) }
}

function readAll (req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c)).once('end', () => resolve(Buffer.concat(chunks))).once('error', reject)
  })
}

describe('request capture and replay', () => {
  let gw: TestGateway
  let upstream: Awaited<ReturnType<typeof startUpstream>>
  let wss: WebSocketServer
  /** What the upstream received, in order: method, url, headers, body. */
  const hits: Array<{ method: string, url: string, headers: IncomingMessage['headers'], body: Buffer }> = []
  const clients: SshClient[] = []

  function open (key: string, name: string, command = 'http'): SshClient {
    const client = connect({ kind: 'openssh', port: gw.sshPort, key: gw.key(key, 'openssh'), forwards: [`${name}:80:127.0.0.1:${upstream.port}`], command })
    clients.push(client)
    return client
  }

  function ownerOf (url: string): string {
    const host = new URL(url).hostname
    const endpoint = gw.registry.endpoints().find((e) => e.host === host)
    if (endpoint === undefined) throw new Error(`no endpoint ${host}`)
    return endpoint.owner.id
  }

  function endpointIdOf (url: string): string {
    return gw.registry.endpoints().find((e) => e.host === new URL(url).hostname)!.id
  }

  /** The newest record of the owner whose request uri is `uri`, once captured. */
  function captured (owner: string, uri: string, extra: (r: CapturedRequest) => boolean = () => true): Promise<CapturedRequest> {
    return eventually(() => gw.inspect.store.list(owner).find((r) => r.request.uri === uri && extra(r)))
  }

  beforeAll(async () => {
    gw = await startTestGateway()
    upstream = await startUpstream((req, res) => {
      void readAll(req).then((body) => {
        hits.push({ method: req.method!, url: req.url!, headers: req.headers, body })
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-body-length': String(body.length) })
        res.end(body)
      })
    })
    wss = new WebSocketServer({ server: upstream.server })
    wss.on('connection', (socket) => socket.on('message', (data) => socket.send(data)))
  })
  afterAll(async () => {
    for (const client of clients) await client.kill()
    wss.close()
    await upstream.close()
    await gw.stop()
  })

  it('captures a POST: the request as the upstream got it, the response as the client got it, in ngrok\'s shape', async () => {
    const client = open('alice', 'cap-post')
    const [url] = await client.urls()
    const answer = await send(gw, `${url}/hook?x=1`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-test': 'yes' }, body: '{"a":1}' })
    expect(answer.status).toBe(200)
    const record = await captured(ownerOf(url!), '/hook?x=1')
    expect(record.tunnelName).toBe(new URL(url!).hostname)
    expect(record.endpointId).toBe(endpointIdOf(url!))
    expect(record.remoteAddr).toMatch(/^127\.0\.0\.1:\d+$/)
    expect(record.request).toMatchObject({ method: 'POST', proto: 'HTTP/1.1', uri: '/hook?x=1', bodySize: 7, truncated: false })
    expect(record.request.headers['x-test']).toEqual(['yes'])
    expect(record.request.headers['x-forwarded-for']).toEqual(['127.0.0.1']) // what the edge added: as the upstream saw it
    expect(record.request.body.toString()).toBe('{"a":1}')
    expect(record.response).toMatchObject({ statusCode: 200, status: '200 OK', proto: 'HTTP/1.1', bodySize: 7, truncated: false })
    expect(record.response!.headers['x-body-length']).toEqual(['7'])
    expect(record.response!.body.toString()).toBe('{"a":1}')
    expect(record.errorCode).toBeUndefined()

    const shaped = toNgrokRequest(record)
    expect(shaped).toMatchObject({ id: record.id, tunnel_name: record.tunnelName, remote_addr: record.remoteAddr, start: record.start })
    expect(Number.isInteger(shaped.duration)).toBe(true)
    const raw = Buffer.from(shaped.request.raw, 'base64').toString()
    expect(raw).toMatch(/^POST \/hook\?x=1 HTTP\/1\.1\r\n/)
    expect(raw.endsWith('\r\n\r\n{"a":1}')).toBe(true)
    expect(shaped.response).toMatchObject({ status: '200 OK', status_code: 200, proto: 'HTTP/1.1' })
    expect(Buffer.from(shaped.response!.raw, 'base64').toString()).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\n\{"a":1\}$/)
  })

  it('keeps binary bodies intact both ways', async () => {
    const client = open('alice', 'cap-bin')
    const [url] = await client.urls()
    const bytes = Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => i)), randomBytes(3000)])
    const answer = await send(gw, `${url}/bin`, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' }, body: bytes })
    expect(answer.body.equals(bytes)).toBe(true)
    const record = await captured(ownerOf(url!), '/bin')
    expect(record.request.body.equals(bytes)).toBe(true)
    expect(record.response!.body.equals(bytes)).toBe(true)
    const raw = Buffer.from(toNgrokRequest(record).request.raw, 'base64')
    expect(raw.subarray(raw.length - bytes.length).equals(bytes)).toBe(true)
  })

  it('cuts a body over the cap and says so; the upstream and the client still get all of it', async () => {
    const client = open('alice', 'cap-big')
    const [url] = await client.urls()
    const bytes = randomBytes(BODY_CAP + 40_000)
    const answer = await send(gw, `${url}/big`, { method: 'POST', body: bytes })
    expect(answer.body.equals(bytes)).toBe(true)
    expect(hits.at(-1)!.body.length).toBe(bytes.length)
    const record = await captured(ownerOf(url!), '/big')
    expect(record.request).toMatchObject({ truncated: true, bodySize: bytes.length })
    expect(record.request.body.equals(bytes.subarray(0, BODY_CAP))).toBe(true)
    expect(record.response).toMatchObject({ truncated: true, bodySize: bytes.length })
    expect(record.response!.body.equals(bytes.subarray(0, BODY_CAP))).toBe(true)

    // As captured it is not the request that was sent: replaying it unedited is refused; with a body it goes.
    await expect(gw.inspect.replay(record)).rejects.toMatchObject({ code: 'PH_3200' })
    const before = hits.length
    await gw.inspect.replay(record, { body: Buffer.from('smaller') })
    expect(hits.length).toBe(before + 1)
    expect(hits.at(-1)!.body.toString()).toBe('smaller')
  })

  it('captures nothing of an endpoint bound with --inspect=false', async () => {
    const quiet = open('carol', 'cap-quiet', 'http --inspect=false')
    const loud = open('carol', 'cap-loud')
    const [quietUrl] = await quiet.urls()
    const [loudUrl] = await loud.urls()
    expect(gw.registry.endpoints().find((e) => e.host === new URL(quietUrl!).hostname)!.spec.inspect).toBe(false)
    expect((await send(gw, `${quietUrl}/secret`)).status).toBe(200)
    expect((await send(gw, `${loudUrl}/after`)).status).toBe(200)
    const owner = ownerOf(loudUrl!)
    await captured(owner, '/after') // the later request is in: the earlier one would be too, had it been captured
    expect(gw.inspect.store.list(owner).filter((r) => r.tunnelName === new URL(quietUrl!).hostname)).toEqual([])
  })

  it('refuses --inspect with a value that is not true or false', async () => {
    const client = open('carol', 'cap-bad', 'http --inspect=no')
    await client.waitFor(/PH_1002: bad value for --inspect="no"/)
  })

  it('keeps owners apart: another key\'s requests are not in this owner\'s list', async () => {
    const mine = open('alice', 'cap-mine')
    const theirs = open('bob', 'cap-theirs')
    const [mineUrl] = await mine.urls()
    const [theirsUrl] = await theirs.urls()
    await send(gw, `${mineUrl}/mine`)
    await send(gw, `${theirsUrl}/theirs`)
    const alice = ownerOf(mineUrl!)
    const bob = ownerOf(theirsUrl!)
    expect(alice).not.toBe(bob)
    const theirRecord = await captured(bob, '/theirs')
    await captured(alice, '/mine')
    expect(gw.inspect.store.list(alice).some((r) => r.id === theirRecord.id || r.ownerId !== alice)).toBe(false)
    expect(gw.inspect.store.get(alice, theirRecord.id)).toBeUndefined()
    expect(gw.inspect.store.list(bob).every((r) => r.ownerId === bob)).toBe(true)
  })

  it('replays through the same policy and tunnel: basic auth still applies, the replay is marked', async () => {
    const client = open('alice', 'cap-auth', 'http --basic-auth ann:s3cret')
    const [url] = await client.urls()
    const authorization = `Basic ${Buffer.from('ann:s3cret').toString('base64')}`
    expect((await send(gw, `${url}/paid`, { method: 'POST', headers: { authorization }, body: 'order=1' })).status).toBe(200)
    const owner = ownerOf(url!)
    const original = await captured(owner, '/paid')
    const before = hits.length
    await gw.inspect.replay(original)
    expect(hits.length).toBe(before + 1)
    expect(hits.at(-1)).toMatchObject({ method: 'POST', url: '/paid' })
    expect(hits.at(-1)!.body.toString()).toBe('order=1')
    expect(hits.at(-1)!.headers[REPLAY_HEADER]).toBeUndefined()
    const replayed = await captured(owner, '/paid', (r) => r.replayOf === original.id)
    expect(replayed.response!.statusCode).toBe(200)
    // basic-auth took the credentials off before the upstream; the replay sent them as the public client had
    expect(original.request.headers.authorization).toBeUndefined()
    expect(hits.at(-1)!.headers.authorization).toBeUndefined()
    expect(original.public!.headers.authorization).toEqual([authorization])
    expect(replayed.public!.headers.authorization).toEqual([authorization])

    // Edited to drop the credentials: the policy answers, nothing reaches the upstream.
    const headers = Object.fromEntries(Object.entries(original.public!.headers).filter(([name]) => name !== 'authorization').map(([n, v]) => [n, [...v]]))
    await gw.inspect.replay(original, { headers, uri: '/paid?edited=1' })
    expect(hits.length).toBe(before + 1)
    const denied = await captured(owner, '/paid?edited=1', (r) => r.replayOf === original.id)
    expect(denied.response!.statusCode).toBe(401)
    expect(denied.errorCode).toBe('PH_3101')
  })

  it('replays an https request over https (an https-only endpoint would redirect plain HTTP)', async () => {
    const client = open('alice', 'cap-tls', 'http --schemes https')
    await client.waitFor(/Forwarding\s+https:\/\/\S+/)
    const host = 'cap-tls.localhost'
    const session = h2Session(gw, host)
    await new Promise<void>((resolve, reject) => {
      const stream = session.request({ ':path': '/secure', ':authority': host, ':method': 'POST' })
      stream.once('error', reject).once('end', resolve).resume()
      stream.end('over tls')
    })
    session.close()
    const owner = gw.registry.endpoints().find((e) => e.host === host)!.owner.id
    const original = await captured(owner, '/secure')
    const before = hits.length
    await gw.inspect.replay(original)
    expect(hits.length).toBe(before + 1)
    expect(hits.at(-1)!.headers['x-forwarded-proto']).toBe('https')
    const replayed = await captured(owner, '/secure', (r) => r.replayOf === original.id)
    expect(replayed.response!.statusCode).toBe(200)
    expect(replayed.request.body.toString()).toBe('over tls')
  })

  it('refuses a replay that lands on another owner\'s endpoint (PH_3201), before the policy or the upstream', async () => {
    const mine = open('alice', 'cap-from')
    const theirs = open('bob', 'cap-to')
    const [mineUrl] = await mine.urls()
    const [theirsUrl] = await theirs.urls()
    await send(gw, `${mineUrl}/moving`)
    const original = await captured(ownerOf(mineUrl!), '/moving')
    // The name now routes elsewhere (it changed hands, or the record was tampered with): same owner, bob's host.
    const misrouted: CapturedRequest = { ...original, public: { uri: '/moving', headers: { ...original.public!.headers, 'x-forwarded-host': [new URL(theirsUrl!).host] } } }
    const before = hits.length
    await gw.inspect.replay(misrouted)
    expect(hits.length).toBe(before)
    const refused = await captured(ownerOf(theirsUrl!), '/moving')
    expect(refused.errorCode).toBe('PH_3201')
    expect(refused.replayOf).toBeUndefined()
  })

  it('strips a replay mark sent by the public and does not honour it', async () => {
    const client = open('alice', 'cap-forge')
    const [url] = await client.urls()
    const owner = ownerOf(url!)
    const earlier = gw.inspect.store.list(owner)[0]?.id ?? 'req_x'
    await send(gw, `${url}/forged`, { headers: { [REPLAY_HEADER]: `${'0'.repeat(64)} ${encodeURIComponent(owner)} ${earlier}` } })
    expect(hits.at(-1)!.url).toBe('/forged')
    expect(hits.at(-1)!.headers[REPLAY_HEADER]).toBeUndefined()
    const record = await captured(owner, '/forged')
    expect(record.replayOf).toBeUndefined()
    expect(record.request.headers[REPLAY_HEADER]).toBeUndefined()
  })

  it('records a WebSocket handshake (101) while the connection is open, and HTTP/2 requests', async () => {
    const client = open('alice', 'cap-ws')
    const [url] = await client.urls()
    const host = new URL(url!).host
    const ws = new WebSocket(`ws://127.0.0.1:${gw.httpPort}/socket`, { headers: { host } })
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject))
    const owner = ownerOf(url!)
    const handshake = await captured(owner, '/socket')
    expect(handshake.response).toMatchObject({ statusCode: 101, bodySize: 0 })
    expect(handshake.response!.headers.upgrade).toEqual(['websocket'])
    ws.send('hello')
    await new Promise((resolve) => ws.once('message', resolve))
    ws.close()

    const session = h2Session(gw, new URL(url!).hostname)
    const body = await new Promise<string>((resolve, reject) => {
      const stream = session.request({ ':path': '/over-h2', ':authority': new URL(url!).hostname, ':method': 'POST' })
      let text = ''
      stream.setEncoding('utf8').on('data', (t: string) => { text += t }).once('end', () => resolve(text)).once('error', reject)
      stream.end('h2 body')
    })
    session.close()
    expect(body).toBe('h2 body')
    const record = await captured(owner, '/over-h2')
    expect(record.request).toMatchObject({ method: 'POST', proto: 'HTTP/2.0' })
    expect(record.request.body.toString()).toBe('h2 body')
    expect(record.response).toMatchObject({ statusCode: 200, proto: 'HTTP/2.0' })
    expect(record.response!.headers['x-body-length']).toEqual(['7'])
    expect(record.response!.body.toString()).toBe('h2 body')
  })

  it('records the edge\'s own answers with their code (the upstream down: PH_3002)', async () => {
    const client = connect({ kind: 'openssh', port: gw.sshPort, key: gw.key('alice', 'openssh'), forwards: ['cap-down:80:127.0.0.1:1'], command: 'http' })
    clients.push(client)
    const [url] = await client.urls()
    expect((await send(gw, `${url}/down`)).status).toBe(502)
    const record = await captured(ownerOf(url!), '/down')
    expect(record.errorCode).toBe('PH_3002')
    expect(record.response!.statusCode).toBe(502)
  })

  it('lists an endpoint\'s records in the admin API, in the inspector\'s shape', async () => {
    const key = (await gw.identity.createApiKey({ description: 'inspect tests' })).key
    const client = open('alice', 'cap-api')
    const [url] = await client.urls()
    await send(gw, `${url}/listed`)
    const record = await captured(ownerOf(url!), '/listed')
    const id = endpointIdOf(url!)
    const response = await request(`http://127.0.0.1:${gw.apiPort}/api/endpoints/${id}/requests`, { headers: { authorization: `Bearer ${key}` } })
    const body = await response.body.json() as { requests: Array<ReturnType<typeof toNgrokRequest>>, uri: string }
    expect(response.statusCode).toBe(200)
    expect(body.uri).toBe(`/api/endpoints/${id}/requests`)
    expect(body.requests.map((r) => r.id)).toEqual([record.id])
    expect(body.requests[0]).toEqual(JSON.parse(JSON.stringify(toNgrokRequest(record))))
    const missing = await request(`http://127.0.0.1:${gw.apiPort}/api/endpoints/ep_nope/requests`, { headers: { authorization: `Bearer ${key}` } })
    expect(missing.statusCode).toBe(404)
    await missing.body.dump()
  })
})

describe('the operator switch --inspect=false', () => {
  it('captures nothing for any endpoint', async () => {
    const gw = await startTestGateway({ flags: { inspect: false } })
    const upstream = await startUpstream()
    const client = connect({ kind: 'openssh', port: gw.sshPort, key: gw.key('alice', 'openssh'), forwards: [`off:80:127.0.0.1:${upstream.port}`], command: 'http' })
    try {
      const [url] = await client.urls()
      expect(gw.config.inspect).toBe(false)
      expect((await send(gw, `${url}/nothing`, { method: 'POST', body: 'x' })).status).toBe(200)
      const owner = gw.registry.endpoints()[0]!.owner.id
      expect(gw.registry.endpoints()[0]!.spec.inspect).toBe(true) // the endpoint would, the gateway does not
      expect(gw.inspect.store.list(owner)).toEqual([])
    } finally {
      await client.kill()
      await upstream.close()
      await gw.stop()
    }
  })
})
