// The SSH command-line grammar: good input becomes the same policy rules the engine runs; bad input is
// refused with a stable code and a one-line reason.
import { describe, expect, it } from 'vitest'
import { parseCommand, specFor, HELP, TOP_HELP } from '../../src/agents/ssh/exec-grammar.js'
import { PortholeError } from '../../src/core/errors.js'

function options (line: string) {
  const parsed = parseCommand(line)
  if (parsed.kind !== 'options') throw new Error('expected options')
  return { ...parsed.options, ...specFor(parsed.options, parsed.options.command ?? 'http') }
}

function codeOf (line: string): string {
  try {
    parseCommand(line)
  } catch (error) {
    expect(error).toBeInstanceOf(PortholeError)
    return `${(error as PortholeError).code} ${(error as PortholeError).message}`
  }
  throw new Error(`no error for ${line}`)
}

describe('exec grammar', () => {
  it('--inspect: on by default, --inspect=false turns capture off for http; refused elsewhere and for other values', () => {
    expect(options('http').inspect).toBe(true)
    expect(options('http').spec.inspect).toBe(true)
    expect(options('http --inspect=false').spec.inspect).toBe(false)
    expect(options('http --inspect false').spec.inspect).toBe(false)
    expect(options('http --inspect').spec.inspect).toBe(true)
    expect(options('tcp').spec.inspect).toBe(false)
    expect(codeOf('http --inspect=no')).toBe('PH_1002 bad value for --inspect="no" (want true or false)')
    expect(codeOf('tcp --inspect=false')).toMatch(/^PH_1001 unknown option --inspect for tcp/)
    expect(HELP.http).toMatch(/--inspect true\|false  capture requests/)
  })

  it('no command and plain http give the defaults', () => {
    expect(options('').command).toBeNull()
    expect(options('http').command).toBe('http')
    expect(options('http').policy).toEqual({})
    expect(options('http').compiled).toEqual({ onTcpConnect: null, onHttpRequest: null, onHttpResponse: null, needsBody: false })
    expect(options('tcp').command).toBe('tcp')
    expect(options('tls --cidr-allow 10.0.0.0/8').compiled.onTcpConnect).toHaveLength(1)
    expect(options('http').output).toBe('text')
  })

  it('compiles module flags to policy rules: IP rules on connect, then auth, then headers', () => {
    const parsed = options("http --basic-auth 'ann:s3cret' --basic-auth bo:pw --cidr-allow 10.0.0.0/8 --cidr-deny 10.1.0.0/16 " +
      "--request-header-add 'X-Team: blue' --request-header-remove x-drop --response-header-add \"X-Frame-Options: DENY\" --response-header-remove server")
    expect(parsed.policy).toEqual({
      on_tcp_connect: [
        { name: 'cidr flags', actions: [{ type: 'restrict-ips', config: { allow: ['10.0.0.0/8'], deny: ['10.1.0.0/16'] } }] },
      ],
      on_http_request: [
        { name: 'basic-auth flag', actions: [{ type: 'basic-auth', config: { credentials: ['ann:s3cret', 'bo:pw'] } }] },
        { name: 'request header flags', actions: [{ type: 'remove-headers', config: { headers: ['x-drop'] } }] },
        { name: 'request header flags', actions: [{ type: 'add-headers', config: { headers: { 'X-Team': 'blue' } } }] },
      ],
      on_http_response: [
        { name: 'response header flags', actions: [{ type: 'remove-headers', config: { headers: ['server'] } }] },
        { name: 'response header flags', actions: [{ type: 'add-headers', config: { headers: { 'X-Frame-Options': 'DENY' } } }] },
      ],
    })
    expect(parsed.compiled.onTcpConnect).toHaveLength(1)
    expect(parsed.compiled.onHttpRequest).toHaveLength(3)
    expect(parsed.compiled.onHttpResponse).toHaveLength(2)
  })

  it('joins a header value that ssh split at its spaces (README: the rule under "Flags after http")', () => {
    const added = (line: string) => options(line).policy.on_http_request?.at(-1)?.actions[0]?.config
    const responded = (line: string) => options(line).policy.on_http_response?.at(-1)?.actions[0]?.config
    // what `ssh gw http --request-header-add 'X-Added: yes'` sends: the quotes are gone, the words are joined by spaces
    expect(added('http --request-header-add X-Added: yes')).toEqual({ headers: { 'X-Added': 'yes' } })
    expect(added('http --request-header-add=X-Added: yes --qr')).toEqual({ headers: { 'X-Added': 'yes' } })
    expect(added('http --request-header-add X-Many:   a  b c --request-header-add X-B: d')).toEqual({ headers: { 'X-Many': 'a b c', 'X-B': 'd' } })
    expect(responded('http --response-header-add Cache-Control: no-store --qr')).toEqual({ headers: { 'Cache-Control': 'no-store' } })
    expect(added('http --request-header-add X-Added:yes')).toEqual({ headers: { 'X-Added': 'yes' } })
    expect(added("http --request-header-add 'X-Added: yes'")).toEqual({ headers: { 'X-Added': 'yes' } })
    // only header-add values that end with ':' are joined; other flags' stray words are still refused
    expect(codeOf('http --request-header-remove X-A: yes')).toBe('PH_1002 bad value for argument "yes" (flags start with --)')
    expect(codeOf('http --request-header-add X-A:b yes')).toBe('PH_1002 bad value for argument "yes" (flags start with --)')
    expect(HELP.http).toMatch(/Name:value; words ssh split after 'Name:' are joined/)
  })

  it('diagnose: text or --output json, its own help, nothing else', () => {
    expect(parseCommand('diagnose')).toEqual({ kind: 'diagnose', output: 'text' })
    expect(parseCommand('diagnose --output json')).toEqual({ kind: 'diagnose', output: 'json' })
    expect(parseCommand('diagnose --help')).toMatchObject({ kind: 'help', text: expect.stringMatching(/^Usage: ssh <gateway> diagnose \[--output json\]/) })
    expect(codeOf('diagnose --qr')).toBe('PH_1001 unknown option --qr for diagnose (it takes --output)')
    expect(codeOf('diagnose me')).toBe('PH_1002 bad value for argument "me" (diagnose takes no arguments)')
    expect(TOP_HELP).toMatch(/diagnose {2}what the gateway sees of you/)
  })

  it('accepts --flag=value, --output json and --host-header', () => {
    expect(options('http --output=json').output).toBe('json')
    expect(options('http --host-header rewrite').spec.hostHeader).toBe('rewrite')
    expect(options('http --host-header=app.internal:3000').spec.hostHeader).toBe('app.internal:3000')
  })

  it('prints help', () => {
    expect(parseCommand('http --help')).toEqual({ kind: 'help', text: HELP.http })
    expect(parseCommand('http -h')).toEqual({ kind: 'help', text: HELP.http })
    expect(parseCommand('tcp --help')).toEqual({ kind: 'help', text: HELP.tcp })
    expect(HELP.tcp).not.toContain('--basic-auth')
    expect(parseCommand('--help')).toEqual({ kind: 'help', text: TOP_HELP })
    expect(parseCommand('help')).toEqual({ kind: 'help', text: TOP_HELP })
    expect(HELP.http).toContain('--basic-auth')
  })

  it.each([
    ['http --basic-aut a:b', 'PH_1001 unknown option --basic-aut; did you mean --basic-auth?'],
    ['http --frobnicate', 'PH_1001 unknown option --frobnicate'],
    ['http -x', 'PH_1001 unknown option -x'],
    ['ftp', 'PH_1003 unknown command "ftp"; use http, tcp or tls'],
    ['tcp --basic-auth a:b', 'PH_1001 unknown option --basic-auth for tcp (it applies to http)'],
    ['http extra', 'PH_1002 bad value for argument "extra" (flags start with --)'],
    // An unclosed quote would make the rest of the line the first flag's value (found by the exec fuzz).
    ['http --basic-auth " --basic-auth u:p', 'PH_1041 unmatched quote " at character 19: it would take the rest of the command line as one value; close it'],
    ["http --request-header-add 'X-A: b --basic-auth u:p", "PH_1041 unmatched quote ' at character 27: it would take the rest of the command line as one value; close it"],
    ['http --cidr-allow 10.0.0/33', 'PH_1004 bad CIDR "10.0.0/33" at on_tcp_connect[0].actions[0]'],
    ['tcp --cidr-deny nonsense', 'PH_1004 bad CIDR "nonsense" at on_tcp_connect[0].actions[0]'],
    ['http --basic-auth nocolon', 'PH_1006 malformed credential "nocolon" (want user:password, both non-empty, no control characters) at on_http_request[0].actions[0]'],
    ['http --basic-auth :pw', 'PH_1006 malformed credential ":***" (want user:password, both non-empty, no control characters) at on_http_request[0].actions[0]'],
    ['http --basic-auth user:', 'PH_1006 malformed credential "user:***" (want user:password, both non-empty, no control characters) at on_http_request[0].actions[0]'],
    // yargs splits on spaces only: a tab would glue the next flag into the password (found by the exec fuzz).
    ['http --basic-auth user:pw\t--compression', 'PH_1006 malformed credential "user:***" (want user:password, both non-empty, no control characters) at on_http_request[0].actions[0]'],
    ["http --request-header-add 'NoColon'", 'PH_1005 malformed header "NoColon" for --request-header-add (want \'Name: value\')'],
    ["http --request-header-add 'Bad Name: v'", 'PH_1005 malformed header name "Bad Name" at on_http_request[0].actions[0]'],
    ["http --response-header-add 'Content-Length: 5'", 'PH_1005 malformed header Content-Length (managed by the gateway) at on_http_response[0].actions[0]'],
    ['http --request-header-remove', 'PH_1002 bad value for --request-header-remove (needs a value)'],
    // A repeated flag with no value was dropped while the first one applied (found by the exec fuzz).
    ['http --basic-auth a:b --basic-auth', 'PH_1002 bad value for --basic-auth (needs a value)'],
    ['http --basic-auth a:b --basic-auth --compression', 'PH_1002 bad value for --basic-auth (needs a value)'],
    ['http --cidr-deny --cidr-deny 10.0.0.0/8', 'PH_1002 bad value for --cidr-deny (needs a value)'],
    ['http --output yaml', 'PH_1002 bad value for --output "yaml" (want text or json)'],
    ['http --output json --output text', 'PH_1002 bad value for --output (given more than once)'],
    ['http --host-header "a b"', 'PH_1002 bad value for --host-header "a b" (want rewrite or a host[:port])'],
  ])('refuses %s', (line, expected) => {
    expect(codeOf(line)).toBe(expected)
  })
})

