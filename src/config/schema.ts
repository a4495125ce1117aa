// The one ServerConfig: a strict zod schema with the embedded defaults. Validated once at start, frozen and
// passed down; no other module reads env, flags or files for settings.
import { isIP } from 'node:net'
import { totalmem } from 'node:os'
import { z } from 'zod'
import { EVENT_TYPES, type EventType } from '../observe/event-shapes.js'
import { OAUTH_PROVIDERS } from '../policy/login/oauth-providers.js'

const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):(\d{1,5})$/

export interface ListenAddress { host: string, port: number }

export function parseAddress (text: string): ListenAddress | null {
  const match = HOST_PORT.exec(text)
  if (!match) return null
  const port = Number(match[2])
  if (port > 65535) return null
  const host = match[1]!.replace(/^\[|\]$/g, '')
  return { host: host === '' ? '0.0.0.0' : host, port }
}

const address = z.string().transform((text, ctx) => {
  const parsed = parseAddress(text)
  if (!parsed) {
    ctx.addIssue({ code: 'custom', message: `want host:port, got ${JSON.stringify(text)}` })
    return z.NEVER
  }
  return parsed
})

/** A listener that can be turned off: `off` -> null. */
const optionalAddress = z.string().transform((text, ctx) => {
  if (text === 'off') return null
  const parsed = parseAddress(text)
  if (!parsed) {
    ctx.addIssue({ code: 'custom', message: `want host:port or off, got ${JSON.stringify(text)}` })
    return z.NEVER
  }
  return parsed
})

const portRange = z.string().transform((text, ctx) => {
  const match = /^(\d{1,5})-(\d{1,5})$/.exec(text)
  const lo = match ? Number(match[1]) : NaN
  const hi = match ? Number(match[2]) : NaN
  if (!match || lo < 1 || hi > 65535 || lo > hi) {
    ctx.addIssue({ code: 'custom', message: `want LO-HI within 1-65535, got ${JSON.stringify(text)}` })
    return z.NEVER
  }
  return { lo, hi }
})

/** A whole number >= 1: a number in YAML, text in env and flags. */
const count = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const n = typeof value === 'number' ? value : /^\d{1,7}$/.test(value) ? Number(value) : NaN
  if (!Number.isInteger(n) || n < 1 || n > 1_000_000) {
    ctx.addIssue({ code: 'custom', message: `want a whole number from 1 to 1000000, got ${JSON.stringify(value)}` })
    return z.NEVER
  }
  return n
})

/** A session budget: a whole number, or `auto` (sized from the machine's memory in finishConfig). */
const sessionCount = z.union([z.number(), z.string()]).transform((value, ctx): number | 'auto' => {
  if (value === 'auto') return value
  const n = typeof value === 'number' ? value : /^\d{1,7}$/.test(value) ? Number(value) : NaN
  if (!Number.isInteger(n) || n < 1 || n > 1_000_000) {
    ctx.addIssue({ code: 'custom', message: `want auto or a whole number from 1 to 1000000, got ${JSON.stringify(value)}` })
    return z.NEVER
  }
  return n
})

/** A byte size (header limits): a whole number from 1 KiB to 1 MiB. */
const headerBytes = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const n = typeof value === 'number' ? value : /^\d{1,7}$/.test(value) ? Number(value) : NaN
  if (!Number.isInteger(n) || n < 1024 || n > 1_048_576) {
    ctx.addIssue({ code: 'custom', message: `want a number of bytes from 1024 to 1048576, got ${JSON.stringify(value)}` })
    return z.NEVER
  }
  return n
})

const positiveDuration = z.string().regex(/^[1-9]\d*(ms|s|m|h)$/, 'want a duration above zero such as 30s')

const duration = z.string().regex(/^\d+(ms|s|m|h|d)$/, 'want a duration such as 24h or 30m')

/** OpenSSH's MaxStartups: `start:rate:full` (or one number: start = full). */
export interface Startups { readonly start: number, readonly rate: number, readonly full: number }

