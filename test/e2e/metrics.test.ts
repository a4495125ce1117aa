// Prometheus metrics after real traffic: a real `ssh -R` (OpenSSH) and an ngrok SDK session, requests answered by
// the upstream (200), by basic auth (401) and for a dead upstream (502), a tcp connection with bytes; scraped over
// HTTP from the admin API's port (no API key) and from --metrics-addr, parsed by a Prometheus text-format parser.
// Then: 30 endpoints with different names add no series and no label names them; a cap hit; a refused login;
// /healthz (its 503 while shutting down is in test/unit/metrics.test.ts). One gateway in this file: the observe channels are
// process-wide (see src/observe/metrics.ts), so counts here are exact.
import { createServer, type AddressInfo, type Server } from 'node:net'
import parsePrometheusTextFormat, { type Family } from 'parse-prometheus-text-format'
import { Registry } from 'prom-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connect, echoOnce, eventually, fetchVia, freePort, ngrokSession, rawConnect, startTestGateway, startUpstream, type RawConnection, type SshClient, type TestGateway } from './harness.js'

interface Scrape {
  readonly text: string
  /** Families as the parser reads them (counters and gauges). */
  readonly families: Family[]
  /** Histogram series: the parser keeps only unlabelled histograms, so their _count/_sum/_bucket lines are
   *  parsed again as plain samples. */
  readonly flat: Family[]
}

