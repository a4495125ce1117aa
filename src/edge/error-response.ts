// The one place the edge turns a catalogue code into what an HTTP client sees: the status, the
// porthole-error-code header and a short plain-text page.
import type { ServerResponse } from 'node:http'
import { STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'
import { catalogue, formatMessage, type ErrorCode } from '../core/errors.js'
import { ERROR_CODE_HEADER } from './headers.js'

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

/** The same for a raw socket (failed upgrades, malformed requests), then closes it. */
export function sendRawError (socket: Duplex, code: ErrorCode, detail?: string, headers?: Record<string, string>): void {
  if (!socket.writable) {
    socket.destroy()
    return
  }
  const { status, text } = body(code, detail)
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n${ERROR_CODE_HEADER}: ${code}\r\n` +
    `content-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n`
  for (const [name, value] of Object.entries(headers ?? {})) head += `${name}: ${value}\r\n`
  socket.end(`${head}\r\n${text}`)
}

export interface PolicyResponse { readonly status: number, readonly headers: Record<string, string>, readonly body: string }

/** A response a traffic policy wrote (custom-response, redirect, deny). */
export function sendResponse (res: ServerResponse, response: PolicyResponse): void {
  if (res.headersSent) return void res.destroy()
  res.writeHead(response.status, { ...response.headers, 'content-length': Buffer.byteLength(response.body) })
  res.end(response.body)
}

export function sendRawResponse (socket: Duplex, response: PolicyResponse): void {
  let head = `HTTP/1.1 ${response.status} ${STATUS_CODES[response.status] ?? ''}\r\ncontent-length: ${Buffer.byteLength(response.body)}\r\nconnection: close\r\n`
  for (const [name, value] of Object.entries(response.headers)) head += `${name}: ${value}\r\n`
  socket.end(`${head}\r\n${response.body}`)
}
