// docs/deploy.md is followed by operators line by line, so its commands must be real: every shell block parses,
// every `porthole` command names a real command and only flags it takes, the service commands run (dry) against
// the page's own config, every PORTHOLE_* variable is a real setting, and the client's systemd user unit is one
// systemd loads without a warning.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { COMMANDS } from '../../src/cli/admin.js'
import { runService } from '../../src/cli/service.js'
import { CONFIG_KEYS, kebab, loadConfig } from '../../src/config/load.js'

const root = resolve(import.meta.dirname, '../..')
const page = readFileSync(resolve(root, 'docs/deploy.md'), 'utf8')
const blocks = (lang: string): string[] => [...page.matchAll(new RegExp(`\`\`\`${lang}\\n([\\s\\S]*?)\`\`\``, 'g'))].map((m) => m[1]!)
const dir = mkdtempSync(join(tmpdir(), 'porthole-deploy-docs-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

/** Each `porthole ...` command in the shell blocks (at the start of a line after any VAR=value, in `$(...)`,
 *  after `sudo -u USER` or `docker exec [-e X] CONTAINER`), as words up to a pipe, `;`, `&&`, `)` or a comment. */
function porthole (): string[][] {
  const commands: string[][] = []
  const command = /(?:^\s*(?:[A-Z_]+=\S*\s+)*|\$\(|sudo -u \S+\s+|docker exec (?:-e \S+ )*porthole\s+)porthole\s+([^#|;&)]*)/g
  for (const block of blocks('sh')) {
    for (const line of block.replace(/\\\n/g, ' ').split('\n')) {
      for (const match of line.matchAll(command)) {
        commands.push(match[1]!.trim().split(/\s+/).map((w) => w.replace(/^'|'$/g, '')))
      }
    }
  }
  return commands
}

describe('docs/deploy.md', () => {
  it('has shell blocks that parse', () => {
    expect(blocks('sh').length).toBeGreaterThan(10)
    for (const block of blocks('sh')) {
      const check = spawnSync('sh', ['-n'], { input: block, encoding: 'utf8' })
      expect(check.stderr, block).toBe('')
      expect(check.status).toBe(0)
    }
  })

  it('uses only real porthole commands and flags', () => {
    const commands = porthole()
    expect(commands.length).toBeGreaterThan(10)
    const serveFlags = [...CONFIG_KEYS.map(kebab), 'config', 'help']
    for (const [noun, ...rest] of commands) {
      const flags = rest.filter((w) => w.startsWith('--')).map((w) => w.slice(2).replace(/=.*/, ''))
      if (noun === '--version' || noun === '--help') continue
      if (noun === 'serve') {
        for (const flag of flags) expect(serveFlags, `porthole serve --${flag}`).toContain(flag)
        continue
      }
      if (noun === 'service') {
        expect(['install', 'uninstall']).toContain(rest[0])
        for (const flag of flags) expect(['config', 'user', 'unit-dir', 'force', 'dry-run'], `porthole service --${flag}`).toContain(flag)
        continue
      }
      expect(Object.keys(COMMANDS), `porthole ${noun}`).toContain(noun)
      const verbs = COMMANDS[noun]!
      const verb = Object.hasOwn(verbs, rest[0] ?? '') ? rest[0]! : ''
      expect(Object.hasOwn(verbs, verb), `porthole ${noun} ${rest[0]}`).toBe(true)
      const allowed = ['api-url', 'api-key', 'json', ...(verbs[verb]!.flags ?? [])]
      for (const flag of flags) expect(allowed, `porthole ${noun} ${verb} --${flag}`).toContain(flag)
    }
  })

  it('shows a server config that loads, and service install accepts it', async () => {
    const [yaml] = blocks('yaml')
    const keys = join(dir, 'authorized_keys')
    writeFileSync(keys, '')
    const file = join(dir, 'porthole.yml')
    writeFileSync(file, yaml!.replace('/etc/porthole/authorized_keys', keys))
    const config = loadConfig({ config: file }, {})
    expect(config.domain).toBe('tunnel.example.com')
    expect([config.sshAddr.port, config.httpAddr.port, config.httpsAddr.port]).toEqual([22, 80, 443])
    expect(config.apiAddr).toEqual({ host: '127.0.0.1', port: 4040 })
    let out = ''
    // The file is in the temp dir, which the unit's PrivateTmp would hide: the guide puts it in /etc/porthole.
    const status = await runService(['install', '--config', file, '--dry-run'], { out: (t) => { out += t }, err: (t) => { out += t }, hidden: /^\/(home|root|run\/user)(\/|$)/ })
    expect(out).toMatch(/^ExecStart=/m)
    expect(status).toBe(0)
  })

  it('names only real PORTHOLE_* variables', () => {
    const settings = new Set([...CONFIG_KEYS.map((k) => `PORTHOLE_${kebab(k).replace(/-/g, '_').toUpperCase()}`), 'PORTHOLE_CONFIG', 'PORTHOLE_API_KEY', 'PORTHOLE_API_URL'])
    const named = [...page.matchAll(/PORTHOLE_[A-Z_]+/g)].map((m) => m[0])
    expect(named.length).toBeGreaterThan(3)
    for (const name of named) expect(settings, name).toContain(name)
  })

  it('gives a client systemd user unit that systemd verifies without a warning', () => {
    const [unit] = blocks('ini')
    const file = join(dir, 'porthole-tunnel.service')
    writeFileSync(file, unit!)
    const runtime = mkdtempSync(join(dir, 'xdg-'))
    const verify = spawnSync('systemd-analyze', ['--user', 'verify', file], { encoding: 'utf8', env: { ...process.env, XDG_RUNTIME_DIR: runtime } })
    if (verify.error) throw new Error(`systemd-analyze could not run (the systemd package provides it): ${verify.error.message}`)
    expect(verify.stderr).toBe('')
    expect(verify.status).toBe(0)
    expect(unit).toMatch(/^Restart=always$/m)
    expect(unit).toMatch(/ExitOnForwardFailure=yes/)
  })
})
