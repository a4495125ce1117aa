// Bind options of ngrok agents become the same SessionOptions and policy rules as the SSH flags: each supported
// option maps to its rule (compiled with specFor, as the gateway binds it), each refused one is named with its
// code and reason, and the option table covers every option the Opts schemas know.
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { PortholeError } from '../../src/core/errors.js'
import { bindOptions, NGROK_OPTIONS, type BindMapping } from '../../src/agents/ngrok/bind-options.js'
import { httpOptsSchema, tcpOptsSchema, tlsOptsSchema } from '../../src/agents/ngrok/bind-opts.js'
import { parseBind } from '../../src/agents/ngrok/messages.js'
import { parseCommand, specFor } from '../../src/agents/ssh/exec-grammar.js'

const gateway = { sessionSecret: Buffer.alloc(32, 1) }
const sample = (name: string): Record<string, unknown> => JSON.parse(readFileSync(resolve(import.meta.dirname, '../../fixtures/ngrok', name), 'utf8'))

/** A Bind as ngrok-rust writes it (its http sample without basic auth), with these Opts, top-level fields and Extra. */
function bind (proto: string, opts: Record<string, unknown> = {}, top: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): BindMapping {
  const base = sample(proto === 'tcp' ? 'rust-bind-tcp.json' : proto === 'tls' ? 'rust-bind-tls.json' : 'rust-bind-http.json')
  const baseOpts = { ...(base.Opts as object), BasicAuth: null, ProxyProto: 0, IPRestriction: null, Domain: '' }
  return bindOptions(parseBind({ ...base, Proto: proto, ...top, Opts: { ...baseOpts, ...opts }, Extra: { ...(base.Extra as object), ...extra } }), gateway)
}

function refusal (run: () => unknown): string {
  try {
    run()
  } catch (error) {
    if (!(error instanceof PortholeError)) throw error
    return error.toLine()
  }
  return 'none'
}

/** The SSH command line's options for the same thing: the ngrok mapping must build the very same policy. */
function sshPolicy (line: string) {
  const parsed = parseCommand(line, gateway)
  if (parsed.kind !== 'options') throw new Error('expected options')
  return parsed.options.policy
}