async function scrape (port: number): Promise<Scrape> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`)
  expect(response.status).toBe(200)
  expect(response.headers.get('content-type')).toBe(Registry.PROMETHEUS_CONTENT_TYPE)
  const text = await response.text()
  return { text, families: parsePrometheusTextFormat(text), flat: parsePrometheusTextFormat(text.replace(/^# TYPE (\S+) histogram$/gm, '# TYPE $1 untyped')) }
}

/** The sum of the samples of `name` whose labels include `labels`; undefined when the family is absent. */
function value (families: readonly Family[], name: string, labels: Record<string, string> = {}): number | undefined {
  // A histogram read as plain samples comes as one family per line run (_bucket, _sum, _count, _bucket...).
  const matching = families.filter((f) => f.name === name)
  if (matching.length === 0) return undefined
  return matching.flatMap((f) => f.metrics)
    .filter((m) => Object.entries(labels).every(([k, v]) => (m.labels ?? {})[k] === v))
    .reduce((sum, m) => sum + Number(m.value), 0)
}

const histogramCount = (s: Scrape, name: string, labels: Record<string, string>): number | undefined => value(s.flat, `${name}_count`, labels)

/** Every porthole_* sample as `name{labels}`, histogram lines included. */
function series (s: Scrape): string[] {
  return s.flat.filter((f) => f.name.startsWith('porthole_')).flatMap((f) => f.metrics.map((m) => `${f.name}${JSON.stringify(m.labels ?? {})}`))
}

describe('metrics', () => {
  let gateway: TestGateway
  let upstream: Awaited<ReturnType<typeof startUpstream>>
  let echo: Server
  const clients: SshClient[] = []
  const sessions: Array<{ close: () => Promise<void> }> = []
  const auth = { authorization: `Basic ${Buffer.from('ann:pw').toString('base64')}` }

  beforeAll(async () => {
    gateway = await startTestGateway({ flags: { metricsAddr: '127.0.0.1:0', perSourceMaxStartups: '4' }, tune: { maxForwardsPerSession: 40 } })
    upstream = await startUpstream((req, res) => { res.setHeader('content-length', 5); res.end('hello') })
    echo = createServer((socket) => socket.pipe(socket))
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve))
  })
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.kill('SIGKILL')))
    await Promise.all(sessions.map((s) => s.close().catch(() => {})))
    echo.close()
    await upstream.close()
    await gateway.stop()
  })

  it('counts real ssh and ngrok traffic, the same on the admin port and on --metrics-addr', async () => {
    const dead = await freePort()
    const client = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`mx:80:localhost:${upstream.port}`, `mxdead:80:localhost:${dead}`], command: 'http --basic-auth ann:pw' })
    clients.push(client)
    await client.urls(2)
    expect((await fetchVia(gateway, 'http://mx.localhost/', { headers: auth })).status).toBe(200)
    expect((await fetchVia(gateway, 'http://mx.localhost/')).status).toBe(401)
    const failed = await fetchVia(gateway, 'http://mxdead.localhost/', { headers: auth })
    expect(failed.status).toBe(502)
    expect(failed.headers['porthole-error-code']).toBe('PH_3002')

    const session = await ngrokSession(gateway)
    sessions.push(session)
    const listener = await session.tcpEndpoint().listenAndForward(`tcp://localhost:${(echo.address() as AddressInfo).port}`)
    expect(await echoOnce(Number(new URL(listener.url()!).port), 'ping-pong!')).toBe(10)

    // Counters move when the response or connection is over: wait for the last one.
    const admin = await eventually(async () => {
      const s = await scrape(gateway.apiPort!)
      return value(s.families, 'porthole_tcp_connections_total', { proto: 'tcp' }) === 1 ? s : undefined
    })
    const f = admin.families
    expect(value(f, 'porthole_http_requests_total', { scheme: 'http', status_class: '2xx', code: '' })).toBe(1)
    expect(value(f, 'porthole_http_requests_total', { status_class: '4xx', code: 'PH_3101' })).toBe(1)
    expect(value(f, 'porthole_http_requests_total', { status_class: '5xx', code: 'PH_3002' })).toBe(1)
    expect(value(f, 'porthole_http_requests_total')).toBe(3)
    expect(value(f, 'porthole_http_response_bytes_total', { scheme: 'http' })).toBeGreaterThanOrEqual(5)
    expect(histogramCount(admin, 'porthole_http_request_duration_seconds', { scheme: 'http' })).toBe(3)
    expect(value(f, 'porthole_policy_decisions_total', { action: 'basic-auth', phase: 'on_http_request', result: 'refused' })).toBe(1)
    expect(value(f, 'porthole_sessions', { transport: 'ssh' })).toBe(1)
    expect(value(f, 'porthole_sessions', { transport: 'ngrok' })).toBe(1)
    expect(value(f, 'porthole_sessions_started_total')).toBe(2)
    expect(value(f, 'porthole_endpoints', { transport: 'ssh', proto: 'http' })).toBe(2)
    expect(value(f, 'porthole_endpoints', { transport: 'ngrok', proto: 'tcp' })).toBe(1)
    expect(value(f, 'porthole_endpoints', { transport: 'ngrok', proto: 'http' })).toBe(0)
    expect(value(f, 'porthole_tcp_bytes_total', { proto: 'tcp', direction: 'in' })).toBe(10)
    expect(value(f, 'porthole_tcp_bytes_total', { proto: 'tcp', direction: 'out' })).toBe(10)
    expect(histogramCount(admin, 'porthole_tcp_connection_duration_seconds', { proto: 'tcp' })).toBe(1)
    // The 200 opened a forwarded-tcpip channel; the dead upstream's was refused by OpenSSH; the tcp one a proxy stream.
    expect(histogramCount(admin, 'porthole_dial_duration_seconds', { transport: 'ssh', outcome: 'ok' })).toBeGreaterThan(0)
    expect(histogramCount(admin, 'porthole_dial_duration_seconds', { transport: 'ssh', outcome: 'refused' })).toBe(1)
    expect(histogramCount(admin, 'porthole_dial_duration_seconds', { transport: 'ngrok', outcome: 'ok' })).toBe(1)
    expect(value(f, 'porthole_logins_total', { transport: 'ssh', outcome: 'ok' })).toBeGreaterThanOrEqual(1)
    expect(value(f, 'porthole_logins_total', { transport: 'ngrok', outcome: 'ok' })).toBe(1)
    expect(value(f, 'porthole_login_throttled_sources')).toBe(0)
    // The local CA's certificate expires years ahead; nothing within 14 days.
    expect(value(f, 'porthole_certificate_expiry_soonest_timestamp_seconds', { source: 'local-ca' })).toBeGreaterThan(Date.now() / 1000 + 14 * 86_400)
    expect(value(f, 'porthole_certificates_expiring_soon', { source: 'local-ca' })).toBe(0)
    // Process and Node metrics, event-loop lag included.
    expect(value(f, 'process_cpu_user_seconds_total')).toBeGreaterThan(0)
    expect(value(f, 'nodejs_eventloop_lag_seconds')).toBeGreaterThanOrEqual(0)

    const own = await scrape(gateway.metricsPort!)
    expect(own.families.map((x) => x.name)).toEqual(f.map((x) => x.name))
    for (const labels of [{ status_class: '2xx' }, { status_class: '4xx' }, { status_class: '5xx' }]) {
      expect(value(own.families, 'porthole_http_requests_total', labels)).toBe(value(f, 'porthole_http_requests_total', labels))
    }
    expect(value(own.families, 'porthole_tcp_bytes_total')).toBe(20)
  })

  it('30 endpoints with different names add no series, and no label value names one', async () => {
    // A request through one ngrok http endpoint first, so that its series exist before the 30 come.
    const session = await ngrokSession(gateway)
    sessions.push(session)
    await session.httpEndpoint().domain('card-first.localhost').listenAndForward(`http://localhost:${upstream.port}`)
    expect((await fetchVia(gateway, 'http://card-first.localhost/')).status).toBe(200)
    const before = await eventually(async () => {
      const s = await scrape(gateway.apiPort!)
      return value(s.families, 'porthole_http_requests_total', { status_class: '2xx' }) === 2 ? s : undefined
    })
    const names = Array.from({ length: 30 }, (_, i) => `card-${i}-${Math.random().toString(36).slice(2, 8)}`)
    for (const name of names) await session.httpEndpoint().domain(`${name}.localhost`).listenAndForward(`http://localhost:${upstream.port}`)
    for (const name of names) expect((await fetchVia(gateway, `http://${name}.localhost/x`)).status).toBe(200)
    const after = await eventually(async () => {
      const s = await scrape(gateway.apiPort!)
      return value(s.families, 'porthole_http_requests_total', { status_class: '2xx' }) === 32 ? s : undefined
    })
    expect(value(after.families, 'porthole_endpoints', { transport: 'ngrok', proto: 'http' })).toBe(31)
    expect(series(after)).toEqual(series(before))
    for (const name of ['card', 'mx', 'localhost', '127.0.0.1']) expect(after.text).not.toContain(`"${name}`)
    expect(after.text).not.toMatch(/="[^"]*(card|localhost|127\.0\.0\.1)[^"]*"/)
  })

  it('a cap hit: the SSH connections not yet logged in from one source, past --per-source-max-startups', async () => {
    const pending: RawConnection[] = []
    try {
      for (let i = 0; i < 4; i++) {
        const raw = rawConnect(gateway.sshPort)
        pending.push(raw)
        await raw.connected
      }
      // The SSH server speaks first: once each of the four has its version line, all four are admitted.
      await eventually(() => pending.every((raw) => raw.received().startsWith('SSH-')))
      const refused = rawConnect(gateway.sshPort)
      pending.push(refused)
      await refused.closed
      expect(refused.received()).toMatch(/^PH_1050/)
      const s = await eventually(async () => {
        const scraped = await scrape(gateway.metricsPort!)
        return value(scraped.families, 'porthole_limit_hits_total', { cap: 'startups_per_source' }) === 1 ? scraped : undefined
      })
      expect(value(s.families, 'porthole_limit_hits_total')).toBe(1)
    } finally {
      for (const raw of pending) raw.socket.destroy()
    }
  })

  it('a refused login: an ngrok agent with a wrong authtoken once the gateway has tokens', async () => {
    await gateway.identity.createAccount('metrics')
    await gateway.identity.createToken('metrics')
    await expect(ngrokSession(gateway, { authtoken: 'not-a-token' })).rejects.toThrow()
    const s = await eventually(async () => {
      const scraped = await scrape(gateway.apiPort!)
      return value(scraped.families, 'porthole_logins_total', { transport: 'ngrok', outcome: 'refused' })! >= 1 ? scraped : undefined
    })
    expect(value(s.families, 'porthole_logins_total', { transport: 'ngrok', outcome: 'throttled' })).toBe(0)
  })

  it('/healthz and /metrics without a key on both listeners; the rest of the API still wants a key', async () => {
    for (const port of [gateway.apiPort!, gateway.metricsPort!]) {
      const health = await fetch(`http://127.0.0.1:${port}/healthz`)
      expect(health.status).toBe(200)
      expect(await health.json()).toEqual({ status: 'ok' })
      expect((await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'HEAD' })).status).toBe(200)
      expect((await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'POST' })).status).toBe(405)
    }
    expect((await fetch(`http://127.0.0.1:${gateway.apiPort}/api/sessions`)).status).toBe(401)
    expect((await fetch(`http://127.0.0.1:${gateway.metricsPort}/api/sessions`)).status).toBe(404)
  })
})
