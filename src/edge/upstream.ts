// Per-endpoint upstream state, built once at bind time: an undici Pool whose "sockets" are tunnel streams
// from the endpoint's Dialer (keep-alive reuses them), and the compiled policy.
import { Pool } from 'undici'
import type { Duplex } from 'node:stream'
import type { ClientAddress, Endpoint } from '../core/endpoint.js'
import type { CompiledPolicy } from '../policy/compiled.js'

const FIVE_MINUTES = 5 * 60_000

export interface UpstreamLimits {
  /** Streams kept open to one endpoint's upstream at most (keep-alive pool size). */
  readonly connections: number
  readonly maxResponseHeaderSize: number
}

export class Upstream {
  readonly pool: Pool
  readonly policy: CompiledPolicy
  readonly hostHeader: string | undefined
  /** The public client of the latest request: given as originator when the pool opens a new stream. */
  lastClient: ClientAddress = { remoteAddress: '0.0.0.0', remotePort: 0 }

  constructor (endpoint: Endpoint, policy: CompiledPolicy, limits: UpstreamLimits) {
    this.policy = policy
    this.hostHeader = endpoint.spec.hostHeader
    this.pool = new Pool('http://upstream.invalid', {
      connections: limits.connections,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      keepAliveMaxTimeout: 60_000,
      headersTimeout: FIVE_MINUTES,
      bodyTimeout: FIVE_MINUTES,
      maxHeaderSize: limits.maxResponseHeaderSize,
      connect: (_options, callback) => {
        endpoint.dial(this.lastClient).then(
          (stream: Duplex) => {
            // undici treats the stream as its socket; these are the socket calls it may make.
            const socket = stream as Duplex & { setNoDelay?: () => void, setKeepAlive?: () => void, setTimeout?: () => void }
            socket.setNoDelay ??= noop
            socket.setKeepAlive ??= noop
            socket.setTimeout ??= noop
            callback(null, socket as never)
          },
          (error: Error) => callback(error, null),
        )
      },
    })
    this.pool.on('connectionError', noop)
  }

  close (): Promise<void> {
    return this.pool.destroy().catch(noop)
  }
}

function noop (): void {}
