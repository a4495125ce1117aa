// The JSON messages of ngrok's session RPCs, one typed muxado stream each (see NGROK-PROTOCOL.md): parsers for
// what agents send, builders for what the gateway answers or asks. Parsers read keys case-insensitively (the
// clients disagree on casing) and throw PortholeError naming the field and value. Builders write exactly the
// keys ngrok-rust's serde structs require (proto.rs: no #[serde(default)] means required, and names are
// case-sensitive there), plus the Error field ngrok-go reads. No I/O here.
import { z } from 'zod'
import { PortholeError } from '../../core/errors.js'
import { httpOptsSchema, RUST_REQUIRED_OPTS, tcpOptsSchema, tlsOptsSchema, type HttpOpts, type TcpOpts, type TlsOpts } from './bind-opts.js'
import { orNull, parseWire, wireObject } from './wire.js'

export { JsonValueReader, MAX_RPC_BYTES, readJsonValue } from './json-value.js'
export { clientAddr, decodeProxyHeader, EDGE_TYPE, proxyHeader, type EdgeType, type ProxyHeader } from './proxy-header.js'
export type { HttpOpts, TcpOpts, TlsOpts } from './bind-opts.js'
export { errorReply, errorReplyFor, ngrokError } from './rpc-errors.js'

/** The u32 that starts each typed stream. Client to server: Auth, Bind, Unbind, StartTunnelWithLabel, SrvInfo,
 *  PatchTunnelState (and Heartbeat, either way). Server to client: Proxy, Restart, Stop, Update, StopTunnel. */
export const StreamType = {
  Auth: 0,
  Bind: 1,
  Unbind: 2,
  Proxy: 3,
  Restart: 4,
  Stop: 5,
  Update: 6,
  StartTunnelWithLabel: 7,
  SrvInfo: 8,
  StopTunnel: 9,
  PatchTunnelState: 10,
  Heartbeat: 0xFFFFFFFF,
} as const
export type StreamTypeName = keyof typeof StreamType

/** Protocol versions the gateway speaks, preferred first (what the clients offer: ["3", "2"]). */
export const PROTOCOL_VERSIONS = ['3', '2'] as const

const short = z.string().max(4096)
const str = orNull(short, '')
const int = orNull(z.number().int().min(0).max(Number.MAX_SAFE_INTEGER), 0)
const bool = orNull(z.boolean(), false)
const strings = orNull(z.array(short).max(64), [])

// ---- Auth (0) ----

const authSchema = wireObject({
  Version: z.array(z.string().max(16)).min(1).max(16),
  ClientId: str,
  Extra: wireObject({
    OS: str,
    Arch: str,
    AuthToken: str,
    Version: str,
    Hostname: str,
    UserAgent: str,
    Metadata: str,
    Cookie: str,
    HeartbeatInterval: int,
    HeartbeatTolerance: int,
    UpdateUnsupportedError: z.string().max(4096).nullable().optional(),
    StopUnsupportedError: z.string().max(4096).nullable().optional(),
    RestartUnsupportedError: z.string().max(4096).nullable().optional(),
    ProxyType: str,
    MutualTLS: bool,
    ServiceRun: bool,
    ConfigVersion: str,
    CustomInterface: bool,
    CustomCAs: bool,
    ClientType: str,
    LegNumber: int,
  }).nullable().optional(),
})

export interface AuthExtra {
  readonly os: string
  readonly arch: string
  /** The authtoken (ngrok-rust: AuthToken, ngrok-go: Authtoken). */
  readonly authToken: string
  /** The agent's or SDK's version. */
  readonly version: string
  readonly hostname: string
  readonly userAgent: string
  readonly metadata: string
  /** The AuthResp cookie of the session this one resumes ('' for a new session). */
  readonly cookie: string
  /** Nanoseconds (0: not given). */
  readonly heartbeatIntervalNs: number
  readonly heartbeatToleranceNs: number
  /** null: the agent cannot do it; '': it can; other text: why it cannot. */
  readonly updateUnsupportedError: string | null
  readonly stopUnsupportedError: string | null
  readonly restartUnsupportedError: string | null
  readonly proxyType: string
  readonly mutualTls: boolean
  readonly serviceRun: boolean
  readonly configVersion: string
  readonly customInterface: boolean
  readonly customCas: boolean
  /** 'ngrok-go', 'library/official/rust', ... */
  readonly clientType: string
  readonly legNumber: number
}

