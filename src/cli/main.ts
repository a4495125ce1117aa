// `porthole <command>`: the command-line entry. Today: `serve`. Flags mirror config keys (kebab-case).
import { readFileSync } from 'node:fs'
import yargsParser from 'yargs-parser'
import { CONFIG_KEYS, kebab, loadConfig } from '../config/load.js'
import { PortholeError, isPortholeError } from '../core/errors.js'
import { didYouMean } from '../core/suggest.js'
import { COMMANDS, commandsHelp, runAdmin } from './admin.js'
import { tryLine } from './try-line.js'
import { runService, SERVICE_HELP_LINE } from './service.js'

const BOOLEAN_FLAGS = ['allow-anonymous', 'policy-private-urls', 'ssh-legacy-algorithms', 'inspect', 'events-log', 'fast-h1']
const ARRAY_FLAGS = ['authorized-keys', 'events-webhook']
const FLAGS = [...CONFIG_KEYS.map(kebab), 'config']

const USAGE = `Usage: porthole serve [flags]

Runs the gateway. With no flags: domain localhost, SSH on 127.0.0.1:2222, HTTP on 127.0.0.1:8080,
HTTPS on 127.0.0.1:8443, state, host keys and the local CA (ca.pem) in ./keys.
Users then run:  ssh -p 2222 -R 80:localhost:3000 localhost http

Flags (also PORTHOLE_<NAME> env vars and kebab-case keys in a YAML --config file):
  --config FILE            YAML settings file
  --domain NAME            base domain of endpoint names (default localhost)
  --ssh-addr HOST:PORT     SSH listener (default 127.0.0.1:2222)
  --http-addr HOST:PORT    HTTP listener (default 127.0.0.1:8080)
  --https-addr HOST:PORT   HTTPS and TLS-passthrough listener, routed by SNI (default 127.0.0.1:8443)
  --api-addr HOST:PORT     admin REST API, authenticated by API keys (default 127.0.0.1:4040; off to disable)
  --agent-addr HOST:PORT   ngrok agents (@ngrok/ngrok SDKs) connect here over TLS (default 127.0.0.1:4443; off)
  --tcp-ports LO-HI        ports for tcp endpoints, on the HTTP listener's interface (default 20000-20999)
  --tcp-host NAME          host printed in tcp:// URLs (default: the domain)
  --data-dir DIR           host keys and state (default ./keys)
  --authorized-keys FILE   OpenSSH authorized_keys file of allowed keys (repeatable)
  --allow-anonymous        accept any client even on public listeners
  --name-grace DURATION    how long a name stays with its owner after disconnect (default 24h)
  --anonymous-name-grace D the same for anonymous owners (keys the gateway does not know; default 1h)
  --max-holds N            names held by known owners (default 10000; full: new names refused)
  --max-anonymous-holds N  names held by anonymous owners (default 2000; full: the one offline longest goes)
  --max-holds-per-owner N  names one key, authtoken or account holds (default 100; full: its oldest offline goes)
  --max-startups S:R:F     SSH connections not yet logged in, as OpenSSH MaxStartups (default 50:30:200)
  --per-source-max-startups N  of those, per source address or IPv6 /64 (default 20)
  --login-grace-time D     time an SSH connection has to log in (default 30s)
  --max-sessions N|auto    agent sessions (SSH, ngrok) of known keys (default auto: half the memory at 256 KiB a
                           session, at least 1000: max(1000, totalmem / 2 / 262144))
  --max-anonymous-sessions N|auto  sessions of anonymous clients, a budget apart (default auto: half of the above)
  --max-anonymous-sessions-per-source N  anonymous sessions per source address or IPv6 /64 (default 20)
  --max-sessions-per-key N  sessions of one key, authtoken or account at once (default 100)
  --max-forwards-per-session N  forwards (-R, ngrok tunnels) one session may hold (default 16)
  --max-streams-per-session N  public connections and requests one session carries at once (default 1024;
                           ngrok agents: at most 480, their protocol's limit)
  --keepalive-interval D   ping an idle agent this often (default 15s; OpenSSH ClientAliveInterval)
  --keepalive-count-max N  unanswered pings before its session is closed (default 3; ClientAliveCountMax)
  --command-wait D         how long SSH forwards wait for the session's command and its stdin (default 10s)
  --upstream-timeout D     the edge waits this long for an agent's response headers and between body chunks
                           (default 5m)
  --upstream-connections N  tunnel streams open at once per endpoint towards its agent (default 128; more wait)
  --max-request-header-size BYTES  largest request head a visitor may send (default 16384; larger: 431)
  --max-response-header-size BYTES  largest response head an upstream may send (default 32768; larger: 502)
  --header-timeout DURATION  every listener (HTTP, HTTPS, TLS passthrough, admin API) closes a connection whose
                           request headers (or TLS ClientHello) are not complete this long after they began (default 10s)
  --idle-timeout DURATION  HTTP and HTTPS close a connection with no request in progress (HTTP/2: no open stream,
                           whatever PING/SETTINGS frames come), and reset a request that moves no byte, after this
                           long (default 5m)
  --certs-dir DIR          your own certificates: <host>.crt + <host>.key PEM pairs (a wildcard as
                           _wildcard.<suffix>.crt), watched and reloaded; they win over ACME and the local CA
  --acme-directory URL     order certificates for bound names from this ACME CA (HTTP-01 on the HTTP
                           listener, which must be reachable on port 80); needs --acme-email
  --acme-email EMAIL       contact address for the ACME account (you agree to the CA's terms)
  --acme-ca-file FILE      extra CA certificates (PEM) to trust for the ACME server's HTTPS
  --oauth-providers JSON   endpoints of oauth providers not at their public service (GitHub Enterprise, self-hosted
                           GitLab): {"github":{"authorize-url":..,"token-url":..,"userinfo-url":..,"emails-url":..}}
  --policy-private-urls    let users' policies fetch from loopback/private addresses (jwt-validation key sets,
                           OpenID issuers); off: only public addresses, so SSH users cannot probe your network
  --ssh-legacy-algorithms=false
                           offer only modern SSH algorithms; the default also offers ssh-rsa (SHA-1) host-key
                           signatures and diffie-hellman-group14-sha1 for Dropbear 2016.74-2019.78 on routers
  --inspect=false          capture no requests at all (default: every HTTP request's heads and first 64 KiB of
                           each body are kept in memory, per owner, for the user's inspector and the admin API)
  --inspect-memory-mib N   memory for captured requests in all, in MiB (default 256; per owner: 500 records, 8 MiB)
  --inspect-max-owners N   owners whose captured requests are kept (default 1000; the least recently active go first)
  --fast-h1=false          send every HTTP/1.1 request through node's HTTP server and undici (default: those
                           to endpoints with no policy or module take the fast path, for less CPU per request)
  --log-level LEVEL        fatal|error|warn|info|debug|trace|silent (default info)
  --events-log             log one line per event (ngrok's shapes: http_request_complete.v0, tcp_connection_closed.v0,
                           agent_session_start.v0, agent_session_stop.v0) at info, component events
  --events-file FILE       append events as JSON lines to FILE (renamed to FILE.1 at 100 MiB)
  --events-webhook URL     POST events in JSON batches {"events":[...]} to URL (repeatable); retried with backoff,
                           at most 10000 waiting per URL, the rest dropped and counted (porthole_events_dropped_total)
  --events-webhook-secret S  sign webhook bodies: X-Porthole-Signature: sha256=<HMAC-SHA256 of the body, hex>
  --events-types LIST      comma list of the event types to emit (default all)
  --metrics-addr HOST:PORT  Prometheus GET /metrics and GET /healthz on a listener of their own (default off); both
                           are also on --api-addr, WITHOUT an API key: counts only, no names, addresses or secrets
`

