// The fast path's tunnel streams (fast-h1.ts), counted per endpoint and kept between exchanges as undici's pools
// keep their connections: a stream whose last exchange ended cleanly is parked for the next public connection to
// its endpoint, and taken by it instead of opening another SSH channel.
//
// A stream's listeners are set once, when it opens, and pass its events to whoever uses it now (Tunnel.user): a
// connection, or while it is parked the pool, for which any byte, end or close means the upstream is done with
// it. The response parser's callbacks are set once too, and call the user's. A connection going from one endpoint
// to another (a proxy in front carrying many names, or a load spread over many endpoints of one agent) parks one
// stream and takes another on each request; moving listeners on and off the streams then was a sixth of such a
// request (bench/scale.js many-endpoints, one session).
import type { Duplex } from 'node:stream'
import { StreamsFullError, type ClientAddress, type Endpoint } from '../core/endpoint.js'
import { closeParser, HTTPParser, newParser, type HeadersComplete, type HttpParser } from './llhttp.js'

/** How long a parked stream waits for a connection at most (undici's pool keeps an idle connection 4 s by default). */
export const POOL_IDLE_MS = 4000
/** An upstream that says `Keep-Alive: timeout=N` is trusted for N s less this (undici's keepAliveTimeoutThreshold). */
const KEEP_ALIVE_MARGIN_MS = 2000
const KEEP_ALIVE_TIMEOUT = /timeout=(\d+)/i

/**
 * How long a stream may wait parked after a response with these raw fields: POOL_IDLE_MS, or less when the
 * upstream's Keep-Alive says it closes sooner (node's servers say 5 s); 0 when it should not wait at all. A stream
 * the upstream closes as it is taken fails its request, as with any pool.
 */
export function idleLimitOf (raw: readonly string[]): number {
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length !== 10 || raw[i]!.toLowerCase() !== 'keep-alive') continue
    const match = KEEP_ALIVE_TIMEOUT.exec(raw[i + 1]!)
    if (match !== null) return Math.max(0, Math.min(POOL_IDLE_MS, Number(match[1]) * 1000 - KEEP_ALIVE_MARGIN_MS))
  }
  return POOL_IDLE_MS
}

/** How long a dial refused at the session's stream cap waits for a stream closed for room (its agent confirms). */
export const ROOM_WAIT_MS = 1000

/** Resolves on the stream's 'close' (for an SSH channel: when the agent confirmed it), or after ROOM_WAIT_MS. */
export function closedSoon (stream: Duplex): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ROOM_WAIT_MS)
    stream.once('close', () => {
      clearTimeout(timer)
      resolve()
    })
  })
}

/**
 * The endpoint's Dialer, once more when its agent session refused at its stream cap (StreamsFullError) and
 * `makeRoom` closed one of the session's idle streams, if the stream is still `wanted` then; else the refusal.
 */
export function dialWithRoom (endpoint: Endpoint, client: ClientAddress, makeRoom: ((endpoint: Endpoint) => Promise<void> | undefined) | undefined, wanted = (): boolean => true): Promise<Duplex> {
  return endpoint.dial(client).catch((error: unknown) => {
    const room = error instanceof StreamsFullError ? makeRoom?.(endpoint) : undefined
    if (room === undefined) throw error
    return room.then(() => {
      if (!wanted()) throw error
      return endpoint.dial(client)
    })
  })
}

/** Who a tunnel stream's events, and its response parser's callbacks, go to while it serves a connection. */
export interface TunnelUser {
  tunnelData (data: Buffer): void
  tunnelDrain (): void
  /** The stream ended or closed. */
  tunnelEnd (): void
  /** The response parser's kOnHeaders (a head of more than 32 fields, or trailers). */
  responseFields (fields: string[]): void
  responseHead: HeadersComplete
  responseBody (chunk: Buffer): void
  responseComplete (): void
}

/** An endpoint's streams: how many are open (parked and being opened included), and those parked. */
interface EndpointStreams {
  open: number
  /** The most recently parked last. */
  readonly parked: Tunnel[]
}

