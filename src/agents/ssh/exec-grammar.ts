// The command an SSH user types after the host (`ssh -R ... gateway http --basic-auth a:b`), parsed with
// yargs-parser into the options every forward of the session is bound with. Unknown or bad options are
// refused with a catalogue code: nothing is ever silently replaced by a default.
import { X509Certificate } from 'node:crypto'
import yargsParser from 'yargs-parser'
import { PortholeError } from '../../core/errors.js'
import { didYouMean } from '../../core/suggest.js'
import { policyFromFlags, type ModuleFlags } from '../../policy/from-flags.js'
import type { EndpointSpec } from '../../core/endpoint.js'
import type { CompileOptions } from '../../policy/compiled.js'
import type { PolicyDocument } from '../../policy/document.js'
import { combinePolicies, parsePolicy } from '../../policy/parse.js'
import { BOTH_SCHEMES, NO_FLAGS, PLAIN_UPSTREAM, specFor, type Command, type OutputMode, type SessionOptions, type UpstreamOptions } from '../endpoint-options.js'

export { DEFAULT_OPTIONS, specFor, type Command, type OutputMode, type SessionOptions, type UpstreamOptions } from '../endpoint-options.js'

/** What the command asks of the terminal only (nothing an endpoint is bound with). */
export interface ViewOptions {
  /** --qr: the main URL as a QR code. */
  readonly qr: boolean
}

export type ParsedCommand =
  | { kind: 'options', options: SessionOptions, view: ViewOptions }
  | { kind: 'help', text: string }
  /** `ssh gateway urls`: list the URLs of the owner's live endpoints (a -N user's way to learn them). */
  | { kind: 'urls', output: OutputMode }
  /** `ssh gateway diagnose`: what the gateway sees of the caller (address, version, key, account, ACL, RTT). */
  | { kind: 'diagnose', output: OutputMode }

type FlagKey = keyof ModuleFlags | 'compression' | 'qr' | 'trafficPolicy' | 'trafficPolicyFile' | 'hostHeader' | 'schemes' | 'upstreamTls' | 'upstreamTlsVerify' | 'upstreamTlsVerifyCas' | 'upstreamProtocol' | 'proxyProto' | 'inspect' | 'output' | 'help'

interface FlagInfo {
  readonly flag: string
  readonly key: FlagKey
  readonly repeatable: boolean
  readonly boolean?: true
  readonly commands: readonly Command[]
  readonly help: string
}

