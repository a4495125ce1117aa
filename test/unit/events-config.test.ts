// The --events-* settings: flags, env and YAML reach the ServerConfig; mistakes are refused with PH_2001 naming
// what is wrong (an unknown event type, a webhook that is not an http(s) URL, a secret without a webhook).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { main } from '../../src/cli/main.js'
import { loadConfig } from '../../src/config/load.js'
import { isPortholeError } from '../../src/core/errors.js'

function refusal (fn: () => unknown): { code: string, message: string } {
  try {
    fn()
  } catch (error) {
    if (isPortholeError(error)) return { code: error.code, message: error.message }
    throw error
  }
  throw new Error('not refused')
}

describe('events config', () => {
  afterEach(() => { vi.restoreAllMocks() })

  it('defaults: no sink, every type', () => {
    const config = loadConfig({}, {})
    expect(config).toMatchObject({ eventsLog: false, eventsWebhook: [] })
    expect(config.eventsFile).toBeUndefined()
    expect(config.eventsTypes).toBeUndefined()
  })

  it('from flags, env and YAML', () => {
    expect(loadConfig({ eventsLog: true, eventsWebhook: ['https://a.example/h', 'http://b.example/h'], eventsWebhookSecret: 'x'.repeat(16), eventsTypes: 'tcp_connection_closed.v0, agent_session_stop.v0' }, {}))
      .toMatchObject({ eventsLog: true, eventsWebhook: ['https://a.example/h', 'http://b.example/h'], eventsTypes: ['tcp_connection_closed.v0', 'agent_session_stop.v0'] })
    expect(loadConfig({}, { PORTHOLE_EVENTS_LOG: 'yes', PORTHOLE_EVENTS_WEBHOOK: 'http://a.example/1,http://b.example/2', PORTHOLE_EVENTS_FILE: '/var/log/porthole/events.jsonl' }))
      .toMatchObject({ eventsLog: true, eventsWebhook: ['http://a.example/1', 'http://b.example/2'], eventsFile: '/var/log/porthole/events.jsonl' })
    const dir = mkdtempSync(join(tmpdir(), 'porthole-config-'))
    try {
      const file = join(dir, 'c.yml')
      writeFileSync(file, 'events-webhook: https://hooks.example/p\nevents-types:\n  - http_request_complete.v0\n')
      expect(loadConfig({ config: file }, {})).toMatchObject({ eventsWebhook: ['https://hooks.example/p'], eventsTypes: ['http_request_complete.v0'] })
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('refuses an unknown event type, naming it and the known ones', () => {
    const refused = refusal(() => loadConfig({ eventsTypes: 'http_request_complete.v0,http_request_done.v0' }, {}))
    expect(refused.code).toBe('PH_2001')
    expect(refused.message).toMatch(/events-types: unknown event type "http_request_done\.v0" \(known: http_request_complete\.v0, tcp_connection_closed\.v0, agent_session_start\.v0, agent_session_stop\.v0\)/)
    expect(refusal(() => loadConfig({ eventsTypes: ' , ' }, {})).message).toMatch(/events-types: no event type given/)
  })

  it('refuses a webhook that is not an http(s) URL, a short secret, a secret without a webhook', () => {
    expect(refusal(() => loadConfig({ eventsWebhook: ['ftp://x.example/'] }, {})).message).toMatch(/events-webhook\.0: want an http or https URL/)
    expect(refusal(() => loadConfig({ eventsWebhook: ['http://x.example/'], eventsWebhookSecret: 'short' }, {})).message).toMatch(/events-webhook-secret: want a secret of at least 16/)
    expect(refusal(() => loadConfig({ eventsWebhookSecret: 'x'.repeat(20) }, {})).message).toMatch(/events-webhook-secret: only used with --events-webhook/)
  })

  it('porthole serve --events-types bogus exits 2 with the PH_2001 line; --help lists the flags', async () => {
    const stderr: string[] = []
    const stdout: string[] = []
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => { stderr.push(String(chunk)); return true })
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => { stdout.push(String(chunk)); return true })
    expect(await main(['serve', '--events-types', 'bogus'])).toBe(2)
    expect(stderr.join('')).toMatch(/^PH_2001: .*unknown event type "bogus"/)
    expect(await main(['serve', '--help'])).toBe(0)
    for (const flag of ['--events-log', '--events-file', '--events-webhook', '--events-webhook-secret', '--events-types']) expect(stdout.join('')).toContain(flag)
  })
})