const HELP = `Usage: porthole <command> ...

${commandsHelp([['porthole serve [flags]', 'run the gateway (porthole serve --help lists its flags)'], SERVICE_HELP_LINE])}
Every command but serve, service and api-keys create is a client of the gateway's admin API:
  --api-url URL   (default http://127.0.0.1:4040, or PORTHOLE_API_URL)
  --api-key KEY   (or PORTHOLE_API_KEY; make the first with porthole api-keys create on the gateway host)
  --json          print the API's JSON
porthole <command> --help shows a command's arguments and flags.
`

function version (): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
  return pkg.version
}

function parseFlags (args: string[]): Record<string, unknown> {
  const argv = yargsParser(args, {
    string: FLAGS.filter((f) => !BOOLEAN_FLAGS.includes(f)),
    boolean: [...BOOLEAN_FLAGS, 'help'],
    array: ARRAY_FLAGS,
    configuration: { 'camel-case-expansion': false, 'dot-notation': false, 'parse-numbers': false, 'boolean-negation': false, 'greedy-arrays': false, 'duplicate-arguments-array': true },
  })
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(argv)) {
    if (key === '_' || key === '--' || key === 'help') continue
    if (!FLAGS.includes(key)) {
      throw new PortholeError('PH_2001', `unknown option --${key}${didYouMean(key, FLAGS)}`)
    }
    if (value === undefined) continue
    if (!ARRAY_FLAGS.includes(key) && Array.isArray(value)) throw new PortholeError('PH_2001', `--${key} given more than once`)
    out[key.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())] = value
  }
  if (argv._.length > 1) throw new PortholeError('PH_2001', `unexpected argument ${JSON.stringify(String(argv._[1]))}`)
  if (argv.help) out.help = true
  return out
}

