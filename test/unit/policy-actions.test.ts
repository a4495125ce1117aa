// Traffic policy actions with state or side effects: rate-limit and circuit-breaker over time (a fake
// clock passed through compile options), close-connection, set-vars, log (its diagnostics channel), and
// the flags that compile to them (--circuit-breaker, --ua-filter-allow/--ua-filter-deny).
import diagnostics from 'node:diagnostics_channel'
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { compilePolicy } from '../../src/policy/compile.js'
import { parsePolicy } from '../../src/policy/parse.js'
import type { CompiledPolicy, Denial, HttpRequestContext } from '../../src/policy/compiled.js'
import { MAX_BUCKETS } from '../../src/policy/actions/rate-limit.js'
import type { PolicyLogRecord } from '../../src/policy/actions/vars-and-log.js'
import { parseCommand, specFor } from '../../src/agents/ssh/exec-grammar.js'
import { PortholeError } from '../../src/core/errors.js'

const fixture = (name: string): string => readFileSync(resolve(import.meta.dirname, '../../fixtures/policies', name), 'utf8')

function request (over: Partial<HttpRequestContext> = {}): HttpRequestContext {
  return {
    clientIp: '10.1.2.3', clientPort: 5555, serverPort: 443, endpointHost: 'app.example.com', protocol: 'https',
    method: 'GET', path: '/', host: 'app.example.com', headers: { 'user-agent': 'curl/8' }, ...over,
  }
}

/** A clock the test moves by hand. */
function fakeClock (start = 1_700_000_000_000) {
  let t = start
  return { now: () => t, advance: (ms: number) => { t += ms } }
}

/** on_tcp_connect then on_http_request, as the edge runs them. */
function run (policy: CompiledPolicy, ctx: HttpRequestContext): Denial | undefined {
  for (const step of [...policy.onTcpConnect ?? [], ...policy.onHttpRequest ?? []]) {
    const denial = step(ctx)
    if (denial instanceof Promise) throw new Error('these actions answer synchronously')
    if (denial) return denial
  }
  return undefined
}

const compile = (yaml: string, now?: () => number) => compilePolicy(parsePolicy(yaml), 'http', { now })

function errorOf (fn: () => unknown): string {
  try { fn() } catch (error) { return `${(error as PortholeError).code} ${(error as PortholeError).message}` }
  return 'none'
}

const rateLimit = (capacity: number, rate: string, extra = '') =>
  `on_http_request: [{actions: [{type: rate-limit, config: {name: t, algorithm: sliding_window, capacity: ${capacity}, rate: "${rate}", bucket_key: [conn.client_ip]${extra}}}]}]`

