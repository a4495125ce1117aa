// Wires the layers into a running gateway: registry + name store, the SSH agent transport, the HTTP edge.
// `startGateway` is what `porthole serve` and the end-to-end tests run.
import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import type { Logger } from 'pino'
import { isLoopback, type ServerConfig } from './config/schema.js'
import { Registry } from './core/registry.js'
import { NameStore } from './identity/name-store.js'
import { AuthorizedKeys } from './identity/authorized-keys.js'
import { FileIdentityStore } from './identity/file-store.js'
import { Identity } from './identity/identity.js'
import { loadHostKeys } from './agents/ssh/host-keys.js'
import { SshAgent } from './agents/ssh/server.js'
import { NGROK_MAX_STREAMS, NgrokAgent } from './agents/ngrok/server.js'
import { SessionCounts } from './agents/session-budget.js'
import type { EndpointContext } from './agents/bind.js'
import type { Endpoint } from './core/endpoint.js'
import type { SessionDirectory } from './core/session.js'
import { LoginThrottle } from './identity/login-throttle.js'
import { ApiServer } from './api/server.js'
import { HttpEdge } from './edge/http-edge.js'
import { TcpEdge } from './edge/tcp-edge.js'
import { TlsEdge } from './edge/tls-edge.js'
import { CertStore } from './certs/cert-store.js'
import { loadOrCreateSecret } from './certs/key-files.js'
import { PortholeError } from './core/errors.js'
import { policyLogChannel, type PolicyLogRecord } from './policy/actions/vars-and-log.js'
import { policyErrorChannel } from './policy/compile.js'
import type { RuleError } from './policy/compiled.js'
import { outboundChannel, type OutboundFailure } from './policy/outbound.js'
import { channel as diagnosticsChannel } from 'node:diagnostics_channel'
import { createReplaySecret } from './inspect/capture.js'
import { requestCompleteEvent } from './inspect/event.js'
import type { CapturedRequest, InspectStore, Replay } from './inspect/record.js'
import { createReplay } from './inspect/replay.js'
import { createInspector } from './inspect/server.js'
import { INSPECT_REQUEST_CHANNEL, MemoryInspectStore } from './inspect/store.js'
import { startEvents, type EventPipeline, type EventsOptions } from './observe/event-sinks.js'
import { createMetrics, type GatewayMetrics } from './observe/metrics.js'
import { metricsHandler, startMetricsServer } from './observe/metrics-http.js'

export interface RunningGateway {
  readonly config: ServerConfig
  readonly registry: Registry
  readonly sshPort: number
  readonly httpPort: number
  readonly httpsPort: number
  /** The admin API's port; null when --api-addr is off. */
  readonly apiPort: number | null
  /** Where ngrok agents connect; null when --agent-addr is off. */
  readonly agentPort: number | null
  /** The local CA's certificate (PEM): what clients trust to verify https endpoints. */
  readonly caPem: string
  readonly ssh: SshAgent
  readonly ngrok: NgrokAgent | null
  /** Every transport's live sessions (what the admin API lists and kills). */
  readonly sessions: SessionDirectory
  /** The HTTP edge (its per-endpoint pool counters are what tests look at). */
  readonly edge: HttpEdge
  readonly identity: Identity
  /**
   * Captured requests per owner and their replay (the inspector reads these). With --inspect=false the store
   * stays empty: the edge captures nothing.
   */
  readonly inspect: { readonly store: InspectStore, readonly replay: Replay }
  /** The event sinks (--events-*) and their counters; null when none is configured. */
  readonly events: EventPipeline | null
  /** Prometheus metrics (its `registry` takes other modules' metrics too); served at /metrics. */
  readonly metrics: GatewayMetrics
  /** The --metrics-addr listener's port; null when off. */
  readonly metricsPort: number | null
  close (): Promise<void>
}

/** Parts made outside: a store and replay for the inspector to serve instead of the gateway's own (tests of the
 *  inspector alone fill a store of their own). */
export interface GatewayParts {
  readonly inspect?: { readonly store: InspectStore, readonly replay: Replay }
  /** Webhook tuning, the file cap and the close deadline for the event sinks (tests). */
  readonly events?: Pick<EventsOptions, 'webhook' | 'closeWaitMs' | 'fileMaxBytes'>
  /** How often the HTTP edge looks for idle upstream pools to release (tests; default 30 s). */
  readonly poolSweepMs?: number
}

