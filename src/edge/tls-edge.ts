// The HTTPS listener. It reads each connection's ClientHello first: a name bound as a tls endpoint is
// passed through untouched (the agent's service terminates TLS); a name bound as an http endpoint is
// terminated here with a certificate from the CertStore (own files, ACME, local CA) and served as HTTP/2
// or HTTP/1.1 (ALPN) through the same routing and policy as plain HTTP. Anything else (no SNI, an unbound
// name, garbage) is closed, and no certificate is ever issued for a name nobody bound.
import { createSecureServer, type Http2SecureServer, type ServerHttp2Session } from 'node:http2'
import type { Duplex } from 'node:stream'
import type { TLSSocket } from 'node:tls'
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Logger } from 'pino'
import type { Endpoint } from '../core/endpoint.js'
import type { Registry } from '../core/registry.js'
import type { CertStore } from '../certs/cert-store.js'
import type { CompiledPolicy } from '../policy/compiled.js'
import { MAX_HELLO_BYTES, parseClientHello } from './client-hello.js'
import type { HttpEdge } from './http-edge.js'
import { admitted } from './tcp-edge.js'
import { reset, splice } from '../net/splice.js'
import { connectionEnds, observeConnection } from '../observe/channels.js'
import { checkingIntervalMs, listenOn } from '../net/listen.js'
import { proxyHeader } from './proxy-protocol.js'
import { H2Sessions } from './h2-sessions.js'

export interface TlsEdgeOptions {
  readonly registry: Registry
  readonly certs: CertStore
  readonly http: HttpEdge
  readonly log: Logger
  /**
   * Agent connections on this port: a ClientHello for one of `names` (the domain, connect.<domain>) that no
   * endpoint serves goes to `accept`, with the hello put back, so ngrok agents may dial the HTTPS port too.
   */
  readonly agents?: { readonly names: ReadonlySet<string>, readonly accept: (socket: Socket) => void }
  /**
   * The header deadline: how long a client may take to send its ClientHello, then to finish the TLS
   * handshake, then (HTTP/1.1) each request's headers or (HTTP/2) each header block (h2-sessions.ts).
   */
  readonly headerTimeoutMs: number
  /** HTTP/1.1: a keep-alive connection between requests, or a socket silent mid-request; HTTP/2: a session with no
   *  open stream, or a stream that moves no byte. */
  readonly idleTimeoutMs: number
}


export class TlsEdge {
  readonly #options: TlsEdgeOptions
  readonly #log: Logger
  readonly #server: Server
  readonly #https: Http2SecureServer
  readonly #sockets = new Set<Socket>()
  readonly #h2: H2Sessions
  /** The compiled policy of each tls (passthrough) endpoint, by endpoint id. */
  readonly #policies = new Map<string, CompiledPolicy>()
  readonly #stopListening: () => void

