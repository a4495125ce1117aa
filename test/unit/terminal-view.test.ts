// The SSH terminal's pieces alone: the counters (rates and percentiles on an injected clock), the full-screen
// frame (fits the window, names each -R, colours statuses, strips control characters), the live view's
// coalesced redraws, the Terminal's plain and JSON output kept as they were, and the `urls` listing.
import { EventEmitter } from 'node:events'
import { afterEach, describe, expect, it, vi } from 'vitest'
import QRCode from 'qrcode'
import type { ServerChannel } from 'ssh2'
import { ConnectionStats } from '../../src/agents/ssh/terminal-stats.js'
import { clean, renderScreen, type ScreenModel } from '../../src/agents/ssh/terminal-screen.js'
import { ENTER, LEAVE, LiveView, type ViewSession } from '../../src/agents/ssh/terminal-view.js'
import { Terminal, forwardLabel } from '../../src/agents/ssh/terminal.js'
import { qrText } from '../../src/agents/ssh/terminal-qr.js'
import { noteForward, ownedUrls, urlsJson, urlsText } from '../../src/agents/ssh/urls-command.js'
import { parseCommand, URLS_HELP } from '../../src/agents/ssh/exec-grammar.js'
import { Registry } from '../../src/core/registry.js'
import type { Endpoint, Owner, RequestRecord } from '../../src/core/endpoint.js'

// eslint-disable-next-line no-control-regex
const plain = (line: string): string => line.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')

const record = (status: number, durationMs: number, path = '/'): RequestRecord => ({ method: 'GET', path, status, durationMs, clientIp: '127.0.0.1' })

describe('connection counters', () => {
  it('count requests per second over the last minute and five, and take percentiles of the durations', () => {
    let now = 1_000_000_000
    const stats = new ConnectionStats(() => now)
    expect(stats.snapshot()).toEqual({ total: 0, rate1: 0, rate5: 0, p50: null, p90: null })
    for (let i = 1; i <= 60; i++) {
      stats.record(i) // one a second for a minute, taking 1..60 ms
      now += 1000
    }
    let snap = stats.snapshot()
    expect(snap.total).toBe(60)
    expect(snap.rate1).toBeCloseTo(59 / 60) // the first one is 60 s old now
    expect(snap.rate5).toBeCloseTo(60 / 300)
    expect(snap.p50).toBe(30)
    expect(snap.p90).toBe(54)
    now += 120_000
    snap = stats.snapshot()
    expect(snap.rate1).toBe(0)
    expect(snap.rate5).toBeCloseTo(60 / 300)
    now += 300_000
    expect(stats.snapshot().rate5).toBe(0)
    expect(stats.snapshot().total).toBe(60)
  })

  it('keep a bounded sample of durations: the percentiles follow recent requests', () => {
    const stats = new ConnectionStats(() => 0)
    for (let i = 0; i < 5000; i++) stats.record(1000)
    for (let i = 0; i < 1024; i++) stats.record(2)
    expect(stats.snapshot()).toMatchObject({ total: 6024, p50: 2, p90: 2 })
    stats.record(Number.NaN)
    expect(stats.snapshot().p50).toBe(2)
  })
})

function model (over: Partial<ScreenModel> = {}): ScreenModel {
  return {
    status: 'online',
    account: 'ann (key SHA256:abc)',
    version: '0.1.0',
    inspector: 'http://localhost:4040  (ssh -L 4040:localhost:4040 ...)',
    forwards: [{ url: 'https://app.localhost:8443', bind: 'app:80' }, { url: 'https://k3.localhost:8443', bind: 'localhost:80' }],
    stats: { total: 3, rate1: 0.05, rate5: 0.01, p50: 4, p90: 120 },
    open: 1,
    requests: [
      { at: 0, method: 'GET', path: '/old', status: 200, durationMs: 4 },
      { at: 1000, method: 'POST', path: '/hook', status: 404, durationMs: 6 },
      { at: 2000, method: 'GET', path: '/boom\x1b[2J', status: 502, durationMs: 120, errorCode: 'PH_3002' },
    ],
    notices: [],
    qr: null,
    ...over,
  }
}

