// CEL expressions of traffic policy rules (via @bufbuild/cel), with the variable names ngrok documents:
// conn.*, req.*, res.*, endpoint.*, time.now, and a few of its helper functions. Expressions are parsed
// and planned once, at bind time; the variables of a request are built only if a rule asks for them.
import { celEnv, celFunc, CelScalar, isCelError, listType, parse, plan } from '@bufbuild/cel'
import { isMessage } from '@bufbuild/protobuf'
import { isReflectMessage } from '@bufbuild/protobuf/reflect'
import { timestampDate, timestampFromDate, TimestampSchema } from '@bufbuild/protobuf/wkt'
import ipaddr from 'ipaddr.js'
import { PortholeError } from '../core/errors.js'
import { fastProgram } from './cel-fast.js'
import type { ActionResults, ConnectContext, HeaderMap, HttpRequestContext, HttpResponseContext } from './compiled.js'

/** The variables of the request being evaluated: ngrok's helpers (hasReqHeader, ...) read them implicitly. */
let current: Record<string, unknown> = {}

function list (value: string | string[] | undefined): string[] {
  return value === undefined ? [] : Array.isArray(value) ? value : [value]
}

/** req.headers / res.headers: lower-case names, read case-insensitively (HTTP header names are), so ngrok's
 *  examples' `req.headers['X-Api-Version']` and `'Authorization' in req.headers` find them. */
class HeaderFields extends Map<string, string[]> {
  override get (name: string): string[] | undefined {
    return super.get(typeof name === 'string' ? name.toLowerCase() : name)
  }

  override has (name: string): boolean {
    return super.has(typeof name === 'string' ? name.toLowerCase() : name)
  }
}

function headerMap (headers: HeaderMap): Map<string, string[]> {
  const map = new HeaderFields()
  for (const name in headers) {
    const values = list(headers[name])
    if (values.length > 0) map.set(name, values)
  }
  return map
}

function inCidrRange (ip: string, cidr: string): boolean {
  try {
    const addr = ipaddr.process(ip)
    const range = ipaddr.parseCIDR(cidr)
    return addr.kind() === range[0].kind() && addr.match(range)
  } catch {
    return false
  }
}

const requestMap = (field: 'headers' | 'query_params'): Map<string, string[]> =>
  ((current.req as Map<string, unknown> | undefined)?.get(field) as Map<string, string[]> | undefined) ?? new Map()

const STRING_LIST = listType(CelScalar.STRING)

const env = celEnv({
  funcs: [
    celFunc('inCidrRange', [CelScalar.STRING, CelScalar.STRING], CelScalar.BOOL, inCidrRange),
    celFunc('hasReqHeader', [CelScalar.STRING], CelScalar.BOOL, (name: string) => requestMap('headers').has(name.toLowerCase())),
    celFunc('getReqHeader', [CelScalar.STRING], STRING_LIST, (name: string) => (requestMap('headers').get(name.toLowerCase()) ?? []) as never),
    celFunc('hasQueryParam', [CelScalar.STRING], CelScalar.BOOL, (name: string) => requestMap('query_params').has(name)),
    celFunc('getQueryParam', [CelScalar.STRING], STRING_LIST, (name: string) => (requestMap('query_params').get(name) ?? []) as never),
  ],
})

export type CelProgram = (vars: Record<string, unknown>) => unknown

/** Parses and plans one expression; `where` names it in the error (on_http_request[0].expressions[1]).
 *  `fast: false` leaves out the fast paths of policy/cel-fast.ts (tests compare the two). */
export function compileExpression (expression: string, where: string, { fast = true } = {}): CelProgram {
  if (typeof expression !== 'string' || expression.trim() === '') throw new PortholeError('PH_1008', `${where}: an expression must be a non-empty string`)
  let program: ReturnType<typeof plan>
  let parsed: ReturnType<typeof parse>
  try {
    parsed = parse(expression)
    program = plan(env, parsed)
  } catch (error) {
    throw new PortholeError('PH_1008', `${where}: ${(error as Error).message.split('\n')[0]}`)
  }
  const slow: CelProgram = (vars) => {
    current = vars
    return program(vars as never)
  }
  return (fast ? fastProgram(parsed.expr, slow, DOTTED_VARIABLES) : null) ?? slow
}

