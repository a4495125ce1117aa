// Builds one CapturedRequest per HTTP request through an endpoint, for the inspector, without slowing the
// proxied stream: the request body is tapped with a prepended 'data' listener (it never changes the stream's
// flow: Readable.prependListener does not resume it, and read() emits 'data' whichever way undici consumes
// it), the response by wrapping the public response's write/end on that one object. Each tap copies at most
// the capture cap and afterwards only counts bytes, so a 20 MB upload costs 64 KiB and a counter. The edge
// creates nothing of this when capture is off (the gateway's --inspect=false, or the endpoint's).
//
// Caps (README, "Inspecting requests"): 64 KiB of body per direction (ngrok's cloud keeps 10 KB), header
// values cut at 4 KiB (ngrok's: 1 KB). Upgrades (WebSocket) keep the handshake only.
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { randomBytes, timingSafeEqual } from 'node:crypto'
import type { Endpoint } from '../core/endpoint.js'
import type { HeaderMap } from '../policy/compiled.js'
import type { CapturedRequest, CapturedRequestPart, CapturedResponsePart, InspectStore } from './record.js'

/** Body bytes kept per direction. */
export const BODY_CAP = 64 * 1024
/** Characters kept of one header value. */
export const HEADER_VALUE_CAP = 4 * 1024
/** A response head larger than this (on a raw upgrade socket) is not parsed; the record has no response. */
const MAX_RAW_HEAD = 64 * 1024
/**
 * Marks a request the gateway's own replay sent: `<secret> <owner id> <record id>`. The edge strips it from
 * every request before anything else sees it, and honours it only with this process's secret.
 */
export const REPLAY_HEADER = 'porthole-replay'

export interface InspectOptions {
  readonly store: InspectStore
  /** The per-process secret of the replay mark (createReplaySecret()). */
  readonly replaySecret: string
  /** Body bytes kept per direction (default BODY_CAP). */
  readonly bodyCap?: number
}

export function createReplaySecret (): string {
  return randomBytes(32).toString('hex')
}

let lastMs = 0
let lastMsText = ''
let sequence = 0
/** Tells this process's ids from another run's (ids are per process; a restart starts a new store). */
const RUN = randomBytes(3).toString('hex')
/** 'req_' + milliseconds + a sequence within the millisecond + this run's tag: later ids sort after earlier ones. */
export function newRecordId (): string {
  const now = Date.now()
  if (now <= lastMs) sequence++ // the same millisecond, or a clock that stepped back: keep counting
  else {
    lastMs = now
    lastMsText = now.toString(36).padStart(9, '0')
    sequence = 0
  }
  return `req_${lastMsText}${sequence < 36 ? `000${sequence.toString(36)}` : sequence.toString(36).padStart(4, '0')}${RUN}`
}

/**
 * What a record costs in the store, as the edge knows it cheaply (body bytes and header text), under a symbol
 * the store reads instead of walking the record (its header lists are built only when someone reads them).
 */
export const RECORD_SIZE = Symbol('porthole.inspect.recordSize')

/** A shallow copy of a header map whose lists are copies too: what the policy does to the original stays there. */
function snapshot (headers: HeaderMap): HeaderMap {
  const copy: HeaderMap = {}
  for (const name in headers) {
    const value = headers[name]
    copy[name] = Array.isArray(value) ? value.slice() : value
  }
  return copy
}

function headerBytes (headers: HeaderMap): number {
  let size = 0
  for (const name in headers) {
    const value = headers[name]
    if (typeof value === 'string') size += name.length + value.length + 32
    else if (value !== undefined) for (const v of value) size += name.length + v.length + 32
  }
  return size
}

/** What the mark says, when it carries this process's secret: the owner it was sent for and the record replayed. */
export function readReplayMark (value: string | string[] | undefined, secret: string): { ownerId: string, id: string } | undefined {
  if (typeof value !== 'string') return undefined
  const [given, owner, id] = value.split(' ')
  if (given === undefined || owner === undefined || id === undefined) return undefined
  const a = Buffer.from(given)
  const b = Buffer.from(secret)
  if (a.length !== b.length || !timingSafeEqual(a, b)) return undefined
  return { ownerId: decodeURIComponent(owner), id }
}

export function replayMark (secret: string, ownerId: string, id: string): string {
  return `${secret} ${encodeURIComponent(ownerId)} ${id}`
}