describe('rate-limit', () => {
  it('lets capacity requests through per bucket, then answers 429 with retry-after', () => {
    const clock = fakeClock(0)
    const policy = compile(rateLimit(2, '60s'), clock.now)
    expect(run(policy, request())).toBeUndefined()
    expect(run(policy, request())).toBeUndefined()
    expect(run(policy, request())).toEqual({ code: 'PH_3103', headers: { 'retry-after': '90' } })
    clock.advance(89_999) // 2 * (1 - 29.999/60) + 1 > 2
    expect(run(policy, request())).toMatchObject({ code: 'PH_3103', headers: { 'retry-after': '1' } })
    clock.advance(1)
    expect(run(policy, request())).toBeUndefined()
    // Another client IP is another bucket.
    expect(run(policy, request({ clientIp: '10.9.9.9' }))).toBeUndefined()
  })

  it('slides: the previous window counts in proportion to its overlap', () => {
    const clock = fakeClock(0)
    const policy = compile(rateLimit(4, '60s'), clock.now)
    for (let i = 0; i < 4; i++) expect(run(policy, request())).toBeUndefined()
    expect(run(policy, request())).toMatchObject({ code: 'PH_3103' })
    clock.advance(60_000) // next window: the 4 earlier requests weigh 4 * (1 - 0) = 4
    expect(run(policy, request())).toMatchObject({ code: 'PH_3103', headers: { 'retry-after': '15' } })
    clock.advance(15_000) // 4 * 0.75 + 1 = 4: one more fits
    expect(run(policy, request())).toBeUndefined()
    expect(run(policy, request())).toMatchObject({ code: 'PH_3103' })
    clock.advance(120_000) // two windows later nothing is left
    for (let i = 0; i < 4; i++) expect(run(policy, request())).toBeUndefined()
  })

  it('keeps at most MAX_BUCKETS buckets: strangers evict old buckets rather than grow memory', () => {
    const policy = compile(rateLimit(1, '60s'), fakeClock().now)
    expect(run(policy, request())).toBeUndefined()
    expect(run(policy, request())).toMatchObject({ code: 'PH_3103' })
    for (let i = 0; i < MAX_BUCKETS; i++) run(policy, request({ clientIp: `fd00::${i.toString(16)}` }))
    expect(run(policy, request())).toBeUndefined() // its bucket was the least recently used, and went
  })

  it('sets actions.ngrok.rate_limit.limited for later rules; enforce: false only reports (ngrok fixture)', () => {
    const doc = compile(fixture('rate-limit.yml'), fakeClock().now)
    const ctx = request({ path: '/api/x' })
    expect(run(doc, ctx)).toBeUndefined()
    expect(ctx.headers['x-rate-limited']).toBe('no')
    const report = compile(`on_http_request:
  - actions: [{type: rate-limit, config: {name: t, algorithm: sliding_window, capacity: 1, rate: 60s, bucket_key: [req.host], enforce: false}}]
  - expressions: [actions.ngrok.rate_limit.limited]
    actions: [{type: custom-response, config: {status_code: 429, body: slow down}}]`, fakeClock().now)
    expect(run(report, request())).toBeUndefined()
    expect(run(report, request())).toEqual({ response: { status: 429, headers: {}, body: 'slow down' } })
  })

  it('is validated at bind time, with its place', () => {
    expect(errorOf(() => compile(rateLimit(1, '5x'))))
      .toBe('PH_1008 invalid traffic policy: rate: "5x" is not a duration (want e.g. "60s", "10m", "1h") at on_http_request[0].actions[0]')
    expect(errorOf(() => compile(rateLimit(1, '48h')))).toMatch(/rate: 48h is outside 1s\.\.86400s at on_http_request\[0\]\.actions\[0\]$/)
    expect(errorOf(() => compile(rateLimit(0, '60s')))).toMatch(/^PH_1008 invalid traffic policy: on_http_request\[0\]\.actions\[0\]\.config\.capacity: /)
    expect(errorOf(() => compile(rateLimit(1, '60s').replace('sliding_window', 'leaky_bucket'))))
      .toMatch(/on_http_request\[0\]\.actions\[0\]\.config\.algorithm: /)
    expect(errorOf(() => compile(rateLimit(1, '60s').replace('[conn.client_ip]', '["conn.client_ip +"]'))))
      .toMatch(/^PH_1008 invalid traffic policy: bucket_key\[0\]: .* at on_http_request\[0\]\.actions\[0\]$/)
    expect(errorOf(() => compile(rateLimit(1, '60s').replace('on_http_request', 'on_http_response'))))
      .toBe('PH_1008 invalid traffic policy: action type "rate-limit" is not allowed in on_http_response at on_http_response[0].actions[0]')
  })
})