describe('supported options map to the rules the SSH flags build', () => {
  it.each([
    ['BasicAuth', { BasicAuth: { credentials: [{ username: 'ann', cleartext_password: 's3cret' }, { username: 'bob', cleartext_password: 'pw:with:colons' }] } }, 'http --basic-auth ann:s3cret --basic-auth bob:pw:with:colons'],
    ['Auth (legacy)', { Auth: 'ann:s3cret' }, 'http --basic-auth ann:s3cret'],
    ['IPRestriction', { IPRestriction: { allow_cidrs: ['10.0.0.0/8'], deny_cidrs: ['10.1.0.0/16'] } }, 'http --cidr-allow 10.0.0.0/8 --cidr-deny 10.1.0.0/16'],
    ['RequestHeaders', { RequestHeaders: { add: ['x-env:prod'], remove: ['cookie'], addParsed: { 'x-team': 'web' } } }, "http --request-header-add 'x-env: prod' --request-header-add 'x-team: web' --request-header-remove cookie"],
    ['ResponseHeaders', { ResponseHeaders: { add: ['x-frame-options:DENY'], remove: ['server'] } }, "http --response-header-add 'x-frame-options: DENY' --response-header-remove server"],
    ['Compression', { Compression: {} }, 'http --compression'],
    ['CircuitBreaker', { CircuitBreaker: { error_threshold: 0.25 } }, 'http --circuit-breaker 0.25'],
    ['WebhookVerification', { WebhookVerification: { provider: 'github', secret: 'whsec' } }, 'http --verify-webhook github --verify-webhook-secret whsec'],
    ['UserAgentFilter', { UserAgentFilter: { allow: ['^curl/'], deny: ['bot'] } }, 'http --ua-filter-allow ^curl/ --ua-filter-deny bot'],
    ['OAuth', { OAuth: { provider: 'google', client_id: 'cid', client_secret: 'cs', allow_emails: ['ann@example.com'], allow_domains: ['example.org'], scopes: ['openid'] } },
      'http --oauth google --oauth-client-id cid --oauth-client-secret cs --oauth-scope openid --oauth-allow-email ann@example.com --oauth-allow-domain example.org'],
    ['OIDC', { OIDC: { issuer_url: 'https://login.example.com', client_id: 'cid', client_secret: 'cs', scopes: ['groups'] } }, 'http --oidc https://login.example.com --oidc-client-id cid --oidc-client-secret cs --oidc-scope groups'],
    ['TrafficPolicy', { TrafficPolicy: '{"on_http_request":[{"actions":[{"type":"deny","config":{"status_code":418}}]}]}' }, `http --traffic-policy '{"on_http_request":[{"actions":[{"type":"deny","config":{"status_code":418}}]}]}'`],
  ])('%s', (_name, opts, line) => {
    const mapping = bind('https', opts)
    expect(mapping.options.policy).toEqual(sshPolicy(line))
    expect(mapping.options.policy).not.toEqual({})
    const { compiled, spec } = specFor(mapping.options, mapping.proto, gateway)
    expect([compiled.onTcpConnect, compiled.onHttpRequest, compiled.onHttpResponse].some((phase) => phase !== null)).toBe(true)
    expect(spec.proto).toBe(mapping.proto)
  })

  it('OIDC allow_emails and allow_domains reach the openid-connect action', () => {
    const policy = bind('https', { OIDC: { issuer_url: 'https://login.example.com', client_id: 'cid', client_secret: 'cs', allow_emails: ['ann@example.com'], allow_domains: ['example.org'] } }).options.policy
    expect(policy.on_http_request).toEqual([{ name: 'oidc flags', actions: [{ type: 'openid-connect', config: { issuer_url: 'https://login.example.com', client_id: 'cid', client_secret: 'cs', allow_emails: ['ann@example.com'], allow_domains: ['example.org'] } }] }])
  })

  it('modules come first, then the traffic policy, as on the SSH command line', () => {
    const policy = bind('https', { BasicAuth: { credentials: [{ username: 'a', cleartext_password: 'b' }] }, TrafficPolicy: 'on_http_request:\n  - actions:\n      - type: deny\n' }).options.policy
    expect(policy.on_http_request!.map((rule) => rule.actions[0]!.type)).toEqual(['basic-auth', 'deny'])
  })

  it('a plain bind asks for nothing: defaults, a random name, no policy', () => {
    const mapping = bind('https')
    expect(mapping).toEqual({
      proto: 'http',
      bound: { spec: { proto: 'http', inspect: true, schemes: { http: true, https: true }, upstream: { tls: false, verify: false, cas: null, protocol: 'http1' } }, compiled: { onTcpConnect: null, onHttpRequest: null, onHttpResponse: null, needsBody: false } },
      urlScheme: 'https',
      name: null,
      options: { command: 'http', policy: {}, hostHeader: undefined, schemes: { http: true, https: true }, upstream: { tls: false, verify: false, cas: null, protocol: 'http1' }, proxyProto: 0, output: 'text', inspect: true, stdin: null },
      pooling: false,
      info: { name: '', description: '', metadata: '', forwardsTo: 'http://localhost:3000/' },
    })
    expect(bind('http').urlScheme).toBe('http')
  })

  it('the ngrok-go sample: URL names the host, its traffic policy applies, Name is kept', () => {
    const mapping = bindOptions(parseBind(sample('go-bind-http.json')), gateway)
    expect(mapping.name).toEqual({ from: 'URL', value: 'app.example.com' })
    expect(mapping.options.policy).toEqual({ on_http_request: [{ actions: [{ type: 'deny' }] }] })
    expect(mapping.info.name).toBe('web')
  })
})

