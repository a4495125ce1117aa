// Per-endpoint upstream state, built once at bind time: an undici Pool whose "sockets" are tunnel streams
// from the endpoint's Dialer (keep-alive reuses them), and the compiled policy. The pool is made on the first
// request and released when it has been idle (no stream, nothing running) for two of the edge's sweeps: an
// idle tunnel then costs no pool (its 2,048-slot queue was a third of an idle tunnel's memory, issue 13). With --upstream-tls the
// edge runs a TLS client over each stream; with --upstream-protocol http2 undici speaks HTTP/2 to the
// service (negotiated by ALPN over TLS, or with prior knowledge over the plain stream).
import { Pool, type Client, type Dispatcher } from 'undici'
import { Duplex } from 'node:stream'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import { createRequire } from 'node:module'
import { PortholeError } from '../core/errors.js'
import type { ClientAddress, Endpoint } from '../core/endpoint.js'
import type { CompiledPolicy } from '../policy/compiled.js'
import { CORE_STREAMS, SPARE_IDLE_MS, spareStreamsClose } from './spare-streams.js'
import { closedSoon, dialWithRoom } from './tunnel-pool.js'

export interface UpstreamLimits {
  /** Streams kept open to one endpoint's upstream at most (keep-alive pool size). */
  readonly connections: number
  /** Wait at most this long for response headers, and between body chunks. */
  readonly timeoutMs: number
  readonly maxResponseHeaderSize: number
  /**
   * Asked when the endpoint's agent session refused a stream at its max-streams-per-session (PH_3002): closes an
   * idle stream of that session somewhere (resolving once it has closed) so that the dial may be tried once more,
   * or says there is none (undefined).
   */
  readonly makeRoom?: (endpoint: Endpoint) => Promise<void> | undefined
}

export class Upstream {
  #pool: Pool | null = null
  /** The pool's clients (spare-streams.ts), to find an idle one when another endpoint of the session needs room. */
  #clients = new Set<Client>()
  /** No request since the last sweep, and the pool had no stream then. */
  #idle = false
  readonly endpoint: Endpoint
  readonly #limits: UpstreamLimits
  readonly policy: CompiledPolicy
  readonly hostHeader: string | undefined
  /**
   * The public client of the latest request dispatched: the Dialer's argument when that dispatch makes the pool
   * open a stream (undici connects from dispatch(), or a microtask later for a streamed body). With keep-alive a
   * stream then serves later requests of other clients too, as any reverse proxy's upstream connection does.
   */
  #client: ClientAddress = { remoteAddress: '0.0.0.0', remotePort: 0 }

  constructor (endpoint: Endpoint, policy: CompiledPolicy, limits: UpstreamLimits) {
    this.policy = policy
    this.hostHeader = endpoint.spec.hostHeader
    this.endpoint = endpoint
    this.#limits = limits
  }

  /** The endpoint's pool, made now if it has none. */
  get pool (): Pool {
    return this.#pool ??= this.#createPool()
  }

  /** The pool's counters, or undefined while there is no pool (no request yet, or released). */
  get stats (): Pool['stats'] | undefined {
    return this.#pool?.stats
  }

  /**
   * Called by the edge's periodic sweep: drops the pool once it had no stream and nothing running at two sweeps
   * in a row with no request between them (keep-alive streams close after 30 s idle). A later request makes a new one.
   */
  sweep (): void {
    const pool = this.#pool
    if (pool === null) return
    const { connected, size, queued } = pool.stats
    if (connected > 0 || size > 0 || queued > 0) {
      this.#idle = false
      return
    }
    if (!this.#idle) {
      this.#idle = true
      return
    }
    this.#pool = null
    this.#idle = false
    void pool.destroy().catch(noop)
  }

  #createPool (): Pool {
    const endpoint = this.endpoint
    const limits = this.#limits
    const { upstream } = endpoint.spec
    const h2 = upstream.protocol === 'http2'
    // SSH never tells us the service's host name; the Host we send (if set) is the best SNI there is.
    const servername = upstream.tls ? serverName(endpoint.spec.hostHeader) : ''
    const clients = this.#clients = new Set<Client>()
    const pool = new Pool(upstream.tls ? 'https://upstream.invalid' : 'http://upstream.invalid', {
      allowH2: h2,
      connections: limits.connections,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 60_000,
      headersTimeout: limits.timeoutMs,
      bodyTimeout: limits.timeoutMs,
      maxHeaderSize: limits.maxResponseHeaderSize,
      factory: spareStreamsClose(CORE_STREAMS, SPARE_IDLE_MS, clients), // a burst's extra streams close soon once idle
      connect: (_options, callback) => {
        dialWithRoom(endpoint, this.#client, limits.makeRoom)
          .then((stream): Duplex | Promise<Duplex> => upstream.tls ? withTls(asSocket(stream), servername, upstream, h2) : priorKnowledge(asSocket(stream), h2))
          .then((socket) => callback(null, skipInterimContinue(endAfterLastRead(readChunkByChunk(socket))) as never), (error: Error) => callback(error, null))
      },
    })
    pool.on('connectionError', noop)
    return pool
  }

