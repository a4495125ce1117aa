// Traffic policy documents: shape errors name where they are, CEL expressions and ${} templates compile
// once and evaluate per request, and the response-writing actions produce what ngrok documents.
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { compilePolicy } from '../../src/policy/compile.js'
import { combinePolicies, parsePolicy } from '../../src/policy/parse.js'
import type { HttpRequestContext } from '../../src/policy/compiled.js'
import { PortholeError } from '../../src/core/errors.js'

const fixture = (name: string): string => readFileSync(resolve(import.meta.dirname, '../../fixtures/policies', name), 'utf8')

function request (over: Partial<HttpRequestContext> = {}): HttpRequestContext {
  return {
    clientIp: '10.1.2.3', clientPort: 5555, serverPort: 443, endpointHost: 'app.example.com', protocol: 'https',
    method: 'GET', path: '/', host: 'app.example.com', headers: { 'user-agent': 'curl/8' }, ...over,
  }
}

function errorOf (fn: () => unknown): string {
  try { fn() } catch (error) { return `${(error as PortholeError).code} ${(error as PortholeError).message}` }
  return 'none'
}

const runRequest = (text: string, ctx: HttpRequestContext) => {
  for (const step of compilePolicy(parsePolicy(text)).onHttpRequest ?? []) {
    const result = step(ctx)
    if (result) return result
  }
  return undefined
}