  constructor (options: TlsEdgeOptions) {
    this.#options = options
    this.#log = options.log
    this.#stopListening = options.registry.onUnbind((endpoint) => this.#policies.delete(endpoint.id))
    this.#https = createSecureServer({
      allowHTTP1: true,
      minVersion: 'TLSv1.2',
      // Node's default is 2^32-1 concurrent streams per connection: a few connections could queue anything.
      settings: { maxConcurrentStreams: 100 },
      // Frame-level limits, so that a peer is cut after a burst of nonsense rather than served it: invalid frames
      // (node: 1000) and streams refused for going past maxConcurrentStreams (node: 100; RFC 9113 8.1.4) before the
      // session is destroyed, entries in one SETTINGS frame (RFC 9113 defines 6; node: 32), fields in one header
      // block (node's default, explicit). No ALPN on a TLS connection falls back to HTTP/1.1 (allowHTTP1); the
      // unknown-protocol timeout is the header deadline all the same.
      maxSessionInvalidFrames: 100,
      maxSessionRejectedStreams: 100,
      maxSettings: 16,
      maxHeaderListPairs: 128,
      unknownProtocolTimeout: options.headerTimeoutMs,
      handshakeTimeout: options.headerTimeoutMs,
      SNICallback: (name, callback) => {
        const endpoint = this.#terminated(name.toLowerCase())
        if (!endpoint) return callback(new Error(`no https endpoint at ${name}`))
        // Only bound names get a certificate; a wildcard endpoint's certificate covers its names. Clients the
        // operator issued no credential to (anonymous mode) get the local CA's: ACME orders are a shared,
        // rate-limited budget, and anyone can make new keys.
        Promise.resolve().then(() => options.certs.contextFor(endpoint.host, name, { acme: endpoint.owner.known === true })).then(
          (context) => callback(null, context),
          (error: Error) => {
            this.#log.warn({ host: endpoint.host, err: error.message }, 'no certificate for endpoint')
            callback(error)
          },
        )
      },
    })
    this.#https.setTimeout(options.idleTimeoutMs)
    // HTTP/1.1 over TLS runs node's HTTP/1.1 server code, whose header deadline is checked only on servers that
    // track their connections, which node starts on 'listening'. This server never listens (the SNI router
    // hands it connections), so without the 'listening' below no HTTPS HTTP/1.1 request was ever timed out.
    Object.assign(this.#https, {
      headersTimeout: options.headerTimeoutMs,
      requestTimeout: 0, // as on plain HTTP: bodies may stream for long; the idle timeout guards dead sockets
      connectionsCheckingInterval: checkingIntervalMs(options.headerTimeoutMs),
    })
    this.#https.emit('listening')
    this.#https.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
      // HTTP/1.1 parser errors get the edge's answer; TLS errors (before any HTTP) only a close.
      if (error.code?.startsWith('HPE_') || error.code === 'ERR_HTTP_REQUEST_TIMEOUT') options.http.clientError(error, socket)
      else socket.destroy()
    })
    // HTTP/2: header blocks, idle sessions (control frames are not activity), idle streams, PING floods.
    this.#h2 = new H2Sessions({
      headerTimeoutMs: options.headerTimeoutMs,
      idleTimeoutMs: options.idleTimeoutMs,
      onCut: (reason, session) => this.#log.debug({ client: session.socket?.remoteAddress, reason }, 'http2 session closed'),
    })
    this.#https.on('session', (session: ServerHttp2Session) => this.#h2.watch(session))
    // After the handshake, node's HTTP/2 server code (its one 'secureConnection' listener) serves HTTP/2 and,
    // with allowHTTP1, HTTP/1.1; an HTTP/1.1 connection goes to the fast path first (HttpEdge.acceptTls), which
    // hands that same code what it does not take.
    const [serve] = this.#https.listeners('secureConnection') as Array<(socket: TLSSocket) => void>
    if (serve === undefined) throw new Error('node\'s HTTP/2 server has no secureConnection listener')
    this.#https.removeAllListeners('secureConnection')
    this.#https.on('secureConnection', (socket: TLSSocket) => {
      if (socket.alpnProtocol === 'h2') serve.call(this.#https, socket)
      else options.http.acceptTls(socket, (whole) => serve.call(this.#https, whole))
    })
    this.#https.on('request', (req, res) => options.http.handle(req as unknown as IncomingMessage, res as unknown as ServerResponse, 'https'))
    this.#https.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => options.http.handleUpgrade(req, socket, head, 'https'))
    this.#https.on('connect', (req: IncomingMessage, to: Socket | ServerResponse) => options.http.refuseConnect(req, to))
    this.#https.on('tlsClientError', (error: Error) => this.#log.debug({ err: error.message }, 'tls client error'))
    this.#server = createServer({ noDelay: true, pauseOnConnect: false }, (socket) => this.#onConnection(socket))
  }

  listen (host: string, port: number): Promise<AddressInfo> {
    return listenOn(this.#server, host, port)
  }

  /** A tls endpoint's state here is its compiled policy (on_tcp_connect), kept until the registry unbinds it. */
  attach (endpoint: Endpoint, policy: CompiledPolicy): void {
    this.#policies.set(endpoint.id, policy)
  }

  #terminated (name: string): Endpoint | undefined {
    const found = this.#options.registry.lookup(name)
    if (found.state !== 'bound') return undefined
    const { spec } = found.endpoint
    return spec.proto === 'http' && spec.schemes.https ? found.endpoint : undefined
  }

  #onConnection (socket: Socket): void {
    this.#sockets.add(socket)
    socket.once('close', () => this.#sockets.delete(socket))
    socket.on('error', () => {})
    let buffered: Buffer = Buffer.alloc(0)
    const timer = setTimeout(() => {
      this.#log.debug({ client: socket.remoteAddress }, 'tls: no ClientHello in time')
      socket.destroy()
    }, this.#options.headerTimeoutMs)
    const onData = (chunk: Buffer): void => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk])
      const hello = buffered.length > MAX_HELLO_BYTES ? { state: 'invalid' as const, reason: 'too long' } : parseClientHello(buffered)
      if (hello.state === 'incomplete') return
      clearTimeout(timer)
      socket.off('data', onData)
      socket.pause()
      if (hello.state === 'invalid' || hello.serverName === null) {
        this.#log.debug({ client: socket.remoteAddress, reason: hello.state === 'invalid' ? hello.reason : 'no SNI' }, 'tls connection closed')
        socket.destroy()
        return
      }
      this.#route(socket, hello.serverName, buffered)
    }
    socket.on('data', onData)
    socket.once('close', () => clearTimeout(timer))
  }

  #route (socket: Socket, name: string, hello: Buffer): void {
    const found = this.#options.registry.lookup(name)
    const endpoint = found.state === 'bound' ? found.endpoint : undefined
    if (endpoint?.spec.proto === 'tls') return this.#passThrough(socket, endpoint, hello)
    if (endpoint && this.#terminated(name)) {
      // Node's TLS server takes bytes already read and put back (unshift) when the socket is paused.
      socket.unshift(hello)
      this.#https.emit('connection', socket)
      return
    }
    const agents = this.#options.agents
    if (!endpoint && agents?.names.has(name)) {
      socket.unshift(hello)
      agents.accept(socket)
      return
    }
    this.#log.debug({ client: socket.remoteAddress, name }, 'tls: no endpoint for this name')
    socket.destroy()
  }

  #passThrough (socket: Socket, endpoint: Endpoint, hello: Buffer): void {
    const started = performance.now()
    const ends = connectionEnds(socket)
    const clientIp = socket.remoteAddress ?? ''
    const remotePort = socket.remotePort ?? 0
    const policy = this.#policies.get(endpoint.id)
    if (policy === undefined || !admitted(policy, socket, endpoint, 'tls')) {
      socket.destroy()
      return
    }
    endpoint.dial({ remoteAddress: clientIp, remotePort }).then((stream) => {
      if (socket.destroyed) return stream.destroy()
      const version = endpoint.spec.proxyProto
      if (version) stream.write(proxyHeader(version, socket))
      stream.write(hello)
      splice(socket, stream, (bytesIn, bytesOut) => {
        observeConnection(endpoint, 'tls', ends, bytesIn + hello.length, bytesOut)
        endpoint.hooks.onRequest?.({
          method: 'TLS', path: `${clientIp}:${remotePort}`, status: 0, durationMs: Math.round(performance.now() - started), clientIp, bytesIn: bytesIn + hello.length, bytesOut,
        })
      })
      socket.resume()
    }, (error: Error) => {
      this.#log.info({ client: clientIp, err: error.message }, 'tls upstream unreachable')
      reset(socket) // a clean close would look like an upstream that accepted and sent nothing
    })
  }

  close (): Promise<void> {
    this.#stopListening()
    this.#policies.clear()
    return new Promise((resolve) => {
      this.#server.close(() => resolve())
      for (const socket of this.#sockets) socket.destroy()
      this.#https.close()
      this.#h2.stop()
    })
  }
}
