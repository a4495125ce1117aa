// The event sinks alone: the webhook's batching, backoff, bounded queue and close deadline on fake timers with an
// injected POST; the file sink's rotation on a real temporary directory; the shape builders from channel
// messages; the pipeline's type filter and its counters on a prom-client Registry.
import { channel } from 'node:diagnostics_channel'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { Registry } from 'prom-client'
import { afterEach, describe, expect, it, vi } from 'vitest'
import type { HttpRequestObserved, SessionObserved, TcpConnectionObserved } from '../../src/observe/channels.js'
import { startEvents } from '../../src/observe/event-sinks.js'
import { httpRequestEvent, sessionEvent, tcpConnectionEvent, type PortholeEvent } from '../../src/observe/event-shapes.js'
import { FileSink } from '../../src/observe/file-sink.js'
import { backoffDelay, signBody, WebhookSink, type WebhookSend } from '../../src/observe/webhook-sink.js'

const HTTP: HttpRequestObserved = {
  endpointId: 'ep_1', endpointHost: 'app.localhost', transport: 'ssh', account: null, scheme: 'https', httpVersion: '1.1',
  method: 'POST', host: 'app.localhost:8443', path: '/a/b?x=1', status: 201, errorCode: undefined, clientIp: '::1', clientPort: 5000,
  startMs: Date.parse('2026-01-01T00:00:00.000Z'), durationMs: 12.5, requestBytes: 4, responseBytes: 2,
}
const TCP: TcpConnectionObserved = {
  endpointId: 'ep_2', endpointHost: 'tcp:20001', transport: 'ngrok', account: 'acme', proto: 'tcp', clientIp: '127.0.0.1', clientPort: 4000,
  serverPort: 20001, startMs: Date.parse('2026-01-01T00:00:00.000Z'), durationMs: 1500, bytesIn: 10, bytesOut: 20,
}
const SESSION: SessionObserved = {
  event: 'stop',
  reason: 'killed',
  session: {
    id: 'ses_1', clientType: 'ngrok', account: 'acme', credential: { kind: 'token', id: 'tok_1' }, fingerprint: null, clientVersion: 'ngrok-go/1.0',
    remoteAddr: '10.0.0.1', remotePort: 50000, startedAt: '2026-01-01T00:00:00.000Z', bytesIn: 0, bytesOut: 0, openStreams: 0, endpoints: [],
  },
}

const silent = pino({ level: 'silent' })
const event = (n: number): PortholeEvent => ({ ...httpRequestEvent(HTTP), event_id: `ev_${n}` })