const ALL: readonly Command[] = ['http', 'tcp', 'tls']
const FLAGS: readonly FlagInfo[] = [
  { flag: 'basic-auth', key: 'basicAuth', repeatable: true, commands: ['http'], help: 'user:password  require HTTP basic auth (repeat for several users)' },
  { flag: 'cidr-allow', key: 'cidrAllow', repeatable: true, commands: ALL, help: 'CIDR  only allow clients from this range (repeatable)' },
  { flag: 'cidr-deny', key: 'cidrDeny', repeatable: true, commands: ALL, help: 'CIDR  refuse clients from this range (repeatable)' },
  { flag: 'request-header-add', key: 'requestHeaderAdd', repeatable: true, commands: ['http'], help: "'Name: value'  set a header on requests to your service (Name:value; words ssh split after 'Name:' are joined)" },
  { flag: 'request-header-remove', key: 'requestHeaderRemove', repeatable: true, commands: ['http'], help: 'Name  remove a header from requests to your service' },
  { flag: 'response-header-add', key: 'responseHeaderAdd', repeatable: true, commands: ['http'], help: "'Name: value'  set a header on responses to clients (Name:value; words ssh split after 'Name:' are joined)" },
  { flag: 'response-header-remove', key: 'responseHeaderRemove', repeatable: true, commands: ['http'], help: 'Name  remove a header from responses to clients' },
  { flag: 'ua-filter-allow', key: 'uaFilterAllow', repeatable: true, commands: ['http'], help: 'REGEX  only allow user agents matching one of these (RE2, repeatable)' },
  { flag: 'ua-filter-deny', key: 'uaFilterDeny', repeatable: true, commands: ['http'], help: 'REGEX  refuse user agents matching this (RE2, repeatable; wins over allow)' },
  { flag: 'verify-webhook', key: 'verifyWebhook', repeatable: false, commands: ['http'], help: 'PROVIDER  verify webhook signatures (github, gitlab, stripe, slack, twilio, shopify, sendgrid, svix)' },
  { flag: 'verify-webhook-secret', key: 'verifyWebhookSecret', repeatable: false, commands: ['http'], help: 'SECRET  the signing secret (sendgrid: its public key)' },
  { flag: 'oauth', key: 'oauth', repeatable: false, commands: ['http'], help: 'PROVIDER  require a login with amazon, facebook, github, gitlab, google, linkedin, microsoft or twitch' },
  { flag: 'oauth-client-id', key: 'oauthClientId', repeatable: false, commands: ['http'], help: 'ID  your OAuth app\'s client id (callback: <endpoint URL>/porthole/oauth/callback)' },
  { flag: 'oauth-client-secret', key: 'oauthClientSecret', repeatable: false, commands: ['http'], help: 'SECRET  your OAuth app\'s client secret' },
  { flag: 'oauth-scope', key: 'oauthScope', repeatable: true, commands: ['http'], help: 'SCOPE  an OAuth scope to request besides the provider\'s email scopes (repeatable)' },
  { flag: 'oauth-allow-email', key: 'oauthAllowEmail', repeatable: true, commands: ['http'], help: 'EMAIL  only let in this account (repeatable; with --oauth-allow-domain: either)' },
  { flag: 'oauth-allow-domain', key: 'oauthAllowDomain', repeatable: true, commands: ['http'], help: 'DOMAIN  only let in accounts whose email is at this domain (repeatable)' },
  { flag: 'oidc', key: 'oidc', repeatable: false, commands: ['http'], help: 'ISSUER_URL  require an OpenID Connect login with this provider (discovered at /.well-known/openid-configuration)' },
  { flag: 'oidc-client-id', key: 'oidcClientId', repeatable: false, commands: ['http'], help: 'ID  your OpenID client id (redirect URI: <endpoint URL>/porthole/oauth/callback)' },
  { flag: 'oidc-client-secret', key: 'oidcClientSecret', repeatable: false, commands: ['http'], help: 'SECRET  your OpenID client secret' },
  { flag: 'oidc-scope', key: 'oidcScope', repeatable: true, commands: ['http'], help: 'SCOPE  a scope to request besides openid, email and profile (repeatable)' },
  { flag: 'compression', key: 'compression', repeatable: false, boolean: true, commands: ['http'], help: '  compress responses (gzip, deflate, br) for clients that accept it' },
  { flag: 'circuit-breaker', key: 'circuitBreaker', repeatable: false, commands: ['http'], help: 'RATIO  answer 503 for a while once this share (0-1) of recent responses were 5xx' },
  { flag: 'traffic-policy', key: 'trafficPolicy', repeatable: false, commands: ALL, help: "'DOC'  a traffic policy document (YAML or JSON, ngrok's format), after the flags' rules" },
  { flag: 'traffic-policy-file', key: 'trafficPolicyFile', repeatable: false, commands: ALL, help: '-  read the traffic policy document from stdin: ... < policy.yml' },
  { flag: 'host-header', key: 'hostHeader', repeatable: false, commands: ['http'], help: 'rewrite|HOST[:PORT]  Host header sent upstream (rewrite: localhost); Location is rewritten back' },
  { flag: 'schemes', key: 'schemes', repeatable: false, commands: ['http'], help: 'http,https|https|http  public schemes (default both; https alone redirects plain HTTP with a 308)' },
  { flag: 'upstream-tls', key: 'upstreamTls', repeatable: false, boolean: true, commands: ['http'], help: '  speak TLS to your service through the tunnel (its certificate is not checked unless --upstream-tls-verify)' },
  { flag: 'upstream-tls-verify', key: 'upstreamTlsVerify', repeatable: false, boolean: true, commands: ['http'], help: '  verify the service\'s certificate (system CAs, or --upstream-tls-verify-cas -)' },
  { flag: 'upstream-tls-verify-cas', key: 'upstreamTlsVerifyCas', repeatable: false, commands: ['http'], help: '-  read the CA certificates (PEM) that verify your service from stdin: ... < ca.pem' },
  { flag: 'upstream-protocol', key: 'upstreamProtocol', repeatable: false, commands: ['http'], help: 'http1|http2  protocol to your service (http2: prior knowledge, or ALPN with --upstream-tls)' },
  { flag: 'proxy-proto', key: 'proxyProto', repeatable: false, commands: ['tcp', 'tls'], help: '1|2  prepend a PROXY protocol header (v1 text, v2 binary) to each connection to your service' },
  { flag: 'inspect', key: 'inspect', repeatable: false, boolean: true, commands: ['http'], help: 'true|false  capture requests for your inspector (default true; --inspect=false: nothing is captured)' },
  { flag: 'output', key: 'output', repeatable: false, commands: ALL, help: 'text|json  terminal output: banner and request lines, or one JSON object per line' },
  { flag: 'qr', key: 'qr', repeatable: false, boolean: true, commands: ALL, help: '  show the main URL as a QR code (with ssh -t: a live full-screen view)' },
  { flag: 'help', key: 'help', repeatable: false, commands: ALL, help: '  show this help' },
]
const KNOWN = new Map(FLAGS.map((info) => [info.flag, info]))