/** A tunnel stream to one endpoint with its response parser. */
export class Tunnel {
  readonly endpoint: Endpoint
  readonly stream: Duplex
  readonly parser: HttpParser
  /** Its endpoint's count and pool (kept here: parking it needs no lookup). */
  readonly streams: EndpointStreams
  /** The connection relaying over it; null while parked or once closed. */
  user: TunnelUser | null = null
  /** When it was parked (the pool's clock); -1 while a connection has it or once it is closed. */
  parkedAt = -1
  /** Its user paused it (the public client is the slow side); parking resumes it. */
  paused = false
  /** How long it may wait parked (idleLimitOf its last response). */
  idleLimitMs = POOL_IDLE_MS
  /** Exchanges it carried to the end (more than none: the upstream has kept it between exchanges). */
  served = 0

  constructor (pool: TunnelPool, endpoint: Endpoint, stream: Duplex, streams: EndpointStreams, maxHeaderSize: number) {
    this.endpoint = endpoint
    this.stream = stream
    this.streams = streams
    // The parser runs only for a user (tunnelData): a parked stream's byte drops it unparsed.
    const parser = this.parser = newParser('response', maxHeaderSize)
    parser[HTTPParser.kOnHeaders] = (fields: string[]) => this.user!.responseFields(fields)
    parser[HTTPParser.kOnHeadersComplete] = ((major, minor, fields, method, url, status, message, upgrade, keepAlive) =>
      this.user!.responseHead(major, minor, fields, method, url, status, message, upgrade, keepAlive)) satisfies HeadersComplete
    parser[HTTPParser.kOnBody] = (chunk: Buffer) => this.user!.responseBody(chunk)
    parser[HTTPParser.kOnMessageComplete] = () => this.user!.responseComplete()
    const ended = (): void => {
      if (this.user !== null) this.user.tunnelEnd()
      else pool.drop(this)
    }
    stream.on('data', (data: Buffer) => {
      if (this.user !== null) this.user.tunnelData(data)
      else pool.drop(this)
    })
    stream.on('drain', () => this.user?.tunnelDrain())
    stream.on('end', ended)
    stream.on('close', ended)
    stream.on('error', noop) // its end comes as 'close'
  }

  pause (): void {
    this.paused = true
    this.stream.pause()
  }

  resume (): void {
    this.paused = false
    this.stream.resume()
  }
}

export class TunnelPool {
  readonly #maxPerEndpoint: number
  readonly #maxResponseHeaderSize: number
  /** How often sweep() runs: a parked tunnel is dropped at the last sweep before its idle limit. */
  readonly #sweepIntervalMs: number
  /** Per endpoint id, while it has a stream open. */
  readonly #streams = new Map<string, EndpointStreams>()
  /** When tunnels are parked: the last sweep's time, not a clock read per park (it is never later than the
   *  park, so a tunnel dropped by its stamp is never kept past its limit). */
  #clock = performance.now()
  #closed = false

  constructor (maxPerEndpoint: number, maxResponseHeaderSize: number, sweepIntervalMs: number) {
    this.#maxPerEndpoint = maxPerEndpoint
    this.#maxResponseHeaderSize = maxResponseHeaderSize
    this.#sweepIntervalMs = sweepIntervalMs
  }

  /** Streams to an endpoint parked between exchanges (what tests look at). */
  parked (endpointId: string): number {
    return this.#streams.get(endpointId)?.parked.length ?? 0
  }

