// Porthole's events in the shapes of ngrok's event types (ngrok.com/docs/obs/events/reference), so that what
// reads ngrok's event stream can read ours: the envelope every event has (event_id, event_type, event_timestamp,
// object) and the objects of http_request_complete.v0 (also built by the inspector from a captured request),
// tcp_connection_closed.v0 and agent_session_start.v0 / agent_session_stop.v0, with ngrok's field names (conn.*,
// endpoint.*, http.request.*, http.response.*). Fields ngrok has that we cannot know (geo, region, server_ip) are
// left out rather than filled with guesses; Porthole's additions (traffic_policy.error_code, account) are named
// so that they cannot clash with ngrok's.
import { randomUUID } from 'node:crypto'
import type { HttpRequestObserved, SessionObserved, TcpConnectionObserved } from './channels.js'

export const EVENT_TYPES = ['http_request_complete.v0', 'tcp_connection_closed.v0', 'agent_session_start.v0', 'agent_session_stop.v0'] as const
export type EventType = typeof EVENT_TYPES[number]

export interface EventEnvelope<T extends EventType, O> {
  /** ev_ + 32 hex digits (ngrok: ev_ + a KSUID). */
  readonly event_id: string
  readonly event_type: T
  /** RFC 3339, when the fact ended (the request completed, the connection closed, the session started/stopped). */
  readonly event_timestamp: string
  readonly object: O
}

export function newEventId (): string {
  return `ev_${randomUUID().replace(/-/g, '')}`
}

// --- http_request_complete.v0 -------------------------------------------------------------------------------

export interface HttpRequestCompleteObject {
  readonly conn: { readonly client_ip: string, readonly client_port: number, readonly server_name: string, readonly start_ts: string }
  readonly endpoint: { readonly id: string, readonly host: string }
  readonly http: {
    readonly request: {
      /** The inspector's record id (req_...); absent for events built from the observe channel (nothing captured). */
      readonly id?: string
      readonly method: string
      readonly proto: string
      readonly url: { readonly scheme: string, readonly host: string, readonly path: string, readonly query: string, readonly raw: string }
      /** Only when captured (the inspector's events); the sinks' events carry no headers. */
      readonly headers?: Record<string, readonly string[]>
      readonly user_agent?: string
      /** Bytes; -1 when the client did not announce a length (chunked, HTTP/2 without content-length). */
      readonly body_length: number
    }
    /** null when the connection went before any response was sent. */
    readonly response: {
      readonly status_code: number
      readonly headers?: Record<string, readonly string[]>
      readonly body_length: number
    } | null
    /** Milliseconds from the request's arrival to the end of its response. */
    readonly duration_ms: number
  }
  /** What the gateway's rules decided: the catalogue code when it answered itself (a policy denial, PH_3002...). */
  readonly traffic_policy: { readonly error_code: string | null }
  /** The inspector's replays: the record replayed. */
  readonly replay_of?: string | null
}

export type HttpRequestCompleteEvent = EventEnvelope<'http_request_complete.v0', HttpRequestCompleteObject>

/** What both builders (the inspector's captured record, the edge's observe message) know of a request. */
export interface HttpRequestFacts {
  readonly eventId: string
  readonly clientIp: string
  readonly clientPort: number
  /** ISO time of arrival. */
  readonly start: string
  readonly durationMs: number
  readonly endpointId: string
  readonly endpointHost: string
  readonly scheme: string
  readonly method: string
  readonly proto: string
  /** The request's authority (Host). */
  readonly host: string
  /** The request target (path and query) as sent. */
  readonly target: string
  /** url.raw: the inspector keeps the target as it always did; the sinks write the whole URL as ngrok does. */
  readonly raw: string
  readonly requestBytes: number
  readonly status: number | null
  readonly responseBytes: number
  readonly errorCode: string | null
  readonly requestId?: string
  readonly requestHeaders?: Record<string, readonly string[]>
  readonly responseHeaders?: Record<string, readonly string[]>
  readonly userAgent?: string
  readonly replayOf?: string | null
}

export function httpRequestComplete (facts: HttpRequestFacts): HttpRequestCompleteEvent {
  const question = facts.target.indexOf('?')
  return {
    event_id: facts.eventId,
    event_type: 'http_request_complete.v0',
    event_timestamp: new Date(Date.parse(facts.start) + facts.durationMs).toISOString(),
    object: {
      conn: { client_ip: facts.clientIp, client_port: facts.clientPort, server_name: facts.host.replace(/:\d+$/, ''), start_ts: facts.start },
      endpoint: { id: facts.endpointId, host: facts.endpointHost },
      http: {
        request: {
          ...(facts.requestId === undefined ? {} : { id: facts.requestId }),
          method: facts.method,
          proto: facts.proto,
          url: {
            scheme: facts.scheme,
            host: facts.host,
            path: question === -1 ? facts.target : facts.target.slice(0, question),
            query: question === -1 ? '' : facts.target.slice(question + 1),
            raw: facts.raw,
          },
          ...(facts.requestHeaders === undefined ? {} : { headers: facts.requestHeaders }),
          ...(facts.userAgent === undefined ? {} : { user_agent: facts.userAgent }),
          body_length: facts.requestBytes,
        },
        response: facts.status === null
          ? null
          : { status_code: facts.status, ...(facts.responseHeaders === undefined ? {} : { headers: facts.responseHeaders }), body_length: facts.responseBytes },
        duration_ms: Math.round(facts.durationMs * 1000) / 1000,
      },
      traffic_policy: { error_code: facts.errorCode },
      ...(facts.replayOf === undefined ? {} : { replay_of: facts.replayOf }),
    },
  }
}

