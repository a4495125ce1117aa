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
import { Checker, CheckError, T, typeName, type Declarations, type Type } from './cel-check.js'
import { celRegexEngine } from './regex.js'
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
  re2: celRegexEngine, // `matches` on the engine of every user-supplied regex (policy/regex.ts), compiled once
  funcs: [
    celFunc('inCidrRange', [CelScalar.STRING, CelScalar.STRING], CelScalar.BOOL, inCidrRange),
    celFunc('hasReqHeader', [CelScalar.STRING], CelScalar.BOOL, (name: string) => requestMap('headers').has(name.toLowerCase())),
    celFunc('getReqHeader', [CelScalar.STRING], STRING_LIST, (name: string) => (requestMap('headers').get(name.toLowerCase()) ?? []) as never),
    celFunc('hasQueryParam', [CelScalar.STRING], CelScalar.BOOL, (name: string) => requestMap('query_params').has(name)),
    celFunc('getQueryParam', [CelScalar.STRING], STRING_LIST, (name: string) => (requestMap('query_params').get(name) ?? []) as never),
  ],
})

export type CelProgram = (vars: Record<string, unknown>) => unknown

/** Where an expression is evaluated: a rule of a phase (its variables), or an action's `${}` template. */
export type ExpressionKind = 'on_tcp_connect' | 'on_http_request' | 'on_http_response' | 'template'

/**
 * Parses, type-checks and plans one expression; `where` names it in the error (on_http_request[0].expressions[1]).
 * A rule's expression (`kind` a phase) is checked against that phase's variables and must be a bool; a
 * template's against every variable. For tests only: `fast: false` leaves out the fast paths of
 * policy/cel-fast.ts, and `check: false` the checker (the fast paths must agree with CEL on what it refuses too).
 */
export function compileExpression (expression: string, where: string, { fast = true, kind = 'template' as ExpressionKind, check = true } = {}): CelProgram {
  if (typeof expression !== 'string' || expression.trim() === '') throw new PortholeError('PH_1008', `${where}: an expression must be a non-empty string`)
  let program: ReturnType<typeof plan>
  let parsed: ReturnType<typeof parse>
  try {
    parsed = parse(expression)
  } catch (error) {
    throw new PortholeError('PH_1008', `${where}: ${JSON.stringify(expression)}: ${(error as Error).message.split('\n')[0]}`)
  }
  if (check) checkExpression(parsed, expression, where, kind)
  try {
    program = plan(env, parsed)
  } catch (error) {
    throw new PortholeError('PH_1008', `${where}: ${JSON.stringify(expression)}: ${(error as Error).message.split('\n')[0]}`)
  }
  const slow: CelProgram = (vars) => {
    current = vars
    return program(vars as never)
  }
  return (fast ? fastProgram(parsed.expr, slow, DOTTED_VARIABLES) : null) ?? slow
}

/** Refuses (PH_1008, naming the expression and the problem) what cel-check.ts finds wrong with `parsed`. */
function checkExpression (parsed: ReturnType<typeof parse>, expression: string, where: string, kind: ExpressionKind): void {
  let type: Type
  try {
    type = CHECKERS[kind].check(parsed.expr)
  } catch (error) {
    // Anything else the checker throws is refused too: an expression it cannot check is not bound unchecked.
    const problem = error instanceof CheckError ? error.message : `cannot be checked (${(error as Error).message})`
    throw new PortholeError('PH_1008', `${where}: ${JSON.stringify(expression)}: ${problem}`)
  }
  if (kind !== 'template' && type.k !== 'dyn' && typeName(type) !== 'bool') {
    throw new PortholeError('PH_1008', `${where}: ${JSON.stringify(expression)}: a rule's expression must be a bool, this one is a ${typeName(type)}`)
  }
}

/** Why a rule's expression did not hold when it could not be evaluated (a CEL error), else undefined. */
export function evaluationError (result: unknown): string | undefined {
  if (isCelError(result)) return String((result as { message?: string }).message ?? result)
  return result === true || result === false ? undefined : `the expression gave ${display(result)}, not a bool`
}

/** An expression of a rule that could not be evaluated: its index and why. */
export interface Failure { readonly index: number, readonly reason: string }

/** Whether all expressions evaluate to true; an expression that cannot be evaluated (a CEL error, or no
 *  bool) does not hold, and the answer says which one and why (compile.ts decides what the rule does). */
