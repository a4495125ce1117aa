// Every Bind option an ngrok agent can send, and what Porthole does with it: the table the README and the
// issue's note print, and the reasons bind-options.ts gives when it refuses one (one text for both).
// test/unit/ngrok-bind-options.test.ts checks that every option of the Opts schemas has a row.

/** Why an option is refused; bind-options.ts puts these in its PH_1071 errors. */
export const WHY = {
  hashedPassword: 'Porthole checks cleartext credentials only; send cleartext_password',
  sealed: 'sealed secrets are encrypted for ngrok\'s cloud; send the secret itself',
  managedOAuth: 'ngrok-managed OAuth applications exist only in ngrok\'s cloud; give your own app\'s client_id and client_secret',
  mutualTls: 'Porthole does not check client certificates',
  websocketTcp: 'Porthole has no websocket-to-TCP converter; bind a tcp endpoint',
  httpProxyProto: 'the http edge reuses a connection to the agent for many clients\' requests, so no PROXY header can name each client; the client address is in X-Forwarded-For',
  tlsTermination: 'tls endpoints pass TLS through to the agent; terminate TLS in your service, or bind an http endpoint',
  legacyPolicy: 'the legacy inbound/outbound policy form is not supported; send a traffic policy with on_http_request etc.',
  ipPolicyRef: 'ngrok IP policies live in ngrok\'s cloud; list the CIDRs in IPRestriction (allow_cidrs, deny_cidrs)',
  bindings: 'Porthole endpoints are public; give no bindings or ["public"]',
  pooling: 'endpoint pools (several agents serving one name) are not supported: a name is served by one agent at a time',
  labeled: 'labeled tunnels attach to ngrok cloud edges, which Porthole does not have; bind an endpoint (http, tcp or tls)',
} as const

export interface OptionSupport {
  /** As on the wire: `Opts.BasicAuth.credentials[].hashed_password`, `Extra.IPPolicyRef`, `ForwardsProto`. */
  readonly option: string
  readonly protos: readonly ('http' | 'tcp' | 'tls')[]
  readonly support: 'supported' | `refused: ${string}`
  /** What it becomes in Porthole (the SSH flag or policy action of the same effect). */
  readonly maps: string
}

const H = ['http'] as const
const T = ['tcp'] as const
const S = ['tls'] as const
const ALL = ['http', 'tcp', 'tls'] as const
const refused = (why: string): `refused: ${string}` => `refused: ${why}`

