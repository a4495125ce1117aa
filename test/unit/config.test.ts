// Config: defaults < YAML < env < flags, strict validation with one-line errors, the anonymous rule.
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config/load.js'
import { autoMaxSessions } from '../../src/config/schema.js'

const errorOf = (fn: () => unknown): string => {
  try { fn() } catch (error) { return (error as Error).message }
  return 'none'
}

describe('config', () => {
  it('has the embedded defaults of the DESIGN contract', () => {
    const config = loadConfig({}, {})
    expect(config).toMatchObject({
      domain: 'localhost',
      sshAddr: { host: '127.0.0.1', port: 2222 },
      httpAddr: { host: '127.0.0.1', port: 8080 },
      httpsAddr: { host: '127.0.0.1', port: 8443 },
      tcpPorts: { lo: 20000, hi: 20999 },
      tcpHost: 'localhost',
      dataDir: './keys',
      anonymous: true,
      nameGraceMs: 24 * 3600_000,
      headerTimeoutMs: 10_000,
      idleTimeoutMs: 5 * 60_000,
    })
    expect(Object.isFrozen(config)).toBe(true)
  })

  it('layers YAML < env < flags', () => {
    const dir = mkdtempSync(join(tmpdir(), 'porthole-config-'))
    const file = join(dir, 'porthole.yml')
    writeFileSync(file, 'domain: yaml.example\nssh-addr: 127.0.0.1:3000\nhttp-addr: 127.0.0.1:3001\n')
    const config = loadConfig({ config: file, httpAddr: '127.0.0.1:4001' }, { PORTHOLE_SSH_ADDR: '127.0.0.1:4000' })
    expect(config.domain).toBe('yaml.example')
    expect(config.sshAddr.port).toBe(4000)
    expect(config.httpAddr.port).toBe(4001)
  })

  it('refuses bad and unknown settings with one line', () => {
    expect(errorOf(() => loadConfig({ sshAddr: 'nope' }, {}))).toBe('invalid configuration: ssh-addr: want host:port, got "nope"')
    expect(errorOf(() => loadConfig({ tcpPorts: '9-3' }, {}))).toMatch(/tcp-ports: want LO-HI/)
    expect(errorOf(() => loadConfig({ domain: 'bad domain' }, {}))).toMatch(/^invalid configuration: domain:/)
    const dir = mkdtempSync(join(tmpdir(), 'porthole-config-'))
    writeFileSync(join(dir, 'c.yml'), 'domian: x\n')
    expect(errorOf(() => loadConfig({ config: join(dir, 'c.yml') }, {}))).toBe('invalid configuration: unknown setting domian')
  })

  it('takes one header timeout for every listener; zero is refused, not taken as "never"', () => {
    expect(loadConfig({ headerTimeout: '1500ms' }, {}).headerTimeoutMs).toBe(1500)
    expect(loadConfig({}, { PORTHOLE_HEADER_TIMEOUT: '1m' }).headerTimeoutMs).toBe(60_000)
    expect(errorOf(() => loadConfig({ headerTimeout: '0s' }, {}))).toMatch(/^invalid configuration: header-timeout: want a duration above zero/)
  })

  it('takes an idle timeout for the HTTP edge (default 5m); zero is refused', () => {
    expect(loadConfig({ idleTimeout: '90s' }, {}).idleTimeoutMs).toBe(90_000)
    expect(errorOf(() => loadConfig({ idleTimeout: '0m' }, {}))).toMatch(/^invalid configuration: idle-timeout: want a duration above zero/)
  })

  it('refuses a public listener without keys unless anonymous is allowed', () => {
    expect(errorOf(() => loadConfig({ sshAddr: '0.0.0.0:2222' }, {}))).toMatch(/^refusing to start: listening on 0\.0\.0\.0:2222 \(not loopback\) with no --authorized-keys/)
    expect(loadConfig({ sshAddr: '0.0.0.0:2222', allowAnonymous: true }, {}).anonymous).toBe(true)
  })

  it('keeps the SSH legacy algorithms by default and turns them off from every source', () => {
    expect(loadConfig({}, {}).sshLegacyAlgorithms).toBe(true)
    expect(loadConfig({ sshLegacyAlgorithms: false }, {}).sshLegacyAlgorithms).toBe(false)
    expect(loadConfig({}, { PORTHOLE_SSH_LEGACY_ALGORITHMS: 'false' }).sshLegacyAlgorithms).toBe(false)
    const dir = mkdtempSync(join(tmpdir(), 'porthole-config-'))
    writeFileSync(join(dir, 'c.yml'), 'ssh-legacy-algorithms: false\n')
    expect(loadConfig({ config: join(dir, 'c.yml') }, {}).sshLegacyAlgorithms).toBe(false)
    expect(errorOf(() => loadConfig({ sshLegacyAlgorithms: 'maybe' }, {}))).toMatch(/^invalid configuration: ssh-legacy-algorithms:/)
  })

  it('captures requests by default; --inspect=false from every source turns it off', () => {
    expect(loadConfig({}, {}).inspect).toBe(true)
    expect(loadConfig({ inspect: false }, {}).inspect).toBe(false)
    expect(loadConfig({}, { PORTHOLE_INSPECT: 'false' }).inspect).toBe(false)
    const dir = mkdtempSync(join(tmpdir(), 'porthole-config-'))
    writeFileSync(join(dir, 'c.yml'), 'inspect: false\n')
    expect(loadConfig({ config: join(dir, 'c.yml') }, {}).inspect).toBe(false)
    expect(errorOf(() => loadConfig({ inspect: 'maybe' }, {}))).toMatch(/^invalid configuration: inspect:/)
  })

  it('takes certificate settings from every source; ACME needs both directory and email', () => {
    const dir = mkdtempSync(join(tmpdir(), 'porthole-config-'))
    writeFileSync(join(dir, 'c.yml'), 'acme-directory: https://acme.example/dir\nacme-email: ops@example.com\ncerts-dir: /etc/certs\n')
    expect(loadConfig({ config: join(dir, 'c.yml') }, {})).toMatchObject({ acmeDirectory: 'https://acme.example/dir', acmeEmail: 'ops@example.com', certsDir: '/etc/certs' })
    expect(loadConfig({}, { PORTHOLE_CERTS_DIR: '/c', PORTHOLE_ACME_DIRECTORY: 'https://a.example/dir', PORTHOLE_ACME_EMAIL: 'a@example.com', PORTHOLE_ACME_CA_FILE: '/ca.pem' }))
      .toMatchObject({ certsDir: '/c', acmeCaFile: '/ca.pem' })
    expect(loadConfig({}, {}).acmeDirectory).toBeUndefined()
    expect(errorOf(() => loadConfig({ acmeDirectory: 'https://a.example/dir' }, {}))).toBe('invalid configuration: acme-email: ACME needs both --acme-directory and --acme-email')
    expect(errorOf(() => loadConfig({ acmeEmail: 'a@example.com' }, {}))).toBe('invalid configuration: acme-directory: ACME needs both --acme-directory and --acme-email')
    expect(errorOf(() => loadConfig({ acmeDirectory: 'http://a.example/dir', acmeEmail: 'a@example.com' }, {}))).toMatch(/acme-directory: want the https URL of an ACME directory/)
    expect(errorOf(() => loadConfig({ acmeDirectory: 'https://a.example/dir', acmeEmail: 'nobody' }, {}))).toMatch(/acme-email: want an email address/)
    expect(errorOf(() => loadConfig({ acmeCaFile: '/ca.pem' }, {}))).toBe('invalid configuration: acme-ca-file: only used with --acme-directory')
  })

  it('configured keys turn anonymous access off, even on loopback', () => {
    expect(loadConfig({ authorizedKeys: ['/dev/null'] }, {}).anonymous).toBe(false)
    expect(loadConfig({}, { PORTHOLE_AUTHORIZED_KEYS: '/a,/b' }).authorizedKeys).toEqual(['/a', '/b'])
  })

  it('moves oauth providers from YAML, the environment (JSON) or flags (JSON), and checks their URLs', () => {
    const dir = mkdtempSync(join(tmpdir(), 'porthole-config-'))
    const file = join(dir, 'porthole.yml')
    writeFileSync(file, 'oauth-providers:\n  github:\n    authorize-url: https://ghe.corp/login/oauth/authorize\n    userinfo-url: https://ghe.corp/api/v3/user\n')
    expect(loadConfig({ config: file }, {}).oauthProviders).toEqual({ github: { 'authorize-url': 'https://ghe.corp/login/oauth/authorize', 'userinfo-url': 'https://ghe.corp/api/v3/user' } })
    expect(loadConfig({}, { PORTHOLE_OAUTH_PROVIDERS: '{"gitlab":{"token-url":"https://git.corp/oauth/token"}}' }).oauthProviders).toEqual({ gitlab: { 'token-url': 'https://git.corp/oauth/token' } })
    expect(loadConfig({ oauthProviders: '{"gitlab":{"authorize-url":"https://git.corp/oauth/authorize"}}' }, {}).oauthProviders?.gitlab).toBeDefined()
    expect(errorOf(() => loadConfig({ oauthProviders: '{nope' }, {}))).toMatch(/^invalid configuration: oauth-providers: want a JSON object/)
    expect(errorOf(() => loadConfig({ oauthProviders: { myspace: {} } }, {}))).toBe('invalid configuration: oauth-providers: unknown setting myspace')
    expect(errorOf(() => loadConfig({ oauthProviders: { github: { 'authorize-url': 'ftp://x' } } }, {}))).toMatch(/^invalid configuration: oauth-providers\.github\.authorize-url/)
    expect(errorOf(() => loadConfig({ oauthProviders: { github: { 'auth-url': 'https://x' } } }, {}))).toBe('invalid configuration: oauth-providers.github: unknown setting auth-url')
  })

  it('takes the admin API address from every source, or off', () => {
    expect(loadConfig({}, {}).apiAddr).toEqual({ host: '127.0.0.1', port: 4040 })
    expect(loadConfig({}, { PORTHOLE_API_ADDR: '127.0.0.1:5050' }).apiAddr).toEqual({ host: '127.0.0.1', port: 5050 })
    expect(loadConfig({ apiAddr: 'off' }, { PORTHOLE_API_ADDR: '127.0.0.1:5050' }).apiAddr).toBeNull()
    const dir = mkdtempSync(join(tmpdir(), 'porthole-config-'))
    writeFileSync(join(dir, 'c.yml'), 'api-addr: 0.0.0.0:4041\n')
    expect(loadConfig({ config: join(dir, 'c.yml') }, {}).apiAddr).toEqual({ host: '0.0.0.0', port: 4041 })
    expect(errorOf(() => loadConfig({ apiAddr: 'nowhere' }, {}))).toBe('invalid configuration: api-addr: want host:port or off, got "nowhere"')
  })

  it('takes the admission limits from flags, env and YAML, and refuses bad ones naming the value', () => {
    const defaults = loadConfig({}, {})
    expect(defaults).toMatchObject({
      maxStartups: { start: 50, rate: 30, full: 200 }, perSourceMaxStartups: 20, loginTimeoutMs: 30_000,
      maxSessions: autoMaxSessions(), maxAnonymousSessions: Math.floor(autoMaxSessions() / 2), maxAnonymousSessionsPerSource: 20,
      maxHolds: 10_000, maxAnonymousHolds: 2000, maxHoldsPerOwner: 100, anonymousNameGraceMs: 3600_000,
    })
    const dir = mkdtempSync(join(tmpdir(), 'porthole-config-'))
    const file = join(dir, 'porthole.yml')
    writeFileSync(file, 'max-startups: 10:30:100\nmax-anonymous-holds: 50\n')
    const config = loadConfig({ config: file, maxSessions: '7', loginGraceTime: '5s' }, { PORTHOLE_PER_SOURCE_MAX_STARTUPS: '3', PORTHOLE_MAX_STARTUPS: '20', PORTHOLE_MAX_HOLDS_PER_OWNER: '1000' })
    expect(config).toMatchObject({ maxStartups: { start: 20, rate: 100, full: 20 }, maxAnonymousHolds: 50, maxHoldsPerOwner: 1000, maxSessions: 7, perSourceMaxStartups: 3, loginTimeoutMs: 5000 })
    expect(errorOf(() => loadConfig({ maxStartups: '100:30:10' }, {}))).toMatch(/max-startups: want start:rate:full .* got "100:30:10"/)
    expect(errorOf(() => loadConfig({ maxAnonymousSessions: 'lots' }, {}))).toMatch(/max-anonymous-sessions: want auto or a whole number from 1 to 1000000, got "lots"/)
    expect(errorOf(() => loadConfig({ maxHolds: '0' }, {}))).toMatch(/max-holds: want a whole number/)
    expect(errorOf(() => loadConfig({ maxHoldsPerOwner: 'many' }, {}))).toMatch(/max-holds-per-owner: want a whole number .*got "many"/)
  })

  it('sizes the session budgets from memory by default: half of it at 256 KiB a session, at least 1000', () => {
    expect(autoMaxSessions(8 * 1024 ** 3)).toBe(16_384)
    expect(autoMaxSessions(1024 ** 3)).toBe(2048)
    expect(autoMaxSessions(256 * 1024 ** 2)).toBe(1000)
    expect(autoMaxSessions(2 ** 50)).toBe(1_000_000)
    expect(loadConfig({ maxSessions: 'auto', maxAnonymousSessions: '30' }, {})).toMatchObject({ maxSessions: autoMaxSessions(), maxAnonymousSessions: 30 })
  })

  it('takes every per-session cap and timeout from flags, env and YAML, and refuses bad values naming the key', () => {
    expect(loadConfig({}, {})).toMatchObject({
      maxSessionsPerKey: 100, maxForwardsPerSession: 16, maxStreamsPerSession: 1024, keepaliveIntervalMs: 15_000, keepaliveCountMax: 3,
      commandWaitMs: 10_000, upstreamTimeoutMs: 300_000, upstreamConnections: 128, maxRequestHeaderSize: 16_384, maxResponseHeaderSize: 32_768,
      inspectMemoryMib: 256, inspectMaxOwners: 1000,
    })
    expect(loadConfig({ inspectMaxOwners: '20000' }, { PORTHOLE_INSPECT_MEMORY_MIB: '1024' })).toMatchObject({ inspectMemoryMib: 1024, inspectMaxOwners: 20_000 })
    const dir = mkdtempSync(join(tmpdir(), 'porthole-config-'))
    const file = join(dir, 'porthole.yml')
    writeFileSync(file, 'max-sessions-per-key: 500\nmax-forwards-per-session: 64\nkeepalive-interval: 30s\nmax-request-header-size: 65536\n')
    const config = loadConfig({ config: file, maxForwardsPerSession: '8', commandWait: '1m' }, {
      PORTHOLE_MAX_STREAMS_PER_SESSION: '4096', PORTHOLE_KEEPALIVE_COUNT_MAX: '5', PORTHOLE_UPSTREAM_TIMEOUT: '30s', PORTHOLE_UPSTREAM_CONNECTIONS: '512',
      PORTHOLE_MAX_RESPONSE_HEADER_SIZE: '2048',
    })
    expect(config).toMatchObject({
      maxSessionsPerKey: 500, maxForwardsPerSession: 8, maxStreamsPerSession: 4096, keepaliveIntervalMs: 30_000, keepaliveCountMax: 5,
      commandWaitMs: 60_000, upstreamTimeoutMs: 30_000, upstreamConnections: 512, maxRequestHeaderSize: 65_536, maxResponseHeaderSize: 2048,
    })
    expect(errorOf(() => loadConfig({ maxSessionsPerKey: '0' }, {}))).toMatch(/max-sessions-per-key: want a whole number from 1 to 1000000, got "0"/)
    expect(errorOf(() => loadConfig({ keepaliveInterval: '0s' }, {}))).toMatch(/keepalive-interval: want a duration above zero/)
    expect(errorOf(() => loadConfig({ commandWait: 'soon' }, {}))).toMatch(/command-wait: want a duration above zero/)
    expect(errorOf(() => loadConfig({ maxRequestHeaderSize: '100' }, {}))).toMatch(/max-request-header-size: want a number of bytes from 1024 to 1048576, got "100"/)
    expect(errorOf(() => loadConfig({ maxStreamsPerSession: 'many' }, {}))).toMatch(/max-streams-per-session: want a whole number/)
  })
})
