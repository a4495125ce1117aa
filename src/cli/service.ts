// `porthole service install|uninstall`: writes (or removes) a hardened systemd unit that runs `porthole serve
// --config FILE` at boot. The unit is the whole deployment story on a VPS, so it is checked before it is written:
// the config must load as the service will load it, and an existing unit that differs is not overwritten unless
// asked. The hardening lines and why each is there are in renderUnit; docs/deploy.md walks an operator through it.
import { execFileSync } from 'node:child_process'
import { accessSync, constants, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import yargsParser from 'yargs-parser'
import { loadConfig } from '../config/load.js'
import { isPortholeError, PortholeError } from '../core/errors.js'
import { didYouMean } from '../core/suggest.js'
import { storedCredentialsExist } from '../identity/file-store.js'
import { GATEWAY_NODE_FLAGS } from './node-flags.js'

export const SYSTEM_UNIT_DIR = '/etc/systemd/system'
export const UNIT_NAME = 'porthole.service'
/** The service's data dir: systemd makes it (StateDirectory=porthole) and gives it to the service's user. */
export const SERVICE_DATA_DIR = '/var/lib/porthole'
/** This installation's entry point and deployment guide (src/cli and dist/cli are both two levels down). */
const BIN = fileURLToPath(new URL('../../bin/porthole.js', import.meta.url))
const DOCS = fileURLToPath(new URL('../../docs/deploy.md', import.meta.url))

export interface UnitSpec {
  /** Absolute path of the node binary that runs the gateway. */
  readonly node: string
  /** Absolute path of bin/porthole.js. */
  readonly bin: string
  /** Absolute path of the YAML config file. */
  readonly config: string
  /** A system user that exists; undefined: a dynamic user named porthole (DynamicUser=yes). */
  readonly user?: string | undefined
  /** Absolute path of docs/deploy.md next to bin/. */
  readonly docs: string
}

/** Quotes one ExecStart word the way systemd reads it; `%` and `$` are escaped so that they stay literal. */
export function execWord (word: string): string {
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(word)) throw new PortholeError('PH_2014', `${JSON.stringify(word)} contains a control character`)
  const literal = word.replace(/%/g, '%%').replace(/\$/g, '$$$$')
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(literal) ? literal : `"${literal.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`
}

