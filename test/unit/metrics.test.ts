// The pure parts of the metrics: label values from closed sets, the codes that mean a cap was hit, what a policy
// step's answer counts as, the decision channel fed by compiled policies, /healthz while shutting down, and a
// metrics object that never throws into a publisher and lets go of the channels when closed.
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { CertStore } from '../../src/certs/cert-store.js'
import { loadConfig } from '../../src/config/load.js'
import { catalogue, type ErrorCode } from '../../src/core/errors.js'
import { httpRequestChannel, LIMIT_OF_CODE, limitChannel, observeLimit, type LimitObserved, type PolicyDecisionObserved } from '../../src/observe/channels.js'
import { codeLabel, statusClass } from '../../src/observe/metric-labels.js'
import { createMetrics, type GatewayMetrics } from '../../src/observe/metrics.js'
import { metricsHandler } from '../../src/observe/metrics-http.js'
import { compilePolicy } from '../../src/policy/compile.js'
import type { HttpRequestContext } from '../../src/policy/compiled.js'
import { decisionOf } from '../../src/policy/decisions.js'
import { parsePolicy } from '../../src/policy/parse.js'

const request = (over: Partial<HttpRequestContext> = {}): HttpRequestContext => ({
  clientIp: '10.1.2.3', clientPort: 5555, serverPort: 443, endpointHost: 'app.example.com', protocol: 'https',
  method: 'GET', path: '/', host: 'app.example.com', headers: {}, ...over,
})

const empty = { sessions: { sessions: () => [], kill: async () => false }, endpoints: { endpoints: () => [] } }

describe('metric labels', () => {
  it('status class: 2xx..5xx, none for no status or nonsense', () => {
    expect([200, 204, 301, 401, 404, 502, 599, 101].map(statusClass)).toEqual(['2xx', '2xx', '3xx', '4xx', '4xx', '5xx', '5xx', '1xx'])
    expect([0, -1, 99, 600, 200.5, NaN].map(statusClass)).toEqual(['none', 'none', 'none', 'none', 'none', 'none'])
  })

  it('code: the catalogue code, empty when the upstream answered', () => {
    expect(codeLabel('PH_3101')).toBe('PH_3101')
    expect(codeLabel(undefined)).toBe('')
  })

  it('the caps: every mapped code is in the catalogue and is a refusal for want of room (429 or 503)', () => {
    for (const [code, cap] of Object.entries(LIMIT_OF_CODE)) {
      expect(catalogue[code as ErrorCode], code).toBeDefined()
      expect([429, 503], `${code} -> ${cap}`).toContain(catalogue[code as ErrorCode].status)
    }
    expect(LIMIT_OF_CODE.PH_1050).toBe('startups_per_source')
    expect(LIMIT_OF_CODE.PH_1056).toBe('sessions_per_key')
    expect(LIMIT_OF_CODE.PH_1018).toBe('forwards_per_session')
    // Not caps: a wrong authtoken, an unknown key, a policy denial.
    for (const code of ['PH_1024', 'PH_1020', 'PH_3102'] as const) expect(LIMIT_OF_CODE[code]).toBeUndefined()
  })

  it('observeLimit publishes caps only, and the caller may name the cap (MaxStartups early drop vs full)', () => {
    const seen: LimitObserved[] = []
    const onLimit = (m: unknown): void => { seen.push(m as LimitObserved) }
    subscribe(limitChannel.name as string, onLimit)
    try {
      observeLimit({ code: 'PH_1055' })
      observeLimit({ code: 'PH_1024' })
      observeLimit(new Error('no code'))
      observeLimit(null)
      observeLimit({ code: 'PH_1051' }, 'startups_early_drop')
    } finally {
      unsubscribe(limitChannel.name as string, onLimit)
    }
    expect(seen).toEqual([{ cap: 'anonymous_sessions_per_source', code: 'PH_1055' }, { cap: 'startups_early_drop', code: 'PH_1051' }])
  })
})

describe('policy decisions', () => {
  it('what an answer counts as: a catalogue refusal, the policy\'s own response, a closed connection', () => {
    expect(decisionOf({ code: 'PH_3101' })).toEqual({ result: 'refused', code: 'PH_3101' })
    expect(decisionOf({ close: true })).toEqual({ result: 'closed', code: undefined })
    expect(decisionOf({ response: { status: 302, headers: { location: '/' }, body: '' } })).toEqual({ result: 'answered', code: undefined })
    // deny with its own status answers a response carrying its code: still a refusal.
    expect(decisionOf({ response: { status: 404, headers: { 'porthole-error-code': 'PH_3102' }, body: '' } })).toEqual({ result: 'refused', code: 'PH_3102' })
  })

  it('compiled policies publish the action that stopped a request, and nothing for steps that pass', async () => {
    const seen: PolicyDecisionObserved[] = []
    const onDecision = (m: unknown): void => { seen.push(m as PolicyDecisionObserved) }
    const policy = compilePolicy(parsePolicy(`
on_http_request:
  - expressions: ["req.url.path == '/in'"]
    actions: [{type: add-headers, config: {headers: {x-a: b}}}]
  - expressions: ["req.url.path == '/ips'"]
    actions: [{type: restrict-ips, config: {deny: ["10.0.0.0/8"]}}]
  - expressions: ["req.url.path == '/custom'"]
    actions: [{type: custom-response, config: {status_code: 200, body: hi}}]
  - expressions: ["req.url.path == '/close'"]
    actions: [{type: close-connection}]
  - actions: [{type: basic-auth, config: {credentials: ["ann:secret-pw"]}}]
`))
    const run = async (path: string): Promise<unknown> => {
      const ctx = request({ path })
      for (const step of policy.onHttpRequest ?? []) {
        const result = await step(ctx)
        if (result) return result
      }
      return undefined
    }
    await run('/ips') // nobody subscribed: nothing published, nothing built
    subscribe('porthole:observe:policy-decision', onDecision)
    try {
      for (const path of ['/ips', '/custom', '/close', '/other']) await run(path)
    } finally {
      unsubscribe('porthole:observe:policy-decision', onDecision)
    }
    expect(seen).toEqual([
      { action: 'restrict-ips', phase: 'on_http_request', result: 'refused', code: 'PH_3100' },
      { action: 'custom-response', phase: 'on_http_request', result: 'answered', code: undefined },
      { action: 'close-connection', phase: 'on_http_request', result: 'closed', code: undefined },
      { action: 'basic-auth', phase: 'on_http_request', result: 'refused', code: 'PH_3101' },
    ])
  })
})

