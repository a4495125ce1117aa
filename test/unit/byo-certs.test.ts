// Bring-your-own certificates: file names to hosts, exact before wildcard, bad pairs skipped with their file
// named (and the pair loaded before kept), expiry, and precedence over the local CA in the CertStore.
import { afterAll, describe, expect, it } from 'vitest'
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ByoCerts, hostOfFile, type CertCode } from '../../src/certs/byo-certs.js'
import { CertStore } from '../../src/certs/cert-store.js'
import { LocalCa } from '../../src/certs/local-ca.js'

const dirs: string[] = []
function tempDir (): string {
  const dir = mkdtempSync(join(tmpdir(), 'porthole-byo-'))
  dirs.push(dir)
  return dir
}
afterAll(() => { for (const dir of dirs) rmSync(dir, { recursive: true, force: true }) })

// "Your own" certificates come from a CA of their own, in a directory apart from the gateway's data dir.
const own = LocalCa.loadOrCreate(tempDir())
const other = LocalCa.loadOrCreate(tempDir())

function writePair (dir: string, file: string, host: string, ca = own): void {
  const issued = ca.issue(host)
  writeFileSync(join(dir, `${file}.crt`), issued.certPem)
  writeFileSync(join(dir, `${file}.key`), issued.keyPem)
}

interface Reported { code: CertCode, detail: string }

describe('bring-your-own certificates', () => {
  it('maps file names to hosts and wildcard patterns', () => {
    expect(hostOfFile('app.example.com.crt')).toBe('app.example.com')
    expect(hostOfFile('App.Example.COM.crt')).toBe('app.example.com')
    expect(hostOfFile('_wildcard.team.example.com.crt')).toBe('*.team.example.com')
    expect(hostOfFile('app.example.com.key')).toBeNull()
    expect(hostOfFile('not a host.crt')).toBeNull()
    expect(hostOfFile('.crt')).toBeNull()
  })

  it('serves an exact certificate before a wildcard one, and the wildcard for one label only', () => {
    const dir = tempDir()
    writePair(dir, 'a.team.example.com', 'a.team.example.com')
    writePair(dir, '_wildcard.team.example.com', '*.team.example.com')
    const byo = new ByoCerts({ dir })
    try {
      expect(byo.size).toBe(2)
      const exact = byo.lookup('a.team.example.com')
      const wildcard = byo.lookup('b.team.example.com')
      expect(exact).toBeDefined()
      expect(wildcard).toBeDefined()
      expect(exact).not.toBe(wildcard)
      expect(byo.lookup('B.TEAM.example.com')).toBe(wildcard)
      expect(byo.lookup('x.b.team.example.com')).toBeUndefined()
      expect(byo.lookup('team.example.com')).toBeUndefined()
    } finally {
      byo.close()
    }
  })

  it('skips bad pairs with the file named, never throwing, and keeps a good pair through a broken replacement', () => {
    const dir = tempDir()
    const reports: Reported[] = []
    writePair(dir, 'good.example.com', 'good.example.com')
    // Key of another certificate.
    const mismatched = own.issue('mismatch.example.com')
    writeFileSync(join(dir, 'mismatch.example.com.crt'), mismatched.certPem)
    writeFileSync(join(dir, 'mismatch.example.com.key'), other.issue('x.example.com').keyPem)
    // Not PEM at all, a lone certificate, and one for another name than its file says.
    writeFileSync(join(dir, 'garbage.example.com.crt'), 'hello')
    writeFileSync(join(dir, 'garbage.example.com.key'), 'world')
    writeFileSync(join(dir, 'lonely.example.com.crt'), own.issue('lonely.example.com').certPem)
    writePair(dir, 'misnamed.example.com', 'elsewhere.example.com')
    // Expired.
    const old = own.issue('old.example.com', Date.now() - 200 * 24 * 3_600_000)
    writeFileSync(join(dir, 'old.example.com.crt'), old.certPem)
    writeFileSync(join(dir, 'old.example.com.key'), old.keyPem)

    const byo = new ByoCerts({ dir, report: (code, detail) => reports.push({ code, detail }) })
    try {
      expect(byo.size).toBe(1)
      expect(byo.lookup('good.example.com')).toBeDefined()
      const lines = reports.map((r) => `${r.code} ${r.detail}`)
      expect(lines).toHaveLength(5)
      expect(lines).toContainEqual(expect.stringMatching(/^PH_4001 .*mismatch\.example\.com\.crt: the key does not belong to the certificate$/))
      expect(lines).toContainEqual(expect.stringMatching(/^PH_4001 .*garbage\.example\.com\.crt: not a PEM certificate$/))
      expect(lines).toContainEqual(expect.stringMatching(/^PH_4001 .*lonely\.example\.com\.crt: no key file lonely\.example\.com\.key beside it$/))
      expect(lines).toContainEqual(expect.stringMatching(/^PH_4001 .*misnamed\.example\.com\.crt: the certificate does not cover misnamed\.example\.com/))
      expect(lines).toContainEqual(expect.stringMatching(/^PH_4001 .*old\.example\.com\.crt: the certificate expired on /))

      // A rescan with nothing changed reports nothing again.
      reports.length = 0
      byo.reload()
      expect(reports).toEqual([])

      // A replacement whose key has not arrived yet: the pair loaded before stays.
      const before = byo.lookup('good.example.com')
      writeFileSync(join(dir, 'good.example.com.crt'), own.issue('good.example.com').certPem.replace('MII', 'XXX'))
      reports.length = 0
      byo.reload()
      expect(byo.lookup('good.example.com')).toBe(before)
      expect(reports[0]?.detail).toMatch(/good\.example\.com\.crt: not a PEM certificate; the certificate loaded before stays in use$/)

      // Removing the files removes the certificate.
      unlinkSync(join(dir, 'good.example.com.crt'))
      byo.reload()
      expect(byo.lookup('good.example.com')).toBeUndefined()
    } finally {
      byo.close()
    }
  })

  it('stops serving a certificate once it expires', () => {
    const dir = tempDir()
    writePair(dir, 'soon.example.com', 'soon.example.com')
    let now = Date.now()
    const byo = new ByoCerts({ dir, now: () => now })
    try {
      expect(byo.lookup('soon.example.com')).toBeDefined()
      now += 91 * 24 * 3_600_000
      expect(byo.lookup('soon.example.com')).toBeUndefined()
    } finally {
      byo.close()
    }
  })

  it('wins over the local CA in the CertStore, for exact names and under wildcard endpoints', () => {
    const certsDir = tempDir()
    writePair(certsDir, 'mine.localhost', 'mine.localhost')
    writePair(certsDir, 'one.team.localhost', 'one.team.localhost')
    const store = new CertStore({ dataDir: join(tempDir(), 'data'), certsDir })
    try {
      expect(store.contextFor('mine.localhost')).toBe(store.byo!.lookup('mine.localhost'))
      expect(store.contextFor('theirs.localhost')).toBe(store.secureContextFor('theirs.localhost'))
      // A wildcard endpoint: the client's name picks an own certificate when there is one.
      expect(store.contextFor('*.team.localhost', 'one.team.localhost')).toBe(store.byo!.lookup('one.team.localhost'))
      expect(store.contextFor('*.team.localhost', 'two.team.localhost')).toBe(store.secureContextFor('*.team.localhost'))
    } finally {
      store.close()
    }
  })

  it('refuses a certs dir that does not exist', () => {
    expect(() => new ByoCerts({ dir: join(tempDir(), 'nope') })).toThrow(/certs dir .*nope does not exist or is not a directory/)
  })
})
