// Public TCP endpoints: one listener per bound port of the pool. Each public connection runs the
// endpoint's on_tcp_connect rules (restrict-ips) and then gets a tunnel stream of its own, piped both ways.
// No idle timeout on the streams: long-lived connections are the point; liveness is the SSH session's job.
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import type { Endpoint } from '../core/endpoint.js'
import type { CompiledPolicy } from '../policy/compiled.js'
import { proxyHeader } from './proxy-protocol.js'
import { listenOn } from './listen.js'

export interface TcpEdgeOptions {
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

/**
 * Aborts a public connection with a TCP reset, so its client sees an error (ECONNRESET) rather than a clean
 * end it would take for a complete stream. A socket without a TCP handle of its own (TLS terminated here)
 * can only be destroyed.
 */
export function reset (socket: Socket): void {
  if (socket.destroyed) return
  try {
    socket.resetAndDestroy()
  } catch {
    socket.destroy()
  }
}

/**
 * Pipes a public socket and a tunnel stream both ways, with TCP's half-close: a side that ends its writing
 * (FIN, or the agent's EOF) ends the other side's writing and the other direction goes on, so a client that
 * sends its request and shuts its write side still gets the whole answer. The public socket ends cleanly
 * only after the stream did; a stream that fails or closes before its end (the agent died) resets it.
 * Returns abort(), for when the endpoint goes: a reset, unless the stream had already ended and only the
 * rest of its answer is on its way to the client.
 */
export function splice (socket: Socket, stream: Duplex, onClose: (bytesIn: number, bytesOut: number) => void): () => void {
  let bytesIn = 0
  let bytesOut = 0
  let ended = false
  socket.allowHalfOpen = true // read at the client's FIN: keep writing what the stream still sends
  socket.on('data', (chunk: Buffer) => { bytesIn += chunk.length })
  stream.on('data', (chunk: Buffer) => { bytesOut += chunk.length })
  stream.once('end', () => { ended = true }) // pipe() ends the socket's writing after the last byte
  stream.on('error', () => reset(socket))
  socket.on('error', () => stream.destroy())
  stream.once('close', () => {
    if (!ended) return reset(socket)
    // Finished: once our FIN is out, a client that keeps its side open has nobody left to talk to.
    if (socket.writableFinished) socket.destroy()
    else socket.once('finish', () => socket.destroy())
  })
  socket.once('close', () => {
    stream.destroy()
    onClose(bytesIn, bytesOut)
  })
  socket.pipe(stream)
  stream.pipe(socket)
  return () => { if (!ended) reset(socket) }
}

export class TcpEdge {
  readonly #options: TcpEdgeOptions

  constructor (options: TcpEdgeOptions) {
    this.#options = options
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
    endpoint.upstream = {
      close: () => {
        server.close()
        for (const abort of connections.values()) abort()
      },
    }
    log.debug({ address: (server.address() as AddressInfo).address }, 'tcp endpoint listening')
  }

  #onConnection (endpoint: Endpoint, policy: CompiledPolicy, socket: Socket, log: Logger, spliced: (abort: () => void) => void): void {
    const started = performance.now()
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
