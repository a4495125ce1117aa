// The README's first screen, its "Using it" table and the operator workflow, run as written against a test gateway, so that an example
// that stops working fails the suite (a new user found the old TLS example looping into the gateway's own HTTPS
// port, and a header example refused). The commands are read from README.md itself; only ports and files are
// substituted: 2222/8080/8443 by the test gateway's, 3000 and 9443 by free ports for the README's own local app
// and TLS service, 20022 by a port of this gateway's pool, keys/ca.pem by its CA, `gw` by `-p PORT localhost`,
// `<name>` by the name the last http endpoint got; ssh and dbclient get the options a test needs (a fixture key,
// no known_hosts, no prompts). Each line runs through `sh -c`, so quoting is the shell's, as for a user.
//
// The operator workflow ("Accounts and the admin API") runs too, in order, against a gateway of its own: there
// `npx porthole` becomes `node bin/porthole.js` (npx itself takes ~15 s to start on a loaded box; it runs the same
// file), ./keys the gateway's data dir, ~/.ssh/id_ed25519.pub a fixture key, and the API URL the gateway's port.
//
// Skipped, and why:
//   - `npm install && npm start`, `npm test` (the first block): the test gateway stands in for `npm start`;
//     its try line is test/e2e/first-screen.test.ts.
//   - `ssh -t -R 80:localhost:3000 gw http`: needs a terminal (a pty); test/e2e/terminal-view.test.ts drives it.
import { spawn, execFile } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { connect as netConnect } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ANONYMOUS_ENDED } from '../../src/cli/admin.js'
import { eventually, FIXTURES, freePort, SshClient, startTestGateway, type TestGateway } from './harness.js'

const BIN = resolve(import.meta.dirname, '../../bin/porthole.js')

const README = readFileSync(resolve(import.meta.dirname, '../../README.md'), 'utf8')

/** The shell lines of the code block that follows `marker` (continuations joined, comments dropped). */
function blockAfter (marker: string): string[] {
  const from = README.indexOf(marker)
  if (from < 0) throw new Error(`README: no ${JSON.stringify(marker)}`)
  const block = /```sh\n([\s\S]*?)```/.exec(README.slice(from))![1]!
  return block.replace(/\\\n\s*/g, '').split('\n')
    .map((line) => line.replace(/\s{2,}#.*$/, '').trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
}

/** The commands of the "Using it" table's first column. */
function tableCommands (): string[] {
  const section = README.slice(README.indexOf('## Using it'))
  const table = section.slice(section.indexOf('| you run |'), section.indexOf('\n\n', section.indexOf('| you run |')))
  return [...table.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1]!)
}

const SKIPPED = new Set(['ssh -t -R 80:localhost:3000 gw http'])

function portOpen (port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect(port, '127.0.0.1', () => { socket.destroy(); resolve(true) })
    socket.on('error', () => resolve(false))
  })
}