export interface Auth {
  /** Protocol versions the agent speaks, preferred first. */
  readonly versions: readonly string[]
  /** '' for a new session; the previous AuthResp's ClientId when reconnecting. */
  readonly clientId: string
  readonly extra: AuthExtra
}

export function parseAuth (value: unknown): Auth {
  const m = parseWire(authSchema, value)
  const e = m.Extra
  return {
    versions: m.Version,
    clientId: m.ClientId,
    extra: {
      os: e?.OS ?? '',
      arch: e?.Arch ?? '',
      authToken: e?.AuthToken ?? '',
      version: e?.Version ?? '',
      hostname: e?.Hostname ?? '',
      userAgent: e?.UserAgent ?? '',
      metadata: e?.Metadata ?? '',
      cookie: e?.Cookie ?? '',
      heartbeatIntervalNs: e?.HeartbeatInterval ?? 0,
      heartbeatToleranceNs: e?.HeartbeatTolerance ?? 0,
      updateUnsupportedError: e?.UpdateUnsupportedError ?? null,
      stopUnsupportedError: e?.StopUnsupportedError ?? null,
      restartUnsupportedError: e?.RestartUnsupportedError ?? null,
      proxyType: e?.ProxyType ?? '',
      mutualTls: e?.MutualTLS ?? false,
      serviceRun: e?.ServiceRun ?? false,
      configVersion: e?.ConfigVersion ?? '',
      customInterface: e?.CustomInterface ?? false,
      customCas: e?.CustomCAs ?? false,
      clientType: e?.ClientType ?? '',
      legNumber: e?.LegNumber ?? 0,
    },
  }
}

/** The version to answer with: the first of the agent's that the gateway speaks, or null (refuse the session). */
export function chooseVersion (auth: Auth): string | null {
  return auth.versions.find((v) => (PROTOCOL_VERSIONS as readonly string[]).includes(v)) ?? null
}

export interface AuthRespExtra {
  readonly version?: string
  readonly region?: string
  /** Given back in the next Auth when the agent reconnects. */
  readonly cookie?: string
  readonly accountName?: string
  /** Seconds. */
  readonly sessionDuration?: number
  readonly planName?: string
  readonly banner?: string
}

/** AuthResp. ngrok-rust requires Version and ClientId; every Extra field is optional there (null when not given). */
export function authReply (reply: { version: string, clientId: string, extra?: AuthRespExtra }): string {
  const x = reply.extra ?? {}
  return JSON.stringify({
    Version: reply.version,
    ClientId: reply.clientId,
    Error: '',
    Extra: {
      Version: x.version ?? null,
      Region: x.region ?? null,
      Cookie: x.cookie ?? null,
      AccountName: x.accountName ?? null,
      SessionDuration: x.sessionDuration ?? null,
      PlanName: x.planName ?? null,
      Banner: x.banner ?? null,
    },
  })
}

// ---- Bind (1) ----

const bindSchema = wireObject({
  Id: orNull(z.string().max(256), ''),
  Proto: z.string().max(32),
  ForwardsTo: str,
  ForwardsProto: orNull(z.string().max(32), ''),
  // Checked here for its type only, then read by the proto's schema from the original object (a zod record
  // would rebuild it, and quietly lose a "__proto__" key that must be refused as an unknown option).
  Opts: z.unknown().refine((v) => v === undefined || v === null || (typeof v === 'object' && !Array.isArray(v)), 'want an object'),
  Extra: wireObject({
    Name: str,
    Token: str,
    IPPolicyRef: str,
    Metadata: str,
    Description: str,
    Bindings: strings,
    PoolingEnabled: bool,
  }).nullable().optional(),
})

