// What the gateway tells observers (metrics, event sinks): one diagnostics channel per kind of fact, published
// where the fact happens (edges, agents) and only when someone subscribed, so an unobserved gateway builds
// nothing. Observers must not throw and must not block: a slow sink queues and drops on its own side.
import { channel } from 'node:diagnostics_channel'
import type { Socket } from 'node:net'
import type { Endpoint } from '../core/endpoint.js'
import type { ErrorCode } from '../core/errors.js'
import type { SessionInfo } from '../core/session.js'

/** The endpoint a request or connection went to, as every observed fact names it. */
export interface ObservedEndpoint {
  readonly endpointId: string
  /** The endpoint's host (exact, `*.suffix` or `tcp:PORT`): the name it was bound as, not the request's Host. */
  readonly endpointHost: string
  readonly transport: 'ssh' | 'ngrok'
  readonly account: string | null
}

/**
 * The endpoint's four fields, for a message literal that lists them itself: `{ ...observedEndpoint(e), ... }`
 * (a spread into a new literal, as this was used) cost 8-10 µs of CPU per request on the edge's hot path, a third
 * of a bare node server's whole request (bench/metrics-cost.js), where the same fields written out cost nothing.
 */
export function observedEndpoint (endpoint: Endpoint): ObservedEndpoint {
  return { endpointId: endpoint.id, endpointHost: endpoint.host, transport: endpoint.agent.transport, account: endpoint.owner.account ?? null }
}

/** One public HTTP request finished (the response ended or the connection went), from the HTTP edge. */
export interface HttpRequestObserved extends ObservedEndpoint {
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
export interface TcpConnectionObserved extends ObservedEndpoint {
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

/** Where a public connection came from and to: read when it opens (a closed socket no longer knows). */
export interface ConnectionEnds { readonly clientIp: string, readonly clientPort: number, readonly serverPort: number, readonly startMs: number }

export function connectionEnds (socket: Socket): ConnectionEnds {
  return { clientIp: socket.remoteAddress ?? '', clientPort: socket.remotePort ?? 0, serverPort: socket.localPort ?? 0, startMs: Date.now() }
}

/** Publishes a closed tcp or TLS-passthrough connection (both edges call this from their splice's close). */
export function observeConnection (endpoint: Endpoint, proto: 'tcp' | 'tls', ends: ConnectionEnds, bytesIn: number, bytesOut: number): void {
  if (!tcpConnectionChannel.hasSubscribers) return
  const named = observedEndpoint(endpoint)
  const message: TcpConnectionObserved = {
    endpointId: named.endpointId,
    endpointHost: named.endpointHost,
    transport: named.transport,
    account: named.account,
    proto,
    clientIp: ends.clientIp,
    clientPort: ends.clientPort,
    serverPort: ends.serverPort,
    startMs: ends.startMs,
    durationMs: Date.now() - ends.startMs,
    bytesIn,
    bytesOut,
  }
  tcpConnectionChannel.publish(message)
}

// --- added for metrics (issue 12): dials, logins, caps hit, policy decisions ---------------------------------

/** How an agent's Dialer ended: a stream (ok), the agent refused or failed it, too many open streams, or the
 *  session was gone. */
export type DialOutcome = 'ok' | 'refused' | 'busy' | 'closed'

/** One dial of an agent (a public connection asking for a stream to the agent's upstream). */
export interface DialObserved {
  readonly transport: 'ssh' | 'ngrok'
  readonly outcome: DialOutcome
  /** From the request until the agent confirmed or refused (ssh: the forwarded-tcpip channel open; ngrok:
   *  the Proxy stream opened, which the agent never confirms). */
  readonly durationMs: number
}

export const dialChannel = channel('porthole:observe:dial')

/** `started` is performance.now() when the dial began. */
export function observeDial (transport: 'ssh' | 'ngrok', started: number, outcome: DialOutcome): void {
  if (!dialChannel.hasSubscribers) return
  dialChannel.publish({ transport, outcome, durationMs: performance.now() - started } satisfies DialObserved)
}

/** A credential checked at login: accepted, refused, or refused after the throttle held it back. One per
 *  credential: an SSH client offering several keys counts each unknown one. Session budgets are caps (below). */
export type LoginOutcome = 'ok' | 'refused' | 'throttled'

export interface LoginObserved {
  readonly transport: 'ssh' | 'ngrok'
  readonly outcome: LoginOutcome
}

export const loginChannel = channel('porthole:observe:login')

export function observeLogin (transport: 'ssh' | 'ngrok', outcome: LoginOutcome): void {
  if (loginChannel.hasSubscribers) loginChannel.publish({ transport, outcome } satisfies LoginObserved)
}

/** The gateway's own limits, by what they bound (a closed set: a metric label). */
export type LimitCap =
  | 'startups_per_source' | 'startups_early_drop' | 'startups_full'
  | 'sessions' | 'anonymous_sessions' | 'anonymous_sessions_per_source' | 'sessions_per_key'
  | 'forwards_per_session' | 'holds_per_owner' | 'holds_full' | 'tcp_ports_full'
  | 'auth_attempts' | 'authtoken_failures' | 'streams_per_session'

/** The catalogue codes that mean "a cap was hit", and the cap. PH_1051 is early drop or full: the caller says. */
export const LIMIT_OF_CODE: Readonly<Partial<Record<ErrorCode, LimitCap>>> = {
  PH_1050: 'startups_per_source',
  PH_1051: 'startups_full',
  PH_1053: 'sessions',
  PH_1054: 'anonymous_sessions',
  PH_1055: 'anonymous_sessions_per_source',
  PH_1056: 'sessions_per_key',
  PH_1018: 'forwards_per_session',
  PH_1035: 'holds_per_owner',
  PH_1036: 'holds_full',
  PH_1032: 'tcp_ports_full',
  PH_1120: 'auth_attempts',
  PH_1121: 'authtoken_failures',
  PH_1122: 'streams_per_session',
}

/** A refusal because one of the gateway's limits was reached. */
export interface LimitObserved {
  readonly cap: LimitCap
  readonly code: ErrorCode
}

export const limitChannel = channel('porthole:observe:limit')

/** Publishes a cap hit for a refusal whose code is a cap's (others are ignored: callers may pass any error). */
export function observeLimit (error: unknown, cap?: LimitCap): void {
  if (!limitChannel.hasSubscribers) return
  const code = (error as { code?: unknown } | null)?.code as ErrorCode | undefined
  const hit = cap ?? (code === undefined ? undefined : LIMIT_OF_CODE[code])
  if (hit !== undefined && code !== undefined) limitChannel.publish({ cap: hit, code } satisfies LimitObserved)
}

/** What a traffic-policy action did to a request or connection: refused it (a catalogue error page), answered
 *  it itself (custom-response, redirect, a login page), or closed the connection. */
export type PolicyResult = 'refused' | 'answered' | 'closed'

export interface PolicyDecisionObserved {
  /** The action's type as written in the policy (deny, basic-auth, restrict-ips, rate-limit, oauth...). */
  readonly action: string
  readonly phase: 'on_tcp_connect' | 'on_http_request'
  readonly result: PolicyResult
  /** The catalogue code of a refusal. */
  readonly code: ErrorCode | undefined
}

export const policyDecisionChannel = channel('porthole:observe:policy-decision')
