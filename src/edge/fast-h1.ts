// The HTTP/1.1 fast path (--fast-h1, issue 13): a public connection, plain or over TLS once its handshake chose
// HTTP/1.1 (tls-edge.ts), whose requests need nothing of the edge but routing, forwarding and capture is relayed
// over a tunnel stream it holds while it goes to one endpoint, parsed
// both ways with node's own llhttp (llhttp.ts) instead of going through node's HTTP server and undici, which cost
// half of a keep-alive request. Between exchanges a stream goes back to a pool per endpoint (tunnel-pool.ts), for the
// next connection to that endpoint, or this one's next request there, as undici's pools keep their connections.
//
// It takes a request only when the usual path would do nothing more with it (HttpEdge.fastEndpoint decides for
// the endpoint: no policy or module, no Host rewrite, plain upstream): an HTTP/1.1 request in origin-form with one
// good Host, no Upgrade, CONNECT or Expect, no porthole-hop or porthole-replay. Anything else, and any head
// llhttp refuses, goes to node's HTTP server (over TLS, node's HTTPS server code) with the bytes already read, at
// the start of a request; from then on the connection is the server's. Over TLS, a host the connection was not
// made for (its SNI names another endpoint) goes there too, for its 421. What goes upstream is what the usual path sends: the
// same headers (headers.ts), the loop mark, the body re-framed; what comes back is the upstream's status and
// fields less those of its hop, and the body as it came (chunks re-framed, trailers kept but porthole-error-code).
// Captured records (RelayCapture) are the usual path's.
//
// One request at a time per connection: the socket is not read again until the response is over. A request sent
// before the last was answered (pipelining, which no browser does) ends the connection after that answer, and
// the client retries it (RFC 9112 9.3.2).
import { createServer, type Server as NetServer, type Socket } from 'node:net'
import type { TLSSocket } from 'node:tls'
import type { Server } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import { catalogue, isPortholeError, type ErrorCode } from '../core/errors.js'
import type { Endpoint } from '../core/endpoint.js'
import { addHop, connectionValue, headerLines, relayedResponseHead, upstreamRequestHeaders } from './headers.js'
import { rawError, sendRawError } from './error-response.js'
import { closeParser, HTTPParser, METHODS, newParser, type HeadersComplete, type HttpParser, type ParseError } from './llhttp.js'
import { dialWithRoom, idleLimitOf, TunnelPool, type Tunnel, type TunnelUser } from './tunnel-pool.js'
import { requestTarget, serverNameOf, type Scheme } from './request-target.js'
import { reportRequest } from './response-watch.js'
import { checkingIntervalMs, closeSoon } from '../net/listen.js'
import { RelayCapture, type InspectOptions } from '../inspect/capture.js'

export interface FastH1Options {
  /** Takes every plain-HTTP connection (or the rest of one) the fast path does not. */
  readonly server: Server
  /**
   * The endpoint a request for `host` may go to on the fast path, or undefined (the usual path takes it). Over
   * HTTPS, `servername` is the TLS connection's (SNI): the usual path answers a host it was not made for (421).
   */
  readonly fastEndpoint: (host: string, scheme: Scheme, servername: string | undefined) => Endpoint | undefined
  /** Closes an idle stream of `endpoint`'s agent session, whose stream cap refused one (HttpEdge.makeRoom). */
  readonly makeRoom: (endpoint: Endpoint) => Promise<void> | undefined
  /** The edge's loop mark (headers.ts). */
  readonly hop: string
  /** Whether ACME HTTP-01 challenges are answered (the usual path does that). */
  readonly acme: boolean
  /** Tunnel streams one endpoint may have open for the fast path; past it requests take the usual path (its pool). */
  readonly maxStreamsPerEndpoint: number
  readonly maxRequestHeaderSize: number
  readonly maxResponseHeaderSize: number
  readonly headerTimeoutMs: number
  readonly idleTimeoutMs: number
  readonly upstreamTimeoutMs: number
  /** Request capture for the inspector, as on the usual path; absent: nothing is captured. */
  readonly inspect?: InspectOptions
  readonly log: Logger
}

