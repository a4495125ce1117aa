// ACME certificates with a fake ACME client and a fake clock: one order shared by concurrent handshakes,
// the local CA while an order is slow or failed, backoff, files and modes on disk and their reuse after a
// restart, background renewal, and which names the CertStore sends to ACME at all.
import { afterAll, describe, expect, it, vi } from 'vitest'
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AcmeCerts, directoryFolder } from '../../src/certs/acme-certs.js'
import type { OrderedCert, Orderer } from '../../src/certs/acme-orderer.js'
import type { CertCode } from '../../src/certs/byo-certs.js'
import { CertStore } from '../../src/certs/cert-store.js'
import { newEcKeyPem } from '../../src/certs/key-files.js'
import { LocalCa } from '../../src/certs/local-ca.js'

const DAY = 24 * 3_600_000
const DIRECTORY = 'https://acme.test:14000/dir'
const dirs: string[] = []
function tempDir (): string {
  const dir = mkdtempSync(join(tmpdir(), 'porthole-acme-'))
  dirs.push(dir)
  return dir
}
afterAll(() => { for (const dir of dirs) rmSync(dir, { recursive: true, force: true }) })

const testCa = LocalCa.loadOrCreate(tempDir())

/** Plays the ACME CA: each order waits until the test settles it. */
class FakeCa implements Orderer {
  readonly ca = testCa
  readonly orders: string[] = []
  readonly #waiting: Array<{ host: string, settle: (ok: boolean) => void }> = []

  order (host: string): Promise<OrderedCert> {
    this.orders.push(host)
    return new Promise((resolve, reject) => {
      this.#waiting.push({
        host,
        settle: (ok) => {
          if (!ok) return reject(new Error('urn:ietf:params:acme:error:connection: refused'))
          const issued = this.ca.issue(host)
          resolve({ certPem: issued.certPem, keyPem: issued.keyPem })
        },
      })
    })
  }

  challenge (): string | undefined { return undefined }

  settle (ok: boolean): void {
    this.#waiting.shift()!.settle(ok)
  }
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))
const mode = (path: string): number => statSync(path).mode & 0o777

function setup (overrides: { waitMs?: number | 'default', dataDir?: string, fake?: FakeCa } = {}) {
  const clock = { now: Date.now() }
  const fake = overrides.fake ?? new FakeCa()
  const reports: Array<{ code: CertCode, detail: string }> = []
  const dataDir = overrides.dataDir ?? tempDir()
  const acme = new AcmeCerts({
    directoryUrl: DIRECTORY,
    email: 'ops@example.com',
    dataDir,
    orderer: fake,
    now: () => clock.now,
    ...(overrides.waitMs === 'default' ? {} : { handshakeWaitMs: overrides.waitMs ?? 5_000 }),
    report: (code, detail) => reports.push({ code, detail }),
  })
  return { acme, fake, clock, reports, dataDir }
}

