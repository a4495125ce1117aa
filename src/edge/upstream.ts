// Per-endpoint upstream state, built once at bind time: an undici Pool whose "sockets" are tunnel streams
// from the endpoint's Dialer (keep-alive reuses them), and the compiled policy.
import { Pool } from 'undici'
import { Duplex } from 'node:stream'
import type { ClientAddress, Endpoint } from '../core/endpoint.js'
import type { CompiledPolicy } from '../policy/compiled.js'

export interface UpstreamLimits {
  /** Streams kept open to one endpoint's upstream at most (keep-alive pool size). */
  readonly connections: number
  /** Wait at most this long for response headers, and between body chunks. */
  readonly timeoutMs: number
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
      headersTimeout: limits.timeoutMs,
      bodyTimeout: limits.timeoutMs,
      maxHeaderSize: limits.maxResponseHeaderSize,
      connect: (_options, callback) => {
        endpoint.dial(this.lastClient).then(
          (stream: Duplex) => callback(null, asSocket(stream) as never),
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

/**
 * Makes a tunnel stream usable as undici's socket. undici ends a request by destroying its socket with the
 * reason (headers timeout, headers overflow) and reads that reason back from the 'error' event; ssh2's
 * Channel.destroy() ignores its argument and leaves `destroyed` false; this fixes both.
 */
function asSocket (stream: Duplex): Duplex {
  const socket = stream as Duplex & { setNoDelay?: () => void, setKeepAlive?: () => void, setTimeout?: () => void }
  socket.setNoDelay ??= noop
  socket.setKeepAlive ??= noop
  socket.setTimeout ??= noop
  const destroy = socket.destroy
  socket.destroy = function (this: Duplex, error?: Error) {
    destroy.call(this) // ssh2: end our side and send CHANNEL_CLOSE
    // Then the stream's own destroy, as net.Socket would: `destroyed` is true at once (undici's parser
    // stops on it) and the error is emitted on the next tick. ssh2 still emits 'close' when the peer agrees.
    return Duplex.prototype.destroy.call(this, this.listenerCount('error') > 0 ? error : undefined)
  }
  return socket
}
