// Builds one CapturedRequest per HTTP request through an endpoint, for the inspector, without slowing the
// proxied stream: the request body is tapped with a prepended 'data' listener (it never changes the stream's
// flow: Readable.prependListener does not resume it, and read() emits 'data' whichever way undici consumes
// it), the response by the edge's one tap of the public response's write/end (edge/response-watch.ts). Each tap copies at most
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
import type { CapturedResponsePart, InspectStore } from './record.js'
import { EdgeRecord, headerBytes, headerLists, LazyPublic, LazyRequestPart, LazyResponsePart, newRecordId, parseHead, rawHeaderLists, snapshot, statusText } from './edge-record.js'

export { HEADER_VALUE_CAP, headerLists, newRecordId, RECORD_SIZE } from './edge-record.js'

/** Body bytes kept per direction. */
export const BODY_CAP = 64 * 1024
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

/** The body of a record with none (zero bytes: nothing can be written into it). */
const EMPTY = Buffer.alloc(0)

/** The first `cap` bytes of a stream of chunks, and how many went by in all. */
export class BodyTap {
  readonly #cap: number
  /** The first chunk kept, then the others (most bodies are one chunk: no list is made for them). */
  #first: Buffer | null = null
  #rest: Buffer[] | null = null
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
    const kept = Buffer.from(bytes.length <= room ? bytes : bytes.subarray(0, room))
    if (this.#first === null) this.#first = kept
    else (this.#rest ??= []).push(kept)
    this.#kept += kept.length
  }

  body (): Buffer {
    if (this.#first === null) return EMPTY
    if (this.#rest !== null) {
      this.#first = Buffer.concat([this.#first, ...this.#rest])
      this.#rest = null
    }
    return this.#first
  }

  get truncated (): boolean { return this.size > this.#kept }
}

function remoteAddr (ip: string, port: number | undefined): string {
  return `${ip.includes(':') ? `[${ip}]` : ip}:${port ?? 0}`
}

/** What the request looked like to the upstream: set by the edge once its policy has run. */
export interface UpstreamView {
  readonly path: string
  readonly headers: HeaderMap
}


/** What an HTTP request's capture holds on either path: the body taps, the request as it went upstream, its store. */
abstract class HttpCapture {
  readonly #store: InspectStore
  readonly #endpoint: Endpoint
  readonly #start: number
  readonly #started: number
  readonly requestBody: BodyTap
  /** The response body as the edge writes it (edge/response-watch.ts taps the response once for everyone). */
  readonly responseBody: BodyTap
  readonly #replayOf: string | undefined
  #view: UpstreamView | null = null
  /** Read now: once the response closes, the socket may have gone. */
  readonly #remoteAddr: string
  #publicUri = ''
  #public: HeaderMap | null = null

  /** `start` (epoch ms) and `started` (performance.now()): when the request came, if the caller has it already. */
  constructor (options: InspectOptions, endpoint: Endpoint, remoteAddress: string, remotePort: number | undefined, replayOf: string | undefined, start = Date.now(), started = performance.now()) {
    this.#store = options.store
    this.#endpoint = endpoint
    this.#start = start
    this.#started = started
    this.#replayOf = replayOf
    this.#remoteAddr = remoteAddr(remoteAddress, remotePort)
    const cap = options.bodyCap ?? BODY_CAP
    this.requestBody = new BodyTap(cap)
    this.responseBody = new BodyTap(cap)
  }

  /**
   * The request as it goes upstream (path after rewrites, headers after the policy's changes): `view` is the
   * policy's context, read when the response closes. Called before the policy runs, so the request as the
   * public sent it is copied now (a shallow copy; its lists are made when someone reads them). `final`: nothing
   * changes the view's headers after this (no policy runs: the fast path), so the record shares them.
   */
  upstream (view: UpstreamView, final = false): void {
    this.#view = view
    this.#public = final ? view.headers : snapshot(view.headers)
    this.#publicUri = view.path
  }

  /**
   * Stores the record, once the response is over. Header lists are made only when read (the inspector, the admin
   * API, a replay): most records are evicted unread, and a busy endpoint should not pay for them per request.
   * `headBytes`: what the response head costs the store.
   */
  protected save (method: string, proto: string, url: string, raw: readonly string[], response: LazyResponsePart | null, headBytes: number, errorCode: string | undefined, durationMs = performance.now() - this.#started): void {
    const view = this.#view
    const body = this.requestBody
    const requestHeaders = view?.headers ?? null
    const request = new LazyRequestPart(method, proto, view?.path ?? url, requestHeaders, raw, body.body(), body.size, body.truncated)
    const requestHeaderBytes = requestHeaders !== null ? headerBytes(requestHeaders) : 0
    let size = 512 + request.uri.length + request.body.length + requestHeaderBytes
    if (response !== null) size += response.body.length + headBytes
    const publicHeaders = this.#public
    // Shared with the request's (upstream(view, true)): counted twice, as two copies would be, so the size does
    // not depend on which path captured it.
    if (publicHeaders !== null) size += this.#publicUri.length + (publicHeaders === requestHeaders ? requestHeaderBytes : headerBytes(publicHeaders))
    const endpoint = this.#endpoint
    this.#store.add(new EdgeRecord(
      newRecordId(), endpoint.owner.id, endpoint.id, endpoint.host, this.#remoteAddr, this.#start, durationMs,
      request, response, errorCode, this.#replayOf, publicHeaders === null ? undefined : new LazyPublic(this.#publicUri, publicHeaders), size,
    ))
  }
}

/** One HTTP request's capture (HTTP/1.1 or HTTP/2 compat objects); added to the store when the response closes. */
export class RequestCapture extends HttpCapture {
  readonly #req: IncomingMessage
  readonly #res: ServerResponse

