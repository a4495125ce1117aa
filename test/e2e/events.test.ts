// Events for operators with a real gateway, a real `ssh -R` (OpenSSH) and the ngrok SDK: ngrok-shaped events
// delivered, signed, to a local webhook receiver and to a rotating file; then receivers that are down (connection
// refused) and one that never answers, while traffic is still served: requests complete while the webhook hangs,
// the queue stays bounded, drops are counted in the counters and on a prom-client registry, and close does not
// hang; the type filter holds.
import { createHmac } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http'
import { createServer, type AddressInfo, type Server } from 'node:net'
import { join } from 'node:path'
import { Registry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { PortholeEvent } from '../../src/observe/event-shapes.js'
import { connect, echoOnce, eventually, fetchVia, freePort, ngrokSession, startTestGateway, startUpstream, type SshClient, type TestGateway } from './harness.js'

const SECRET = 'a-secret-of-some-length'

interface Receiver { url: string, posts: { body: string, signature: string | undefined }[], pending: ServerResponse[], server: HttpServer }

/** A webhook receiver on port 0: answers 204, or (hang) never answers. */
async function startReceiver (hang = false): Promise<Receiver> {
  const receiver: Receiver = { url: '', posts: [], pending: [], server: null as unknown as HttpServer }
  receiver.server = createHttpServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      receiver.posts.push({ body: Buffer.concat(chunks).toString('utf8'), signature: req.headers['x-porthole-signature'] as string | undefined })
      if (hang) receiver.pending.push(res)
      else res.writeHead(204).end()
    })
  })
  await new Promise<void>((resolve) => receiver.server.listen(0, '127.0.0.1', resolve))
  receiver.url = `http://127.0.0.1:${(receiver.server.address() as AddressInfo).port}/hook`
  return receiver
}

const eventsOf = (receiver: Receiver): PortholeEvent[] => receiver.posts.flatMap((p) => (JSON.parse(p.body) as { events: PortholeEvent[] }).events)

describe('events to a webhook and a file', () => {
  let gateway: TestGateway
  let receiver: Receiver
  let upstream: Awaited<ReturnType<typeof startUpstream>>
  let echo: Server
  let dir: string
  const clients: SshClient[] = []

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'porthole-events-e2e-'))
    receiver = await startReceiver()
    upstream = await startUpstream((req, res) => { res.setHeader('content-length', 5); res.end('hello') })
    echo = createServer((socket) => socket.pipe(socket))
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve))
    gateway = await startTestGateway({
      flags: { eventsWebhook: [receiver.url], eventsWebhookSecret: SECRET, eventsFile: join(dir, 'events.jsonl') },
      parts: { events: { webhook: { batchMs: 50 }, fileMaxBytes: 4096 } },
    })
  })
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.kill('SIGKILL')))
    echo.close()
    await upstream.close()
    await gateway.stop()
    receiver.server.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('an ssh -R session and its requests, an ngrok SDK tcp connection: ngrok-shaped events, signed, to the webhook and the file', async () => {
    const client = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`evt:80:localhost:${upstream.port}`], command: 'http' })
    clients.push(client)
    await client.waitFor(/Forwarding\s+http:/)
    for (let i = 0; i < 10; i++) expect((await fetchVia(gateway, `http://evt.localhost/n/${i}?q=${i}`)).status).toBe(200)

    const session = await ngrokSession(gateway)
    const listener = await session.tcpEndpoint().listenAndForward(`tcp://localhost:${(echo.address() as AddressInfo).port}`)
    const port = Number(new URL(listener.url()!).port)
    await echoOnce(port, 'ping-pong!')
    await client.kill('SIGKILL')

    const http = await eventually(() => eventsOf(receiver).find((e) => e.event_type === 'http_request_complete.v0' && e.object.http.request.url.path === '/n/9'))
    expect(http).toMatchObject({
      event_type: 'http_request_complete.v0',
      object: {
        conn: { client_ip: '127.0.0.1', server_name: 'evt.localhost' },
        endpoint: { host: 'evt.localhost' },
        http: { request: { method: 'GET', proto: 'HTTP/1.1', url: { scheme: 'http', path: '/n/9', query: 'q=9' }, body_length: 0 }, response: { status_code: 200, body_length: 5 } },
        traffic_policy: { error_code: null },
      },
    })
    expect(http.event_id).toMatch(/^ev_/)
    expect(Date.parse(http.event_timestamp)).not.toBeNaN()
    const tcp = await eventually(() => eventsOf(receiver).find((e) => e.event_type === 'tcp_connection_closed.v0'))
    expect(tcp.object).toMatchObject({ conn: { client_ip: '127.0.0.1', server_port: port, bytes_in: 10, bytes_out: 10 }, endpoint: { proto: 'tcp', host: `tcp:${port}` } })
    const sshStop = await eventually(() => eventsOf(receiver).find((e) => e.event_type === 'agent_session_stop.v0' && e.object.transport === 'ssh'))
    expect(sshStop.object).toMatchObject({ transport: 'ssh', agent_ip: '127.0.0.1', user_agent: expect.stringMatching(/OpenSSH/) })
    const ngrokStart = eventsOf(receiver).find((e) => e.event_type === 'agent_session_start.v0' && e.object.transport === 'muxado')
    expect(ngrokStart?.object).toMatchObject({ user_agent: expect.stringMatching(/ngrok/), stopped_at: null })
    await session.close().catch(() => {})

    // Every POST signed with the secret over the exact body.
    for (const post of receiver.posts) {
      expect(post.signature).toBe(`sha256=${createHmac('sha256', SECRET).update(post.body).digest('hex')}`)
    }
    // The file got the same events, one JSON line each, and rotated to .1 at its 4 KiB cap.
    const path = join(dir, 'events.jsonl')
    await eventually(() => gateway.events!.counters().file!.delivered >= gateway.events!.counters().webhook!.delivered)
    expect(existsSync(`${path}.1`)).toBe(true)
    const lines = [...readFileSync(`${path}.1`, 'utf8').trim().split('\n'), ...readFileSync(path, 'utf8').trim().split('\n')]
    const fileEvents = lines.map((l) => JSON.parse(l) as PortholeEvent)
    expect(fileEvents.some((e) => e.event_type === 'http_request_complete.v0')).toBe(true)
    for (const file of [path, `${path}.1`]) expect(readFileSync(file).length).toBeLessThanOrEqual(4096)
    expect(gateway.events!.counters().webhook).toMatchObject({ dropped: 0, failedAttempts: 0 })
  })
})