describe('traffic policy documents', () => {
  it('names the place of a shape error', () => {
    expect(errorOf(() => parsePolicy('on_http_request: [{actions: [{type: deny, config: {status_code: "x"}}]}]')))
      .toBe('PH_1008 invalid traffic policy: on_http_request[0].actions[0].config.status_code: want a number, not "x"')
    // The offending value, not the list of every action type.
    expect(errorOf(() => parsePolicy('on_http_request: [{actions: [{type: no-such-action}]}]')))
      .toBe('PH_1008 invalid traffic policy: on_http_request[0].actions[0].type: unknown action type "no-such-action"')
    expect(errorOf(() => parsePolicy('on_http_request: [{actions: [{config: {}}]}]'))).toBe('PH_1008 invalid traffic policy: on_http_request[0].actions[0].type: an action needs a type')
    expect(errorOf(() => parsePolicy('on_http_request: [{actions: [{type: compress-response, config: {algorithms: [zstd]}}]}]')))
      .toBe('PH_1008 invalid traffic policy: on_http_request[0].actions[0].config.algorithms[0]: unsupported value "zstd"')
    expect(errorOf(() => parsePolicy('on_http_requests: []'))).toBe('PH_1008 invalid traffic policy: document: unknown field on_http_requests')
    expect(errorOf(() => parsePolicy('on_http_request: [{expressions: ["true"], actions: []}]'))).toMatch(/on_http_request\[0\]\.actions: /)
    expect(errorOf(() => parsePolicy('{'))).toMatch(/^PH_1008 invalid traffic policy: /)
    expect(errorOf(() => parsePolicy('- a list'))).toBe('PH_1008 invalid traffic policy: want a mapping with on_tcp_connect, on_http_request or on_http_response')
  })

  it('refuses a bad expression with its place, at bind time', () => {
    expect(errorOf(() => compilePolicy(parsePolicy('on_http_request: [{expressions: ["req.method =="], actions: [{type: deny}]}]'))))
      .toMatch(/^PH_1008 invalid traffic policy: on_http_request\[0\]\.expressions\[0\]: /)
    expect(errorOf(() => compilePolicy(parsePolicy('on_http_request: [{actions: [{type: redirect, config: {from: "(", to: "/"}}]}]'))))
      .toMatch(/^PH_1008 invalid traffic policy: from "\(": not an RE2 pattern .* at on_http_request\[0\]\.actions\[0\]$/)
    expect(errorOf(() => compilePolicy(parsePolicy('on_http_response: [{actions: [{type: deny}]}]'))))
      .toBe('PH_1008 invalid traffic policy: action type "deny" is not allowed in on_http_response at on_http_response[0].actions[0]')
    expect(errorOf(() => compilePolicy(parsePolicy('on_http_request: [{actions: [{type: deny}]}]'), 'tcp')))
      .toBe('PH_1008 invalid traffic policy: on_http_request/on_http_response: a tcp endpoint carries no HTTP')
  })

  it('runs actions only when every expression holds (ngrok\'s deny example)', () => {
    const bots = fixture('deny-bots.yml')
    expect(runRequest(bots, request({ headers: { 'user-agent': 'curl/8' } }))).toBeUndefined()
    const denied = runRequest(bots, request({ headers: { 'user-agent': 'Googlebot/2.1' } }))
    expect(denied).toMatchObject({ response: { status: 404, headers: { 'porthole-error-code': 'PH_3102' } } })
  })

  it('knows ngrok\'s variables and helpers', () => {
    const policy = (expression: string) => `on_http_request: [{expressions: [${JSON.stringify(expression)}], actions: [{type: deny}]}]`
    const ctx = () => request({ method: 'POST', path: '/a/b?x=1&x=2', headers: { 'x-team': 'blue', cookie: 'sid=abc; t=1', 'content-type': 'application/json' } })
    for (const expression of [
      "req.method == 'POST'", "req.url.path == '/a/b'", "req.url.query == 'x=1&x=2'", "req.query_params['x'] == ['1', '2']",
      "req.host == 'app.example.com'", "req.headers['x-team'][0] == 'blue'", "req.cookies['sid'][0] == 'abc'",
      "req.content_type == 'application/json'", "conn.client_ip == '10.1.2.3'", 'conn.client_port == 5555', 'conn.server_port == 443',
      "endpoint.host == 'app.example.com'", "inCidrRange(conn.client_ip, '10.0.0.0/8')", "hasReqHeader('X-Team')",
      "getReqHeader('x-team') == ['blue']", "hasQueryParam('x')", "req.url.scheme == 'https'", 'time.now > timestamp("2020-01-01T00:00:00Z")',
    ]) {
      expect(runRequest(policy(expression), ctx()), expression).toBeDefined()
    }
    // An unknown variable is refused when the policy is bound (test/unit/policy-check.test.ts has the rest).
    expect(errorOf(() => runRequest(policy('nope.field == 1'), ctx())))
      .toBe('PH_1008 invalid traffic policy: on_http_request[0].expressions[0]: "nope.field == 1": unknown variable "nope"')
  })

  it('custom-response, redirect and url-rewrite with ${} templates (the maintenance fixture)', () => {
    const doc = fixture('maintenance.yml')
    expect(runRequest(doc, request({ path: '/maintenance' }))).toEqual({
      response: { status: 503, headers: { 'content-type': 'text/plain' }, body: 'down for maintenance, app.example.com' },
    })
    expect(runRequest(doc, request({ path: '/old/page?q=1' }))).toEqual({
      response: { status: 301, headers: { location: 'https://app.example.com/new/page?q=1' }, body: '' },
    })
    const ctx = request({ path: '/v1/users?id=7' })
    expect(runRequest(doc, ctx)).toBeUndefined()
    expect(ctx.path).toBe('/api/v1/users?id=7')
    const response = compilePolicy(parsePolicy(doc)).onHttpResponse!
    const headers: Record<string, string> = {}
    for (const step of response) step({ request: request(), status: 200, headers })
    expect(headers['x-served-by']).toBe('porthole app.example.com')
    const failed: Record<string, string> = {}
    for (const step of response) step({ request: request(), status: 500, headers: failed })
    expect(failed['x-served-by']).toBeUndefined()
  })

  it('puts flag rules before document rules', () => {
    const combined = combinePolicies(
      { on_http_request: [{ actions: [{ type: 'basic-auth', config: { credentials: ['a:b'] } }] }] },
      { on_http_request: [{ actions: [{ type: 'deny' }] }], on_tcp_connect: [{ actions: [{ type: 'deny' }] }] },
    )
    expect(combined.on_http_request!.map((r) => r.actions[0]!.type)).toEqual(['basic-auth', 'deny'])
    expect(combined.on_tcp_connect).toHaveLength(1)
  })
})

describe('timestamps in templates', () => {
  it('render in RFC 3339; conn.ts.start is one time per connection', async () => {
    const policy = compilePolicy(parsePolicy('on_http_request: [{actions: [{type: custom-response, config: {content: "${conn.ts.start} ${time.now}"}}]}]'))
    const connection = {}
    const body = (ctx: HttpRequestContext): string => ((policy.onHttpRequest![0]!(ctx) as { response: { body: string } }).response.body)
    const before = Date.now()
    const [start, now] = body(request({ connection })).split(' ') as [string, string]
    expect(start).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/)
    expect(now).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/)
    expect(Date.parse(start)).toBeGreaterThanOrEqual(before - 1000)
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect(body(request({ connection })).split(' ')[0]).toBe(start) // a later request on the same connection
    expect(body(request({ connection: {} })).split(' ')[0]).not.toBe(start)
  })
})