/** The first `cap` bytes of a stream of chunks, and how many went by in all. */
export class BodyTap {
  readonly #cap: number
  #chunks: Buffer[] = []
  #kept = 0
  size = 0

  constructor (cap: number) {
    this.#cap = cap
  }

  add (chunk: Buffer | Uint8Array | string, encoding?: BufferEncoding): void {
    if (this.#kept >= this.#cap) {
      this.size += typeof chunk === 'string' ? Buffer.byteLength(chunk, encoding) : chunk.length
      return
    }
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk
    this.size += bytes.length
    const room = this.#cap - this.#kept
    // A copy: the caller's buffer may be reused (undici's, a pooled allocation) after this returns.
    const kept = Buffer.from(bytes.subarray(0, room))
    this.#chunks.push(kept)
    this.#kept += kept.length
  }

  body (): Buffer {
    if (this.#chunks.length !== 1) this.#chunks = [Buffer.concat(this.#chunks)]
    return this.#chunks[0]!
  }

  get truncated (): boolean { return this.size > this.#kept }
}

function capValue (value: string): string {
  return value.length > HEADER_VALUE_CAP ? value.slice(0, HEADER_VALUE_CAP) : value
}

/** HeaderMap (or getHeaders()) to the record's shape: every value a list, each cut at HEADER_VALUE_CAP. */
export function headerLists (headers: Record<string, string | string[] | number | undefined>): Record<string, string[]> {
  const out: Record<string, string[]> = {}
  for (const name in headers) {
    const value = headers[name]
    if (value === undefined) continue
    out[name] = Array.isArray(value) ? value.map(capValue) : [capValue(String(value))]
  }
  return out
}

function rawHeaderLists (raw: readonly string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {}
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!
    // The replay mark carries the process's secret: never shown (the policy and the upstream never see it either).
    if (name.charCodeAt(0) === 58 /* ':' */ || name.toLowerCase() === REPLAY_HEADER) continue
    ;(out[name] ??= []).push(capValue(raw[i + 1]!))
  }
  return out
}

/** The header lines of a serialized HTTP/1.1 head (its first line skipped). */
function parseHeaderLines (head: string): Record<string, string[]> {
  const headers: Record<string, string[]> = {}
  let at = head.indexOf('\r\n')
  while (at !== -1) {
    const start = at + 2
    const end = head.indexOf('\r\n', start)
    const line = head.slice(start, end === -1 ? undefined : end)
    at = end
    const colon = line.indexOf(':')
    if (colon <= 0) continue
    ;(headers[line.slice(0, colon)] ??= []).push(capValue(line.slice(colon + 1).trim()))
  }
  return headers
}

/** A serialized HTTP/1.1 response head: status line and header lines. */
function parseHead (head: string): { statusCode: number, status: string, headers: Record<string, string[]> } | undefined {
  const match = /^HTTP\/\d\.\d (\d{3})(?: ([^\r\n]*))?/.exec(head)
  if (match === null) return undefined
  const statusCode = Number(match[1])
  return { statusCode, status: `${statusCode} ${match[2] ?? STATUS_CODES[statusCode] ?? ''}`.trimEnd(), headers: parseHeaderLines(head) }
}

function remoteAddr (ip: string, port: number | undefined): string {
  return `${ip.includes(':') ? `[${ip}]` : ip}:${port ?? 0}`
}

/** What the request looked like to the upstream: set by the edge once its policy has run. */
export interface UpstreamView {
  readonly path: string
  readonly headers: HeaderMap
}

type Write = (chunk: unknown, encoding?: unknown, callback?: unknown) => boolean
type End = (chunk?: unknown, encoding?: unknown, callback?: unknown) => unknown

/** One HTTP request's capture (HTTP/1.1 or HTTP/2 compat objects); added to the store when the response closes. */
export class RequestCapture {
  readonly #store: InspectStore
  readonly #endpoint: Endpoint
  readonly #req: IncomingMessage
  readonly #res: ServerResponse
  readonly #start = Date.now()
  readonly #started = performance.now()
  readonly #requestBody: BodyTap
  readonly #responseBody: BodyTap
  readonly #replayOf: string | undefined
  #view: UpstreamView | null = null
  /** Read now: once the response closes, the socket may have gone. */
  readonly #remoteAddr: string
  errorCode: string | undefined