describe('circuit-breaker', () => {
  const breaker = (extra = '') => `on_http_request: [{actions: [{type: circuit-breaker, config: {volume_threshold: 4, error_threshold: 0.5${extra}}}]}]`
  /** Sends one request and reports `status` as its outcome, as the edge does when it is over. */
  const send = (policy: CompiledPolicy, status: number): Denial | undefined => {
    const ctx = request()
    const denial = run(policy, ctx)
    if (!denial) for (const hook of ctx.outcome ?? []) hook(status)
    return denial
  }

  it('trips once volume and error ratio are reached, answers 503 while tripped, then probes', () => {
    const clock = fakeClock()
    const policy = compile(breaker(), clock.now)
    for (const status of [500, 200, 500]) expect(send(policy, status)).toBeUndefined()
    expect(send(policy, 502)).toBeUndefined() // 3 errors of 4: trips after this outcome
    expect(send(policy, 200)).toEqual({ code: 'PH_3104', headers: { 'retry-after': '10' } })
    clock.advance(10_000)
    // Half-open: one probe goes through; others wait for it.
    const probe = request()
    expect(run(policy, probe)).toBeUndefined()
    expect(send(policy, 200)).toMatchObject({ code: 'PH_3104' })
    for (const hook of probe.outcome!) hook(200)
    for (let i = 0; i < 5; i++) expect(send(policy, 200)).toBeUndefined() // closed again
  })

  it('a failed probe trips it again; a probe that never reports is replaced after tripped_duration', () => {
    const clock = fakeClock()
    const policy = compile(breaker(", tripped_duration: 2s"), clock.now)
    for (let i = 0; i < 4; i++) send(policy, 503)
    expect(send(policy, 200)).toMatchObject({ code: 'PH_3104', headers: { 'retry-after': '2' } })
    clock.advance(2_000)
    expect(send(policy, 500)).toBeUndefined() // the probe fails
    expect(send(policy, 200)).toMatchObject({ code: 'PH_3104' })
    clock.advance(2_000)
    expect(run(policy, request())).toBeUndefined() // a probe whose client leaves: no outcome
    expect(send(policy, 200)).toMatchObject({ code: 'PH_3104' })
    clock.advance(2_000)
    expect(send(policy, 200)).toBeUndefined() // the next probe
    expect(send(policy, 200)).toBeUndefined()
  })

  it('forgets outcomes older than window_duration; no volume, no trip', () => {
    const clock = fakeClock()
    const policy = compile(breaker(', window_duration: 5s'), clock.now)
    for (let i = 0; i < 3; i++) send(policy, 500)
    clock.advance(5_000)
    expect(send(policy, 500)).toBeUndefined() // only 1 in the window now
    expect(send(policy, 200)).toBeUndefined()
    const lenient = compile(breaker(', enforce: false'), clock.now)
    for (let i = 0; i < 10; i++) expect(send(lenient, 500)).toBeUndefined()
  })

  it('is validated at bind time, with its place', () => {
    expect(errorOf(() => compile(breaker(', window_duration: 5m'))))
      .toBe('PH_1008 invalid traffic policy: window_duration: 5m is outside 1s..120s at on_http_request[0].actions[0]')
    expect(errorOf(() => compile(breaker().replace('0.5', '1.5')))).toMatch(/on_http_request\[0\]\.actions\[0\]\.config\.error_threshold: /)
    expect(errorOf(() => compile(breaker(', num_buckets: 0')))).toMatch(/on_http_request\[0\]\.actions\[0\]\.config\.num_buckets: /)
    expect(errorOf(() => compile('on_tcp_connect: [{actions: [{type: circuit-breaker}]}]')))
      .toBe('PH_1008 invalid traffic policy: action type "circuit-breaker" is not allowed in on_tcp_connect at on_tcp_connect[0].actions[0]')
  })
})