const ACME_PREFIX = '/.well-known/acme-challenge/'
/** node's server keeps at most this many header fields (the edge's maxHeadersCount); a longer head goes there. */
const MAX_HEADER_FIELDS = 200
/** The lengths of the request fields #begin looks at. */
const CHECKED_LENGTHS = new Set(['expect', 'porthole-hop', 'porthole-replay', 'transfer-encoding', 'content-length'].map((name) => name.length))
const CLOSE = /(?:^|,)\s*close\s*(?:,|$)/i
/** Methods a request of which may be sent again when a kept stream turned out closed (RFC 9110 9.2.2, without PUT and DELETE). */
const REPLAYABLE = new Set(['GET', 'HEAD', 'OPTIONS'])
/** A deadline's clock that starts at the next sweep (FastConnection.checkDeadlines stamps it). */
const SINCE_NEXT_SWEEP = -1

/** One request on the fast path, from its head to the end of its response. */
interface Exchange {
  readonly endpoint: Endpoint
  readonly method: string
  readonly path: string
  readonly authority: string
  /** The request body is re-framed as chunks (it came chunked). */
  readonly chunked: boolean
  readonly requestBytes: number
  readonly started: number
  readonly startMs: number
  requestDone: boolean
  /** The status sent to the client; 0 until a response head went out. */
  status: number
  responseChunked: boolean
  responseBytes: number
  /** End the public connection once this response is over. */
  closeAfter: boolean
  errorCode: ErrorCode | undefined
  /** The upstream deadline's clock: since the request was sent or the last response bytes came (SINCE_NEXT_SWEEP
   *  until the next sweep stamps it); 0 when not waiting. */
  waitingSince: number
  readonly capture: RelayCapture | null
  /** The response head as written, for the capture. */
  responseHead: string | null
  /** The head as sent, while it may be sent again on another stream (#resend); else null. */
  replay: string | null
  /** Some of the response came (a byte on the stream since the request went out). */
  heard: boolean
}

export class FastH1 {
  readonly options: FastH1Options
  readonly listener: NetServer
  /** Tunnel streams per endpoint, and those kept between exchanges. */
  readonly pool: TunnelPool
  readonly #connections = new Set<FastConnection>()
  readonly #sweeper: NodeJS.Timeout
  /** Requests taken so far (what tests look at to know which path served them). */
  relayed = 0
  #date = ''
  #dateAt = 0

  constructor (options: FastH1Options) {
    this.options = options
    const sweepIntervalMs = checkingIntervalMs(Math.min(options.headerTimeoutMs, options.idleTimeoutMs))
    this.pool = new TunnelPool(options.maxStreamsPerEndpoint, options.maxResponseHeaderSize, sweepIntervalMs)
    // noDelay as node's HTTP server sets it: each response leaves when written, not after the client's delayed ACK.
    this.listener = createServer({ noDelay: true }, (socket) => {
      this.#connections.add(new FastConnection(this, socket, 'http', undefined, (whole) => options.server.emit('connection', whole)))
    })
    this.#sweeper = setInterval(() => this.#sweep(), sweepIntervalMs).unref()
  }

  /** An IMF-fixdate for Date, made at most once a second (as node does). */
  get date (): string {
    const now = Date.now()
    if (now - this.#dateAt >= 1000) {
      this.#dateAt = now - (now % 1000)
      this.#date = new Date(this.#dateAt).toUTCString()
    }
    return this.#date
  }