  constructor (options: InspectOptions, endpoint: Endpoint, req: IncomingMessage, res: ServerResponse, replayOf: string | undefined) {
    this.#store = options.store
    this.#endpoint = endpoint
    this.#req = req
    this.#res = res
    this.#replayOf = replayOf
    this.#remoteAddr = remoteAddr(req.socket?.remoteAddress ?? '', req.socket?.remotePort)
    const cap = options.bodyCap ?? BODY_CAP
    this.#requestBody = new BodyTap(cap)
    this.#responseBody = new BodyTap(cap)
    const requestBody = this.#requestBody
    req.prependListener('data', (chunk: Buffer) => requestBody.add(chunk))
    const responseBody = this.#responseBody
    const write = res.write as unknown as Write
    const end = res.end as unknown as End
    ;(res as unknown as { write: Write }).write = function (this: ServerResponse, chunk, encoding, callback) {
      if (chunk !== undefined && chunk !== null && typeof chunk !== 'function') responseBody.add(chunk as Buffer | string, typeof encoding === 'string' ? encoding as BufferEncoding : undefined)
      return write.call(this, chunk, encoding, callback)
    }
    ;(res as unknown as { end: End }).end = function (this: ServerResponse, chunk, encoding, callback) {
      if (chunk !== undefined && chunk !== null && typeof chunk !== 'function') responseBody.add(chunk as Buffer | string, typeof encoding === 'string' ? encoding as BufferEncoding : undefined)
      return end.call(this, chunk, encoding, callback)
    }
    res.once('close', () => this.#finish())
  }

  /**
   * The request as it goes upstream (path after rewrites, headers after the policy's changes): `view` is the
   * policy's context, read when the response closes. Called before the policy runs, so the request as the
   * public sent it is copied now (a shallow copy; its lists are made when someone reads them).
   */
  upstream (view: UpstreamView): void {
    this.#view = view
    this.#public = snapshot(view.headers)
    this.#publicUri = view.path
  }

  #publicUri = ''
  #public: HeaderMap | null = null

  /**
   * Builds the record. Header lists are made only when read (the inspector, the admin API, a replay): most
   * records are evicted unread, and a busy endpoint should not pay for them per request.
   */
  #finish (): void {
    const req = this.#req
    const res = this.#res
    const h2 = req.httpVersionMajor === 2
    const view = this.#view
    const body = this.#requestBody
    const requestHeaders = view?.headers ?? null
    const request = new LazyRequestPart(req.method ?? 'GET', `HTTP/${req.httpVersion}`, view?.path ?? req.url ?? '/', requestHeaders, req.rawHeaders, body.body(), body.size, body.truncated)
    let size = 512 + request.uri.length + request.body.length + (requestHeaders !== null ? headerBytes(requestHeaders) : 0)
    let response: LazyResponsePart | null = null
    if (res.headersSent) {
      const statusCode = res.statusCode
      const sent = (res as unknown as { _header?: unknown })._header
      // HTTP/1.1: the head exactly as written (Date, Connection, Transfer-Encoding included); HTTP/2: what was set.
      const head = !h2 && typeof sent === 'string' ? sent : null
      const reason = h2 ? STATUS_CODES[statusCode] : res.statusMessage || STATUS_CODES[statusCode]
      const tap = this.#responseBody
      response = new LazyResponsePart(statusCode, `${statusCode} ${reason ?? ''}`.trimEnd(), h2 ? 'HTTP/2.0' : 'HTTP/1.1', head, head === null ? res.getHeaders() : null, tap.body(), tap.size, tap.truncated)
      size += response.body.length + (head !== null ? head.length * 2 : 1024)
    }
    const publicHeaders = this.#public
    if (publicHeaders !== null) size += this.#publicUri.length + headerBytes(publicHeaders)
    // The edge's fail() leaves its code on the response (every answer the edge makes itself for an endpoint).
    const errorCode = this.errorCode ?? (res as { errorCode?: string }).errorCode
    const endpoint = this.#endpoint
    this.#store.add(new EdgeRecord(
      newRecordId(), endpoint.owner.id, endpoint.id, endpoint.host, this.#remoteAddr, this.#start, performance.now() - this.#started,
      request, response, errorCode, this.#replayOf, publicHeaders === null ? undefined : new LazyPublic(this.#publicUri, publicHeaders), size,
    ))
  }
}