export async function startGateway (config: ServerConfig, log: Logger, parts: GatewayParts = {}): Promise<RunningGateway> {
  const dataDir = resolve(config.dataDir)
  // What has started so far, stopped in reverse when a later step fails (close() stops the running gateway).
  const started: Array<() => unknown> = []
  const failed = async (error: unknown): Promise<never> => {
    for (const stop of started.reverse()) await stop()
    throw error
  }
  // First, so that an unwritable --events-file refuses the start before anything listens.
  const events = startEvents({ log, logEvents: config.eventsLog, file: config.eventsFile, webhooks: config.eventsWebhook, webhookSecret: config.eventsWebhookSecret, types: config.eventsTypes, ...parts.events })
  if (events) started.push(() => events.close())
  const hostKeys = loadHostKeys(dataDir)
  const identityStore = new FileIdentityStore(dataDir, (error) => log.error({ err: error.message }, 'identity store unreadable; keeping the last good copy, refusing changes'))
  const identity = new Identity(identityStore, { domain: config.domain, tcpPorts: config.tcpPorts })
  const sessionSecret = loadSessionSecret(join(dataDir, 'session-secret'))
  const names = new NameStore(dataDir, (error) => log.error({ err: error.message }, 'could not save name holds; they are kept in memory'))
  const registry = new Registry({
    domain: config.domain,
    graceMs: config.nameGraceMs,
    anonymousGraceMs: config.anonymousNameGraceMs,
    maxHolds: config.maxHolds,
    maxAnonymousHolds: config.maxAnonymousHolds,
    maxHoldsPerOwner: config.maxHoldsPerOwner,
    // Batched: the store reads the holds once per write, not a copy of all of them per change.
    onHoldsDirty: () => names.save(() => registry.holdValues()),
    reservedAgainst: (key, account) => identity.reservedAgainst(key, account),
    reservedFor: (key, account) => identity.reservedFor(key, account),
    reservedBelow: (key, account) => identity.reservedBelow(key, account),
  })
  registry.restore(names.load())
  // Reservations made while names were taken (or while the gateway was down) win over those names.
  registry.enforceReservations()
  identity.onChange(() => registry.enforceReservations())
  const authorizedKeys = new AuthorizedKeys(config.authorizedKeys, (message) => log.warn(message))
  const certs = createCertStore(config, dataDir, log.child({ component: 'certs' }))
  started.push(() => certs.close())

  // Capture (issue 11): one store for the gateway, bounded per owner and in all; the replay mark's secret lives
  // only in this process, so nobody outside can make a request pass for a replay.
  const inspectStore = new MemoryInspectStore({ maxTotalBytes: config.inspectMemoryMib * 1024 * 1024, maxOwners: config.inspectMaxOwners })
  const replaySecret = createReplaySecret()
  const edge = new HttpEdge({
    ...(config.inspect ? { inspect: { store: inspectStore, replaySecret } } : {}),
    registry,
    log: log.child({ component: 'edge' }),
    acmeChallenge: certs.acme ? (token) => certs.acmeChallenge(token) : undefined,
    maxRequestHeaderSize: config.maxRequestHeaderSize,
    maxResponseHeaderSize: config.maxResponseHeaderSize,
    idleTimeoutMs: config.idleTimeoutMs,
    headerTimeoutMs: config.headerTimeoutMs,
    upstreamTimeoutMs: config.upstreamTimeoutMs,
    upstreamConnections: config.upstreamConnections,
    fastH1: config.fastH1,
    ...(parts.poolSweepMs !== undefined ? { poolSweepMs: parts.poolSweepMs } : {}),
  })
  const http = await edge.listen(config.httpAddr.host, config.httpAddr.port).catch(failed)
  started.push(() => edge.close())
  // TCP endpoints listen on the public HTTP interface.
  const tcp = new TcpEdge({ registry, host: config.httpAddr.host, log: log.child({ component: 'tcp' }) })
  // ngrok agents may dial the HTTPS port as well as --agent-addr: SNI names the gateway, not an endpoint.
  let ngrok: NgrokAgent | null = null
  const agentNames = new Set([config.domain, `connect.${config.domain}`])
  const tls = new TlsEdge({
    registry, certs, http: edge, log: log.child({ component: 'tls' }), headerTimeoutMs: config.headerTimeoutMs, idleTimeoutMs: config.idleTimeoutMs,
    agents: { names: agentNames, accept: (socket) => (ngrok ? ngrok.accept(socket) : socket.destroy()) },
  })
  const https = await tls.listen(config.httpsAddr.host, config.httpsAddr.port).catch(failed)
  started.push(() => tls.close())
  edge.httpsPort = https.port
  const replay = createReplay({ httpPort: http.port, httpsPort: https.port, secret: replaySecret, timeoutMs: config.upstreamTimeoutMs })

  // Asked at each login: an account key or token created at run time turns anonymous access off.
  const anonymous = (): boolean => config.allowAnonymous || (config.anonymous && !identity.hasCredentials)
  // One throttle for every transport: wrong authtokens over SSH and over the ngrok protocol add up per source.
  const throttle = new LoginThrottle()
  // One count of live sessions for both transports: a login's check is O(1) (session-budget.ts).
  const sessionCounts = new SessionCounts()
  const budgets = {
    maxSessions: config.maxSessions,
    maxAnonymousSessions: config.maxAnonymousSessions,
    maxAnonymousSessionsPerSource: config.maxAnonymousSessionsPerSource,
    maxSessionsPerKey: config.maxSessionsPerKey,
  }
  const urlsFor = (endpoint: Endpoint): string[] => {
    const { proto, schemes } = endpoint.spec
    if (proto === 'tcp') return [`tcp://${config.tcpHost}:${endpoint.port}`]
    if (proto === 'tls') return [`tls://${endpoint.host}${https.port === 443 ? '' : `:${https.port}`}`]
    return [...(schemes.https ? [edge.urlFor(endpoint.host, 'https')] : []), ...(schemes.http ? [edge.urlFor(endpoint.host, 'http')] : [])]
  }
  // The seam: a transport binds (spec, dialer, owner) in the registry, then the edge for its proto attaches.
  const endpoints: EndpointContext = {
    registry,
    attach: (endpoint, compiled) => {
      if (endpoint.spec.proto === 'tcp') return tcp.attach(endpoint, compiled)
      if (endpoint.spec.proto === 'tls') return tls.attach(endpoint, compiled)
      return edge.attach(endpoint, compiled)
    },
    compile: { sessionSecret, oauthProviders: config.oauthProviders, allowPrivateUrls: config.policyPrivateUrls, baseDomain: config.domain },
    urlsFor,
    tcpPorts: config.tcpPorts,
    tcpHosts: [config.tcpHost, config.domain],
  }
  // The inspector every SSH session reaches with -L ...:localhost:4040 (its owner's requests only).
  // With --inspect=false there is nothing to show: -L to 4040 is refused (PH_5034).
  const inspected = parts.inspect ?? (config.inspect ? { store: inspectStore, replay } : null)
  const inspector = inspected ? createInspector({ ...inspected, log: log.child({ component: 'inspector' }) }) : null
  const ssh = new SshAgent({
    hostKeys,
    legacyAlgorithms: config.sshLegacyAlgorithms,
    authorizedKeys,
    identity,
    anonymous,
    throttle,
    keepaliveIntervalMs: config.keepaliveIntervalMs,
    keepaliveCountMax: config.keepaliveCountMax,
    ...budgets,
    counts: sessionCounts,
    startups: { ...config.maxStartups, perSource: config.perSourceMaxStartups },
    loginTimeoutMs: config.loginTimeoutMs,
    log: log.child({ component: 'ssh' }),
    connection: {
      ...endpoints,
      maxForwards: config.maxForwardsPerSession,
      maxChannels: config.maxStreamsPerSession,
      defaultAllocatedPort: http.port,
      commandWaitMs: config.commandWaitMs,
      settleMs: config.sessionSettleMs,
      inspector,
      inspectorPort: inspector ? 4040 : null,
    },
  })
  if (config.agentAddr) {
    const own = certs.issue(config.domain)
    ngrok = new NgrokAgent({
      identity,
      anonymous,
      throttle,
      secureContext: (name) => certs.contextFor(name, name),
      defaultCert: { key: own.keyPem, cert: own.certPem },
      serverNames: [...agentNames],
      startups: { ...config.maxStartups, perSource: config.perSourceMaxStartups },
      budgets,
      counts: sessionCounts,
      log: log.child({ component: 'ngrok' }),
      session: {
        ...endpoints,
        maxTunnels: config.maxForwardsPerSession,
        // ngrok-rust accepts at most 512 streams at once (its session dies past that); RPCs and heartbeat need some:
        // a protocol limit of the agent, so max-streams-per-session can lower it but not raise it.
        maxStreams: Math.min(config.maxStreamsPerSession, NGROK_MAX_STREAMS),
        loginTimeoutMs: config.loginTimeoutMs,
        heartbeatIntervalMs: config.keepaliveIntervalMs,
        heartbeatToleranceMs: config.keepaliveIntervalMs * config.keepaliveCountMax,
      },
    })
  }
  const sessions: SessionDirectory = {
    sessions: () => [...ssh.sessions(), ...(ngrok?.sessions() ?? [])],
    kill: async (id) => (await ssh.kill(id)) || ((await ngrok?.kill(id)) ?? false),
  }
  // Metrics (observe/metrics.ts): GET /metrics and /healthz on the admin API's listener and --metrics-addr, no API key.
  let shuttingDown = false
  let metricsFailed = false
  const metrics = createMetrics({
    sessions, endpoints: registry, certificates: () => certs.expiries(), throttledSources: () => throttle.throttledSources(),
    onError: (error) => { if (!metricsFailed) log.warn({ err: (error as Error)?.message }, 'a metric could not be updated (said once)'); metricsFailed = true },
  })
  started.push(() => metrics.close())
  events?.register(metrics.registry)
  const metricsPaths = metricsHandler(metrics, () => shuttingDown)
  const sshAddress = await ssh.listen(config.sshAddr.host, config.sshAddr.port).catch(failed)
  started.push(() => ssh.close())
  const agentAddress = ngrok && config.agentAddr ? await ngrok.listen(config.agentAddr.host, config.agentAddr.port).catch(failed) : null
  started.push(() => ngrok?.close())
  // The admin API, on its own listener; it shows every transport's live sessions.
  // An endpoint's captured requests, for operators: the live endpoint's owner's records that came through it.
  const endpointRequests = (endpointId: string): CapturedRequest[] | undefined => {
    const endpoint = registry.endpoints().find((e) => e.id === endpointId)
    return endpoint === undefined ? undefined : inspectStore.list(endpoint.owner.id).filter((r) => r.endpointId === endpointId)
  }
  const api = config.apiAddr ? new ApiServer({ identity, sessions, requests: endpointRequests, log: log.child({ component: 'api' }), headersTimeoutMs: config.headerTimeoutMs, open: metricsPaths }) : null
  const apiAddress = api && config.apiAddr ? await api.listen(config.apiAddr.host, config.apiAddr.port).catch(failed) : null
  started.push(() => api?.close())
  const metricsServer = config.metricsAddr ? await startMetricsServer(metricsPaths, config.metricsAddr.host, config.metricsAddr.port, config.headerTimeoutMs).catch(failed) : null
  if (config.apiAddr && !isLoopback(config.apiAddr.host)) {
    log.warn({ api: `${config.apiAddr.host}:${config.apiAddr.port}` }, 'the admin API listens off loopback over plain HTTP: API keys cross the network in clear; put TLS in front of it')
  }
  log.info({
    ssh: `${sshAddress.address}:${sshAddress.port}`,
    http: `${http.address}:${http.port}`,
    https: `${https.address}:${https.port}`,
    api: apiAddress ? `${apiAddress.address}:${apiAddress.port}` : 'off',
    agents: agentAddress ? `${agentAddress.address}:${agentAddress.port}` : 'off',
    metrics: metricsServer ? `${metricsServer.address.address}:${metricsServer.address.port}` : 'off',
    domain: config.domain,
    anonymous: anonymous(),
    // Every credential that can log in: --authorized-keys keys and account keys, and authtokens.
    keys: authorizedKeys.size + identity.listKeys().length,
    tokens: identity.listTokens().length,
  }, 'porthole gateway listening')
  // The first account key or authtoken (`porthole keys add`, `tokens create`) ends anonymous access at run time.
  let anonymousNow = anonymous()
  identity.onChange(() => {
    const was = anonymousNow
    anonymousNow = anonymous()
    if (was && !anonymousNow) log.warn({ keys: identity.listKeys().length, tokens: identity.listTokens().length }, 'anonymous access ended: the first account key or authtoken was added; unknown SSH keys and ngrok authtokens are refused now')
    else if (!was && anonymousNow) log.warn('anonymous access is on again: no account key or authtoken is left')
  })

  // Traffic policy `log` actions publish on a diagnostics channel; their records go to this log.
  const policyLog = log.child({ component: 'policy' })
  const onPolicyLog = (message: unknown): void => {
    const record = message as PolicyLogRecord
    policyLog.info({ endpoint: record.endpoint, phase: record.phase, metadata: record.metadata }, 'policy log')
  }
  policyLogChannel.subscribe(onPolicyLog)
  // Why a policy's own request (JWKS, OpenID provider) failed: visitors only see "unreachable".
  const onOutbound = (message: unknown): void => {
    const failure = message as OutboundFailure
    policyLog.warn({ url: failure.url, reason: failure.reason }, 'policy outbound request failed')
  }
  outboundChannel.subscribe(onOutbound)
  // A rule's expression that failed at run time (once per rule; the session's terminal hears it too).
  const onPolicyError = (message: unknown): void => {
    const error = message as RuleError
    policyLog.warn({ endpoint: error.endpoint, where: error.where, expression: error.expression, reason: error.reason, applied: error.applied }, 'policy expression failed')
  }
  policyErrorChannel.subscribe(onPolicyError)
  // One ngrok-shaped http_request_complete.v0 event per captured request, at debug level (nothing is built otherwise).
  const requestLog = log.child({ component: 'inspect' })
  const requestChannel = diagnosticsChannel(INSPECT_REQUEST_CHANNEL)
  const onRequestComplete = (message: unknown): void => {
    requestLog.debug({ event: requestCompleteEvent(message as CapturedRequest) }, 'http request complete')
  }
  const logRequests = config.inspect && requestLog.isLevelEnabled('debug')
  if (logRequests) requestChannel.subscribe(onRequestComplete)

  let closing: Promise<void> | null = null
  return {
    config,
    registry,
    ssh,
    ngrok,
    sessions,
    edge,
    identity,
    inspect: { store: inspectStore, replay },
    events,
    metrics,
    metricsPort: metricsServer?.address.port ?? null,
    sshPort: sshAddress.port,
    httpPort: http.port,
    httpsPort: https.port,
    apiPort: apiAddress?.port ?? null,
    agentPort: agentAddress?.port ?? null,
    caPem: certs.caPem,
    close () {
      closing ??= (async () => {
        shuttingDown = true // /healthz answers 503 on --metrics-addr until the end
        await api?.close()
        await ngrok?.close()
        await ssh.close()
        inspector?.close()
        policyLogChannel.unsubscribe(onPolicyLog)
        outboundChannel.unsubscribe(onOutbound)
        policyErrorChannel.unsubscribe(onPolicyError)
        if (logRequests) requestChannel.unsubscribe(onRequestComplete)
        for (const endpoint of registry.endpoints()) registry.unbind(endpoint)
        tcp.close()
        await Promise.all([edge.close(), tls.close()])
        await events?.close()
        certs.close()
        await names.flush()
        await identity.store.close()
        metrics.close()
        await metricsServer?.close()
      })()
      return closing
    },
  }
}

function loadSessionSecret (path: string): Buffer {
  try {
    return loadOrCreateSecret(path)
  } catch (error) {
    throw new PortholeError('PH_2002', `session secret ${path}: ${(error as Error).message}`)
  }
}

/** Local CA, plus --certs-dir and ACME when configured; certificate warnings are logged with their code. */
function createCertStore (config: ServerConfig, dataDir: string, log: Logger): CertStore {
  let caPem: string | undefined
  if (config.acmeCaFile !== undefined) {
    try {
      caPem = readFileSync(config.acmeCaFile, 'utf8')
    } catch (error) {
      throw new PortholeError('PH_2002', `--acme-ca-file ${config.acmeCaFile}: ${(error as Error).message}`)
    }
  }
  return new CertStore({
    dataDir,
    log,
    report: (code, detail, fields) => log.warn(fields ?? {}, new PortholeError(code, detail).toLine()),
    certsDir: config.certsDir === undefined ? undefined : resolve(config.certsDir),
    acme: config.acmeDirectory && config.acmeEmail ? { directoryUrl: config.acmeDirectory, email: config.acmeEmail, caPem } : undefined,
  })
}