const startups = z.union([z.number().transform(String), z.string()]).transform((text, ctx): Startups => {
  const match = /^(\d{1,7})(?::(\d{1,3}):(\d{1,7}))?$/.exec(text)
  const start = match ? Number(match[1]) : NaN
  const rate = match?.[2] !== undefined ? Number(match[2]) : 100
  const full = match?.[3] !== undefined ? Number(match[3]) : start
  if (!match || start < 1 || rate > 100 || full < start) {
    ctx.addIssue({ code: 'custom', message: `want start:rate:full with 1 <= start <= full and rate <= 100 (as OpenSSH's MaxStartups), got ${JSON.stringify(text)}` })
    return z.NEVER
  }
  return { start, rate, full }
})

const domain = z.string().toLowerCase().regex(/^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$/, 'want a DNS name such as example.com')

/** Event types to emit: a comma list (or a YAML list) of ngrok's names; unknown names are refused. */
const eventTypes = z.union([z.string(), z.array(z.string())]).transform((value, ctx): EventType[] => {
  const names = (typeof value === 'string' ? value.split(',') : value).map((s) => s.trim()).filter(Boolean)
  const unknown = names.filter((n) => !(EVENT_TYPES as readonly string[]).includes(n))
  if (unknown.length > 0 || names.length === 0) {
    ctx.addIssue({ code: 'custom', message: `${unknown.length > 0 ? `unknown event type ${unknown.map((n) => JSON.stringify(n)).join(', ')}` : 'no event type given'} (known: ${EVENT_TYPES.join(', ')})` })
    return z.NEVER
  }
  return [...new Set(names)] as EventType[]
})

