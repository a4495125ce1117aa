// The Dockerfile's promises, read from its text: two stages (the compiler stays in the first), `npm ci` in both,
// a non-root user, the data dir as a volume, listeners the gateway accepts and that start closed, a health check
// against the admin listener, no secret baked in, and a .dockerignore that keeps local state out of the context.
// (No container runtime in CI; docs/deploy.md says how the image was built and run by hand.)
import { existsSync, readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config/load.js'
import { GATEWAY_NODE_FLAGS } from '../../src/cli/node-flags.js'

const root = resolve(import.meta.dirname, '../..')

interface Instruction { readonly op: string, readonly args: string, readonly stage: number }

/** Instructions with continuation lines joined and comments dropped; `stage` counts FROMs from 0. */
function parseDockerfile (text: string): Instruction[] {
  const logical: string[] = []
  let current = ''
  for (const raw of text.split('\n')) {
    if (/^\s*#/.test(raw) && current === '') continue
    if (/^\s*#/.test(raw)) continue // a comment inside a continued instruction
    const line = raw.replace(/\s+$/, '')
    if (line.endsWith('\\')) {
      current += `${line.slice(0, -1)} `
      continue
    }
    current += line
    if (current.trim() !== '') logical.push(current.trim())
    current = ''
  }
  let stage = -1
  return logical.map((line) => {
    const [, op, args] = /^(\S+)\s*(.*)$/.exec(line)!
    if (op!.toUpperCase() === 'FROM') stage++
    return { op: op!.toUpperCase(), args: args!, stage }
  })
}

/** `ENV A=1 B=2` pairs (the only ENV form the Dockerfile uses). */
function envOf (instructions: Instruction[]): Record<string, string> {
  const env: Record<string, string> = {}
  for (const { args } of instructions.filter((i) => i.op === 'ENV')) {
    for (const pair of args.split(/\s+/)) {
      const match = /^([A-Z_][A-Z0-9_]*)=(\S*)$/.exec(pair)
      expect(match, `ENV ${pair} is KEY=value`).not.toBeNull()
      env[match![1]!] = match![2]!
    }
  }
  return env
}

const instructions = parseDockerfile(readFileSync(resolve(root, 'Dockerfile'), 'utf8'))
const stages = instructions.filter((i) => i.op === 'FROM').length
const runtime = instructions.filter((i) => i.stage === stages - 1)
const build = instructions.filter((i) => i.stage === 0)
const env = envOf(runtime)

describe('Dockerfile', () => {
  it('builds in one stage and runs from another, with npm ci in both', () => {
    expect(stages).toBe(2)
    expect(build[0]!.args).toMatch(/^node:20[\w.-]* AS build$/)
    expect(runtime[0]!.args).toMatch(/^node:20[\w.-]*$/)
    const buildRuns = build.filter((i) => i.op === 'RUN').map((i) => i.args).join('\n')
    expect(buildRuns).toMatch(/npm ci\b/)
    expect(buildRuns).toMatch(/npm run build/)
    const runtimeRuns = runtime.filter((i) => i.op === 'RUN').map((i) => i.args).join('\n')
    expect(runtimeRuns).toMatch(/npm ci --omit=dev/)
    expect(runtimeRuns).not.toMatch(/npm (run build|install)/)
    const copies = runtime.filter((i) => i.op === 'COPY').map((i) => i.args)
    expect(copies).toContain('--from=build /src/dist ./dist')
    for (const what of ['bin', 'inspector-ui', 'package.json']) expect(copies.some((c) => c.split(' ').includes(what))).toBe(true)
    expect(copies.some((c) => /\b(src|test|keys|node_modules)\b/.test(c) && !c.startsWith('--from='))).toBe(false)
  })

  it('runs as a non-root user, after every RUN', () => {
    const users = runtime.filter((i) => i.op === 'USER')
    expect(users.length).toBeGreaterThan(0)
    const user = users.at(-1)!
    expect(user.args).not.toMatch(/^(root|0)(:|$)/)
    const lastRun = runtime.map((i) => i.op).lastIndexOf('RUN')
    expect(runtime.indexOf(user)).toBeGreaterThan(lastRun)
  })

  it('keeps state in a volume at the data dir', () => {
    expect(runtime.some((i) => i.op === 'VOLUME' && /^(\/data|\["\/data"\])$/.test(i.args))).toBe(true)
    expect(env.PORTHOLE_DATA_DIR).toBe('/data')
  })

  it('listens on all interfaces inside the container, admin API on loopback, and starts closed', () => {
    expect(env).toMatchObject({ PORTHOLE_SSH_ADDR: '0.0.0.0:2222', PORTHOLE_HTTP_ADDR: '0.0.0.0:8080', PORTHOLE_HTTPS_ADDR: '0.0.0.0:8443', PORTHOLE_API_ADDR: '127.0.0.1:4040' })
    const exposed = runtime.filter((i) => i.op === 'EXPOSE').flatMap((i) => i.args.split(/\s+/))
    for (const port of ['2222', '8080', '8443']) expect(exposed).toContain(port)
    expect(exposed).not.toContain('4040')
    // The image's environment is a config the gateway starts with (a fresh volume has no stored credentials):
    // not anonymous, keys from the volume's authorized_keys.
    const config = loadConfig({}, env, { credentialsIn: () => false })
    expect(config.anonymous).toBe(false)
    expect(config.authorizedKeys).toEqual(['/data/authorized_keys'])
    expect(runtime.filter((i) => i.op === 'RUN').map((i) => i.args).join('\n')).toContain('touch /data/authorized_keys')
    const entry = JSON.parse(runtime.find((i) => i.op === 'ENTRYPOINT')!.args) as string[]
    const cmd = JSON.parse(runtime.find((i) => i.op === 'CMD')!.args) as string[]
    expect([...entry, ...cmd]).toEqual(['node', ...GATEWAY_NODE_FLAGS, '/app/bin/porthole.js', 'serve'])
  })

  it('checks health on the admin listener with node alone', () => {
    const health = runtime.find((i) => i.op === 'HEALTHCHECK')!
    expect(health).toBeDefined()
    const [, json] = /\bCMD (\[.*\])$/.exec(health.args)!
    const argv = JSON.parse(json!) as string[]
    expect(argv.slice(0, 2)).toEqual(['node', '-e'])
    expect(argv[2]).toContain(`fetch('http://${env.PORTHOLE_API_ADDR}/healthz')`)
    expect(argv[2]).toMatch(/process\.exit\(1\)/) // a refused connection is unhealthy, not an unhandled rejection
  })

  it('bakes no secret in', () => {
    for (const i of instructions.filter((x) => x.op === 'ENV' || x.op === 'ARG')) {
      expect(i.args).not.toMatch(/(KEY|TOKEN|SECRET|PASSWORD|PASS)\s*=/i)
    }
    expect(instructions.some((i) => (i.op === 'COPY' || i.op === 'ADD') && /(^|\s)(\.|keys|\.env|\S*\.pem)(\s|$)/.test(i.args))).toBe(false)
  })

  it('has a .dockerignore keeping local state and build output out of the context', () => {
    const ignore = new Set(readFileSync(resolve(root, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#')))
    for (const entry of ['.git', 'node_modules', 'dist', 'keys']) expect(ignore.has(entry), entry).toBe(true)
    for (const i of instructions.filter((x) => x.op === 'COPY' && !x.args.startsWith('--from='))) {
      for (const source of i.args.split(/\s+/).slice(0, -1)) {
        expect(existsSync(resolve(root, source)), source).toBe(true)
        expect(ignore.has(source), `${source} is copied but ignored`).toBe(false)
      }
    }
  })
})
