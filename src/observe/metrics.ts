// The gateway's Prometheus metrics (prom-client): counters and histograms fed by the observe channels
// (observe/channels.ts), gauges read from the gateway's state when scraped. Each gateway has a Registry of its own
// (tests run several gateways in one process; prom-client's global one would mix them); other modules register
// their metrics on `metrics.registry`. Labels come from closed sets only (metric-labels.ts): no names, addresses
// or accounts. Process and Node metrics are process facts: one registry for the process, shown by every gateway
// (prom-client never releases its event-loop monitor and gc observer, so one set per gateway would leak).
//
// Channels are process-wide: a process running several gateways at once counts each one's traffic in all of
// them (production runs one gateway per process; tests that compare counts run one gateway per file).
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { Registry as EndpointRegistry } from '../core/registry.js'
import type { SessionDirectory } from '../core/session.js'
import {
  dialChannel, httpRequestChannel, limitChannel, loginChannel, policyDecisionChannel, sessionChannel, tcpConnectionChannel,
  type DialObserved, type HttpRequestObserved, type LimitObserved, type LoginObserved, type PolicyDecisionObserved, type SessionObserved,
  type TcpConnectionObserved,
} from './channels.js'
import { CERT_SOURCES, PROTOS, TRANSPORTS, codeLabel, statusClass } from './metric-labels.js'

const DAY_MS = 86_400_000
/** Certificates expiring within this window are counted apart (an alert threshold, as ACME renews at 30 days). */
export const EXPIRING_WITHIN_MS = 14 * DAY_MS

export interface MetricsSources {
  readonly sessions: SessionDirectory
  readonly endpoints: Pick<EndpointRegistry, 'endpoints'>
  /** Expiry (epoch ms) of the certificates served, by source (certs/cert-store.ts). */
  readonly certificates?: () => { readonly localCa: readonly number[], readonly byo: readonly number[], readonly acme: readonly number[] }
  /** Source addresses the login throttle holds back now (identity/login-throttle.ts). */
  readonly throttledSources?: () => number
  /** A subscriber or collector failed (a bug: it is dropped for that message, never thrown into the publisher). */
  readonly onError?: (error: unknown) => void
  readonly now?: () => number
}

export interface GatewayMetrics {
  /** This gateway's registry: other modules add their own metrics here. */
  readonly registry: Registry
  /** The Content-Type of render()'s text. */
  readonly contentType: string
  /** The text exposition: the process metrics, then this gateway's. */
  render (): Promise<string>
  /** Unsubscribes from the channels (idempotent). */
  close (): void
}

let processRegistry: Registry | null = null

/** Process and Node metrics (CPU, memory, handles, gc, event-loop lag), made once per process. */
function processMetrics (): Registry {
  if (processRegistry === null) {
    processRegistry = new Registry()
    collectDefaultMetrics({ register: processRegistry })
  }
  return processRegistry
}

const seconds = (ms: number): number => Math.max(0, ms) / 1000

/** One (scheme, status, code)'s requests since the last scrape (createMetrics). */
interface PendingRequests {
  readonly scheme: HttpRequestObserved['scheme']
  readonly status: number
  readonly code: HttpRequestObserved['errorCode']
  requests: number
  responseBytes: number
  requestBytes: number
}