describe('the full-screen frame', () => {
  it('shows the session, each URL with its -R, the hint, the counters and the newest request first', () => {
    const lines = renderScreen(model(), 120, 40).map(plain)
    expect(lines[0]).toMatch(/^Porthole\s+\(Ctrl\+C to quit\)$/)
    expect(lines).toContain(`${'Session Status'.padEnd(30)}online`)
    expect(lines).toContain(`${'Account'.padEnd(30)}ann (key SHA256:abc)`)
    expect(lines).toContain(`${'Web Interface'.padEnd(30)}http://localhost:4040  (ssh -L 4040:localhost:4040 ...)`)
    expect(lines).toContain(`${'Forwarding'.padEnd(30)}https://app.localhost:8443 -> -R app:80`)
    expect(lines).toContain(`${'Forwarding'.padEnd(30)}https://k3.localhost:8443 -> -R localhost:80`)
    const counters = lines.indexOf(lines.find((l) => l.startsWith('Connections'))!)
    expect(lines[counters]!.trim().split(/\s+/)).toEqual(['Connections', 'ttl', 'opn', 'rt1', 'rt5', 'p50', 'p90'])
    expect(lines[counters + 1]!.trim().split(/\s+/)).toEqual(['3', '1', '0.05', '0.01', '4.0ms', '120ms'])
    const requests = lines.slice(lines.indexOf('HTTP Requests') + 3).filter((l) => l !== '')
    expect(requests.map((l) => l.split(/\s+/).slice(1, 3).join(' '))).toEqual(['GET /boom?[2J', 'POST /hook', 'GET /old'])
    expect(requests[0]).toMatch(/502 Bad Gateway\s+120ms\s+PH_3002$/)
  })

  it('lists the connections of tcp endpoints with their bytes', () => {
    const lines = renderScreen(model({
      forwards: [{ url: 'tcp://localhost:20001', bind: 'localhost:0' }],
      requests: [{ at: 0, method: 'TCP', path: '127.0.0.1:50000', status: 0, durationMs: 1500, bytesIn: 12, bytesOut: 3400 }],
    }), 100, 40).map(plain)
    expect(lines).toContain('TCP Connections')
    expect(lines).toContainEqual(expect.stringMatching(/^00:00:00\.000 {2}TCP\s+127\.0\.0\.1:50000\s+closed\s+1500ms {2}in 12B out 3400B$/))
  })

  it('colours statuses: 2xx green, 4xx yellow, 5xx red', () => {
    const raw = renderScreen(model(), 120, 40)
    expect(raw.find((l) => l.includes('/old'))).toContain('\x1b[32m200 OK')
    expect(raw.find((l) => l.includes('/hook'))).toContain('\x1b[33m404 Not Found')
    expect(raw.find((l) => l.includes('/boom'))).toContain('\x1b[31m502 Bad Gateway')
  })

  it('never draws a control character a stranger sent', () => {
    expect(clean('/a\x1b]0;pwned\x07\r\n\u009b')).toBe('/a?]0;pwned????')
    const raw = renderScreen(model(), 120, 40).join('\n')
    // eslint-disable-next-line no-control-regex
    expect(raw.replace(/\x1b\[[0-9;]*m/g, '')).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f]/)
  })

  it.each([[20, 10], [40, 12], [70, 30], [200, 60]])('fits a %ix%i window: no line wraps, no line scrolls', (cols, rows) => {
    const lines = renderScreen(model({ requests: Array.from({ length: 100 }, (_, i) => ({ at: i, method: 'GET', path: `/${'x'.repeat(i)}`, status: 200, durationMs: i })) }), cols, rows)
    expect(lines.length).toBeLessThanOrEqual(rows)
    for (const line of lines) expect(plain(line).length).toBeLessThanOrEqual(cols)
  })

  it('keeps the six counters on a 70-column window (a narrower label column)', () => {
    const line = renderScreen(model(), 70, 30).map(plain).find((l) => l.startsWith('Connections'))!
    expect(line.trim().split(/\s+/).slice(1)).toEqual(['ttl', 'opn', 'rt1', 'rt5', 'p50', 'p90'])
  })

  it('draws the QR code whole, or says the window is too small for it', async () => {
    const qr = (await qrText('https://app.localhost:8443'))!
    expect(qr).toBe(await QRCode.toString('https://app.localhost:8443', { type: 'terminal', small: true }))
    const lines = renderScreen(model({ qr }), 120, 60)
    const qrLines = qr.replace(/\n+$/, '').split('\n')
    const at = lines.indexOf(qrLines[0]!)
    expect(at).toBeGreaterThan(0)
    expect(lines.slice(at, at + qrLines.length)).toEqual(qrLines)
    expect(renderScreen(model({ qr }), 20, 60).map(plain).some((l) => l.startsWith('(window too small'))).toBe(true)
    expect(renderScreen(model({ qr }), 120, 20).map(plain)).toContain('(window too small for the QR code)')
  })
})

