// Session lifecycle with real clients: liveness pings drop frozen clients at once, keepalives are answered,
// cancel-tcpip-forward unbinds, -R 0 reports a port, names survive a gateway restart, a client gone before
// its forward was bound leaves nothing behind, authorized_keys refusals say why.
import { spawn } from 'node:child_process'
import { appendFileSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Socket } from 'node:net'
import { CLIENTS, FIXTURES, ScriptedClient, connect, eventually, fetchVia, sleep, startTestGateway, startUpstream, writeTemp, type TestGateway } from './harness.js'

let upstream: Awaited<ReturnType<typeof startUpstream>>
beforeAll(async () => { upstream = await startUpstream() })
afterAll(async () => { await upstream.close() })

describe.each(CLIENTS)('lifecycle with %s', (kind) => {
  let gateway: TestGateway
  beforeAll(async () => {
    gateway = await startTestGateway({ tune: { keepaliveIntervalMs: 300, keepaliveCountMax: 2 } })
  })
  afterAll(async () => { await gateway.stop() })

  it('drops a frozen client after missed pings and unbinds its endpoint at once', async () => {
    const client = connect({ kind, port: gateway.sshPort, key: gateway.key('alice', kind), forwards: [`frozen-${kind}:80:localhost:${upstream.port}`], command: 'http' })
    await client.urls()
    client.proc.kill('SIGSTOP')
    try {
      await eventually(() => gateway.registry.lookup(`frozen-${kind}.localhost`).state === 'offline', 5000)
      // The endpoint goes at once; the session leaves the list when its destroyed socket closes, a moment later.
      await eventually(() => gateway.ssh.connections.length === 0, 5000)
    } finally {
      client.proc.kill('SIGCONT')
      await client.kill('SIGKILL')
    }
  })

  it('answers client keepalives, so a client that sends them stays connected', async () => {
    const extra = kind === 'openssh' ? ['-o', 'ServerAliveInterval=1', '-o', 'ServerAliveCountMax=1'] : ['-K', '1']
    const client = connect({ kind, port: gateway.sshPort, key: gateway.key('alice', kind), forwards: [`alive-${kind}:80:localhost:${upstream.port}`], command: 'http', extra })
    await client.urls()
    await sleep(3500)
    expect(client.proc.exitCode).toBeNull()
    expect((await fetchVia(gateway, `http://alive-${kind}.localhost/`)).status).toBe(200)
    await client.kill()
  })
})

describe('a client gone before its forward is bound (ssh2 as the client: each step when the test says)', () => {
  const SETTLE_MS = 300
  let gateway: TestGateway
  beforeAll(async () => { gateway = await startTestGateway({ tune: { sessionSettleMs: SETTLE_MS } }) })
  afterAll(async () => { await gateway.stop() })

  /** Sends the forward, waits until the gateway has read it (it is then waiting for the session's options),
   *  and drops the connection before any reply. */
  const forwardThenVanish = async (name: string, openSession: boolean): Promise<void> => {
    const client = await ScriptedClient.connect(gateway, upstream.port)
    if (openSession) await client.openSession() // forwards then wait for its exec, which never comes
    const before = client.gatewayBytesIn()
    void client.forward(name, 80).catch(() => {})
    await eventually(() => client.gatewayBytesIn() > before)
    ;(client.client as unknown as { _sock: Socket })._sock.destroy()
    await eventually(() => gateway.ssh.connections.length === 0)
  }

  it('with its session open and no command yet: nothing bound, nothing held', async () => {
    await forwardThenVanish('race-session', true)
    expect(gateway.registry.lookup('race-session.localhost').state).toBe('unknown')
  })

  it('with no session (as dbclient -N) inside the settle time: nothing bound then, nor when the settle time ends', async () => {
    await forwardThenVanish('race-settle', false)
    expect(gateway.registry.lookup('race-settle.localhost').state).toBe('unknown')
    // Absence can only be checked after the moment it would have happened: the gateway runs in this process,
    // so its settle timer (set before) fires before this longer one.
    await sleep(3 * SETTLE_MS)
    expect(gateway.registry.lookup('race-settle.localhost').state).toBe('unknown')
    expect(gateway.registry.endpoints()).toHaveLength(0)
  })
})

