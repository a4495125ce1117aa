// Public TCP endpoints: one listener per bound port of the pool. Each public connection runs the
// endpoint's on_tcp_connect rules (restrict-ips) and then gets a tunnel stream of its own, piped both ways.
// No idle timeout on the streams: long-lived connections are the point; liveness is the SSH session's job.
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import type { Logger } from 'pino'
import type { Endpoint } from '../core/endpoint.js'
import type { Registry } from '../core/registry.js'
import type { CompiledPolicy } from '../policy/compiled.js'
import { proxyHeader } from './proxy-protocol.js'
import { listenOn } from '../net/listen.js'
import { reset, splice } from '../net/splice.js'
import { connectionEnds, observeConnection } from '../observe/channels.js'

export interface TcpEdgeOptions {
  readonly registry: Registry
  /** The interface TCP endpoints listen on. */
  readonly host: string
  readonly log: Logger
}

/** Runs on_tcp_connect rules for a public connection to a tcp or tls endpoint; true when it may go on. */
export function admitted (policy: CompiledPolicy, socket: Socket, endpoint: Endpoint, protocol: 'tcp' | 'tls'): boolean {
  const steps = policy.onTcpConnect
  if (steps === null) return true
  const ctx = { clientIp: socket.remoteAddress ?? '', clientPort: socket.remotePort ?? 0, serverPort: socket.localPort ?? 0, endpointHost: endpoint.host, protocol, connection: socket }
  for (const step of steps) if (step(ctx)) return false
  return true
}

export class TcpEdge {
  readonly #options: TcpEdgeOptions
  /** Each tcp endpoint's listener and how to take it down, by endpoint id; closed when the registry unbinds it. */
  readonly #listeners = new Map<string, () => void>()
  readonly #stopListening: () => void

  constructor (options: TcpEdgeOptions) {
    this.#options = options
    this.#stopListening = options.registry.onUnbind((endpoint) => this.#detach(endpoint.id))
  }

  #detach (endpointId: string): void {
    const close = this.#listeners.get(endpointId)
    if (close === undefined) return
    this.#listeners.delete(endpointId)
    close()
  }

  /** Closes every endpoint's listener (the gateway is stopping). */
  close (): void {
    this.#stopListening()
    for (const id of [...this.#listeners.keys()]) this.#detach(id)
  }

  /** Starts listening on the endpoint's port; rejects (EADDRINUSE, ...) if the port cannot be had. */
  async attach (endpoint: Endpoint, policy: CompiledPolicy): Promise<void> {
    const log = this.#options.log.child({ port: endpoint.port })
    // Each connection with how to cut it when the endpoint goes (a reset unless its stream ended).
    const connections = new Map<Socket, () => void>()
    const server: Server = createServer({ noDelay: true }, (socket) => {
      connections.set(socket, () => reset(socket))
      socket.once('close', () => connections.delete(socket))
      this.#onConnection(endpoint, policy, socket, log, (abort) => { if (!socket.destroyed) connections.set(socket, abort) })
    })
    await listenOn(server, this.#options.host, endpoint.port!)
    server.on('error', (error) => log.warn({ err: error.message }, 'tcp listener error'))
    if (!this.#options.registry.isBound(endpoint)) { // unbound while the listener started: leave nothing open
      server.close()
      return
    }
    this.#listeners.set(endpoint.id, () => {
      server.close()
      for (const abort of connections.values()) abort()
    })
    log.debug({ address: (server.address() as AddressInfo).address }, 'tcp endpoint listening')
  }

  #onConnection (endpoint: Endpoint, policy: CompiledPolicy, socket: Socket, log: Logger, spliced: (abort: () => void) => void): void {
    const started = performance.now()
    const ends = connectionEnds(socket)
    const clientIp = socket.remoteAddress ?? ''
    const remotePort = socket.remotePort ?? 0
    socket.on('error', () => {})
    if (!admitted(policy, socket, endpoint, 'tcp')) {
      log.debug({ client: clientIp }, 'tcp connection denied by policy')
      socket.destroy()
      return
    }
    socket.pause()
    endpoint.dial({ remoteAddress: clientIp, remotePort }).then((stream) => {
      if (socket.destroyed) return stream.destroy()
      const version = endpoint.spec.proxyProto
      if (version) stream.write(proxyHeader(version, socket))
      spliced(splice(socket, stream, (bytesIn, bytesOut) => {
        observeConnection(endpoint, 'tcp', ends, bytesIn, bytesOut)
        endpoint.hooks.onRequest?.({
          method: 'TCP', path: `${clientIp}:${remotePort}`, status: 0, durationMs: Math.round(performance.now() - started), clientIp, bytesIn, bytesOut,
        })
      }))
      socket.resume()
    }, (error: Error) => {
      log.info({ client: clientIp, err: error.message }, 'tcp upstream unreachable')
      reset(socket) // a clean close would look like an upstream that accepted and sent nothing
    })
  }
}
