// The public HTTP listener: routes each request by the authority its target names (request-target.ts) to
// its endpoint, runs the endpoint's policy, and proxies through the tunnel with undici (bodies streamed both
// ways, never buffered whole). Upgrades (WebSocket) get a stream of their own, piped both ways. Knows nothing
// about SSH.
import { randomBytes } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import type { TLSSocket } from 'node:tls'
import type { Duplex } from 'node:stream'
import type { Dispatcher } from 'undici'
import type { Logger } from 'pino'
import { isPortholeError, type ErrorCode } from '../core/errors.js'
import type { Endpoint } from '../core/endpoint.js'
import type { Lookup, Registry } from '../core/registry.js'
import type { CompiledPolicy, Denial, HeaderMap, HttpRequestContext, HttpResponseContext, RequestResult, ResponseEncoding } from '../policy/compiled.js'
import { runSteps } from '../policy/compile.js'
import { createEncoder, type Encoder } from './encode.js'
import { addHop, cameBack, cleanResponseHeaders, ERROR_CODE_HEADER, upstreamRequestHeaders } from './headers.js'
import { sendError, sendRawError, sendRawResponse, sendResponse } from './error-response.js'
import { Upstream } from './upstream.js'
import { checkingIntervalMs, closeSoon, listenOn } from '../net/listen.js'
import { proxyUpgrade } from './upgrade.js'
import { FastH1 } from './fast-h1.js'
import { requestTarget, routingHost, serverNameOf, type RequestTarget, type Scheme } from './request-target.js'
import { hasRequestBody, watchResponse, type ResponseWithCode } from './response-watch.js'
import { readReplayMark, REPLAY_HEADER, RequestCapture, UpgradeCapture, type InspectOptions } from '../inspect/capture.js'

export interface HttpEdgeOptions {
  readonly registry: Registry
  readonly log: Logger
  readonly maxRequestHeaderSize: number
  readonly maxResponseHeaderSize: number
  readonly idleTimeoutMs: number
  /** A request's headers must be complete this long after they started (slowloris). */
  readonly headerTimeoutMs: number
  readonly upstreamTimeoutMs: number
  readonly upstreamConnections: number
  /** How often idle upstream pools are looked for (released after two idle sweeps); default 30 s. */
  readonly poolSweepMs?: number
  /** ACME HTTP-01: the key authorization for a token, if a certificate order is waiting for it. */
  readonly acmeChallenge?: (token: string) => string | undefined
  /** Request capture for the inspector (inspect/capture.ts); absent: nothing is captured (--inspect=false). */
  readonly inspect?: InspectOptions
  /** The HTTP/1.1 fast path (fast-h1.ts, --fast-h1) in front of the HTTP listener's server. */
  readonly fastH1?: boolean
}

const ACME_PREFIX = '/.well-known/acme-challenge/'
const MAX_QUEUED_PER_ENDPOINT = 1000
/** Webhook bodies are small; this bounds what a stranger can make us hold per request. */
const MAX_VERIFIED_BODY = 1024 * 1024

/** The whole body, or null as soon as it passes `limit` bytes (reading stops there). */
function readBody (req: IncomingMessage, limit: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const onData = (chunk: Buffer): void => {
      size += chunk.length
      if (size <= limit) return void chunks.push(chunk)
      req.off('data', onData)
      req.pause()
      resolve(null)
    }
    req.on('data', onData)
    req.once('end', () => resolve(Buffer.concat(chunks)))
    req.once('error', reject)
  })
}

/** Maps what undici or the dialer threw to the catalogue code the client sees. */
function upstreamErrorCode (error: unknown): { code: ErrorCode, detail?: string } {
  if (isPortholeError(error)) return { code: error.code, detail: error.detail }
  const code = (error as { code?: string }).code ?? ''
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') return { code: 'PH_3004' }
  if (code === 'UND_ERR_HEADERS_OVERFLOW') return { code: 'PH_3006' }
  return { code: 'PH_3003', detail: (error as Error).message }
}

