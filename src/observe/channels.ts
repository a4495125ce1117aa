// What the gateway tells observers (metrics, event sinks): one diagnostics channel per kind of fact, published
// where the fact happens (edges, agents) and only when someone subscribed, so an unobserved gateway builds
// nothing. Observers must not throw and must not block: a slow sink queues and drops on its own side.
import { channel } from 'node:diagnostics_channel'
import type { Socket } from 'node:net'
import type { Endpoint } from '../core/endpoint.js'
import type { ErrorCode } from '../core/errors.js'
import type { SessionInfo } from '../core/session.js'

/** One public HTTP request finished (the response ended or the connection went), from the HTTP edge. */
export interface HttpRequestObserved {
  readonly endpointId: string
  /** The endpoint's host (exact or `*.suffix`): the name it was bound as, not the request's Host. */
  readonly endpointHost: string
  readonly transport: 'ssh' | 'ngrok'
  readonly account: string | null
  readonly scheme: 'http' | 'https'
  /** 1.1 or 2.0. */
  readonly httpVersion: string
  readonly method: string
  /** The request's Host (authority), as the client sent it. */
  readonly host: string
  /** Path and query as the client sent them. */
  readonly path: string
  /** The status sent; 0 when the connection went before any status was sent. */
  readonly status: number
  /** The catalogue code when the gateway answered itself (policy denial, upstream unreachable...). */
  readonly errorCode: ErrorCode | undefined
  readonly clientIp: string
  readonly clientPort: number
  /** Epoch milliseconds when the request arrived. */
  readonly startMs: number
  readonly durationMs: number
  /** The request body's content-length: 0 for none, -1 when not announced (chunked, HTTP/2 without it). */
  readonly requestBytes: number
  /** Response body bytes written to the client (after compression). */
  readonly responseBytes: number
}

/** One public connection to a tcp endpoint, or a TLS-passthrough connection, closed. */
export interface TcpConnectionObserved {
  readonly endpointId: string
  readonly endpointHost: string
  readonly transport: 'ssh' | 'ngrok'
  readonly account: string | null
  readonly proto: 'tcp' | 'tls'
  readonly clientIp: string
  readonly clientPort: number
  /** The public port the client connected to. */
  readonly serverPort: number
  readonly startMs: number
  readonly durationMs: number
  readonly bytesIn: number
  readonly bytesOut: number
}

/** An agent session logged in (start) or ended (stop); `session` as the admin API shows it at that moment. */
export interface SessionObserved {
  readonly event: 'start' | 'stop'
  readonly session: SessionInfo
  /** stop: why, when the gateway knows (killed, revoked, heartbeat lost, shutting down). */
  readonly reason?: string
}

export const httpRequestChannel = channel('porthole:observe:http-request')
export const tcpConnectionChannel = channel('porthole:observe:tcp-connection')
export const sessionChannel = channel('porthole:observe:session')

/** Publishes a closed tcp or TLS-passthrough connection (both edges call this from their splice's close). */
/** Where a public connection came from and to: read when it opens (a closed socket no longer knows). */
export interface ConnectionEnds { readonly clientIp: string, readonly clientPort: number, readonly serverPort: number, readonly startMs: number }

export function connectionEnds (socket: Socket): ConnectionEnds {
  return { clientIp: socket.remoteAddress ?? '', clientPort: socket.remotePort ?? 0, serverPort: socket.localPort ?? 0, startMs: Date.now() }
}

export function observeConnection (endpoint: Endpoint, proto: 'tcp' | 'tls', ends: ConnectionEnds, bytesIn: number, bytesOut: number): void {
  if (!tcpConnectionChannel.hasSubscribers) return
  const message: TcpConnectionObserved = {
    endpointId: endpoint.id,
    endpointHost: endpoint.host,
    transport: endpoint.agent.transport,
    account: endpoint.owner.account ?? null,
    proto,
    ...ends,
    durationMs: Date.now() - ends.startMs,
    bytesIn,
    bytesOut,
  }
  tcpConnectionChannel.publish(message)
}
