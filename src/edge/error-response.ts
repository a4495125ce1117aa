// The one place the edge turns a catalogue code into what an HTTP client sees: the status, the
// porthole-error-code header and a short plain-text page.
import type { ServerResponse } from 'node:http'
import { STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'
import { catalogue, formatMessage, type ErrorCode } from '../core/errors.js'
import { ERROR_CODE_HEADER, headerLines } from './headers.js'
import type { HeaderMap } from '../policy/compiled.js'

function body (code: ErrorCode, detail?: string): { status: number, text: string } {
  const status = catalogue[code].status
  return { status, text: `${status} ${STATUS_CODES[status] ?? ''}\n${code}: ${formatMessage(code, detail)}\n` }
}

export function sendError (res: ServerResponse, code: ErrorCode, detail?: string, headers?: Record<string, string>): void {
  if (res.headersSent) {
    res.destroy()
    return
  }
  const { status, text } = body(code, detail)
  res.writeHead(status, {
    ...headers,
    [ERROR_CODE_HEADER]: code,
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  })
  res.end(text)
}

/** A response head for a raw socket: status line, one line per header value, blank line. */
export function rawResponseHead (status: number, headers: HeaderMap): string {
  return `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n${headerLines(headers)}\r\n`
}

/** The catalogue error page as raw bytes: its head (ending the connection) and its text. */
export function rawError (code: ErrorCode, detail?: string, headers?: Record<string, string>): { head: string, text: string } {
  const { status, text } = body(code, detail)
  const head = rawResponseHead(status, {
    [ERROR_CODE_HEADER]: code,
    'content-type': 'text/plain; charset=utf-8',
    'content-length': String(Buffer.byteLength(text)),
    connection: 'close',
    ...headers,
  })
  return { head, text }
}

/** The same for a raw socket (failed upgrades, malformed requests), then closes it. */
export function sendRawError (socket: Duplex, code: ErrorCode, detail?: string, headers?: Record<string, string>): void {
  if (!socket.writable) {
    socket.destroy()
    return
  }
  const { head, text } = rawError(code, detail, headers)
  socket.end(head + text)
}

export interface PolicyResponse { readonly status: number, readonly headers: Record<string, string | string[]>, readonly body: string }

/** A response a traffic policy wrote (custom-response, redirect, deny). */
export function sendResponse (res: ServerResponse, response: PolicyResponse): void {
  if (res.headersSent) return void res.destroy()
  res.writeHead(response.status, { ...response.headers, 'content-length': Buffer.byteLength(response.body) })
  res.end(response.body)
}

export function sendRawResponse (socket: Duplex, response: PolicyResponse): void {
  socket.end(rawResponseHead(response.status, {
    'content-length': String(Buffer.byteLength(response.body)),
    connection: 'close',
    ...response.headers,
  }) + response.body)
}
