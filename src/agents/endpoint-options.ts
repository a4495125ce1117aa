// The options an agent's endpoint is bound with, whichever transport the agent speaks: the SSH command line
// (agents/ssh/exec-grammar.ts) and the ngrok Bind RPC (agents/ngrok/bind-options.ts) both produce one
// SessionOptions, and specFor turns it into the EndpointSpec and compiled policy the registry binds. Here so
// that neither transport imports the other.
import { compilePolicy } from '../policy/compile.js'
import type { ModuleFlags } from '../policy/from-flags.js'
import type { EndpointProto, EndpointSpec } from '../core/endpoint.js'
import type { CompiledPolicy, CompileOptions } from '../policy/compiled.js'
import type { PolicyDocument } from '../policy/document.js'

export type OutputMode = 'text' | 'json'
export type Command = EndpointProto

export interface SessionOptions {
  /** The command the user typed, or null for none (ports then decide: 80/443/0 http, others tcp). */
  readonly command: Command | null
  readonly policy: PolicyDocument
  readonly hostHeader: string | undefined
  readonly schemes: EndpointSpec['schemes']
  readonly upstream: UpstreamOptions
  /** tcp/tls endpoints: PROXY protocol version prepended to the upstream stream (0: none). */
  readonly proxyProto: 0 | 1 | 2
  readonly output: OutputMode
  /** http endpoints: capture requests for the inspector (default true; `--inspect=false` turns it off). */
  readonly inspect: boolean
  /** Something the session must still read from the user's stdin before binding (--upstream-tls-verify-cas -). */
  readonly stdin: 'upstream-tls-verify-cas' | 'traffic-policy-file' | null
}

export interface UpstreamOptions {
  readonly tls: boolean
  readonly verify: boolean
  /** PEM of the CAs that verify the upstream's certificate (sent on stdin). */
  readonly cas: string | null
  readonly protocol: 'http1' | 'http2'
}

/** ModuleFlags with nothing set: what a transport starts from before it fills in the modules asked for. */
export const NO_FLAGS: Readonly<ModuleFlags> = Object.freeze({
  basicAuth: [], cidrAllow: [], cidrDeny: [], requestHeaderAdd: [], requestHeaderRemove: [], responseHeaderAdd: [], responseHeaderRemove: [],
  uaFilterAllow: [], uaFilterDeny: [], circuitBreaker: [], verifyWebhook: [], verifyWebhookSecret: [],
  oauth: [], oauthClientId: [], oauthClientSecret: [], oauthScope: [], oauthAllowEmail: [], oauthAllowDomain: [],
  oidc: [], oidcClientId: [], oidcClientSecret: [], oidcScope: [],
})

export const BOTH_SCHEMES = { http: true, https: true } as const

export const PLAIN_UPSTREAM: UpstreamOptions = { tls: false, verify: false, cas: null, protocol: 'http1' }

export const DEFAULT_OPTIONS: SessionOptions = {
  command: null, policy: {}, hostHeader: undefined, schemes: BOTH_SCHEMES, upstream: PLAIN_UPSTREAM, proxyProto: 0, output: 'text', inspect: true, stdin: null,
}

/** The spec and compiled policy a forward of `proto` is bound with. Throws PH_10xx if they do not fit.
 *  `compile` is what the gateway lends the policy (the login actions' session secret, OAuth provider URLs). */
export function specFor (options: SessionOptions, proto: EndpointProto, compile: CompileOptions = {}): { spec: EndpointSpec, compiled: CompiledPolicy } {
  const compiled = compilePolicy(options.policy, proto, compile)
  const spec: EndpointSpec = proto === 'http'
    ? { proto, schemes: options.schemes, upstream: options.upstream, inspect: options.inspect, ...(options.hostHeader !== undefined ? { hostHeader: options.hostHeader } : {}) }
    : { proto, schemes: BOTH_SCHEMES, upstream: PLAIN_UPSTREAM, proxyProto: options.proxyProto, inspect: false }
  return { spec, compiled }
}