describe('event shapes', () => {
  it('http_request_complete.v0 from the edge: ngrok field names, the whole URL, no headers', () => {
    const e = httpRequestEvent(HTTP)
    expect(e.event_id).toMatch(/^ev_[0-9a-f]{32}$/)
    expect(e).toMatchObject({
      event_type: 'http_request_complete.v0',
      event_timestamp: '2026-01-01T00:00:00.012Z',
      object: {
        conn: { client_ip: '::1', client_port: 5000, server_name: 'app.localhost', start_ts: '2026-01-01T00:00:00.000Z' },
        endpoint: { id: 'ep_1', host: 'app.localhost' },
        http: {
          request: { method: 'POST', proto: 'HTTP/1.1', url: { scheme: 'https', host: 'app.localhost:8443', path: '/a/b', query: 'x=1', raw: 'https://app.localhost:8443/a/b?x=1' }, body_length: 4 },
          response: { status_code: 201, body_length: 2 },
          duration_ms: 12.5,
        },
        traffic_policy: { error_code: null },
      },
    })
    expect(e.object.http.request.headers).toBeUndefined()
    expect(httpRequestEvent({ ...HTTP, status: 0, errorCode: 'PH_3002' }).object).toMatchObject({ http: { response: null }, traffic_policy: { error_code: 'PH_3002' } })
  })

  it('tcp_connection_closed.v0: conn.* with bytes and both timestamps', () => {
    expect(tcpConnectionEvent(TCP)).toMatchObject({
      event_type: 'tcp_connection_closed.v0',
      event_timestamp: '2026-01-01T00:00:01.500Z',
      object: {
        conn: { client_ip: '127.0.0.1', client_port: 4000, server_name: 'tcp:20001', server_port: 20001, start_ts: '2026-01-01T00:00:00.000Z', end_ts: '2026-01-01T00:00:01.500Z', bytes_in: 10, bytes_out: 20 },
        endpoint: { id: 'ep_2', host: 'tcp:20001', proto: 'tcp' },
      },
    })
  })

  it('agent_session_start.v0 / agent_session_stop.v0: ngrok transport names, the stop reason as error', () => {
    const stop = sessionEvent(SESSION, Date.parse('2026-01-01T01:00:00.000Z'))
    expect(stop).toMatchObject({
      event_type: 'agent_session_stop.v0',
      event_timestamp: '2026-01-01T01:00:00.000Z',
      object: { session: { id: 'ses_1', uri: '/api/sessions/ses_1' }, agent_ip: '10.0.0.1', user_agent: 'ngrok-go/1.0', transport: 'muxado', started_at: '2026-01-01T00:00:00.000Z', stopped_at: '2026-01-01T01:00:00.000Z', error: 'killed', account: 'acme' },
    })
    const start = sessionEvent({ event: 'start', session: { ...SESSION.session, clientType: 'ssh' } })
    expect(start).toMatchObject({ event_type: 'agent_session_start.v0', event_timestamp: '2026-01-01T00:00:00.000Z', object: { transport: 'ssh', stopped_at: null, error: '' } })
  })
})