/** The request part of an edge record: its header lists are made on first read. */
class LazyRequestPart implements CapturedRequestPart {
  readonly method: string
  readonly proto: string
  readonly uri: string
  readonly body: Buffer
  readonly bodySize: number
  readonly truncated: boolean
  #map: HeaderMap | null
  #raw: readonly string[] | null
  #lists: Record<string, string[]> | null = null

  constructor (method: string, proto: string, uri: string, map: HeaderMap | null, raw: readonly string[], body: Buffer, bodySize: number, truncated: boolean) {
    this.method = method
    this.proto = proto
    this.uri = uri
    this.#map = map
    this.#raw = map === null ? raw : null
    this.body = body
    this.bodySize = bodySize
    this.truncated = truncated
  }

  get headers (): Record<string, string[]> {
    if (this.#lists === null) {
      this.#lists = this.#map !== null ? headerLists(this.#map) : rawHeaderLists(this.#raw!)
      this.#map = this.#raw = null
    }
    return this.#lists
  }

  toJSON (): object { return { method: this.method, proto: this.proto, uri: this.uri, headers: this.headers, body: this.body, bodySize: this.bodySize, truncated: this.truncated } }
}

/** The response part of an edge record: HTTP/1.1 heads are parsed on first read. */
class LazyResponsePart implements CapturedResponsePart {
  readonly statusCode: number
  readonly status: string
  readonly proto: string
  readonly body: Buffer
  readonly bodySize: number
  readonly truncated: boolean
  #head: string | null
  #set: Record<string, string | string[] | number | undefined> | null
  #lists: Record<string, string[]> | null = null

  constructor (statusCode: number, status: string, proto: string, head: string | null, set: Record<string, string | string[] | number | undefined> | null, body: Buffer, bodySize: number, truncated: boolean) {
    this.statusCode = statusCode
    this.status = status
    this.proto = proto
    this.#head = head
    this.#set = set
    this.body = body
    this.bodySize = bodySize
    this.truncated = truncated
  }

  get headers (): Record<string, string[]> {
    if (this.#lists === null) {
      this.#lists = this.#head !== null ? parseHeaderLines(this.#head) : headerLists(this.#set!)
      this.#head = this.#set = null
    }
    return this.#lists
  }

  toJSON (): object { return { status: this.status, statusCode: this.statusCode, proto: this.proto, headers: this.headers, body: this.body, bodySize: this.bodySize, truncated: this.truncated } }
}

class LazyPublic {
  readonly uri: string
  #map: HeaderMap | null
  #lists: Record<string, string[]> | null = null

  constructor (uri: string, map: HeaderMap) {
    this.uri = uri
    this.#map = map
  }

  get headers (): Record<string, string[]> {
    if (this.#lists === null) {
      this.#lists = headerLists(this.#map!)
      this.#map = null
    }
    return this.#lists
  }

  toJSON (): object { return { uri: this.uri, headers: this.headers } }
}

/** A record the edge made: plain fields, and its size for the store (RECORD_SIZE). */
class EdgeRecord implements CapturedRequest {
  readonly id: string
  readonly ownerId: string
  readonly endpointId: string
  readonly tunnelName: string
  readonly remoteAddr: string
  readonly #startMs: number
  #start: string | null = null
  readonly durationMs: number
  readonly request: CapturedRequestPart
  readonly response: CapturedResponsePart | null
  // declared, not defined: absent unless set (as in a plain record), so no own property holds undefined
  declare readonly errorCode?: string
  declare readonly replayOf?: string
  declare readonly public?: CapturedRequest['public']
  readonly #size: number

  constructor (id: string, ownerId: string, endpointId: string, tunnelName: string, remoteAddr: string, start: number, durationMs: number,
    request: CapturedRequestPart, response: CapturedResponsePart | null, errorCode: string | undefined, replayOf: string | undefined,
    sent: CapturedRequest['public'] | undefined, size: number) {
    this.#startMs = start
    this.id = id
    this.ownerId = ownerId
    this.endpointId = endpointId
    this.tunnelName = tunnelName
    this.remoteAddr = remoteAddr
    this.durationMs = durationMs
    this.request = request
    this.response = response
    if (errorCode !== undefined) this.errorCode = errorCode
    if (replayOf !== undefined) this.replayOf = replayOf
    if (sent !== undefined) this.public = sent
    this.#size = size
  }