/** Where a Location header must point after a Host rewrite: the public origin instead of the upstream host. */
function rewriteLocation (headers: HeaderMap, upstreamHost: string, publicOrigin: string): void {
  const location = headers.location
  if (typeof location !== 'string') return
  for (const scheme of ['http://', 'https://']) {
    const prefix = `${scheme}${upstreamHost}`
    if (location.startsWith(prefix) && (location.length === prefix.length || '/?#'.includes(location[prefix.length]!))) {
      headers.location = publicOrigin + location.slice(prefix.length)
      return
    }
  }
}

/** on_tcp_connect (per request for HTTP: the endpoint is known only from the Host), then on_http_request. */
function runRequestPhases (policy: CompiledPolicy, ctx: HttpRequestContext): RequestResult {
  const connect = policy.onTcpConnect
  if (connect !== null) {
    for (const step of connect) {
      const denial = step(ctx)
      if (denial) return denial
    }
  }
  return policy.onHttpRequest === null ? undefined : runSteps(policy.onHttpRequest, 0, ctx)
}

/** Calls `next` with the policy's answer, now or when an asynchronous step has it. */
function afterPolicy (result: RequestResult, next: (denial: Denial | undefined) => void, onError: () => void): void {
  if (result instanceof Promise) result.then(next, onError)
  else next(result)
}

/** The policy's context for one public request: host and path are the normalised target's. */
function requestContext (req: IncomingMessage, endpoint: Endpoint, scheme: Scheme, headers: HeaderMap, target: RequestTarget): HttpRequestContext {
  return {
    clientIp: req.socket.remoteAddress ?? '',
    clientPort: req.socket.remotePort ?? 0,
    serverPort: req.socket.localPort ?? 0,
    endpointHost: endpoint.host,
    protocol: scheme,
    connection: req.socket,
    method: req.method ?? 'GET',
    path: target.path,
    host: target.host,
    headers,
  }
}

