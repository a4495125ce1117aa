// `porthole <noun> <verb>`: the operator's commands, each a client of the admin API (--api-url, --api-key),
// except `api-keys create`, which bootstraps the first API key by writing the identity store offline (the
// file store takes its lock, so this is safe while the server runs). Output is lines and tables for people,
// or the API's JSON with --json; errors are one `PH_NNNN: message` line on stderr and a non-zero status.
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import yargsParser from 'yargs-parser'
import { PortholeError, isPortholeError } from '../core/errors.js'
import { didYouMean } from '../core/suggest.js'
import { ApiClient, CliError } from './api-client.js'
import { bytes, table } from './table.js'

export const DEFAULT_API_URL = 'http://127.0.0.1:4040'

interface Parsed {
  readonly args: string[]
  readonly acl: string[]
  readonly description: string | undefined
  readonly dataDir: string | undefined
  readonly json: boolean
}

interface Io {
  readonly env: NodeJS.ProcessEnv
  out (text: string): void
  err (text: string): void
  stdin (): Promise<string>
  api (): ApiClient
}

interface Verb {
  /** Positional arguments, as shown in help: `NAME`, `[ACCOUNT]`. */
  readonly usage: string
  readonly summary: string
  readonly flags?: readonly ('acl' | 'description' | 'data-dir')[]
  readonly run: (parsed: Parsed, io: Io) => Promise<void>
}

const GLOBAL_FLAGS = ['api-url', 'api-key', 'json', 'help']
const FLAG_HELP: Record<string, string> = {
  acl: '--acl X               bind ACL entry, repeatable: bind:HOST, bind:*.DOMAIN, bind:tcp:PORT, bind:*',
  description: '--description TEXT    a note shown in lists',
  'data-dir': '--data-dir DIR        the server\'s data dir (default ./keys, or PORTHOLE_DATA_DIR)',
}

/** Checks the positional arguments against a usage such as `ACCOUNT FILE|-` or `[ACCOUNT]`. */
function positionals (command: string, usage: string, args: string[]): string[] {
  const words = usage.split(' ').filter(Boolean)
  const required = words.filter((w) => !w.startsWith('[')).length
  if (args.length < required || args.length > words.length) {
    throw new CliError(new PortholeError('PH_5001', `arguments: usage: porthole ${command} ${usage}`.trimEnd()).toLine(), 2)
  }
  return args
}

const accountQuery = (account: string | undefined): string => (account === undefined ? '' : `?account=${encodeURIComponent(account)}`)
const acl = (entries: readonly string[]): string => (entries.length === 0 ? '(all of the account)' : entries.join(','))
const date = (iso: string): string => iso.replace('T', ' ').slice(0, 19)

async function printList (io: Io, parsed: Parsed, path: string, resource: string, headers: string[], row: (item: any) => string[]): Promise<void> {
  const items = await io.api().list(path, resource)
  if (parsed.json) io.out(`${JSON.stringify({ [resource]: items, next_page_uri: null }, null, 2)}\n`)
  else io.out(table(headers, items.map(row)))
}

function printJson (io: Io, value: unknown): void {
  io.out(`${JSON.stringify(value, null, 2)}\n`)
}

/** The public key lines of a file (or stdin for `-`): one or more OpenSSH `type base64 [comment]` lines. */
async function keyLines (file: string, io: Io): Promise<string[]> {
  let text: string
  try {
    text = file === '-' ? await io.stdin() : readFileSync(file, 'utf8')
  } catch (error) {
    throw new CliError(new PortholeError('PH_5001', `key file ${file} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`).toLine(), 2)
  }
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'))
  if (lines.length === 0) throw new CliError(new PortholeError('PH_5001', `key file ${file} (no public key in it)`).toLine(), 2)
  return lines
}

/**
 * Whether the identity store holds no account key and no authtoken yet. The gateway lets anonymous clients in
 * only while it holds none (and its listeners are on loopback, or it runs with --allow-anonymous), so the first
 * one ends anonymous access: `keys add` and `tokens create` ask before and say so after.
 */
async function noCredentialsYet (io: Io): Promise<boolean> {
  const [keys, tokens] = await Promise.all([io.api().request('GET', '/api/keys?limit=1'), io.api().request('GET', '/api/tokens?limit=1')])
  return keys.keys.length === 0 && tokens.tokens.length === 0
}

export const ANONYMOUS_ENDED = 'This is the first account credential: the gateway no longer lets anonymous SSH clients and ngrok agents in ' +
  '(unless it runs with --allow-anonymous); from now on they need an account key, an authtoken or --authorized-keys.\n'