describe('receivers that are down', () => {
  let gateway: TestGateway
  let hanging: Receiver
  let upstream: Awaited<ReturnType<typeof startUpstream>>
  let dir: string
  const clients: SshClient[] = []

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'porthole-events-e2e-'))
    hanging = await startReceiver(true)
    upstream = await startUpstream((req, res) => { res.setHeader('content-length', 2); res.end('ok') })
    const refused = `http://127.0.0.1:${await freePort()}/hook`
    gateway = await startTestGateway({
      flags: { eventsWebhook: [refused, hanging.url], eventsFile: join(dir, 'events.jsonl'), eventsTypes: 'http_request_complete.v0' },
      // A long timeout: the hanging receiver holds its first batch for the whole test.
      parts: { events: { webhook: { maxQueue: 20, batchSize: 5, batchMs: 10, timeoutMs: 600_000, backoffMs: 10, maxBackoffMs: 20, maxRetries: 2 }, closeWaitMs: 200 } },
    })
  })
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.kill('SIGKILL')))
    await gateway.stop() // already stopped by the test when it passed; close is idempotent
    await upstream.close()
    for (const res of hanging.pending) res.destroy()
    hanging.server.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('traffic is served while one webhook refuses connections and another never answers; the queue is bounded and drops are counted', async () => {
    const client = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`down:80:localhost:${upstream.port}`], command: 'http' })
    clients.push(client)
    await client.waitFor(/Forwarding\s+http:/)
    expect((await fetchVia(gateway, 'http://down.localhost/first')).status).toBe(200)
    // The hanging receiver has the first batch and has not answered it.
    await eventually(() => hanging.posts.length === 1)
    for (let i = 0; i < 60; i++) expect((await fetchVia(gateway, `http://down.localhost/r/${i}`)).status).toBe(200)
    // All 61 requests were answered while that POST is still open.
    expect(hanging.pending).toHaveLength(1)
    expect(hanging.posts).toHaveLength(1)

    const counters = await eventually(() => {
      const c = gateway.events!.counters()
      return c['webhook-1']!.dropped === 61 && c.file!.delivered === 61 ? c : null
    })
    // Refused: every batch tried 3 times (2 retries) and dropped; the queue never held more than 20.
    expect(counters['webhook-1']).toMatchObject({ delivered: 0, dropped: 61, queued: 0 })
    expect(counters['webhook-1']!.failedAttempts).toBeGreaterThanOrEqual(3)
    // Hanging: 20 held (the first event in flight, 19 waiting), the other 41 dropped.
    expect(counters['webhook-2']).toEqual({ delivered: 0, dropped: 41, failedAttempts: 0, queued: 20 })
    // The type filter: only http_request_complete.v0, though sessions started (and the file got them all).
    const types = new Set(readFileSync(join(dir, 'events.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as PortholeEvent).event_type))
    expect([...types]).toEqual(['http_request_complete.v0'])

    // The gateway's own /metrics has them (its registry took the sinks' counters at start).
    const scraped = await (await fetch(`http://127.0.0.1:${gateway.apiPort}/metrics`)).text()
    expect(scraped).toContain('porthole_events_dropped_total{sink="webhook-2"} 41')
    expect(scraped).toContain('porthole_events_queue_length{sink="webhook-2"} 20')
    const registry = new Registry()
    gateway.events!.register(registry)
    const text = await registry.metrics()
    expect(text).toContain('porthole_events_dropped_total{sink="webhook-1"} 61')
    expect(text).toContain('porthole_events_dropped_total{sink="webhook-2"} 41')
    expect(text).toContain('porthole_events_queue_length{sink="webhook-2"} 20')
    expect(text).toContain('porthole_events_delivered_total{sink="file"} 61')

    // Close does not wait for the receiver that never answers: what it held is counted as dropped.
    await client.kill('SIGKILL')
    await gateway.stop()
    expect(gateway.events!.counters()['webhook-2']).toMatchObject({ dropped: 61, queued: 0 })
  })
})