/** Streams one upstream response into the public response, with backpressure both ways. */
class ProxyHandler implements Dispatcher.DispatchHandler {
  readonly #res: ServerResponse
  readonly #edge: HttpEdge
  readonly #endpoint: Endpoint
  readonly #policy: CompiledPolicy
  readonly #request: HttpRequestContext
  readonly #publicOrigin: string
  readonly #upstreamHost: string | undefined
  #controller: Dispatcher.DispatchController | null = null
  #onDrain = (): void => { this.#controller?.resume() }
  #corked = false
  #encoder: Encoder | null = null
  readonly #h2: boolean
  #uncork = (): void => {
    this.#corked = false
    this.#res.uncork()
  }

  constructor (res: ServerResponse, edge: HttpEdge, endpoint: Endpoint, upstream: Upstream, request: HttpRequestContext, publicOrigin: string, upstreamHost: string | undefined) {
    this.#res = res
    this.#request = request
    this.#edge = edge
    this.#endpoint = endpoint
    this.#policy = upstream.policy
    this.#publicOrigin = publicOrigin
    this.#upstreamHost = upstreamHost
    this.#h2 = res.req.httpVersionMajor === 2
    res.on('drain', this.#onDrain)
    // From dispatch on, not from onRequestStart: a client that leaves while the request waits for a pool
    // connection (or a tunnel stream being opened) must still abort it, or the request runs on a connection
    // nobody reads (writes to a closed response return false and pause it for good).
    res.once('close', this.#onClose)
    // Gone already (while an asynchronous policy step ran): that 'close' will not come again.
    const h2Stream = (res as unknown as { stream?: { destroyed: boolean } }).stream
    if (this.#h2 ? h2Stream?.destroyed ?? true : res.destroyed) this.#clientGone = true
  }

  /**
   * The public response closed before undici finished the upstream one (h2 RST_STREAM, a socket closed):
   * abort it. Decided by our own state, not res.writableFinished: an HTTP/2 stream reset by the client
   * reports writableFinished true.
   */
  #onClose = (): void => {
    if (this.#settled) return
    this.#clientGone = true
    this.#controller?.abort(new Error('client closed'))
  }

  #clientGone = false
  /** undici delivered the end of the response or an error: nothing left to abort. */
  #settled = false

  onRequestStart (controller: Dispatcher.DispatchController): void {
    this.#controller = controller
    if (this.#clientGone) controller.abort(new Error('client closed'))
  }

  onResponseStart (_controller: Dispatcher.DispatchController, statusCode: number, upstreamHeaders: Record<string, string | string[] | undefined>): void {
    if (statusCode < 200) {
      // 100 never gets here (upstream.ts drops it; node answered the client's Expect itself); 102 is skipped
      if (statusCode === 103) this.#earlyHints(upstreamHeaders.link)
      return
    }
    const headers = cleanResponseHeaders(upstreamHeaders as HeaderMap)
    const cookies = this.#request.setCookies
    if (cookies !== undefined) {
      const theirs = headers['set-cookie']
      headers['set-cookie'] = theirs === undefined ? cookies : [...(Array.isArray(theirs) ? theirs : [theirs]), ...cookies]
    }
    const steps = this.#policy.onHttpResponse
    if (steps !== null) {
      const ctx: HttpResponseContext = { request: this.#request, status: statusCode, headers }
      for (const step of steps) step(ctx)
      if (ctx.encoding) this.#encodeWith(ctx.encoding)
    }
    if (this.#upstreamHost !== undefined) rewriteLocation(headers, this.#upstreamHost, this.#publicOrigin)
    // The standard reason phrase, not the upstream's: HTTP/2 has none, and a malformed one would hang the client.
    this.#res.writeHead(statusCode, headers as Record<string, string | string[]>)
  }

  /** compress-response chose an encoding: the body goes through the encoder, which pipes to the client. */
  #encodeWith (encoding: ResponseEncoding): void {
    const encoder = createEncoder(encoding)
    encoder.on('error', () => this.#res.destroy())
    encoder.on('drain', this.#onDrain)
    encoder.pipe(this.#res as unknown as NodeJS.WritableStream)
    this.#encoder = encoder
  }

  onResponseData (controller: Dispatcher.DispatchController, chunk: Buffer): void {
    const encoder = this.#encoder
    if (encoder !== null) {
      const more = encoder.write(chunk)
      encoder.flush() // keep streamed responses streaming: each upstream chunk leaves as soon as it is encoded
      if (!more) controller.pause()
      return
    }
    // Chunks arrive a socket read (<= 64 KiB) at a time, often several per event-loop turn: cork them until
    // the turn ends (setImmediate) so they leave in one writev. Measured: ~40% less CPU per GiB downloaded
    // than uncorking per tick.
    if (!this.#corked && !this.#h2) {
      this.#corked = true
      this.#res.cork()
      setImmediate(this.#uncork)
    }
    if (!this.#res.write(chunk)) controller.pause()
  }

  /**
   * 103 Early Hints: its Link fields go to the client before the final response (node writes them for HTTP/1.1
   * and HTTP/2), nothing else of the interim head (the response phase's header rules have not run on it).
   * HTTP/1.0 clients get no 1xx (RFC 9110 15.2); an unusable Link value is skipped.
   */
  #earlyHints (link: string | string[] | undefined): void {
    if (link === undefined || this.#clientGone || this.#res.headersSent) return
    if (!this.#h2 && this.#res.req.httpVersion === '1.0') return
    try {
      this.#res.writeEarlyHints({ link })
    } catch {}
  }

  /**
   * The upstream's trailer fields go on: node sends them after the last chunk of a chunked HTTP/1.1 response
   * (and drops them when the response is not chunked, e.g. to an HTTP/1.0 client) and as a trailing HEADERS
   * frame on HTTP/2. Only Porthole may set porthole-error-code; names HTTP/2 forbids there are skipped.
   */
  onResponseEnd (_controller: Dispatcher.DispatchController, trailers: Record<string, string | string[] | undefined>): void {
    this.#settled = true
    if (trailers !== null && typeof trailers === 'object') {
      const fields: Record<string, string | string[]> = {}
      for (const [name, value] of Object.entries(trailers)) {
        if (value !== undefined && name !== ERROR_CODE_HEADER && !name.startsWith(':')) fields[name] = value
      }
      if (Object.keys(fields).length > 0) {
        try {
          this.#res.addTrailers(fields)
        } catch {}
      }
    }
    if (this.#encoder !== null) this.#encoder.end() // the pipe ends the response after the last block
    else this.#res.end()
  }

  onResponseError (_controller: Dispatcher.DispatchController, error: Error): void {
    this.#settled = true
    if ((error as { code?: string }).code === 'UND_ERR_ABORTED' || this.#res.destroyed) return
    const { code, detail } = upstreamErrorCode(error)
    this.#edge.fail(this.#res, this.#endpoint, code, detail)
  }
}

export class HttpEdge {
  readonly #options: HttpEdgeOptions
  /** This edge's loop mark (headers.ts, HOP_HEADER): random, so two gateways in a chain tell theirs apart. */
  readonly #hop = randomBytes(6).toString('base64url')
  readonly #registry: Registry
  /** Per-endpoint upstream state, by endpoint id (DESIGN: the edge owns it; the registry only says when to drop it). */
  readonly #upstreams = new Map<string, Upstream>()
  readonly #stopListening: () => void
  readonly #sweeper: NodeJS.Timeout
  readonly #log: Logger
  readonly server: Server
  /** --fast-h1: takes the HTTP listener's connections first, and gives the server those it does not relay. */
  readonly #fast: FastH1 | null
  /** scheme://host:port suffix for URLs, filled in once listening. */
  #portSuffix = ''
  #httpsPort = 443

  constructor (options: HttpEdgeOptions) {
    this.#options = options
    this.#registry = options.registry
    this.#stopListening = this.#registry.onUnbind((endpoint) => this.#detach(endpoint))
    // Upstream pools are made on first request; one coarse timer releases those idle for two sweeps.
    this.#sweeper = setInterval(() => { for (const upstream of this.#upstreams.values()) upstream.sweep() }, options.poolSweepMs ?? 30_000).unref()
    this.#log = options.log
    this.server = createServer({
      maxHeaderSize: options.maxRequestHeaderSize,
      requestTimeout: 0, // bodies may stream for a long time; the idle timeout below guards dead sockets
      headersTimeout: options.headerTimeoutMs,
      connectionsCheckingInterval: checkingIntervalMs(options.headerTimeoutMs),
      keepAliveTimeout: options.idleTimeoutMs,
    })
    this.server.timeout = options.idleTimeoutMs
    this.server.maxHeadersCount = 200
    this.server.on('request', (req, res) => this.handle(req, res, 'http'))
    this.server.on('upgrade', (req, socket, head) => this.handleUpgrade(req, socket as Socket, head, 'http'))
    this.server.on('connect', (req: IncomingMessage, socket: Duplex) => this.refuseConnect(req, socket))
    this.server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => this.clientError(error, socket))
    this.#fast = options.fastH1 === true
      ? new FastH1({
        server: this.server,
        fastEndpoint: (host, scheme, servername) => this.#fastEndpoint(host, scheme, servername),
        makeRoom: (endpoint) => this.#makeRoom(endpoint),
        hop: this.#hop,
        acme: options.acmeChallenge !== undefined,
        maxStreamsPerEndpoint: options.upstreamConnections,
        maxRequestHeaderSize: options.maxRequestHeaderSize,
        maxResponseHeaderSize: options.maxResponseHeaderSize,
        headerTimeoutMs: options.headerTimeoutMs,
        idleTimeoutMs: options.idleTimeoutMs,
        upstreamTimeoutMs: options.upstreamTimeoutMs,
        ...(options.inspect !== undefined ? { inspect: options.inspect } : {}),
        log: options.log,
      })
      : null
  }

  /**
   * The endpoint an HTTP/1.1 request for `host` may take the fast path to: bound, http, served on this scheme, and
   * nothing of the usual path but routing, forwarding and capture would act on it (no policy step or module, no
   * Host rewrite, a plain HTTP/1.1 upstream); over HTTPS, only a host the TLS connection was made for (the usual
   * path answers any other 421). Asked for every request, so a change (a rebind with a policy) is seen at the next one.
   */
  #fastEndpoint (host: string, scheme: Scheme, servername: string | undefined): Endpoint | undefined {
    const found = this.#registry.lookup(host)
    if (found.state !== 'bound') return undefined
    const { endpoint } = found
    const { spec } = endpoint
    if (spec.proto !== 'http' || !spec.schemes[scheme] || spec.hostHeader !== undefined || spec.upstream.tls || spec.upstream.protocol !== 'http1') return undefined
    if (scheme === 'https' && this.#misdirected(servername, host, found) !== undefined) return undefined
    const policy = this.#upstreams.get(endpoint.id)?.policy
    if (policy === undefined || policy.onTcpConnect !== null || policy.onHttpRequest !== null || policy.onHttpResponse !== null || policy.needsBody) return undefined
    return endpoint
  }

  /** Malformed, oversized or too slow HTTP/1.1 (node's parser said so): a catalogue error, then close. */
  clientError (error: NodeJS.ErrnoException, socket: Duplex): void {
    this.#log.debug({ err: error.message }, 'http client error')
    if (error.code === 'ECONNRESET' || !socket.writable) return void socket.destroy()
    sendRawError(socket, error.code === 'HPE_HEADER_OVERFLOW' ? 'PH_3005' : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'PH_3020' : 'PH_3007')
    closeSoon(socket)
  }

  async listen (host: string, port: number): Promise<AddressInfo> {
    const address = await listenOn(this.#fast?.listener ?? this.server, host, port)
    this.#portSuffix = address.port === 80 ? '' : `:${address.port}`
    return address
  }

  /**
   * An HTTPS connection whose handshake chose HTTP/1.1 (tls-edge.ts): to the fast path, which gives `server` (node's
   * HTTPS server code) what it does not take; all to `server` with --fast-h1=false.
   */
  acceptTls (socket: TLSSocket, server: (socket: TLSSocket) => void): void {
    if (this.#fast === null) server(socket)
    else this.#fast.acceptTls(socket, server)
  }

  /** Requests the fast path (--fast-h1) has taken so far. */
  get fastRelayed (): number { return this.#fast?.relayed ?? 0 }

  /** Tunnel streams the fast path keeps between exchanges for the next connection to their endpoint. */
  fastParked (endpointId: string): number { return this.#fast?.pool.parked(endpointId) ?? 0 }

  /** The port public HTTPS URLs name (set by the gateway once the HTTPS listener is up). */
  set httpsPort (port: number) { this.#httpsPort = port }

  urlFor (host: string, scheme: Scheme = 'http'): string {
    if (scheme === 'https') return `https://${host}${this.#httpsPort === 443 ? '' : `:${this.#httpsPort}`}`
    return `http://${host}${this.#portSuffix}`
  }

  /** Builds the endpoint's upstream state (pool + compiled policy) at bind time; dropped when the registry unbinds it. */
  attach (endpoint: Endpoint, policy: CompiledPolicy): void {
    this.#upstreams.set(endpoint.id, new Upstream(endpoint, policy, {
      connections: this.#options.upstreamConnections,
      timeoutMs: this.#options.upstreamTimeoutMs,
      maxResponseHeaderSize: this.#options.maxResponseHeaderSize,
      makeRoom: (other) => this.#makeRoom(other),
    }))
  }

  /**
   * `endpoint`'s agent session refused a stream at its max-streams-per-session (PH_3002), while this edge may be
   * keeping some of its streams idle: closes one (a stream the fast path keeps, else an idle one of a pool of the
   * session's endpoints) so that the dial may be tried once more. Undefined when the session has none idle.
   */
  #makeRoom (endpoint: Endpoint): Promise<void> | undefined {
    const parked = this.#fast?.pool.reclaim(endpoint)
    if (parked !== undefined) return parked
    const { sessionId, transport } = endpoint.agent
    for (const upstream of this.#upstreams.values()) {
      const { agent } = upstream.endpoint
      if (agent.sessionId !== sessionId || agent.transport !== transport) continue
      const closed = upstream.closeIdleStream()
      if (closed !== undefined) return closed
    }
    return undefined
  }

  #detach (endpoint: Endpoint): void {
    this.#fast?.detach(endpoint)
    const upstream = this.#upstreams.get(endpoint.id)
    if (upstream === undefined) return
    this.#upstreams.delete(endpoint.id)
    void upstream.close()
  }

  /** The endpoint's pool counters (running, pending, queued, connected), or undefined when it has none here
   *  (not bound here, or no pool: pools are made on the first request and released when idle). */
  poolStats (endpointId: string): Upstream['pool']['stats'] | undefined {
    return this.#upstreams.get(endpointId)?.stats
  }

  /** Answers with a catalogue error and logs the request line. */
  fail (res: ServerResponse, endpoint: Endpoint | null, code: ErrorCode, detail?: string, headers?: Record<string, string>): void {
    ;(res as ResponseWithCode).errorCode = code
    if (res.statusCode >= 500 || code === 'PH_3002' || code === 'PH_3003' || code === 'PH_3004') {
      this.#log.info({ host: endpoint?.host, code, detail }, 'upstream error')
    }
    sendError(res, code, detail, headers)
  }

  /** The endpoint the target's host names; over HTTPS only one this TLS connection serves, over https. */
  #route (req: IncomingMessage, target: RequestTarget, scheme: Scheme): { endpoint: Endpoint, upstream: Upstream } | { code: ErrorCode, detail: string } {
    const { host } = target
    const found = this.#registry.lookup(host)
    if (scheme === 'https') {
      const misdirected = this.#misdirected(serverNameOf(req.socket as TLSSocket), host, found)
      if (misdirected !== undefined) return { code: 'PH_3015', detail: misdirected }
    }
    const upstream = found.state === 'bound' ? this.#upstreams.get(found.endpoint.id) : undefined
    if (found.state === 'bound' && upstream !== undefined) {
      if (scheme === 'https' && !found.endpoint.spec.schemes.https) return { code: 'PH_3016', detail: found.endpoint.host }
      // A stranger cannot queue requests without bound: past the pool's connections, some wait, then 503.
      if (upstream.queued >= MAX_QUEUED_PER_ENDPOINT) return { code: 'PH_3010', detail: found.endpoint.host }
      return { endpoint: found.endpoint, upstream }
    }
    return found.state === 'offline' ? { code: 'PH_3001', detail: host } : { code: 'PH_3000', detail: host || '(no Host header)' }
  }

  /**
   * Over HTTPS the host must be one the connection's certificate was chosen for: the SNI name itself, or
   * another name the same endpoint serves (a wildcard endpoint's names; browsers coalesce those onto one
   * connection when the certificate covers them). Any other host would reach an endpoint, its policy and its
   * certificate through a connection made for someone else's: 421, which browsers retry on a new connection.
   */
  #misdirected (servername: string | undefined, host: string, found: Lookup): string | undefined {
    const sni = routingHost(servername)
    if (sni !== '' && sni === host) return undefined
    const served = sni === '' ? undefined : this.#registry.lookup(sni)
    if (served?.state === 'bound' && found.state === 'bound' && served.endpoint === found.endpoint) return undefined
    return `${host || '(no host)'} is not served on this TLS connection, made for ${sni || '(no server name)'}; open a new connection for it`
  }

  /** The edge answers ACME HTTP-01 challenges itself, for every host, before routing. */
  #answerChallenge (target: RequestTarget, res: ServerResponse): void {
    const answer = this.#options.acmeChallenge!(target.path.slice(ACME_PREFIX.length))
    if (answer === undefined) return sendError(res, 'PH_3000', target.host + target.path)
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': Buffer.byteLength(answer) })
    res.end(answer)
  }

  #upstreamHost (upstream: Upstream, req: IncomingMessage): string | undefined {
    if (upstream.hostHeader === undefined) return undefined
    return upstream.hostHeader === 'rewrite' ? 'localhost' : upstream.hostHeader
  }

  /** One public request, from the HTTP listener or the HTTPS one (HTTP/1.1 or HTTP/2 compat objects). */
  handle (req: IncomingMessage, res: ServerResponse, scheme: Scheme): void {
    const target = requestTarget(req, scheme)
    if ('code' in target) {
      res.shouldKeepAlive = false // the request was not understood: do not read another from this connection
      return sendError(res, target.code, target.detail)
    }
    if (scheme === 'http' && this.#options.acmeChallenge && target.path.startsWith(ACME_PREFIX)) return this.#answerChallenge(target, res)
    if (cameBack(req, this.#hop)) {
      req.resume()
      return sendError(res, 'PH_1100', target.host)
    }
    const started = performance.now()
    const clientIp = req.socket.remoteAddress ?? ''
    const routed = this.#route(req, target, scheme)
    if ('code' in routed) {
      sendError(res, routed.code, routed.detail)
      return
    }
    const { endpoint, upstream } = routed
    const inspect = this.#options.inspect
    // Captured only when the gateway and the endpoint both say so; nothing is allocated otherwise.
    const capture = inspect !== undefined && endpoint.spec.inspect ? new RequestCapture(inspect, endpoint, req, res, replayOf(req, inspect.replaySecret, endpoint)) : null
    watchResponse(req, res, endpoint, scheme, target, started, capture)
    if (scheme === 'http' && !endpoint.spec.schemes.http) {
      req.resume()
      // https only: plain HTTP gets a permanent redirect (308 keeps the method).
      res.writeHead(308, { location: `${this.urlFor(target.host, 'https')}${target.path}`, 'content-length': 0 })
      res.end()
      return
    }
    const headers = upstreamRequestHeaders(req, clientIp, scheme, target.authority)
    addHop(headers, this.#hop)
    const marked = this.#replayMark(headers, endpoint)
    if (marked === false) {
      req.resume()
      return this.fail(res, endpoint, 'PH_3201', endpoint.host)
    }
    const ctx = requestContext(req, endpoint, scheme, headers, target)
    capture?.upstream(ctx)
    const origin = `${scheme}://${target.authority || endpoint.host}`
    const hasBody = hasRequestBody(req)
    if (upstream.policy.needsBody && hasBody) {
      // verify-webhook reads the whole body: buffer it (bounded), then go on with the buffer as the body.
      readBody(req, MAX_VERIFIED_BODY).then((body) => {
        if (body === null) {
          res.shouldKeepAlive = false // the rest of the body is not read: close after answering
          return this.fail(res, endpoint, 'PH_3011', `${MAX_VERIFIED_BODY} bytes`)
        }
        ctx.body = body
        this.#forward(req, res, endpoint, upstream, ctx, origin, body)
      }, () => res.destroy())
      return
    }
    this.#forward(req, res, endpoint, upstream, ctx, origin, hasBody ? req : null)
  }

  /** Runs the request phases and, unless a rule answered, sends the request upstream. */
  #forward (req: IncomingMessage, res: ServerResponse, endpoint: Endpoint, upstream: Upstream, ctx: HttpRequestContext, origin: string, body: IncomingMessage | Buffer | null): void {
    afterPolicy(runRequestPhases(upstream.policy, ctx), (denial) => this.#send(req, res, endpoint, upstream, ctx, origin, body, denial), () => res.destroy())
  }

  #send (req: IncomingMessage, res: ServerResponse, endpoint: Endpoint, upstream: Upstream, ctx: HttpRequestContext, origin: string, body: IncomingMessage | Buffer | null, denial: Denial | undefined): void {
    const { headers, clientIp } = ctx
    if (denial) {
      req.resume()
      if ('code' in denial) this.fail(res, endpoint, denial.code, denial.detail, denial.headers)
      else if ('close' in denial) res.destroy()
      else sendResponse(res, denial.response)
      return
    }
    // Actions that learn from outcomes (circuit-breaker) hear the final status of what went upstream.
    const outcome = ctx.outcome
    if (outcome) res.once('close', () => { for (const hook of outcome) hook(res.headersSent ? res.statusCode : 0) })
    const upstreamHost = this.#upstreamHost(upstream, req)
    if (upstreamHost !== undefined) headers.host = upstreamHost
    upstream.dispatch({ remoteAddress: clientIp, remotePort: req.socket.remotePort ?? 0 }, {
      method: req.method as Dispatcher.HttpMethod,
      path: ctx.path,
      headers: headers as Record<string, string | string[]>,
      body,
    }, new ProxyHandler(res, this, endpoint, upstream, ctx, origin, upstreamHost))
  }

  /**
   * Strips the replay mark from the headers going on (always: a stranger's never reaches the policy or the
   * upstream). false when it carries this process's secret but names another owner than the endpoint's: a
   * replay routed elsewhere (an edited Host, a name that changed hands) is not sent.
   */
  #replayMark (headers: HeaderMap, endpoint: Endpoint): boolean {
    const value = headers[REPLAY_HEADER]
    if (value === undefined) return true
    delete headers[REPLAY_HEADER]
    const secret = this.#options.inspect?.replaySecret
    const mark = secret === undefined ? undefined : readReplayMark(value, secret)
    return mark === undefined || mark.ownerId === endpoint.owner.id
  }

  /** CONNECT (authority-form) is never proxied: a code instead of Node's silent close (HTTP/1.1) or bare 405 (HTTP/2). */
  refuseConnect (req: IncomingMessage, to: Duplex | ServerResponse): void {
    const detail = `CONNECT ${String(req.headers[':authority'] ?? req.url ?? '')}`
    if ('writeHead' in to) return sendError(to, 'PH_3014', detail)
    to.on('error', () => {})
    sendRawError(to, 'PH_3014', detail)
  }

  handleUpgrade (req: IncomingMessage, socket: Socket, head: Buffer, scheme: Scheme): void {
    socket.on('error', () => {})
    const clientIp = socket.remoteAddress ?? ''
    const target = requestTarget(req, scheme)
    if ('code' in target) return sendRawError(socket, target.code, target.detail)
    if (cameBack(req, this.#hop)) return sendRawError(socket, 'PH_1100', target.host)
    const routed = this.#route(req, target, scheme)
    if ('code' in routed) return sendRawError(socket, routed.code, routed.detail)
    const { endpoint, upstream } = routed
    const inspect = this.#options.inspect
    const capture = inspect !== undefined && endpoint.spec.inspect ? new UpgradeCapture(inspect, endpoint, req, socket, replayOf(req, inspect.replaySecret, endpoint)) : null
    if (scheme === 'http' && !endpoint.spec.schemes.http) return sendRawError(socket, 'PH_3008')
    const headers = upstreamRequestHeaders(req, clientIp, scheme, target.authority)
    addHop(headers, this.#hop)
    if (this.#replayMark(headers, endpoint) === false) return sendRawError(socket, 'PH_3201', endpoint.host)
    const ctx = requestContext(req, endpoint, scheme, headers, target)
    capture?.upstream(ctx)
    afterPolicy(runRequestPhases(upstream.policy, ctx), (denial) => {
      if (socket.destroyed) return
      if (denial) return 'code' in denial ? sendRawError(socket, denial.code, denial.detail, denial.headers) : 'close' in denial ? void socket.destroy() : sendRawResponse(socket, denial.response)
      const upstreamHost = this.#upstreamHost(upstream, req)
      if (upstreamHost !== undefined) headers.host = upstreamHost
      proxyUpgrade(req, socket, head, endpoint, upstream, ctx, headers, upstreamErrorCode)
    }, () => socket.destroy())
  }

  close (): Promise<void> {
    this.#stopListening()
    clearInterval(this.#sweeper)
    for (const upstream of this.#upstreams.values()) void upstream.close()
    this.#upstreams.clear()
    this.#fast?.close()
    return new Promise((resolve) => {
      this.server.close(() => resolve())
      this.server.closeAllConnections()
    })
  }
}

/** The record a request replays, when it carries this process's replay mark for the endpoint's owner. */
function replayOf (req: IncomingMessage, secret: string, endpoint: Endpoint): string | undefined {
  const value = req.headers[REPLAY_HEADER]
  if (value === undefined) return undefined
  const mark = readReplayMark(value, secret)
  return mark !== undefined && mark.ownerId === endpoint.owner.id ? mark.id : undefined
}