describe('certificate expiry', () => {
  it('the local CA\'s certificate and its cached leaves, by source; none from byo or acme when off', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'porthole-metrics-'))
    let now = Date.now()
    const store = new CertStore({ dataDir, now: () => now })
    try {
      const [ca] = store.expiries().localCa
      expect(ca).toBeGreaterThan(now + 365 * 86_400_000)
      store.secureContextFor('app.localhost')
      const expiries = store.expiries()
      expect(expiries.localCa).toHaveLength(2)
      expect(Math.abs(expiries.localCa[1]! - (now + 90 * 86_400_000))).toBeLessThan(2 * 60_000) // 90-day leaves, backdated a little
      expect(expiries).toMatchObject({ byo: [], acme: [] })
      // Seen by the metrics: the soonest per source, and how many within 14 days (none until the leaf is 76 days old).
      const metrics = createMetrics({ ...empty, certificates: () => store.expiries(), now: () => now })
      try {
        expect(await metrics.render()).toContain('porthole_certificates_expiring_soon{source="local-ca"} 0')
        now += 80 * 86_400_000
        const text = await metrics.render()
        expect(text).toContain('porthole_certificates_expiring_soon{source="local-ca"} 1')
        expect(text).toContain(`porthole_certificate_expiry_soonest_timestamp_seconds{source="local-ca"} ${Math.floor(expiries.localCa[1]! / 1000)}`)
        expect(text).not.toContain('porthole_certificate_expiry_soonest_timestamp_seconds{source="byo"}')
      } finally {
        metrics.close()
      }
    } finally {
      store.close()
      rmSync(dataDir, { recursive: true, force: true })
    }
  })
})

describe('metrics-addr', () => {
  it('off by default; HOST:PORT from a flag or PORTHOLE_METRICS_ADDR; anything else refused', () => {
    expect(loadConfig({}, {}).metricsAddr).toBeNull()
    expect(loadConfig({}, { PORTHOLE_METRICS_ADDR: '127.0.0.1:9100' }).metricsAddr).toEqual({ host: '127.0.0.1', port: 9100 })
    expect(loadConfig({ metricsAddr: '[::1]:9100' }, { PORTHOLE_METRICS_ADDR: 'off' }).metricsAddr).toEqual({ host: '::1', port: 9100 })
    expect(() => loadConfig({ metricsAddr: '9100' }, {})).toThrow(/metrics-addr: want host:port or off/)
  })
})

describe('metrics object and its HTTP paths', () => {
  let metrics: GatewayMetrics | null = null
  let server: Server | null = null
  afterEach(async () => {
    metrics?.close()
    metrics = null
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()))
    server = null
  })

  it('/healthz answers 503 once shutting down; other paths are left to the caller', async () => {
    metrics = createMetrics(empty)
    let down = false
    const handler = metricsHandler(metrics, () => down)
    server = createServer((req, res) => { if (!handler(req, res)) res.writeHead(418).end() })
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve))
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    expect((await fetch(`${base}/healthz`)).status).toBe(200)
    expect((await fetch(`${base}/metrics?x=1`)).status).toBe(200)
    expect((await fetch(`${base}/api/sessions`)).status).toBe(418)
    down = true
    const health = await fetch(`${base}/healthz`)
    expect(health.status).toBe(503)
    expect(await health.json()).toEqual({ status: 'shutting down' })
  })

  it('a failing collector or a bad message never throws into the publisher; close() lets go of every channel', async () => {
    const errors: unknown[] = []
    metrics = createMetrics({ ...empty, throttledSources: () => { throw new Error('boom') }, onError: (error) => errors.push(error) })
    expect(httpRequestChannel.hasSubscribers).toBe(true)
    httpRequestChannel.publish({ scheme: 'http' }) // fields missing: the subscriber's failure stays inside it
    const text = await metrics.render()
    expect(text).toContain('porthole_sessions{transport="ssh"} 0')
    expect(text).toContain('nodejs_eventloop_lag_seconds')
    expect(errors.length).toBeGreaterThan(0)
    metrics.close()
    metrics.close()
    expect(httpRequestChannel.hasSubscribers).toBe(false)
  })

  it('each gateway has a registry of its own, where other modules add metrics', async () => {
    metrics = createMetrics(empty)
    const other = createMetrics(empty)
    try {
      expect(other.registry).not.toBe(metrics.registry)
      const { Counter } = await import('prom-client')
      new Counter({ name: 'porthole_events_dropped_total', help: 'test', registers: [metrics.registry] }).inc(2)
      expect(await metrics.render()).toContain('porthole_events_dropped_total 2')
      expect(await other.render()).not.toContain('porthole_events_dropped_total')
    } finally {
      other.close()
    }
  })
})
