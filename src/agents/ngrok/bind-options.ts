// What a Bind request asks for, in Porthole's terms: the endpoint's proto, the name it wants, and the same
// SessionOptions the SSH command line produces (modules compiled by policyFromFlags, then the TrafficPolicy
// document, as `ssh ... http --basic-auth ... --traffic-policy ...` would). An option Porthole cannot honour is
// refused with PH_1071 naming it and why, a bad value with PH_1072, an unknown option with PH_1074: nothing is
// dropped silently. NGROK_OPTIONS lists every option with its support, for the README.
//
// Upstream: an ngrok agent dials its own upstream (TLS included, for https:// targets; ngrok-rust
// tunnel_ext.rs connect()), so the gateway speaks plain HTTP on the Proxy stream, or HTTP/2 with prior
// knowledge when ForwardsProto is http2 (the agent then offers h2 to its upstream).
import { PortholeError } from '../../core/errors.js'
import type { EndpointProto } from '../../core/endpoint.js'
import type { CompileOptions } from '../../policy/compiled.js'
import type { PolicyDocument } from '../../policy/document.js'
import { policyFromFlags, type ModuleFlags } from '../../policy/from-flags.js'
import { combinePolicies, parsePolicy } from '../../policy/parse.js'
import { re2Error } from '../../policy/regex.js'
import { BOTH_SCHEMES, NO_FLAGS, specFor, type SessionOptions } from '../endpoint-options.js'
import type { HttpOpts } from './bind-opts.js'
import type { Bind } from './messages.js'
import { WHY } from './option-table.js'
import { isZeroValue } from './wire.js'

export { NGROK_OPTIONS, type OptionSupport } from './option-table.js'

/** The name a Bind asks for, and which option asked (errors and listings name it). */
export interface RequestedName {
  readonly from: 'URL' | 'Domain' | 'Hostname' | 'Subdomain' | 'Addr'
  /** http/tls: a host (`app.example.com`, `*.team.example.com`) or a bare label (`app`: under the gateway's
   *  domain), as the SSH grammar's -R bind address. tcp: `host:port`. */
  readonly value: string
  /** tcp: the port of `value`. */
  readonly port?: number
}

export interface BindMapping {
  readonly proto: EndpointProto
  /** The scheme of the URL the BindResp reports: what the agent asked for (http endpoints serve both). */
  readonly urlScheme: 'http' | 'https' | 'tcp' | 'tls'
  /** null: a random name (http, tls) or a free port from the pool (tcp). */
  readonly name: RequestedName | null
  /** The spec and compiled policy to bind with (compiled once, here: what checked the values binds too). */
  readonly bound: ReturnType<typeof specFor>
  /** What specFor binds, exactly as the SSH transport builds it. */
  readonly options: SessionOptions
  /** Extra.PoolingEnabled: the agent agrees to share the name with other agents binding it. */
  readonly pooling: boolean
  /** Informational (listings, the inspector). */
  readonly info: { readonly name: string, readonly description: string, readonly metadata: string, readonly forwardsTo: string }
}

const refuse = (option: string, why: string): PortholeError => new PortholeError('PH_1071', `${option} (${why})`)
const badValue = (option: string, value: unknown, why: string): PortholeError =>
  new PortholeError('PH_1072', `${option} ${JSON.stringify(value)?.slice(0, 80) ?? ''} (${why})`)