describe('ACME certificates', () => {
  it('shares one order among concurrent handshakes and keeps the result on disk', async () => {
    const { acme, fake, dataDir } = setup()
    const first = acme.contextFor('app.example.com')
    const second = acme.contextFor('app.example.com')
    expect(first).toBeInstanceOf(Promise)
    expect(fake.orders).toEqual(['app.example.com'])
    fake.settle(true)
    const [a, b] = await Promise.all([first, second])
    expect(a).toBeDefined()
    expect(a).toBe(b)
    // From now on, at once and without a new order.
    expect(acme.contextFor('app.example.com')).toBe(a)
    expect(fake.orders).toHaveLength(1)

    const dir = join(dataDir, 'acme', 'acme.test_14000_dir')
    expect(acme.dir).toBe(dir)
    expect(mode(join(dir, 'app.example.com.key'))).toBe(0o600)
    expect(mode(join(dir, 'app.example.com.crt'))).toBe(0o644)
    expect(readFileSync(join(dir, 'app.example.com.crt'), 'utf8')).toContain('BEGIN CERTIFICATE')
  })

  it('reuses stored certificates after a restart, without ordering', () => {
    const first = setup()
    void first.acme.contextFor('kept.example.com')
    first.fake.settle(true)
    return first.acme.pending('kept.example.com')!.then(() => {
      const restarted = setup({ dataDir: first.dataDir })
      const context = restarted.acme.contextFor('kept.example.com')
      expect(context).toBeDefined()
      expect(context).not.toBeInstanceOf(Promise)
      expect(restarted.fake.orders).toEqual([])
    })
  })

  it('gives up waiting handshakeWaitMs after the order started (local CA) while the order goes on', async () => {
    const { acme, fake, clock } = setup({ waitMs: 20 })
    const slow = acme.contextFor('slow.example.com')
    expect(await slow).toBeUndefined()
    expect(acme.pending('slow.example.com')).toBeDefined()
    // Within the wait: a later handshake joins the same order rather than placing another.
    clock.now += 10
    const joined = acme.contextFor('slow.example.com')
    expect(joined).toBeInstanceOf(Promise)
    expect(await joined).toBeUndefined()
    // Past it: the local CA at once, no waiting, while the order still runs.
    clock.now += 10
    expect(acme.contextFor('slow.example.com')).toBeUndefined()
    expect(fake.orders).toEqual(['slow.example.com'])
    fake.settle(true)
    await acme.pending('slow.example.com')
    const context = acme.contextFor('slow.example.com')
    expect(context).toBeDefined()
    expect(context).not.toBeInstanceOf(Promise)
  })

  it('by default (as the README says) a handshake waits for the order 10 s after it started, then gets the local CA', async () => {
    vi.useFakeTimers()
    try {
      const { acme, fake, clock } = setup({ waitMs: 'default' })
      let outcome: unknown = 'waiting'
      void Promise.resolve(acme.contextFor('ten.example.com')).then((context) => { outcome = context })
      await vi.advanceTimersByTimeAsync(9_999)
      expect(outcome).toBe('waiting')
      await vi.advanceTimersByTimeAsync(1)
      expect(outcome).toBeUndefined() // the local CA's certificate
      clock.now += 10_000
      expect(acme.contextFor('ten.example.com')).toBeUndefined() // past the wait: at once
      fake.settle(true)
      await acme.pending('ten.example.com')
    } finally {
      vi.useRealTimers()
    }
  })

  it('after a failed order: the local CA, no new order until the backoff ends, PH_4002 reported', async () => {
    const { acme, fake, clock, reports } = setup()
    const failing = acme.contextFor('down.example.com')
    fake.settle(false)
    expect(await failing).toBeUndefined()
    expect(reports).toHaveLength(1)
    expect(reports[0]!.code).toBe('PH_4002')
    expect(reports[0]!.detail).toMatch(/^down\.example\.com: urn:ietf:params:acme:error:connection: refused; not ordered again before /)

    expect(acme.contextFor('down.example.com')).toBeUndefined()
    clock.now += 14 * 60_000
    expect(acme.contextFor('down.example.com')).toBeUndefined()
    expect(fake.orders).toHaveLength(1)

    clock.now += 60_000 // 15 minutes after the failure
    const retry = acme.contextFor('down.example.com')
    expect(retry).toBeInstanceOf(Promise)
    expect(fake.orders).toHaveLength(2)
    fake.settle(true)
    expect(await retry).toBeDefined()
  })

  it('renews in the background once two thirds of the lifetime have passed, serving the old one meanwhile', async () => {
    const { acme, fake, clock } = setup()
    const ordered = acme.contextFor('renew.example.com')
    fake.settle(true)
    const old = await ordered
    clock.now += 59 * DAY // 90-day certificate: due after 60 days
    expect(acme.contextFor('renew.example.com')).toBe(old)
    expect(fake.orders).toHaveLength(1)
    clock.now += 2 * DAY
    expect(acme.contextFor('renew.example.com')).toBe(old) // due: still served, renewal started
    expect(fake.orders).toHaveLength(2)
    expect(acme.contextFor('renew.example.com')).toBe(old) // the same renewal, not another
    expect(fake.orders).toHaveLength(2)
    fake.settle(true)
    await acme.pending('renew.example.com')
    const renewed = acme.contextFor('renew.example.com')
    expect(renewed).toBeDefined()
    expect(renewed).not.toBe(old)
  })

  it('orders again when the stored pair is broken (a crash between key and certificate)', async () => {
    const first = setup()
    void first.acme.contextFor('torn.example.com')
    first.fake.settle(true)
    await first.acme.pending('torn.example.com')
    writeFileSync(join(first.acme.dir, 'torn.example.com.key'), newEcKeyPem())
    const restarted = setup({ dataDir: first.dataDir })
    expect(restarted.acme.contextFor('torn.example.com')).toBeInstanceOf(Promise)
    expect(restarted.reports[0]?.code).toBe('PH_4001')
    expect(restarted.fake.orders).toEqual(['torn.example.com'])
    restarted.fake.settle(true)
  })

  it('holds orders back at the hourly cap with PH_4003', () => {
    const dataDir = tempDir()
    const fake = new FakeCa()
    const reports: CertCode[] = []
    const acme = new AcmeCerts({ directoryUrl: DIRECTORY, email: 'ops@example.com', dataDir, orderer: fake, guard: { maxPerHour: 2 }, report: (code) => reports.push(code) })
    expect(acme.contextFor('one.example.com')).toBeInstanceOf(Promise)
    expect(acme.contextFor('two.example.com')).toBeInstanceOf(Promise)
    expect(acme.contextFor('three.example.com')).toBeUndefined()
    expect(acme.contextFor('four.example.com')).toBeUndefined()
    expect(fake.orders).toEqual(['one.example.com', 'two.example.com'])
    expect(reports).toEqual(['PH_4003']) // one line a minute, not one per handshake
    fake.settle(true)
    fake.settle(true)
  })

  it('names the folder after the directory URL', () => {
    expect(directoryFolder('https://acme-v02.api.letsencrypt.org/directory')).toBe('acme-v02.api.letsencrypt.org_directory')
    expect(directoryFolder('https://127.0.0.1:14000/dir')).toBe('127.0.0.1_14000_dir')
  })

  it('CertStore: exact names go to ACME, wildcard endpoints keep the local CA, a failed order falls back', async () => {
    const fake = new FakeCa()
    const store = new CertStore({ dataDir: tempDir(), acme: { directoryUrl: DIRECTORY, email: 'ops@example.com', orderer: fake } })
    expect(store.contextFor('*.team.example.com', 'a.team.example.com')).toBe(store.secureContextFor('*.team.example.com'))
    expect(fake.orders).toEqual([])

    const pending = store.contextFor('fails.example.com')
    expect(pending).toBeInstanceOf(Promise)
    fake.settle(false)
    expect(await pending).toBe(store.secureContextFor('fails.example.com'))

    const ok = store.contextFor('works.example.com')
    fake.settle(true)
    const context = await ok
    expect(context).not.toBe(store.secureContextFor('works.example.com'))
    expect(store.contextFor('works.example.com')).toBe(context)
    await tick()
  })

  it('CertStore: endpoints of clients without a key never order (they would spend the shared ACME quota)', () => {
    const fake = new FakeCa()
    const store = new CertStore({ dataDir: tempDir(), acme: { directoryUrl: DIRECTORY, email: 'ops@example.com', orderer: fake } })
    expect(store.contextFor('anon.example.com', 'anon.example.com', { acme: false })).toBe(store.secureContextFor('anon.example.com'))
    expect(fake.orders).toEqual([])
  })
})
