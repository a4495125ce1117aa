// What an SSH user sees, through a real terminal: `ssh -t` and `dbclient -t` run inside tmux (a fixed window
// size), keys are typed with send-keys and the screen is read back with capture-pane. The live view shows
// each URL with its -R, its counters move with requests, a resize redraws it at the new width, Ctrl-C ends
// the session with status 0 and takes the endpoints offline; --qr draws the qrcode library's QR code of the
// main URL (full screen and plain); `ssh gateway urls` lists a -N session's URLs to the same key only.
import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import QRCode from 'qrcode'
import { connect, eventually, fetchVia, startTestGateway, startUpstream, type TestGateway } from './harness.js'

/** One tmux server of our own (its socket in the test's temp dir), one pane running one command. */
class Pane {
  readonly #socket: string
  readonly #conf: string
  readonly #env: NodeJS.ProcessEnv

  constructor (dir: string, name: string) {
    this.#socket = join(dir, `tmux-${name}`)
    const conf = join(dir, 'tmux.conf')
    // No status line: the pane is the whole window.
    writeFileSync(conf, 'set -g status off\nset -g history-limit 0\n')
    this.#env = { ...process.env, HOME: dir, TERM: 'xterm-256color' }
    this.#conf = conf
  }

  #tmux (...args: string[]): string {
    return execFileSync('tmux', ['-S', this.#socket, '-f', this.#conf, ...args], { env: this.#env, encoding: 'utf8' })
  }

  /** Runs argv in the pane; a shell around it prints its exit status when it ends, then waits on cat so the
   *  pane stays (tmux drops the last output of a pane whose process exits at once, and its pane_dead_status
   *  is sometimes never filled in). */
  start (argv: string[], cols: number, rows: number): void {
    const quote = (a: string): string => `'${a.replace(/'/g, "'\\''")}'`
    const command = ['sh', '-c', '"$@"; echo "[exit $?]"; exec cat', 'sh', ...argv].map(quote).join(' ')
    this.#tmux('new-session', '-d', '-s', 't', '-x', String(cols), '-y', String(rows), command)
  }

  /** The screen as it is now, one string per row (tmux trims trailing spaces). */
  screen (): string[] {
    return this.#tmux('capture-pane', '-p', '-t', 't').replace(/\n$/, '').split('\n')
  }

  keys (...keys: string[]): void {
    this.#tmux('send-keys', '-t', 't', ...keys)
  }

  resize (cols: number, rows: number): void {
    this.#tmux('resize-window', '-t', 't', '-x', String(cols), '-y', String(rows))
  }

  /** The command's exit status once it ended, else null. */
  exitStatus (): number | null {
    const line = this.screen().find((row) => /^\[exit \d+\]$/.test(row))
    return line === undefined ? null : Number(line.slice(6, -1))
  }

  kill (): void {
    try {
      this.#tmux('kill-server')
    } catch {}
  }
}

// eslint-disable-next-line no-control-regex
const plainText = (text: string): string => text.replace(/\x1b\[[0-9;]*m/g, '')

/** The QR code the qrcode library draws for `url`, as tmux shows it (colours gone, trailing spaces trimmed). */
async function qrRows (url: string): Promise<string[]> {
  const text = await QRCode.toString(url, { type: 'terminal', small: true })
  return plainText(text).split('\n').map((line) => line.trimEnd()).filter((line) => line !== '')
}

describe('the terminal view through a real pty', () => {
  let gateway: TestGateway
  let upstream: Awaited<ReturnType<typeof startUpstream>>
  const panes: Pane[] = []

  beforeAll(async () => {
    gateway = await startTestGateway()
    upstream = await startUpstream()
  })
  afterAll(async () => {
    for (const pane of panes) pane.kill()
    await upstream.close()
    await gateway.stop()
  })

  const pane = (name: string): Pane => {
    const created = new Pane(gateway.tmp, name)
    panes.push(created)
    return created
  }

  const openssh = (forwards: string[], command: string[], key = gateway.key('alice', 'openssh')): string[] => [
    'ssh', '-t', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', '-o', 'BatchMode=yes',
    '-o', 'IdentitiesOnly=yes', '-o', 'ExitOnForwardFailure=yes', '-i', key, '-p', String(gateway.sshPort),
    ...forwards.flatMap((f) => ['-R', f]), 'tester@127.0.0.1', ...command,
  ]

  const forwarding = (screen: string[], name: string): string[] =>
    screen.filter((line) => line.startsWith('Forwarding') && line.includes(`://${name}.localhost`))

  it('ssh -t: Forwarding lines name their -R, counters move with requests, resize redraws, Ctrl-C ends cleanly', async () => {
    const term = pane('live')
    term.start(openssh([`tv-a:80:localhost:${upstream.port}`, `tv-b:80:localhost:${upstream.port}`], ['http']), 100, 40)
    const screen = await eventually(() => {
      const rows = term.screen()
      return forwarding(rows, 'tv-a').length === 2 && forwarding(rows, 'tv-b').length === 2 ? rows : null
    }, 20_000)
    expect(forwarding(screen, 'tv-a').every((line) => / -> -R tv-a:80$/.test(line))).toBe(true)
    expect(forwarding(screen, 'tv-b').every((line) => / -> -R tv-b:80$/.test(line))).toBe(true)
    expect(screen).toContainEqual(expect.stringMatching(/^Session Status\s+online$/))
    expect(screen).toContainEqual(expect.stringMatching(/^Web Interface\s+http:\/\/localhost:4040 {2}\(ssh -L 4040:localhost:4040 \.\.\.\)$/))
    expect(screen[0]).toMatch(/^Porthole\s+\(Ctrl\+C to quit\)$/)
    expect(screen[0]).toHaveLength(100)
    const counters = (rows: string[]): string[] => rows[rows.findIndex((l) => l.startsWith('Connections')) + 1]!.trim().split(/\s+/)
    expect(counters(screen).slice(0, 2)).toEqual(['0', '0'])

    const url = forwarding(screen, 'tv-a').find((line) => line.includes('http://'))!.split(/\s+/)[1]!
    for (const path of ['/one', '/two', '/three']) expect((await fetchVia(gateway, `${url}${path}`)).status).toBe(200)
    const after = await eventually(() => {
      const rows = term.screen()
      return counters(rows)[0] === '3' ? rows : null
    })
    expect(Number(counters(after)[2])).toBeGreaterThan(0) // rt1
    expect(counters(after)[4]).toMatch(/ms$/) // p50
    const requests = after.slice(after.indexOf('HTTP Requests') + 2).filter((line) => line.trim() !== '')
    expect(requests.map((line) => line.split(/\s+/).slice(1, 5).join(' '))).toEqual(['GET /three 200 OK', 'GET /two 200 OK', 'GET /one 200 OK'])

    term.resize(60, 30)
    const narrow = await eventually(() => {
      const rows = term.screen()
      return rows[0]!.length === 60 && rows.some((l) => l.startsWith('Connections')) ? rows : null
    })
    expect(narrow[0]).toMatch(/^Porthole\s+\(Ctrl\+C to quit\)$/)
    expect(narrow.every((line) => line.length <= 60)).toBe(true)
    expect(counters(narrow)[0]).toBe('3')

    term.keys('C-c')
    expect(await eventually(() => term.exitStatus())).toBe(0)
    await eventually(async () => (await fetchVia(gateway, url)).status === 503)
  })

  it('ssh -t --qr: the qrcode library\'s QR code of the main URL, whole, on the live view', async () => {
    const term = pane('qr')
    term.start(openssh([`tv-qr:80:localhost:${upstream.port}`], ['http', '--qr']), 100, 50)
    const screen = await eventually(() => {
      const rows = term.screen()
      return forwarding(rows, 'tv-qr').length === 2 && rows.some((l) => l.includes('▄')) ? rows : null
    }, 20_000)
    const main = forwarding(screen, 'tv-qr')[0]!.split(/\s+/)[1]!
    expect(main).toMatch(/^https:\/\/tv-qr\.localhost:\d+$/)
    const expected = await qrRows(main)
    const at = screen.indexOf(expected[0]!)
    expect(at).toBeGreaterThan(0)
    expect(screen.slice(at, at + expected.length)).toEqual(expected)
    term.keys('C-c')
    expect(await eventually(() => term.exitStatus())).toBe(0)
  })

  it('--qr without a pty prints the same QR code under the plain banner', async () => {
    const client = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`tv-plain:80:localhost:${upstream.port}`], command: 'http --qr' })
    const main = (await client.waitFor(/Forwarding\s+(https:\/\/tv-plain\.localhost:\d+)\n/))[1]!
    const text = (await QRCode.toString(main, { type: 'terminal', small: true })).replace(/\n+$/, '')
    await eventually(() => client.output.includes(text))
    expect(client.output).not.toContain('\x1b[?1049h') // no full screen without a pty
    await client.kill()
  })