export function allHold (programs: readonly CelProgram[], vars: Record<string, unknown>): boolean | Failure {
  for (let i = 0; i < programs.length; i++) {
    const result = programs[i]!(vars)
    if (result === true) continue
    if (result === false) return false
    return { index: i, reason: evaluationError(result) ?? 'not a bool' }
  }
  return true
}

/** The variables, as the checker knows them (kept in step with the classes below, which take their field
 *  names from here): ngrok's names, those this engine computes. */
const HEADERS = T.map(T.string, T.list(T.string))
const URL_TYPE = T.fields('req.url', { path: T.string, query: T.string, host: T.string, scheme: T.string, raw: T.string })
const CONN_TS_TYPE = T.fields('conn.ts', { start: T.timestamp })
const USER_AGENT_TYPE = T.fields('req.user_agent', { raw: T.string })
const VARIABLE_TYPES = {
  conn: T.fields('conn', { client_ip: T.string, client_port: T.int, server_port: T.int, ts: CONN_TS_TYPE }),
  endpoint: T.fields('endpoint', { host: T.string, protocol: T.string }),
  time: T.fields('time', { now: T.timestamp }),
  req: T.fields('req', {
    method: T.string, host: T.string, url: URL_TYPE, headers: HEADERS, query_params: HEADERS, cookies: HEADERS,
    content_type: T.string, user_agent: USER_AGENT_TYPE,
  }),
  res: T.fields('res', { status_code: T.int, headers: HEADERS }),
  actions: T.map(T.string, T.dyn), // what actions report (actions.ngrok.*), and set-vars' vars.*: any shape
  vars: T.map(T.string, T.dyn),
} as const

/** The field names of a variable with known fields. */
function fieldNames (type: Type): ReadonlySet<string> {
  return new Set(type.k === 'fields' ? Object.keys(type.fields) : [])
}

function declarations (names: readonly (keyof typeof VARIABLE_TYPES)[], dotted: boolean): Declarations {
  const declared = new Map<string, Type>(names.map((name) => [name, VARIABLE_TYPES[name]]))
  if (dotted) { // the dotted variables of the Variables class: req.url is the whole URL, a string
    declared.set('req.url', T.string)
    for (const field of fieldNames(URL_TYPE)) declared.set(`req.url.${field}`, T.string)
  }
  return declared
}

const CONNECT_VARIABLES = ['conn', 'endpoint', 'time', 'actions', 'vars'] as const
/** One checker per kind of expression: the variables a phase has (req.* not before a request, res.* only
 *  in on_http_response); a template may sit in any phase. */
const CHECKERS: Record<ExpressionKind, Checker> = {
  on_tcp_connect: new Checker(env, declarations(CONNECT_VARIABLES, false)),
  on_http_request: new Checker(env, declarations([...CONNECT_VARIABLES, 'req'], true)),
  on_http_response: new Checker(env, declarations([...CONNECT_VARIABLES, 'req', 'res'], true)),
  template: new Checker(env, declarations([...CONNECT_VARIABLES, 'req', 'res'], true)),
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

const CONN_FIELDS = fieldNames(VARIABLE_TYPES.conn)
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

const CONN_TIME_FIELDS = fieldNames(CONN_TS_TYPE)
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

const ENDPOINT_FIELDS = fieldNames(VARIABLE_TYPES.endpoint)
class EndpointFields extends LazyFields {
  readonly #ctx: ConnectContext
  constructor (ctx: ConnectContext) { super(ENDPOINT_FIELDS); this.#ctx = ctx }
  protected make (key: string): unknown { return key === 'host' ? this.#ctx.endpointHost : this.#ctx.protocol }
}

const TIME_FIELDS = fieldNames(VARIABLE_TYPES.time)
class TimeFields extends LazyFields {
  constructor () { super(TIME_FIELDS) }
  protected make (): unknown { return timestampFromDate(new Date()) }
}

const REQUEST_FIELDS = fieldNames(VARIABLE_TYPES.req)
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

const URL_FIELDS = fieldNames(URL_TYPE)
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

const USER_AGENT_FIELDS = fieldNames(USER_AGENT_TYPE)
class UserAgentFields extends LazyFields {
  readonly #ctx: HttpRequestContext
  constructor (ctx: HttpRequestContext) { super(USER_AGENT_FIELDS); this.#ctx = ctx }
  protected make (): unknown { return list(this.#ctx.headers['user-agent'])[0] ?? '' }
}

const RESPONSE_FIELDS = fieldNames(VARIABLE_TYPES.res)
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
