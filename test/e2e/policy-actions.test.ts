// Rate limit, circuit breaker, close-connection, set-vars, log and the user-agent filter through a real
// OpenSSH tunnel: a policy on stdin plus the flags that compile to these actions.
import diagnostics from 'node:diagnostics_channel'
import { chmodSync, copyFileSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connect, eventually, FIXTURES, fetchVia, startTestGateway, startUpstream, type SshClient, type TestGateway } from './harness.js'
import type { PolicyLogRecord } from '../../src/policy/actions/vars-and-log.js'
import { loadConfig } from '../../src/config/load.js'
import { startGateway } from '../../src/gateway.js'

const POLICY = `
on_http_request:
  - expressions: ["req.url.path == '/limited'"]
    actions:
      - type: rate-limit
        config: {name: two a minute, algorithm: sliding_window, capacity: 2, rate: 60s, bucket_key: [conn.client_ip]}
  - expressions: ["req.url.path == '/close'"]
    actions: [{type: close-connection}]
  - actions:
      - type: set-vars
        config: {vars: [{who: "\${conn.client_ip} on \${req.url.path}"}]}
      - type: log
        config: {metadata: {message: "\${vars.who}", method: "\${req.method}"}}
      - type: add-headers
        config: {headers: {x-who: "\${vars.who}"}}
`

describe('traffic policy actions through an OpenSSH tunnel', () => {
  let gateway: TestGateway
  let upstream: Awaited<ReturnType<typeof startUpstream>>
  const clients: SshClient[] = []
  const open = (name: string, command: string, stdin?: string): SshClient => {
    const client = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`${name}:80:localhost:${upstream.port}`], command })
    if (stdin !== undefined) client.proc.stdin!.end(stdin)
    clients.push(client)
    return client
  }

  beforeAll(async () => {
    gateway = await startTestGateway()
    upstream = await startUpstream((req, res) => {
      res.statusCode = req.url === '/fail' ? 500 : 200
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ url: req.url, headers: req.headers }))
    })
  })
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.kill('SIGKILL')))
    await upstream.close()
    await gateway.stop()
  })

  it('rate-limit, close-connection, set-vars, log and --ua-filter-deny', async () => {
    const records: PolicyLogRecord[] = []
    const listener = (message: unknown): void => { records.push(message as PolicyLogRecord) }
    diagnostics.subscribe('porthole:policy:log', listener)
    try {
      const client = open('actions', "http --ua-filter-deny '(?i)bot' --traffic-policy-file -", POLICY)
      const [url] = await client.urls()
      const host = new URL(url!).hostname

      expect((await fetchVia(gateway, `${url}/limited`)).status).toBe(200)
      expect((await fetchVia(gateway, `${url}/limited`)).status).toBe(200)
      const limited = await fetchVia(gateway, `${url}/limited`)
      expect(limited.status).toBe(429)
      expect(limited.headers['porthole-error-code']).toBe('PH_3103')
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0)

      await expect(fetchVia(gateway, `${url}/close`)).rejects.toThrow()

      const tagged = await fetchVia(gateway, `${url}/hello`)
      expect(tagged.status).toBe(200)
      expect(JSON.parse(tagged.body).headers['x-who']).toBe('127.0.0.1 on /hello')
      expect(records).toContainEqual({ endpoint: host, phase: 'on_http_request', metadata: { message: '127.0.0.1 on /hello', method: 'GET' } })

      const bot = await fetchVia(gateway, `${url}/hello`, { headers: { 'user-agent': 'Googlebot/2.1' } })
      expect(bot.status).toBe(403)
      expect(bot.headers['porthole-error-code']).toBe('PH_3102')
      expect((await fetchVia(gateway, `${url}/hello`, { headers: { 'user-agent': 'curl/8.5' } })).status).toBe(200)
    } finally {
      diagnostics.unsubscribe('porthole:policy:log', listener)
    }
  })

  it('--circuit-breaker trips after enough 5xx answers and then answers 503 itself', async () => {
    const client = open('breaker', 'http --circuit-breaker 0.5')
    const [url] = await client.urls()
    for (let i = 0; i < 10; i++) expect((await fetchVia(gateway, `${url}/fail`)).status).toBe(500)
    const tripped = await fetchVia(gateway, `${url}/ok`)
    expect(tripped.status).toBe(503)
    expect(tripped.headers['porthole-error-code']).toBe('PH_3104')
    expect(Number(tripped.headers['retry-after'])).toBeGreaterThan(0)
  })

  it('refuses a bad rate-limit with its place, and a bad --ua-filter-allow regex, binding nothing', async () => {
    const bad = open('badlimit', 'http --traffic-policy-file -', 'on_http_request: [{actions: [{type: rate-limit, config: {name: x, algorithm: sliding_window, capacity: 1, rate: soon}}]}]')
    await bad.waitFor(/PH_1008: invalid traffic policy: rate: "soon" is not a duration .* at on_http_request\[0\]\.actions\[0\]/)
    expect(await bad.exited).not.toBe(0)
    const regex = open('badua', "http --ua-filter-allow '(?=x)'")
    await regex.waitFor(/PH_1002: bad value for --ua-filter-allow/)
    expect(await regex.exited).not.toBe(0)
    expect(gateway.registry.lookup('badlimit.localhost').state).toBe('unknown')
  })
})

describe('the log action in the gateway\'s own pino log', () => {
  it('writes one "policy log" line with the endpoint and rendered metadata', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'porthole-e2e-'))
    const lines: Record<string, unknown>[] = []
    const log = pino({ level: 'info' }, { write: (line: string) => { lines.push(JSON.parse(line) as Record<string, unknown>) } })
    const config = loadConfig({ sshAddr: '127.0.0.1:0', httpAddr: '127.0.0.1:0', httpsAddr: '127.0.0.1:0', apiAddr: 'off', agentAddr: 'off', dataDir: join(tmp, 'data') }, {})
    const gateway = await startGateway(config, log)
    const upstream = await startUpstream()
    copyFileSync(join(FIXTURES, 'keys', 'alice'), join(tmp, 'alice'))
    chmodSync(join(tmp, 'alice'), 0o600)
    const client = connect({ kind: 'openssh', port: gateway.sshPort, key: join(tmp, 'alice'), forwards: [`logged:80:localhost:${upstream.port}`], command: 'http --traffic-policy-file -' })
    try {
      client.proc.stdin!.end('on_http_request: [{actions: [{type: log, config: {metadata: {path: "${req.url.path}"}}}]}]')
      const [url] = await client.urls()
      expect((await fetchVia(gateway, `${url}/seen`)).status).toBe(200)
      const line = await eventually(() => lines.find((l) => l.msg === 'policy log'))
      expect(line).toMatchObject({ level: 30, component: 'policy', endpoint: 'logged.localhost', phase: 'on_http_request', metadata: { path: '/seen' } })
    } finally {
      await client.kill('SIGKILL')
      await upstream.close()
      await gateway.close()
      rmSync(tmp, { recursive: true, force: true })
    }
  })
})
