// Which resource a public request names, read once before routing and policy so that the endpoint the
// request is routed to, the host and path its policy sees and the request the upstream receives are the same
// thing. HTTP/1.1 (RFC 9112 3.2): exactly one Host; an absolute-form target (`GET http://host/admin`) names
// the authority to route by (it replaces Host) and is forwarded in origin-form (`/admin`); asterisk-form
// (`OPTIONS *`) and authority-form (CONNECT) are refused, as nginx does, and never reach an upstream.
// HTTP/2 (RFC 9113 8.3.1): `:authority` names the authority; a Host that names another one is malformed.
// A port in any authority must be a port (1-65535).
import type { IncomingMessage } from 'node:http'
import type { TLSSocket } from 'node:tls'
import type { ErrorCode } from '../core/errors.js'

export type Scheme = 'http' | 'https'

export interface RequestTarget {
  /** Lower-case host name without port or trailing dot, to route by and for policy; '' when none was sent. */
  readonly host: string
  /** host[:port] as the client named it: forwarded as Host and X-Forwarded-Host ('' when none was sent). */
  readonly authority: string
  /** origin-form: `/path?query`. */
  readonly path: string
}

export interface TargetError { readonly code: ErrorCode, readonly detail: string }

const HOST_NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/
/** host[:port]: an IP literal in brackets or anything without ':', '@', '[' or ']', then an optional port. */
const AUTHORITY = /^(\[[0-9a-f:.]+\]|[^:@[\]]*)(?::(.*))?$/i
/** scheme://authority then the rest; the rest is kept byte for byte (no WHATWG URL normalisation). */
const ABSOLUTE_FORM = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]*)(.*)$/is

interface Authority { readonly host: string, readonly port: number | null }

/** `host[:port]` -> its host (lower case) and port; an error naming the value for a bad one. */
function parseAuthority (value: string, what: string): Authority | TargetError {
  const match = AUTHORITY.exec(value)
  if (match === null) return { code: 'PH_3013', detail: `${what} ${JSON.stringify(value)}` }
  const portText = match[2]
  if (portText === undefined) return { host: match[1]!.toLowerCase(), port: null }
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : 0
  if (port < 1 || port > 65535) return { code: 'PH_3013', detail: `${what} ${JSON.stringify(value)} (port ${JSON.stringify(portText)})` }
  return { host: match[1]!.toLowerCase(), port }
}

/** A parsed host -> the host to route by: no trailing dot, and '' for anything but a DNS name or IP literal. */
function routingName (host: string): string {
  if (host.startsWith('[')) return host
  const name = host.endsWith('.') ? host.slice(0, -1) : host
  // Anything but a DNS name (evil.example/.team.localhost) must not reach a wildcard endpoint as its Host.
  return HOST_NAME.test(name) ? name : ''
}

/** Host header (or SNI name) -> lower-case host without port or trailing dot; '' when absent or not a host name. */
export function routingHost (value: string | undefined): string {
  if (!value) return ''
  const parsed = parseAuthority(value, 'Host')
  return 'code' in parsed ? '' : routingName(parsed.host)
}

/** The server name a TLS connection was made for (its SNI), as the client sent it; undefined without one. */
export function serverNameOf (socket: TLSSocket): string | undefined {
  return typeof socket.servername === 'string' ? socket.servername : undefined
}

const DEFAULT_PORT = { http: 80, https: 443 } as const

function sameAuthority (a: Authority, b: Authority, scheme: Scheme): boolean {
  return routingName(a.host) === routingName(b.host) && (a.port ?? DEFAULT_PORT[scheme]) === (b.port ?? DEFAULT_PORT[scheme])
}

/** The one Host header of a request; an error when there are several (RFC 9112 3.2: 400). */
function hostHeader (req: TargetSource): string | undefined | TargetError {
  const raw = req.rawHeaders
  let found: string | undefined
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!
    if (name.length !== 4 || name.toLowerCase() !== 'host') continue
    if (found !== undefined) return { code: 'PH_3012', detail: `two Host headers, ${JSON.stringify(found)} and ${JSON.stringify(raw[i + 1])}` }
    found = raw[i + 1]!
  }
  return found
}

/** What a target is read from: an IncomingMessage (HTTP/1.1 or HTTP/2), or the fast path's parsed head. */
export type TargetSource = Pick<IncomingMessage, 'method' | 'url' | 'rawHeaders' | 'httpVersionMajor'> & { readonly headers: Readonly<Record<string, string | string[] | undefined>> }

/** Reads the request's target: the authority to route by and the origin-form path, or why it is refused. */
export function requestTarget (req: TargetSource, scheme: Scheme): RequestTarget | TargetError {
  const method = req.method ?? 'GET'
  const url = req.url ?? ''
  const host = hostHeader(req)
  if (typeof host === 'object') return host
  const fromHost = host === undefined ? undefined : parseAuthority(host, 'Host')
  if (fromHost !== undefined && 'code' in fromHost) return fromHost
  if (method === 'CONNECT') return { code: 'PH_3014', detail: `CONNECT ${req.headers[':authority'] ?? url}` }

  let authority: string | undefined
  let path: string
  if (url.startsWith('/')) {
    path = url
  } else {
    const absolute = req.httpVersionMajor === 2 ? null : ABSOLUTE_FORM.exec(url)
    if (absolute === null) return { code: 'PH_3014', detail: `${method} ${url}` } // `*`, host:port, anything else
    const targetScheme = absolute[1]!.toLowerCase()
    if (targetScheme !== 'http' && targetScheme !== 'https') return { code: 'PH_3014', detail: `${method} ${url}` }
    if (targetScheme !== scheme) return { code: 'PH_3015', detail: `${url} (this connection is ${scheme})` }
    authority = absolute[2]!
    if (authority.includes('@')) return { code: 'PH_3013', detail: `request target ${JSON.stringify(url)} (user info)` }
    const rest = absolute[3]!
    path = rest.startsWith('/') ? rest : `/${rest}`
  }

  if (req.httpVersionMajor === 2) {
    const pseudoScheme = req.headers[':scheme']
    if (pseudoScheme !== undefined && pseudoScheme !== scheme) return { code: 'PH_3015', detail: `:scheme ${JSON.stringify(pseudoScheme)} (this connection is ${scheme})` }
    const pseudo = req.headers[':authority']
    if (typeof pseudo === 'string') authority = pseudo
  }
  if (authority === undefined) {
    authority = host ?? ''
    const parsed = fromHost ?? { host: '', port: null }
    return named(parsed, authority, path)
  }
  const parsed = parseAuthority(authority, req.httpVersionMajor === 2 ? ':authority' : 'request target authority')
  if ('code' in parsed) return parsed
  // HTTP/2: a Host naming another authority than :authority is malformed (RFC 9113 8.3.1), so that routing and
  // policy cannot see two different hosts. HTTP/1.1 absolute-form: Host is ignored (RFC 9112 3.2.2).
  if (req.httpVersionMajor === 2 && fromHost !== undefined && !sameAuthority(parsed, fromHost, scheme)) {
    return { code: 'PH_3012', detail: `:authority ${JSON.stringify(authority)} and Host ${JSON.stringify(host)} differ` }
  }
  return named(parsed, authority, path)
}

function named (parsed: Authority, authority: string, path: string): RequestTarget | TargetError {
  const host = routingName(parsed.host)
  if (host === '' && authority !== '') return { code: 'PH_3007', detail: `Host ${JSON.stringify(authority)} is not a host name` }
  return { host, authority, path }
}
