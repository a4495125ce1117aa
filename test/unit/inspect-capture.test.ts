// The pieces of request capture that need no gateway: ids, the replay mark, body and header caps, the ngrok
// shapes (agent API record, http_request_complete.v0 event), and what replay refuses before sending anything.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, expect, it } from 'vitest'
import { BodyTap, createReplaySecret, headerLists, HEADER_VALUE_CAP, newRecordId, readReplayMark, replayMark } from '../../src/inspect/capture.js'
import { requestCompleteEvent } from '../../src/inspect/event.js'
import { toNgrokRequest } from '../../src/inspect/ngrok-shape.js'
import type { CapturedRequest } from '../../src/inspect/record.js'
import { createReplay } from '../../src/inspect/replay.js'

function record (overrides: Partial<CapturedRequest> = {}): CapturedRequest {
  return {
    id: 'req_1',
    ownerId: 'owner:a',
    endpointId: 'ep_1',
    tunnelName: 'app.localhost',
    remoteAddr: '[::1]:5000',
    start: '2026-01-01T00:00:00.000Z',
    durationMs: 12.5,
    request: { method: 'POST', proto: 'HTTP/1.1', uri: '/a?b=1', headers: { host: ['app.localhost'], 'user-agent': ['curl/8'], 'x-forwarded-host': ['app.localhost:8080'], 'x-forwarded-proto': ['http'] }, body: Buffer.from([0, 1, 2, 255]), bodySize: 4, truncated: false },
    response: { status: '201 Created', statusCode: 201, proto: 'HTTP/1.1', headers: { 'content-type': ['text/plain'] }, body: Buffer.from('ok'), bodySize: 2, truncated: false },
    ...overrides,
  }
}

describe('capture pieces', () => {
  it('makes ids that sort in the order they were made', () => {
    const ids = Array.from({ length: 2000 }, () => newRecordId())
    expect([...ids].sort()).toEqual(ids)
    expect(new Set(ids).size).toBe(ids.length)
    expect(ids[0]).toMatch(/^req_[0-9a-z]+$/)
  })

  it('honours the replay mark only with this process\'s secret', () => {
    const secret = createReplaySecret()
    const mark = replayMark(secret, 'acct:team x', 'req_9')
    expect(readReplayMark(mark, secret)).toEqual({ ownerId: 'acct:team x', id: 'req_9' })
    expect(readReplayMark(replayMark(createReplaySecret(), 'acct:team x', 'req_9'), secret)).toBeUndefined()
    expect(readReplayMark(`${secret.slice(1)} a b`, secret)).toBeUndefined()
    expect(readReplayMark('garbage', secret)).toBeUndefined()
    expect(readReplayMark([mark, mark], secret)).toBeUndefined()
    expect(readReplayMark(undefined, secret)).toBeUndefined()
  })

  it('keeps the first cap bytes of a body and counts the rest; copies what it keeps', () => {
    const tap = new BodyTap(10)
    const chunk = Buffer.from('0123456')
    tap.add(chunk)
    chunk.fill(0x78) // the caller reuses its buffer
    tap.add('abcdef')
    tap.add(Buffer.alloc(100))
    expect(tap.body().toString()).toBe('0123456abc')
    expect(tap.size).toBe(113)
    expect(tap.truncated).toBe(true)
    const small = new BodyTap(10)
    small.add('hé', 'utf8')
    expect(small.body().toString()).toBe('hé')
    expect(small.truncated).toBe(false)
    expect(new BodyTap(10).body().length).toBe(0) // nothing written: an empty body
  })

  it('cuts header values at 4 KiB and makes every value a list', () => {
    const lists = headerLists({ a: 'x'.repeat(HEADER_VALUE_CAP + 10), b: ['1', '2'], c: 3, d: undefined })
    expect(lists.a![0]!.length).toBe(HEADER_VALUE_CAP)
    expect(lists).toMatchObject({ b: ['1', '2'], c: ['3'] })
    expect('d' in lists).toBe(false)
  })

  it('serializes a record in ngrok\'s agent API shape', () => {
    const shaped = toNgrokRequest(record())
    expect(shaped).toMatchObject({ id: 'req_1', uri: '/api/requests/http/req_1', tunnel_name: 'app.localhost', remote_addr: '[::1]:5000', start: '2026-01-01T00:00:00.000Z', duration: 12_500_000 })
    expect(shaped.request).toMatchObject({ method: 'POST', proto: 'HTTP/1.1', uri: '/a?b=1', headers: { host: ['app.localhost'] } })
    const raw = Buffer.from(shaped.request.raw, 'base64')
    expect(raw.subarray(0, raw.length - 4).toString()).toBe('POST /a?b=1 HTTP/1.1\r\nhost: app.localhost\r\nuser-agent: curl/8\r\nx-forwarded-host: app.localhost:8080\r\nx-forwarded-proto: http\r\n\r\n')
    expect([...raw.subarray(raw.length - 4)]).toEqual([0, 1, 2, 255])
    expect(shaped.response).toMatchObject({ status: '201 Created', status_code: 201, proto: 'HTTP/1.1' })
    expect(Buffer.from(shaped.response!.raw, 'base64').toString()).toBe('HTTP/1.1 201 Created\r\ncontent-type: text/plain\r\n\r\nok')
    expect(toNgrokRequest(record({ response: null, errorCode: 'PH_3002' }))).toMatchObject({ response: null, error_code: 'PH_3002' })
    expect(JSON.parse(JSON.stringify(shaped))).toEqual(shaped) // plain JSON, nothing lost on the wire
  })

  it('makes an http_request_complete.v0 event', () => {
    const event = requestCompleteEvent(record({ errorCode: 'PH_3101', replayOf: 'req_0' }))
    expect(event).toMatchObject({
      event_id: 'ev_1',
      event_type: 'http_request_complete.v0',
      event_timestamp: '2026-01-01T00:00:00.012Z',
      object: {
        conn: { client_ip: '::1', client_port: 5000, start_ts: '2026-01-01T00:00:00.000Z' },
        endpoint: { id: 'ep_1', host: 'app.localhost' },
        http: {
          request: { id: 'req_1', method: 'POST', url: { host: 'app.localhost:8080', path: '/a', query: 'b=1', raw: '/a?b=1' }, user_agent: 'curl/8', body_length: 4 },
          response: { status_code: 201, body_length: 2 },
          duration_ms: 12.5,
        },
        traffic_policy: { error_code: 'PH_3101' },
        replay_of: 'req_0',
      },
    })
  })
})

