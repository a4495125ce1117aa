// Certificates beyond the local CA, end to end with the real OpenSSH client:
// - ACME against Debian's pebble on loopback: a real HTTP-01 validation through the gateway's HTTP listener,
//   the certificate verified by curl against pebble's root (not the local CA), and reused after a restart
//   with pebble gone;
// - bring-your-own certificates written into the watched directory after start, replaced, and a wildcard.
import { execFile } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect as tlsConnect, type PeerCertificate } from 'node:tls'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LocalCa } from '../../src/certs/local-ca.js'
import { FIXTURES, connect, eventually, startTestGateway, startUpstream, type SshClient, type TestGateway } from './harness.js'
import { preparePebble, startPebble, type Pebble, type PebbleSetup } from './pebble.js'

const run = promisify(execFile)

/** The certificate the HTTPS listener presents for `name`, and whether it verifies against `ca`. */
function presented (port: number, name: string, ca: string): Promise<{ authorized: boolean, cert: PeerCertificate }> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, servername: name, ca, rejectUnauthorized: false }, () => {
      resolve({ authorized: socket.authorized, cert: socket.getPeerCertificate() })
      socket.end()
    })
    socket.on('error', reject)
  })
}

/** What `presented` gives once the certificate with `serial` is served; throws before (for eventually). */
async function presentedSerial (port: number, name: string, ca: string, serial: string): ReturnType<typeof presented> {
  const now = await presented(port, name, ca)
  if (now.cert.serialNumber !== serial) throw new Error(`${name}: serial ${now.cert.serialNumber}, waiting for ${serial}`)
  return now
}

describe('ACME certificates from pebble', () => {
  let tmp: string
  let setup: PebbleSetup
  let pebble: Pebble
  let gateway: TestGateway | undefined
  let upstream: Awaited<ReturnType<typeof startUpstream>>
  const clients: SshClient[] = []

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'porthole-acme-e2e-'))
    upstream = await startUpstream((_req, res) => res.end('through acme\n'))
  })
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.kill('SIGKILL')))
    await gateway?.stop()
    await pebble?.stop()
    await upstream.close()
    rmSync(tmp, { recursive: true, force: true })
  })

  const start = async (directoryUrl: string, caFile: string): Promise<TestGateway> => startTestGateway({
    dataDir: join(tmp, 'data'),
    // Only clients with a key the operator issued spend ACME orders: alice's key is listed; other keys get in
    // anonymously (--allow-anonymous) but do not.
    flags: { acmeDirectory: directoryUrl, acmeEmail: 'ops@example.com', acmeCaFile: caFile, authorizedKeys: [join(FIXTURES, 'keys', 'alice.pub')], allowAnonymous: true },
  })
  const bind = async (gw: TestGateway): Promise<void> => {
    const client = connect({ kind: 'openssh', port: gw.sshPort, key: gw.key('alice', 'openssh'), forwards: [`acme:443:localhost:${upstream.port}`], command: 'http' })
    clients.push(client)
    await client.waitFor(new RegExp(`Forwarding\\s+https://acme\\.localhost:${gw.httpsPort}`))
  }
  const curl = (gw: TestGateway, caFile: string) => run('curl', [
    '-sS', '--cacert', caFile, '--resolve', `acme.localhost:${gw.httpsPort}:127.0.0.1`, `https://acme.localhost:${gw.httpsPort}/`,
  ], { timeout: 20_000 })

  it('orders a certificate over HTTP-01 on the first handshake; curl verifies it against pebble\'s root', async () => {
    const started = Date.now()
    setup = await preparePebble(tmp)
    // The gateway first (pebble validates HTTP-01 on its HTTP port), then pebble.
    gateway = await start(setup.directoryUrl, setup.tlsCaFile)
    pebble = await startPebble(setup, gateway.httpPort)
    await bind(gateway)
    const rootFile = join(tmp, 'pebble-root.pem')
    writeFileSync(rootFile, await pebble.root())
    const localCaFile = join(tmp, 'local-ca.pem')
    writeFileSync(localCaFile, gateway.caPem)

    // The first handshake waits for the order (up to 10 s) rather than getting the local CA's certificate.
    const ordered = Date.now()
    const { stdout } = await curl(gateway, rootFile)
    const orderMs = Date.now() - ordered
    expect(stdout).toBe('through acme\n')
    // pebble really fetched the challenge by name from the gateway (through the DNS stub), and signed.
    expect(pebble.dns.asked).toContain('acme.localhost')
    expect(pebble.output()).toMatch(/Issued certificate serial/)
    // The local CA does not vouch for it: this is pebble's certificate.
    const local = await curl(gateway, localCaFile).then(() => 'verified', (error: { code: number }) => error.code)
    expect(local).toBe(60) // curl: peer certificate cannot be authenticated

    const dir = join(tmp, 'data', 'acme', `127.0.0.1_${setup.ports.acme}_dir`)
    expect(statSync(join(dir, 'acme.localhost.key')).mode & 0o777).toBe(0o600)
    expect(statSync(join(dir, 'account-key.pem')).mode & 0o777).toBe(0o600)
    expect(new X509Certificate(await pebble.root()).subject).toMatch(/Pebble Root CA/)
    console.info(`ACME: first certificate in ${orderMs} ms (test so far ${Date.now() - started} ms)`)
  })

  it('a key let in only anonymously gets the local CA certificate and orders nothing', async () => {
    const client = connect({ kind: 'openssh', port: gateway!.sshPort, key: gateway!.key('bob', 'openssh'), forwards: [`anon-acme:443:localhost:${upstream.port}`], command: 'http' })
    clients.push(client)
    await client.waitFor(/Forwarding\s+https:\/\/anon-acme\.localhost/)
    const served = await presented(gateway!.httpsPort, 'anon-acme.localhost', gateway!.caPem)
    expect(served.authorized).toBe(true) // the local CA's
    expect(pebble.dns.asked).not.toContain('anon-acme.localhost')
  })

  it('reuses the stored certificate after a restart, with pebble gone', async () => {
    const rootFile = join(tmp, 'pebble-root.pem')
    await pebble.stop()
    await Promise.all(clients.splice(0).map((c) => c.kill('SIGKILL')))
    await gateway!.stop()
    gateway = await start(setup.directoryUrl, setup.tlsCaFile)
    await bind(gateway)
    const { stdout } = await curl(gateway, rootFile)
    expect(stdout).toBe('through acme\n')
  })
})