/** Settings users set (flags, env PORTHOLE_*, YAML keys in kebab-case). */
export const configSchema = z.strictObject({
  /** The base domain: endpoint names are `<name>.<domain>`; point `*.<domain>` and `<domain>` at the gateway. */
  domain: domain.default('localhost'),
  /** The SSH listener agents connect to (`ssh -R`); host:port, an empty host meaning every interface. */
  sshAddr: address.prefault('127.0.0.1:2222'),
  /** The plain HTTP listener: http endpoints, ACME HTTP-01 challenges (must be reachable on port 80 for ACME). */
  httpAddr: address.prefault('127.0.0.1:8080'),
  /** The HTTPS listener: https endpoints and TLS passthrough, routed by SNI; ngrok agents may connect here too. */
  httpsAddr: address.prefault('127.0.0.1:8443'),
  /** The admin REST API (authenticated by API keys); `off` disables it. */
  apiAddr: optionalAddress.prefault('127.0.0.1:4040'),
  /** Where ngrok agents (the @ngrok/ngrok SDKs, ngrok-go) connect: TLS + muxado; `off` disables it. */
  agentAddr: optionalAddress.prefault('127.0.0.1:4443'),
  /** The pool of ports for tcp endpoints (LO-HI), opened on the HTTP listener's interface. */
  tcpPorts: portRange.prefault('20000-20999'),
  /** The host printed in tcp:// URLs; default: the domain. */
  tcpHost: z.string().min(1).optional(),
  /** Host keys, the identity store (accounts, keys, tokens, reservations), held names, certificates, the local CA. */
  dataDir: z.string().min(1).default('./keys'),
  /** OpenSSH authorized_keys files whose keys may log in; re-read when they change. Repeatable. */
  authorizedKeys: z.array(z.string().min(1)).default([]),
  /** Accept any SSH key or authtoken even on public listeners. Without it, a public listener needs keys. */
  allowAnonymous: z.boolean().default(false),
  /** The log's level (JSON lines on stdout). */
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** How long a name stays with its owner after the endpoint goes away. */
  nameGrace: duration.default('24h'),
  /** The same for names of anonymous owners (keys the gateway does not know): shorter, they are strangers. */
  anonymousNameGrace: duration.default('1h'),
  /** Names held (bound or in grace) by known owners; past it new names are refused, nobody's are evicted. */
  maxHolds: count.prefault(10_000),
  /** Names held by anonymous owners, a budget of their own: past it their oldest offline name is let go. */
  maxAnonymousHolds: count.prefault(2_000),
  /** Names one key, authtoken or account holds (bound or in grace); past it its oldest offline name is let go,
   *  and a new name is refused with PH_1035 while all of them are online. */
  maxHoldsPerOwner: count.prefault(100),
  /** SSH connections not yet logged in: random early drop from `start`, all dropped at `full` (OpenSSH MaxStartups). */
  maxStartups: startups.prefault('50:30:200'),
  /** SSH connections not yet logged in from one source address (IPv6: one /64); more are refused. */
  perSourceMaxStartups: count.prefault(20),
  /** How long an SSH connection has to log in (OpenSSH LoginGraceTime, there 120s). */
  loginGraceTime: duration.default('30s'),
  /** Agent sessions (SSH and ngrok) of known keys (accounts, authtokens, authorized_keys); past it a login is
   *  refused with PH_1053. `auto`: half the machine's memory at 256 KiB a session (an idle session with its
   *  http tunnel measures 60 KiB: node bench/session-cost.js; the rest is room for a busy one's buffers), at least 1000:
   *  max(1000, floor(os.totalmem() / 2 / 262144)), e.g. 16384 with 8 GiB. */
  maxSessions: sessionCount.prefault('auto'),
  /** Agent sessions of anonymous clients, a budget apart so that strangers cannot take known users' places
   *  (PH_1054). `auto`: half of max-sessions' `auto`. */
  maxAnonymousSessions: sessionCount.prefault('auto'),
  /** Anonymous agent sessions from one source address (IPv6: one /64): PH_1055. */
  maxAnonymousSessionsPerSource: count.prefault(20),
  /** Agent sessions of one key, authtoken or account at once (a fleet sharing one key needs more): PH_1056. */
  maxSessionsPerKey: count.prefault(100),
  /** Forwards (`-R`, ngrok tunnels) one agent session may hold; the one past it is refused with PH_1018. */
  maxForwardsPerSession: count.prefault(16),
  /** Streams (public connections and requests in flight) one agent session carries at once; past it a visitor
   *  gets a 502 (PH_3002). ngrok agents: at most 480 whatever this says (ngrok-rust accepts 512 streams). */
  maxStreamsPerSession: count.prefault(1024),
  /** Server pings to an idle agent (SSH keepalive@openssh.com, ngrok heartbeat) this often (OpenSSH ClientAliveInterval). */
  keepaliveInterval: positiveDuration.default('15s'),
  /** Unanswered pings in a row after which an agent session is closed (OpenSSH ClientAliveCountMax). */
  keepaliveCountMax: count.prefault(3),
  /** How long SSH forwards wait for the session's command (exec/shell) and for stdin the command reads;
   *  then they are refused (PH_1022). Raise it for clients on slow links. */
  commandWait: positiveDuration.default('10s'),
  /** HTTP edge: how long it waits for an agent's upstream response headers, and between body chunks. */
  upstreamTimeout: positiveDuration.default('5m'),
  /** HTTP edge: connections (tunnel streams) kept and opened at once per endpoint towards its agent; more
   *  requests at once wait in its queue. */
  upstreamConnections: count.prefault(128),
  /** HTTP edge: largest request head (request line and headers) a visitor may send, in bytes; larger: 431. */
  maxRequestHeaderSize: headerBytes.prefault(16_384),
  /** HTTP edge: largest response head an upstream may send back, in bytes; larger: 502. */
  maxResponseHeaderSize: headerBytes.prefault(32_768),
  /** Bring-your-own certificates: a directory of <host>.crt/<host>.key pairs, watched. */
  certsDir: z.string().min(1).optional(),
  /** ACME: order certificates for bound names from this CA's directory URL (HTTP-01 on the HTTP listener).
   *  Needs acme-email. Let's Encrypt: https://acme-v02.api.letsencrypt.org/directory */
  acmeDirectory: z.url({ protocol: /^https$/, error: 'want the https URL of an ACME directory' }).optional(),
  /** The ACME account's contact address (using it, you agree to the CA's terms). Needs acme-directory. */
  acmeEmail: z.email({ error: 'want an email address' }).optional(),
  /** A PEM file of CA certificates to trust for the ACME server's HTTPS (a test CA such as pebble). */
  acmeCaFile: z.string().min(1).optional(),
  /** Where the `oauth` action finds a provider when not at its public service: GitHub Enterprise, a
   *  self-hosted GitLab. Per provider, any of authorize-url, token-url, userinfo-url (github: emails-url). */
  oauthProviders: z.partialRecord(z.enum(OAUTH_PROVIDERS), z.strictObject({
    'authorize-url': z.url({ protocol: /^https?$/ }).optional(),
    'token-url': z.url({ protocol: /^https?$/ }).optional(),
    'userinfo-url': z.url({ protocol: /^https?$/ }).optional(),
    'emails-url': z.url({ protocol: /^https?$/ }).optional(),
  })).optional(),
  /** Every listener (HTTP, HTTPS h1/h2, TLS ClientHello, admin API): a request's headers must be complete this
   *  long after they started (a new connection: after it opened), or the connection is closed. */
  headerTimeout: z.string().regex(/^[1-9]\d*(ms|s|m)$/, 'want a duration above zero such as 10s').default('10s'),
  /** HTTP edge (HTTP/1.1 keep-alive, HTTP/2 sessions and streams): a connection with no request in progress, or a
   *  request that moves no byte either way, is closed after this long. HTTP/2 PING, SETTINGS and WINDOW_UPDATE
   *  frames do not count as activity. */
  idleTimeout: z.string().regex(/^[1-9]\d*(ms|s|m|h)$/, 'want a duration above zero such as 5m').default('5m'),
  /** Let URLs in users' policies (jwt-validation key sets, OpenID issuers) reach loopback and private addresses. */
  policyPrivateUrls: z.boolean().default(false),
  /** Offer ssh-rsa (SHA-1) host-key signatures, diffie-hellman-group14-sha1 and encrypt-and-MAC MACs, for
   *  Dropbear 2016.74-2019.78 on routers (src/agents/ssh/algorithms.ts says why); false: modern set only. */
  sshLegacyAlgorithms: z.boolean().default(true),
  /** Capture every HTTP request (heads and the first 64 KiB of each body) for the owners' inspectors and the
   *  admin API; false: nothing is captured for any endpoint, whatever the endpoint's --inspect. */
  inspect: z.boolean().default(true),
  /** The HTTP/1.1 fast path (src/edge/fast-h1.ts), plain HTTP and HTTPS: requests to endpoints with no policy or
   *  module are relayed (and captured) without node's HTTP server and undici, for less CPU per request. HTTP/1.1
   *  only (HTTP/2 takes the usual path); a pipelined request ends its connection. false: every request takes the usual path. */
  fastH1: z.boolean().default(true),
  /** Memory for captured requests in all, in MiB (each owner keeps at most 500 records and 8 MiB; past the total,
   *  the least recently active owner's records go first). */
  inspectMemoryMib: count.prefault(256),
  /** Owners whose captured requests are kept; past it the least recently active owner's records go first. */
  inspectMaxOwners: count.prefault(1000),
  // Events in ngrok's shapes (src/observe/event-sinks.ts), to the log and to the operator's sinks.
  /** One info line per event in the gateway's log (component events). */
  eventsLog: z.boolean().default(false),
  /** Events appended as JSON lines to this file; at 100 MiB it is renamed to FILE.1 and a new one begun. */
  eventsFile: z.string().min(1).optional(),
  /** Events POSTed as JSON batches ({"events":[...]}) to these URLs, with retries and a bounded queue. */
  eventsWebhook: z.array(z.url({ protocol: /^https?$/, error: 'want an http or https URL' })).default([]),
  /** Signs each webhook body: X-Porthole-Signature: sha256=<HMAC-SHA256 of the body with this secret, hex>. */
  eventsWebhookSecret: z.string().min(16, 'want a secret of at least 16 characters').optional(),
  /** Which event types (default all): http_request_complete.v0, tcp_connection_closed.v0, agent_session_start.v0,
   *  agent_session_stop.v0. */
  eventsTypes: eventTypes.optional(),
  /** GET /metrics and /healthz on a listener of their own (they are on the admin API's listener too); `off`: none. */
  metricsAddr: optionalAddress.prefault('off'),
}).superRefine((settings, ctx) => {
  if (settings.eventsWebhookSecret !== undefined && settings.eventsWebhook.length === 0) {
    ctx.addIssue({ code: 'custom', path: ['eventsWebhookSecret'], message: 'only used with --events-webhook' })
  }
  if ((settings.acmeDirectory === undefined) !== (settings.acmeEmail === undefined)) {
    const missing = settings.acmeDirectory === undefined ? 'acmeDirectory' : 'acmeEmail'
    ctx.addIssue({ code: 'custom', path: [missing], message: 'ACME needs both --acme-directory and --acme-email' })
  }
  if (settings.acmeCaFile !== undefined && settings.acmeDirectory === undefined) {
    ctx.addIssue({ code: 'custom', path: ['acmeCaFile'], message: 'only used with --acme-directory' })
  }
})

