// The operator's workflow of issue 4 through the real `porthole` binary against a running gateway: the first
// API key made offline while the server runs, then accounts, keys (files and stdin), tokens, reservations,
// live endpoints and sessions of a real `ssh`, sessions kill, and the one-line errors of a client.
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { join, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ANONYMOUS_ENDED } from '../../src/cli/admin.js'
import { connect, fetchVia, FIXTURES, startTestGateway, startUpstream, writeTemp, type TestGateway } from './harness.js'

const BIN = resolve(import.meta.dirname, '../../bin/porthole.js')

/** A loopback port nothing listens on (just closed). */
async function closedPort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

interface Ran { code: number | null, stdout: string, stderr: string }

function porthole (args: string[], options: { env?: Record<string, string>, stdin?: string } = {}): Promise<Ran> {
  const env = { ...process.env, PORTHOLE_API_URL: '', PORTHOLE_API_KEY: '', ...options.env }
  const proc = spawn(process.execPath, [BIN, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env })
  let stdout = ''
  let stderr = ''
  proc.stdout.setEncoding('utf8').on('data', (t: string) => { stdout += t })
  proc.stderr.setEncoding('utf8').on('data', (t: string) => { stderr += t })
  proc.stdin.end(options.stdin ?? '')
  return new Promise((resolve) => proc.once('close', (code) => resolve({ code, stdout, stderr })))
}

