// Local CA and on-demand leaf certificates: files and modes in the data dir, real TLS handshakes against the
// CA, OpenSSL's own verifier, wildcard names, renewal and host validation.
import { describe, expect, it, afterAll } from 'vitest'
import { execFileSync } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { checkServerIdentity, connect, createServer, type PeerCertificate, type Server } from 'node:tls'
import { CertStore } from '../../src/certs/cert-store.js'

const DAY_MS = 24 * 3_600_000
const dirs: string[] = []

function tempDir (): string {
  const dir = mkdtempSync(join(tmpdir(), 'porthole-certs-'))
  dirs.push(dir)
  return dir
}

afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

const mode = (path: string): number => statSync(path).mode & 0o777

/** A TLS server whose SNICallback asks the store, as the HTTPS edge will. */
async function serve (store: CertStore): Promise<{ port: number, server: Server }> {
  const server = createServer({
    SNICallback: (servername, cb) => {
      try { cb(null, store.secureContextFor(servername)) } catch (error) { cb(error as Error) }
    },
  }, (socket) => socket.end('hello'))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { port: (server.address() as { port: number }).port, server }
}

interface Handshake { authorized: boolean, error?: string, cert?: PeerCertificate }

async function handshake (port: number, servername: string, ca: string, rejectUnauthorized = false): Promise<Handshake> {
  return await new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, servername, ca, rejectUnauthorized }, () => {
      const result = { authorized: socket.authorized, error: socket.authorizationError?.toString(), cert: socket.getPeerCertificate() }
      socket.end()
      resolve(result)
    })
    socket.on('error', (error) => resolve({ authorized: false, error: error.message }))
  })
}