describe('webhook sink', () => {
  afterEach(() => { vi.useRealTimers() })

  it('batches by size and by time, signs the body', async () => {
    vi.useFakeTimers()
    const posts: { body: string, headers: Record<string, string> }[] = []
    const send: WebhookSend = async (body, headers) => { posts.push({ body, headers }); return 200 }
    const sink = new WebhookSink({ name: 'webhook', url: 'http://x', secret: 's3cret', send, batchSize: 3, batchMs: 1000 })
    for (let i = 0; i < 4; i++) sink.accept(event(i))
    await vi.advanceTimersByTimeAsync(0)
    expect(posts).toHaveLength(1)
    expect(JSON.parse(posts[0]!.body).events.map((e: PortholeEvent) => e.event_id)).toEqual(['ev_0', 'ev_1', 'ev_2'])
    expect(posts[0]!.headers['x-porthole-signature']).toBe(signBody('s3cret', posts[0]!.body))
    expect(posts[0]!.headers['x-porthole-signature']).toMatch(/^sha256=[0-9a-f]{64}$/)
    await vi.advanceTimersByTimeAsync(999)
    expect(posts).toHaveLength(1)
    await vi.advanceTimersByTimeAsync(1)
    expect(posts).toHaveLength(2)
    expect(sink.counters()).toEqual({ delivered: 4, dropped: 0, failedAttempts: 0, queued: 0 })
  })

  it('retries 5xx and connection errors with exponential backoff, then drops the batch', async () => {
    vi.useFakeTimers()
    const at: number[] = []
    const send: WebhookSend = async () => { at.push(Date.now()); if (at.length % 2 === 0) throw new Error('ECONNREFUSED'); return 503 }
    const sink = new WebhookSink({ name: 'webhook', url: 'http://x', send, batchSize: 1, backoffMs: 100, maxBackoffMs: 350, maxRetries: 4 })
    sink.accept(event(1))
    await vi.advanceTimersByTimeAsync(10_000)
    const gaps = at.slice(1).map((t, i) => t - at[i]!)
    expect(gaps).toEqual([100, 200, 350, 350])
    expect(sink.counters()).toEqual({ delivered: 0, dropped: 1, failedAttempts: 5, queued: 0 })
    expect(backoffDelay({ backoffMs: 500, maxBackoffMs: 30_000 }, 10)).toBe(30_000)
  })

  it('a 4xx answer drops the batch without retrying; a retry that succeeds delivers it', async () => {
    vi.useFakeTimers()
    const statuses = [400, 502, 204]
    const send: WebhookSend = async () => statuses.shift()!
    const sink = new WebhookSink({ name: 'webhook', url: 'http://x', send, batchSize: 1, backoffMs: 10 })
    sink.accept(event(1))
    await vi.advanceTimersByTimeAsync(0)
    sink.accept(event(2))
    await vi.advanceTimersByTimeAsync(100)
    expect(sink.counters()).toEqual({ delivered: 1, dropped: 1, failedAttempts: 2, queued: 0 })
  })

  it('a receiver that never answers: the queue stays bounded, events beyond it are dropped, close does not wait past its deadline', async () => {
    vi.useFakeTimers()
    let attempts = 0
    const send: WebhookSend = (_body, _headers, signal) => new Promise((_resolve, reject) => {
      attempts++
      signal.addEventListener('abort', () => reject(signal.reason as Error))
    })
    const sink = new WebhookSink({ name: 'webhook', url: 'http://x', send, maxQueue: 50, batchSize: 10, timeoutMs: 1000, backoffMs: 1000, maxRetries: 100 })
    for (let i = 0; i < 200; i++) sink.accept(event(i))
    await vi.advanceTimersByTimeAsync(0)
    expect(sink.counters()).toEqual({ delivered: 0, dropped: 150, failedAttempts: 0, queued: 50 })
    await vi.advanceTimersByTimeAsync(2500)
    expect(attempts).toBe(2)
    expect(sink.counters().failedAttempts).toBe(1) // the second attempt (from 2000 ms) is still waiting
    const closed = sink.close(5000)
    await vi.advanceTimersByTimeAsync(7000)
    await closed
    expect(sink.counters()).toMatchObject({ delivered: 0, dropped: 200, queued: 0 })
    sink.accept(event(999))
    expect(sink.counters().dropped).toBe(201)
  })

  it('bounds the queue in bytes too: long URLs (a stranger chooses them) are dropped past the budget', async () => {
    vi.useFakeTimers()
    const send: WebhookSend = () => new Promise(() => {})
    const sink = new WebhookSink({ name: 'webhook', url: 'http://x', send, maxQueueBytes: 100_000, timeoutMs: 600_000 })
    const long = httpRequestEvent({ ...HTTP, path: `/${'a'.repeat(16_000)}` })
    for (let i = 0; i < 10; i++) sink.accept(long)
    // Each is about 32 KB of JSON (path and raw URL): three fit.
    expect(sink.counters()).toMatchObject({ dropped: 7, queued: 3 })
    sink.accept(event(1))
    expect(sink.counters()).toMatchObject({ dropped: 7, queued: 4 })
  })

  it('close flushes a partial batch at once', async () => {
    vi.useFakeTimers()
    const posts: string[] = []
    const sink = new WebhookSink({ name: 'webhook', url: 'http://x', send: async (body) => { posts.push(body); return 200 }, batchMs: 60_000 })
    sink.accept(event(1))
    const closed = sink.close(5000)
    await vi.advanceTimersByTimeAsync(0)
    await closed
    expect(posts).toHaveLength(1)
    expect(sink.counters()).toEqual({ delivered: 1, dropped: 0, failedAttempts: 0, queued: 0 })
  })
})

