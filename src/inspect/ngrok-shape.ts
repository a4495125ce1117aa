// One captured request in the shape of ngrok's agent API (`GET /api/requests/http`, ngrok.com/docs/agent/api):
// the inspector's JSON, the admin API's `GET /api/endpoints/{id}/requests` and scripts written for ngrok's
// 127.0.0.1:4040 all read this one serializer. ngrok's field names and types: snake_case, `duration` in
// nanoseconds, `raw` the base64 of the message as sent (head, blank line, body up to the capture cap).
import type { CapturedMessage, CapturedRequest, CapturedRequestPart, CapturedResponsePart } from './record.js'

/** Porthole's additions to each message: how many body bytes went by, and whether `raw` holds only the start. */
interface BodyFacts {
  readonly body_size: number
  readonly truncated: boolean
}

export interface NgrokRequestPart extends BodyFacts {
  readonly method: string
  readonly proto: string
  readonly headers: Record<string, string[]>
  readonly uri: string
  readonly raw: string
}

export interface NgrokResponsePart extends BodyFacts {
  readonly status: string
  readonly status_code: number
  readonly proto: string
  readonly headers: Record<string, string[]>
  readonly raw: string
}

export interface NgrokRequest {
  /** `/api/requests/http/<id>`: the resource itself, as ngrok's agent API gives it. */
  readonly uri: string
  readonly id: string
  readonly tunnel_name: string
  readonly remote_addr: string
  readonly start: string
  /** Nanoseconds (ngrok's Go time.Duration). */
  readonly duration: number
  readonly request: NgrokRequestPart
  /** null when no response came (ngrok leaves it out; we say so explicitly). */
  readonly response: NgrokResponsePart | null
  // Porthole's additions (new fields are a non-breaking change in ngrok's API stability terms):
  readonly endpoint_id: string
  /** The catalogue code when the gateway answered itself (policy denial, PH_3002...). */
  readonly error_code?: string
  /** The id of the request this one replays. */
  readonly replay_of?: string
}

function headers (message: CapturedMessage): Record<string, string[]> {
  const out: Record<string, string[]> = {}
  for (const name in message.headers) out[name] = [...message.headers[name]!]
  return out
}

function headLines (message: CapturedMessage): string {
  let text = ''
  for (const name in message.headers) {
    for (const value of message.headers[name]!) text += `${name}: ${value}\r\n`
  }
  return text
}

/** The request as it went upstream: request line, header lines, blank line, the captured body. */
export function rawRequest (part: CapturedRequestPart): Buffer {
  const head = `${part.method} ${part.uri} ${part.proto}\r\n${headLines(part)}\r\n`
  return Buffer.concat([Buffer.from(head, 'latin1'), part.body])
}

/** The response as the client got it: status line, header lines, blank line, the captured body. */
export function rawResponse (part: CapturedResponsePart): Buffer {
  const head = `${part.proto} ${part.status}\r\n${headLines(part)}\r\n`
  return Buffer.concat([Buffer.from(head, 'latin1'), part.body])
}

export function toNgrokRequest (record: CapturedRequest): NgrokRequest {
  const { request, response } = record
  return {
    uri: `/api/requests/http/${record.id}`,
    id: record.id,
    tunnel_name: record.tunnelName,
    remote_addr: record.remoteAddr,
    start: record.start,
    duration: Math.round(record.durationMs * 1e6),
    request: {
      method: request.method,
      proto: request.proto,
      headers: headers(request),
      uri: request.uri,
      raw: rawRequest(request).toString('base64'),
      body_size: request.bodySize,
      truncated: request.truncated,
    },
    response: response === null
      ? null
      : {
          status: response.status,
          status_code: response.statusCode,
          proto: response.proto,
          headers: headers(response),
          raw: rawResponse(response).toString('base64'),
          body_size: response.bodySize,
          truncated: response.truncated,
        },
    endpoint_id: record.endpointId,
    ...(record.errorCode !== undefined ? { error_code: record.errorCode } : {}),
    ...(record.replayOf !== undefined ? { replay_of: record.replayOf } : {}),
  }
}
