// `porthole service install|uninstall`: the unit it writes is read by systemd's own tools (systemd-analyze verify
// must load it without a single warning, and systemd-analyze security must see every hardening setting), and every
// refusal names its PH_201x code and writes nothing. Removing any hardening line, or misspelling one, fails.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { execWord, HIDDEN_FROM_SERVICE, renderUnit, runService, SERVICE_DATA_DIR, type ServiceIo } from '../../src/cli/service.js'

let dir: string
let publicConfig: string

beforeAll(() => {
  // A space and a % in the path: ExecStart must quote and escape them for systemd.
  dir = mkdtempSync(join(tmpdir(), 'porthole service %t '))
  publicConfig = join(dir, 'porthole.yml')
  writeFileSync(publicConfig, 'domain: tunnel.example.com\nssh-addr: 0.0.0.0:22\nhttp-addr: 0.0.0.0:80\nhttps-addr: 0.0.0.0:443\nallow-anonymous: true\n')
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

interface Run { status: number, out: string, err: string, systemctl: string[][] }

async function service (args: string[], io: Partial<ServiceIo> = {}): Promise<Run> {
  const run: Run = { status: -1, out: '', err: '', systemctl: [] }
  run.status = await runService(args, {
    out: (t) => { run.out += t },
    err: (t) => { run.err += t },
    systemctl: (a) => { run.systemctl.push(a) },
    isRoot: () => false,
    userExists: (name) => name === 'porthole-svc',
    systemUnitDir: join(dir, 'never-written'),
    hidden: /^\/(home|root|run\/user)(\/|$)/, // this test's files live in the temp dir
    ...io,
  })
  return run
}

function analyze (args: string[]): { status: number | null, stdout: string, stderr: string } {
  const result = spawnSync('systemd-analyze', args, { encoding: 'utf8' })
  if (result.error) throw new Error(`systemd-analyze could not run (the systemd package provides it): ${result.error.message}`)
  return result
}

/** The settings the unit promises, as systemd-analyze security names them (set = hardened). */
const SECURITY_CHECKS = [
  'User=/DynamicUser=', 'NoNewPrivileges=', 'ProtectSystem=', 'ProtectHome=', 'PrivateTmp=', 'PrivateDevices=',
  'ProtectKernelTunables=', 'ProtectKernelModules=', 'ProtectKernelLogs=', 'ProtectControlGroups=', 'LockPersonality=',
  'RestrictAddressFamilies=~AF_PACKET', 'RestrictAddressFamilies=~AF_NETLINK', 'SystemCallFilter=~@privileged',
  'SystemCallFilter=~@mount', 'CapabilityBoundingSet=~CAP_SYS_ADMIN', 'CapabilityBoundingSet=~CAP_NET_ADMIN',
  'RestrictSUIDSGID=', 'RestrictNamespaces=~user', 'UMask=', 'ProtectClock=', 'ProtectHostname=', 'ProtectProc=',
]

/** The lines themselves: systemd-analyze has no check for some, and counts others as set when implied by another
 *  (DynamicUser=yes implies NoNewPrivileges=yes, PrivateTmp=yes...); the unit says them all anyway. */
const REQUIRED_LINES = [
  'StateDirectory=porthole', 'AmbientCapabilities=CAP_NET_BIND_SERVICE', 'CapabilityBoundingSet=CAP_NET_BIND_SERVICE',
  'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX', 'MemoryDenyWriteExecute=no', 'SystemCallFilter=@system-service',
  'Restart=on-failure', 'KillSignal=SIGTERM', 'LimitNOFILE=1048576', 'ProtectSystem=strict', 'ProtectHome=yes', 'PrivateMounts=yes',
  'NoNewPrivileges=yes', 'PrivateTmp=yes', 'PrivateDevices=yes', 'ProtectKernelTunables=yes', 'ProtectKernelModules=yes',
  'ProtectKernelLogs=yes', 'ProtectControlGroups=yes', 'ProtectClock=yes', 'ProtectHostname=yes', 'ProtectProc=invisible',
  'LockPersonality=yes',
]

/** Everything wrong with a unit's text, as systemd and this list see it; [] for a good unit. */
function problems (text: string): string[] {
  const check = mkdtempSync(join(dir, 'check-'))
  const file = join(check, 'porthole.service')
  writeFileSync(file, text)
  const found: string[] = []
  const verify = analyze(['verify', file])
  if (verify.status !== 0 || verify.stderr.trim() !== '') found.push(`verify: ${verify.stderr.trim()}`)
  const security = analyze(['security', '--offline=true', '--threshold=20', '--json=short', file])
  if (security.status !== 0) found.push(`security: exposure above 2.0 or not analysed (${security.stderr.trim()})`)
  const checks = new Map((JSON.parse(security.stdout || '[]') as { name: string, set: boolean }[]).map((c) => [c.name, c.set]))
  for (const name of SECURITY_CHECKS) if (checks.get(name) !== true) found.push(`security: ${name} not set`)
  const lines = new Set(text.split('\n').map((l) => l.trim()))
  for (const line of REQUIRED_LINES) if (!lines.has(line)) found.push(`missing ${line}`)
  if (!lines.has('DynamicUser=yes') && ![...lines].some((l) => /^User=(?!porthole$)/.test(l))) found.push('no DynamicUser=yes nor User=')
  return found
}

describe('porthole service install', () => {
  it('--dry-run prints the unit and writes nothing', async () => {
    const unitDir = join(dir, 'dry')
    const run = await service(['install', '--config', publicConfig, '--unit-dir', unitDir, '--dry-run'])
    expect(run.err).toBe('')
    expect(run.status).toBe(0)
    expect(run.out).toMatch(/^\[Service\]$/m)
    expect(existsSync(unitDir)).toBe(false)
    const exec = /^ExecStart=(.*)$/m.exec(run.out)![1]!
    expect(exec.startsWith(`${execWord(process.execPath)} `)).toBe(true)
    expect(exec).toContain('/bin/porthole.js serve --config "')
    expect(exec).toContain(`--data-dir ${SERVICE_DATA_DIR}`)
    expect(exec).toContain('%%t') // a literal %, not systemd's %t specifier
  })

  it('writes a unit that systemd-analyze verifies without a warning and rates hardened', async () => {
    const unitDir = join(dir, 'units')
    const run = await service(['install', '--config', publicConfig, '--unit-dir', unitDir])
    expect(run.err).toBe('')
    expect(run.status).toBe(0)
    expect(run.systemctl).toEqual([]) // not the system dir: no daemon-reload
    expect(problems(readFileSync(join(unitDir, 'porthole.service'), 'utf8'))).toEqual([])
  })

  it('with --user runs as that user, still verified and hardened', async () => {
    const run = await service(['install', '--config', publicConfig, '--user', 'porthole-svc', '--dry-run'])
    expect(run.status).toBe(0)
    expect(run.out).toMatch(/^User=porthole-svc$/m)
    expect(run.out).not.toMatch(/DynamicUser/)
    expect(problems(run.out)).toEqual([])
  })

  it('a unit missing any hardening line, or with one misspelt, is caught', () => {
    const unit = renderUnit({ node: process.execPath, bin: join(import.meta.dirname, '../../bin/porthole.js'), config: publicConfig, docs: '/x.md' })
    expect(problems(unit)).toEqual([])
    const hardening = unit.split('\n').filter((l) => /^(DynamicUser|StateDirectory=|AmbientCapabilities|CapabilityBoundingSet|NoNewPrivileges|Protect|Private|RestrictAddressFamilies|LockPersonality|MemoryDenyWriteExecute|SystemCallFilter=@|Restart=|KillSignal|LimitNOFILE)/.test(l))
    expect(hardening.length).toBeGreaterThan(18)
    for (const line of hardening) {
      expect(problems(unit.replace(`${line}\n`, '')), `without ${line}`).not.toEqual([])
    }
    expect(problems(unit.replace('ProtectSystem=strict', 'ProtectSystem=stric'))).toContainEqual(expect.stringMatching(/^verify: .*protect system value/))
    expect(problems(unit.replace('[Service]', '[Servce]'))).toContainEqual(expect.stringMatching(/^verify: /))
    expect(problems(unit.replace(/^ExecStart=\S+/m, 'ExecStart=/nonexistent/node'))).toContainEqual(expect.stringMatching(/^verify: /))
  })

  it('in the system unit dir: needs root, then reloads systemd; uninstall stops, removes, reloads', async () => {
    const system = join(dir, 'system')
    const notRoot = await service(['install', '--config', publicConfig], { systemUnitDir: system })
    expect(notRoot.status).toBe(1)
    expect(notRoot.err).toMatch(/^PH_2012: /)
    expect(existsSync(join(system, 'porthole.service'))).toBe(false)

    const root = await service(['install', '--config', publicConfig], { systemUnitDir: system, isRoot: () => true })
    expect(root.status).toBe(0)
    expect(root.systemctl).toEqual([['daemon-reload']])
    expect(root.out).toContain('systemctl enable --now porthole')

    const again = await service(['install', '--config', publicConfig], { systemUnitDir: system, isRoot: () => true })
    expect(again.status).toBe(0) // the same unit: nothing in the way

    const removed = await service(['uninstall'], { systemUnitDir: system, isRoot: () => true })
    expect(removed.status).toBe(0)
    expect(removed.systemctl).toEqual([['disable', '--now', 'porthole.service'], ['daemon-reload']])
    expect(existsSync(join(system, 'porthole.service'))).toBe(false)
    const none = await service(['uninstall'], { systemUnitDir: system, isRoot: () => true })
    expect(none.status).toBe(0)
    expect(none.systemctl).toEqual([])
  })

  it('refuses to replace a different unit without --force', async () => {
    const unitDir = join(dir, 'differs')
    mkdirSync(unitDir)
    writeFileSync(join(unitDir, 'porthole.service'), '[Service]\nExecStart=/bin/true\n')
    const refused = await service(['install', '--config', publicConfig, '--unit-dir', unitDir])
    expect(refused.status).toBe(1)
    expect(refused.err).toMatch(/^PH_2013: .*--force/)
    expect(readFileSync(join(unitDir, 'porthole.service'), 'utf8')).toBe('[Service]\nExecStart=/bin/true\n')
    const forced = await service(['install', '--config', publicConfig, '--unit-dir', unitDir, '--force'])
    expect(forced.status).toBe(0)
    expect(readFileSync(join(unitDir, 'porthole.service'), 'utf8')).toMatch(/^DynamicUser=yes$/m)
  })

  it.each([
    ['a missing config file', () => ['--config', join(dir, 'nope.yml')], /^PH_2010: .*nope\.yml \(ENOENT\)/],
    ['an unknown setting', () => ['--config', yaml('bad.yml', 'domian: x.example.com\n')], /^PH_2011: .*PH_2001: .*unknown setting domian/],
    ['a public listener with no keys', () => ['--config', yaml('open.yml', 'ssh-addr: 0.0.0.0:22\n')], /^PH_2011: .*PH_2002: .*--allow-anonymous/],
    ['a data-dir elsewhere', () => ['--config', yaml('dd.yml', 'data-dir: /srv/porthole\n')], /^PH_2011: .*sets data-dir \/srv\/porthole/],
    ['a relative authorized_keys', () => ['--config', yaml('rel.yml', 'authorized-keys: keys/ak\n')], /^PH_2011: .*keys\/ak is a relative path/],
    ['a file under /home', () => ['--config', yaml('home.yml', 'authorized-keys: /home/ann/.ssh/authorized_keys\n')], /^PH_2011: .*ProtectHome/],
    ['a config file under /tmp (PrivateTmp)', () => ['--config', publicConfig, '--hidden-default'], /^PH_2011: .*porthole\.yml is hidden from the service/],
    ['a user that does not exist', () => ['--config', publicConfig, '--user', 'nobody-here'], /^PH_2015: .*no user nobody-here/],
  ])('refuses %s (PH_201x, nothing written)', async (_, args, message) => {
    const unitDir = join(dir, 'refused')
    const given = args()
    // --hidden-default: this case checks the real rule (the unit's PrivateTmp hides the temp dir its file is in).
    const io = given.includes('--hidden-default') ? { hidden: HIDDEN_FROM_SERVICE } : {}
    const run = await service(['install', ...given.filter((a) => a !== '--hidden-default'), '--unit-dir', unitDir], io)
    expect(run.err).toMatch(message)
    expect(run.status).toBe(1)
    expect(existsSync(unitDir)).toBe(false)
  })

  it.each([
    [['install'], /^PH_2014: .*needs --config/],
    [['install', '--config', 'x', '--unit-dri', 'y'], /^PH_2014: .*unknown option --unit-dri; did you mean --unit-dir/],
    [['install', '--config', 'x', '--user', 'Robert; rm'], /^PH_2014: .*not a user name/],
    [['start'], /^PH_2014: .*unknown service command "start"/],
    [['uninstall', '--force'], /^PH_2014: .*uninstall takes only --unit-dir/],
  ])('usage errors exit 2: %j', async (args, message) => {
    const run = await service(args)
    expect(run.err).toMatch(message)
    expect(run.status).toBe(2)
  })
})

function yaml (name: string, text: string): string {
  const file = join(dir, name)
  writeFileSync(file, text)
  return file
}