const USAGE: Record<Command, readonly string[]> = {
  http: [
    'Usage: ssh -R [name:]80:localhost:PORT <gateway> http [flags]',
    'Names: -R 80:... a random name; -R myapp:80:... myapp.<domain>; -R "*.team:80:..." a wildcard.',
  ],
  tcp: [
    'Usage: ssh -R 0:localhost:PORT <gateway> tcp [flags]       (a free port from the pool)',
    '       ssh -R PORT:localhost:PORT <gateway> tcp [flags]    (that port, if free and yours)',
  ],
  tls: [
    'Usage: ssh -R name:443:localhost:PORT <gateway> tls [flags]',
    'TLS passthrough by SNI: your service terminates TLS with its own certificate.',
  ],
}

function commandHelp (command: Command): string {
  return [
    USAGE[command][0]!,
    '',
    'Flags:',
    ...FLAGS.filter((f) => f.commands.includes(command)).map((f) => `  --${f.flag} ${f.help}`),
    '',
    ...USAGE[command].slice(1),
    'Tip: add -o ExitOnForwardFailure=yes so a refused forward ends the command.',
  ].join('\r\n') + '\r\n'
}

export const HELP: Record<Command, string> = { http: commandHelp('http'), tcp: commandHelp('tcp'), tls: commandHelp('tls') }

export const TOP_HELP = [
  'Usage: ssh -R [name:]80:localhost:PORT <gateway> [http|tcp|tls] [flags]',
  '',
  'Commands:',
  '  http    expose a local HTTP service (the default for ports 80, 443 and 0)',
  '  tcp     expose a local TCP service on a port of the gateway (the default for other ports)',
  '  tls     pass TLS through by SNI to a local TLS service',
  '  urls    list the URLs of your endpoints online now, each with its -R (for ssh -N sessions)',
  '  diagnose  what the gateway sees of you: address, client version, key or token, account, ACL, RTT',
  '',
  'Run `<command> --help` for its flags. With ssh -t: a live full-screen view (Ctrl-C ends the session).',
  'Inspect requests at http://localhost:4040: add -L 4040:localhost:4040 to the ssh command.',
].join('\r\n') + '\r\n'

export const URLS_HELP = [
  'Usage: ssh <gateway> urls [--output json]',
  '',
  'Lists the URLs of your endpoints online now, one per line, each with the -R it came from',
  '(for sessions started with ssh -N, which print nothing). --output json: one JSON object per line.',
].join('\r\n') + '\r\n'

export const DIAGNOSE_HELP = [
  'Usage: ssh <gateway> diagnose [--output json]',
  '',
  'Shows what the gateway sees of you: your address and port, client version, key fingerprint or authtoken id,',
  'account, the credential\'s ACL, the account\'s reservations, your endpoints online now and the round-trip time.',
  '--output json: one JSON object.',
].join('\r\n') + '\r\n'

