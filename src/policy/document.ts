// A traffic policy document, shaped like ngrok's Traffic Policy: phases hold rules; a rule's actions run in
// order when all its expressions hold. Flags from the SSH command line compile to this same shape
// (policy/from-flags.ts), so there is one module core whatever the source.

export interface BasicAuthAction {
  type: 'basic-auth'
  /** enforce: false lets requests without valid credentials through (ngrok's option); default true. */
  config: { credentials: string[], realm?: string, enforce?: boolean }
}
export interface RestrictIpsAction {
  type: 'restrict-ips'
  /** enforce: false lets denied addresses through (ngrok's option); default true. */
  config: { allow?: string[], deny?: string[], enforce?: boolean }
}
export interface AddHeadersAction {
  type: 'add-headers'
  config: { headers: Record<string, string> }
}
export interface RemoveHeadersAction {
  type: 'remove-headers'
  config: { headers: string[] }
}

export interface DenyAction {
  type: 'deny'
  config?: { status_code?: number }
}
export interface CustomResponseAction {
  type: 'custom-response'
  /** status_code defaults to 200, as in ngrok. */
  config: { status_code?: number, body?: string, content?: string, headers?: Record<string, string> }
}
export interface RedirectAction {
  type: 'redirect'
  config: { from?: string, to: string, status_code?: number, headers?: Record<string, string> }
}
export interface UrlRewriteAction {
  type: 'url-rewrite'
  config: { from?: string, to: string }
}

export interface RateLimitAction {
  type: 'rate-limit'
  config: { name: string, algorithm: 'sliding_window', capacity: number, rate: string, bucket_key?: string[], enforce?: boolean }
}
export interface CircuitBreakerAction {
  type: 'circuit-breaker'
  config?: { error_threshold?: number, volume_threshold?: number, window_duration?: string, tripped_duration?: string, num_buckets?: number, enforce?: boolean }
}
export interface CloseConnectionAction {
  type: 'close-connection'
  config?: Record<string, never>
}
export interface LogAction {
  type: 'log'
  config: { metadata: Record<string, unknown> }
}
export interface SetVarsAction {
  type: 'set-vars'
  config: { vars: Record<string, string | number | boolean>[] }
}

export interface JwtValidationAction {
  type: 'jwt-validation'
  /** issuer/audience allow lists, http.tokens sources, jws.allowed_algorithms and keys (checked at compile). */
  config: Record<string, unknown>
}
export interface VerifyWebhookAction {
  type: 'verify-webhook'
  /** provider, secret, enforce?, tolerance?, and for the generic provider algorithm/header/encoding/prefix. */
  config: Record<string, unknown>
}
export interface OAuthAction {
  type: 'oauth'
  /** provider, client_id, client_secret and the session fields (policy/login/config.ts). */
  config: Record<string, unknown>
}
export interface OpenIdConnectAction {
  /** ngrok's type is openid-connect; its documentation files it under oidc, so that is accepted too. */
  type: 'openid-connect' | 'oidc'
  /** issuer_url, client_id, client_secret and the session fields (policy/login/config.ts). */
  config: Record<string, unknown>
}
export interface CompressResponseAction {
  type: 'compress-response'
  /** 'compress' (LZW) is accepted, as ngrok documents it, but never chosen: node:zlib has no LZW. */
  config?: { algorithms?: ('gzip' | 'deflate' | 'br' | 'compress')[] }
}

export type Action =
  | BasicAuthAction | RestrictIpsAction | AddHeadersAction | RemoveHeadersAction
  | DenyAction | CustomResponseAction | RedirectAction | UrlRewriteAction | CompressResponseAction | VerifyWebhookAction | JwtValidationAction | OAuthAction | OpenIdConnectAction
  | RateLimitAction | CircuitBreakerAction | CloseConnectionAction | LogAction | SetVarsAction

export interface Rule {
  name?: string
  /** CEL expressions (policy/cel.ts); the actions run only when all of them hold. */
  expressions?: string[]
  actions: Action[]
}

export interface PolicyDocument {
  on_tcp_connect?: Rule[]
  on_http_request?: Rule[]
  on_http_response?: Rule[]
}

export type Phase = keyof PolicyDocument