const HOST = /^(?:\*\.)?[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/
const URL_FORM = /^(?:([A-Za-z][A-Za-z0-9+.-]*):\/\/)?([^/:?#\s]+)(?::(\d{1,5}))?\/?$/

function hostName (option: RequestedName['from'], value: string): RequestedName {
  if (!HOST.test(value)) throw badValue(`Opts.${option}`, value, 'want a host name such as app.example.com, *.team.example.com, or a label')
  return { from: option, value: value.toLowerCase() }
}

function tcpAddress (option: 'Addr' | 'URL', host: string, portText: string | undefined, given: string): RequestedName {
  const port = Number(portText)
  if (portText === undefined || !(port >= 1 && port <= 65535)) throw badValue(`Opts.${option}`, given, 'want host:port, e.g. tcp.example.com:20000')
  return { from: option, value: `${host}:${port}`, port }
}

/** The name asked for by URL, Domain, Hostname, Subdomain or Addr; two different ones are refused. */
function requestedName (bind: Bind): RequestedName | null {
  const names: RequestedName[] = []
  const o = bind.opts as Partial<Record<'URL' | 'Domain' | 'Hostname' | 'Subdomain' | 'Addr', string>>
  if (o.URL) {
    const m = URL_FORM.exec(o.URL)
    const want = bind.proto === 'tcp' ? ['tcp'] : bind.proto === 'tls' ? ['tls'] : ['http', 'https']
    if (!m || (m[1] !== undefined && !want.includes(m[1].toLowerCase()))) throw badValue('Opts.URL', o.URL, `want ${bind.proto}://host${bind.proto === 'tcp' ? ':port' : ''}`)
    if (bind.proto === 'tcp') names.push(tcpAddress('URL', m[2]!, m[3], o.URL))
    else if (m[3] !== undefined) throw badValue('Opts.URL', o.URL, `${bind.proto === 'tls' ? 'a tls' : 'an http'} endpoint is served on the gateway's own port; leave the port out`)
    else names.push(hostName('URL', m[2]!))
  }
  if (o.Domain) names.push(hostName('Domain', o.Domain))
  if (o.Hostname) names.push(hostName('Hostname', o.Hostname))
  if (o.Subdomain) {
    if (!/^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$/.test(o.Subdomain)) throw badValue('Opts.Subdomain', o.Subdomain, 'want one label: letters, digits and inner -')
    names.push({ from: 'Subdomain', value: o.Subdomain.toLowerCase() })
  }
  if (o.Addr) {
    const m = /^(\[[0-9A-Fa-f:.]+\]|[^:\s]*):(\d{1,5})$/.exec(o.Addr)
    names.push(tcpAddress('Addr', m?.[1] ?? '', m?.[2], o.Addr))
  }
  if (names.some((n) => n.value !== names[0]!.value)) {
    throw badValue(names.map((n) => `Opts.${n.from}`).join(' and '), names.map((n) => n.value), 'give one name')
  }
  return names[0] ?? null
}

/** ForwardsTo's host:port, the Host that HostHeaderRewrite sends upstream ('rewrite', i.e. localhost, if none). */
function forwardsHost (forwardsTo: string): string {
  try {
    const url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(forwardsTo) ? forwardsTo : `http://${forwardsTo}`)
    if ((url.protocol === 'http:' || url.protocol === 'https:') && /^[A-Za-z0-9.-]+(?::\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::\d{1,5})?$/.test(url.host)) return url.host
  } catch {}
  return 'rewrite'
}

function ratioText (option: string, ratio: number): string {
  // 1e-12 and above print exactly in 20 decimals (toFixed writes the double's own digits, read back to it)
  if (!(ratio >= 1e-12 && ratio <= 1)) throw badValue(option, ratio, 'want an error ratio above 0, up to 1')
  return ratio === 1 ? '1' : ratio.toFixed(20).replace(/0+$/, '')
}

function checkRegexes (option: string, patterns: readonly string[]): string[] {
  patterns.forEach((pattern, i) => {
    const error = re2Error(pattern)
    if (error !== undefined) throw badValue(`${option}[${i}]`, pattern, error)
  })
  return [...patterns]
}

function headerAdds (option: string, headers: NonNullable<HttpOpts['RequestHeaders']>): string[] {
  headers.add.forEach((entry, i) => {
    if (entry.indexOf(':') <= 0) throw badValue(`${option}.add[${i}]`, entry, "want 'Name:Value'")
  })
  return [...headers.add, ...Object.entries(headers.addParsed).map(([name, value]) => `${name}:${value}`)]
}

/** Login modules: a provider, the app's own client id and secret (no ngrok-managed apps), no sealed secret. */
function loginClient (option: string, login: { client_id: string, client_secret: string, sealed_client_secret: string }): [string[], string[]] {
  if (login.sealed_client_secret !== '') throw refuse(`${option}.sealed_client_secret`, WHY.sealed)
  if (login.client_id === '' || login.client_secret === '') throw refuse(`${option} without client_id and client_secret`, WHY.managedOAuth)
  return [[login.client_id], [login.client_secret]]
}

/** The http modules, as the SSH flags of the same names would set them. */
function httpFlags (bind: Bind & { proto: 'http' | 'https' }, flags: ModuleFlags): string | undefined {
  const o = bind.opts
  if (o.MutualTLSCA) throw refuse('Opts.MutualTLSCA', WHY.mutualTls)
  if (o.WebsocketTCPConverter) throw refuse('Opts.WebsocketTCPConverter', WHY.websocketTcp)
  if (o.ProxyProto !== 0) throw refuse('Opts.ProxyProto on an http endpoint', WHY.httpProxyProto)
  if (!['', 'http', 'https'].includes(o.LocalUrlScheme.toLowerCase())) throw badValue('Opts.LocalUrlScheme', o.LocalUrlScheme, 'want http or https')
  const basicAuth: string[] = []
  if (o.Auth !== '') {
    if (o.Auth.indexOf(':') <= 0) throw badValue('Opts.Auth', '***', 'want user:password')
    basicAuth.push(o.Auth)
  }
  o.BasicAuth?.credentials.forEach((c, i) => {
    const where = `Opts.BasicAuth.credentials[${i}]`
    if (c.hashed_password !== '') throw refuse(`${where}.hashed_password`, WHY.hashedPassword)
    if (c.username === '' || c.username.includes(':')) throw badValue(`${where}.username`, c.username, 'want a non-empty name without :')
    if (c.cleartext_password === '') throw badValue(`${where}.cleartext_password`, '', 'want a password')
    basicAuth.push(`${c.username}:${c.cleartext_password}`)
  })
  flags.basicAuth = basicAuth
  if (o.RequestHeaders) {
    flags.requestHeaderAdd = headerAdds('Opts.RequestHeaders', o.RequestHeaders)
    flags.requestHeaderRemove = [...o.RequestHeaders.remove]
  }
  if (o.ResponseHeaders) {
    flags.responseHeaderAdd = headerAdds('Opts.ResponseHeaders', o.ResponseHeaders)
    flags.responseHeaderRemove = [...o.ResponseHeaders.remove]
  }
  if (o.UserAgentFilter) {
    flags.uaFilterAllow = checkRegexes('Opts.UserAgentFilter.allow', o.UserAgentFilter.allow)
    flags.uaFilterDeny = checkRegexes('Opts.UserAgentFilter.deny', o.UserAgentFilter.deny)
  }
  if (o.Compression) flags.compression = true
  if (o.CircuitBreaker) flags.circuitBreaker = [ratioText('Opts.CircuitBreaker.error_threshold', o.CircuitBreaker.error_threshold)]
  if (o.WebhookVerification) {
    const w = o.WebhookVerification
    if (w.sealed_secret !== '') throw refuse('Opts.WebhookVerification.sealed_secret', WHY.sealed)
    if (w.provider === '') throw badValue('Opts.WebhookVerification.provider', '', 'want a provider such as github or stripe')
    if (w.secret === '') throw badValue('Opts.WebhookVerification.secret', '', 'want the signing secret')
    flags.verifyWebhook = [w.provider]
    flags.verifyWebhookSecret = [w.secret]
  }
  if (o.OAuth) {
    if (o.OAuth.provider === '') throw badValue('Opts.OAuth.provider', '', 'want a provider such as google or github')
    ;[flags.oauthClientId, flags.oauthClientSecret] = loginClient('Opts.OAuth', o.OAuth)
    flags.oauth = [o.OAuth.provider]
    flags.oauthScope = [...o.OAuth.scopes]
    flags.oauthAllowEmail = [...o.OAuth.allow_emails]
    flags.oauthAllowDomain = [...o.OAuth.allow_domains]
  }
  if (o.OIDC) {
    if (o.OIDC.issuer_url === '') throw badValue('Opts.OIDC.issuer_url', '', 'want the https URL of an OpenID provider')
    ;[flags.oidcClientId, flags.oidcClientSecret] = loginClient('Opts.OIDC', o.OIDC)
    flags.oidc = [o.OIDC.issuer_url]
    flags.oidcScope = [...o.OIDC.scopes]
    flags.oidcAllowEmail = [...o.OIDC.allow_emails]
    flags.oidcAllowDomain = [...o.OIDC.allow_domains]
  }
  return o.HostHeaderRewrite ? forwardsHost(bind.forwardsTo) : undefined
}

function trafficPolicy (text: string): PolicyDocument {
  if (text.trim() === '') return {}
  if (/^\s*\{\s*"(?:inbound|outbound)"/i.test(text)) throw refuse('Opts.TrafficPolicy in the legacy Inbound/Outbound form', WHY.legacyPolicy)
  return parsePolicy(text)
}

/**
 * Maps a parsed Bind onto what Porthole binds. Throws PortholeError: PH_1071 (refused option), PH_1072 (bad
 * value), or the policy engine's PH_1004/1005/1006/1008 for values it checks when compiling. The result is
 * compiled once here (with `compile`, as the gateway will bind it) so nothing is bound that would fail later.
 */
export function bindOptions (bind: Bind, compile: CompileOptions = {}): BindMapping {
  const proto: EndpointProto = bind.proto === 'https' ? 'http' : bind.proto
  const e = bind.extra
  if (e.ipPolicyRef !== '') throw refuse('Extra.IPPolicyRef', WHY.ipPolicyRef)
  if (e.bindings.some((b) => b.toLowerCase() !== 'public')) throw refuse(`Extra.Bindings ${JSON.stringify(e.bindings)}`, WHY.bindings)
  const forwardsProto = bind.forwardsProto.toLowerCase()
  if (!['', 'http1', 'http2'].includes(forwardsProto)) throw badValue('ForwardsProto', bind.forwardsProto, 'want http1 or http2')
  if (forwardsProto === 'http2' && proto !== 'http') throw badValue('ForwardsProto', bind.forwardsProto, 'http2 applies to http endpoints only')
  const o = bind.opts
  if (!isZeroValue(o.Policy ?? null)) throw refuse('Opts.Policy', WHY.legacyPolicy)

  const flags: ModuleFlags = { ...NO_FLAGS }
  if (o.IPRestriction) {
    flags.cidrAllow = [...o.IPRestriction.allow_cidrs]
    flags.cidrDeny = [...o.IPRestriction.deny_cidrs]
  }
  let hostHeader: string | undefined
  let proxyProto: 0 | 1 | 2 = 0
  if (bind.proto === 'http' || bind.proto === 'https') {
    hostHeader = httpFlags(bind, flags)
  } else {
    if (o.ProxyProto !== 0 && o.ProxyProto !== 1 && o.ProxyProto !== 2) throw badValue('Opts.ProxyProto', o.ProxyProto, 'want 0, 1 or 2')
    proxyProto = o.ProxyProto
    if (bind.proto === 'tls') {
      if (bind.opts.MutualTLSAtAgent) throw refuse('Opts.MutualTLSAtAgent', WHY.mutualTls)
      if (bind.opts.MutualTLSAtEdge) throw refuse('Opts.MutualTLSAtEdge', WHY.mutualTls)
      if (bind.opts.TLSTermination) throw refuse('Opts.TLSTermination', WHY.tlsTermination)
    }
  }
  const name = requestedName(bind)
  const options: SessionOptions = {
    command: proto,
    policy: combinePolicies(policyFromFlags(flags), trafficPolicy(o.TrafficPolicy)),
    hostHeader,
    schemes: BOTH_SCHEMES,
    upstream: { tls: false, verify: false, cas: null, protocol: forwardsProto === 'http2' ? 'http2' : 'http1' },
    proxyProto,
    output: 'text',
    // ngrok's agent inspects every http tunnel (its inspect option defaults on; the SDKs send nothing for it)
    inspect: true,
    stdin: null,
  }
  const bound = specFor(options, proto, compile) // every value checked now: a bad one is refused before anything binds
  return {
    proto,
    bound,
    urlScheme: bind.proto,
    name,
    options,
    pooling: e.poolingEnabled,
    info: { name: e.name, description: e.description, metadata: e.metadata, forwardsTo: bind.forwardsTo },
  }
}