export async function main (args: string[]): Promise<number | undefined> {
  const [command, ...rest] = args
  if (command === '--version' || command === '-v') {
    process.stdout.write(`${version()}\n`)
    return 0
  }
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(HELP)
    return command === undefined ? 1 : 0
  }
  if (Object.hasOwn(COMMANDS, command)) return runAdmin(command, rest)
  if (command === 'service') return runService(rest)
  if (command !== 'serve') {
    const known = ['serve', 'service', ...Object.keys(COMMANDS)]
    process.stderr.write(`PH_2001: unknown command ${JSON.stringify(command)}${didYouMean(command, known, '') || ''} (porthole --help lists commands)\n`)
    return 2
  }
  // The gateway's modules load only for serve: the client commands start faster without them.
  const [{ startGateway }, { storedCredentialsExist }, { createLogger }] = await Promise.all([import('../gateway.js'), import('../identity/file-store.js'), import('../log.js')])
  let config
  try {
    const flags = parseFlags(rest)
    if (flags.help) {
      process.stdout.write(USAGE)
      return 0
    }
    config = loadConfig(flags, process.env, { credentialsIn: (dataDir) => storedCredentialsExist(dataDir) })
  } catch (error) {
    process.stderr.write(`${isPortholeError(error) ? error.toLine() : String(error)}\n`)
    return 2
  }
  const log = createLogger(config.logLevel)
  let gateway
  try {
    gateway = await startGateway(config, log)
  } catch (error) {
    const err = error as NodeJS.ErrnoException & { address?: string, port?: number }
    const detail = err.code === 'EADDRINUSE' ? `${err.address}:${err.port} is already in use` : err.message
    const line = isPortholeError(err) ? err.toLine() : new PortholeError('PH_2002', detail).toLine()
    log.fatal({ err: err.message }, line)
    process.stderr.write(`${line}\n`)
    return 1
  }
  process.stderr.write(`${tryLine(config.sshAddr.host, gateway.sshPort, config.domain)}\n`)
  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now')
      process.exit(1)
    }
    stopping = true
    log.info({ signal }, 'shutting down')
    gateway.close().then(() => {
      log.info('stopped')
      process.exit(0)
    }, (error: unknown) => {
      log.error({ err: String(error) }, 'error while shutting down')
      process.exit(1)
    })
  }
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGTERM', () => stop('SIGTERM'))
  return undefined
}