/** The unit's text. Every [Service] line below is asserted by test/unit/service.test.ts and checked by systemd-analyze. */
export function renderUnit (spec: UnitSpec): string {
  const exec = [spec.node, ...GATEWAY_NODE_FLAGS, spec.bin, 'serve', '--config', spec.config, '--data-dir', SERVICE_DATA_DIR].map(execWord).join(' ')
  const user = spec.user === undefined
    ? ['# A user made when the service starts and gone when it stops; it owns only /var/lib/porthole.', 'DynamicUser=yes', 'User=porthole']
    : [`User=${spec.user}`, `Group=${spec.user}`]
  return `# Written by \`porthole service install\`; \`porthole service uninstall\` removes it.
[Unit]
Description=Porthole ingress gateway (SSH and ngrok agents to HTTP, HTTPS, TCP and TLS endpoints)
Documentation=${execWord(`file://${spec.docs}`)}
Wants=network-online.target
After=network-online.target

[Service]
Type=exec
ExecStart=${exec}
${user.join('\n')}
# Host keys, identities, certificates and the local CA: /var/lib/porthole, kept across restarts and upgrades.
StateDirectory=porthole
StateDirectoryMode=0700
UMask=0077
WorkingDirectory=${SERVICE_DATA_DIR}
Environment=NODE_ENV=production
# The gateway closes its listeners and sessions on SIGINT or SIGTERM, then exits 0.
KillSignal=SIGTERM
TimeoutStopSec=30s
Restart=on-failure
RestartSec=2s
# Every SSH session, tunnel stream and HTTP connection is a file descriptor.
LimitNOFILE=1048576

# Ports 22, 80 and 443 without root: this one capability, nothing else.
AmbientCapabilities=CAP_NET_BIND_SERVICE
CapabilityBoundingSet=CAP_NET_BIND_SERVICE
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateMounts=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
RemoveIPC=yes
LockPersonality=yes
# Not MemoryDenyWriteExecute=yes: V8's JIT compiler writes machine code into memory it then executes (W+X
# mappings); with the filter on, node aborts at start.
MemoryDenyWriteExecute=no
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged
SystemCallErrorNumber=EPERM

[Install]
WantedBy=multi-user.target
`
}

export interface ServiceIo {
  out: (text: string) => void
  err: (text: string) => void
  /** Runs systemctl with these arguments; throws on failure. */
  systemctl: (args: string[]) => void
  isRoot: () => boolean
  userExists: (name: string) => boolean
  /** The directory systemd reads units from: writing there needs root and is followed by systemctl. */
  systemUnitDir: string
  /** Paths the unit hides from the service (HIDDEN_FROM_SERVICE; tests whose files live in /tmp narrow it). */
  hidden: RegExp
}

/** What the unit's ProtectHome=yes and PrivateTmp=yes hide from the service: files it needs cannot live there. */
export const HIDDEN_FROM_SERVICE = /^\/(home|root|run\/user|tmp|var\/tmp)(\/|$)/

const defaultIo: ServiceIo = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
  systemctl: (args) => { execFileSync('systemctl', args, { stdio: ['ignore', 'inherit', 'pipe'] }) },
  isRoot: () => process.getuid?.() === 0,
  userExists: (name) => {
    try {
      execFileSync('getent', ['passwd', name], { stdio: 'ignore' })
      return true
    } catch {
      return false
    }
  },
  systemUnitDir: SYSTEM_UNIT_DIR,
  hidden: HIDDEN_FROM_SERVICE,
}

const USAGE = `Usage:
  porthole service install --config FILE [--user NAME] [--unit-dir DIR] [--force] [--dry-run]
  porthole service uninstall [--unit-dir DIR]

install writes ${UNIT_NAME} (hardened: a dynamic user, or --user NAME, with only CAP_NET_BIND_SERVICE, state in
${SERVICE_DATA_DIR}) that runs this porthole with \`serve --config FILE\`, after loading FILE as the service will;
then systemctl daemon-reload. Start it with: systemctl enable --now porthole
  --config FILE     the gateway's YAML settings (required; its data-dir, if any, must be ${SERVICE_DATA_DIR})
  --user NAME       run as this existing system user instead of a dynamic one
  --unit-dir DIR    where to write the unit (default ${SYSTEM_UNIT_DIR}; another dir: no systemctl call)
  --force           replace a different ${UNIT_NAME} already there
  --dry-run         print the unit, write nothing
uninstall stops and disables the service, removes the unit and reloads systemd.
`

const FLAGS = ['config', 'user', 'unit-dir', 'force', 'dry-run', 'help']

function fail (code: 'PH_2010' | 'PH_2011' | 'PH_2012' | 'PH_2013' | 'PH_2014' | 'PH_2015' | 'PH_2016', detail: string): never {
  throw new PortholeError(code, detail)
}

/** Loads the config file as the unit will (no environment, the state directory as data dir) and refuses what
 *  would keep the service from starting: an unreadable or invalid file, paths the sandbox hides. */
function checkConfig (file: string, hidden: RegExp): void {
  if (hidden.test(file)) fail('PH_2011', `${file} is hidden from the service (ProtectHome=yes, PrivateTmp=yes); move it, e.g. to /etc/porthole/porthole.yml`)
  try {
    accessSync(file, constants.R_OK)
  } catch (error) {
    fail('PH_2010', `${file} (${(error as NodeJS.ErrnoException).code ?? String(error)})`)
  }
  let config
  try {
    config = loadConfig({ config: file }, {}, { credentialsIn: () => storedCredentialsExist(SERVICE_DATA_DIR) })
  } catch (error) {
    fail('PH_2011', isPortholeError(error) ? error.toLine() : String(error))
  }
  if (config.dataDir !== './keys' && resolve(config.dataDir) !== SERVICE_DATA_DIR) {
    fail('PH_2011', `${file} sets data-dir ${config.dataDir}; the service keeps its state in ${SERVICE_DATA_DIR} (StateDirectory=porthole): remove data-dir from the file, or move the directory there`)
  }
  const paths = [...config.authorizedKeys, config.certsDir, config.acmeCaFile].filter((f): f is string => f !== undefined)
  for (const path of paths) {
    if (!path.startsWith('/')) fail('PH_2011', `${file}: ${path} is a relative path; the service runs in ${SERVICE_DATA_DIR}: give it absolutely`)
    if (hidden.test(path)) fail('PH_2011', `${file}: ${path} is hidden from the service (ProtectHome=yes, PrivateTmp=yes); move it, e.g. under /etc/porthole`)
  }
}

function install (argv: yargsParser.Arguments, unitDir: string, io: ServiceIo): number {
  if (typeof argv.config !== 'string' || argv.config === '') fail('PH_2014', 'install needs --config FILE')
  const config = resolve(argv.config)
  const user = argv.user as string | undefined
  if (user !== undefined && !/^[a-z_][a-z0-9_-]{0,31}$/.test(user)) fail('PH_2014', `--user ${JSON.stringify(user)} is not a user name`)
  checkConfig(config, io.hidden)
  if (user !== undefined && !io.userExists(user)) fail('PH_2015', `no user ${user} on this system (useradd --system --no-create-home ${user}, or leave --user out for a dynamic user)`)
  const unit = renderUnit({ node: process.execPath, bin: BIN, config, user, docs: DOCS })
  if (argv['dry-run'] === true) {
    io.out(unit)
    return 0
  }
  const system = unitDir === resolve(io.systemUnitDir)
  if (system && !io.isRoot()) fail('PH_2012', `writing ${io.systemUnitDir}/${UNIT_NAME} needs root (sudo porthole service install ...; --dry-run prints the unit)`)
  const path = join(unitDir, UNIT_NAME)
  if (existsSync(path)) {
    const current = readFileSync(path, 'utf8')
    if (current !== unit && argv.force !== true) fail('PH_2013', `${path} exists and differs from the unit this install writes; --force replaces it (--dry-run shows the new one)`)
  }
  try {
    mkdirSync(unitDir, { recursive: true })
    writeFileSync(path, unit, { mode: 0o644 })
  } catch (error) {
    fail('PH_2016', `cannot write ${path}: ${(error as Error).message}`)
  }
  io.out(`Wrote ${path}\n`)
  if (system) {
    runSystemctl(io, ['daemon-reload'])
    io.out('Start it with: systemctl enable --now porthole   (logs: journalctl -u porthole)\n')
  } else {
    io.out(`${unitDir} is not ${io.systemUnitDir}: systemctl not called\n`)
  }
  return 0
}

function runSystemctl (io: ServiceIo, args: string[]): void {
  try {
    io.systemctl(args)
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim()
    fail('PH_2016', `systemctl ${args.join(' ')} failed: ${stderr || (error as Error).message}`)
  }
}

function uninstall (unitDir: string, io: ServiceIo): number {
  const path = join(unitDir, UNIT_NAME)
  const system = unitDir === resolve(io.systemUnitDir)
  if (system && !io.isRoot()) fail('PH_2012', `removing ${path} needs root`)
  if (!existsSync(path)) {
    io.out(`No ${path}: nothing to remove\n`)
    return 0
  }
  if (system) runSystemctl(io, ['disable', '--now', UNIT_NAME])
  rmSync(path)
  io.out(`Removed ${path}\n`)
  if (system) runSystemctl(io, ['daemon-reload'])
  return 0
}

/** `porthole service <install|uninstall> [flags]`: the exit status (0, 1 refused, 2 usage). */
export async function runService (args: string[], io: Partial<ServiceIo> = {}): Promise<number> {
  return runWith(args, { ...defaultIo, ...io })
}

async function runWith (args: string[], io: ServiceIo): Promise<number> {
  const argv = yargsParser(args, {
    string: ['config', 'user', 'unit-dir'],
    boolean: ['force', 'dry-run', 'help'],
    configuration: { 'camel-case-expansion': false, 'dot-notation': false, 'parse-numbers': false, 'boolean-negation': false, 'duplicate-arguments-array': true },
  })
  const [verb, ...extra] = argv._.map(String)
  if (argv.help === true || verb === undefined || verb === 'help') {
    ;(verb === undefined && argv.help !== true ? io.err : io.out)(USAGE)
    return verb === undefined && argv.help !== true ? 2 : 0
  }
  try {
    for (const key of Object.keys(argv)) {
      if (key === '_' || key === '--') continue
      if (!FLAGS.includes(key)) fail('PH_2014', `unknown option --${key}${didYouMean(key, FLAGS)}`)
      if (Array.isArray(argv[key])) fail('PH_2014', `--${key} given more than once`)
    }
    if (extra.length > 0) fail('PH_2014', `unexpected argument ${JSON.stringify(extra[0])}`)
    const unitDir = resolve((argv['unit-dir'] as string | undefined) ?? io.systemUnitDir)
    if (verb === 'install') return install(argv, unitDir, io)
    if (verb === 'uninstall') {
      if (argv.config !== undefined || argv.user !== undefined || argv['dry-run'] === true || argv.force === true) fail('PH_2014', 'uninstall takes only --unit-dir')
      return uninstall(unitDir, io)
    }
    fail('PH_2014', `unknown service command ${JSON.stringify(verb)}; use install or uninstall`)
  } catch (error) {
    if (!isPortholeError(error)) throw error
    io.err(`${error.toLine()}\n`)
    return error.code === 'PH_2014' ? 2 : 1
  }
}

export const SERVICE_HELP_LINE = ['porthole service install|uninstall', 'write or remove a hardened systemd unit (porthole service --help)'] as const
