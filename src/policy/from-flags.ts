// Compiles command-line module flags (as ngrok's agent and SSH gateway spell them) into policy rules.
// Order matters and mirrors ngrok: IP rules first, then the user-agent filter, authentication (webhook
// signatures, basic auth, OAuth, OpenID Connect), the circuit breaker, then header changes.
import { PortholeError } from '../core/errors.js'
import { re2Error } from './regex.js'
import type { PolicyDocument, Rule } from './document.js'

export interface ModuleFlags {
  basicAuth: string[]
  cidrAllow: string[]
  cidrDeny: string[]
  requestHeaderAdd: string[]
  requestHeaderRemove: string[]
  responseHeaderAdd: string[]
  responseHeaderRemove: string[]
  uaFilterAllow: string[]
  uaFilterDeny: string[]
  /** One value at most: the error ratio (0-1) that trips the breaker. */
  circuitBreaker: string[]
  /** --compression: compress responses the client accepts compressed (gzip, deflate, br). */
  compression?: boolean
  /** --verify-webhook PROVIDER with --verify-webhook-secret SECRET (one value each). */
  verifyWebhook: string[]
  verifyWebhookSecret: string[]
  /** --oauth PROVIDER with its client (one value each), scopes and allowed emails/domains (repeatable). */
  oauth: string[]
  oauthClientId: string[]
  oauthClientSecret: string[]
  oauthScope: string[]
  oauthAllowEmail: string[]
  oauthAllowDomain: string[]
  /** --oidc ISSUER_URL with its client (one value each) and scopes (repeatable). */
  oidc: string[]
  oidcClientId: string[]
  oidcClientSecret: string[]
  oidcScope: string[]
  /** Accounts let in after an OpenID Connect login (ngrok agents' OIDC allow_emails / allow_domains). */
  oidcAllowEmail?: string[]
  oidcAllowDomain?: string[]
}

/** The oauth / openid-connect rule of --oauth* or --oidc* flags, or undefined when none is given. */
function loginRule (kind: 'oauth' | 'oidc', main: string[], clientId: string[], clientSecret: string[], extra: Record<string, string[]>): Rule | undefined {
  const given = [main, clientId, clientSecret, ...Object.values(extra)].some((values) => values.length > 0)
  if (!given) return undefined
  const what = kind === 'oauth' ? 'PROVIDER' : 'ISSUER_URL'
  if (main.length === 0) throw new PortholeError('PH_1002', `--${kind}-* flags (they need --${kind} ${what})`)
  if (clientId.length === 0 || clientSecret.length === 0) {
    throw new PortholeError('PH_1002', `--${kind} (give --${kind}-client-id and --${kind}-client-secret of your OAuth app: Porthole has no managed ones)`)
  }
  const config: Record<string, unknown> = kind === 'oauth' ? { provider: main[0] } : { issuer_url: main[0] }
  config.client_id = clientId[0]
  config.client_secret = clientSecret[0]
  for (const [field, values] of Object.entries(extra)) if (values.length > 0) config[field] = values
  return { name: `${kind} flags`, actions: [{ type: kind === 'oauth' ? 'oauth' : 'openid-connect', config }] }
}

/** A CEL rule denying by user agent (ngrok's semantics): a deny regex matches, or there are allow
 *  regexes and none matches. Regexes are RE2, as CEL's `matches` (and ngrok) read them; checked now. */
export function userAgentRule (allow: string[], deny: string[]): Rule {
  const test = (flag: string) => (pattern: string): string => {
    const error = re2Error(pattern)
    if (error !== undefined) throw new PortholeError('PH_1002', `--${flag} ${JSON.stringify(pattern)} (${error})`)
    return `req.user_agent.raw.matches(${JSON.stringify(pattern)})`
  }
  const denied = deny.map(test('ua-filter-deny'))
  if (allow.length > 0) denied.push(`!(${allow.map(test('ua-filter-allow')).join(' || ')})`)
  return { name: 'ua-filter flags', expressions: [denied.join(' || ')], actions: [{ type: 'deny' }] }
}

function circuitBreakerRatio (text: string): number {
  const ratio = Number(text)
  if (!/^\s*(?:0|1|0?\.\d+|1\.0*)\s*$/.test(text) || !(ratio >= 0 && ratio <= 1)) {
    throw new PortholeError('PH_1002', `--circuit-breaker ${JSON.stringify(text)} (want an error ratio from 0 to 1, e.g. 0.5)`)
  }
  return ratio
}