export const COMMANDS: Record<string, Record<string, Verb>> = {
  accounts: {
    create: {
      usage: 'NAME',
      summary: 'create an account',
      run: async ({ args, json }, io) => {
        const account = await io.api().request('POST', '/api/accounts', { name: args[0] })
        if (json) printJson(io, account)
        else io.out(`Created account ${account.name}\n`)
      },
    },
    list: {
      usage: '',
      summary: 'list accounts',
      run: (parsed, io) => printList(io, parsed, '/api/accounts', 'accounts', ['NAME', 'CREATED'], (a) => [a.name, date(a.created_at)]),
    },
    delete: deleteVerb('accounts', 'NAME', 'delete an account with its keys, tokens and reservations', 'Deleted account'),
  },
  keys: {
    add: {
      usage: 'ACCOUNT FILE|-',
      summary: 'add the SSH public key(s) in FILE (- for stdin) to an account',
      flags: ['acl', 'description'],
      run: async ({ args, acl: entries, description, json }, io) => {
        const added = []
        const lines = await keyLines(args[1]!, io)
        const first = await noCredentialsYet(io)
        for (const line of lines) {
          const key = await io.api().request('POST', '/api/keys', { account: args[0], public_key: line, acl: entries, ...(description === undefined ? {} : { description }) })
          added.push(key)
          if (!json) io.out(`Added key ${key.id} ${key.fingerprint} to ${key.account}${key.acl.length ? ` (may bind ${key.acl.join(', ')})` : ''}\n`)
        }
        if (json) printJson(io, added.length === 1 ? added[0] : added)
        if (first) io.err(ANONYMOUS_ENDED)
      },
    },
    list: {
      usage: '[ACCOUNT]',
      summary: 'list SSH keys',
      run: (parsed, io) => printList(io, parsed, `/api/keys${accountQuery(parsed.args[0])}`, 'keys', ['ID', 'ACCOUNT', 'FINGERPRINT', 'ACL', 'DESCRIPTION'],
        (k) => [k.id, k.account, k.fingerprint, acl(k.acl), k.description]),
    },
    remove: deleteVerb('keys', 'ID', 'remove a key (its sessions end)', 'Removed key'),
  },
  tokens: {
    create: {
      usage: 'ACCOUNT',
      summary: 'create an authtoken (the SSH password of clients without keys); printed once, alone on stdout',
      flags: ['acl', 'description'],
      run: async ({ args, acl: entries, description, json }, io) => {
        const first = await noCredentialsYet(io)
        const token = await io.api().request('POST', '/api/tokens', { account: args[0], acl: entries, ...(description === undefined ? {} : { description }) })
        if (json) printJson(io, token)
        else {
          io.out(`${token.token}\n`)
          io.err(`Created authtoken ${token.id} for ${token.account}; it is shown only this once.\n`)
        }
        if (first) io.err(ANONYMOUS_ENDED)
      },
    },
    list: {
      usage: '[ACCOUNT]',
      summary: 'list authtokens (never their secrets)',
      run: (parsed, io) => printList(io, parsed, `/api/tokens${accountQuery(parsed.args[0])}`, 'tokens', ['ID', 'ACCOUNT', 'ACL', 'DESCRIPTION', 'CREATED'],
        (t) => [t.id, t.account, acl(t.acl), t.description, date(t.created_at)]),
    },
    revoke: deleteVerb('tokens', 'ID', 'revoke an authtoken (its sessions end)', 'Revoked authtoken'),
  },
  reserve: {
    domain: {
      usage: 'ACCOUNT HOST',
      summary: 'reserve a name (shop, shop.example.com, *.ann.example.com) for an account',
      run: (parsed, io) => reserve(parsed, io, 'domain'),
    },
    tcp: {
      usage: 'ACCOUNT PORT',
      summary: 'reserve a port of the TCP pool for an account',
      run: (parsed, io) => reserve(parsed, io, 'tcp'),
    },
  },
  reservations: {
    list: {
      usage: '[ACCOUNT]',
      summary: 'list reservations',
      run: (parsed, io) => printList(io, parsed, `/api/reservations${accountQuery(parsed.args[0])}`, 'reservations', ['ID', 'ACCOUNT', 'KIND', 'VALUE', 'CREATED'],
        (r) => [r.id, r.account, r.kind, r.value, date(r.created_at)]),
    },
  },
  unreserve: {
    '': deleteVerb('reservations', 'ID', 'remove a reservation', 'Removed reservation'),
  },
  endpoints: {
    list: {
      usage: '',
      summary: 'list the endpoints online now',
      run: (parsed, io) => printList(io, parsed, '/api/endpoints', 'endpoints', ['ID', 'URL', 'PROTO', 'ACCOUNT', 'SESSION'],
        (e) => [e.id, e.urls[0] ?? e.host, e.proto, e.account ?? '-', e.session_id]),
    },
  },
  sessions: {
    list: {
      usage: '',
      summary: 'list the agent sessions (SSH clients and ngrok agents) connected now',
      run: (parsed, io) => printList(io, parsed, '/api/sessions', 'sessions', ['ID', 'ACCOUNT', 'CREDENTIAL', 'REMOTE', 'TYPE', 'CLIENT', 'ENDPOINTS', 'IN', 'OUT', 'STARTED'],
        (s) => [s.id, s.account ?? '-', s.credential.id ?? s.fingerprint ?? s.credential.kind, `${s.remote_addr}:${s.remote_port}`, s.client_type, s.client_version,
          String(s.endpoints.length), bytes(s.bytes_in), bytes(s.bytes_out), date(s.started_at)]),
    },
    kill: deleteVerb('sessions', 'ID', 'end a session and unbind its endpoints', 'Killed session'),
  },
  'api-keys': {
    create: {
      usage: '',
      summary: 'create an admin API key offline, in the data dir (works while the server runs); printed once',
      flags: ['description', 'data-dir'],
      run: async ({ description, dataDir, json }, io) => {
        const dir = resolve(dataDir ?? io.env.PORTHOLE_DATA_DIR ?? './keys')
        const [{ FileIdentityStore }, { Identity }] = await Promise.all([import('../identity/file-store.js'), import('../identity/identity.js')])
        let store
        try {
          store = new FileIdentityStore(dir)
        } catch (error) {
          throw isPortholeError(error) ? CliError.of(error) : new CliError(new PortholeError('PH_5008', `${dir}: ${(error as Error).message}`).toLine())
        }
        try {
          const { record, key } = await new Identity(store, { domain: 'localhost', tcpPorts: { lo: 1, hi: 65535 } }).createApiKey({ description })
          if (json) return printJson(io, { id: record.id, description: record.description, created_at: record.createdAt, key })
          io.out(`${key}\n`)
          io.err(`Created API key ${record.id} in ${store.file}; it is shown only this once. Use it as --api-key or PORTHOLE_API_KEY.\n`)
        } catch (error) {
          throw isPortholeError(error) ? CliError.of(error) : error
        } finally {
          await store.close()
        }
      },
    },
    list: {
      usage: '',
      summary: 'list admin API keys (never the keys)',
      run: (parsed, io) => printList(io, parsed, '/api/api_keys', 'api_keys', ['ID', 'DESCRIPTION', 'CREATED'], (k) => [k.id, k.description, date(k.created_at)]),
    },
    revoke: deleteVerb('api_keys', 'ID', 'revoke an admin API key', 'Revoked API key'),
  },
}