describe('login flags (--oauth*, --oidc*)', () => {
  const gateway = { sessionSecret: Buffer.alloc(32, 1) }
  const policyOf = (line: string) => {
    const parsed = parseCommand(line, gateway)
    if (parsed.kind !== 'options') throw new Error('expected options')
    expect(specFor(parsed.options, 'http', gateway).compiled.onHttpRequest).not.toBeNull()
    return parsed.options.policy
  }
  const refusal = (line: string): string => {
    try {
      parseCommand(line, gateway)
    } catch (error) {
      return `${(error as PortholeError).code} ${(error as PortholeError).message}`
    }
    return 'none'
  }

  it('compile to oauth and openid-connect rules after basic auth', () => {
    expect(policyOf('http --basic-auth a:b --oauth google --oauth-client-id cid --oauth-client-secret cs --oauth-scope https://www.googleapis.com/auth/drive.readonly ' +
      '--oauth-allow-email ann@example.com --oauth-allow-domain example.org --oauth-allow-domain example.net').on_http_request).toEqual([
      { name: 'basic-auth flag', actions: [{ type: 'basic-auth', config: { credentials: ['a:b'] } }] },
      { name: 'oauth flags', actions: [{ type: 'oauth', config: { provider: 'google', client_id: 'cid', client_secret: 'cs', scopes: ['https://www.googleapis.com/auth/drive.readonly'], allow_emails: ['ann@example.com'], allow_domains: ['example.org', 'example.net'] } }] },
    ])
    expect(policyOf('http --oidc https://login.example.com/realms/x --oidc-client-id cid --oidc-client-secret cs --oidc-scope groups --oidc-scope offline_access').on_http_request).toEqual([
      { name: 'oidc flags', actions: [{ type: 'openid-connect', config: { issuer_url: 'https://login.example.com/realms/x', client_id: 'cid', client_secret: 'cs', scopes: ['groups', 'offline_access'] } }] },
    ])
  })

  it.each([
    ['http --oauth-allow-email a@b.c', 'PH_1002 bad value for --oauth-* flags (they need --oauth PROVIDER)'],
    ['http --oauth github', 'PH_1002 bad value for --oauth (give --oauth-client-id and --oauth-client-secret of your OAuth app: Porthole has no managed ones)'],
    ['http --oidc https://idp.test --oidc-client-id x', 'PH_1002 bad value for --oidc (give --oidc-client-id and --oidc-client-secret of your OAuth app: Porthole has no managed ones)'],
    ['http --oauth github --oauth github --oauth-client-id x --oauth-client-secret y', 'PH_1002 bad value for --oauth (given more than once)'],
    ['http --oauth myspace --oauth-client-id x --oauth-client-secret y', /^PH_1008 invalid traffic policy: config\.provider: want one of amazon, .* at on_http_request\[0\]\.actions\[0\]$/],
    ['http --oidc not-a-url --oidc-client-id x --oidc-client-secret y', /^PH_1008 invalid traffic policy: config\.issuer_url: want the http\(s\) URL/],
    ['http --oauth github --oauth-client-id x --oauth-client-secret y --oauth-allow-email nobody', /config\.allow_emails\.0: want an email address/],
    ['tcp --oidc https://idp.test', 'PH_1001 unknown option --oidc for tcp (it applies to http)'],
    ['http --oauth-allow-emial a@b.c', 'PH_1001 unknown option --oauth-allow-emial; did you mean --oauth-allow-email?'],
  ])('refuses %s', (line, expected) => {
    if (typeof expected === 'string') expect(refusal(line)).toBe(expected)
    else expect(refusal(line)).toMatch(expected)
  })

  it('are listed by http --help', () => {
    for (const flag of ['--oauth PROVIDER', '--oauth-client-id', '--oauth-client-secret', '--oauth-scope', '--oauth-allow-email', '--oauth-allow-domain', '--oidc ISSUER_URL', '--oidc-client-id', '--oidc-client-secret', '--oidc-scope']) {
      expect(HELP.http).toContain(`  ${flag}`)
    }
  })
})