  /** ISO 8601, made on first read. */
  get start (): string { return (this.#start ??= new Date(this.#startMs).toISOString()) }

  get [RECORD_SIZE] (): number { return this.#size }

  toJSON (): object {
    return { ...this, start: this.start }
  }
}

/**
 * An upgrade request's capture: the handshake only. The response head is read from what the edge writes to the
 * raw socket; a 101 is recorded as soon as its head is written (the connection may then live for hours), any
 * other answer when the socket closes, with the start of its body.
 */
export class UpgradeCapture {
  readonly #store: InspectStore
  readonly #endpoint: Endpoint
  readonly #req: IncomingMessage
  readonly #socket: Socket
  readonly #start = new Date()
  readonly #started = performance.now()
  readonly #replayOf: string | undefined
  readonly #body: BodyTap
  readonly #write: Socket['write']
  readonly #end: Socket['end']
  #head: Buffer = Buffer.alloc(0)
  #parsed: ReturnType<typeof parseHead> | null = null
  #headDone = false
  #done = false
  #view: UpstreamView | null = null
  readonly #remoteAddr: string

  constructor (options: InspectOptions, endpoint: Endpoint, req: IncomingMessage, socket: Socket, replayOf: string | undefined) {
    this.#remoteAddr = remoteAddr(socket.remoteAddress ?? '', socket.remotePort)
    this.#store = options.store
    this.#endpoint = endpoint
    this.#req = req
    this.#socket = socket
    this.#replayOf = replayOf
    this.#body = new BodyTap(options.bodyCap ?? BODY_CAP)
    this.#write = socket.write
    this.#end = socket.end
    const self = this
    socket.write = function (this: Socket, chunk: unknown, ...rest: unknown[]) {
      self.#feed(chunk)
      return (self.#write as (...args: unknown[]) => boolean).call(this, chunk, ...rest)
    } as Socket['write']
    socket.end = function (this: Socket, chunk?: unknown, ...rest: unknown[]) {
      if (typeof chunk !== 'function') self.#feed(chunk)
      return (self.#end as (...args: unknown[]) => Socket).call(this, chunk, ...rest)
    } as Socket['end']
    socket.once('close', () => this.#finish())
  }

  upstream (view: UpstreamView): void {
    this.#view = view
  }

  #feed (chunk: unknown): void {
    if (this.#done || chunk === undefined || chunk === null) return
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk as Buffer
    if (this.#headDone) return void this.#body.add(bytes)
    const head = Buffer.concat([this.#head, bytes])
    const end = head.indexOf('\r\n\r\n')
    if (end === -1) {
      if (head.length > MAX_RAW_HEAD) this.#headDone = true // not a head we can read: no response recorded
      else this.#head = head
      return
    }
    this.#headDone = true
    this.#parsed = parseHead(head.subarray(0, end).toString('latin1'))
    this.#head = Buffer.alloc(0)
    if (this.#parsed?.statusCode === 101) return this.#finish() // the handshake is all we keep
    this.#body.add(head.subarray(end + 4))
  }

  #finish (): void {
    if (this.#done) return
    this.#done = true
    // Stop tapping: the instance's own write/end go, the prototype's serve from here on.
    delete (this.#socket as unknown as Record<string, unknown>).write
    delete (this.#socket as unknown as Record<string, unknown>).end
    const req = this.#req
    const parsed = this.#parsed
    const view = this.#view
    const response: CapturedResponsePart | null = parsed == null
      ? null
      : { status: parsed.status, statusCode: parsed.statusCode, proto: 'HTTP/1.1', headers: parsed.headers, body: this.#body.body(), bodySize: this.#body.size, truncated: this.#body.truncated }
    const errorCode = response?.headers['porthole-error-code']?.[0]
    this.#store.add({
      id: newRecordId(),
      ownerId: this.#endpoint.owner.id,
      endpointId: this.#endpoint.id,
      tunnelName: this.#endpoint.host,
      remoteAddr: this.#remoteAddr,
      start: this.#start.toISOString(),
      durationMs: performance.now() - this.#started,
      request: {
        method: req.method ?? 'GET',
        proto: `HTTP/${req.httpVersion}`,
        uri: view?.path ?? req.url ?? '/',
        headers: view !== null ? headerLists(view.headers) : rawHeaderLists(req.rawHeaders),
        body: Buffer.alloc(0),
        bodySize: 0,
        truncated: false,
      },
      response,
      ...(errorCode !== undefined ? { errorCode } : {}),
      ...(this.#replayOf !== undefined ? { replayOf: this.#replayOf } : {}),
    })
  }
}