export interface BindExtra {
  readonly name: string
  /** The BindResp Extra.Token of the tunnel this Bind re-creates after a reconnect ('' for a new one). */
  readonly token: string
  readonly ipPolicyRef: string
  readonly metadata: string
  readonly description: string
  readonly bindings: readonly string[]
  readonly poolingEnabled: boolean
}

interface BindBase {
  /** '' for a new tunnel; the previous BindResp's Id when the agent re-binds after a reconnect. */
  readonly id: string
  /** Informational: where the agent forwards (a URL, host:port or app://...). */
  readonly forwardsTo: string
  /** '' | 'http1' | 'http2': the protocol the agent's upstream expects. */
  readonly forwardsProto: string
  readonly extra: BindExtra
  /** The Opts object as received: a BindResp echoes it (ngrok-rust keeps the echo, e.g. its ProxyProto). */
  readonly rawOpts: Readonly<Record<string, unknown>>
}

export type Bind = BindBase & (
  | { readonly proto: 'http' | 'https', readonly opts: HttpOpts }
  | { readonly proto: 'tcp', readonly opts: TcpOpts }
  | { readonly proto: 'tls', readonly opts: TlsOpts }
)

export function parseBind (value: unknown): Bind {
  const m = parseWire(bindSchema, value)
  const base: BindBase = {
    id: m.Id,
    forwardsTo: m.ForwardsTo,
    forwardsProto: m.ForwardsProto,
    extra: {
      name: m.Extra?.Name ?? '',
      token: m.Extra?.Token ?? '',
      ipPolicyRef: m.Extra?.IPPolicyRef ?? '',
      metadata: m.Extra?.Metadata ?? '',
      description: m.Extra?.Description ?? '',
      bindings: m.Extra?.Bindings ?? [],
      poolingEnabled: m.Extra?.PoolingEnabled ?? false,
    },
    rawOpts: (m.Opts ?? {}) as Record<string, unknown>,
  }
  const proto = m.Proto.toLowerCase()
  switch (proto) {
    case 'http': case 'https': return { ...base, proto, opts: parseWire(httpOptsSchema, base.rawOpts, ['Opts']) }
    case 'tcp': return { ...base, proto, opts: parseWire(tcpOptsSchema, base.rawOpts, ['Opts']) }
    case 'tls': return { ...base, proto, opts: parseWire(tlsOptsSchema, base.rawOpts, ['Opts']) }
    default: throw new PortholeError('PH_1072', `Proto ${JSON.stringify(m.Proto)} (want http, https, tcp or tls)`)
  }
}

/** The Opts a BindResp carries: the request's, with the keys ngrok-rust requires filled in if the agent left them out. */
export function echoOpts (bind: Bind): Record<string, unknown> {
  const out: Record<string, unknown> = { ...bind.rawOpts }
  const present = new Set(Object.keys(out).map((key) => key.toLowerCase()))
  const kind = bind.proto === 'https' ? 'http' : bind.proto
  for (const [key, value] of Object.entries(RUST_REQUIRED_OPTS[kind])) {
    if (!present.has(key.toLowerCase())) out[key] = value
  }
  return out
}

/** BindResp: Id, URL, Proto, Opts and Extra.Token are required by ngrok-rust; Error and Extra.TunnelID are ngrok-go's. */
export function bindReply (reply: { id: string, url: string, proto: string, opts: Record<string, unknown>, token: string, tunnelId?: string }): string {
  return JSON.stringify({
    Id: reply.id,
    URL: reply.url,
    Proto: reply.proto,
    Opts: reply.opts,
    Error: '',
    Extra: { Token: reply.token, TunnelID: reply.tunnelId ?? reply.id },
  })
}

// ---- Unbind (2), SrvInfo (8), StartTunnelWithLabel (7), PatchTunnelState (10) ----

const unbindSchema = wireObject({ Id: z.string().max(256), Extra: z.unknown().optional() })

export interface Unbind {
  readonly id: string
}

export function parseUnbind (value: unknown): Unbind {
  return { id: parseWire(unbindSchema, value).Id }
}