export type ConfigInput = z.input<typeof configSchema>
type Parsed = z.output<typeof configSchema>

type Resolved = 'tcpHost' | 'nameGrace' | 'anonymousNameGrace' | 'loginGraceTime' | 'headerTimeout' | 'idleTimeout' | 'maxSessions' |
  'maxAnonymousSessions' | 'keepaliveInterval' | 'commandWait' | 'upstreamTimeout'

export interface ServerConfig extends Omit<Parsed, Resolved> {
  readonly tcpHost: string
  readonly nameGraceMs: number
  readonly anonymousNameGraceMs: number
  readonly headerTimeoutMs: number
  readonly idleTimeoutMs: number
  readonly maxSessions: number
  readonly maxAnonymousSessions: number
  /** Anonymous clients: allowed with --allow-anonymous, or when every listener is on loopback and no keys are configured. */
  readonly anonymous: boolean
  /** Server-side liveness pings. */
  readonly keepaliveIntervalMs: number
  /** An SSH connection must have logged in this long after it opened. */
  readonly loginTimeoutMs: number
  /** How long the edge waits for upstream response headers, and between body chunks. */
  readonly upstreamTimeoutMs: number
  /** SSH: how long forwards wait for an open session's command (exec/shell), and for stdin the command reads. */
  readonly commandWaitMs: number
  /** SSH: how long forwards of a client with no session channel wait before binding with defaults (Dropbear -N). */
  readonly sessionSettleMs: number
}

