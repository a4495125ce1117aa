// The shapes of a Bind request's Opts, one per proto, with ngrok's wire names (PascalCase at the top, snake_case
// inside the module objects, as ngrok-rust proto.rs HttpEndpoint / TcpEndpoint / TlsEndpoint and ngrok-go
// msg.go + pb/middleware.pb.go write them). Only types are checked here; what each option means for Porthole,
// and which are refused, is bind-options.ts. Unknown options with a value are refused (PH_1074), never dropped.
import { z } from 'zod'
import { orNull, wireObject } from './wire.js'

const text = z.string().max(64 * 1024)
const str = orNull(text, '')
const strings = orNull(z.array(text).max(1000), [])
const bool = orNull(z.boolean(), false)
/** Byte fields (hashed passwords, sealed secrets, certificates) are base64 strings on the wire. */
const bytes = str

const strict = { strict: true }
const ipRestriction = wireObject({ allow_cidrs: strings, deny_cidrs: strings }, strict)
const mutualTls = wireObject({ mutual_tls_ca: bytes }, strict)
const headers = wireObject({ add: strings, remove: strings, addParsed: orNull(z.record(text, text), {}) }, strict)
const loginFields = {
  client_id: str,
  client_secret: str,
  sealed_client_secret: bytes,
  allow_emails: strings,
  allow_domains: strings,
  scopes: strings,
}

/** Fields every proto has. `URL` is ngrok-go v2's way to ask for a name; `Policy` its legacy inbound/outbound form. */
const common = {
  URL: str,
  ProxyProto: orNull(z.number().int(), 0),
  IPRestriction: ipRestriction.nullable().optional(),
  Policy: z.unknown().optional(),
  TrafficPolicy: orNull(z.string().max(1024 * 1024), ''),
}

export const httpOptsSchema = wireObject({
  ...common,
  Domain: str,
  Hostname: str,
  Auth: str,
  Subdomain: str,
  HostHeaderRewrite: bool,
  LocalUrlScheme: str,
  Compression: wireObject({}, strict).nullable().optional(),
  CircuitBreaker: wireObject({ error_threshold: orNull(z.number(), 0) }, strict).nullable().optional(),
  BasicAuth: wireObject({
    credentials: orNull(z.array(wireObject({ username: str, cleartext_password: str, hashed_password: bytes }, strict)).max(1000), []),
  }, strict).nullable().optional(),
  OAuth: wireObject({ provider: str, ...loginFields }, strict).nullable().optional(),
  OIDC: wireObject({ issuer_url: str, ...loginFields }, strict).nullable().optional(),
  WebhookVerification: wireObject({ provider: str, secret: str, sealed_secret: bytes }, strict).nullable().optional(),
  MutualTLSCA: mutualTls.nullable().optional(),
  RequestHeaders: headers.nullable().optional(),
  ResponseHeaders: headers.nullable().optional(),
  WebsocketTCPConverter: wireObject({}, strict).nullable().optional(),
  UserAgentFilter: wireObject({ allow: strings, deny: strings }, strict).nullable().optional(),
}, strict)

export const tcpOptsSchema = wireObject({
  ...common,
  Addr: str,
}, strict)

export const tlsOptsSchema = wireObject({
  ...common,
  Domain: str,
  Hostname: str,
  Subdomain: str,
  MutualTLSAtAgent: bool,
  MutualTLSAtEdge: mutualTls.nullable().optional(),
  TLSTermination: wireObject({ cert: bytes, key: bytes, sealed_key: bytes }, strict).nullable().optional(),
}, strict)

export type HttpOpts = z.output<typeof httpOptsSchema>
export type TcpOpts = z.output<typeof tcpOptsSchema>
export type TlsOpts = z.output<typeof tlsOptsSchema>

/** The keys ngrok-rust's serde requires when it reads the Opts echoed in a BindResp (no #[serde(default)]). */
export const RUST_REQUIRED_OPTS: Record<'http' | 'tcp' | 'tls', Readonly<Record<string, unknown>>> = {
  http: { Hostname: '', Auth: '', Subdomain: '', HostHeaderRewrite: false, ProxyProto: 0 },
  tcp: { Addr: '', ProxyProto: 0 },
  tls: { Hostname: '', Subdomain: '', ProxyProto: 0, MutualTLSAtAgent: false },
}