describe('certs', () => {
  const dataDir = join(tempDir(), 'keys') // not there yet: the store creates it
  const store = new CertStore({ dataDir })

  it('creates the CA once, with its files and modes, and reuses it', () => {
    expect(mode(dataDir)).toBe(0o700)
    expect(mode(join(dataDir, 'ca.pem'))).toBe(0o644)
    expect(mode(join(dataDir, 'ca-key.pem'))).toBe(0o600)
    expect(mode(join(dataDir, 'leaf-key.pem'))).toBe(0o600)
    expect(readFileSync(join(dataDir, 'ca.pem'), 'utf8')).toBe(store.caPem)

    const ca = new X509Certificate(store.caPem)
    expect(ca.ca).toBe(true)
    expect(ca.subject).toMatch(/^CN=Porthole Local CA \(.+\)/)
    expect(ca.publicKey.asymmetricKeyDetails?.modulusLength).toBeGreaterThanOrEqual(2048)
    expect(new Date(ca.validTo).getTime() - Date.now()).toBeGreaterThan(9.9 * 365 * DAY_MS)
    const text = execFileSync('openssl', ['x509', '-noout', '-text'], { input: store.caPem, encoding: 'utf8' })
    expect(text).toMatch(/Basic Constraints: critical\s+CA:TRUE/)
    expect(text).toMatch(/Key Usage: critical\s+Certificate Sign, CRL Sign/)
    expect(text).toContain('Subject Key Identifier')

    const again = new CertStore({ dataDir })
    expect(again.caPem).toBe(store.caPem)
    expect(again.issue('a.localhost').keyPem).toBe(store.issue('b.localhost').keyPem)
  })

  it('serves a leaf the CA vouches for in a real TLS handshake', async () => {
    const { port, server } = await serve(store)
    try {
      const ok = await handshake(port, 'app.localhost', store.caPem)
      expect(ok.error).toBeUndefined()
      expect(ok.authorized).toBe(true)
      expect(ok.cert?.subjectaltname).toContain('DNS:app.localhost')

      // Same host, other case: same cached certificate.
      const upper = await handshake(port, 'APP.localhost', store.caPem)
      expect(upper.authorized).toBe(true)
      expect(upper.cert?.serialNumber).toBe(ok.cert?.serialNumber)

      // A certificate for one name does not pass for another.
      expect(checkServerIdentity('app.localhost', ok.cert!)).toBeUndefined()
      expect(checkServerIdentity('other.localhost', ok.cert!)?.message).toMatch(/other\.localhost/)
      const mismatch = await new Promise<Error | undefined>((resolve) => {
        const socket = connect({
          host: '127.0.0.1', port, servername: 'app.localhost', ca: store.caPem,
          checkServerIdentity: (_host, cert) => checkServerIdentity('other.localhost', cert),
        }, () => { socket.end(); resolve(undefined) })
        socket.on('error', resolve)
      })
      expect((mismatch as NodeJS.ErrnoException | undefined)?.code).toBe('ERR_TLS_CERT_ALTNAME_INVALID')

      // A client that does not trust the CA refuses the certificate.
      const untrusted = await handshake(port, 'app.localhost', new CertStore({ dataDir: tempDir() }).caPem)
      expect(untrusted.authorized).toBe(false)
    } finally {
      server.close()
    }
  })

  it('issues leaves that openssl verify accepts, with the expected extensions', () => {
    const dir = tempDir()
    const issued = store.issue('app.localhost')
    writeFileSync(join(dir, 'leaf.pem'), issued.certPem)
    const out = execFileSync('openssl', ['verify', '-x509_strict', '-CAfile', join(dataDir, 'ca.pem'), '-purpose', 'sslserver', join(dir, 'leaf.pem')], { encoding: 'utf8' })
    expect(out).toContain(': OK')

    const text = execFileSync('openssl', ['x509', '-noout', '-text', '-in', join(dir, 'leaf.pem')], { encoding: 'utf8' })
    expect(text).toMatch(/Subject: CN ?= ?app\.localhost\n/)
    expect(text).toContain('TLS Web Server Authentication')
    expect(text).toMatch(/Key Usage: critical\s+Digital Signature, Key Encipherment/)
    expect(text).toContain('Authority Key Identifier')

    const leaf = new X509Certificate(issued.certPem)
    const ca = new X509Certificate(store.caPem)
    expect(leaf.checkIssued(ca)).toBe(true)
    expect(leaf.verify(ca.publicKey)).toBe(true)
    const days = (new Date(leaf.validTo).getTime() - new Date(leaf.validFrom).getTime()) / DAY_MS
    expect(days).toBeCloseTo(90 + 1 / 24, 2)
    expect(new Date(leaf.validFrom).getTime()).toBeLessThan(Date.now() - 3_000_000)
    expect(issued.notAfter.getTime()).toBe(new Date(leaf.validTo).getTime())
    expect(leaf.serialNumber.length).toBe(32)
    expect(store.issue('app.localhost').serialNumber).not.toBe(issued.serialNumber)
  })

  it('puts a host longer than a commonName allows into a critical SAN only', () => {
    const host = `${'a'.repeat(60)}.${'b'.repeat(60)}.localhost`
    const dir = tempDir()
    writeFileSync(join(dir, 'leaf.pem'), store.issue(host).certPem)
    expect(execFileSync('openssl', ['verify', '-CAfile', join(dataDir, 'ca.pem'), '-verify_hostname', host, join(dir, 'leaf.pem')], { encoding: 'utf8' })).toContain(': OK')
    const text = execFileSync('openssl', ['x509', '-noout', '-text', '-in', join(dir, 'leaf.pem')], { encoding: 'utf8' })
    expect(text).toContain('Subject Alternative Name: critical')
  })

  it('issues a wildcard certificate that covers one label', async () => {
    const wildcard = new X509Certificate(store.issue('*.team.localhost').certPem)
    expect(wildcard.checkHost('x.team.localhost')).toBe('*.team.localhost')
    expect(wildcard.checkHost('a.b.team.localhost')).toBeUndefined()

    // The edge asks for the wildcard pattern when the SNI name falls under a wildcard endpoint.
    const server = createServer({ SNICallback: (_name, cb) => cb(null, store.secureContextFor('*.team.localhost')) }, (s) => s.end())
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    try {
      const port = (server.address() as { port: number }).port
      const ok = await handshake(port, 'x.team.localhost', store.caPem)
      expect(ok.error).toBeUndefined()
      expect(ok.authorized).toBe(true)
      expect(ok.cert?.subjectaltname).toBe('DNS:*.team.localhost')
      // The same certificate offered for a name outside the wildcard fails the client's default check.
      const outside = await handshake(port, 'x.other.localhost', store.caPem, true)
      expect(outside.authorized).toBe(false)
      expect(outside.error).toMatch(/x\.other\.localhost/)
    } finally {
      server.close()
    }
  })

  it('re-issues a cached certificate once it is due for renewal', async () => {
    let now = Date.now()
    const renewing = new CertStore({ dataDir, now: () => now })
    const { port, server } = await serve(renewing)
    try {
      const first = await handshake(port, 'app.localhost', renewing.caPem)
      const context = renewing.secureContextFor('app.localhost')
      now += 59 * DAY_MS // 31 days left: still outside the 30-day window
      expect(renewing.secureContextFor('app.localhost')).toBe(context)
      const same = await handshake(port, 'app.localhost', renewing.caPem)
      expect(same.cert?.serialNumber).toBe(first.cert?.serialNumber)

      now += 2 * DAY_MS // 29 days left
      const renewed = renewing.secureContextFor('app.localhost')
      expect(renewed).not.toBe(context)
      expect(renewing.secureContextFor('app.localhost')).toBe(renewed)
      // The client's clock is real time, so the renewed certificate is not yet valid for it; compare serials only.
      const after = await handshake(port, 'app.localhost', renewing.caPem)
      expect(after.cert?.serialNumber).toBeDefined()
      expect(after.cert?.serialNumber).not.toBe(first.cert?.serialNumber)
    } finally {
      server.close()
    }
  })

  it('keeps at most maxCached contexts, dropping the least recently used', () => {
    const small = new CertStore({ dataDir, maxCached: 2 })
    const a = small.secureContextFor('a.localhost')
    const b = small.secureContextFor('b.localhost')
    expect(small.secureContextFor('a.localhost')).toBe(a)
    small.secureContextFor('c.localhost') // drops b, the least recently used
    expect(small.secureContextFor('a.localhost')).toBe(a)
    // b was evicted: asked again, it is issued afresh (a new context), which in turn drops a's
    expect(small.secureContextFor('b.localhost')).not.toBe(b)
    expect(small.secureContextFor('c.localhost')).toBeDefined()
    expect(small.secureContextFor('a.localhost')).not.toBe(a)
  })

  it('refuses malformed hosts', () => {
    for (const host of ['', 'a..b', '-a.localhost', 'a-.localhost', 'under_score.localhost', 'a.*.localhost', '**.localhost',
      '*', '*.', 'x'.repeat(64) + '.localhost', `${'a.'.repeat(126)}ab`, '127.0.0.1', 'app.localhost.', 'sp ace.localhost', 'é.localhost']) {
      expect(() => store.secureContextFor(host), host).toThrow(/cannot issue a certificate/)
    }
    expect(() => store.issue('App.localhost')).toThrow(/cannot issue a certificate/)
    expect(() => store.issue(`${'a'.repeat(63)}.localhost`)).not.toThrow()
  })

  it('refuses to replace a CA whose key is missing, or a key and certificate that do not match', () => {
    const dir = tempDir()
    const original = new CertStore({ dataDir: dir }).caPem
    rmSync(join(dir, 'ca-key.pem'))
    expect(() => new CertStore({ dataDir: dir })).toThrow(/ca-key\.pem is missing/)
    writeFileSync(join(dir, 'ca-key.pem'), readFileSync(join(dataDir, 'ca-key.pem')), { mode: 0o600 })
    expect(() => new CertStore({ dataDir: dir })).toThrow(/do not belong together/)
    expect(readFileSync(join(dir, 'ca.pem'), 'utf8')).toBe(original)

    // Only the key survived (a crash between the two writes): the certificate is made again from it.
    rmSync(join(dir, 'ca.pem'))
    const remade = new CertStore({ dataDir: dir })
    expect(new X509Certificate(remade.caPem).publicKey.export({ type: 'spki', format: 'pem' }))
      .toBe(new X509Certificate(store.caPem).publicKey.export({ type: 'spki', format: 'pem' }))
  })
})