  constructor (options: InspectOptions, endpoint: Endpoint, req: IncomingMessage, res: ServerResponse, replayOf: string | undefined) {
    super(options, endpoint, req.socket?.remoteAddress ?? '', req.socket?.remotePort, replayOf)
    this.#req = req
    this.#res = res
    const requestBody = this.requestBody
    req.prependListener('data', (chunk: Buffer) => requestBody.add(chunk))
  }

  /** Builds the record, once the response is over (edge/response-watch.ts calls it on 'close'). */
  finish (): void {
    const req = this.#req
    const res = this.#res
    const h2 = req.httpVersionMajor === 2
    let response: LazyResponsePart | null = null
    let headBytes = 0
    if (res.headersSent) {
      const statusCode = res.statusCode
      const sent = (res as unknown as { _header?: unknown })._header
      // HTTP/1.1: the head exactly as written (Date, Connection, Transfer-Encoding included); HTTP/2: what was set.
      const head = !h2 && typeof sent === 'string' ? sent : null
      const reason = h2 ? STATUS_CODES[statusCode] : res.statusMessage || STATUS_CODES[statusCode]
      const tap = this.responseBody
      response = new LazyResponsePart(statusCode, `${statusCode} ${reason ?? ''}`.trimEnd(), h2 ? 'HTTP/2.0' : 'HTTP/1.1', head, head === null ? res.getHeaders() : null, tap.body(), tap.size, tap.truncated)
      headBytes = head !== null ? head.length * 2 : 1024
    }
    // The edge's fail() leaves its code on the response (every answer the edge makes itself for an endpoint).
    this.save(req.method ?? 'GET', `HTTP/${req.httpVersion}`, req.url ?? '/', req.rawHeaders, response, headBytes, (res as { errorCode?: string }).errorCode)
  }
}

/**
 * One request on the HTTP/1.1 fast path (edge/fast-h1.ts): the same record as RequestCapture's, from the parsed
 * head, the body bytes the fast path relays (it adds them to the taps) and the response head it wrote.
 */
export class RelayCapture extends HttpCapture {
  readonly #method: string
  readonly #url: string
  readonly #raw: readonly string[]

  constructor (options: InspectOptions, endpoint: Endpoint, method: string, url: string, raw: readonly string[], remoteAddress: string, remotePort: number, start: number, started: number) {
    super(options, endpoint, remoteAddress, remotePort, undefined, start, started) // a replay (porthole-replay) never takes the fast path
    this.#method = method
    this.#url = url
    this.#raw = raw
  }

  /** `head`: the response head as written (status line to blank line); null when none went out. */
  finish (head: string | null, statusCode: number, errorCode: string | undefined, durationMs: number): void {
    const tap = this.responseBody
    const response = head === null
      ? null
      : new LazyResponsePart(statusCode, statusText(statusCode), 'HTTP/1.1', head, null, tap.body(), tap.size, tap.truncated)
    this.save(this.#method, 'HTTP/1.1', this.#url, this.#raw, response, head === null ? 0 : head.length * 2, errorCode, durationMs)
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