/** A verb that deletes one item by its id (or name): `<done> <id>` on success. */
function deleteVerb (resource: string, usage: string, summary: string, done: string): Verb {
  return {
    usage,
    summary,
    run: async ({ args }, io) => {
      await io.api().request('DELETE', `/api/${resource}/${encodeURIComponent(args[0]!)}`)
      io.out(`${done} ${args[0]}\n`)
    },
  }
}

async function reserve ({ args, json }: Parsed, io: Io, kind: 'domain' | 'tcp'): Promise<void> {
  const reservation = await io.api().request('POST', '/api/reservations', { account: args[0], kind, value: args[1] })
  if (json) return printJson(io, reservation)
  io.out(`Reserved ${kind === 'tcp' ? 'tcp port ' : ''}${reservation.value} for ${reservation.account} (${reservation.id})\n`)
}

function commandName (noun: string, verb: string): string {
  return verb === '' ? noun : `${noun} ${verb}`
}

/** The lines of `porthole --help` for the admin commands. */
export function commandsHelp (first: ReadonlyArray<readonly [string, string]> = []): string {
  const lines = [...first, ...Object.entries(COMMANDS).flatMap(([noun, verbs]) =>
    Object.entries(verbs).map(([verb, spec]) => {
      const flags = (spec.flags ?? []).map((f) => (f === 'acl' ? '[--acl X]...' : f === 'description' ? '[--description D]' : '[--data-dir DIR]'))
      return [`porthole ${commandName(noun, verb)} ${spec.usage} ${flags.join(' ')}`.replace(/\s+/g, ' ').trim(), spec.summary] as const
    }))]
  const width = Math.max(...lines.map(([usage]) => usage!.length))
  return lines.map(([usage, summary]) => `  ${usage!.padEnd(width)}  ${summary}`).join('\n') + '\n'
}