export const NGROK_OPTIONS: readonly OptionSupport[] = [
  { option: 'Proto', protos: ALL, support: 'supported', maps: 'http and https: an http endpoint served on both schemes (the URL shows the one asked for); tcp; tls (passthrough by SNI)' },
  { option: 'Opts.URL', protos: ALL, support: 'supported', maps: 'the name asked for (ngrok-go): its host, or host:port for tcp' },
  { option: 'Opts.Domain', protos: ['http', 'tls'], support: 'supported', maps: 'the endpoint\'s host (a bare label lies under the gateway\'s domain; *.x is a wildcard), as ssh -R NAME:...' },
  { option: 'Opts.Hostname', protos: ['http', 'tls'], support: 'supported', maps: 'as Domain (older agents)' },
  { option: 'Opts.Subdomain', protos: ['http', 'tls'], support: 'supported', maps: '<label>.<domain>' },
  { option: 'Opts.Addr', protos: T, support: 'supported', maps: 'that port (host:port) if free and yours; empty: a free port from the pool' },
  { option: 'ForwardsTo', protos: ALL, support: 'supported', maps: 'informational; its host:port is the Host that HostHeaderRewrite sends' },
  { option: 'ForwardsProto', protos: H, support: 'supported', maps: 'http2: the edge speaks HTTP/2 (prior knowledge) to the agent, as --upstream-protocol http2; http1 or empty: HTTP/1.1' },
  { option: 'Opts.LocalUrlScheme', protos: H, support: 'supported', maps: 'nothing to do at the gateway: the agent itself speaks TLS to an https upstream' },
  { option: 'Opts.HostHeaderRewrite', protos: H, support: 'supported', maps: '--host-header with ForwardsTo\'s host:port (rewrite, i.e. localhost, when it has none)' },
  { option: 'Opts.Auth', protos: H, support: 'supported', maps: '--basic-auth user:password (older agents)' },
  { option: 'Opts.BasicAuth.credentials[].cleartext_password', protos: H, support: 'supported', maps: '--basic-auth user:password (basic-auth action)' },
  { option: 'Opts.BasicAuth.credentials[].hashed_password', protos: H, support: refused(WHY.hashedPassword), maps: '' },
  { option: 'Opts.IPRestriction', protos: ALL, support: 'supported', maps: '--cidr-allow / --cidr-deny (restrict-ips in on_tcp_connect)' },
  { option: 'Opts.RequestHeaders', protos: H, support: 'supported', maps: 'add ("Name:Value"), addParsed, remove: --request-header-add / --request-header-remove' },
  { option: 'Opts.ResponseHeaders', protos: H, support: 'supported', maps: 'add ("Name:Value"), addParsed, remove: --response-header-add / --response-header-remove' },
  { option: 'Opts.Compression', protos: H, support: 'supported', maps: '--compression (compress-response)' },
  { option: 'Opts.CircuitBreaker', protos: H, support: 'supported', maps: '--circuit-breaker RATIO (error_threshold above 0, up to 1)' },
  { option: 'Opts.WebhookVerification', protos: H, support: 'supported', maps: '--verify-webhook PROVIDER --verify-webhook-secret SECRET' },
  { option: 'Opts.WebhookVerification.sealed_secret', protos: H, support: refused(WHY.sealed), maps: '' },
  { option: 'Opts.UserAgentFilter', protos: H, support: 'supported', maps: '--ua-filter-allow / --ua-filter-deny (RE2)' },
  { option: 'Opts.OAuth', protos: H, support: 'supported', maps: '--oauth PROVIDER with client_id, client_secret, scopes, allow_emails, allow_domains' },
  { option: 'Opts.OAuth without client_id and client_secret', protos: H, support: refused(WHY.managedOAuth), maps: '' },
  { option: 'Opts.OAuth.sealed_client_secret', protos: H, support: refused(WHY.sealed), maps: '' },
  { option: 'Opts.OIDC', protos: H, support: 'supported', maps: '--oidc ISSUER_URL with client_id, client_secret, scopes, allow_emails, allow_domains' },
  { option: 'Opts.OIDC without client_id and client_secret', protos: H, support: refused(WHY.managedOAuth), maps: '' },
  { option: 'Opts.OIDC.sealed_client_secret', protos: H, support: refused(WHY.sealed), maps: '' },
  { option: 'Opts.TrafficPolicy', protos: ALL, support: 'supported', maps: '--traffic-policy (YAML or JSON), its rules after the modules\' rules' },
  { option: 'Opts.TrafficPolicy in the legacy Inbound/Outbound form', protos: ALL, support: refused(WHY.legacyPolicy), maps: '' },
  { option: 'Opts.Policy', protos: ALL, support: refused(WHY.legacyPolicy), maps: '' },
  { option: 'Opts.ProxyProto', protos: ['tcp', 'tls'], support: 'supported', maps: '--proxy-proto 1|2: a PROXY header before each connection\'s bytes' },
  { option: 'Opts.ProxyProto on an http endpoint', protos: H, support: refused(WHY.httpProxyProto), maps: '' },
  { option: 'Opts.MutualTLSCA', protos: H, support: refused(WHY.mutualTls), maps: '' },
  { option: 'Opts.WebsocketTCPConverter', protos: H, support: refused(WHY.websocketTcp), maps: '' },
  { option: 'Opts.MutualTLSAtAgent', protos: S, support: refused(WHY.mutualTls), maps: '' },
  { option: 'Opts.MutualTLSAtEdge', protos: S, support: refused(WHY.mutualTls), maps: '' },
  { option: 'Opts.TLSTermination', protos: S, support: refused(WHY.tlsTermination), maps: '' },
  { option: 'Extra.Name', protos: ALL, support: 'supported', maps: 'accepted, informational (not shown in listings yet)' },
  { option: 'Extra.Description', protos: ALL, support: 'supported', maps: 'accepted, informational (not shown in listings yet)' },
  { option: 'Extra.Metadata', protos: ALL, support: 'supported', maps: 'accepted, informational (not shown in listings yet)' },
  { option: 'Extra.Token', protos: ALL, support: 'supported', maps: 'accepted; a reconnecting agent gets its tunnel back by its Id (same owner: same name, random ones included)' },
  { option: 'Extra.PoolingEnabled', protos: ALL, support: refused(WHY.pooling), maps: 'false is accepted' },
  { option: 'Extra.Bindings', protos: ALL, support: 'supported', maps: 'none or ["public"]; any other binding is refused: ' + WHY.bindings },
  { option: 'Extra.IPPolicyRef', protos: ALL, support: refused(WHY.ipPolicyRef), maps: '' },
  { option: 'Request inspection (the agent\'s inspect setting; not sent in a Bind)', protos: H, support: 'supported', maps: 'every http endpoint is inspected at the gateway, as --inspect for SSH; the operator\'s --inspect=false turns it off' },
  { option: 'StartTunnelWithLabel (labeled tunnels)', protos: ALL, support: refused(WHY.labeled), maps: '' },
  { option: 'any other option', protos: ALL, support: refused('unknown to Porthole (PH_1074), unless left at its zero value (null, "", false, 0, [])'), maps: '' },
]
