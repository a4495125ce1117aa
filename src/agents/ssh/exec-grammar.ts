// The command an SSH user types after the host (`ssh -R ... gateway http --basic-auth a:b`), parsed with
// yargs-parser into the options every forward of the session is bound with. Unknown or bad options are
// refused with a catalogue code: nothing is ever silently replaced by a default.
import yargsParser from 'yargs-parser'
import { PortholeError } from '../../core/errors.js'
import { didYouMean } from '../../core/suggest.js'
import { compilePolicy } from '../../policy/compile.js'
import { policyFromFlags, type ModuleFlags } from '../../policy/from-flags.js'
import type { EndpointSpec } from '../../core/endpoint.js'
import type { CompiledPolicy } from '../../policy/compiled.js'

export type OutputMode = 'text' | 'json'

export interface SessionOptions {
  /** The command the user typed, or null for none (ports then decide: 80/443/0 http). */
  readonly command: 'http' | null
  readonly spec: EndpointSpec
  readonly compiled: CompiledPolicy
  readonly output: OutputMode
}

export type ParsedCommand =
  | { kind: 'options', options: SessionOptions }
  | { kind: 'help', text: string }

interface FlagInfo { readonly flag: string, readonly key: keyof ModuleFlags | 'hostHeader' | 'output' | 'help', readonly repeatable: boolean, readonly help: string }

const HTTP_FLAGS: readonly FlagInfo[] = [
  { flag: 'basic-auth', key: 'basicAuth', repeatable: true, help: "user:password  require HTTP basic auth (repeat for several users)" },
  { flag: 'cidr-allow', key: 'cidrAllow', repeatable: true, help: 'CIDR  only allow clients from this range (repeatable)' },
  { flag: 'cidr-deny', key: 'cidrDeny', repeatable: true, help: 'CIDR  refuse clients from this range (repeatable)' },
  { flag: 'request-header-add', key: 'requestHeaderAdd', repeatable: true, help: "'Name: value'  set a header on requests to your service" },
  { flag: 'request-header-remove', key: 'requestHeaderRemove', repeatable: true, help: 'Name  remove a header from requests to your service' },
  { flag: 'response-header-add', key: 'responseHeaderAdd', repeatable: true, help: "'Name: value'  set a header on responses to clients" },
  { flag: 'response-header-remove', key: 'responseHeaderRemove', repeatable: true, help: 'Name  remove a header from responses to clients' },
  { flag: 'host-header', key: 'hostHeader', repeatable: false, help: 'rewrite|HOST[:PORT]  Host header sent upstream (rewrite: localhost); Location is rewritten back' },
  { flag: 'output', key: 'output', repeatable: false, help: 'text|json  terminal output: banner and request lines, or one JSON object per line' },
  { flag: 'help', key: 'help', repeatable: false, help: '  show this help' },
]

const KNOWN = new Map(HTTP_FLAGS.map((info) => [info.flag, info]))

export const HTTP_HELP = [
  'Usage: ssh -R [name:]80:localhost:PORT <gateway> http [flags]',
  '',
  'Flags:',
  ...HTTP_FLAGS.map((info) => `  --${info.flag} ${info.help}`),
  '',
  'Names: -R 80:... a random name; -R myapp:80:... myapp.<domain>; -R "*.team:80:..." a wildcard.',
  'Tip: add -o ExitOnForwardFailure=yes so a refused name ends the command.',
].join('\r\n') + '\r\n'

export const TOP_HELP = [
  'Usage: ssh -R [name:]80:localhost:PORT <gateway> [http] [flags]',
  '',
  'Commands:',
  '  http    expose a local HTTP service (the default for ports 80, 443 and 0)',
  '',
  'Run `http --help` for its flags.',
].join('\r\n') + '\r\n'

const DEFAULT_FLAGS: ModuleFlags = {
  basicAuth: [], cidrAllow: [], cidrDeny: [], requestHeaderAdd: [], requestHeaderRemove: [], responseHeaderAdd: [], responseHeaderRemove: [],
}

function buildOptions (command: 'http' | null, flags: ModuleFlags, hostHeader: string | undefined, output: OutputMode): SessionOptions {
  const policy = policyFromFlags(flags)
  const compiled = compilePolicy(policy)
  const spec: EndpointSpec = hostHeader === undefined ? { proto: 'http', policy } : { proto: 'http', policy, hostHeader }
  return { command, spec, compiled, output }
}

export const DEFAULT_OPTIONS: SessionOptions = buildOptions(null, DEFAULT_FLAGS, undefined, 'text')

const HOST_VALUE = /^[A-Za-z0-9.-]+(?::\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::\d{1,5})?$/

/** Parses an exec string. Throws a PortholeError (PH_10xx) for anything it cannot honour. */
export function parseCommand (commandLine: string): ParsedCommand {
  const argv = yargsParser(commandLine, {
    string: HTTP_FLAGS.filter((f) => f.key !== 'help').map((f) => f.flag),
    boolean: ['help'],
    array: HTTP_FLAGS.filter((f) => f.repeatable).map((f) => f.flag),
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
  if (first !== undefined && first !== 'http') {
    if (first === 'tcp' || first === 'tls') throw new PortholeError('PH_1016', first)
    throw new PortholeError('PH_1003', JSON.stringify(first))
  }
  if (positionals.length > 1) throw new PortholeError('PH_1002', `argument ${JSON.stringify(positionals[1])} (flags start with --)`)

  for (const key of Object.keys(argv)) {
    if (key === '_' || key === '--') continue
    if (!KNOWN.has(key)) throw new PortholeError('PH_1001', `${key.length === 1 ? '-' : '--'}${key}${didYouMean(key, KNOWN.keys())}`)
  }
  if (argv.help === true) return { kind: 'help', text: first === undefined ? TOP_HELP : HTTP_HELP }

  const flags: ModuleFlags = { ...DEFAULT_FLAGS }
  let hostHeader: string | undefined
  let output: OutputMode = 'text'
  for (const info of HTTP_FLAGS) {
    const raw: unknown = argv[info.flag]
    if (raw === undefined || info.key === 'help') continue
    const values = (Array.isArray(raw) ? raw : [raw]).map(String)
    if (!info.repeatable && values.length > 1) throw new PortholeError('PH_1002', `--${info.flag} (given more than once)`)
    // yargs-parser gives [] for an array flag with no value after it.
    if (values.length === 0) throw new PortholeError('PH_1002', `--${info.flag} (needs a value)`)
    for (const value of values) {
      if (value.trim() === '') throw new PortholeError('PH_1002', `--${info.flag} (needs a value)`)
    }
    if (info.key === 'hostHeader') {
      const value = values[0]!
      if (value !== 'rewrite' && !HOST_VALUE.test(value)) throw new PortholeError('PH_1002', `--host-header ${JSON.stringify(value)} (want rewrite or a host[:port])`)
      hostHeader = value
    } else if (info.key === 'output') {
      const value = values[0]!
      if (value !== 'text' && value !== 'json') throw new PortholeError('PH_1002', `--output ${JSON.stringify(value)} (want text or json)`)
      output = value
    } else {
      flags[info.key] = values
    }
  }
  return { kind: 'options', options: buildOptions(first === 'http' ? 'http' : null, flags, hostHeader, output) }
}