/** `urls|diagnose [--output text|json] [--help]`: nothing else is taken. */
function parseReport (kind: 'urls' | 'diagnose', argv: yargsParser.Arguments): ParsedCommand {
  const positionals = argv._.map(String)
  if (positionals.length > 1) throw new PortholeError('PH_1002', `argument ${JSON.stringify(positionals[1])} (${kind} takes no arguments)`)
  for (const key of Object.keys(argv)) {
    if (key === '_' || key === '--' || key === 'output' || key === 'help') continue
    throw new PortholeError('PH_1001', `${key.length === 1 ? '-' : '--'}${key} for ${kind} (it takes --output)`)
  }
  if (argv.help === true) return { kind: 'help', text: kind === 'urls' ? URLS_HELP : DIAGNOSE_HELP }
  const raw: unknown = argv.output
  if (raw === undefined) return { kind, output: 'text' }
  if (Array.isArray(raw)) throw new PortholeError('PH_1002', '--output (given more than once)')
  if (raw !== 'text' && raw !== 'json') throw new PortholeError('PH_1002', `--output ${JSON.stringify(String(raw))} (want text or json)`)
  return { kind, output: raw }
}

const HOST_VALUE = /^[A-Za-z0-9.-]+(?::\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::\d{1,5})?$/

function isCommand (word: string): word is Command {
  return (ALL as readonly string[]).includes(word)
}

/** Completes options that wait for stdin: validates the CA certificates and returns the options to bind with. */
export function withStdin (options: SessionOptions, input: string, compile: CompileOptions = {}): SessionOptions {
  if (options.stdin === 'traffic-policy-file') {
    const completed = { ...options, policy: combinePolicies(options.policy, parsePolicy(input)), stdin: null }
    specFor(completed, options.command ?? 'http', compile) // validate before anything binds
    return completed
  }
  if (options.stdin !== 'upstream-tls-verify-cas') return options
  const pems = input.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
  try {
    if (pems.length === 0) throw new Error('no PEM certificate')
    for (const pem of pems) new X509Certificate(pem) // eslint-disable-line no-new
  } catch (error) {
    throw new PortholeError('PH_1002', `--upstream-tls-verify-cas - (stdin: ${(error as Error).message})`)
  }
  return { ...options, upstream: { ...options.upstream, cas: pems.join('\n') }, stdin: null }
}

/** The words and flag names of a command line, never flag values (they may be secrets): `"http --basic-auth"`. */
export function commandShape (command: string): string {
  const words = command.trim().split(/\s+/)
  const shape = [...(/^[a-z]+$/.test(words[0] ?? '') ? [words[0]!] : []), ...words.filter((w) => /^--?[A-Za-z]/.test(w)).map((w) => w.replace(/=.*$/s, ''))]
  const text = shape.slice(0, 8).join(' ').slice(0, 120)
  return JSON.stringify(shape.length > 8 ? `${text} ...` : text)
}

/**
 * yargs-parser's tokenizer lets a quote that is never closed run to the end of the line, so the flags after
 * it become one value (found by the exec fuzz). The same scan as that tokenizer (quotes toggle, no escapes);
 * an unmatched quote is refused only when it swallows a space, i.e. changes how the line splits.
 */
function unmatchedQuote (line: string): string | null {
  const text = line.trim()
  let open: string | null = null
  let at = -1
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!
    if (c === open) open = null
    else if (open === null && (c === '"' || c === "'")) {
      open = c
      at = i
    }
  }
  return open !== null && text.slice(at).includes(' ') ? `${open} at character ${at + 1}` : null
}

/**
 * ssh joins the remote command's arguments with spaces, so `--request-header-add 'X-Added: yes'` arrives as
 * `--request-header-add X-Added: yes`. The rule (README, "Flags after http"): a header-add flag's unquoted value
 * that ends with `:` takes the unquoted words after it, up to the next word starting with `-`, joined with one
 * space each. Quoted values are left to the tokenizer; `Name:value` needs no joining.
 */
