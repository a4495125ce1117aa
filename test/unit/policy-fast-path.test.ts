// The fast paths of policy/cel-fast.ts (a variable path, a path compared with a literal) must answer exactly
// what @bufbuild/cel answers for the same expression and variables: present and missing variables, missing
// keys, header lists, qualified names (req.url and req.url.path), type mismatches, set-vars and action results.
import fc from 'fast-check'
import { isCelError, parse } from '@bufbuild/cel'
import { describe, expect, it } from 'vitest'
import { actionResults, compileExpression, compileTemplate, DOTTED_VARIABLES, requestVars, responseVars } from '../../src/policy/cel.js'
import { fastProgram } from '../../src/policy/cel-fast.js'
import type { HttpRequestContext, HttpResponseContext } from '../../src/policy/compiled.js'

function request (over: Partial<HttpRequestContext> = {}): HttpRequestContext {
  return {
    clientIp: '10.1.2.3', clientPort: 5555, serverPort: 443, endpointHost: 'app.example.com', protocol: 'https',
    method: 'GET', path: '/a/b?x=1', host: 'app.example.com',
    headers: { 'user-agent': 'curl/8', 'x-team': ['blue', 'red'], 'content-type': 'text/plain' }, ...over,
  }
}

/** The variables of a response to `ctx`, with set-vars and rate-limit results when `results` is set. */
function variables (over: Partial<HttpRequestContext> = {}, results = false): Record<string, unknown> {
  const ctx = request(over)
  if (results) {
    const stored = actionResults(ctx)
    stored.vars.flag = true
    stored.vars.n = 3n
    stored.vars.name = 'ann'
    stored.vars.ratio = 0.5
    stored.actions.ngrok.rate_limit = { limited: false }
  }
  requestVars(ctx)
  const response: HttpResponseContext = { request: ctx, status: 200, headers: { server: 'nginx', 'set-cookie': ['a=1', 'b=2'] } }
  return responseVars(response)
}

/** A comparable form of a result: CEL errors all look alike, values as they are. */
const outcome = (value: unknown): unknown => (isCelError(value) ? 'error' : value)

function same (expression: string, vars: () => Record<string, unknown>): void {
  // Unchecked: the paths the checker refuses (conn.nope, nope.field) must still answer alike at run time.
  const fast = compileExpression(expression, 'test', { check: false })
  const slow = compileExpression(expression, 'test', { fast: false, check: false })
  expect(outcome(fast(vars())), expression).toEqual(outcome(slow(vars())))
}

const CONTEXTS: [string, () => Record<string, unknown>][] = [
  ['a request with results', () => variables({}, true)],
  ['a request without results', () => variables()],
  ['no headers, no query, IPv6 client', () => variables({ headers: {}, path: '/', clientIp: '::1' })],
  ['a request phase only', () => requestVars(request())],
]

const PATHS = [
  'conn.client_ip', 'conn.client_port', 'conn.server_port', 'conn.nope', 'conn', 'endpoint.host', 'endpoint.protocol',
  'req.method', 'req.host', 'req.url', 'req.url.path', 'req.url.query', 'req.url.host', 'req.url.scheme', 'req.url.raw', 'req.url.nope',
  'req.content_type', 'req.user_agent.raw', 'req.headers', 'req.headers.x_team', 'req.cookies', 'req.query_params', 'req.nope', 'req.method.size',
  'res.status_code', 'res.headers', 'res.nope', 'vars.flag', 'vars.n', 'vars.name', 'vars.ratio', 'vars.missing', 'actions.ngrok.rate_limit.limited',
  'actions.ngrok.nope', 'nope', 'nope.field', 'time',
]
const LITERALS = ["'GET'", "''", "'/a/b'", "'x=1'", "'10.1.2.3'", "'https'", '200', '5555', '443', '3', '0', 'true', 'false', '200.0', "b'GET'", 'null']