describe('names', () => {
  it.each([
    [{ Domain: 'App.Example.com' }, { from: 'Domain', value: 'app.example.com' }],
    [{ Domain: '*.team.example.com' }, { from: 'Domain', value: '*.team.example.com' }],
    [{ Hostname: 'app.example.com' }, { from: 'Hostname', value: 'app.example.com' }],
    [{ Subdomain: 'myapp' }, { from: 'Subdomain', value: 'myapp' }],
    [{ URL: 'https://app.example.com' }, { from: 'URL', value: 'app.example.com' }],
    [{ URL: 'app.example.com' }, { from: 'URL', value: 'app.example.com' }],
    [{ URL: 'https://app.example.com', Domain: 'app.example.com' }, { from: 'URL', value: 'app.example.com' }],
  ])('http %j', (opts, name) => {
    expect(bind('https', opts).name).toEqual(name)
  })

  it('tcp Addr / URL give host:port and the port; tls takes a Domain', () => {
    expect(bind('tcp', { Addr: 'tcp.example.com:20001' }).name).toEqual({ from: 'Addr', value: 'tcp.example.com:20001', port: 20001 })
    expect(bind('tcp', { URL: 'tcp://tcp.example.com:20002' }).name).toEqual({ from: 'URL', value: 'tcp.example.com:20002', port: 20002 })
    expect(bind('tcp').name).toBeNull()
    expect(bind('tls', { Domain: 'secure.example.com' }).name).toEqual({ from: 'Domain', value: 'secure.example.com' })
  })

  it.each([
    ['https', { Domain: 'app.example.com', Subdomain: 'other' }, 'PH_1072: bad value for ngrok option Opts.Domain and Opts.Subdomain ["app.example.com","other"] (give one name)'],
    ['https', { Domain: 'https://app.example.com' }, 'PH_1072: bad value for ngrok option Opts.Domain "https://app.example.com" (want a host name such as app.example.com, *.team.example.com, or a label)'],
    ['https', { URL: 'https://app.example.com:8443' }, "PH_1072: bad value for ngrok option Opts.URL \"https://app.example.com:8443\" (an http endpoint is served on the gateway's own port; leave the port out)"],
    ['https', { URL: 'tcp://app.example.com' }, 'PH_1072: bad value for ngrok option Opts.URL "tcp://app.example.com" (want https://host)'],
    ['https', { Subdomain: 'a.b' }, 'PH_1072: bad value for ngrok option Opts.Subdomain "a.b" (want one label: letters, digits and inner -)'],
    ['tcp', { Addr: '20001' }, 'PH_1072: bad value for ngrok option Opts.Addr "20001" (want host:port, e.g. tcp.example.com:20000)'],
    ['tcp', { Addr: 'tcp.example.com:70000' }, 'PH_1072: bad value for ngrok option Opts.Addr "tcp.example.com:70000" (want host:port, e.g. tcp.example.com:20000)'],
  ])('%s %j is refused', (proto, opts, expected) => {
    expect(refusal(() => bind(proto, opts))).toBe(expected)
  })
})