  it('ssh gateway urls: a -N session\'s URLs with their -R, to the same key only', async () => {
    const key = gateway.key('alice', 'openssh')
    const quiet = connect({ kind: 'openssh', port: gateway.sshPort, key, forwards: [`tv-n1:80:localhost:${upstream.port}`, `tv-n2:80:localhost:${upstream.port}`], noSession: true })
    try {
      await eventually(async () => (await fetchVia(gateway, `http://tv-n2.localhost:${gateway.httpPort}/`)).status === 200, 20_000)
      const lister = connect({ kind: 'openssh', port: gateway.sshPort, key, forwards: [], command: 'urls' })
      expect(await lister.exited).toBe(0)
      const lines = lister.output.split('\n').filter((line) => line.includes('tv-n'))
      expect(lines).toEqual(expect.arrayContaining([
        expect.stringMatching(new RegExp(`^https://tv-n1\\.localhost:${gateway.httpsPort}\\s+-R tv-n1:80$`)),
        expect.stringMatching(new RegExp(`^http://tv-n1\\.localhost:${gateway.httpPort}\\s+-R tv-n1:80$`)),
        expect.stringMatching(new RegExp(`^https://tv-n2\\.localhost:${gateway.httpsPort}\\s+-R tv-n2:80$`)),
        expect.stringMatching(new RegExp(`^http://tv-n2\\.localhost:${gateway.httpPort}\\s+-R tv-n2:80$`)),
      ]))
      expect(lines).toHaveLength(4)

      const json = connect({ kind: 'dropbear', port: gateway.sshPort, key: gateway.key('alice', 'dropbear'), forwards: [], command: 'urls --output json' })
      expect(await json.exited).toBe(0)
      const events = json.output.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as { url: string, bind: string })
      expect(events.filter((e) => e.url.includes('tv-n1')).map((e) => e.bind)).toEqual(['tv-n1:80', 'tv-n1:80'])

      const stranger = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('bob', 'openssh'), forwards: [], command: 'urls' })
      expect(await stranger.exited).toBe(0)
      expect(stranger.output).not.toContain('tv-n')
      expect(stranger.output).toContain('No endpoints online for this key.')