const CLIENT_HELP = `Client flags (every command but api-keys create talks to the admin API):
  --api-url URL         the admin API (default ${DEFAULT_API_URL}, or PORTHOLE_API_URL)
  --api-key KEY         an admin API key; prefer PORTHOLE_API_KEY (a flag shows in ps and shell history);
                        make the first with porthole api-keys create
  --json                print the API's JSON instead of lines and tables
`

function nounHelp (noun: string): string {
  const verbs = COMMANDS[noun]!
  const flags = new Set(Object.values(verbs).flatMap((v) => v.flags ?? []))
  const lines = Object.entries(verbs).map(([verb, spec]) => [`porthole ${commandName(noun, verb)} ${spec.usage}`.trimEnd(), spec.summary] as const)
  const width = Math.max(...lines.map(([usage]) => usage.length))
  return `Usage:\n${lines.map(([usage, summary]) => `  ${usage.padEnd(width)}  ${summary}`).join('\n')}\n\n` +
    (flags.size ? `Flags:\n${[...flags].map((f) => `  ${FLAG_HELP[f]}`).join('\n')}\n\n` : '') + CLIENT_HELP
}

function usageError (detail: string): CliError {
  return new CliError(new PortholeError('PH_5001', detail).toLine(), 2)
}

function parse (noun: string, verb: string, spec: Verb, rest: string[]): Parsed & { apiUrl?: string, apiKey?: string, help: boolean } {
  const argv = yargsParser(rest, {
    string: ['api-url', 'api-key', 'acl', 'description', 'data-dir'],
    boolean: ['json', 'help'],
    array: ['acl'],
    configuration: { 'camel-case-expansion': false, 'dot-notation': false, 'parse-numbers': false, 'parse-positional-numbers': false, 'boolean-negation': false, 'greedy-arrays': false, 'duplicate-arguments-array': true },
  })
  const allowed = [...GLOBAL_FLAGS, ...(spec.flags ?? [])]
  for (const key of Object.keys(argv)) {
    if (key === '_' || key === '--') continue
    if (!allowed.includes(key)) throw usageError(`option --${key} for porthole ${commandName(noun, verb)}${didYouMean(key, allowed)}`)
  }
  for (const key of ['api-url', 'api-key', 'description', 'data-dir']) {
    if (Array.isArray(argv[key])) throw usageError(`option --${key} (given more than once)`)
  }
  return {
    args: argv._.map(String),
    acl: ((argv.acl ?? []) as unknown[]).map(String),
    description: argv.description as string | undefined,
    dataDir: argv['data-dir'] as string | undefined,
    json: argv.json === true,
    help: argv.help === true,
    apiUrl: argv['api-url'] as string | undefined,
    apiKey: argv['api-key'] as string | undefined,
  }
}

function readStdin (): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = ''
    process.stdin.setEncoding('utf8').on('data', (chunk: string) => { text += chunk }).once('end', () => resolve(text)).once('error', reject)
  })
}

/** Runs `porthole <noun> ...`; resolves with the exit status. */
export async function runAdmin (noun: string, rest: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const out = (text: string): void => { process.stdout.write(text) }
  const err = (text: string): void => { process.stderr.write(text) }
  const verbs = COMMANDS[noun]!
  try {
    const bare = '' in verbs
    const verb = bare ? '' : rest[0]
    if (verb === undefined || verb === '--help' || verb === '-h' || verb === 'help') {
      out(nounHelp(noun))
      return verb === undefined ? 2 : 0
    }
    const spec = verbs[verb]
    if (!spec) throw usageError(`command "${noun} ${verb}"${didYouMean(verb, Object.keys(verbs), `${noun} `) || ''} (porthole ${noun} --help lists them)`)
    const parsed = parse(noun, verb, spec, bare ? rest : rest.slice(1))
    if (parsed.help) {
      out(nounHelp(noun))
      return 0
    }
    positionals(commandName(noun, verb), spec.usage, parsed.args)
    let client: ApiClient | undefined
    const io: Io = {
      env,
      out,
      err,
      stdin: readStdin,
      api () {
        if (client) return client
        const key = parsed.apiKey ?? env.PORTHOLE_API_KEY
        if (!key) {
          throw new CliError(`${new PortholeError('PH_5005').toLine()}: pass --api-key or set PORTHOLE_API_KEY; ` +
            'make one on the gateway host with: porthole api-keys create --data-dir <the server\'s data dir>', 2)
        }
        client = new ApiClient(parsed.apiUrl ?? (env.PORTHOLE_API_URL || DEFAULT_API_URL), key)
        return client
      },
    }
    await spec.run(parsed, io)
    return 0
  } catch (error) {
    if (error instanceof CliError) {
      err(`${error.message}\n`)
      return error.exitCode
    }
    err(`${isPortholeError(error) ? error.toLine() : String(error)}\n`)
    return 1
  }
}