  /** Whether another stream to `endpoint` may be opened; counts it if so (adopt it, or release the count). */
  take (endpoint: Endpoint): boolean {
    const streams = this.#streams.get(endpoint.id)
    if (streams === undefined) {
      this.#streams.set(endpoint.id, { open: 1, parked: [] })
      return true
    }
    if (streams.open >= this.#maxPerEndpoint) return false
    streams.open++
    return true
  }

  /** A stream opened after `take` becomes a Tunnel. */
  adopt (endpoint: Endpoint, stream: Duplex): Tunnel {
    return new Tunnel(this, endpoint, stream, this.#streams.get(endpoint.id)!, this.#maxResponseHeaderSize)
  }

  /** Uncounts a stream that was taken but is not a Tunnel (its dial failed, or its connection went meanwhile). */
  release (endpoint: Endpoint): void {
    const streams = this.#streams.get(endpoint.id)
    if (streams !== undefined) this.#uncount(endpoint.id, streams)
  }

  #uncount (id: string, streams: EndpointStreams): void {
    if (--streams.open <= 0 && this.#streams.get(id) === streams) this.#streams.delete(id)
  }

  /**
   * Keeps a tunnel that is between exchanges (its last response complete, its request whole, the upstream keeping
   * the connection) for the next connection to its endpoint.
   */
  park (tunnel: Tunnel): void {
    tunnel.user = null
    // A limit shorter than a sweep interval could not be kept: such a stream is not worth parking.
    if (this.#closed || tunnel.idleLimitMs < this.#sweepIntervalMs) return this.close(tunnel)
    tunnel.parkedAt = this.#clock
    if (tunnel.paused) tunnel.resume() // its end or a stray byte must be seen
    tunnel.streams.parked.push(tunnel)
  }

  /** The most recently parked tunnel to `endpoint`, taken out of the pool; undefined when none waits. */
  unpark (endpoint: Endpoint): Tunnel | undefined {
    const tunnel = this.#streams.get(endpoint.id)?.parked.pop()
    if (tunnel === undefined) return undefined
    tunnel.parkedAt = -1
    if (tunnel.endpoint === endpoint) return tunnel
    // Another binding under the same id (unbinding drops a binding's streams, so this is not expected): not its.
    this.close(tunnel)
    return undefined
  }

  /** Closes a tunnel nobody will use again, and uncounts it. */
  close (tunnel: Tunnel): void {
    tunnel.user = null
    tunnel.parkedAt = -1
    closeParser(tunnel.parser)
    tunnel.stream.destroy()
    this.#uncount(tunnel.endpoint.id, tunnel.streams)
  }

  /** A parked tunnel the upstream closed or wrote to, or that waited too long: out of the pool, and closed. */
  drop (tunnel: Tunnel): void {
    if (tunnel.parkedAt === -1) return // in use (its user hears of it) or closed already
    const { parked } = tunnel.streams
    const at = parked.indexOf(tunnel)
    if (at !== -1) parked.splice(at, 1)
    this.close(tunnel)
  }

  /**
   * Closes the tunnel parked longest among those of `endpoint`'s agent session (its streams count against the
   * session's max-streams-per-session); resolves as closedSoon. Undefined when the session has none parked.
   * Walks every endpoint's streams: only when a session refused a stream.
   */
  reclaim (endpoint: Endpoint): Promise<void> | undefined {
    const { sessionId, transport } = endpoint.agent
    let oldest: Tunnel | undefined
    for (const { parked } of this.#streams.values()) {
      const first = parked[0]
      if (first === undefined || first.endpoint.agent.sessionId !== sessionId || first.endpoint.agent.transport !== transport) continue
      if (oldest === undefined || first.parkedAt < oldest.parkedAt) oldest = first
    }
    if (oldest === undefined) return undefined
    // A parked stream has not closed (it would have left the pool): its 'close' comes when the agent confirms.
    const closed = closedSoon(oldest.stream)
    this.drop(oldest)
    return closed
  }

  /** The endpoint was unbound: its parked tunnels close. Whether any of its streams is still open. */
  dropAll (endpoint: Endpoint): boolean {
    const streams = this.#streams.get(endpoint.id)
    if (streams === undefined) return false
    for (const tunnel of [...streams.parked]) this.drop(tunnel)
    return this.#streams.has(endpoint.id)
  }

  /** Drops the tunnels that would pass their idle limit before the next sweep. */
  sweep (now: number): void {
    this.#clock = now
    const horizon = now + this.#sweepIntervalMs
    for (const { parked } of this.#streams.values()) {
      for (let i = 0; i < parked.length;) {
        const tunnel = parked[i]!
        if (horizon - tunnel.parkedAt > tunnel.idleLimitMs) this.drop(tunnel) // out of the list: i stays
        else i++
      }
    }
  }

  /** The gateway is closing: every parked tunnel closes, and none is parked from now on. */
  closeAll (): void {
    this.#closed = true
    for (const { parked } of [...this.#streams.values()]) for (const tunnel of [...parked]) this.drop(tunnel)
  }
}

function noop (): void {}