/** From the HTTP edge's observe message (every request, captured or not). */
export function httpRequestEvent (m: HttpRequestObserved): HttpRequestCompleteEvent {
  return httpRequestComplete({
    eventId: newEventId(),
    clientIp: m.clientIp,
    clientPort: m.clientPort,
    start: new Date(m.startMs).toISOString(),
    durationMs: m.durationMs,
    endpointId: m.endpointId,
    endpointHost: m.endpointHost,
    scheme: m.scheme,
    method: m.method,
    proto: `HTTP/${m.httpVersion}`,
    host: m.host,
    target: m.path,
    raw: `${m.scheme}://${m.host}${m.path}`,
    requestBytes: m.requestBytes,
    status: m.status === 0 ? null : m.status,
    responseBytes: m.responseBytes,
    errorCode: m.errorCode ?? null,
  })
}

// --- tcp_connection_closed.v0 -------------------------------------------------------------------------------

export interface TcpConnectionClosedObject {
  readonly conn: {
    readonly client_ip: string
    readonly client_port: number
    /** tls endpoints: the SNI name; tcp endpoints: the endpoint's tcp:PORT name. */
    readonly server_name: string
    readonly server_port: number
    readonly start_ts: string
    readonly end_ts: string
    /** Bytes from the client into the endpoint, and from the endpoint back to the client. */
    readonly bytes_in: number
    readonly bytes_out: number
  }
  readonly endpoint: { readonly id: string, readonly host: string, readonly proto: 'tcp' | 'tls' }
}

export type TcpConnectionClosedEvent = EventEnvelope<'tcp_connection_closed.v0', TcpConnectionClosedObject>

export function tcpConnectionEvent (m: TcpConnectionObserved): TcpConnectionClosedEvent {
  const end = new Date(m.startMs + m.durationMs).toISOString()
  return {
    event_id: newEventId(),
    event_type: 'tcp_connection_closed.v0',
    event_timestamp: end,
    object: {
      conn: {
        client_ip: m.clientIp,
        client_port: m.clientPort,
        server_name: m.endpointHost,
        server_port: m.serverPort,
        start_ts: new Date(m.startMs).toISOString(),
        end_ts: end,
        bytes_in: m.bytesIn,
        bytes_out: m.bytesOut,
      },
      endpoint: { id: m.endpointId, host: m.endpointHost, proto: m.proto },
    },
  }
}

// --- agent_session_start.v0 / agent_session_stop.v0 ---------------------------------------------------------

/** ngrok's AgentSessionEvent fields that a gateway can know; `session.uri` is the admin API's path. */
export interface AgentSessionObject {
  readonly session: { readonly id: string, readonly uri: string }
  readonly agent_ip: string
  readonly agent_port: number
  /** The client's version string (SSH-2.0-OpenSSH_9.6, ngrok-go/...). */
  readonly user_agent: string
  /** ngrok: "muxado" for agents and agent libraries, "ssh" for reverse SSH tunnels. */
  readonly transport: 'ssh' | 'muxado'
  readonly started_at: string
  /** stop events only. */
  readonly stopped_at: string | null
  /** stop: why, when the gateway knows (killed, revoked, heartbeat lost, shutting down); else "". */
  readonly error: string
  /** Porthole: who logged in. */
  readonly account: string | null
  readonly credential: { readonly kind: string, readonly id: string | null }
}

export type AgentSessionEvent = EventEnvelope<'agent_session_start.v0' | 'agent_session_stop.v0', AgentSessionObject>

export function sessionEvent (m: SessionObserved, now = Date.now()): AgentSessionEvent {
  const info = m.session
  const at = new Date(now).toISOString()
  return {
    event_id: newEventId(),
    event_type: m.event === 'start' ? 'agent_session_start.v0' : 'agent_session_stop.v0',
    event_timestamp: m.event === 'start' ? info.startedAt : at,
    object: {
      session: { id: info.id, uri: `/api/sessions/${encodeURIComponent(info.id)}` },
      agent_ip: info.remoteAddr,
      agent_port: info.remotePort,
      user_agent: info.clientVersion,
      transport: info.clientType === 'ssh' ? 'ssh' : 'muxado',
      started_at: info.startedAt,
      stopped_at: m.event === 'stop' ? at : null,
      error: m.reason ?? '',
      account: info.account,
      credential: { kind: info.credential.kind, id: info.credential.id },
    },
  }
}

export type PortholeEvent = HttpRequestCompleteEvent | TcpConnectionClosedEvent | AgentSessionEvent
