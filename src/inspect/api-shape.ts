// A captured record in the JSON shape of ngrok's agent API (https://ngrok.com/docs/agent/api/, "Captured
// Requests"), so scripts written against `curl localhost:4040/api/requests/http` keep working here:
// `duration` in nanoseconds (Go's time.Duration, as ngrok's agent marshals it), headers as name -> [values],
// `raw` the base64 of the bytes as sent (head + the captured start of the body). Fields ngrok does not have
// (replay_of, error_code, truncated body sizes) are additions, which ngrok's API stability rules allow.
// (Stand-in until the capture side's ngrok-shape.ts lands; the lead unifies the two.)
import type { CapturedMessage, CapturedRequest } from './record.js'

export interface NgrokMessage {
  readonly proto: string
  readonly headers: Record<string, string[]>
  readonly raw: string
  readonly body_size: number
  readonly truncated: boolean
}

export interface NgrokRequest {
  readonly uri: string
  readonly id: string
  readonly tunnel_name: string
  readonly remote_addr: string
  readonly start: string
  /** Nanoseconds. */
  readonly duration: number
  readonly request: NgrokMessage & { readonly method: string, readonly uri: string }
  readonly response: (NgrokMessage & { readonly status: string, readonly status_code: number }) | null
  readonly error_code?: string
  readonly replay_of?: string
}

function headBytes (first: string, message: CapturedMessage): Buffer {
  let head = `${first}\r\n`
  for (const [name, values] of Object.entries(message.headers)) for (const value of values) head += `${name}: ${value}\r\n`
  return Buffer.concat([Buffer.from(`${head}\r\n`, 'latin1'), message.body])
}

function headers (message: CapturedMessage): Record<string, string[]> {
  return Object.fromEntries(Object.entries(message.headers).map(([name, values]) => [name, [...values]]))
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
      raw: headBytes(`${request.method} ${request.uri} ${request.proto}`, request).toString('base64'),
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
          raw: headBytes(`${response.proto} ${response.status}`, response).toString('base64'),
          body_size: response.bodySize,
          truncated: response.truncated,
        },
    ...(record.errorCode !== undefined ? { error_code: record.errorCode } : {}),
    ...(record.replayOf !== undefined ? { replay_of: record.replayOf } : {}),
  }
}
