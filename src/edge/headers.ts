// Header handling for a compliant reverse proxy (RFC 9110 section 7.6.1): hop-by-hop headers, and those
// named in Connection, stay on their hop; X-Forwarded-* say where the request came from; only Porthole may
// set porthole-error-code.
import { STATUS_CODES, type IncomingMessage } from 'node:http'
import type { HeaderMap } from '../policy/compiled.js'

export const ERROR_CODE_HEADER = 'porthole-error-code'

/**
 * Loops: the edge appends its own mark (random at each start) to this header on every request it sends
 * upstream, as `Via` does; a request that arrives carrying it went through this edge already (a forward pointed
 * at the gateway's own HTTP port) and is answered 508 PH_1100 at once instead of piling up streams.
 */
export const HOP_HEADER = 'porthole-hop'

/** Whether the request carries `mark` in its porthole-hop header. */
export function cameBack (req: IncomingMessage, mark: string): boolean {
  const value = req.headers[HOP_HEADER]
  if (value === undefined) return false
  const text = Array.isArray(value) ? value.join(',') : value
  return text.split(',').some((hop) => hop.trim() === mark)
}

/** A HeaderMap as HTTP/1.1 field lines, each ending in CRLF (a list value: a line per value). */
export function headerLines (headers: HeaderMap): string {
  let lines = ''
  for (const name in headers) {
    const value = headers[name]
    if (value === undefined) continue
    if (typeof value === 'string') lines += `${name}: ${value}\r\n`
    else for (const each of value) lines += `${name}: ${each}\r\n`
  }
  return lines
}

/** Appends `mark` to the porthole-hop header of headers going upstream. */
export function addHop (headers: HeaderMap, mark: string): void {
  const existing = headers[HOP_HEADER]
  headers[HOP_HEADER] = existing === undefined ? mark : `${Array.isArray(existing) ? existing.join(', ') : existing}, ${mark}`
}

const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer',
  'transfer-encoding', 'upgrade', 'http2-settings',
])

function connectionTokens (value: string | string[] | undefined): Set<string> | null {
  if (value === undefined) return null
  const text = Array.isArray(value) ? value.join(',') : value
  const tokens = new Set<string>()
  for (const token of text.split(',')) {
    const name = token.trim().toLowerCase()
    if (name !== '' && name !== 'close' && name !== 'keep-alive' && name !== 'upgrade') tokens.add(name)
  }
  return tokens.size > 0 ? tokens : null
}

/**
 * The headers to send upstream for a public request: end-to-end headers only (undici adds Connection and
 * Upgrade itself for upgrades), plus X-Forwarded-For/Proto appended, and Host and X-Forwarded-Host set to
 * `authority`: the one the request was routed by (absolute-form target, :authority or Host; see request-target).
 */
export function upstreamRequestHeaders (req: Pick<IncomingMessage, 'rawHeaders'> & { readonly headers: { readonly connection?: string | string[] } }, clientIp: string, proto: string, authority: string): HeaderMap {
  const raw = req.rawHeaders
  const extra = connectionTokens(req.headers.connection)
  // Host first, as clients send it (RFC 9110 7.2).
  const headers: HeaderMap = authority === '' ? {} : { host: authority }
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase()
    // HTTP/2 pseudo-headers, and Host: the routed authority becomes Host below.
    if (name.charCodeAt(0) === 58 /* ':' */ || name === 'host') continue
    if (HOP_BY_HOP.has(name) || name === 'expect' || (extra !== null && extra.has(name))) continue
    const value = raw[i + 1]!
    const existing = headers[name]
    if (existing === undefined) headers[name] = value
    else if (Array.isArray(existing)) existing.push(value)
    else headers[name] = [existing, value]
  }
  const forwardedFor = headers['x-forwarded-for']
  headers['x-forwarded-for'] = forwardedFor === undefined ? clientIp : `${Array.isArray(forwardedFor) ? forwardedFor.join(', ') : forwardedFor}, ${clientIp}`
  const forwardedProto = headers['x-forwarded-proto']
  headers['x-forwarded-proto'] = forwardedProto === undefined ? proto : `${Array.isArray(forwardedProto) ? forwardedProto.join(', ') : forwardedProto}, ${proto}`
  if (authority !== '') headers['x-forwarded-host'] = authority
  return headers
}

/**
 * An upstream response's headers (as undici parsed them) without those that stay on their hop, as a new object:
 * deleting them in place (every keep-alive upstream sends Connection) turned each response's header object into
 * a slow dictionary for the rest of its way (writeHead walks it): 0.6-1.1 µs per response, 0.2-0.3 as a copy.
 */
export function cleanResponseHeaders (headers: HeaderMap): HeaderMap {
  const extra = connectionTokens(headers.connection)
  const clean: HeaderMap = {}
  for (const name in headers) {
    if (HOP_BY_HOP.has(name) || name === ERROR_CODE_HEADER || (extra !== null && extra.has(name))) continue
    clean[name] = headers[name]!
  }
  return clean
}

/**
 * A response head for the fast path (fast-h1.ts), from the upstream's raw fields: those that stay on their hop
 * and porthole-error-code are left out as cleanResponseHeaders does, except the framing (Content-Length,
 * Transfer-Encoding), which goes on with the body it frames. `close`: the connection ends after this response.
 */
export function relayedResponseHead (status: number, raw: readonly string[], close: boolean, date: string): string {
  const extra = connectionTokens(connectionValue(raw))
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n`
  let dated = false
  for (let i = 0; i < raw.length; i += 2) {
    const field = raw[i]!
    // Most fields are none of these: lower-cased (a new string) only when the length could match one.
    if (extra !== null || DROPPED_LENGTHS.has(field.length)) {
      const name = field.toLowerCase()
      if (name === 'date') dated = true
      else if (name === ERROR_CODE_HEADER || (HOP_BY_HOP.has(name) && name !== 'transfer-encoding') || (extra !== null && extra.has(name))) continue
    }
    head += `${field}: ${raw[i + 1]}\r\n`
  }
  // As node's ServerResponse does on the usual path.
  if (!dated) head += `Date: ${date}\r\n`
  return close ? `${head}Connection: close\r\n\r\n` : `${head}\r\n`
}

/** The lengths of the names relayedResponseHead looks at (hop-by-hop, porthole-error-code, date). */
const DROPPED_LENGTHS = new Set([...HOP_BY_HOP, ERROR_CODE_HEADER, 'date'].map((name) => name.length))

/** The Connection header's values in a raw field list, joined as node joins them; undefined when none. */
export function connectionValue (raw: readonly string[]): string | undefined {
  let value: string | undefined
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!
    if (name.length === 10 && name.toLowerCase() === 'connection') value = value === undefined ? raw[i + 1]! : `${value}, ${raw[i + 1]!}`
  }
  return value
}
