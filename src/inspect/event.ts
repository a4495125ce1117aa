// One captured request as an ngrok-shaped `http_request_complete.v0` event, for the gateway's debug log and the
// inspector's live stream. The shape (envelope, conn.*, endpoint.*, http.*) is the one the event sinks write
// (src/observe/event-shapes.ts); a captured record adds what only capture knows: the record id, headers, replays.
// Built only when someone listens (the log at debug level, an open inspector).
import { httpRequestComplete, type HttpRequestCompleteEvent } from '../observe/event-shapes.js'
import type { CapturedRequest } from './record.js'

export type RequestCompleteEvent = HttpRequestCompleteEvent

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
  return httpRequestComplete({
    eventId: `ev_${record.id.slice(4)}`,
    clientIp: ip,
    clientPort: port,
    start: record.start,
    durationMs: record.durationMs,
    endpointId: record.endpointId,
    endpointHost: record.tunnelName,
    scheme: firstHeader(request.headers, 'x-forwarded-proto') || 'http',
    method: request.method,
    proto: request.proto,
    host: firstHeader(request.headers, 'x-forwarded-host') || record.tunnelName,
    target: request.uri,
    raw: request.uri,
    requestBytes: request.bodySize,
    status: response === null ? null : response.statusCode,
    responseBytes: response?.bodySize ?? 0,
    errorCode: record.errorCode ?? null,
    requestId: record.id,
    requestHeaders: request.headers,
    responseHeaders: response?.headers,
    userAgent: firstHeader(request.headers, 'user-agent'),
    replayOf: record.replayOf ?? null,
  })
}
