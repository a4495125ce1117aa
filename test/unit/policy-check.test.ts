// Bind-time checking of traffic policy CEL (policy/cel-check.ts) and what a rule does when its expression
// fails at run time (policy/compile.ts). Regression for issue 9 item 2: a deny rule on `req.urll.path` or
// `startsWit(...)` was accepted and let everything through (an evaluation error counted as false, silently);
// and item 5: every user-supplied regex runs on RE2 (re2js), CEL's matches() included.
import diagnostics from 'node:diagnostics_channel'
import { isCelError } from '@bufbuild/cel'
import { describe, expect, it } from 'vitest'
import { compilePolicy, policyErrorChannel, ruleErrorLine } from '../../src/policy/compile.js'
import { compileExpression, requestVars, responseVars } from '../../src/policy/cel.js'
import { parsePolicy } from '../../src/policy/parse.js'
import type { CompileOptions, HttpRequestContext, RuleError } from '../../src/policy/compiled.js'
import type { PortholeError } from '../../src/core/errors.js'

function request (over: Partial<HttpRequestContext> = {}): HttpRequestContext {
  return {
    clientIp: '10.1.2.3', clientPort: 5555, serverPort: 443, endpointHost: 'app.example.com', protocol: 'https',
    method: 'GET', path: '/admin/x?y=1', host: 'app.example.com', headers: { 'user-agent': 'curl/8', cookie: 'a=1' }, ...over,
  }
}

function errorOf (fn: () => unknown): string {
  try { fn() } catch (error) { return `${(error as PortholeError).code} ${(error as PortholeError).message}` }
  return 'none'
}

const rule = (phase: string, expression: string, action = 'deny'): string =>
  JSON.stringify({ [phase]: [{ expressions: [expression], actions: [{ type: action, ...(action === 'custom-response' ? { config: { body: 'hi' } } : {}) }] }] })
const bind = (text: string, options: CompileOptions = {}) => compilePolicy(parsePolicy(text), 'http', options)

function run (policy: ReturnType<typeof bind>, ctx: HttpRequestContext): unknown {
  for (const step of policy.onHttpRequest ?? []) {
    const result = step(ctx)
    if (result) return result
  }
  return undefined
}