/** All expressions must evaluate to true; an evaluation error (unknown variable, wrong type) counts as false. */
export function allHold (programs: readonly CelProgram[], vars: Record<string, unknown>): boolean {
  for (const program of programs) {
    const result = program(vars)
    if (result !== true || isCelError(result)) return false
  }
  return true
}

/**
 * A variable whose fields are computed when an expression first reads them. @bufbuild/cel reads a Map field
 * by field (a plain object it copies whole on every access), so a rule reading req.method no longer pays for
 * parsing headers, cookies and query parameters, nor a template for a timestamp it never uses. One subclass
 * per variable, computing from the context it holds: no closures are made per request.
 */
abstract class LazyFields extends Map<string, unknown> {
  readonly #names: ReadonlySet<string>

  constructor (names: ReadonlySet<string>) {
    super()
    this.#names = names
  }

  protected abstract make (key: string): unknown

  override get (key: string): unknown {
    const value = super.get(key)
    if (value !== undefined || !this.#names.has(key)) return value
    const made = this.make(key)
    super.set(key, made)
    return made
  }

  override has (key: string): boolean {
    return this.#names.has(key)
  }
}

const CONN_FIELDS = new Set(['client_ip', 'client_port', 'server_port', 'ts'])
class ConnFields extends LazyFields {
  readonly #ctx: ConnectContext
  constructor (ctx: ConnectContext) { super(CONN_FIELDS); this.#ctx = ctx }
  protected make (key: string): unknown {
    const ctx = this.#ctx
    if (key === 'ts') return new ConnTimeFields(ctx)
    return key === 'client_ip' ? ctx.clientIp : BigInt(key === 'client_port' ? ctx.clientPort : ctx.serverPort)
  }
}

/** When the gateway first evaluated a rule for a connection: conn.ts.start (made only when a rule reads it). */
const connectionStarts = new WeakMap<object, number>()

const CONN_TIME_FIELDS = new Set(['start'])
class ConnTimeFields extends LazyFields {
  readonly #ctx: ConnectContext
  constructor (ctx: ConnectContext) { super(CONN_TIME_FIELDS); this.#ctx = ctx }
  protected make (): unknown {
    const connection = this.#ctx.connection
    let start = connection === undefined ? undefined : connectionStarts.get(connection)
    if (start === undefined) {
      start = Date.now()
      if (connection !== undefined) connectionStarts.set(connection, start)
    }
    return timestampFromDate(new Date(start))
  }
}

const ENDPOINT_FIELDS = new Set(['host', 'protocol'])
class EndpointFields extends LazyFields {
  readonly #ctx: ConnectContext
  constructor (ctx: ConnectContext) { super(ENDPOINT_FIELDS); this.#ctx = ctx }
  protected make (key: string): unknown { return key === 'host' ? this.#ctx.endpointHost : this.#ctx.protocol }
}

const TIME_FIELDS = new Set(['now'])
class TimeFields extends LazyFields {
  constructor () { super(TIME_FIELDS) }
  protected make (): unknown { return timestampFromDate(new Date()) }
}

const REQUEST_FIELDS = new Set(['method', 'host', 'url', 'headers', 'query_params', 'cookies', 'content_type', 'user_agent'])
class RequestFields extends LazyFields {
  readonly #ctx: HttpRequestContext
  /** The path and query as they are when the variables are first read (url-rewrite earlier in the phase changes it). */
  readonly #full: string
  constructor (ctx: HttpRequestContext) { super(REQUEST_FIELDS); this.#ctx = ctx; this.#full = ctx.path }

  get #rawQuery (): string {
    const query = this.#full.indexOf('?')
    return query === -1 ? '' : this.#full.slice(query + 1)
  }

  protected make (key: string): unknown {
    const ctx = this.#ctx
    switch (key) {
      case 'method': return ctx.method
      case 'host': return ctx.host
      case 'url': return new UrlFields(ctx, this.#full)
      case 'headers': return headerMap(ctx.headers)
      case 'query_params': {
        const map = new Map<string, string[]>()
        for (const [name, value] of new URLSearchParams(this.#rawQuery)) map.set(name, [...(map.get(name) ?? []), value])
        return map
      }
      case 'cookies': return cookieMap(ctx.headers)
      case 'content_type': return list(ctx.headers['content-type'])[0] ?? ''
      default: return new UserAgentFields(ctx)
    }
  }
}

const URL_FIELDS = new Set(['path', 'query', 'host', 'scheme', 'raw'])
class UrlFields extends LazyFields {
  readonly #ctx: HttpRequestContext
  readonly #full: string
  constructor (ctx: HttpRequestContext, full: string) { super(URL_FIELDS); this.#ctx = ctx; this.#full = full }
  protected make (key: string): unknown {
    const full = this.#full
    const query = full.indexOf('?')
    switch (key) {
      case 'path': return query === -1 ? full : full.slice(0, query)
      case 'query': return query === -1 ? '' : full.slice(query + 1)
      case 'host': return this.#ctx.host
      case 'scheme': return this.#ctx.protocol
      default: return `${this.#ctx.protocol}://${this.#ctx.host}${full}`
    }
  }
}

const USER_AGENT_FIELDS = new Set(['raw'])
class UserAgentFields extends LazyFields {
  readonly #ctx: HttpRequestContext
  constructor (ctx: HttpRequestContext) { super(USER_AGENT_FIELDS); this.#ctx = ctx }
  protected make (): unknown { return list(this.#ctx.headers['user-agent'])[0] ?? '' }
}

const RESPONSE_FIELDS = new Set(['status_code', 'headers'])
class ResponseFields extends LazyFields {
  readonly #ctx: HttpResponseContext
  constructor (ctx: HttpResponseContext) { super(RESPONSE_FIELDS); this.#ctx = ctx }
  protected make (key: string): unknown { return key === 'status_code' ? BigInt(this.#ctx.status) : headerMap(this.#ctx.headers) }
}

function cookieMap (headers: HeaderMap): Map<string, string[]> {
  const map = new Map<string, string[]>()
  for (const header of list(headers.cookie)) {
    for (const pair of header.split(';')) {
      const eq = pair.indexOf('=')
      if (eq > 0) {
        const name = pair.slice(0, eq).trim()
        map.set(name, [...(map.get(name) ?? []), pair.slice(eq + 1).trim()])
      }
    }
  }
  return map
}

/**
 * The CEL variables of one connection or request (@bufbuild/cel reads them as `vars[name]`). conn, endpoint
 * and time are made on first read; req, res, actions and vars are set as the phases go. Every instance has
 * the same shape, and a variable not set yet is undefined, which CEL reads as undeclared.
 */
class Variables {
  readonly #ctx: ConnectContext
  #conn: ConnFields | undefined = undefined
  #endpoint: EndpointFields | undefined = undefined
  #time: TimeFields | undefined = undefined
  req: RequestFields | undefined = undefined
  res: ResponseFields | undefined = undefined
  actions: unknown
  vars: unknown

  constructor (ctx: ConnectContext) {
    this.#ctx = ctx
    this.actions = ctx.results?.actions
    this.vars = ctx.results?.vars
  }

  get conn (): ConnFields { return (this.#conn ??= new ConnFields(this.#ctx)) }
  get endpoint (): EndpointFields { return (this.#endpoint ??= new EndpointFields(this.#ctx)) }
  get time (): TimeFields { return (this.#time ??= new TimeFields()) }

  // ngrok's req.url is the whole URL as a string (`req.url.contains('/robots.txt')`) and req.url.path etc. are
  // variables of their own. CEL looks a dotted name up as a whole first, so both work when each is declared.
  #url (field: string): unknown { return (this.req?.get('url') as UrlFields | undefined)?.get(field) }
  // (Their names are in DOTTED_VARIABLES, for the fast paths.)
  get 'req.url' (): unknown { return this.#url('raw') }
  get 'req.url.path' (): unknown { return this.#url('path') }
  get 'req.url.query' (): unknown { return this.#url('query') }
  get 'req.url.host' (): unknown { return this.#url('host') }
  get 'req.url.scheme' (): unknown { return this.#url('scheme') }
  get 'req.url.raw' (): unknown { return this.#url('raw') }
}

/** The variables above whose names hold a dot. */
export const DOTTED_VARIABLES: ReadonlySet<string> = new Set(['req.url', 'req.url.path', 'req.url.query', 'req.url.host', 'req.url.scheme', 'req.url.raw'])

function connVars (ctx: ConnectContext): Record<string, unknown> {
  return new Variables(ctx) as unknown as Record<string, unknown>
}

/** The variables actions set for later rules (made on first use; the CEL variables share the objects). */
export function actionResults (ctx: ConnectContext): ActionResults {
  let results = ctx.results
  if (!results) {
    results = ctx.results = { actions: { ngrok: {} }, vars: {} }
    if (ctx.vars) Object.assign(ctx.vars, results)
  }
  return results
}

/** Why RE2 (CEL's `matches`, as in ngrok) refuses `pattern`, or undefined when it compiles. */
export function re2Error (pattern: string): string | undefined {
  const result: unknown = plan(env, parse(`''.matches(${JSON.stringify(pattern)})`))({} as never)
  return isCelError(result) ? String((result as { message?: string }).message ?? result) : undefined
}

export function connectVars (ctx: ConnectContext): Record<string, unknown> {
  return (ctx.vars ??= connVars(ctx))
}

export function requestVars (ctx: HttpRequestContext): Record<string, unknown> {
  if (ctx.vars?.req) return ctx.vars
  // on_tcp_connect rules of an HTTP endpoint may have built the conn.* part already.
  const vars = ctx.vars ?? connVars(ctx)
  ;(vars as unknown as Variables).req = new RequestFields(ctx)
  return (ctx.vars = vars)
}

/** The request's variables plus res.*: the request phases are over, so the response shares their object. */
export function responseVars (ctx: HttpResponseContext): Record<string, unknown> {
  if (ctx.vars) return ctx.vars
  const vars = requestVars(ctx.request)
  actionResults(ctx.request) // actions.* and vars.* are declared (empty) in the response phase
  ;(vars as unknown as Variables).res = new ResponseFields(ctx)
  return (ctx.vars = vars)
}

/** A value as interpolation shows it: timestamps (time.now, conn.ts.start) in RFC 3339, as ngrok's examples
 *  print them (2024-06-24T15:30:00Z), not as "[object Object]". */
function display (value: unknown): string {
  const message = isReflectMessage(value) ? value.message : value // CEL hands messages back wrapped
  if (isMessage(message, TimestampSchema)) {
    return timestampDate(message).toISOString().replace(/\.(\d*?)0*Z$/, (_, digits: string) => (digits === '' ? 'Z' : `.${digits}Z`))
  }
  return String(value)
}

/** `${expr}` interpolation in action config strings: a constant when there is none, else a renderer. */
export function compileTemplate (text: string, where: string): string | ((vars: Record<string, unknown>) => string) {
  if (!text.includes('${')) return text
  const parts: (string | CelProgram)[] = []
  let rest = text
  for (;;) {
    const start = rest.indexOf('${')
    if (start === -1) break
    const end = rest.indexOf('}', start)
    if (end === -1) throw new PortholeError('PH_1008', `${where}: unclosed \${ in ${JSON.stringify(text)}`)
    if (start > 0) parts.push(rest.slice(0, start))
    parts.push(compileExpression(rest.slice(start + 2, end), where))
    rest = rest.slice(end + 1)
  }
  if (rest !== '') parts.push(rest)
  return (vars) => {
    let out = ''
    for (const part of parts) {
      if (typeof part === 'string') {
        out += part
        continue
      }
      const value = part(vars)
      if (!(isCelError(value) || value === undefined || value === null)) out += display(value)
    }
    return out
  }
}