/** UnbindResp: ngrok-rust's struct has no fields; ngrok-go reads Error. */
export function unbindReply (): string {
  return JSON.stringify({ Error: '' })
}

/** SrvInfo carries nothing (ngrok-go sends it, possibly before Auth); any object is accepted. */
export function parseSrvInfo (value: unknown): Record<string, never> {
  parseWire(wireObject({}), value)
  return {}
}

export function srvInfoReply (region: string): string {
  return JSON.stringify({ Region: region })
}

const startTunnelWithLabelSchema = wireObject({
  Labels: orNull(z.record(z.string().max(256), z.string().max(4096)), {}),
  ForwardsTo: str,
  ForwardsProto: orNull(z.string().max(32), ''),
  Metadata: str,
})

export interface StartTunnelWithLabel {
  readonly labels: Readonly<Record<string, string>>
  readonly forwardsTo: string
  readonly forwardsProto: string
  readonly metadata: string
}

export function parseStartTunnelWithLabel (value: unknown): StartTunnelWithLabel {
  const m = parseWire(startTunnelWithLabelSchema, value)
  if (Object.keys(m.Labels).length > 64) throw new PortholeError('PH_1070', `Labels: ${Object.keys(m.Labels).length} labels (at most 64)`)
  return { labels: m.Labels, forwardsTo: m.ForwardsTo, forwardsProto: m.ForwardsProto, metadata: m.Metadata }
}

/** StartTunnelWithLabelResp: ngrok-rust requires Id. */
export function startTunnelWithLabelReply (id: string): string {
  return JSON.stringify({ Id: id, Error: '' })
}

const patchTunnelStateSchema = wireObject({
  TunnelId: z.string().max(256),
  Name: short.nullable().optional(),
  Description: short.nullable().optional(),
  Metadata: short.nullable().optional(),
  PoolingEnabled: z.boolean().nullable().optional(),
  TrafficPolicy: z.string().max(1024 * 1024).nullable().optional(),
})

/** ngrok-go's PatchTunnelState: the fields present are the ones to change. */
export interface PatchTunnelState {
  readonly tunnelId: string
  readonly name?: string
  readonly description?: string
  readonly metadata?: string
  readonly poolingEnabled?: boolean
  readonly trafficPolicy?: string
}

export function parsePatchTunnelState (value: unknown): PatchTunnelState {
  const m = parseWire(patchTunnelStateSchema, value)
  return {
    tunnelId: m.TunnelId,
    ...(m.Name != null ? { name: m.Name } : {}),
    ...(m.Description != null ? { description: m.Description } : {}),
    ...(m.Metadata != null ? { metadata: m.Metadata } : {}),
    ...(m.PoolingEnabled != null ? { poolingEnabled: m.PoolingEnabled } : {}),
    ...(m.TrafficPolicy != null ? { trafficPolicy: m.TrafficPolicy } : {}),
  }
}

export function patchTunnelStateReply (): string {
  return JSON.stringify({ Error: '' })
}

// ---- Server to client: Stop (5), Restart (4), Update (6), StopTunnel (9) ----

export function stopRequest (): string {
  return '{}'
}

export function restartRequest (): string {
  return '{}'
}

export function updateRequest (request: { version: string, permitMajorVersion: boolean }): string {
  return JSON.stringify({ Version: request.version, PermitMajorVersion: request.permitMajorVersion })
}

/** StopTunnel: ngrok-rust requires Id and Message; it closes that tunnel with "listener closed: Message, ErrorCode". */
export function stopTunnelRequest (request: { id: string, message: string, errorCode?: string }): string {
  return JSON.stringify({ Id: request.id, Message: request.message, ErrorCode: request.errorCode ?? null })
}

/** The agent's answer to Stop, Restart or Update: {} when done, {"Error": why} when not. */
export function parseCommandResp (value: unknown): { error: string | null } {
  const m = parseWire(wireObject({ Error: z.string().max(64 * 1024).nullable().optional() }), value)
  return { error: m.Error === undefined || m.Error === null || m.Error === '' ? null : m.Error }
}