/** 'Name: value' -> [Name, value]; throws PH_1005 naming the flag. */
export function splitHeader (text: string, flag: string): [string, string] {
  const colon = text.indexOf(':')
  if (colon <= 0) throw new PortholeError('PH_1005', `${JSON.stringify(text)} for ${flag} (want 'Name: value')`)
  return [text.slice(0, colon).trim(), text.slice(colon + 1).trim()]
}

function headerAdds (values: string[], flag: string): Record<string, string> {
  const headers: Record<string, string> = {}
  for (const value of values) {
    const [name, text] = splitHeader(value, flag)
    headers[name] = text
  }
  return headers
}

export function policyFromFlags (flags: ModuleFlags): PolicyDocument {
  const connect: Rule[] = []
  const request: Rule[] = []
  const response: Rule[] = []
  if (flags.cidrAllow.length > 0 || flags.cidrDeny.length > 0) {
    connect.push({ name: 'cidr flags', actions: [{ type: 'restrict-ips', config: { allow: flags.cidrAllow, deny: flags.cidrDeny } }] })
  }
  if (flags.uaFilterAllow.length > 0 || flags.uaFilterDeny.length > 0) request.push(userAgentRule(flags.uaFilterAllow, flags.uaFilterDeny))
  if (flags.verifyWebhook.length > 0 || flags.verifyWebhookSecret.length > 0) {
    if (flags.verifyWebhook.length === 0 || flags.verifyWebhookSecret.length === 0) {
      throw new PortholeError('PH_1002', '--verify-webhook (give both --verify-webhook PROVIDER and --verify-webhook-secret SECRET)')
    }
    request.push({ name: 'verify-webhook flags', actions: [{ type: 'verify-webhook', config: { provider: flags.verifyWebhook[0]!, secret: flags.verifyWebhookSecret[0]! } }] })
  }
  if (flags.basicAuth.length > 0) {
    request.push({ name: 'basic-auth flag', actions: [{ type: 'basic-auth', config: { credentials: flags.basicAuth } }] })
  }
  const oauth = loginRule('oauth', flags.oauth, flags.oauthClientId, flags.oauthClientSecret, { scopes: flags.oauthScope, allow_emails: flags.oauthAllowEmail, allow_domains: flags.oauthAllowDomain })
  if (oauth) request.push(oauth)
  const oidc = loginRule('oidc', flags.oidc, flags.oidcClientId, flags.oidcClientSecret, { scopes: flags.oidcScope, allow_emails: flags.oidcAllowEmail ?? [], allow_domains: flags.oidcAllowDomain ?? [] })
  if (oidc) request.push(oidc)
  if (flags.circuitBreaker.length > 0) {
    request.push({ name: 'circuit-breaker flag', actions: [{ type: 'circuit-breaker', config: { error_threshold: circuitBreakerRatio(flags.circuitBreaker[0]!) } }] })
  }
  if (flags.requestHeaderRemove.length > 0) {
    request.push({ name: 'request header flags', actions: [{ type: 'remove-headers', config: { headers: flags.requestHeaderRemove } }] })
  }
  if (flags.requestHeaderAdd.length > 0) {
    request.push({ name: 'request header flags', actions: [{ type: 'add-headers', config: { headers: headerAdds(flags.requestHeaderAdd, '--request-header-add') } }] })
  }
  if (flags.responseHeaderRemove.length > 0) {
    response.push({ name: 'response header flags', actions: [{ type: 'remove-headers', config: { headers: flags.responseHeaderRemove } }] })
  }
  if (flags.responseHeaderAdd.length > 0) {
    response.push({ name: 'response header flags', actions: [{ type: 'add-headers', config: { headers: headerAdds(flags.responseHeaderAdd, '--response-header-add') } }] })
  }
  if (flags.compression === true) response.push({ name: 'compression flag', actions: [{ type: 'compress-response' }] })
  const document: PolicyDocument = {}
  if (connect.length > 0) document.on_tcp_connect = connect
  if (request.length > 0) document.on_http_request = request
  if (response.length > 0) document.on_http_response = response
  return document
}