  /**
   * The endpoint was unbound: its streams close now, as its pool does on the usual path (an exchange in flight
   * fails). Open streams would otherwise keep the agent's SSH connection from ending (ssh waits for its channels).
   */
  detach (endpoint: Endpoint): void {
    if (!this.pool.dropAll(endpoint)) return
    for (const connection of this.#connections) connection.detach(endpoint)
  }

  /**
   * An HTTPS connection whose handshake chose HTTP/1.1 (tls-edge.ts): relayed here as plain HTTP's are; what the
   * fast path does not take goes to `server` (node's HTTPS server code for the connection, given it whole).
   */
  acceptTls (socket: TLSSocket, server: (socket: TLSSocket) => void): void {
    this.#connections.add(new FastConnection(this, socket, 'https', serverNameOf(socket), server as (socket: Socket) => void))
  }

  forget (connection: FastConnection): void {
    this.#connections.delete(connection)
  }

  /** Header, idle and upstream deadlines, for every connection at once (as node checks its own). */
  #sweep (): void {
    const now = performance.now()
    for (const connection of this.#connections) connection.checkDeadlines(now)
    this.pool.sweep(now)
  }

  close (): void {
    clearInterval(this.#sweeper)
    this.pool.closeAll()
    this.listener.close()
    for (const connection of this.#connections) connection.destroy()
    this.#connections.clear()
  }
}

class FastConnection implements TunnelUser {
  readonly #front: FastH1
  readonly #socket: Socket
  readonly #parser: HttpParser
  readonly #clientIp: string
  readonly #clientPort: number
  /** 'https': a TLS connection (its plain-text side), made for `#servername` (its SNI). */
  readonly #scheme: Scheme
  readonly #servername: string | undefined
  /** Takes the connection for node's server: what the fast path does not take, from the start of a request. */
  readonly #server: (socket: Socket) => void
  /** The bytes since the current request began, while it began at the start of a chunk; else null. */
  #pending: Buffer[] | null = null
  /** No request in progress: the next byte begins one. */
  #between = true
  #completedInChunk = false
  /** When the current head began (performance.now()); 0 when no head is being read; SINCE_NEXT_SWEEP for a head
   *  that began since the last sweep (the sweep stamps it: a clock read per request saved, the deadline as coarse
   *  as node's own checks of it). */
  #headStartedAt: number
  /** Bytes went either way on the public socket since the last sweep (the idle timeout: socket.setTimeout's
   *  timer, refreshed on every read and write, cost 1% of a keep-alive request). */
  #busy = false
  /** The sweep that last found the socket busy (performance.now()). */
  #quietSince: number
  /** Between a request's first byte and the end of its head (kOnHeaders then carries the head, not trailers). */
  #inHead = false
  #headFields: string[] = []
  #headUrl = ''
  #exchange: Exchange | null = null
  /** The current request goes to node's server: decided in a parser callback, done once execute returns. */
  #handOff = false
  /** No more requests are read: the connection ends after the current response. */
  #closing = false
  #done = false

  /** The stream this connection relays over, with its response parser. */
  #tunnel: Tunnel | null = null
  /** The endpoint of #tunnel, or of the stream being opened. */
  #channelEndpoint: Endpoint | null = null
  /** What is written while the stream is being opened. */
  #queued: Array<string | Buffer> | null = null
  #responseFields: string[] = []
  #interim = false
  #channelBlocked = false
  /** The stream is between exchanges and may be parked (#dropChannel): its last response ended cleanly. */
  #channelReusable = false
  /** What a parser run writes toward the client, and toward the upstream: flushed once it returns (writeAll). */
  #toClient: Array<string | Buffer> = []
  #toUpstream: Array<string | Buffer> = []

  constructor (front: FastH1, socket: Socket, scheme: Scheme, servername: string | undefined, server: (socket: Socket) => void) {
    this.#front = front
    this.#socket = socket
    this.#scheme = scheme
    this.#servername = servername
    this.#server = server
    this.#clientIp = socket.remoteAddress ?? ''
    this.#clientPort = socket.remotePort ?? 0
    this.#headStartedAt = this.#quietSince = performance.now() // a new connection: its first head is due headerTimeout after it opened
    const parser = this.#parser = newParser('request', front.options.maxRequestHeaderSize)
    parser[HTTPParser.kOnMessageBegin] = this.#onMessageBegin
    parser[HTTPParser.kOnHeaders] = this.#onHeaders
    parser[HTTPParser.kOnHeadersComplete] = this.#onHeadersComplete
    parser[HTTPParser.kOnBody] = this.#onBody
    parser[HTTPParser.kOnMessageComplete] = this.#onMessageComplete
    socket.on('data', this.#onData)
    socket.on('drain', this.#onDrain)
    socket.on('error', noop)
    socket.on('close', this.#onClose)
  }

  #onData = (chunk: Buffer): void => {
    this.#busy = true
    if (this.#between) this.#pending = [chunk]
    else if (this.#pending !== null) this.#pending.push(chunk)
    this.#completedInChunk = false
    let result: number | ParseError
    try {
      result = this.#parser.execute(chunk)
    } catch (error) {
      return this.#crashed(error)
    }
    if (this.#toUpstream.length > 0) this.#flushUpstream()
    if (this.#handOff) return this.#giveToServer()
    if (result instanceof Error) return this.#badRequest(result)
    this.#updateReading()
  }

  #onMessageBegin = (): void => {
    if (this.#handOff) return
    // A request that began after another ended in the same chunk was pipelined: where it began is not known.
    if (this.#completedInChunk) this.#pending = null
    this.#between = false
    this.#inHead = true
    if (this.#headStartedAt === 0) this.#headStartedAt = SINCE_NEXT_SWEEP
  }

  #onHeaders = (fields: string[], url: string): void => {
    if (this.#handOff || this.#closing || !this.#inHead) return // a chunked body's trailers: not passed on
    for (const field of fields) this.#headFields.push(field)
    this.#headUrl += url
  }

  #onHeadersComplete: HeadersComplete = (major, minor, fields, method, url, _status, _message, upgrade, keepAlive) => {
    this.#headStartedAt = 0
    this.#inHead = false
    if (this.#handOff || this.#closing) return 0
    let raw = fields ?? []
    if (this.#headFields.length > 0) {
      raw = fields === undefined ? this.#headFields : [...this.#headFields, ...fields]
      this.#headFields = []
    }
    const target = this.#headUrl + (url ?? '')
    this.#headUrl = ''
    if (this.#exchange !== null) {
      // Pipelined: answered by no one; the client sends it again on a new connection.
      this.#exchange.closeAfter = true
      this.#closing = true
      return 0
    }
    // #begin makes the exchange current and sends its head; null: the usual path takes the request.
    if (this.#begin(major, minor, raw, METHODS[method] ?? '', target, upgrade, keepAlive) === null) {
      if (this.#pending !== null) this.#handOff = true
      else this.#closing = true
    }
    return 0
  }

  #onBody = (chunk: Buffer): void => {
    const exchange = this.#exchange
    if (this.#handOff || this.#closing || exchange === null || exchange.requestDone) return
    exchange.capture?.requestBody.add(chunk)
    if (exchange.chunked) this.#send(`${chunk.length.toString(16)}\r\n`)
    this.#send(chunk)
    if (exchange.chunked) this.#send('\r\n')
  }

  #onMessageComplete = (): void => {
    if (this.#handOff) return // the parser goes on through the chunk; node's server reads it again
    this.#between = true
    this.#completedInChunk = true
    this.#pending = null
    const exchange = this.#exchange
    if (this.#closing || exchange === null || exchange.requestDone) return
    if (exchange.chunked) this.#send('0\r\n\r\n') // request trailers are not passed on (nor on the usual path)
    exchange.requestDone = true
    exchange.waitingSince = SINCE_NEXT_SWEEP
  }

  /** The exchange for a request the fast path takes, its head sent upstream; null for one it does not. */
  #begin (major: number, minor: number, raw: string[], method: string, url: string, upgrade: boolean, keepAlive: boolean): Exchange | null {
    if (major !== 1 || minor !== 1 || upgrade || method === 'CONNECT' || !url.startsWith('/') || raw.length > 2 * MAX_HEADER_FIELDS) return null
    let chunked = false
    let length: string | undefined
    for (let i = 0; i < raw.length; i += 2) {
      const field = raw[i]!
      if (!CHECKED_LENGTHS.has(field.length)) continue // lower-cased (a new string) only when it could be one of these
      const name = field.toLowerCase()
      if (name === 'expect' || name === 'porthole-hop' || name === 'porthole-replay') return null
      if (name === 'transfer-encoding') chunked = true // llhttp (strict) took it only with chunked last, and no Content-Length
      else if (name === 'content-length') length = raw[i + 1]
    }
    const target = requestTarget({ method, url, rawHeaders: raw, httpVersionMajor: 1, headers: {} }, this.#scheme)
    if ('code' in target || target.host === '') return null
    const options = this.#front.options
    if (options.acme && target.path.startsWith(ACME_PREFIX)) return null
    const endpoint = options.fastEndpoint(target.host, this.#scheme, this.#servername)
    if (endpoint === undefined) return null
    if (this.#channelEndpoint !== endpoint) {
      // Another endpoint than the last request's (a proxy in front, with many names): the stream goes back to the
      // pool for the next connection to its endpoint, and one of this endpoint's is taken (or opened).
      if (this.#channelEndpoint !== null) this.#dropChannel(true)
      if (!this.#useEndpoint(endpoint)) return null
    }
    this.#channelReusable = false
    const headers = upstreamRequestHeaders({ rawHeaders: raw, headers: { connection: connectionValue(raw) } }, this.#clientIp, this.#scheme, target.authority)
    addHop(headers, options.hop)
    const head = `${method} ${target.path} HTTP/1.1\r\n${headerLines(headers)}${chunked ? 'transfer-encoding: chunked\r\n\r\n' : '\r\n'}`
    const started = performance.now()
    const startMs = Date.now()
    const capture = options.inspect !== undefined && endpoint.spec.inspect ? new RelayCapture(options.inspect, endpoint, method, url, raw, this.#clientIp, this.#clientPort, startMs, started) : null
    capture?.upstream({ path: target.path, headers }, true) // no policy: nothing changes these headers after
    const exchange: Exchange = {
      endpoint,
      method,
      path: target.path,
      authority: target.authority,
      chunked,
      requestBytes: chunked ? -1 : length === undefined ? 0 : Number(length),
      started,
      startMs,
      requestDone: false,
      status: 0,
      responseChunked: false,
      responseBytes: 0,
      closeAfter: !keepAlive,
      errorCode: undefined,
      waitingSince: 0,
      capture,
      responseHead: null,
      replay: !chunked && length === undefined && REPLAYABLE.has(method) ? head : null,
      heard: false,
    }
    this.#exchange = exchange
    this.#front.relayed++
    this.#send(head)
    return exchange
  }

  /** Makes a stream to `endpoint` this connection's: a parked one, or one to open (counted by the pool); false
   *  when the endpoint has as many as it may. */
  #useEndpoint (endpoint: Endpoint): boolean {
    const pool = this.#front.pool
    const parked = pool.unpark(endpoint)
    if (parked === undefined && !pool.take(endpoint)) return false
    this.#channelEndpoint = endpoint
    if (parked !== undefined) this.#attach(parked)
    return true
  }

  /** Toward the upstream, written when the parser run is over. */
  #send (chunk: string | Buffer): void {
    this.#toUpstream.push(chunk)
  }

  /** Writes what the parser run produced to the stream, or queues it while the stream is being opened (on first use). */
  #flushUpstream (): void {
    const pieces = this.#toUpstream
    this.#toUpstream = []
    if (this.#done) return
    const tunnel = this.#tunnel
    if (tunnel !== null) {
      if (!writeAll(tunnel.stream, pieces)) this.#channelBlocked = true
      return
    }
    if (this.#channelEndpoint === null) return // the exchange ended in the meantime
    if (this.#queued !== null) return void this.#queued.push(...pieces)
    this.#queued = pieces
    this.#dial(this.#channelEndpoint!)
  }

  /**
   * Opens a stream to `endpoint` (counted by the pool's take). An agent session refuses one past its
   * max-streams-per-session (PH_3002), and the streams the edge keeps idle for its endpoints count there: one of
   * them is closed to make room (HttpEdge.makeRoom), and the dial tried once more when it has closed, instead of a
   * 502 while the gateway's own idle streams hold the room.
   */
  #dial (endpoint: Endpoint): void {
    const wanted = (): boolean => !this.#done && this.#channelEndpoint === endpoint && this.#tunnel === null
    dialWithRoom(endpoint, { remoteAddress: this.#clientIp, remotePort: this.#clientPort }, this.#front.options.makeRoom, wanted).then(
      (stream) => {
        if (this.#done || this.#channelEndpoint !== endpoint) return void stream.destroy() // uncounted already
        this.#attach(this.#front.pool.adopt(endpoint, stream))
      },
      (error: unknown) => {
        if (!wanted()) return
        this.#queued = null
        this.#channelEndpoint = null
        this.#front.pool.release(endpoint)
        this.#upstreamFailed(isPortholeError(error) ? error.code : 'PH_3003', isPortholeError(error) ? error.detail : (error as Error).message)
      },
    )
  }

  /** The tunnel (just opened, or from the pool) becomes this connection's; what waited for it is written. */
  #attach (tunnel: Tunnel): void {
    this.#tunnel = tunnel
    tunnel.user = this
    const queued = this.#queued
    this.#queued = null
    if (queued !== null && !writeAll(tunnel.stream, queued)) this.#channelBlocked = true
    this.#updateReading()
  }

  tunnelData (data: Buffer): void {
    const exchange = this.#exchange
    if (exchange !== null) {
      exchange.waitingSince = SINCE_NEXT_SWEEP
      exchange.heard = true
    }
    let result: number | ParseError
    try {
      result = this.#tunnel!.parser.execute(data)
    } catch (error) {
      return this.#crashed(error)
    }
    this.#flushClient()
    if (result instanceof Error) this.#upstreamFailed(result.code === 'HPE_HEADER_OVERFLOW' ? 'PH_3006' : 'PH_3003', `the upstream's response is not HTTP/1.1 (${result.code})`)
  }

  responseFields (fields: string[]): void {
    for (const field of fields) this.#responseFields.push(field)
  }

  responseHead (_major: number, minor: number, fields: string[] | undefined, _method: number, _url: string | undefined, status: number, _message: string | undefined, upgrade: boolean, keepAlive: boolean): number {
    let raw = fields ?? []
    if (this.#responseFields.length > 0) {
      raw = fields === undefined ? this.#responseFields : [...this.#responseFields, ...fields]
      this.#responseFields = []
    }
    const exchange = this.#exchange
    if (exchange === null || exchange.status !== 0 || upgrade || status === 101) {
      queueMicrotask(() => this.#upstreamFailed('PH_3003', 'the upstream sent a response nobody asked for'))
      return 0
    }
    if (status < 200) {
      this.#interim = true
      if (status === 103) this.#earlyHints(raw)
      return 0
    }
    // The upstream closes after this response (Connection: close, HTTP/1.0, a body that ends with the stream;
    // llhttp says so for a HEAD response without framing too, which has no body to end).
    if (!keepAlive && (exchange.method !== 'HEAD' || minor === 0 || CLOSE.test(connectionValue(raw) ?? ''))) exchange.closeAfter = true
    // How long the upstream keeps the stream after this exchange (none: it does not; llhttp's keep-alive).
    this.#tunnel!.idleLimitMs = keepAlive ? idleLimitOf(raw) : 0
    exchange.status = status
    exchange.responseChunked = exchange.method !== 'HEAD' && status !== 204 && status !== 304 && chunkedIn(raw)
    const head = relayedResponseHead(status, raw, exchange.closeAfter || this.#closing, this.#front.date)
    if (exchange.capture !== null) exchange.responseHead = head
    this.#toClient.push(head)
    return exchange.method === 'HEAD' ? 1 : 0
  }

  /** 103 Early Hints: its Link fields only, as the usual path sends them. */
  #earlyHints (raw: string[]): void {
    let head = ''
    for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === 'link') head += `Link: ${raw[i + 1]}\r\n`
    if (head !== '') this.#toClient.push(`HTTP/1.1 103 Early Hints\r\n${head}\r\n`)
  }

  responseBody (chunk: Buffer): void {
    const exchange = this.#exchange
    if (exchange === null) return
    exchange.responseBytes += chunk.length
    exchange.capture?.responseBody.add(chunk)
    const out = this.#toClient
    if (exchange.responseChunked) out.push(`${chunk.length.toString(16)}\r\n`, chunk, '\r\n')
    else out.push(chunk)
  }

  responseComplete (): void {
    if (this.#interim) {
      this.#interim = false
      return
    }
    const exchange = this.#exchange
    if (exchange === null) return
    if (exchange.responseChunked) {
      // The upstream's trailer fields (gathered by kOnHeaders), less porthole-error-code.
      let trailers = '0\r\n'
      const fields = this.#responseFields
      for (let i = 0; i < fields.length; i += 2) if (fields[i]!.toLowerCase() !== 'porthole-error-code') trailers += `${fields[i]}: ${fields[i + 1]}\r\n`
      this.#toClient.push(`${trailers}\r\n`)
    }
    this.#responseFields = []
    // The stream may serve another connection once this exchange is over: the upstream keeps it, and it has the
    // whole request (an early response leaves the rest of a body unsent).
    const tunnel = this.#tunnel!
    this.#channelReusable = tunnel.idleLimitMs > 0 && exchange.requestDone
    tunnel.served++
    this.#finish(exchange)
  }

  /** Writes what the response parser's run produced to the client; a full socket pauses the stream. */
  #flushClient (): void {
    const pieces = this.#toClient
    if (pieces.length === 0) return
    this.#toClient = []
    this.#busy = true
    if (!writeAll(this.#socket, pieces)) this.#blockChannel()
  }

  /** The response is over: report it, then read the next request or end the connection. */
  #finish (exchange: Exchange): void {
    this.#flushClient()
    this.#exchange = null
    exchange.waitingSince = 0
    this.#report(exchange)
    if (exchange.closeAfter || this.#closing || !exchange.requestDone) {
      // A response before its request's whole body (an early 413): the rest of it is not read; close.
      this.#closing = true
      this.#socket.end()
      return
    }
    this.#updateReading()
  }

  #report (exchange: Exchange): void {
    const durationMs = performance.now() - exchange.started
    exchange.capture?.finish(exchange.responseHead, exchange.status, exchange.errorCode, durationMs)
    reportRequest(exchange.endpoint, {
      scheme: this.#scheme,
      httpVersion: '1.1',
      method: exchange.method,
      host: exchange.authority,
      path: exchange.path,
      status: exchange.status,
      sent: exchange.status !== 0,
      errorCode: exchange.errorCode,
      clientIp: this.#clientIp,
      clientPort: this.#clientPort,
      startMs: exchange.startMs,
      durationMs,
      requestBytes: exchange.requestBytes,
      responseBytes: exchange.responseBytes,
    })
  }

  /** The stream ended or closed: a body read until close is complete; anything else in flight failed. */
  tunnelEnd (): void {
    const tunnel = this.#tunnel
    if (tunnel === null) return
    const result = tunnel.parser.finish()
    const exchange = this.#exchange
    this.#dropChannel()
    if (exchange === null) return
    // A stream kept from an earlier exchange that ends before a byte of the answer came: the upstream let the
    // connection go (its keep-alive ran out) as this request went out. An idempotent request without a body is
    // sent once more on another stream, as browsers do; anything else fails.
    if (exchange.replay !== null && !exchange.heard && tunnel.served > 0 && this.#resend(exchange, exchange.replay)) return
    this.#upstreamFailed('PH_3003', result instanceof Error ? `the tunnel closed mid-response (${(result as ParseError).code})` : 'the tunnel closed before the response')
  }

  /** Sends an exchange's head again on another stream to its endpoint (once); false when none may be had. */
  #resend (exchange: Exchange, head: string): boolean {
    exchange.replay = null
    if (this.#done || !this.#useEndpoint(exchange.endpoint)) return false
    this.#send(head)
    this.#flushUpstream()
    return true
  }

  /** The upstream failed the current exchange: an error page if nothing was sent yet, else the connection ends. */
  #upstreamFailed (code: ErrorCode, detail?: string): void {
    this.#dropChannel()
    const exchange = this.#exchange
    if (exchange === null || this.#done) return
    this.#exchange = null
    this.#closing = true
    exchange.errorCode = code
    exchange.waitingSince = 0
    if (exchange.status === 0) {
      exchange.status = catalogue[code].status
      if (exchange.status >= 500) this.#front.options.log.info({ host: exchange.endpoint.host, code, detail }, 'upstream error')
      this.#answerError(exchange, code, detail)
    } else {
      this.#socket.destroy()
    }
    this.#report(exchange)
  }

  /** Lets go of the stream: parked for another connection (when it is between exchanges), else closed. */
  #dropChannel (park = false): void {
    const tunnel = this.#tunnel
    const endpoint = this.#channelEndpoint
    const reusable = park && this.#channelReusable && this.#exchange === null
    this.#tunnel = null
    this.#channelEndpoint = null
    this.#channelReusable = false
    this.#queued = null
    this.#channelBlocked = false
    this.#responseFields = []
    this.#interim = false
    const pool = this.#front.pool
    if (tunnel === null) {
      if (endpoint !== null) pool.release(endpoint) // being opened: it closes when it comes (#flushUpstream)
    } else if (reusable) {
      pool.park(tunnel)
    } else {
      pool.close(tunnel)
    }
  }

  #blockChannel (): void {
    this.#tunnel?.pause()
  }

  #onDrain = (): void => {
    this.#tunnel?.resume()
  }

  tunnelDrain (): void {
    this.#channelBlocked = false
    this.#updateReading()
  }

  /** Reads the public socket only while the upstream takes more and no answered request waits for its response. */
  #updateReading (): void {
    if (this.#done) return
    const exchange = this.#exchange
    const waiting = exchange !== null && exchange.requestDone
    if (this.#closing || waiting || this.#channelBlocked || this.#queued !== null) this.#socket.pause()
    else this.#socket.resume()
  }

  /** A head node's parser refused, or one llhttp refused mid-body. */
  #badRequest (error: ParseError): void {
    if (this.#pending !== null && this.#exchange === null) return this.#giveToServer() // node answers it as it would any
    const exchange = this.#exchange
    const code = error.code === 'HPE_HEADER_OVERFLOW' ? 'PH_3005' : 'PH_3007'
    this.#closing = true
    if (exchange === null) {
      sendRawError(this.#socket, code)
      closeSoon(this.#socket)
    } else if (exchange.status === 0) {
      this.#dropChannel()
      this.#exchange = null
      exchange.status = catalogue[code].status
      exchange.errorCode = code
      this.#answerError(exchange, code)
      this.#report(exchange)
    } else {
      this.destroy()
    }
  }

  /** The catalogue page for an exchange nothing was answered for yet; the connection ends after it. */
  #answerError (exchange: Exchange, code: ErrorCode, detail?: string): void {
    this.#flushClient() // 103 Early Hints before it, if any
    const { head, text } = rawError(code, detail)
    if (exchange.capture !== null) {
      exchange.responseHead = head
      exchange.capture.responseBody.add(text)
    }
    exchange.responseBytes = Buffer.byteLength(text)
    if (this.#socket.writable) this.#socket.end(head + text)
    else this.#socket.destroy()
    closeSoon(this.#socket)
  }

  /** The current request and the rest of the connection go to node's server, with the bytes already read. */
  #giveToServer (): void {
    const socket = this.#socket
    const chunks = this.#pending!
    this.#release()
    socket.off('data', this.#onData)
    socket.off('drain', this.#onDrain)
    socket.off('close', this.#onClose)
    socket.off('error', noop)
    // node's server reads the socket's handle in C++ from here on (it consumes the handle: no 'data' events; put
    // back on the socket instead, the bytes would have made it read them all through 'data' events, which cost
    // a policy endpoint's requests a fifth more). The bytes already read reach its parser as the one 'data'
    // event it would have had for them, now, before the event loop reads more.
    this.#server(socket)
    socket.emit('data', chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks))
  }

  /** Closes this connection's stream if it goes to `endpoint` (unbound); the next request finds its way anew. */
  detach (endpoint: Endpoint): void {
    if (this.#channelEndpoint !== endpoint) return
    if (this.#exchange === null) this.#dropChannel()
    else this.#upstreamFailed('PH_3003', 'the endpoint was unbound')
  }

  checkDeadlines (now: number): void {
    const options = this.#front.options
    if (this.#headStartedAt === SINCE_NEXT_SWEEP) this.#headStartedAt = now
    else if (this.#headStartedAt !== 0 && this.#exchange === null && now - this.#headStartedAt > options.headerTimeoutMs) {
      this.#headStartedAt = 0
      this.#closing = true
      sendRawError(this.#socket, 'PH_3020')
      closeSoon(this.#socket)
      return
    }
    if (this.#busy) {
      this.#busy = false
      this.#quietSince = now
    } else if (now - this.#quietSince > options.idleTimeoutMs) {
      return this.destroy() // as node's socket timeout does on the usual path
    }
    // Not while the client is the slow side (the stream is paused for it).
    const exchange = this.#exchange
    if (exchange === null || exchange.waitingSince === 0) return
    if (exchange.waitingSince === SINCE_NEXT_SWEEP) exchange.waitingSince = now
    else if (!this.#socket.writableNeedDrain && now - exchange.waitingSince > options.upstreamTimeoutMs) this.#upstreamFailed('PH_3004')
  }

  /** A defect of ours, thrown from a parser callback: this connection ends, the gateway goes on. */
  #crashed (error: unknown): void {
    this.#channelReusable = false // what the stream has been through is not known
    this.#front.options.log.error({ err: error }, 'fast path: connection dropped on an internal error')
    this.destroy()
  }

  #onClose = (): void => {
    const exchange = this.#exchange
    this.#release()
    if (exchange !== null) this.#report(exchange) // the client left mid-exchange
  }

  /** Frees what the connection holds, once. */
  #release (): void {
    if (this.#done) return
    this.#done = true
    const exchange = this.#exchange
    this.#exchange = null
    if (exchange === null) this.#dropChannel(true) // between exchanges: the stream may serve another connection
    else this.#dropChannel()
    closeParser(this.#parser)
    this.#front.forget(this)
  }

  destroy (): void {
    this.#socket.destroy()
  }
}

function noop (): void {}

/** Whether a response's raw fields frame its body in chunks (llhttp, strict, took Transfer-Encoding only so). */
function chunkedIn (raw: readonly string[]): boolean {
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.length === 17 && raw[i]!.toLowerCase() === 'transfer-encoding') return true
  return false
}

/** Writes bigger than this leave as they are (corked into one writev) instead of being copied into one Buffer. */
const JOIN_LIMIT = 64 * 1024

/**
 * What one parser run produced for one side, as few writes as possible: small pieces (a head and a body, most
 * responses) copied into one Buffer, one write and one syscall; heads are latin1, as llhttp read them.
 */
function writeAll (stream: Duplex, pieces: Array<string | Buffer>): boolean {
  if (pieces.length === 1) {
    const piece = pieces[0]!
    return typeof piece === 'string' ? stream.write(piece, 'latin1') : stream.write(piece)
  }
  let total = 0
  for (const piece of pieces) total += piece.length
  if (total <= JOIN_LIMIT) {
    const joined = Buffer.allocUnsafe(total)
    let at = 0
    for (const piece of pieces) at += typeof piece === 'string' ? joined.write(piece, at, 'latin1') : piece.copy(joined, at)
    return stream.write(joined)
  }
  stream.cork()
  let more = true
  for (const piece of pieces) more = (typeof piece === 'string' ? stream.write(piece, 'latin1') : stream.write(piece)) && more
  stream.uncork()
  return more
}