describe('the live view', () => {
  afterEach(() => { vi.useRealTimers() })

  const session: ViewSession = { account: 'ann', version: '0.1.0', inspector: null, open: () => 0 }

  it('coalesces a burst of requests into few frames, redraws on resize, and stops', async () => {
    vi.useFakeTimers()
    const writes: string[] = []
    const view = new LiveView(session, { cols: 80, rows: 24 }, (data) => { writes.push(data); return true })
    view.start()
    expect(writes).toEqual([ENTER])
    view.forwards([{ url: 'https://app.localhost', bind: 'app:80' }])
    await vi.advanceTimersByTimeAsync(0)
    expect(writes).toHaveLength(2)
    for (let i = 0; i < 1000; i++) view.request(record(200, 1))
    await vi.advanceTimersByTimeAsync(1000)
    expect(writes.length).toBeLessThanOrEqual(2 + 5) // at most one frame per 250 ms, whatever the rate
    expect(plain(writes.at(-1)!)).toMatch(/Connections[^\n]*\n\s+1000 /)
    const before = writes.length
    await vi.advanceTimersByTimeAsync(5000) // nothing changed: the tick sends no frame equal to the last
    expect(writes.length).toBe(before)
    view.resize(50, 20)
    await vi.advanceTimersByTimeAsync(300)
    expect(writes.length).toBe(before + 1)
    expect(plain(writes.at(-1)!).split('\r\n').every((line) => line.length <= 50)).toBe(true)
    expect(view.stop()).toBe(LEAVE)
    view.request(record(200, 1))
    await vi.advanceTimersByTimeAsync(5000)
    expect(writes.length).toBe(before + 1)
  })

  it('skips frames while the client is behind and draws the latest once it catches up', async () => {
    vi.useFakeTimers()
    let behind = true
    const frames: string[] = []
    const view = new LiveView(session, { cols: 80, rows: 24 }, (data) => { if (behind) return false; frames.push(data); return true })
    view.start()
    view.request(record(200, 1))
    await vi.advanceTimersByTimeAsync(3000)
    expect(frames).toEqual([])
    behind = false
    await vi.advanceTimersByTimeAsync(1000)
    expect(frames).toHaveLength(1)
    expect(plain(frames[0]!)).toMatch(/GET\s+\/\s+200 OK/)
    view.stop()
  })
})

/** Enough of an ssh2 ServerChannel for the Terminal: what was written where, and the exit status. */
function fakeChannel () {
  const channel = Object.assign(new EventEmitter(), {
    out: '',
    err: '',
    status: null as number | null,
    writable: true,
    writableLength: 0,
    write (data: string) { channel.out += data; return true },
    stderr: { write (data: string) { channel.err += data; return true } },
    exit (status: number) { channel.status = status },
    end () { channel.writable = false; setImmediate(() => channel.emit('close')) },
  })
  return channel
}