describe('README examples, run as written', () => {
  let gateway: TestGateway
  let ports: { app: number, tls: number, pool: number }
  let caFile: string
  let lastName = ''
  /** The key dbclient offers (the operator workflow's logs in by token: a key the gateway does not know). */
  let dbclientKey = 'alice'
  /** Variables the README's lines set (`export X=$(...)`, `TOKEN=$(...)`), and the admin API's address. */
  const env: Record<string, string> = {}
  const background: SshClient[] = []
  const gateways: TestGateway[] = []

  beforeAll(async () => {
    gateway = await startTestGateway({ flags: { tcpPorts: '23000-23099' } })
    gateways.push(gateway)
    ports = { app: await freePort(), tls: await freePort(), pool: 23022 }
    caFile = join(gateway.tmp, 'ca.pem')
    writeFileSync(caFile, gateway.caPem)
  })
  afterAll(async () => {
    await Promise.all(background.map((c) => c.kill('SIGKILL')))
    await Promise.all(gateways.map((g) => g.stop()))
  })

  /** The README line with this gateway's ports and files, and the options a test needs for ssh and dbclient. */
  function substitute (line: string): string {
    const sshOptions = `-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o BatchMode=yes -o IdentitiesOnly=yes -o ExitOnForwardFailure=yes -T -i ${gateway.key('alice', 'openssh')}`
    return line
      .replace(/\bgw\b/, `-p 2222 localhost`)
      .replace(/\b2222\b/g, String(gateway.sshPort))
      .replace(/\b8080\b/g, String(gateway.httpPort))
      .replace(/\b8443\b/g, String(gateway.httpsPort))
      .replace(/\b3000\b/g, String(ports.app))
      .replace(/\b9443\b/g, String(ports.tls))
      .replace(/\b20022\b/g, String(ports.pool))
      .replace('keys/ca.pem', caFile)
      .replace(/<name>/g, lastName)
      .replace(/^ssh /, `ssh ${sshOptions} `)
      .replace(/(^|\s)dbclient /, `$1dbclient -y -y -i ${gateway.key(dbclientKey, 'dropbear')} `)
      .replace(/\bnpx porthole\b/g, `${process.execPath} ${BIN}`)
      .replace('./keys', gateway.dataDir)
      .replace('~/.ssh/id_ed25519.pub', join(FIXTURES, 'keys', 'alice.pub'))
  }

  /** Starts a long-running line (`... &`, an ssh session) in the background. */
  function start (line: string): SshClient {
    const client = new SshClient(spawn('sh', ['-c', `exec env ${substitute(line).replace(/\s*&$/, '')}`], { cwd: gateway.tmp, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, HOME: tmpdir(), ...env } }))
    background.push(client)
    return client
  }

  /** Runs a line to its end: exit status and output. */
  function run (line: string): Promise<{ code: number, output: string, stdout: string, stderr: string }> {
    return new Promise((resolve) => {
      execFile('sh', ['-c', substitute(line)], { cwd: gateway.tmp, env: { ...process.env, HOME: tmpdir(), ...env }, timeout: 60_000 }, (error, stdout, stderr) => {
        resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, output: stdout + stderr, stdout, stderr })
      })
    })
  }

  it('the first screen: a local app, an http endpoint over HTTP and HTTPS, a tcp endpoint, TLS passthrough to a TLS service of your own', async () => {
    const lines = blockAfter('Then, in other terminals')
    expect(lines.length).toBeGreaterThanOrEqual(9)
    const checked: string[] = []
    for (const line of lines) {
      if (line.startsWith('node -e')) {
        start(line)
        await eventually(() => portOpen(ports.app))
      } else if (line.startsWith('openssl s_server')) {
        start(line)
        await eventually(() => portOpen(ports.tls))
      } else if (line.startsWith('openssl')) {
        expect(await run(line), line).toMatchObject({ code: 0 })
      } else if (/^ssh .* http$/.test(line)) {
        const client = start(line)
        const match = await client.waitFor(new RegExp(`Forwarding\\s+http://([a-z0-9-]+)\\.localhost:${gateway.httpPort}`))
        lastName = match[1]!
        expect(client.output).toMatch(new RegExp(`Forwarding\\s+https://${lastName}\\.localhost:${gateway.httpsPort}`))
      } else if (/^ssh .* tcp$/.test(line)) {
        await start(line).waitFor(/Forwarding\s+tcp:\/\/localhost:230\d\d/)
      } else if (/^ssh .* tls$/.test(line)) {
        await start(line).waitFor(new RegExp(`Forwarding\\s+tls://app\\.localhost:${gateway.httpsPort}`))
      } else if (line.startsWith('curl') && line.includes('app.crt')) {
        const ran = await run(line)
        expect(ran.code, `${line}\n${ran.output}`).toBe(0)
        expect(ran.stdout).toContain('s_server') // openssl's -www page: TLS ended at the service, not the gateway
      } else if (line.startsWith('curl')) {
        const ran = await run(line)
        expect(ran, line).toMatchObject({ code: 0, stdout: 'hello\n' })
      } else {
        throw new Error(`README first screen: no way to run ${JSON.stringify(line)}; teach this test or skip it with a reason`)
      }
      checked.push(line)
    }
    expect(checked).toHaveLength(lines.length)
  })

  it('the "Using it" table: each command gives what its row says', async () => {
    if (!(await portOpen(ports.app))) start(`node -e "require('http').createServer((q, s) => s.end('hello\\n')).listen(3000)" &`)
    const expectations: Array<[RegExp, (line: string) => Promise<void>]> = [
      [/ -N /, async (line) => {
        start(line)
        // nothing printed: the row's advice, `ssh gw urls`, names the endpoint
        const listed = await eventually(async () => {
          const ran = await run('ssh gw urls')
          return /^http/m.test(ran.output) && ran.output
        })
        expect(listed).toMatch(new RegExp(`^https://[a-z0-9]+\\.localhost:${gateway.httpsPort}\\s+-R localhost:80$`, 'm'))
      }],
      [/ urls$/, async (line) => expect((await run(line)).output).toMatch(/^https?:\/\/\S+\.localhost:\d+\s+-R /m)],
      [/ diagnose$/, async (line) => expect((await run(line)).output).toMatch(/Client\s+127\.0\.0\.1 port \d+[\s\S]*Round trip\s+[\d.]+ ms/)],
      [/ --help$/, async (line) => expect(await run(line)).toMatchObject({ code: 0, output: expect.stringMatching(/^Usage: ssh -R \[name:\]80:localhost:PORT <gateway> http \[flags\]/) })],
      [/ --qr$/, async (line) => { await start(line).waitFor(/[▀▄█]{8}/) }],
      [/-R 20022:/, async (line) => { await start(line).waitFor(new RegExp(`Forwarding\\s+tcp://localhost:${ports.pool}`)) }],
      [/ tcp$/, async (line) => { await start(line).waitFor(/Forwarding\s+tcp:\/\/localhost:230\d\d/) }],
      [/ tls$/, async (line) => { await start(line).waitFor(new RegExp(`Forwarding\\s+tls://app\\.localhost:${gateway.httpsPort}`)) }],
      [/-R a:80:.* -R b:80:/, async (line) => {
        const client = start(line)
        await client.waitFor(new RegExp(`Forwarding\\s+http://a\\.localhost:${gateway.httpPort}\\s+\\(-R a:80\\)`))
        await client.waitFor(new RegExp(`Forwarding\\s+http://b\\.localhost:${gateway.httpPort}\\s+\\(-R b:80\\)`))
      }],
      [/'\*\.team:80/, async (line) => { await start(line).waitFor(/Forwarding\s+https?:\/\/\*\.team\.localhost:\d+/) }],
      [/-R myapp:80/, async (line) => { await start(line).waitFor(new RegExp(`Forwarding\\s+http://myapp\\.localhost:${gateway.httpPort}`)) }],
      [/ http$/, async (line) => { await start(line).waitFor(new RegExp(`Forwarding\\s+http://[a-z0-9]+\\.localhost:${gateway.httpPort}`)) }],
    ]
    const commands = tableCommands()
    expect(commands.length).toBeGreaterThanOrEqual(12)
    for (const command of commands) {
      if (SKIPPED.has(command)) continue
      const found = expectations.find(([pattern]) => pattern.test(command))
      if (!found) throw new Error(`README table: no expectation for ${JSON.stringify(command)}; teach this test or skip it with a reason`)
      await found[1](command)
    }
  })
  it('the operator workflow ("Accounts and the admin API"), in order, on the default domain', async () => {
    if (!(await portOpen(ports.app))) start(`node -e "require('http').createServer((q, s) => s.end('hello\\n')).listen(3000)" &`)
    // A gateway of its own: the first key ends anonymous access, which the examples above rely on.
    gateway = await startTestGateway({ flags: { tcpPorts: '23000-23099' } })
    gateways.push(gateway)
    dbclientKey = 'carol'
    env.PORTHOLE_API_URL = `http://127.0.0.1:${gateway.apiPort}` // the default, http://127.0.0.1:4040, with this gateway's port
    const lines = blockAfter('In the clone, next to a running `npm start`')
    let sessionId = ''
    for (const line of lines) {
      const assignment = /^(?:export )?([A-Z_]+)=\$\((.*)\)$/.exec(line)
      if (assignment) {
        const ran = await run(assignment[2]!)
        expect(ran.code, `${line}\n${ran.output}`).toBe(0)
        env[assignment[1]!] = ran.stdout.trim()
        if (assignment[1] === 'TOKEN') expect(ran.stderr).not.toContain('anonymous') // the key before it was the first credential
      } else if (line.endsWith('&')) {
        const host = /-R (\w+):80:/.exec(line)![1]!
        const client = start(line)
        await client.waitFor(new RegExp(`Forwarding\\s+http://${host}\\.localhost:${gateway.httpPort}`))
        expect(client.output.replace(/\x1b\[[0-9;]*m/g, '')).toMatch(/Account\s+ann\n/) // eslint-disable-line no-control-regex
      } else {
        const ran = await run(line.replace('<id>', sessionId))
        expect(ran.code, `${line}\n${ran.output}`).toBe(0)
        if (line.includes('keys add')) expect(ran.stderr).toBe(ANONYMOUS_ENDED)
        if (line.includes('sessions list')) sessionId = /^(\S+)\s+ann\s/m.exec(ran.stdout)![1]!
        if (line.includes('endpoints list')) expect(ran.stdout).toMatch(/demo\.localhost[\s\S]*shop\.localhost|shop\.localhost[\s\S]*demo\.localhost/)
      }
    }
    expect(sessionId).not.toBe('')
  })
})
