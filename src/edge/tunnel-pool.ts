// The fast path's tunnel streams (fast-h1.ts), counted per endpoint and kept between exchanges as undici's pools
// keep their connections: a stream whose last exchange ended cleanly is parked for the next public connection to
// its endpoint, and taken by it instead of opening another SSH channel.
//
// A stream's listeners are set once, when it opens, and pass its events to whoever uses it now (Tunnel.user): a
// connection, or while it is parked the pool, for which any byte, end or close means the upstream is done with
// it. A connection going from one endpoint to another (a proxy in front carrying many names, or a load spread
// over many endpoints of one agent) parks one stream and takes another on each request; moving listeners on and
// off the streams then was a sixth of such a request (bench/scale.js many-endpoints, one session).
import type { Duplex } from 'node:stream'
import type { Endpoint } from '../core/endpoint.js'
import { closeParser, newParser, type HttpParser } from './llhttp.js'

/** How long a parked stream waits for a connection (undici's pool keeps an idle connection 4 s by default). */
export const POOL_IDLE_MS = 4000
/** How long a dial refused for the session's stream cap waits for a reclaimed tunnel to close (its agent confirms). */
const RECLAIM_WAIT_MS = 1000

/** Who a tunnel stream's events go to while it serves a connection. */
export interface TunnelUser {
  tunnelData (data: Buffer): void
  tunnelDrain (): void
  /** The stream ended or closed. */
  tunnelEnd (): void
}

/** A tunnel stream to one endpoint with its response parser. */
export class Tunnel {
  readonly endpoint: Endpoint
  readonly stream: Duplex
  readonly parser: HttpParser
  /** The connection relaying over it; null while parked or once closed. */
  user: TunnelUser | null = null
  /** When it was parked (performance.now()); -1 while a connection has it or once it is closed. */
  parkedAt = -1

  constructor (pool: TunnelPool, endpoint: Endpoint, stream: Duplex, maxHeaderSize: number) {
    this.endpoint = endpoint
    this.stream = stream
    this.parser = newParser('response', maxHeaderSize)
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
}

export class TunnelPool {
  readonly #maxPerEndpoint: number
  readonly #maxResponseHeaderSize: number
  /** Streams open per endpoint id, parked ones and those being opened included. */
  readonly #open = new Map<string, number>()
  /** Parked streams per endpoint id, the most recently parked last. An endpoint's list stays (empty) until
   *  dropAll: an endpoint used now and then does not make and drop a list each time. */
  readonly #parked = new Map<string, Tunnel[]>()
  #closed = false

  constructor (maxPerEndpoint: number, maxResponseHeaderSize: number) {
    this.#maxPerEndpoint = maxPerEndpoint
    this.#maxResponseHeaderSize = maxResponseHeaderSize
  }

  /** Streams to an endpoint parked between exchanges (what tests look at). */
  parked (endpointId: string): number {
    return this.#parked.get(endpointId)?.length ?? 0
  }

  /** Whether another stream to `endpoint` may be opened; counts it if so (adopt it, or release the count). */
  take (endpoint: Endpoint): boolean {
    const open = this.#open.get(endpoint.id) ?? 0
    if (open >= this.#maxPerEndpoint) return false
    this.#open.set(endpoint.id, open + 1)
    return true
  }

  /** A stream opened after `take` becomes a Tunnel. */
  adopt (endpoint: Endpoint, stream: Duplex): Tunnel {
    return new Tunnel(this, endpoint, stream, this.#maxResponseHeaderSize)
  }

  release (endpoint: Endpoint): void {
    const open = (this.#open.get(endpoint.id) ?? 1) - 1
    if (open <= 0) this.#open.delete(endpoint.id)
    else this.#open.set(endpoint.id, open)
  }

  /**
   * Keeps a tunnel that is between exchanges (its last response complete, its request whole, the upstream keeping
   * the connection) for the next connection to its endpoint.
   */
  park (tunnel: Tunnel): void {
    tunnel.user = null
    if (this.#closed) return this.close(tunnel)
    tunnel.parkedAt = performance.now()
    if (tunnel.stream.isPaused()) tunnel.stream.resume() // its end or a stray byte must be seen
    let list = this.#parked.get(tunnel.endpoint.id)
    if (list === undefined) this.#parked.set(tunnel.endpoint.id, list = [])
    list.push(tunnel)
  }

  /** The most recently parked tunnel to `endpoint`, taken out of the pool; undefined when none waits. */
  unpark (endpoint: Endpoint): Tunnel | undefined {
    const tunnel = this.#parked.get(endpoint.id)?.pop()
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
    this.release(tunnel.endpoint)
  }

  /** A parked tunnel the upstream closed or wrote to, or that waited too long: out of the pool, and closed. */
  drop (tunnel: Tunnel): void {
    if (tunnel.parkedAt === -1) return // in use (its user hears of it) or closed already
    const list = this.#parked.get(tunnel.endpoint.id)
    const at = list?.indexOf(tunnel) ?? -1
    if (at !== -1) list!.splice(at, 1)
    this.close(tunnel)
  }

  /**
   * Closes the tunnel parked longest among those of `endpoint`'s agent session (its streams count against the
   * session's max-streams-per-session); resolves once it has closed, or after RECLAIM_WAIT_MS. Undefined when the
   * session has none parked. Walks every endpoint's list: only when a session refused a stream.
   */
  reclaim (endpoint: Endpoint): Promise<void> | undefined {
    const { sessionId, transport } = endpoint.agent
    let oldest: Tunnel | undefined
    for (const list of this.#parked.values()) {
      const first = list[0]
      if (first === undefined || first.endpoint.agent.sessionId !== sessionId || first.endpoint.agent.transport !== transport) continue
      if (oldest === undefined || first.parkedAt < oldest.parkedAt) oldest = first
    }
    if (oldest === undefined) return undefined
    const { stream } = oldest
    this.drop(oldest)
    // A parked stream has not closed (it would have left the pool): its 'close' comes when the agent confirms.
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, RECLAIM_WAIT_MS)
      stream.once('close', () => {
        clearTimeout(timer)
        resolve()
      })
    })
  }

  /** The endpoint was unbound: its parked tunnels close. Whether any of its streams is still open. */
  dropAll (endpoint: Endpoint): boolean {
    for (const tunnel of [...this.#parked.get(endpoint.id) ?? []]) this.drop(tunnel)
    this.#parked.delete(endpoint.id)
    return this.#open.has(endpoint.id)
  }

  /** Drops the tunnels parked longer than POOL_IDLE_MS (each list is oldest first). */
  sweep (now: number): void {
    for (const list of this.#parked.values()) {
      while (list.length > 0 && now - list[0]!.parkedAt > POOL_IDLE_MS) this.drop(list[0]!)
    }
  }

  /** The gateway is closing: every parked tunnel closes, and none is parked from now on. */
  closeAll (): void {
    this.#closed = true
    for (const list of this.#parked.values()) for (const tunnel of [...list]) this.drop(tunnel)
    this.#parked.clear()
  }
}

function noop (): void {}