describe('replay', () => {
  async function server (handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ port: number, close: () => Promise<void>, seen: IncomingMessage[] }> {
    const seen: IncomingMessage[] = []
    const s = createServer((req, res) => { seen.push(req); handler(req, res) })
    await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))
    return { port: (s.address() as AddressInfo).port, seen, close: () => new Promise((resolve) => { s.closeAllConnections(); s.close(() => resolve()) }) }
  }

  it('sends the public request with the original Host, a fresh body length and the mark; drops what the edge sets', async () => {
    const bodies: Buffer[] = []
    const target = await server((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c)).on('end', () => { bodies.push(Buffer.concat(chunks)); res.end('done') })
    })
    try {
      const secret = createReplaySecret()
      const replay = createReplay({ httpPort: target.port, secret })
      const original = record({ public: { uri: '/before-rewrite', headers: { authorization: ['Basic x'], 'x-forwarded-for': ['1.2.3.4'], 'x-forwarded-host': ['app.localhost:8080'], 'content-length': ['4'] } } })
      await replay(original)
      const req = target.seen[0]!
      expect(req.url).toBe('/before-rewrite')
      expect(req.method).toBe('POST')
      expect(req.headers.host).toBe('app.localhost:8080')
      expect(req.headers.authorization).toBe('Basic x')
      expect(req.headers['x-forwarded-for']).toBeUndefined()
      expect(readReplayMark(req.headers['porthole-replay'], secret)).toEqual({ ownerId: 'owner:a', id: 'req_1' })
      expect([...bodies[0]!]).toEqual([0, 1, 2, 255])
      await replay(original, { method: 'PUT', uri: '/edited', headers: { 'x-new': ['1'] }, body: Buffer.from('new body') })
      expect(target.seen[1]).toMatchObject({ method: 'PUT', url: '/edited' })
      expect(target.seen[1]!.headers['x-new']).toBe('1')
      expect(target.seen[1]!.headers.authorization).toBeUndefined()
      expect(bodies[1]!.toString()).toBe('new body')
    } finally {
      await target.close()
    }
  })

  it('refuses a truncated body unedited, bad edits, too many at once; says when the listener is unreachable', async () => {
    const held: ServerResponse[] = []
    const target = await server((_req, res) => { held.push(res) })
    try {
      const replay = createReplay({ httpPort: target.port, secret: createReplaySecret(), maxInFlightPerOwner: 1 })
      const truncated = record({ request: { ...record().request, truncated: true, bodySize: 100_000 } })
      await expect(replay(truncated)).rejects.toMatchObject({ code: 'PH_3200' })
      await expect(replay(record(), { method: 'GE T' })).rejects.toMatchObject({ code: 'PH_3203' })
      await expect(replay(record(), { uri: 'http://elsewhere/' })).rejects.toMatchObject({ code: 'PH_3203' })
      await expect(replay(record(), { headers: { 'bad name': ['x'] } })).rejects.toMatchObject({ code: 'PH_3203' })
      await expect(replay(record(), { headers: { ok: ['a\r\nInjected: 1'] } })).rejects.toMatchObject({ code: 'PH_3203' })
      const arrived = (count: number): Promise<void> => new Promise((resolve) => { const check = (): void => { if (held.length >= count) resolve(); else setTimeout(check, 5) }; check() })
      const first = replay(record())
      await arrived(1)
      await expect(replay(record())).rejects.toMatchObject({ code: 'PH_3202' })
      const other = replay(record({ ownerId: 'someone else' })) // another owner has a budget of its own
      await arrived(2)
      for (const res of held) res.end()
      await first
      await other
      // Done: the owner may replay again.
      const again = replay(record())
      await arrived(3)
      held[2]!.end()
      await again
    } finally {
      for (const res of held) res.end()
      await target.close()
    }
    const closed = createReplay({ httpPort: target.port, secret: createReplaySecret() })
    await expect(closed(record())).rejects.toMatchObject({ code: 'PH_3204' })
  })
})