/** Memory one session is budgeted at when max-sessions is `auto` (see its doc comment). */
export const SESSION_BUDGET_BYTES = 256 * 1024

/** max-sessions `auto`: half the memory at SESSION_BUDGET_BYTES a session, at least 1000. */
export function autoMaxSessions (totalMemBytes: number = totalmem()): number {
  return Math.min(1_000_000, Math.max(1000, Math.floor(totalMemBytes / 2 / SESSION_BUDGET_BYTES)))
}

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const

export function durationMs (text: string): number {
  const match = /^(\d+)(ms|s|m|h|d)$/.exec(text)!
  return Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS]
}

export function isLoopback (host: string): boolean {
  if (host === 'localhost') return true
  if (isIP(host) === 4) return host.startsWith('127.')
  return host === '::1'
}

export function finishConfig (parsed: Parsed): ServerConfig {
  const loopbackOnly = [parsed.sshAddr, parsed.httpAddr, parsed.httpsAddr, ...(parsed.agentAddr ? [parsed.agentAddr] : [])].every((a) => isLoopback(a.host))
  const { nameGrace, anonymousNameGrace, loginGraceTime, headerTimeout, idleTimeout, keepaliveInterval, commandWait, upstreamTimeout, ...rest } = parsed
  const auto = autoMaxSessions()
  return Object.freeze({
    ...rest,
    maxSessions: parsed.maxSessions === 'auto' ? auto : parsed.maxSessions,
    maxAnonymousSessions: parsed.maxAnonymousSessions === 'auto' ? Math.floor(auto / 2) : parsed.maxAnonymousSessions,
    tcpHost: parsed.tcpHost ?? parsed.domain,
    nameGraceMs: durationMs(nameGrace),
    anonymousNameGraceMs: durationMs(anonymousNameGrace),
    loginTimeoutMs: durationMs(loginGraceTime),
    headerTimeoutMs: durationMs(headerTimeout),
    idleTimeoutMs: durationMs(idleTimeout),
    anonymous: parsed.allowAnonymous || (loopbackOnly && parsed.authorizedKeys.length === 0),
    keepaliveIntervalMs: durationMs(keepaliveInterval),
    upstreamTimeoutMs: durationMs(upstreamTimeout),
    commandWaitMs: durationMs(commandWait),
    sessionSettleMs: 500,
  })
}