const viewSession: ViewSession = { account: 'key SHA256:abc', version: '0.1.0', inspector: { url: 'http://localhost:4040', hint: '(ssh -L 4040:localhost:4040 ...)' }, open: () => 0 }

describe('the Terminal', () => {
  it('without a pty prints the plain banner and request lines as before, the -R only with several', async () => {
    const channel = fakeChannel()
    const terminal = new Terminal(channel as unknown as ServerChannel, viewSession)
    terminal.endpoints([{ url: 'https://a.localhost', proto: 'http', bind: 'a:80' }, { url: 'http://a.localhost', proto: 'http', bind: 'a:80' }])
    terminal.request(record(200, 12, '/x'), () => 'https://a.localhost')
    terminal.endpoints([{ url: 'https://b.localhost', proto: 'http', bind: ':80' }], undefined, true)
    expect(channel.out).toBe([
      'Porthole',
      'Forwarding  https://a.localhost',
      'Forwarding  http://a.localhost',
      'Web Interface  http://localhost:4040  (ssh -L 4040:localhost:4040 ...)',
      'GET /x 200 12ms',
      'Porthole',
      'Forwarding  https://b.localhost  (-R *:80)',
      '',
    ].join('\n'))
    expect(terminal.live).toBe(false)
    await terminal.exit(0)
    expect(channel.status).toBe(0)
  })

  it('with --output json prints the JSON lines as before, even with a pty', () => {
    const channel = fakeChannel()
    const terminal = new Terminal(channel as unknown as ServerChannel, viewSession)
    terminal.pty = { term: 'xterm', cols: 80, rows: 24 }
    terminal.output = 'json'
    terminal.endpoints([{ url: 'https://a.localhost', proto: 'http', bind: 'a:80' }])
    expect(channel.out).toBe('{"event":"endpoint","url":"https://a.localhost","proto":"http","bind":"a:80"}\r\n')
    expect(terminal.live).toBe(false)
  })

  it('with a pty goes full screen, shows errors in the view, and leaves it on exit with the errors readable', async () => {
    const channel = fakeChannel()
    const terminal = new Terminal(channel as unknown as ServerChannel, viewSession)
    terminal.pty = { term: 'xterm-256color', cols: 100, rows: 30 }
    terminal.endpoints([{ url: 'https://a.localhost', proto: 'http', bind: 'a:80' }])
    expect(terminal.live).toBe(true)
    expect(channel.out.startsWith(ENTER)).toBe(true)
    terminal.error('PH_1023: endpoint removed')
    await terminal.exit(0)
    expect(channel.out.endsWith(`${LEAVE}PH_1023: endpoint removed\r\n`)).toBe(true)
    expect(channel.status).toBe(0)
  })

  it('leaves out the -L hint once the user reached the inspector through the session', async () => {
    vi.useFakeTimers()
    try {
      const channel = fakeChannel()
      const terminal = new Terminal(channel as unknown as ServerChannel, viewSession)
      terminal.pty = { term: 'xterm', cols: 100, rows: 30 }
      terminal.endpoints([{ url: 'https://a.localhost', proto: 'http', bind: 'a:80' }])
      await vi.advanceTimersByTimeAsync(300)
      expect(plain(channel.out)).toMatch(/Web Interface\s+http:\/\/localhost:4040 {2}\(ssh -L 4040:localhost:4040 \.\.\.\)/)
      channel.out = ''
      terminal.inspectorReached()
      await vi.advanceTimersByTimeAsync(300)
      expect(plain(channel.out)).toMatch(/Web Interface\s+http:\/\/localhost:4040\r\n/)
      const exited = terminal.exit(0)
      await vi.advanceTimersByTimeAsync(1000)
      await exited
    } finally {
      vi.useRealTimers()
    }
  })

  it('stays plain on a dumb terminal', () => {
    const channel = fakeChannel()
    const terminal = new Terminal(channel as unknown as ServerChannel, viewSession)
    terminal.pty = { term: 'dumb', cols: 80, rows: 24 }
    terminal.endpoints([{ url: 'https://a.localhost', proto: 'http', bind: 'a:80' }])
    expect(terminal.live).toBe(false)
    expect(channel.out).toContain('Forwarding  https://a.localhost\r\n')
  })

  it('with --qr prints the library\'s QR code of the main URL under the plain banner', async () => {
    const channel = fakeChannel()
    const terminal = new Terminal(channel as unknown as ServerChannel, viewSession)
    terminal.qr = true
    terminal.endpoints([{ url: 'https://a.localhost', proto: 'http', bind: 'a:80' }, { url: 'http://a.localhost', proto: 'http', bind: 'a:80' }])
    const expected = (await QRCode.toString('https://a.localhost', { type: 'terminal', small: true })).replace(/\n+$/, '')
    await vi.waitFor(() => expect(channel.out).toContain(expected))
  })

  it('writes the -R of a Forwarding line as the client typed it', () => {
    expect(forwardLabel('app:80')).toBe('-R app:80')
    expect(forwardLabel(':443')).toBe('-R *:443')
  })
})