describe('close-connection, set-vars, log', () => {
  let unsubscribe = (): void => {}
  afterEach(() => unsubscribe())

  it('close-connection closes without a response, in on_tcp_connect and on_http_request', () => {
    expect(run(compile("on_tcp_connect: [{expressions: [\"conn.client_ip == '10.1.2.3'\"], actions: [{type: close-connection}]}]"), request())).toEqual({ close: true })
    expect(run(compile('on_http_request: [{actions: [{type: close-connection}]}]'), request())).toEqual({ close: true })
    expect(compilePolicy(parsePolicy('on_tcp_connect: [{actions: [{type: close-connection}]}]'), 'tcp').onTcpConnect![0]!(request())).toEqual({ close: true })
    expect(errorOf(() => compile('on_http_response: [{actions: [{type: close-connection}]}]'))).toMatch(/not allowed in on_http_response/)
  })

  it('set-vars values (with ${}) are read by later rules as vars.NAME, in every phase', () => {
    const policy = compile(`on_tcp_connect:
  - actions: [{type: set-vars, config: {vars: [{tier: gold}, {limit: 3, beta: true}]}}]
on_http_request:
  - actions: [{type: set-vars, config: {vars: [{who: "\${req.host}/\${vars.tier}"}]}}]
  - expressions: ["vars.tier == 'gold'", "vars.limit == 3", "vars.beta", "vars.who == 'app.example.com/gold'"]
    actions: [{type: add-headers, config: {headers: {x-tier: "\${vars.tier}"}}}]
on_http_response:
  - actions: [{type: set-vars, config: {vars: [{done: "\${string(res.status_code)}"}]}}]
  - expressions: ["vars.done == '201'", "vars.tier == 'gold'"]
    actions: [{type: add-headers, config: {headers: {x-done: "\${vars.done}"}}}]`)
    const ctx = request()
    expect(run(policy, ctx)).toBeUndefined()
    expect(ctx.headers['x-tier']).toBe('gold')
    const headers: Record<string, string> = {}
    for (const step of policy.onHttpResponse!) step({ request: ctx, status: 201, headers })
    expect(headers['x-done']).toBe('201')
    expect(errorOf(() => compile('on_http_request: [{actions: [{type: set-vars, config: {vars: [{"a-b": 1}]}}]}]')))
      .toBe('PH_1008 invalid traffic policy: vars[0]: "a-b" is not a variable name (letters, digits, _) at on_http_request[0].actions[0]')
    expect(errorOf(() => compile('on_http_request: [{actions: [{type: set-vars, config: {vars: [{a: "${req."}]}}]}]')))
      .toMatch(/^PH_1008 invalid traffic policy: vars\[0\]\.a: .* at on_http_request\[0\]\.actions\[0\]$/)
  })

  it('log publishes one record on porthole:policy:log, metadata rendered', () => {
    const records: PolicyLogRecord[] = []
    const listener = (message: unknown): void => { records.push(message as PolicyLogRecord) }
    diagnostics.subscribe('porthole:policy:log', listener)
    unsubscribe = () => diagnostics.unsubscribe('porthole:policy:log', listener)
    const policy = compile(`on_http_request:
  - actions: [{type: log, config: {metadata: {message: "hit \${req.url.path}", ip: "\${conn.client_ip}", n: 1, tags: [a, "\${req.method}"]}}}]`)
    expect(run(policy, request({ path: '/x?y=1' }))).toBeUndefined()
    expect(records).toEqual([{ endpoint: 'app.example.com', phase: 'on_http_request', metadata: { message: 'hit /x', ip: '10.1.2.3', n: 1, tags: ['a', 'GET'] } }])
    expect(errorOf(() => compile('on_http_request: [{actions: [{type: log, config: {metadata: {m: "${"}}}]}]'))).toMatch(/metadata\.m: unclosed/)
  })

  it('req.* still works after on_tcp_connect expressions built the conn.* variables (regression)', () => {
    const policy = compile(`on_tcp_connect: [{expressions: ["conn.client_port == 5555"], actions: [{type: set-vars, config: {vars: [{a: x}]}}]}]
on_http_request: [{expressions: ["req.method == 'GET'", "vars.a == 'x'"], actions: [{type: deny}]}]`)
    expect(run(policy, request())).toMatchObject({ response: { status: 403 } })
  })
})