describe('with OpenSSH only', () => {
  let gateway: TestGateway
  beforeAll(async () => { gateway = await startTestGateway() })
  afterAll(async () => { await gateway.stop() })

  it('-R 0 gets an allocated port that OpenSSH prints, and the endpoint works', async () => {
    const client = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`zero:0:localhost:${upstream.port}`], command: 'http', extra: ['-o', 'LogLevel=INFO'] })
    await client.waitFor(/Allocated port \d+ for remote forward/)
    const [url] = await client.urls()
    expect(url).toBe(`http://zero.localhost:${gateway.httpPort}`)
    expect((await fetchVia(gateway, `${url}/`)).status).toBe(200)
    await client.kill()
  })

  it('cancel-tcpip-forward (ssh -O cancel) unbinds that endpoint only', async () => {
    const control = join(gateway.tmp, 'ctl')
    const client = connect({
      kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'),
      forwards: [`keep:80:localhost:${upstream.port}`, `drop:80:localhost:${upstream.port}`], command: 'http',
      extra: ['-o', 'ControlMaster=yes', '-o', `ControlPath=${control}`],
    })
    await client.urls(2)
    const cancel = spawn('ssh', ['-o', `ControlPath=${control}`, '-O', 'cancel', '-R', `drop:80:localhost:${upstream.port}`, 'x'], { stdio: 'ignore' })
    await new Promise((resolve) => cancel.once('exit', resolve))
    await eventually(() => gateway.registry.lookup('drop.localhost').state === 'offline')
    expect(gateway.registry.lookup('keep.localhost').state).toBe('bound')
    await client.kill()
  })

  it('serves a client limited to what old Dropbear builds speak: ssh-rsa (SHA-1) host key, group14-sha1', async () => {
    const extra = ['-o', 'HostKeyAlgorithms=ssh-rsa', '-o', 'KexAlgorithms=diffie-hellman-group14-sha1', '-o', 'Ciphers=aes128-ctr', '-o', 'MACs=hmac-sha1']
    const client = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`legacy:80:localhost:${upstream.port}`], command: 'http', extra })
    const [url] = await client.urls()
    expect((await fetchVia(gateway, `${url}/`)).status).toBe(200)
    await client.kill()
  })

  it('refuses unix socket forwards with a reason', async () => {
    const client = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`${join(gateway.tmp, 'sock')}:localhost:${upstream.port}`], command: 'http' })
    await client.waitFor(/PH_1015: unix socket forwarding is not supported/)
    await client.kill()
  })

  it('refuses a port that cannot carry http', async () => {
    const client = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`odd:8000:localhost:${upstream.port}`], command: 'http' })
    await client.waitFor(/PH_1014: port 8000 cannot carry an http endpoint/)
    expect(await client.exited).not.toBe(0)
  })
})

describe('names across a gateway restart', () => {
  it('gives the same key its random name back, and refuses it to another key', async () => {
    const first = await startTestGateway()
    const dataDir = first.dataDir
    const client = connect({ kind: 'openssh', port: first.sshPort, key: first.key('alice', 'openssh'), forwards: [`80:localhost:${upstream.port}`], command: 'http' })
    const [url] = await client.urls()
    const label = new URL(url!).hostname.split('.')[0]!
    await client.kill()
    await first.close()

    const second = await startTestGateway({ dataDir })
    try {
      expect(second.registry.lookup(`${label}.localhost`).state).toBe('offline')
      const intruder = connect({ kind: 'openssh', port: second.sshPort, key: second.key('bob', 'openssh'), forwards: [`${label}:80:localhost:${upstream.port}`], command: 'http' })
      await intruder.waitFor(/PH_1011/)
      await intruder.kill()
      const again = connect({ kind: 'openssh', port: second.sshPort, key: second.key('alice', 'openssh'), forwards: [`80:localhost:${upstream.port}`], command: 'http' })
      expect((await again.urls())[0]).toBe(`http://${label}.localhost:${second.httpPort}`)
      await again.kill()
    } finally {
      await second.stop()
      await first.stop()
    }
  })
})

describe.each(CLIENTS)('authorized_keys with %s', (kind) => {
  let gateway: TestGateway
  let keysFile: string
  beforeAll(async () => {
    const tmp = (await import('node:fs')).mkdtempSync(join((await import('node:os')).tmpdir(), 'porthole-keys-'))
    const alice = readFileSync(join(FIXTURES, 'keys', 'alice.pub'), 'utf8').trim()
    keysFile = writeTemp(tmp, 'authorized_keys', `# team keys\nno-pty,command="/bin/false" ${alice}\n\n`)
    gateway = await startTestGateway({ flags: { authorizedKeys: [keysFile] } })
  })
  afterAll(async () => { await gateway.stop() })

  it('accepts a listed key (options and comments tolerated)', async () => {
    const client = connect({ kind, port: gateway.sshPort, key: gateway.key('alice', kind), forwards: [`listed-${kind}:80:localhost:${upstream.port}`], command: 'http' })
    await client.urls()
    await client.kill()
  })

  it('refuses an unlisted key with its fingerprint, then accepts it once added to the file', async () => {
    // The reason travels in a keyboard-interactive instruction: BatchMode turns that method off and
    // LogLevel=ERROR hides it; people at a terminal have neither.
    const extra = kind === 'openssh' ? ['-o', 'BatchMode=no', '-o', 'LogLevel=INFO'] : []
    const refused = connect({ kind, port: gateway.sshPort, key: gateway.key('bob', kind), forwards: [`bob-${kind}:80:localhost:${upstream.port}`], command: 'http', extra })
    await refused.waitFor(/PH_1020: key SHA256:\S+ is not authorized on this gateway/)
    expect(await refused.exited).not.toBe(0)
    appendFileSync(keysFile, readFileSync(join(FIXTURES, 'keys', 'bob.pub'), 'utf8'))
    const accepted = connect({ kind, port: gateway.sshPort, key: gateway.key('bob', kind), forwards: [`bob-${kind}:80:localhost:${upstream.port}`], command: 'http' })
    await accepted.urls()
    await accepted.kill()
  })
})