describe('urls', () => {
  const ann: Owner = { id: 'SHA256:ann', persistent: true, known: true }
  const bob: Owner = { id: 'SHA256:bob', persistent: true, known: true }
  const spec = { proto: 'http', inspect: true, schemes: { http: true, https: true }, upstream: { tls: false, verify: false, cas: null, protocol: 'http1' } } as const

  it('lists the owner\'s endpoints only, each URL with its -R; an endpoint of another agent says so', () => {
    const registry = new Registry({ domain: 'localhost', graceMs: 1000 })
    const bind = (owner: Owner, name: string): Endpoint => registry.bind({ bindAddr: name, slot: `${name}:80`, owner, spec, dial: async () => { throw new Error('no') }, hooks: {}, agent: { transport: 'ssh', sessionId: 's1' } })
    const app = bind(ann, 'app')
    noteForward(app, 'app:80')
    noteForward(bind(bob, 'other'), 'other:80')
    bind(ann, 'sdk') // an ngrok agent's: no -R
    const urlsFor = (endpoint: Endpoint): string[] => [`https://${endpoint.host}`, `http://${endpoint.host}`]
    const urls = ownedUrls(registry, urlsFor, ann)
    expect(urlsText(urls)).toBe([
      'https://app.localhost  -R app:80',
      'http://app.localhost   -R app:80',
      'https://sdk.localhost  (ngrok agent)',
      'http://sdk.localhost   (ngrok agent)',
    ].join('\n'))
    expect(urlsJson(urls).split('\n').map((l) => JSON.parse(l))[0]).toEqual({ event: 'endpoint', url: 'https://app.localhost', proto: 'http', bind: 'app:80' })
    expect(ownedUrls(registry, urlsFor, { id: 'SHA256:carl', persistent: true })).toEqual([])
  })

  it('is a command of the grammar: urls [--output json], nothing else', () => {
    expect(parseCommand('urls')).toEqual({ kind: 'urls', output: 'text' })
    expect(parseCommand('urls --output json')).toEqual({ kind: 'urls', output: 'json' })
    expect(parseCommand('urls --help')).toEqual({ kind: 'help', text: URLS_HELP })
    const refusal = (line: string): string => { try { parseCommand(line); return 'none' } catch (error) { return (error as Error).message } }
    expect(refusal('urls --basic-auth a:b')).toBe('unknown option --basic-auth for urls (it takes --output)')
    expect(refusal('urls now')).toBe('bad value for argument "now" (urls takes no arguments)')
    expect(refusal('urls --output xml')).toBe('bad value for --output "xml" (want text or json)')
  })

  it('--qr is a view option: it changes nothing an endpoint is bound with', () => {
    const withQr = parseCommand('http --qr --basic-auth a:b')
    const without = parseCommand('http --basic-auth a:b')
    expect(withQr.kind === 'options' && withQr.view).toEqual({ qr: true })
    expect(without.kind === 'options' && without.view).toEqual({ qr: false })
    expect(withQr.kind === 'options' && withQr.options).toEqual(without.kind === 'options' && without.options)
  })
})