describe('porthole admin commands', () => {
  let gw: TestGateway
  let env: Record<string, string>
  const cli = (...args: string[]): Promise<Ran> => porthole(args, { env })
  const ok = async (...args: string[]): Promise<string> => {
    const ran = await cli(...args)
    expect(ran.stderr, `porthole ${args.join(' ')}`).toBe('')
    expect(ran.code).toBe(0)
    return ran.stdout
  }

  beforeAll(async () => {
    gw = await startTestGateway({ flags: { tcpPorts: '21100-21199' } })
  })
  afterAll(async () => {
    await gw.stop()
  })

  it('creates the first API key offline while the server runs, printed alone on stdout', async () => {
    const ran = await porthole(['api-keys', 'create', '--data-dir', gw.dataDir, '--description', 'ops'])
    expect(ran.code).toBe(0)
    expect(ran.stdout).toMatch(/^ak_\w+\.[\w-]+\n$/)
    expect(ran.stderr).toMatch(/^Created API key ak_\w+ in .*identity\.json; it is shown only this once/)
    env = { PORTHOLE_API_URL: `http://127.0.0.1:${gw.apiPort}`, PORTHOLE_API_KEY: ran.stdout.trim() }
    // The running server sees it (the file store notices the other writer).
    expect(await ok('api-keys', 'list')).toMatch(/^ID\s+DESCRIPTION\s+CREATED\nak_\w+\s+ops\s+\d{4}-/)
    expect(readFileSync(join(gw.dataDir, 'identity.json'), 'utf8')).not.toContain(ran.stdout.trim().split('.')[1])
  })

  it('runs the operator workflow: accounts, keys, tokens, reservations, endpoints, sessions, kill', async () => {
    expect(await ok('accounts', 'create', 'ann')).toBe('Created account ann\n')
    expect(await ok('accounts', 'create', 'bea')).toBe('Created account bea\n')
    expect(await ok('accounts', 'list')).toMatch(/^NAME\s+CREATED\nann\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\nbea\s/)

    const first = await cli('keys', 'add', 'ann', join(FIXTURES, 'keys', 'alice.pub'), '--acl', 'bind:*.ann.localhost', '--acl', 'bind:shop.localhost', '--acl', 'bind:tcp:21122')
    // The first account credential ends anonymous access: the CLI says so (the next ones do not).
    expect(first).toMatchObject({ code: 0, stderr: ANONYMOUS_ENDED })
    const added = first.stdout
    expect(added).toMatch(/^Added key key_\w+ SHA256:\S+ to ann \(may bind bind:\*\.ann\.localhost, bind:shop\.localhost, bind:tcp:21122\)\n$/)
    const keyId = /key_\w+/.exec(added)![0]
    const fromStdin = await porthole(['keys', 'add', 'bea', '-', '--description', 'bob laptop'], { env, stdin: readFileSync(join(FIXTURES, 'keys', 'bob.pub'), 'utf8') })
    expect(fromStdin).toMatchObject({ code: 0, stderr: '' })
    expect(await ok('keys', 'list', 'bea')).toMatch(/\nkey_\w+\s+bea\s+SHA256:\S+\s+\(all of the account\)\s+bob laptop\n$/)

    const token = await cli('tokens', 'create', 'ann', '--acl', 'bind:demo.localhost', '--description', 'ci')
    expect(token.code).toBe(0)
    expect(token.stdout).toMatch(/^tok_\w+\.[\w-]+\n$/)
    expect(token.stderr).toMatch(/^Created authtoken tok_\w+ for ann; it is shown only this once\.\n$/)
    const tokenId = token.stdout.split('.')[0]!
    const tokens = await ok('tokens', 'list', 'ann')
    expect(tokens).toContain(tokenId)
    expect(tokens).toContain('bind:demo.localhost')
    expect(tokens).not.toContain(token.stdout.trim().split('.')[1])

    expect(await ok('reserve', 'domain', 'ann', 'shop.localhost')).toMatch(/^Reserved shop\.localhost for ann \(res_\w+\)\n$/)
    expect(await ok('reserve', 'tcp', 'ann', '21122')).toMatch(/^Reserved tcp port 21122 for ann \(res_\w+\)\n$/)
    const taken = await cli('reserve', 'domain', 'bea', 'shop')
    expect(taken).toEqual({ code: 1, stdout: '', stderr: 'PH_5004: shop.localhost is reserved by another account\n' })
    const reservations = await ok('reservations', 'list', 'ann')
    expect(reservations).toMatch(/^ID\s+ACCOUNT\s+KIND\s+VALUE\s+CREATED\n/)
    expect(reservations).toMatch(/\nres_\w+\s+ann\s+domain\s+shop\.localhost\s+\d{4}-/)
    expect(reservations).toMatch(/\nres_\w+\s+ann\s+tcp\s+21122\s+\d{4}-/)

    const upstream = await startUpstream()
    try {
      const client = connect({ kind: 'openssh', port: gw.sshPort, key: gw.key('alice', 'openssh'), forwards: [`shop:80:localhost:${upstream.port}`], command: 'http' })
      const [url] = await client.urls(1)
      expect(url).toMatch(/^http:\/\/shop\.localhost:\d+$/)
      expect((await fetchVia(gw, url!)).status).toBe(200)

      const endpoints = await ok('endpoints', 'list')
      expect(endpoints).toMatch(/^ID\s+URL\s+PROTO\s+ACCOUNT\s+SESSION\n\S+\s+https:\/\/shop\.localhost:\d+\s+http\s+ann\s+\w+\n$/)
      const sessions = await ok('sessions', 'list')
      expect(sessions).toMatch(new RegExp(`^ID\\s+ACCOUNT\\s+CREDENTIAL\\s+REMOTE\\s+TYPE\\s+CLIENT\\s+ENDPOINTS\\s+IN\\s+OUT\\s+STARTED\\n\\w+\\s+ann\\s+${keyId}\\s+127\\.0\\.0\\.1:\\d+\\s+ssh\\s+OpenSSH\\S*\\s+1\\s+[\\d.]+ K?i?B`))
      const json = JSON.parse(await ok('sessions', 'list', '--json'))
      expect(json.sessions).toHaveLength(1)
      expect(json.sessions[0]).toMatchObject({ account: 'ann', credential: { kind: 'key', id: keyId }, endpoints: [{ host: 'shop.localhost' }] })

      expect(await ok('sessions', 'kill', json.sessions[0].id)).toBe(`Killed session ${json.sessions[0].id}\n`)
      expect([404, 503]).toContain((await fetchVia(gw, url!)).status)
      await client.exited
      expect(client.output).toContain('PH_1026: session closed by the gateway operator')
      expect(await ok('sessions', 'list')).toMatch(/^ID\s+ACCOUNT.*\n$/)
      expect(await cli('sessions', 'kill', json.sessions[0].id)).toMatchObject({ code: 1, stderr: `PH_5003: session "${json.sessions[0].id}" not found\n` })
    } finally {
      await upstream.close()
    }

    // Clearing up, by id.
    expect(await ok('tokens', 'revoke', tokenId)).toBe(`Revoked authtoken ${tokenId}\n`)
    expect(await ok('keys', 'remove', keyId)).toBe(`Removed key ${keyId}\n`)
    const reservation = JSON.parse(await ok('reservations', 'list', 'ann', '--json')).reservations[0].id
    expect(await ok('unreserve', reservation)).toBe(`Removed reservation ${reservation}\n`)
    expect(await ok('accounts', 'delete', 'bea')).toBe('Deleted account bea\n')
    expect(JSON.parse(await ok('accounts', 'list', '--json'))).toEqual({ accounts: [{ name: 'ann', uri: '/api/accounts/ann', created_at: expect.any(String) }], next_page_uri: null })
  })

  it('lists past one page of the API, following next_page_uri', async () => {
    for (let i = 0; i < 3; i++) expect((await cli('tokens', 'create', 'ann', '--description', `t${i}`)).code).toBe(0)
    expect(JSON.parse(await ok('tokens', 'list', 'ann', '--json')).tokens).toHaveLength(3)
    // The CLI asks 100 a page: 105 more accounts (made in-process, in one group commit) take it to a second page.
    const before = (JSON.parse(await ok('accounts', 'list', '--json')) as { accounts: Array<{ name: string }> }).accounts.length
    await Promise.all(Array.from({ length: 105 }, (_, i) => gw.identity.createAccount(`page-${String(i).padStart(3, '0')}`)))
    const names = (JSON.parse(await ok('accounts', 'list', '--json')) as { accounts: Array<{ name: string }> }).accounts.map((a) => a.name)
    expect(names).toHaveLength(before + 105)
    expect(new Set(names).size).toBe(names.length)
    expect(names.filter((name) => name.startsWith('page-'))).toHaveLength(105)
  })

  it('revokes API keys through the API', async () => {
    const second = (await porthole(['api-keys', 'create', '--data-dir', gw.dataDir])).stdout.trim()
    const id = second.split('.')[0]!
    expect(await porthole(['accounts', 'list'], { env: { ...env, PORTHOLE_API_KEY: second } })).toMatchObject({ code: 0 })
    expect(await ok('api-keys', 'revoke', id)).toBe(`Revoked API key ${id}\n`)
    expect(await porthole(['accounts', 'list', '--api-key', second], { env })).toMatchObject({ code: 1, stderr: expect.stringMatching(/^PH_5005: a valid API key is required .*refused by http:\/\/127\.0\.0\.1:\d+\)\n$/) })
  })

  it('says what went wrong in one line with a code and a non-zero status', async () => {
    const closed = await closedPort()
    const badKey = writeTemp(gw.tmp, 'bad.pub', 'ssh-ed25519 notakey\n')
    // Independent commands: run side by side, each process takes a while to start on a busy machine.
    const [noKey, unreachable, badName, malformed, missing, badAcl, badPort, badOption, badVerb, badNoun, noArgument] = await Promise.all([
      porthole(['accounts', 'list'], { env: { PORTHOLE_API_URL: env.PORTHOLE_API_URL! } }),
      porthole(['accounts', 'list', '--api-url', `http://127.0.0.1:${closed}`, '--api-key', 'ak_x.y']),
      cli('accounts', 'create', 'Bad_Name'),
      cli('keys', 'add', 'ann', badKey),
      cli('keys', 'add', 'ann', join(gw.tmp, 'missing.pub')),
      cli('keys', 'add', 'ann', join(FIXTURES, 'keys', 'carol.pub'), '--acl', 'nope'),
      cli('reserve', 'tcp', 'ann', '80'),
      cli('tokens', 'create', 'ann', '--acll', 'x'),
      cli('keys', 'ad', 'ann'),
      cli('acounts', 'list'),
      cli('sessions', 'kill'),
    ])
    expect(noKey.code).toBe(2)
    expect(noKey.stderr).toMatch(/^PH_5005: .*pass --api-key or set PORTHOLE_API_KEY; make one on the gateway host with: porthole api-keys create --data-dir .*\n$/)
    expect(unreachable).toEqual({ code: 1, stdout: '', stderr: `PH_5009: cannot reach the admin API at http://127.0.0.1:${closed} (ECONNREFUSED)\n` })
    expect(badName).toEqual({ code: 1, stdout: '', stderr: 'PH_5001: invalid account name "Bad_Name" (a-z, 0-9 and inner \'-\', at most 63 characters)\n' })
    expect(malformed).toMatchObject({ code: 1, stderr: expect.stringMatching(/^PH_5001: invalid public key/) })
    expect(missing).toMatchObject({ code: 2, stderr: expect.stringMatching(/^PH_5001: invalid key file .*missing\.pub \(ENOENT\)\n$/) })
    expect(badAcl).toMatchObject({ code: 1, stderr: expect.stringMatching(/^PH_5001: invalid ACL entry "nope"/) })
    expect(badPort).toMatchObject({ code: 1, stderr: 'PH_5001: invalid port "80" (the TCP pool is 21100-21199)\n' })
    expect(badOption).toMatchObject({ code: 2, stderr: 'PH_5001: invalid option --acll for porthole tokens create; did you mean --acl?\n' })
    expect(badVerb).toMatchObject({ code: 2, stderr: 'PH_5001: invalid command "keys ad"; did you mean keys add? (porthole keys --help lists them)\n' })
    expect(badNoun).toMatchObject({ code: 2, stderr: 'PH_2001: unknown command "acounts"; did you mean accounts? (porthole --help lists commands)\n' })
    expect(noArgument).toMatchObject({ code: 2, stderr: 'PH_5001: invalid arguments: usage: porthole sessions kill ID\n' })
  })

  it('lists the commands in --help and each noun\'s verbs in <noun> --help', async () => {
    const [help, keys, serve] = await Promise.all([porthole(['--help']), porthole(['keys', '--help']), porthole(['serve', '--help'])])
    expect(help.code).toBe(0)
    for (const line of ['porthole serve', 'porthole accounts create NAME', 'porthole keys add ACCOUNT FILE|- [--acl X]... [--description D]', 'porthole tokens create ACCOUNT',
      'porthole reserve domain ACCOUNT HOST', 'porthole reserve tcp ACCOUNT PORT', 'porthole reservations list [ACCOUNT]', 'porthole unreserve ID',
      'porthole endpoints list', 'porthole sessions list', 'porthole sessions kill ID', 'porthole api-keys create [--description D] [--data-dir DIR]', 'porthole api-keys revoke ID']) {
      expect(help.stdout).toContain(line)
    }
    expect(keys.code).toBe(0)
    expect(keys.stdout).toMatch(/porthole keys add ACCOUNT FILE\|-[\s\S]*porthole keys list \[ACCOUNT\][\s\S]*porthole keys remove ID[\s\S]*--acl X[\s\S]*--api-url URL/)
    expect(serve.stdout).toContain('--api-addr HOST:PORT')
  })
})