describe('file sink', () => {
  const dirs: string[] = []
  afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }) })

  it('appends JSON lines and rotates to PATH.1 at the size cap', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'porthole-events-'))
    dirs.push(dir)
    const path = join(dir, 'events.jsonl')
    const lineBytes = JSON.stringify(event(0)).length + 1
    const sink = new FileSink({ path, maxBytes: lineBytes * 3 + 10 })
    for (let i = 0; i < 8; i++) sink.accept(event(i))
    await sink.close(5000)
    const ids = (file: string): string[] => readFileSync(file, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as PortholeEvent).event_id)
    // 0-2 went to the first file, 3-5 to the second (now .1), 6-7 are current; the first file is gone.
    expect(ids(`${path}.1`)).toEqual(['ev_3', 'ev_4', 'ev_5'])
    expect(ids(path)).toEqual(['ev_6', 'ev_7'])
    expect(sink.counters()).toEqual({ delivered: 8, dropped: 0, failedAttempts: 0, queued: 0 })
  })

  it('a write error is counted, never thrown', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'porthole-events-'))
    dirs.push(dir)
    mkdirSync(join(dir, 'sub'))
    expect(() => new FileSink({ path: join(dir, 'missing-dir', 'events.jsonl') })).toThrow(expect.objectContaining({ code: 'PH_2002', message: expect.stringMatching(/--events-file .*missing-dir/) }))
    const warned: string[] = []
    const sink = new FileSink({ path: join(dir, 'sub', 'events.jsonl'), warn: (_f, m) => warned.push(m) })
    sink.accept(event(1))
    sink.accept(event(2))
    rmSync(join(dir, 'sub'), { recursive: true })
    await sink.close(5000)
    expect(sink.counters()).toMatchObject({ delivered: 0, dropped: 2, failedAttempts: 1 })
    expect(warned).toHaveLength(1)
    expect(existsSync(join(dir, 'sub'))).toBe(false)
  })
})

describe('event pipeline', () => {
  it('filters by type, feeds every sink from the channels, and shows its counters on a prom-client registry', async () => {
    const posts: string[] = []
    const pipeline = startEvents({
      log: silent,
      logEvents: true,
      webhooks: ['http://a', 'http://b'],
      types: ['tcp_connection_closed.v0', 'agent_session_stop.v0'],
      webhook: { send: async (body) => { posts.push(body); return 200 }, batchMs: 5 },
    })!
    channel('porthole:observe:http-request').publish(HTTP)
    channel('porthole:observe:tcp-connection').publish(TCP)
    channel('porthole:observe:session').publish({ ...SESSION, event: 'start' })
    channel('porthole:observe:session').publish(SESSION)
    await pipeline.close()
    expect(pipeline.counters()).toEqual({
      log: { delivered: 2, dropped: 0, failedAttempts: 0, queued: 0 },
      'webhook-1': { delivered: 2, dropped: 0, failedAttempts: 0, queued: 0 },
      'webhook-2': { delivered: 2, dropped: 0, failedAttempts: 0, queued: 0 },
    })
    expect(posts.flatMap((b) => (JSON.parse(b) as { events: PortholeEvent[] }).events.map((e) => e.event_type)).sort())
      .toEqual(['agent_session_stop.v0', 'agent_session_stop.v0', 'tcp_connection_closed.v0', 'tcp_connection_closed.v0'])
    // Closed: no longer subscribed.
    channel('porthole:observe:tcp-connection').publish(TCP)
    expect(pipeline.counters().log!.delivered).toBe(2)

    const registry = new Registry()
    pipeline.register(registry)
    pipeline.register(registry)
    const families = await registry.getMetricsAsJSON()
    const value = (name: string, sink: string): number | undefined => families.find((f) => f.name === name)?.values.find((m) => m.labels.sink === sink)?.value
    expect(value('porthole_events_delivered_total', 'webhook-1')).toBe(2)
    expect(value('porthole_events_dropped_total', 'log')).toBe(0)
    expect(value('porthole_events_queue_length', 'webhook-2')).toBe(0)
    expect(await registry.metrics()).toContain('porthole_events_delivered_total{sink="webhook-2"} 2')
  })

  it('no sink configured: nothing subscribes', () => {
    expect(startEvents({ log: silent })).toBeNull()
  })
})