describe('CEL fast paths answer what CEL answers', () => {
  for (const [name, vars] of CONTEXTS) {
    it(`variable paths, ${name}`, () => {
      for (const path of PATHS) same(path, vars)
    })

    it(`paths compared with literals, both ways round, ${name}`, () => {
      for (const path of PATHS) {
        for (const literal of LITERALS) {
          for (const op of ['==', '!=']) {
            same(`${path} ${op} ${literal}`, vars)
            same(`${literal} ${op} ${path}`, vars)
          }
        }
      }
    })
  }

  it('random paths and literals (fast-check)', () => {
    const segment = fc.constantFrom('conn', 'req', 'res', 'url', 'path', 'host', 'method', 'headers', 'vars', 'n', 'flag', 'client_ip', 'client_port', 'status_code', 'actions', 'ngrok', 'x', 'raw')
    const literal = fc.oneof(fc.string({ maxLength: 6 }).map((s) => JSON.stringify(s)), fc.integer({ min: -2, max: 6000 }).map(String), fc.boolean().map(String))
    fc.assert(fc.property(fc.array(segment, { minLength: 1, maxLength: 4 }), literal, fc.boolean(), fc.constantFrom('==', '!='), (path, lit, flip, op) => {
      const vars = () => variables({}, true)
      same(path.join('.'), vars)
      same(flip ? `${lit} ${op} ${path.join('.')}` : `${path.join('.')} ${op} ${lit}`, vars)
    }), { seed: 5, numRuns: 300 })
  })

  it('templates render the same through the fast path, missing variables as empty', () => {
    const text = 'ip=${conn.client_ip} port=${conn.client_port} path=${req.url.path} url=${req.url} v=${vars.n} h=${req.headers.x_team} m=${vars.missing}'
    const render = compileTemplate(text, 'test') as (vars: Record<string, unknown>) => string
    expect(render(variables({}, true))).toBe('ip=10.1.2.3 port=5555 path=/a/b url=https://app.example.com/a/b?x=1 v=3 h= m=')
    expect(render(variables({ headers: {} }))).toBe('ip=10.1.2.3 port=5555 path=/a/b url=https://app.example.com/a/b?x=1 v= h= m=')
  })

  it('reads header names case-insensitively, as ngrok\'s examples do', () => {
    for (const expression of ["'blue' in req.headers['X-Team']", "'X-TEAM' in req.headers", "req.headers['x-team'] == ['blue', 'red']", "'text/plain' in req.headers['Content-Type']"]) {
      expect(compileExpression(expression, 'test')(variables()), expression).toBe(true)
    }
    expect(compileExpression("'Authorization' in req.headers", 'test')(variables())).toBe(false)
  })

  it('req.url is the whole URL as a string, and req.url.path etc. still work', () => {
    const vars = variables({ path: '/robots.txt?x=1' })
    expect(compileExpression("req.url.contains('/robots.txt')", 'test')(vars)).toBe(true)
    expect(compileExpression("req.url.path == '/robots.txt' && req.url.query == 'x=1'", 'test')(vars)).toBe(true)
  })
})

describe('CEL fast paths are taken', () => {
  const never = (): unknown => { throw new Error('fell back to CEL') }
  const fast = (expression: string) => fastProgram(parse(expression).expr, never, DOTTED_VARIABLES) // as compileExpression calls it

  it('for plain values of paths and literal comparisons, without calling CEL', () => {
    const vars = variables({}, true)
    expect(fast('req.method')!(vars)).toBe('GET')
    expect(fast('req.url')!(vars)).toBe('https://app.example.com/a/b?x=1')
    expect(fast('req.url.path')!(vars)).toBe('/a/b')
    expect(fast('conn.client_port')!(vars)).toBe(5555n)
    expect(fast('vars.name')!(vars)).toBe('ann')
    expect(fast("req.method == 'GET'")!(vars)).toBe(true)
    expect(fast('200 != res.status_code')!(vars)).toBe(false)
    expect(fast('actions.ngrok.rate_limit.limited == false')!(vars)).toBe(true)
    expect(fast('req.url.query')!(vars)).toBe('x=1')
    expect(fast('req.user_agent.raw')!(vars)).toBe('curl/8')
  })

  it('not for other shapes', () => {
    for (const expression of ["req.method.startsWith('G')", "req.headers['x']", 'has(req.method)', 'req.method == 1.0', "req.method == 'a' && true", 'a < 1']) {
      expect(fast(expression), expression).toBeNull()
    }
  })
})