describe('flags compiling to these actions', () => {
  const compiled = (line: string) => {
    const parsed = parseCommand(line)
    if (parsed.kind !== 'options') throw new Error('expected options')
    return { policy: parsed.options.policy, compiled: specFor(parsed.options, 'http').compiled }
  }
  const codeOf = (line: string) => errorOf(() => parseCommand(line))

  it('--circuit-breaker RATIO is a circuit-breaker action', () => {
    expect(compiled('http --circuit-breaker 0.25').policy.on_http_request).toEqual([
      { name: 'circuit-breaker flag', actions: [{ type: 'circuit-breaker', config: { error_threshold: 0.25 } }] },
    ])
    expect(codeOf('http --circuit-breaker 2')).toBe('PH_1002 bad value for --circuit-breaker "2" (want an error ratio from 0 to 1, e.g. 0.5)')
    expect(codeOf('http --circuit-breaker half')).toMatch(/^PH_1002 bad value for --circuit-breaker "half"/)
    expect(codeOf('tcp --circuit-breaker 0.5')).toBe('PH_1001 unknown option --circuit-breaker for tcp (it applies to http)')
  })

  it('--ua-filter-deny wins; with --ua-filter-allow, only matching user agents pass (ngrok semantics)', () => {
    const deny = compiled("http --ua-filter-deny '(?i)bot' --ua-filter-deny '^python'").compiled
    expect(run(deny, request({ headers: { 'user-agent': 'Googlebot/2.1' } }))).toMatchObject({ response: { status: 403, headers: { 'porthole-error-code': 'PH_3102' } } })
    expect(run(deny, request({ headers: { 'user-agent': 'python-requests/2' } }))).toMatchObject({ response: { status: 403 } })
    expect(run(deny, request({ headers: { 'user-agent': 'curl/8' } }))).toBeUndefined()
    expect(run(deny, request({ headers: {} }))).toBeUndefined()
    const both = compiled("http --ua-filter-allow '^curl/' --ua-filter-allow '^Mozilla/' --ua-filter-deny 'curl/7'").compiled
    expect(run(both, request({ headers: { 'user-agent': 'curl/8.1' } }))).toBeUndefined()
    expect(run(both, request({ headers: { 'user-agent': 'Mozilla/5.0' } }))).toBeUndefined()
    expect(run(both, request({ headers: { 'user-agent': 'curl/7.88' } }))).toMatchObject({ response: { status: 403 } })
    expect(run(both, request({ headers: { 'user-agent': 'wget' } }))).toMatchObject({ response: { status: 403 } })
    expect(run(both, request({ headers: {} }))).toMatchObject({ response: { status: 403 } })
  })

  it('refuses a regex RE2 cannot compile, at bind time', () => {
    expect(codeOf("http --ua-filter-allow '(?=x)'")).toMatch(/^PH_1002 bad value for --ua-filter-allow "\(\?=x\)" \(/)
    expect(codeOf("http --ua-filter-deny '('")).toMatch(/^PH_1002 bad value for --ua-filter-deny "\(" \(/)
  })
})

describe('options ngrok\'s examples use', () => {
  const compile = (text: string) => compilePolicy(parsePolicy(text))

  it('basic-auth and restrict-ips take enforce (false: nothing is denied)', () => {
    const auth = (enforce: boolean) => compile(`on_http_request: [{actions: [{type: basic-auth, config: {credentials: ["a:b"], enforce: ${enforce}}}]}]`)
    expect(run(auth(true), request())).toMatchObject({ code: 'PH_3101' })
    expect(run(auth(false), request())).toBeUndefined()
    const ips = (enforce: boolean) => compile(`on_tcp_connect: [{actions: [{type: restrict-ips, config: {allow: [1.1.1.1/32], enforce: ${enforce}}}]}]`)
    expect(run(ips(true), request())).toMatchObject({ code: 'PH_3100' })
    expect(run(ips(false), request())).toBeUndefined()
  })

  it('restrict-ips answers the same for an address it remembers, per address', () => {
    const policy = compile('on_tcp_connect: [{actions: [{type: restrict-ips, config: {allow: [10.0.0.0/8], deny: [10.9.0.0/16]}}]}]')
    for (let round = 0; round < 2; round++) {
      expect(run(policy, request({ clientIp: '10.1.2.3' }))).toBeUndefined()
      expect(run(policy, request({ clientIp: '10.9.1.1' }))).toMatchObject({ code: 'PH_3100' })
      expect(run(policy, request({ clientIp: '::ffff:10.1.2.3' }))).toBeUndefined()
      expect(run(policy, request({ clientIp: 'not an address' }))).toMatchObject({ code: 'PH_3100' })
    }
    // Past the bound the memory starts over; answers stay right.
    for (let i = 0; i < 1100; i++) expect(run(policy, request({ clientIp: `10.${i >> 8}.${i & 255}.1` }))).toBeUndefined()
    expect(run(policy, request({ clientIp: '192.168.1.1' }))).toMatchObject({ code: 'PH_3100' })
  })

  it('custom-response answers 200 when no status_code is given', () => {
    expect(run(compile('on_http_request: [{actions: [{type: custom-response, config: {content: hi}}]}]'), request()))
      .toEqual({ response: { status: 200, headers: {}, body: 'hi' } })
  })

  it('compress-response accepts "compress" in its list but refuses it alone', () => {
    expect(() => compile('on_http_response: [{actions: [{type: compress-response, config: {algorithms: [gzip, compress]}}]}]')).not.toThrow()
    expect(() => compile('on_http_response: [{actions: [{type: compress-response, config: {algorithms: [compress]}}]}]'))
      .toThrow(/"compress" \(LZW\) is not supported/)
  })
})
