// The command an SSH user types after the host (`ssh -R ... gateway http --basic-auth a:b`), parsed with
// yargs-parser into the options every forward of the session is bound with. Unknown or bad options are
// refused with a catalogue code: nothing is ever silently replaced by a default.
import yargsParser from 'yargs-parser'
import { PortholeError } from '../../core/errors.js'
import { didYouMean } from '../../core/suggest.js'
import { compilePolicy } from '../../policy/compile.js'
import { policyFromFlags, type ModuleFlags } from '../../policy/from-flags.js'
import type { EndpointProto, EndpointSpec } from '../../core/endpoint.js'
import type { CompiledPolicy } from '../../policy/compiled.js'
import type { PolicyDocument } from '../../policy/document.js'

export type OutputMode = 'text' | 'json'
export type Command = EndpointProto

export interface SessionOptions {
  /** The command the user typed, or null for none (ports then decide: 80/443/0 http, others tcp). */
  readonly command: Command | null
  readonly policy: PolicyDocument
  readonly hostHeader: string | undefined
  readonly schemes: EndpointSpec['schemes']
  readonly output: OutputMode
}

export type ParsedCommand =
  | { kind: 'options', options: SessionOptions }
  | { kind: 'help', text: string }

type FlagKey = keyof ModuleFlags | 'hostHeader' | 'schemes' | 'output' | 'help'

interface FlagInfo {
  readonly flag: string
  readonly key: FlagKey
  readonly repeatable: boolean
  readonly commands: readonly Command[]
  readonly help: string
}

const ALL: readonly Command[] = ['http', 'tcp', 'tls']
const FLAGS: readonly FlagInfo[] = [
  { flag: 'basic-auth', key: 'basicAuth', repeatable: true, commands: ['http'], help: 'user:password  require HTTP basic auth (repeat for several users)' },
  { flag: 'cidr-allow', key: 'cidrAllow', repeatable: true, commands: ALL, help: 'CIDR  only allow clients from this range (repeatable)' },
  { flag: 'cidr-deny', key: 'cidrDeny', repeatable: true, commands: ALL, help: 'CIDR  refuse clients from this range (repeatable)' },
  { flag: 'request-header-add', key: 'requestHeaderAdd', repeatable: true, commands: ['http'], help: "'Name: value'  set a header on requests to your service" },
  { flag: 'request-header-remove', key: 'requestHeaderRemove', repeatable: true, commands: ['http'], help: 'Name  remove a header from requests to your service' },
  { flag: 'response-header-add', key: 'responseHeaderAdd', repeatable: true, commands: ['http'], help: "'Name: value'  set a header on responses to clients" },
  { flag: 'response-header-remove', key: 'responseHeaderRemove', repeatable: true, commands: ['http'], help: 'Name  remove a header from responses to clients' },
  { flag: 'host-header', key: 'hostHeader', repeatable: false, commands: ['http'], help: 'rewrite|HOST[:PORT]  Host header sent upstream (rewrite: localhost); Location is rewritten back' },
  { flag: 'schemes', key: 'schemes', repeatable: false, commands: ['http'], help: 'http,https|https|http  public schemes (default both; https alone redirects plain HTTP with a 308)' },
  { flag: 'output', key: 'output', repeatable: false, commands: ALL, help: 'text|json  terminal output: banner and request lines, or one JSON object per line' },
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
  '',
  'Run `<command> --help` for its flags.',
].join('\r\n') + '\r\n'

const NO_FLAGS: ModuleFlags = {
  basicAuth: [], cidrAllow: [], cidrDeny: [], requestHeaderAdd: [], requestHeaderRemove: [], responseHeaderAdd: [], responseHeaderRemove: [],
}

const BOTH_SCHEMES = { http: true, https: true } as const

export const DEFAULT_OPTIONS: SessionOptions = { command: null, policy: {}, hostHeader: undefined, schemes: BOTH_SCHEMES, output: 'text' }

/** The spec and compiled policy a forward of `proto` is bound with. Throws PH_10xx if they do not fit. */
export function specFor (options: SessionOptions, proto: EndpointProto): { spec: EndpointSpec, compiled: CompiledPolicy } {
  const compiled = compilePolicy(options.policy, proto)
  const spec: EndpointSpec = proto === 'http' && options.hostHeader !== undefined
    ? { proto, policy: options.policy, hostHeader: options.hostHeader, schemes: options.schemes }
    : { proto, policy: options.policy, schemes: proto === 'http' ? options.schemes : BOTH_SCHEMES }
  return { spec, compiled }
}

const HOST_VALUE = /^[A-Za-z0-9.-]+(?::\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](?::\d{1,5})?$/

function isCommand (word: string): word is Command {
  return (ALL as readonly string[]).includes(word)
}

/** Parses an exec string. Throws a PortholeError (PH_10xx) for anything it cannot honour. */
export function parseCommand (commandLine: string): ParsedCommand {
  const argv = yargsParser(commandLine, {
    string: FLAGS.filter((f) => f.key !== 'help').map((f) => f.flag),
    boolean: ['help'],
    array: FLAGS.filter((f) => f.repeatable).map((f) => f.flag),
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
  if (first !== undefined && !isCommand(first)) throw new PortholeError('PH_1003', JSON.stringify(first))
  const command = first ?? null
  if (positionals.length > 1) throw new PortholeError('PH_1002', `argument ${JSON.stringify(positionals[1])} (flags start with --)`)

  const allowed = command ?? 'http' // no command: flags as for http, the default for ports 80/443/0
  for (const key of Object.keys(argv)) {
    if (key === '_' || key === '--') continue
    const info = KNOWN.get(key)
    if (!info) throw new PortholeError('PH_1001', `${key.length === 1 ? '-' : '--'}${key}${didYouMean(key, KNOWN.keys())}`)
    if (!info.commands.includes(allowed)) throw new PortholeError('PH_1001', `--${key} for ${allowed} (it applies to ${info.commands.join(', ')})`)
  }
  if (argv.help === true) return { kind: 'help', text: command === null ? TOP_HELP : HELP[command] }

  const flags: ModuleFlags = { ...NO_FLAGS }
  let hostHeader: string | undefined
  let schemes: EndpointSpec['schemes'] = BOTH_SCHEMES
  let output: OutputMode = 'text'
  for (const info of FLAGS) {
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
    } else if (info.key === 'schemes') {
      const list = values[0]!.split(',').map((v) => v.trim().toLowerCase())
      if (list.length === 0 || list.some((v) => v !== 'http' && v !== 'https')) {
        throw new PortholeError('PH_1002', `--schemes ${JSON.stringify(values[0])} (want http, https or http,https)`)
      }
      schemes = { http: list.includes('http'), https: list.includes('https') }
    } else if (info.key === 'output') {
      const value = values[0]!
      if (value !== 'text' && value !== 'json') throw new PortholeError('PH_1002', `--output ${JSON.stringify(value)} (want text or json)`)
      output = value
    } else {
      flags[info.key] = values
    }
  }
  const options: SessionOptions = { command, policy: policyFromFlags(flags), hostHeader, schemes, output }
  specFor(options, allowed) // validates every value now, so a bad one is refused before anything binds
  return { kind: 'options', options }
}