describe('upstream, host header, schemes, PROXY protocol', () => {
  it('ForwardsProto http2 makes the edge speak HTTP/2 to the agent; the agent does its own upstream TLS', () => {
    expect(bind('https', {}, { ForwardsProto: 'http2' }).options.upstream).toEqual({ tls: false, verify: false, cas: null, protocol: 'http2' })
    expect(bind('https', { LocalUrlScheme: 'https' }, { ForwardsTo: 'https://localhost:8443/' }).options.upstream).toEqual({ tls: false, verify: false, cas: null, protocol: 'http1' })
    expect(refusal(() => bind('https', {}, { ForwardsProto: 'h3' }))).toBe('PH_1072: bad value for ngrok option ForwardsProto "h3" (want http1 or http2)')
    expect(refusal(() => bind('tcp', {}, { ForwardsProto: 'http2' }))).toBe('PH_1072: bad value for ngrok option ForwardsProto "http2" (http2 applies to http endpoints only)')
    expect(refusal(() => bind('https', { LocalUrlScheme: 'ftp' }))).toBe('PH_1072: bad value for ngrok option Opts.LocalUrlScheme "ftp" (want http or https)')
  })

  it('HostHeaderRewrite sends ForwardsTo\'s host:port, or rewrite (localhost) when it has none', () => {
    expect(bind('https', { HostHeaderRewrite: true }, { ForwardsTo: 'http://localhost:3000/' }).options.hostHeader).toBe('localhost:3000')
    expect(bind('https', { HostHeaderRewrite: true }, { ForwardsTo: 'https://api.internal' }).options.hostHeader).toBe('api.internal')
    expect(bind('https', { HostHeaderRewrite: true }, { ForwardsTo: 'localhost:8080' }).options.hostHeader).toBe('localhost:8080')
    expect(bind('https', { HostHeaderRewrite: true }, { ForwardsTo: 'app://laptop/usr/bin/node?pid=12' }).options.hostHeader).toBe('rewrite')
    expect(bind('https', { HostHeaderRewrite: true }, { ForwardsTo: 'http://[::1]:3000' }).options.hostHeader).toBe('[::1]:3000')
    expect(bind('https').options.hostHeader).toBeUndefined()
    const { spec } = specFor(bind('https', { HostHeaderRewrite: true }).options, 'http', gateway)
    expect(spec.hostHeader).toBe('localhost:3000')
  })

  it('ProxyProto 1|2 on tcp and tls endpoints; refused on http', () => {
    const tcp = bind('tcp', { ProxyProto: 2 })
    expect(specFor(tcp.options, tcp.proto, gateway).spec.proxyProto).toBe(2)
    expect(bind('tls', { ProxyProto: 1 }).options.proxyProto).toBe(1)
    expect(refusal(() => bind('tcp', { ProxyProto: 3 }))).toBe('PH_1072: bad value for ngrok option Opts.ProxyProto 3 (want 0, 1 or 2)')
    expect(refusal(() => bind('https', { ProxyProto: 1 }))).toMatch(/^PH_1071: this gateway cannot honour ngrok option Opts.ProxyProto on an http endpoint \(the http edge reuses a connection/)
  })

  it('tcp and tls take IP restrictions and traffic policy for on_tcp_connect', () => {
    const tcp = bind('tcp', { IPRestriction: { deny_cidrs: ['192.0.2.0/24'] }, TrafficPolicy: 'on_tcp_connect:\n  - actions:\n      - type: close-connection\n' })
    expect(tcp.options.policy.on_tcp_connect!.map((rule) => rule.actions[0]!.type)).toEqual(['restrict-ips', 'close-connection'])
    expect(specFor(tcp.options, 'tcp', gateway).compiled.onTcpConnect).toHaveLength(2)
    expect(refusal(() => bind('tls', { TrafficPolicy: 'on_http_request:\n  - actions:\n      - type: deny\n' }))).toBe('PH_1008: invalid traffic policy: on_http_request/on_http_response: a tls endpoint carries no HTTP')
  })

  it('PoolingEnabled, Name, Description and Metadata are passed on', () => {
    expect(bind('https', {}, {}, { PoolingEnabled: true, Name: 'n', Description: 'd', Metadata: 'm' })).toMatchObject({ pooling: true, info: { name: 'n', description: 'd', metadata: 'm' } })
  })
})

describe('refused options name themselves and why', () => {
  it.each([
    ['https', { BasicAuth: { credentials: [{ username: 'ann', hashed_password: 'JDJhJDEw' }] } }, {}, 'PH_1071: this gateway cannot honour ngrok option Opts.BasicAuth.credentials[0].hashed_password (Porthole checks cleartext credentials only; send cleartext_password)'],
    ['https', { OAuth: { provider: 'google' } }, {}, "PH_1071: this gateway cannot honour ngrok option Opts.OAuth without client_id and client_secret (ngrok-managed OAuth applications exist only in ngrok's cloud; give your own app's client_id and client_secret)"],
    ['https', { OAuth: { provider: 'google', client_id: 'c', sealed_client_secret: 'c2VhbGVk' } }, {}, "PH_1071: this gateway cannot honour ngrok option Opts.OAuth.sealed_client_secret (sealed secrets are encrypted for ngrok's cloud; send the secret itself)"],
    ['https', { OIDC: { issuer_url: 'https://login.example.com' } }, {}, /^PH_1071: this gateway cannot honour ngrok option Opts.OIDC without client_id and client_secret/],
    ['https', { WebhookVerification: { provider: 'github', sealed_secret: 'c2VhbGVk' } }, {}, /^PH_1071: this gateway cannot honour ngrok option Opts.WebhookVerification.sealed_secret/],
    ['https', { MutualTLSCA: { mutual_tls_ca: 'LS0tLS1CRUdJTg==' } }, {}, 'PH_1071: this gateway cannot honour ngrok option Opts.MutualTLSCA (Porthole does not check client certificates)'],
    ['https', { WebsocketTCPConverter: {} }, {}, 'PH_1071: this gateway cannot honour ngrok option Opts.WebsocketTCPConverter (Porthole has no websocket-to-TCP converter; bind a tcp endpoint)'],
    ['https', { TrafficPolicy: '{"Inbound":[{"Name":"x","Actions":[{"Type":"deny"}]}],"Outbound":[]}' }, {}, /^PH_1071: this gateway cannot honour ngrok option Opts.TrafficPolicy in the legacy Inbound\/Outbound form/],
    ['https', { Policy: { inbound: [{ name: 'x' }] } }, {}, /^PH_1071: this gateway cannot honour ngrok option Opts.Policy \(the legacy inbound/],
    ['tls', { MutualTLSAtAgent: true }, {}, /^PH_1071: this gateway cannot honour ngrok option Opts.MutualTLSAtAgent/],
    ['tls', { MutualTLSAtEdge: { mutual_tls_ca: 'LS0t' } }, {}, /^PH_1071: this gateway cannot honour ngrok option Opts.MutualTLSAtEdge/],
    ['tls', { TLSTermination: { cert: 'LS0t', key: 'LS0t' } }, {}, 'PH_1071: this gateway cannot honour ngrok option Opts.TLSTermination (tls endpoints pass TLS through to the agent; terminate TLS in your service, or bind an http endpoint)'],
    ['https', {}, { IPPolicyRef: 'ipp_123' }, /^PH_1071: this gateway cannot honour ngrok option Extra.IPPolicyRef \(ngrok IP policies live in ngrok's cloud/],
    ['https', {}, { Bindings: ['internal'] }, 'PH_1071: this gateway cannot honour ngrok option Extra.Bindings ["internal"] (Porthole endpoints are public; give no bindings or ["public"])'],
  ])('%s %j %j', (proto, opts, extra, expected) => {
    const got = refusal(() => bind(proto, opts, {}, extra))
    if (typeof expected === 'string') expect(got).toBe(expected)
    else expect(got).toMatch(expected)
  })

  it('Bindings ["public"] is what Porthole serves anyway', () => {
    expect(bind('https', {}, {}, { Bindings: ['public'] }).name).toBeNull()
  })

  it('an option tcp or tls endpoints do not have is unknown there', () => {
    expect(refusal(() => bind('tcp', { BasicAuth: { credentials: [{ username: 'a', cleartext_password: 'b' }] } }))).toBe('PH_1074: unknown ngrok option Opts.BasicAuth')
  })
})

describe('bad values name the option and the value (secrets hidden)', () => {
  it.each([
    [{ BasicAuth: { credentials: [{ username: 'a:b', cleartext_password: 'pw' }] } }, 'PH_1072: bad value for ngrok option Opts.BasicAuth.credentials[0].username "a:b" (want a non-empty name without :)'],
    [{ BasicAuth: { credentials: [{ username: 'ann' }] } }, 'PH_1072: bad value for ngrok option Opts.BasicAuth.credentials[0].cleartext_password "" (want a password)'],
    [{ Auth: 'nocolon' }, 'PH_1072: bad value for ngrok option Opts.Auth "***" (want user:password)'],
    [{ RequestHeaders: { add: ['no colon here'] } }, 'PH_1072: bad value for ngrok option Opts.RequestHeaders.add[0] "no colon here" (want \'Name:Value\')'],
    [{ CircuitBreaker: { error_threshold: 1.5 } }, 'PH_1072: bad value for ngrok option Opts.CircuitBreaker.error_threshold 1.5 (want an error ratio above 0, up to 1)'],
    [{ CircuitBreaker: { error_threshold: 1e-30 } }, 'PH_1072: bad value for ngrok option Opts.CircuitBreaker.error_threshold 1e-30 (want an error ratio above 0, up to 1)'],
    [{ CircuitBreaker: {} }, 'PH_1072: bad value for ngrok option Opts.CircuitBreaker.error_threshold 0 (want an error ratio above 0, up to 1)'],
    [{ UserAgentFilter: { deny: ['(?=x)'] } }, /^PH_1072: bad value for ngrok option Opts.UserAgentFilter.deny\[0\] "\(\?=x\)" \(/],
    [{ WebhookVerification: { provider: 'github' } }, 'PH_1072: bad value for ngrok option Opts.WebhookVerification.secret "" (want the signing secret)'],
    [{ IPRestriction: { allow_cidrs: ['10.0.0.0/33'] } }, 'PH_1004: bad CIDR "10.0.0.0/33" at on_tcp_connect[0].actions[0]'],
    [{ TrafficPolicy: 'on_http_request: [' }, /^PH_1008: invalid traffic policy: /],
    [{ WebhookVerification: { provider: 'nosuchprovider', secret: 's' } }, /^PH_1008: /],
  ])('%j', (opts, expected) => {
    const got = refusal(() => bind('https', opts))
    if (typeof expected === 'string') expect(got).toBe(expected)
    else expect(got).toMatch(expected)
  })

  it('tiny circuit-breaker ratios survive the text round trip', () => {
    const policy = bind('https', { CircuitBreaker: { error_threshold: 1e-7 } }).options.policy
    expect(policy.on_http_request![0]!.actions[0]).toEqual({ type: 'circuit-breaker', config: { error_threshold: 1e-7 } })
    expect(bind('https', { CircuitBreaker: { error_threshold: 1 } }).options.policy.on_http_request![0]!.actions[0]).toEqual({ type: 'circuit-breaker', config: { error_threshold: 1 } })
  })

  it('login modules need the gateway\'s session secret, as the SSH flags do', () => {
    const message = { ...sample('rust-bind-http.json'), Opts: { OAuth: { provider: 'google', client_id: 'c', client_secret: 's' } } }
    expect(refusal(() => bindOptions(parseBind(message)))).toMatch(/^PH_1008: invalid traffic policy: oauth: the gateway gave no session secret/)
  })
})

describe('the option table', () => {
  it('has a row for every option the Opts schemas know, and a reason for every refusal', () => {
    const rows = NGROK_OPTIONS.map((row) => row.option)
    for (const schema of [httpOptsSchema, tcpOptsSchema, tlsOptsSchema]) {
      const shape = (schema as unknown as { out: { shape: Record<string, unknown> } }).out.shape
      for (const key of Object.keys(shape)) expect(rows.some((row) => row === `Opts.${key}` || row.startsWith(`Opts.${key} `) || row.startsWith(`Opts.${key}.`)), key).toBe(true)
    }
    for (const row of NGROK_OPTIONS) expect(row.support === 'supported' || /^refused: \S/.test(row.support), row.option).toBe(true)
    expect(new Set(rows).size).toBe(rows.length)
  })
})