  /**
   * Requests waiting in the pool's queue for a stream (pool.stats.queued). Read per request: `pool.stats` builds
   * a PoolStats that walks every client of the pool five times (4.6% of gateway CPU per keep-alive request in
   * `npm run bench`); this reads the one counter undici keeps, falling back to stats if undici changes.
   * No pool yet (or released): nothing queued, and none is made for asking.
   */
  get queued (): number {
    const pool = this.#pool
    if (pool === null) return 0
    const queued = (pool as unknown as Record<symbol, unknown>)[kQueued]
    return typeof queued === 'number' ? queued : pool.stats.queued
  }

  /** Sends one request for the public client `client` (the stream it may need is dialled for that client). */
  dispatch (client: ClientAddress, options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): void {
    this.#client = client
    this.#idle = false
    this.pool.dispatch(options, handler)
  }

  /**
   * Closes one stream of this endpoint's that is connected and carries nothing (another endpoint of the same
   * agent session needs the room); resolves as closedSoon (tunnel-pool.ts). Undefined when none is idle.
   * The pool's client stays and opens a new stream when next asked, as when an upstream ends a kept connection.
   */
  closeIdleStream (): Promise<void> | undefined {
    for (const client of this.#clients) {
      if (client.closed || client.destroyed) continue
      const { connected, size } = client.stats
      const socket = (client as unknown as Record<symbol, Duplex | null | undefined>)[kSocket]
      if (!connected || size > 0 || socket == null || socket.destroyed) continue
      // Under TLS, the room is there once the tunnel stream below has closed (the TLS socket closes first).
      const tunnel = tunnelUnder.get(socket) ?? socket
      const closed = closedSoon(tunnel)
      socket.destroy()
      tunnel.destroy()
      return closed
    }
    return undefined
  }

  close (): Promise<void> {
    const pool = this.#pool
    this.#pool = null
    return pool === null ? Promise.resolve() : pool.destroy().catch(noop)
  }
}

function noop (): void {}

/** undici's own keys (lib/core/symbols.js; the same module instance undici uses): a pool's queue length, and a
 *  client's socket (a tunnel stream here). */
const { kQueued, kSocket } = createRequire(import.meta.url)('undici/lib/core/symbols.js') as { kQueued: symbol, kSocket: symbol }

function serverName (hostHeader: string | undefined): string {
  if (hostHeader === undefined || hostHeader === 'rewrite') return 'localhost'
  return hostHeader.replace(/:\d+$/, '').replace(/^\[|\]$/g, '')
}

/** undici picks HTTP/2 when the socket says ALPN chose h2; over a plain stream that is h2c prior knowledge. */
function priorKnowledge (socket: Duplex, h2: boolean): Duplex {
  if (h2) (socket as Duplex & { alpnProtocol?: string }).alpnProtocol = 'h2'
  return socket
}

/** The tunnel stream under each TLS client withTls made (closeIdleStream waits for it). */
const tunnelUnder = new WeakMap<Duplex, Duplex>()

/** A TLS client over the tunnel stream; certificate checked only with --upstream-tls-verify. */
function withTls (stream: Duplex, servername: string, upstream: Endpoint['spec']['upstream'], h2: boolean): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({
      socket: stream,
      servername: /^[\d.]+$|:/.test(servername) ? undefined : servername,
      rejectUnauthorized: upstream.verify,
      ...(upstream.cas !== null ? { ca: upstream.cas } : {}),
      ALPNProtocols: h2 ? ['h2', 'http/1.1'] : ['http/1.1'],
      minVersion: 'TLSv1.2',
    })
    tunnelUnder.set(socket, stream)
    const onError = (error: Error): void => {
      stream.destroy()
      reject(new PortholeError('PH_3009', error.message, { cause: error }))
    }
    socket.once('error', onError)
    socket.once('secureConnect', () => {
      socket.off('error', onError)
      resolve(socket)
    })
  })
}

/** undici calls these socket methods unconditionally (its HTTP/2 client too); a tunnel stream need not have them. */
function asSocket (stream: Duplex): Duplex {
  const socket = stream as Duplex & { setNoDelay?: () => void, setKeepAlive?: () => void, setTimeout?: () => void, ref?: () => void, unref?: () => void }
  socket.setNoDelay ??= noop
  socket.setKeepAlive ??= noop
  socket.setTimeout ??= noop
  socket.ref ??= noop
  socket.unref ??= noop
  return socket
}

interface ReadableInternals {
  readonly length: number
  readonly objectMode: boolean
  /** Node >= 20.19 (an array read from bufferIndex on), or the older linked list. */
  readonly buffer: Array<{ length: number }> | { head: { data: { length: number } } | null }
  readonly bufferIndex?: number
}

