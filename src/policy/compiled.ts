// The fixed-shape form of a policy, built once when an endpoint is bound (never per request).
// A phase with no rules is null, and the edge skips it without a call.
import type { ErrorCode } from '../core/errors.js'
import type { OAuthEndpointOverrides, OAuthProviderName } from './login/oauth-providers.js'

/** Header name (lower case) -> value(s). Used for both request and response headers. */
export type HeaderMap = Record<string, string | string[] | undefined>

export interface ConnectContext {
  /** The TCP peer address and port of the public client. */
  readonly clientIp: string
  readonly clientPort: number
  /** The public port the client connected to. */
  readonly serverPort: number
  /** The endpoint's host ('tcp:PORT' for tcp endpoints). */
  readonly endpointHost: string
  readonly protocol: 'http' | 'https' | 'tcp' | 'tls'
  /** The client connection (its socket), so that conn.ts.start is the same for every request it carries. */
  readonly connection?: object
  /** CEL variables, built on first use by a rule with expressions (policy/cel.ts). */
  vars?: Record<string, unknown>
  /** What actions set for later rules: `actions.ngrok.rate_limit.limited`, set-vars' `vars.NAME`. */
  results?: ActionResults
}

export interface ActionResults {
  readonly actions: { ngrok: Record<string, Record<string, unknown>> }
  readonly vars: Record<string, unknown>
}

export interface HttpRequestContext extends ConnectContext {
  readonly method: string
  /** Path and query sent upstream; url-rewrite may change it. */
  path: string
  /** The public Host (without port). */
  readonly host: string
  /** Headers that will go to the upstream; steps may change them. */
  readonly headers: HeaderMap
  /** Called by the edge with the final status once a request that went upstream is over (0: no response
   *  was sent, the client left first). Actions that learn from outcomes (circuit-breaker) push here. */
  outcome?: ((status: number) => void)[]
  /** The whole request body, when the policy needs it (verify-webhook); the edge buffers it first. */
  body?: Buffer
  /** Set-Cookie values an action adds to the upstream's response (a login session renewed as it is used). */
  setCookies?: string[]
}

export type ResponseEncoding = 'gzip' | 'deflate' | 'br'

export interface HttpResponseContext {
  readonly request: HttpRequestContext
  readonly status: number
  /** Headers that will go to the client; steps may change them. */
  readonly headers: HeaderMap
  vars?: Record<string, unknown>
  /** Set by compress-response: the edge streams the body through this encoder. */
  encoding?: ResponseEncoding
}

/** A step that stops the request: a catalogue error page, or a response the policy wrote itself. */
export type Denial =
  | { readonly code: ErrorCode, readonly detail?: string, readonly headers?: Record<string, string> }
  | { readonly response: { readonly status: number, readonly headers: Record<string, string | string[]>, readonly body: string } }
  /** close-connection: drop the client connection without a response. */
  | { readonly close: true }

export type ConnectStep = (ctx: ConnectContext) => Denial | undefined
/** Most steps answer at once; a few (jwt-validation fetching keys) answer later. */
export type RequestResult = Denial | undefined | Promise<Denial | undefined>
export type RequestStep = (ctx: HttpRequestContext) => RequestResult
export type ResponseStep = (ctx: HttpResponseContext) => void

export interface CompiledPolicy {
  /** TCP/TLS endpoints: once per connection. HTTP endpoints: once per request, before on_http_request
   *  (the Host that picks the endpoint is only known once a request arrives). */
  readonly onTcpConnect: readonly ConnectStep[] | null
  readonly onHttpRequest: readonly RequestStep[] | null
  readonly onHttpResponse: readonly ResponseStep[] | null
  /** A request action reads the body (verify-webhook): the edge buffers it, bounded, before on_http_request. */
  readonly needsBody: boolean
}

/** What compiling may be given: a clock for time-dependent actions (tests pass a fake one), and what the
 *  gateway lends the login actions (oauth, openid-connect). */
export interface CompileOptions {
  /** Milliseconds since the epoch; defaults to Date.now. */
  readonly now?: () => number
  /** The gateway's secret (data dir, keys/session-secret) that login cookies are signed with. Without it,
   *  login actions are refused: never a made-up key. */
  readonly sessionSecret?: Buffer
  /** The operator's endpoint URLs for OAuth providers (GitHub Enterprise, self-hosted GitLab). */
  readonly oauthProviders?: Readonly<Partial<Record<OAuthProviderName, OAuthEndpointOverrides>>>
  /** Whether URLs in policies (JWKS, OpenID issuers) may reach non-public addresses (see outbound.ts). */
  readonly allowPrivateUrls?: boolean
  /** The gateway's base domain (lower case). A login's auth_cookie_domain may not be it or above it: that
   *  cookie would go to every endpoint of every user. */
  readonly baseDomain?: string
  /** Hears, once per rule, that one of the rule's expressions could not be evaluated (the SSH session writes
   *  it on the user's terminal); the gateway's log hears of it on `porthole:policy:error` too. */
  readonly onRuleError?: (error: RuleError) => void
}

/** A rule's expression that failed at run time (a missing header indexed, a type seen only at run time). */
export interface RuleError {
  /** on_http_request[0].expressions[1] */
  readonly where: string
  readonly expression: string
  readonly reason: string
  /** Whether the rule's actions ran anyway: true for a rule that protects (deny, auth, restrict-ips, ...). */
  readonly applied: boolean
  /** The endpoint whose request met the error. */
  readonly endpoint: string
}