      const mixed = connect({ kind: 'openssh', port: gateway.sshPort, key, forwards: [`tv-m:80:localhost:${upstream.port}`], command: 'urls' })
      await mixed.exited
      expect(mixed.output).toContain('PH_1090: `urls` lists your endpoints and binds none')
      expect(mixed.output).toMatch(/-R tv-n1:80/) // the list still came
      expect((await fetchVia(gateway, `http://tv-m.localhost:${gateway.httpPort}/`)).status).not.toBe(200)
    } finally {
      await quiet.kill()
    }
  })

  it('dbclient -t: the live view, and Ctrl-C ends the session with status 0', async () => {
    const term = pane('dropbear')
    term.start(['dbclient', '-t', '-y', '-y', '-i', gateway.key('alice', 'dropbear'), '-p', String(gateway.sshPort),
      '-R', `tv-db:80:localhost:${upstream.port}`, 'tester@127.0.0.1', 'http'], 90, 30)
    const screen = await eventually(() => {
      const rows = term.screen()
      return forwarding(rows, 'tv-db').length === 2 ? rows : null
    }, 20_000)
    expect(forwarding(screen, 'tv-db').every((line) => / -> -R tv-db:80$/.test(line))).toBe(true)
    expect(screen[0]).toHaveLength(90)
    const url = forwarding(screen, 'tv-db').find((line) => line.includes('http://'))!.split(/\s+/)[1]!
    expect((await fetchVia(gateway, `${url}/db`)).status).toBe(200)
    await eventually(() => term.screen().some((line) => /GET\s+\/db\s+200 OK/.test(line)))
    term.keys('C-c')
    expect(await eventually(() => term.exitStatus())).toBe(0)
    await eventually(async () => (await fetchVia(gateway, url)).status === 503)
  })
})