/**
 * undici reads its socket with read() and no size, which joins everything buffered into one new Buffer
 * (Readable's fromList copies every byte). A tunnel stream buffers one chunk per SSH packet (<= 32 KiB), so
 * a download was copied once more on its way (fromList + its allocation: 4-5% of gateway CPU per GiB in a perf
 * profile). Here read() with no size hands out the first buffered chunk as it is; undici reads until null,
 * so it gets the same bytes in the same order, without the copy.
 */
export function readChunkByChunk (socket: Duplex): Duplex {
  const state = (socket as unknown as { _readableState?: ReadableInternals })._readableState
  if (state === undefined || state.objectMode) return socket
  const read = socket.read
  socket.read = function (this: Duplex, size?: number) {
    if (size === undefined && state.length > 0) {
      const { buffer } = state
      const first = Array.isArray(buffer) ? buffer[state.bufferIndex ?? 0] : buffer.head?.data
      if (first !== undefined && first.length > 0 && first.length < state.length) return read.call(this, first.length)
    }
    return read.call(this, size)
  }
  return socket
}

/**
 * Holds a stream's end back until a read has drained what came before it, and delivers it a tick later.
 * A Readable whose last chunk and end are both buffered emits 'end' from the very read() that drains it;
 * undici's HTTP/1.1 parser may pause for backpressure in the middle of what that read gave it, and it
 * asserts on 'end' while paused (client-h1 Parser.finish: assert(!this.paused)). That took the whole gateway
 * down whenever a service sent its answer and closed at once (HTTP/1.0 servers, python -m http.server) to a
 * public client slower than the tunnel. Delivered later, the end is read only once undici reads again.
 */
function endAfterLastRead (socket: Duplex): Duplex {
  const push = socket.push
  const read = socket.read
  let held = false
  socket.push = function (this: Duplex, chunk: unknown, encoding?: BufferEncoding) {
    if (chunk !== null || this.readableLength === 0) return push.call(this, chunk, encoding)
    held = true
    return false
  }
  socket.read = function (this: Duplex, size?: number) {
    const data: unknown = read.call(this, size)
    if (held && this.readableLength === 0) {
      held = false
      process.nextTick(() => push.call(this, null))
    }
    return data
  }
  return socket
}

const CONTINUE = /^HTTP\/1\.[01] 100[ \r]/
/** Enough bytes to tell a `100` status line from any other ("HTTP/1.1 100 "). */
const STATUS_PREFIX = 13
/** An interim head longer than this is not a 100 Continue we skip; undici gets the bytes as they are. */
const MAX_INTERIM_HEAD = 8 * 1024

/**
 * Drops `100 Continue` interim responses before undici's HTTP/1.1 parser sees them. undici refuses a 100 by
 * design (it destroys the connection: "bad response", nodejs/undici#201), so an upstream that sends one
 * unasked (RFC 9110 15.2: a client must accept an unexpected 1xx) got its answer turned into a 502. We never
 * forward Expect, and node has already answered a public client's Expect: 100-continue itself, so a 100 from
 * the upstream carries nothing to pass on. Other 1xx (103 Early Hints) undici delivers, and the edge passes
 * them on.
 *
 * Only where a response begins is looked at: after undici writes a request head (with one request at a time
 * per connection, a string that is not a chunk-size line: body bytes are written as Buffers), the first
 * upstream bytes are checked for a 100 status line; its head, which has no body, is dropped up to its blank
 * line, and the check repeats for what follows. Everything else passes through untouched. HTTP/2 (nghttp2
 * handles 1xx itself) is left alone.
 */
function skipInterimContinue (socket: Duplex): Duplex {
  if ((socket as Duplex & { alpnProtocol?: string | false }).alpnProtocol === 'h2') return socket
  const write = socket.write
  const push = socket.push
  let atResponseStart = false
  let held: Buffer | null = null
  socket.write = function (this: Duplex, chunk: unknown, ...rest: unknown[]) {
    if (typeof chunk === 'string' && !chunk.startsWith('\r\n')) atResponseStart = true
    return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest)
  } as Duplex['write']
  socket.push = function (this: Duplex, chunk: Buffer | null, encoding?: BufferEncoding) {
    if (chunk === null || !atResponseStart) {
      if (held !== null) {
        push.call(this, held)
        held = null
      }
      return push.call(this, chunk, encoding)
    }
    let data = held === null ? chunk : Buffer.concat([held, chunk])
    held = null
    for (;;) {
      const prefix = data.subarray(0, STATUS_PREFIX).toString('latin1')
      if (data.length < STATUS_PREFIX && 'HTTP/1.1 100 '.startsWith(prefix.replace('HTTP/1.0', 'HTTP/1.1'))) {
        held = data // too short to tell yet
        return true
      }
      if (!CONTINUE.test(prefix)) break
      const end = data.indexOf('\r\n\r\n')
      if (end === -1) {
        if (data.length > MAX_INTERIM_HEAD) break
        held = data
        return true
      }
      data = data.subarray(end + 4)
      if (data.length === 0) return true
    }
    atResponseStart = false
    return push.call(this, data)
  }
  return socket
}
