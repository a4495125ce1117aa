// CEL expressions of traffic policy rules (via @bufbuild/cel), with the variable names ngrok documents:
// conn.*, req.*, res.*, endpoint.*, time.now, and a few of its helper functions. Expressions are parsed
// and planned once, at bind time; the variables of a request are built only if a rule asks for them.
import { celEnv, celFunc, CelScalar, isCelError, listType, parse, plan } from '@bufbuild/cel'
import { timestampFromDate } from '@bufbuild/protobuf/wkt'
import ipaddr from 'ipaddr.js'
import { PortholeError } from '../core/errors.js'
import type { ActionResults, ConnectContext, HeaderMap, HttpRequestContext, HttpResponseContext } from './compiled.js'

/** The variables of the request being evaluated: ngrok's helpers (hasReqHeader, ...) read them implicitly. */
let current: Record<string, unknown> = {}

function list (value: string | string[] | undefined): string[] {
  return value === undefined ? [] : Array.isArray(value) ? value : [value]
}

function headerMap (headers: HeaderMap): Map<string, string[]> {
  const map = new Map<string, string[]>()
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

/** Parses and plans one expression; `where` names it in the error (on_http_request[0].expressions[1]). */
export function compileExpression (expression: string, where: string): CelProgram {
  if (typeof expression !== 'string' || expression.trim() === '') throw new PortholeError('PH_1008', `${where}: an expression must be a non-empty string`)
  let program: ReturnType<typeof plan>
  try {
    program = plan(env, parse(expression))
  } catch (error) {
    throw new PortholeError('PH_1008', `${where}: ${(error as Error).message.split('\n')[0]}`)
  }
  return (vars) => {
    current = vars
    return program(vars as never)
  }
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
 * parsing headers, cookies and query parameters, nor a template for a timestamp it never uses.
 */
class LazyFields extends Map<string, unknown> {
  readonly #make: Record<string, () => unknown>

  constructor (make: Record<string, () => unknown>) {
    super()
    this.#make = make
  }

  override get (key: string): unknown {
    if (!super.has(key)) {
      const make = this.#make[key]
      if (make === undefined) return undefined
      super.set(key, make())
    }
    return super.get(key)
  }

  override has (key: string): boolean {
    return Object.hasOwn(this.#make, key)
  }
}

function connVars (ctx: ConnectContext): Record<string, unknown> {
  const vars: Record<string, unknown> = {
    conn: new LazyFields({ client_ip: () => ctx.clientIp, client_port: () => BigInt(ctx.clientPort), server_port: () => BigInt(ctx.serverPort) }),
    endpoint: new LazyFields({ host: () => ctx.endpointHost, protocol: () => ctx.protocol }),
    time: new LazyFields({ now: () => timestampFromDate(new Date()) }),
  }
  if (ctx.results) Object.assign(vars, ctx.results)
  return vars
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
  // The path as it is when the variables are first read (url-rewrite earlier in the phase changes it).
  const full = ctx.path
  const query = full.indexOf('?')
  const path = query === -1 ? full : full.slice(0, query)
  const rawQuery = query === -1 ? '' : full.slice(query + 1)
  const params = (): Map<string, string[]> => {
    const map = new Map<string, string[]>()
    for (const [name, value] of new URLSearchParams(rawQuery)) map.set(name, [...(map.get(name) ?? []), value])
    return map
  }
  const cookies = (): Map<string, string[]> => {
    const map = new Map<string, string[]>()
    for (const header of list(ctx.headers.cookie)) {
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
  // on_tcp_connect rules of an HTTP endpoint may have built the conn.* part already.
  const vars = ctx.vars ?? connVars(ctx)
  vars.req = new LazyFields({
    method: () => ctx.method,
    host: () => ctx.host,
    url: () => new LazyFields({ path: () => path, query: () => rawQuery, host: () => ctx.host, scheme: () => ctx.protocol, raw: () => `${ctx.protocol}://${ctx.host}${full}` }),
    headers: () => headerMap(ctx.headers),
    query_params: params,
    cookies,
    content_type: () => list(ctx.headers['content-type'])[0] ?? '',
    user_agent: () => new LazyFields({ raw: () => list(ctx.headers['user-agent'])[0] ?? '' }),
  })
  return (ctx.vars = vars)
}

export function responseVars (ctx: HttpResponseContext): Record<string, unknown> {
  if (ctx.vars) return ctx.vars
  return (ctx.vars = { ...requestVars(ctx.request), ...actionResults(ctx.request), res: new LazyFields({ status_code: () => BigInt(ctx.status), headers: () => headerMap(ctx.headers) }) })
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
  return (vars) => parts.map((part) => {
    if (typeof part === 'string') return part
    const value = part(vars)
    return isCelError(value) || value === undefined || value === null ? '' : String(value)
  }).join('')
}