export function createMetrics (sources: MetricsSources): GatewayMetrics {
  const registry = new Registry()
  const registers = [registry]
  const now = sources.now ?? Date.now
  const onError = sources.onError ?? (() => {})
  /** A collector or subscriber that cannot throw. */
  const guarded = <T, A extends unknown[]>(fn: (this: T, ...args: A) => void) => function (this: T, ...args: A): void {
    try { fn.apply(this, args) } catch (error) { try { onError(error) } catch {} }
  }

  // --- agents: sessions and endpoints (read when scraped) -------------------------------------------------
  new Gauge({
    name: 'porthole_sessions', help: 'Live agent sessions, by transport.', labelNames: ['transport'], registers,
    collect: guarded(function (this: Gauge<'transport'>) {
      const count = { ssh: 0, ngrok: 0 }
      for (const session of sources.sessions.sessions()) count[session.clientType]++
      for (const transport of TRANSPORTS) this.set({ transport }, count[transport])
    }),
  })
  const sessionsStarted = new Counter({ name: 'porthole_sessions_started_total', help: 'Agent sessions logged in, by transport.', labelNames: ['transport'], registers })
  new Gauge({
    name: 'porthole_endpoints', help: 'Bound endpoints, by agent transport and proto.', labelNames: ['transport', 'proto'], registers,
    collect: guarded(function (this: Gauge<'transport' | 'proto'>) {
      const count = new Map<string, number>()
      for (const endpoint of sources.endpoints.endpoints()) {
        const key = `${endpoint.agent.transport} ${endpoint.spec.proto}`
        count.set(key, (count.get(key) ?? 0) + 1)
      }
      for (const transport of TRANSPORTS) for (const proto of PROTOS) this.set({ transport, proto }, count.get(`${transport} ${proto}`) ?? 0)
    }),
  })
  const dials = new Histogram({
    name: 'porthole_dial_duration_seconds',
    help: 'Time for an agent to open a stream for a public connection (ssh: forwarded-tcpip channel confirmed or refused; ngrok: proxy stream opened), by transport and outcome.',
    labelNames: ['transport', 'outcome'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  })

  // --- HTTP requests ------------------------------------------------------------------------------------
  /** Hands the tallied request counts to the three counters below; whichever is scraped first runs it. */
  const collectRequests = guarded(() => flushRequests())
  const requests = new Counter({
    name: 'porthole_http_requests_total',
    help: 'Public HTTP requests, by scheme, status class (none: no status was sent) and catalogue error code (empty: the upstream answered).',
    labelNames: ['scheme', 'status_class', 'code'],
    registers,
    collect: collectRequests,
  })
  const requestDuration = new Histogram({
    name: 'porthole_http_request_duration_seconds', help: 'Public HTTP requests, from arrival to the end of the response, by scheme.', labelNames: ['scheme'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers,
  })
  const responseBytes = new Counter({ name: 'porthole_http_response_bytes_total', help: 'Response body bytes written to public HTTP clients (after compression), by scheme.', labelNames: ['scheme'], registers, collect: collectRequests })
  const requestBytes = new Counter({ name: 'porthole_http_request_bytes_total', help: 'Request body bytes announced by public HTTP clients (content-length; chunked bodies are not counted), by scheme.', labelNames: ['scheme'], registers, collect: collectRequests })
  // A request's counts go into plain numbers first (one Map lookup), and into the counters above when they are
  // scraped: prom-client's inc() checks and hashes its labels on each call, three calls per request, which a
  // profile of the fast path put at 4% of a request (issue 13). Keys are closed sets (scheme, status, code).
  const pendingRequests = new Map<string, PendingRequests>()
  function flushRequests (): void {
    for (const entry of pendingRequests.values()) {
      if (entry.requests === 0) continue
      requests.inc({ scheme: entry.scheme, status_class: statusClass(entry.status), code: codeLabel(entry.code) }, entry.requests)
      if (entry.responseBytes > 0) responseBytes.inc({ scheme: entry.scheme }, entry.responseBytes)
      if (entry.requestBytes > 0) requestBytes.inc({ scheme: entry.scheme }, entry.requestBytes)
      entry.requests = entry.responseBytes = entry.requestBytes = 0
    }
  }

  // --- tcp and TLS-passthrough connections --------------------------------------------------------------
  const connections = new Counter({ name: 'porthole_tcp_connections_total', help: 'Public connections to tcp endpoints and TLS-passthrough endpoints, closed, by proto.', labelNames: ['proto'], registers })
  const connectionBytes = new Counter({
    name: 'porthole_tcp_bytes_total', help: 'Bytes of closed tcp and TLS-passthrough connections, by proto and direction (in: from the public client, out: to it).',
    labelNames: ['proto', 'direction'], registers,
  })
  const connectionDuration = new Histogram({
    name: 'porthole_tcp_connection_duration_seconds', help: 'Lifetime of public tcp and TLS-passthrough connections, by proto.', labelNames: ['proto'],
    buckets: [0.01, 0.1, 1, 10, 60, 300, 1800, 3600, 14_400, 86_400],
    registers,
  })

  // --- policy, logins, caps -----------------------------------------------------------------------------
  const decisions = new Counter({
    name: 'porthole_policy_decisions_total',
    help: 'Requests and connections stopped by an endpoint\'s traffic policy, by action type, phase and result (refused: an error page; answered: a response of the policy\'s own; closed).',
    labelNames: ['action', 'phase', 'result'],
    registers,
  })
  const logins = new Counter({
    name: 'porthole_logins_total', help: 'Agent credentials checked at login, by transport and outcome (ok, refused, throttled: refused after the throttle\'s wait).',
    labelNames: ['transport', 'outcome'], registers,
  })
  if (sources.throttledSources) {
    const throttled = sources.throttledSources
    new Gauge({
      name: 'porthole_login_throttled_sources', help: 'Source addresses whose wrong credentials are answered late right now (login throttle).', registers,
      collect: guarded(function (this: Gauge) { this.set(throttled()) }),
    })
  }
  const limits = new Counter({ name: 'porthole_limit_hits_total', help: 'Refusals because one of the gateway\'s caps was reached, by cap.', labelNames: ['cap'], registers })

  // --- certificates ---------------------------------------------------------------------------------------
  if (sources.certificates) {
    const certificates = sources.certificates
    new Gauge({
      name: 'porthole_certificate_expiry_soonest_timestamp_seconds', help: 'The soonest notAfter among the certificates of a source (local-ca: the CA and its leaves; byo: --certs-dir; acme), in seconds since the epoch.',
      labelNames: ['source'], registers,
      collect: guarded(function (this: Gauge<'source'>) {
        this.reset()
        for (const [source, list] of bySource(certificates())) if (list.length > 0) this.set({ source }, Math.floor(Math.min(...list) / 1000))
      }),
    })
    new Gauge({
      name: 'porthole_certificates_expiring_soon', help: `Certificates of a source expiring within ${EXPIRING_WITHIN_MS / DAY_MS} days (expired ones included).`,
      labelNames: ['source'], registers,
      collect: guarded(function (this: Gauge<'source'>) {
        const soon = now() + EXPIRING_WITHIN_MS
        for (const [source, list] of bySource(certificates())) this.set({ source }, list.filter((notAfter) => notAfter <= soon).length)
      }),
    })
  }

  // --- subscriptions --------------------------------------------------------------------------------------
  const handlers: [string, (message: unknown) => void][] = [
    [httpRequestChannel.name as string, guarded((message: unknown) => {
      const m = message as HttpRequestObserved
      const key = `${m.scheme} ${m.status} ${m.errorCode ?? ''}`
      let entry = pendingRequests.get(key)
      if (entry === undefined) pendingRequests.set(key, entry = { scheme: m.scheme, status: m.status, code: m.errorCode, requests: 0, responseBytes: 0, requestBytes: 0 })
      entry.requests++
      if (m.responseBytes > 0) entry.responseBytes += m.responseBytes
      if (m.requestBytes > 0) entry.requestBytes += m.requestBytes
      requestDuration.observe({ scheme: m.scheme }, seconds(m.durationMs))
    })],
    [tcpConnectionChannel.name as string, guarded((message: unknown) => {
      const m = message as TcpConnectionObserved
      connections.inc({ proto: m.proto })
      if (m.bytesIn > 0) connectionBytes.inc({ proto: m.proto, direction: 'in' }, m.bytesIn)
      if (m.bytesOut > 0) connectionBytes.inc({ proto: m.proto, direction: 'out' }, m.bytesOut)
      connectionDuration.observe({ proto: m.proto }, seconds(m.durationMs))
    })],
    [sessionChannel.name as string, guarded((message: unknown) => {
      const m = message as SessionObserved
      if (m.event === 'start') sessionsStarted.inc({ transport: m.session.clientType })
    })],
    [dialChannel.name as string, guarded((message: unknown) => {
      const m = message as DialObserved
      dials.observe({ transport: m.transport, outcome: m.outcome }, seconds(m.durationMs))
    })],
    [policyDecisionChannel.name as string, guarded((message: unknown) => {
      const m = message as PolicyDecisionObserved
      decisions.inc({ action: m.action, phase: m.phase, result: m.result })
    })],
    [loginChannel.name as string, guarded((message: unknown) => {
      const m = message as LoginObserved
      logins.inc({ transport: m.transport, outcome: m.outcome })
    })],
    [limitChannel.name as string, guarded((message: unknown) => {
      limits.inc({ cap: (message as LimitObserved).cap })
    })],
  ]
  for (const [name, handler] of handlers) subscribe(name, handler)

  const shared = processMetrics()
  let closed = false
  return {
    registry,
    contentType: registry.contentType,
    async render () {
      return `${await shared.metrics()}\n${await registry.metrics()}`
    },
    close () {
      if (closed) return
      closed = true
      for (const [name, handler] of handlers) unsubscribe(name, handler)
    },
  }
}

function bySource (expiries: { readonly localCa: readonly number[], readonly byo: readonly number[], readonly acme: readonly number[] }): [typeof CERT_SOURCES[number], readonly number[]][] {
  return [['local-ca', expiries.localCa], ['byo', expiries.byo], ['acme', expiries.acme]]
}