describe('CEL is type-checked when the policy is bound (PH_1008 naming the expression and the problem)', () => {
  const refused = (expression: string, phase = 'on_http_request'): string => errorOf(() => bind(rule(phase, expression)))
  const where = 'PH_1008 invalid traffic policy: on_http_request[0].expressions[0]'

  it('refuses an unknown field of a declared variable (the req.urll.path typo)', () => {
    expect(refused("req.urll.path.startsWith('/admin')")).toBe(`${where}: "req.urll.path.startsWith('/admin')": unknown field "urll" of req`)
    expect(refused("conn.client_addr == '1.2.3.4'")).toBe(`${where}: "conn.client_addr == '1.2.3.4'": unknown field "client_addr" of conn`)
    expect(refused("req['urll'] == 'x'")).toBe(`${where}: "req['urll'] == 'x'": unknown field "urll" of req`)
    expect(refused("req.url.pathh == '/'")).toBe(`${where}: "req.url.pathh == '/'": req.url is a string: it has no field "pathh"`)
  })

  it('refuses an unknown variable', () => {
    expect(refused("request.path == '/admin'")).toBe(`${where}: "request.path == '/admin'": unknown variable "request"`)
  })

  it('refuses an unknown function, called alone or as a method (the startsWit typo)', () => {
    expect(refused("req.url.path.startsWit('/admin')")).toBe(`${where}: "req.url.path.startsWit('/admin')": unknown function "startsWit"`)
    expect(refused("startsWit(req.url.path, '/admin')")).toBe(`${where}: "startsWit(req.url.path, '/admin')": unknown function "startsWit"`)
    expect(refused("inCidrRang(conn.client_ip, '10.0.0.0/8')")).toBe(`${where}: "inCidrRang(conn.client_ip, '10.0.0.0/8')": unknown function "inCidrRang"`)
  })

  it('refuses a call no overload takes', () => {
    expect(refused('req.url.path.startsWith(1)')).toBe(`${where}: "req.url.path.startsWith(1)": no function string.startsWith(int)`)
    expect(refused("conn.client_port > '1024'")).toBe(`${where}: "conn.client_port > '1024'": no function >(int, string)`)
    expect(refused("req.method && true")).toBe(`${where}: "req.method && true": && needs bools, operand 1 is a string`)
  })

  it('refuses a rule expression that is not a bool', () => {
    expect(refused('req.url.path')).toBe(`${where}: "req.url.path": a rule's expression must be a bool, this one is a string`)
    expect(refused('size(req.headers)')).toBe(`${where}: "size(req.headers)": a rule's expression must be a bool, this one is a int`)
  })

  it('refuses variables the phase does not have', () => {
    expect(refused("req.method == 'GET'", 'on_tcp_connect')).toBe('PH_1008 invalid traffic policy: on_tcp_connect[0].expressions[0]: "req.method == \'GET\'": unknown variable "req"')
    expect(refused('res.status_code == 500')).toBe(`${where}: "res.status_code == 500": unknown variable "res"`)
    expect(errorOf(() => bind(rule('on_http_response', 'res.status_code == 500', 'log').replace('"type":"log"', '"type":"log","config":{"metadata":{"a":"b"}}')))).toBe('none')
  })

  it('refuses a matches() pattern RE2 cannot take (backreference, lookaround), naming it', () => {
    expect(refused("req.url.path.matches('(a)\\\\1')")).toBe(`${where}: "req.url.path.matches('(a)\\\\\\\\1')": matches("(a)\\\\1"): not an RE2 pattern (invalid escape sequence: \`\\1\`; RE2 has no backreferences or lookaround)`)
    expect(refused("req.url.path.matches('(?=admin)')")).toMatch(/matches\("\(\?=admin\)"\): not an RE2 pattern \(invalid or unsupported Perl syntax/)
  })

  it('refuses a url-rewrite or redirect `from` RE2 cannot take, naming it', () => {
    const doc = (from: string) => JSON.stringify({ on_http_request: [{ actions: [{ type: 'url-rewrite', config: { from, to: '/x' } }] }] })
    expect(errorOf(() => bind(doc('(?<=/)admin')))).toMatch(/^PH_1008 invalid traffic policy: from "\(\?<=\/\)admin": not an RE2 pattern \(.*\) at on_http_request\[0\]\.actions\[0\]$/)
    expect(errorOf(() => bind(doc('(a)\\1')))).toMatch(/^PH_1008 invalid traffic policy: from "\(a\)\\\\1": not an RE2 pattern/)
  })

  it('refuses a template with a typo', () => {
    const doc = JSON.stringify({ on_http_request: [{ actions: [{ type: 'add-headers', config: { headers: { 'x-ip': '${conn.clientip}' } } }] }] })
    expect(errorOf(() => bind(doc))).toBe('PH_1008 invalid traffic policy: "conn.clientip": unknown field "clientip" of conn at on_http_request[0].actions[0]'.replace('"conn.clientip"', 'header x-ip: "conn.clientip"'))
  })

  it('accepts what ngrok documents and the evaluator runs', () => {
    for (const expression of [
      "req.method == 'GET'", "req.url.path.startsWith('/admin')", "req.url.contains('/robots.txt')", "'2' in req.headers['X-Api-Version']",
      "!('authorization' in req.headers)", "hasReqHeader('x') && getReqHeader('x')[0] == 'y'", "inCidrRange(conn.client_ip, '10.0.0.0/8')",
      'time.now > timestamp("2020-01-01T00:00:00Z")', 'time.now.getHours() >= 9', "req.user_agent.raw.matches('(?i)curl')",
      "req.headers.exists(h, h.startsWith('x-'))", "req.query_params['x'].all(v, v != '')", 'size(req.cookies) > 0', 'has(req.headers.cookie)',
      "req.url.path.size() < 100 ? true : false", "vars.tier == 'gold'", 'actions.ngrok.rate_limit.limited == false', "conn.ts.start < time.now",
      "[1, 2].map(x, x * 2).size() == 2", "req.method in ['GET', 'HEAD']", "type(req.method) == string", "endpoint.protocol == 'https'",
      "double(conn.client_port) > 1.5", "int('5') == 5", "req.url.scheme + '://' + req.host == 'https://app.example.com'",
    ]) {
      expect(errorOf(() => bind(rule('on_http_request', expression))), expression).toBe('none')
    }
    expect(errorOf(() => bind(rule('on_http_response', "res.status_code >= 500 && res.headers['server'][0] == 'x'", 'compress-response')))).toBe('none')
  })

  it('declares exactly the fields the evaluator computes (every declared path evaluates to a value)', () => {
    const ctx = request({ headers: { 'user-agent': 'curl/8', cookie: 'a=1', 'content-type': 'text/plain' } })
    requestVars(ctx)
    const vars = responseVars({ request: ctx, status: 200, headers: { server: 'nginx' } })
    for (const path of ['conn.client_ip', 'conn.client_port', 'conn.server_port', 'conn.ts.start', 'endpoint.host', 'endpoint.protocol', 'time.now',
      'req.method', 'req.host', 'req.url', 'req.url.path', 'req.url.query', 'req.url.host', 'req.url.scheme', 'req.url.raw', 'req.headers',
      'req.query_params', 'req.cookies', 'req.content_type', 'req.user_agent.raw', 'res.status_code', 'res.headers']) {
      const value = compileExpression(path, 'test', { fast: false })(vars)
      expect(value === undefined || isCelError(value), path).toBe(false)
    }
  })
})

describe('an expression that fails at run time', () => {
  // After the checker, what is left is data: indexing a header the request does not have.
  const missingKey = "req.headers['x-api-key'][0] != 'secret'"

  it('makes a protective rule apply (fail closed) and another rule not, reported once per rule with its reason', () => {
    const errors: RuleError[] = []
    const published: unknown[] = []
    const onPublish = (message: unknown): void => { published.push(message) }
    diagnostics.subscribe('porthole:policy:error', onPublish)
    try {
      const deny = bind(rule('on_http_request', missingKey), { onRuleError: (error) => errors.push(error) })
      const denied = run(deny, request()) as { response?: { status: number } }
      expect(denied?.response?.status).toBe(403)
      expect(run(deny, request())).toBeDefined() // still denied, but not said again
      expect(run(deny, request({ headers: { 'x-api-key': 'secret' } }))).toBeUndefined() // evaluates: the key is right
      expect(errors).toHaveLength(1)
      expect(errors[0]).toMatchObject({ where: 'on_http_request[0].expressions[0]', expression: missingKey, applied: true, endpoint: 'app.example.com' })
      expect(errors[0]!.reason).toMatch(/x-api-key/)
      expect(published).toHaveLength(1)
      expect(ruleErrorLine(errors[0]!)).toMatch(/^PH_1045: a traffic policy expression could not be evaluated: on_http_request\[0\]\.expressions\[0\] "req\.headers\['x-api-key'\]\[0\] != 'secret'" on app\.example\.com: .*x-api-key.*; the rule applied anyway \(its actions protect: fail closed\); said once per rule$/)

      const custom = bind(rule('on_http_request', "req.headers['x-api-version'][0] == '2'", 'custom-response'), { onRuleError: (error) => errors.push(error) })
      expect(run(custom, request())).toBeUndefined()
      expect(run(custom, request())).toBeUndefined()
      expect(errors).toHaveLength(2)
      expect(errors[1]).toMatchObject({ applied: false })
      expect(ruleErrorLine(errors[1]!)).toMatch(/; the rule did not apply; said once per rule$/)
    } finally {
      diagnostics.unsubscribe('porthole:policy:error', onPublish)
    }
    expect(policyErrorChannel.name).toBe('porthole:policy:error')
  })

  it('applies basic-auth, restrict-ips and rate-limit rules too (fail closed), in on_tcp_connect as well', () => {
    const doc = JSON.stringify({ on_http_request: [{ expressions: [missingKey], actions: [{ type: 'basic-auth', config: { credentials: ['a:b'] } }] }] })
    expect(run(bind(doc), request())).toMatchObject({ code: 'PH_3101' })
    const connect = JSON.stringify({ on_tcp_connect: [{ expressions: ["vars.missing == 'x'"], actions: [{ type: 'restrict-ips', config: { allow: ['192.0.2.0/24'] } }] }] })
    const errors: RuleError[] = []
    const compiled = compilePolicy(parsePolicy(connect), 'tcp', { onRuleError: (error) => errors.push(error) })
    expect(compiled.onTcpConnect![0]!(request())).toBeDefined()
    expect(errors).toMatchObject([{ where: 'on_tcp_connect[0].expressions[0]', applied: true }])
  })
})

describe('user-supplied regexes run on RE2 (linear time)', () => {
  const evil = `/${'a'.repeat(50_000)}!`

  it('url-rewrite and redirect `from`: (a+)+$ against a long path completes', () => {
    const doc = JSON.stringify({ on_http_request: [{ actions: [{ type: 'url-rewrite', config: { from: '/(a+)+$', to: '/rewritten' } }] }] })
    const ctx = request({ path: evil })
    expect(run(bind(doc), ctx)).toBeUndefined()
    expect(ctx.path).toBe(evil) // no match: the URL ends in '!'
    const matched = request({ path: '/aaa' })
    run(bind(doc), matched)
    expect(matched.path).toBe('/rewritten')
  })

  it('keeps $1 and $<name> in `to`, as before', () => {
    const doc = JSON.stringify({ on_http_request: [{ actions: [{ type: 'redirect', config: { from: '^https://([^/]+)/old/(?<rest>.*)$', to: 'https://$1/new/$<rest>' } }] }] })
    expect(run(bind(doc), request({ path: '/old/a?b=1' }))).toMatchObject({ response: { status: 302, headers: { location: 'https://app.example.com/new/a?b=1' } } })
  })

  it('CEL matches(): (a+)+$ against a long user agent completes, on the same engine', () => {
    const policy = bind(rule('on_http_request', "req.user_agent.raw.matches('(a+)+$')"))
    expect(run(policy, request({ headers: { 'user-agent': evil.slice(1) } }))).toBeUndefined()
    expect(run(policy, request({ headers: { 'user-agent': 'aaaa' } }))).toBeDefined()
  })
})
