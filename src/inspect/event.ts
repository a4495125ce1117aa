// One finished request as an event in the shape of ngrok's `http_request_complete.v0` (ngrok.com/docs/events:
// event_id, event_type, event_timestamp, object with conn.*, endpoint.*, http.request.*, http.response.*), so
// what reads ngrok's event stream can read Porthole's: the gateway's debug log, the inspector's live stream.
// Built only when someone listens (the log at debug level, an open inspector).
import type { CapturedRequest } from './record.js'

export interface RequestCompleteEvent {
  readonly event_id: string
  readonly event_type: 'http_request_complete.v0'
  readonly event_timestamp: string
  readonly object: {
    readonly conn: { readonly client_ip: string, readonly client_port: number, readonly start_ts: string }
    readonly endpoint: { readonly id: string, readonly host: string }
    readonly http: {
      readonly request: {
        readonly id: string
        readonly method: string
        readonly proto: string
        readonly url: { readonly host: string, readonly path: string, readonly query: string, readonly raw: string }
        readonly headers: Record<string, readonly string[]>
        readonly user_agent: string
        readonly body_length: number
      }
      readonly response: {
        readonly status_code: number
        readonly headers: Record<string, readonly string[]>
        readonly body_length: number
      } | null
      /** Milliseconds from the request's arrival to the end of its response. */
      readonly duration_ms: number
    }
    /** What the gateway's rules decided: the catalogue code when it answered itself (a policy denial, PH_3002...). */
    readonly traffic_policy: { readonly error_code: string | null }
    readonly replay_of: string | null
  }
}

function splitAddr (addr: string): { ip: string, port: number } {
  const colon = addr.lastIndexOf(':')
  if (colon === -1) return { ip: addr, port: 0 }
  return { ip: addr.slice(0, colon).replace(/^\[|\]$/g, ''), port: Number(addr.slice(colon + 1)) || 0 }
}

function firstHeader (headers: Record<string, readonly string[]>, name: string): string {
  for (const key in headers) if (key.toLowerCase() === name) return headers[key]![0] ?? ''
  return ''
}

export function requestCompleteEvent (record: CapturedRequest): RequestCompleteEvent {
  const { request, response } = record
  const { ip, port } = splitAddr(record.remoteAddr)
  const question = request.uri.indexOf('?')
  const host = firstHeader(request.headers, 'x-forwarded-host') || record.tunnelName
  return {
    event_id: `ev_${record.id.slice(4)}`,
    event_type: 'http_request_complete.v0',
    event_timestamp: new Date(Date.parse(record.start) + record.durationMs).toISOString(),
    object: {
      conn: { client_ip: ip, client_port: port, start_ts: record.start },
      endpoint: { id: record.endpointId, host: record.tunnelName },
      http: {
        request: {
          id: record.id,
          method: request.method,
          proto: request.proto,
          url: {
            host,
            path: question === -1 ? request.uri : request.uri.slice(0, question),
            query: question === -1 ? '' : request.uri.slice(question + 1),
            raw: request.uri,
          },
          headers: request.headers,
          user_agent: firstHeader(request.headers, 'user-agent'),
          body_length: request.bodySize,
        },
        response: response === null ? null : { status_code: response.statusCode, headers: response.headers, body_length: response.bodySize },
        duration_ms: Math.round(record.durationMs * 1000) / 1000,
      },
      traffic_policy: { error_code: record.errorCode ?? null },
      replay_of: record.replayOf ?? null,
    },
  }
}