describe('bring-your-own certificates, hot-reloaded', () => {
  let gateway: TestGateway
  let certsDir: string
  let own: LocalCa
  let upstream: Awaited<ReturnType<typeof startUpstream>>
  const clients: SshClient[] = []

  beforeAll(async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'porthole-byo-e2e-'))
    certsDir = join(tmp, 'certs')
    mkdirSync(certsDir)
    gateway = await startTestGateway({ flags: { certsDir } })
    // "Your" CA: made apart from the gateway's data dir, as a user's certificates would be.
    own = LocalCa.loadOrCreate(join(gateway.tmp, 'my-ca'))
    upstream = await startUpstream((_req, res) => res.end('ok\n'))
  })
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.kill('SIGKILL')))
    await upstream.close()
    await gateway.stop()
    rmSync(join(certsDir, '..'), { recursive: true, force: true })
  })

  const open = async (forward: string, url: RegExp): Promise<void> => {
    const client = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [forward], command: 'http' })
    clients.push(client)
    await client.waitFor(url)
  }
  const install = (file: string, host: string): string => {
    const issued = own.issue(host)
    // Key first, then the certificate, as a careful deploy script would; the watcher's debounce covers both.
    writeFileSync(join(certsDir, `${file}.key`), issued.keyPem, { mode: 0o600 })
    writeFileSync(join(certsDir, `${file}.crt`), issued.certPem)
    return issued.serialNumber.toUpperCase()
  }

  it('serves a pair written after start, then its replacement, without a restart', async () => {
    await open(`byo:443:localhost:${upstream.port}`, /Forwarding\s+https:\/\/byo\.localhost/)
    const before = await presented(gateway.httpsPort, 'byo.localhost', gateway.caPem)
    expect(before.authorized).toBe(true) // the local CA's, until a file arrives

    const first = install('byo.localhost', 'byo.localhost')
    const served = await eventually(() => presentedSerial(gateway.httpsPort, 'byo.localhost', own.certPem, first))
    expect(served.authorized).toBe(true)

    const second = install('byo.localhost', 'byo.localhost')
    expect(second).not.toBe(first)
    await eventually(() => presentedSerial(gateway.httpsPort, 'byo.localhost', own.certPem, second))
  })

  it('serves a _wildcard pair for the names of a wildcard endpoint', async () => {
    await open(`*.wild:443:localhost:${upstream.port}`, /Forwarding\s+https:\/\/\*\.wild\.localhost/)
    const serial = install('_wildcard.wild.localhost', '*.wild.localhost')
    const served = await eventually(() => presentedSerial(gateway.httpsPort, 'x.wild.localhost', own.certPem, serial))
    expect(served.authorized).toBe(true)
    expect(served.cert.subjectaltname).toBe('DNS:*.wild.localhost')
  })
})
