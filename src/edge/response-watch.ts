// What happens when a public response is over: the inspector's capture record, the endpoint's request hook (the
// SSH terminal's request line), the observe channel's message (metrics, events). One wrap of the response's
// write/end counts the body it sends for all of them (the capture also keeps its first bytes), and one 'close'
// listener serves them all. Each used to wrap and listen on its own, so a request watched by capture and metrics
// (the default gateway) went through two wrappers and had every chunk counted twice.
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { ErrorCode } from '../core/errors.js'
import type { Endpoint } from '../core/endpoint.js'
import { BodyTap, type RequestCapture } from '../inspect/capture.js'
import { httpRequestChannel, observedEndpoint, type HttpRequestObserved, type ObservedEndpoint } from '../observe/channels.js'
import type { RequestTarget, Scheme } from './request-target.js'

/** The edge's fail() leaves the catalogue code of an answer it made itself on the response. */
export type ResponseWithCode = ServerResponse & { errorCode?: ErrorCode }

type Write = (chunk: unknown, encoding?: unknown, callback?: unknown) => boolean
type End = (chunk?: unknown, encoding?: unknown, callback?: unknown) => unknown

/** Watches one routed request's response, when anyone wants it: nothing is wrapped or listened to otherwise. */
export function watchResponse (req: IncomingMessage, res: ServerResponse, endpoint: Endpoint, scheme: Scheme, target: RequestTarget, started: number, capture: RequestCapture | null): void {
  const onRequest = endpoint.hooks.onRequest
  const observed = httpRequestChannel.hasSubscribers
  if (capture === null && onRequest === undefined && !observed) return
  const startMs = Date.now()
  // Read now: an upgraded request's socket is detached (null) by the time its response closes.
  const clientIp = req.socket.remoteAddress ?? ''
  const clientPort = req.socket.remotePort ?? 0
  // The body as written (after compression). Without capture a tap that keeps nothing is a counter.
  const body = capture?.responseBody ?? (observed ? new BodyTap(0) : null)
  if (body !== null) tapBody(res, body)
  res.once('close', () => {
    capture?.finish()
    reportRequest(endpoint, {
      scheme,
      httpVersion: req.httpVersion,
      method: req.method ?? 'GET',
      host: target.authority,
      path: target.path,
      status: res.statusCode,
      sent: res.headersSent,
      errorCode: (res as ResponseWithCode).errorCode,
      clientIp,
      clientPort,
      startMs,
      durationMs: performance.now() - started,
      requestBytes: announcedBytes(req.headers['content-length'], hasRequestBody(req)),
      responseBytes: body?.size ?? 0,
    })
  })
}

/** One answered request, as the terminal line and the observe channel take it: the channel's fields, and whether
 *  the response head went out (the channel says status 0 when not; the terminal line the status meant). */
export type RequestReport = Omit<HttpRequestObserved, keyof ObservedEndpoint> & { readonly sent: boolean }

/** Tells the endpoint's request hook (the SSH terminal's line) and the observe channel, when anyone listens. */
export function reportRequest (endpoint: Endpoint, report: RequestReport): void {
  endpoint.hooks.onRequest?.({ method: report.method, path: report.path, status: report.status, durationMs: Math.round(report.durationMs), clientIp: report.clientIp, errorCode: report.errorCode })
  if (!httpRequestChannel.hasSubscribers) return
  // Field by field: object rest and spread here cost more than the rest of the report (a profile of the fast path).
  const named = observedEndpoint(endpoint)
  const message: HttpRequestObserved = {
    endpointId: named.endpointId,
    endpointHost: named.endpointHost,
    transport: named.transport,
    account: named.account,
    scheme: report.scheme,
    httpVersion: report.httpVersion,
    method: report.method,
    host: report.host,
    path: report.path,
    status: report.sent ? report.status : 0,
    errorCode: report.errorCode,
    clientIp: report.clientIp,
    clientPort: report.clientPort,
    startMs: report.startMs,
    durationMs: report.durationMs,
    requestBytes: report.requestBytes,
    responseBytes: report.responseBytes,
  }
  httpRequestChannel.publish(message)
}

/** Adds every body chunk the response writes to `tap` (a chunk may be a string, with its encoding). */
function tapBody (res: ServerResponse, tap: BodyTap): void {
  const write = res.write as unknown as Write
  const end = res.end as unknown as End
  ;(res as unknown as { write: Write }).write = function (this: ServerResponse, chunk, encoding, callback) {
    if (chunk !== undefined && chunk !== null && typeof chunk !== 'function') tap.add(chunk as Buffer | string, typeof encoding === 'string' ? encoding as BufferEncoding : undefined)
    return write.call(this, chunk, encoding, callback)
  }
  ;(res as unknown as { end: End }).end = function (this: ServerResponse, chunk, encoding, callback) {
    if (chunk !== undefined && chunk !== null && typeof chunk !== 'function') tap.add(chunk as Buffer | string, typeof encoding === 'string' ? encoding as BufferEncoding : undefined)
    return end.call(this, chunk, encoding, callback)
  }
}

/**
 * Whether a body follows the request head: HTTP/1.1 says so with Content-Length or Transfer-Encoding; HTTP/2 with
 * a HEADERS frame without END_STREAM, and a streamed HTTP/2 body has no Content-Length (it was dropped before).
 */
export function hasRequestBody (req: IncomingMessage): boolean {
  const length = req.headers['content-length']
  if (length !== undefined) return length !== '0'
  if (req.httpVersionMajor === 2) return (req as unknown as { stream: { endAfterHeaders: boolean } }).stream.endAfterHeaders === false
  return req.headers['transfer-encoding'] !== undefined
}

/** Body bytes as announced by content-length; 0 for no body, -1 when not announced (chunked, HTTP/2 DATA). */
export function announcedBytes (value: string | number | string[] | undefined, hasBody: boolean): number {
  if (!hasBody) return 0
  const n = Number(Array.isArray(value) ? value[0] : value)
  return value !== undefined && Number.isSafeInteger(n) && n >= 0 ? n : -1
}
