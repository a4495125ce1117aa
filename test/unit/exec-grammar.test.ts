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
  it('no command and plain http give the defaults', () => {
    expect(options('').command).toBeNull()
    expect(options('http').command).toBe('http')
    expect(options('http').spec.policy).toEqual({})
    expect(options('http').compiled).toEqual({ onTcpConnect: null, onHttpRequest: null, onHttpResponse: null, needsBody: false })
    expect(options('tcp').command).toBe('tcp')
    expect(options('tls --cidr-allow 10.0.0.0/8').compiled.onTcpConnect).toHaveLength(1)
    expect(options('http').output).toBe('text')
  })

  it('compiles module flags to policy rules: IP rules on connect, then auth, then headers', () => {
    const parsed = options("http --basic-auth 'ann:s3cret' --basic-auth bo:pw --cidr-allow 10.0.0.0/8 --cidr-deny 10.1.0.0/16 " +
      "--request-header-add 'X-Team: blue' --request-header-remove x-drop --response-header-add \"X-Frame-Options: DENY\" --response-header-remove server")
    expect(parsed.spec.policy).toEqual({
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
    ['http --cidr-allow 10.0.0/33', 'PH_1004 bad CIDR "10.0.0/33" at on_tcp_connect[0].actions[0]'],
    ['tcp --cidr-deny nonsense', 'PH_1004 bad CIDR "nonsense" at on_tcp_connect[0].actions[0]'],
    ['http --basic-auth nocolon', 'PH_1006 malformed credential "nocolon" (want user:password, both non-empty) at on_http_request[0].actions[0]'],
    ['http --basic-auth :pw', 'PH_1006 malformed credential ":***" (want user:password, both non-empty) at on_http_request[0].actions[0]'],
    ['http --basic-auth user:', 'PH_1006 malformed credential "user:***" (want user:password, both non-empty) at on_http_request[0].actions[0]'],
    ["http --request-header-add 'NoColon'", 'PH_1005 malformed header "NoColon" for --request-header-add (want \'Name: value\')'],
    ["http --request-header-add 'Bad Name: v'", 'PH_1005 malformed header name "Bad Name" at on_http_request[0].actions[0]'],
    ["http --response-header-add 'Content-Length: 5'", 'PH_1005 malformed header Content-Length (managed by the gateway) at on_http_response[0].actions[0]'],
    ['http --request-header-remove', 'PH_1002 bad value for --request-header-remove (needs a value)'],
    ['http --output yaml', 'PH_1002 bad value for --output "yaml" (want text or json)'],
    ['http --output json --output text', 'PH_1002 bad value for --output (given more than once)'],
    ['http --host-header "a b"', 'PH_1002 bad value for --host-header "a b" (want rewrite or a host[:port])'],
  ])('refuses %s', (line, expected) => {
    expect(codeOf(line)).toBe(expected)
  })
})
