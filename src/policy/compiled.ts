// The fixed-shape form of a policy, built once when an endpoint is bound (never per request).
// A phase with no rules is null, and the edge skips it without a call.
import type { ErrorCode } from '../core/errors.js'

/** Header name (lower case) -> value(s). Used for both request and response headers. */
export type HeaderMap = Record<string, string | string[] | undefined>

export interface ConnectContext {
  /** The TCP peer address of the public client. */
  readonly clientIp: string
}

export interface HttpRequestContext {
  /** The TCP peer address of the public client. */
  readonly clientIp: string
  /** Headers that will go to the upstream; steps may change them. */
  readonly headers: HeaderMap
}

/** A step that stops the request: the edge answers with this catalogue code (and extra headers). */
export interface Denial {
  readonly code: ErrorCode
  readonly headers?: Record<string, string>
}

export type ConnectStep = (ctx: ConnectContext) => Denial | undefined
export type RequestStep = (ctx: HttpRequestContext) => Denial | undefined
export type ResponseStep = (headers: HeaderMap) => void

export interface CompiledPolicy {
  /** TCP/TLS endpoints: once per connection. HTTP endpoints: once per request, before on_http_request
   *  (the Host that picks the endpoint is only known once a request arrives). */
  readonly onTcpConnect: readonly ConnectStep[] | null
  readonly onHttpRequest: readonly RequestStep[] | null
  readonly onHttpResponse: readonly ResponseStep[] | null
}