const SPLIT_HEADER = /(--(?:request|response)-header-add)(?:=|\s+)([^\s"'=-][^\s"']*:)((?:\s+[^\s"'-][^\s"']*)+)(?=\s|$)/g

export function joinSplitHeaders (line: string): string {
  return line.replace(SPLIT_HEADER, (_all, flag: string, name: string, words: string) => `${flag}="${name} ${words.trim().split(/\s+/).join(' ')}"`)
}

/** Parses an exec string. Throws a PortholeError (PH_10xx) for anything it cannot honour. */
export function parseCommand (commandLine: string, compile: CompileOptions = {}): ParsedCommand {
  // yargs-parser reads a lone '-' as a positional (the stdin convention), not as the value of the flag before it.
  const line = joinSplitHeaders(commandLine.replace(/(--upstream-tls-verify-cas|--traffic-policy-file)\s+-(?=\s|$)/g, '$1=-'))
  const unmatched = unmatchedQuote(line)
  if (unmatched) throw new PortholeError('PH_1041', unmatched)
  // yargs-parser reads any value of a boolean flag but `true` as false: `--inspect=no` must not pass for a choice.
  const boolValue = /(?:^|\s)--(inspect)=(?!(?:true|false)(?:\s|$))(\S*)/.exec(line)
  if (boolValue) throw new PortholeError('PH_1002', `--${boolValue[1]}=${JSON.stringify(boolValue[2])} (want true or false)`)
  const argv = yargsParser(line, {
    string: FLAGS.filter((f) => !f.boolean && f.key !== 'help').map((f) => f.flag),
    boolean: ['help', ...FLAGS.filter((f) => f.boolean).map((f) => f.flag)],
    // No `array:` for repeatable flags: with it yargs-parser drops a repetition that has no value
    // (`--basic-auth a:b --basic-auth`); duplicate-arguments-array collects repeats and keeps the empty one.
    alias: { help: ['h'] },
    configuration: {
      'camel-case-expansion': false,
      'dot-notation': false,
      'parse-numbers': false,
      'parse-positional-numbers': false,
      'boolean-negation': false,
      'short-option-groups': false,
      'greedy-arrays': false,
      'duplicate-arguments-array': true,
      'strip-aliased': true,
      'halt-at-non-option': false,
    },
  })
  const positionals = argv._.map(String)
  const first = positionals[0]
  if (first === 'help') return { kind: 'help', text: TOP_HELP }
  if (first === 'urls' || first === 'diagnose') return parseReport(first, argv)
  if (first !== undefined && !isCommand(first)) throw new PortholeError('PH_1003', JSON.stringify(first))
  const command = first ?? null
  if (positionals.length > 1) throw new PortholeError('PH_1002', `argument ${JSON.stringify(positionals[1])} (flags start with --)`)

  const allowed = command ?? 'http' // no command: flags as for http, the default for ports 80/443/0
  for (const key of Object.keys(argv)) {
    if (key === '_' || key === '--') continue
    const info = KNOWN.get(key)
    // A one-letter option is no misspelling of a long one (-x is not --qr): no guess for those.
    if (!info) throw new PortholeError('PH_1001', key.length === 1 ? `-${key}` : `--${key}${didYouMean(key, KNOWN.keys())}`)
    if (!info.commands.includes(allowed)) throw new PortholeError('PH_1001', `--${key} for ${allowed} (it applies to ${info.commands.join(', ')})`)
  }
  if (argv.help === true) return { kind: 'help', text: command === null ? TOP_HELP : HELP[command] }

  const flags: ModuleFlags = { ...NO_FLAGS }
  let hostHeader: string | undefined
  let schemes: EndpointSpec['schemes'] = BOTH_SCHEMES
  let output: OutputMode = 'text'
  let qr = false
  let proxyProto: 0 | 1 | 2 = 0
  let inspect = true
  const upstream: { -readonly [K in keyof UpstreamOptions]: UpstreamOptions[K] } = { ...PLAIN_UPSTREAM }
  let casFromStdin = false
  let policyFromStdin = false
  let document: PolicyDocument = {}
  for (const info of FLAGS) {
    const raw: unknown = argv[info.flag]
    if (raw === undefined || info.key === 'help') continue
    if (info.boolean) {
      if (info.key === 'upstreamTls') upstream.tls = raw === true
      if (info.key === 'upstreamTlsVerify') upstream.verify = raw === true
      if (info.key === 'compression') flags.compression = raw === true
      if (info.key === 'inspect') inspect = raw === true
      if (info.key === 'qr') qr = raw === true
      continue
    }
    const values = (Array.isArray(raw) ? raw : [raw]).map(String)
    if (!info.repeatable && values.length > 1) throw new PortholeError('PH_1002', `--${info.flag} (given more than once)`)
    for (const value of values) {
      if (value.trim() === '') throw new PortholeError('PH_1002', `--${info.flag} (needs a value)`)
    }
    if (info.key === 'hostHeader') {
      const value = values[0]!
      if (value !== 'rewrite' && !HOST_VALUE.test(value)) throw new PortholeError('PH_1002', `--host-header ${JSON.stringify(value)} (want rewrite or a host[:port])`)
      hostHeader = value
    } else if (info.key === 'schemes') {
      const list = values[0]!.split(',').map((v) => v.trim().toLowerCase())
      if (list.length === 0 || list.some((v) => v !== 'http' && v !== 'https')) {
        throw new PortholeError('PH_1002', `--schemes ${JSON.stringify(values[0])} (want http, https or http,https)`)
      }
      schemes = { http: list.includes('http'), https: list.includes('https') }
    } else if (info.key === 'trafficPolicy') {
      document = parsePolicy(values[0]!)
    } else if (info.key === 'trafficPolicyFile') {
      if (values[0] !== '-') throw new PortholeError('PH_1002', `--traffic-policy-file ${JSON.stringify(values[0])} (give - and send the document on stdin: ... < policy.yml)`)
      policyFromStdin = true
    } else if (info.key === 'upstreamTlsVerifyCas') {
      if (values[0] !== '-') throw new PortholeError('PH_1002', `--upstream-tls-verify-cas ${JSON.stringify(values[0])} (give - and send the PEM on stdin: ... < ca.pem)`)
      casFromStdin = true
    } else if (info.key === 'upstreamProtocol') {
      const value = values[0]!
      if (value !== 'http1' && value !== 'http2') throw new PortholeError('PH_1002', `--upstream-protocol ${JSON.stringify(value)} (want http1 or http2)`)
      upstream.protocol = value
    } else if (info.key === 'proxyProto') {
      const value = values[0]!
      if (value !== '1' && value !== '2') throw new PortholeError('PH_1002', `--proxy-proto ${JSON.stringify(value)} (want 1 or 2)`)
      proxyProto = Number(value) as 1 | 2
    } else if (info.key === 'output') {
      const value = values[0]!
      if (value !== 'text' && value !== 'json') throw new PortholeError('PH_1002', `--output ${JSON.stringify(value)} (want text or json)`)
      output = value
    } else {
      flags[info.key as Exclude<keyof ModuleFlags, 'compression'>] = values
    }
  }
  if (upstream.verify && !upstream.tls) throw new PortholeError('PH_1002', '--upstream-tls-verify (needs --upstream-tls)')
  if (casFromStdin && !upstream.verify) throw new PortholeError('PH_1002', '--upstream-tls-verify-cas (needs --upstream-tls-verify)')
  if (casFromStdin && policyFromStdin) throw new PortholeError('PH_1002', '--traffic-policy-file - (stdin already carries --upstream-tls-verify-cas)')
  if (policyFromStdin && Object.keys(document).length > 0) throw new PortholeError('PH_1002', '--traffic-policy-file (give either it or --traffic-policy)')
  const options: SessionOptions = {
    command,
    policy: combinePolicies(policyFromFlags(flags), document),
    hostHeader,
    schemes,
    upstream,
    proxyProto,
    output,
    inspect,
    stdin: casFromStdin ? 'upstream-tls-verify-cas' : policyFromStdin ? 'traffic-policy-file' : null,
  }
  specFor(options, allowed, compile) // validates every value now, so a bad one is refused before anything binds
  return { kind: 'options', options, view: { qr } }
}
