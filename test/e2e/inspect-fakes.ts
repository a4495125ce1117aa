// Stand-ins for the capture side's pieces (its store, edge capture and replay), so the inspector's tests check
// its API and page on exact records of their own: a small per-owner store, records made by the test, and a replay
// that sends a record again through the public edge (the real pipeline: inspector-live.test.ts).
import { request } from 'undici'
import type { Endpoint } from '../../src/core/endpoint.js'
import type { CapturedRequest, InspectStore, Replay } from '../../src/inspect/record.js'
import { startTestGateway, startUpstream, type TestGateway } from './harness.js'

export class FakeStore implements InspectStore {
  readonly #records: CapturedRequest[] = []
  readonly #listeners = new Set<{ ownerId: string, fn: (record: CapturedRequest) => void }>()

  add (record: CapturedRequest): void {
    this.#records.push(record)
    for (const l of this.#listeners) if (l.ownerId === record.ownerId) l.fn(record)
  }

  list (ownerId: string, options: { limit?: number, tunnelName?: string } = {}): CapturedRequest[] {
    return this.#records.filter((r) => r.ownerId === ownerId && (options.tunnelName === undefined || r.tunnelName === options.tunnelName))
      .reverse().slice(0, options.limit ?? 100)
  }

  get (ownerId: string, id: string): CapturedRequest | undefined {
    return this.#records.find((r) => r.ownerId === ownerId && r.id === id)
  }

  clear (ownerId: string): void {
    for (let i = this.#records.length - 1; i >= 0; i--) if (this.#records[i]!.ownerId === ownerId) this.#records.splice(i, 1)
  }

  subscribe (ownerId: string, fn: (record: CapturedRequest) => void): () => void {
    const entry = { ownerId, fn }
    this.#listeners.add(entry)
    return () => this.#listeners.delete(entry)
  }
}

let sequence = 0

export interface Exchange {
  method?: string
  uri?: string
  headers?: Record<string, string[]>
  body?: Buffer
  status?: number
  responseHeaders?: Record<string, string[]>
  responseBody?: Buffer
  replayOf?: string
  durationMs?: number
}

/** A record as the edge would make it for one exchange through `endpoint`. */
export function recordFor (endpoint: Endpoint, exchange: Exchange = {}): CapturedRequest {
  const body = exchange.body ?? Buffer.alloc(0)
  const responseBody = exchange.responseBody ?? Buffer.from('{"ok":true}')
  const status = exchange.status ?? 200
  return {
    id: `req_${String(Date.now()).padStart(14, '0')}${String(++sequence).padStart(6, '0')}`,
    ownerId: endpoint.owner.id,
    endpointId: endpoint.id,
    tunnelName: endpoint.host,
    remoteAddr: '127.0.0.1:50000',
    start: new Date().toISOString(),
    durationMs: exchange.durationMs ?? 12.5,
    request: {
      method: exchange.method ?? 'GET',
      proto: 'HTTP/1.1',
      uri: exchange.uri ?? '/',
      headers: { Host: [endpoint.host], 'User-Agent': ['test'], ...exchange.headers },
      body,
      bodySize: body.length,
      truncated: false,
    },
    response: {
      status: `${status} ${status === 200 ? 'OK' : 'Status'}`,
      statusCode: status,
      proto: 'HTTP/1.1',
      headers: { 'Content-Type': ['application/json'], ...exchange.responseHeaders },
      body: responseBody,
      bodySize: responseBody.length,
      truncated: false,
    },
    ...(exchange.replayOf ? { replayOf: exchange.replayOf } : {}),
  }
}

const HOP = new Set(['host', 'content-length', 'connection', 'transfer-encoding'])

/** A replay through the gateway's public HTTP port; records the result as a new record marked replayOf. */
export function edgeReplay (httpPort: number, store: InspectStore, endpointOf: (record: CapturedRequest) => Endpoint | undefined): Replay {
  return async (record, edits = {}) => {
    const endpoint = endpointOf(record)
    if (!endpoint) throw new Error(`endpoint ${record.tunnelName} is offline`)
    const method = edits.method ?? record.request.method
    const uri = edits.uri ?? record.request.uri
    const source = edits.headers ?? record.request.headers
    const headers: Record<string, string> = { host: record.tunnelName }
    for (const [name, values] of Object.entries(source)) if (!HOP.has(name.toLowerCase())) headers[name] = values.join(', ')
    const body = edits.body ?? record.request.body
    const response = await request(`http://127.0.0.1:${httpPort}${uri}`, { method: method as 'GET', headers, ...(body.length > 0 ? { body } : {}) })
    const responseBody = Buffer.from(await response.body.arrayBuffer())
    store.add(recordFor(endpoint, { method, uri, body, status: response.statusCode, responseBody, replayOf: record.id }))
  }
}


/** What reached the scene's upstream. */
export interface Seen { method: string, url: string, body: string }

export interface FakeInspectedScene {
  readonly gateway: TestGateway
  readonly upstream: Awaited<ReturnType<typeof startUpstream>>
  /** The store the inspector serves: tests add the records they want to see. */
  readonly store: FakeStore
  readonly seen: Seen[]
}

/**
 * A gateway whose inspector serves a FakeStore (replays go through the public edge to the record's endpoint), and
 * an upstream that records every request and answers `answer` as JSON: the inspector's tests without capture.
 */
export async function startFakeInspected (answer: unknown): Promise<FakeInspectedScene> {
  const store = new FakeStore()
  const seen: Seen[] = []
  const upstream = await startUpstream((req, res) => {
    let body = ''
    req.setEncoding('utf8').on('data', (t: string) => { body += t }).on('end', () => {
      seen.push({ method: req.method!, url: req.url!, body })
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify(answer))
    })
  })
  let gateway: TestGateway | undefined
  const endpointOf = (record: CapturedRequest): Endpoint | undefined => gateway?.registry.endpoints().find((e) => e.id === record.endpointId)
  gateway = await startTestGateway({ parts: { inspect: { store, replay: (record, edits) => edgeReplay(gateway!.httpPort, store, endpointOf)(record, edits) } } })
  return { gateway, upstream, store, seen }
}
