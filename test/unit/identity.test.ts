// The identity layer without SSH: ACL parsing and matching, secrets, the file store's atomicity and
// locking, Identity's checks, reservations in the registry, and the login throttle.
import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { Registry } from '../../src/core/registry.js'
import type { Owner } from '../../src/core/endpoint.js'
import { aclAllows, aclGrants, parseAcl, parseAclEntry } from '../../src/identity/acl.js'
import { FileIdentityStore, storedCredentialsExist } from '../../src/identity/file-store.js'
import { Identity } from '../../src/identity/identity.js'
import { hashSecret, verifySecret } from '../../src/identity/secrets.js'
import { LoginThrottle } from '../../src/identity/login-throttle.js'

const FIXTURES = resolve(import.meta.dirname, '../../fixtures')
const pub = (name: string): string => readFileSync(join(FIXTURES, 'keys', `${name}.pub`), 'utf8')
const tempDir = (): string => mkdtempSync(join(tmpdir(), 'porthole-identity-'))
const options = { domain: 'example.com', tcpPorts: { lo: 20000, hi: 20999 } }

describe('ACLs', () => {
  it('normalises entries, relative names included', () => {
    expect(parseAcl(['bind:Shop', 'bind:*.Ann.example.com', 'bind:tcp:20022', 'bind:*', 'bind:tcp:*', 'bind:shop'], 'example.com'))
      .toEqual(['bind:shop.example.com', 'bind:*.ann.example.com', 'bind:tcp:20022', 'bind:*', 'bind:tcp:*'])
  })

  it('refuses malformed entries with a one-line PH_5001 naming them', () => {
    for (const bad of ['shop', 'bind:', 'bind:tcp:0', 'bind:tcp:70000', 'bind:bad_name', 'bind:*.example.com', 'connect:x']) {
      expect(() => parseAclEntry(bad, 'example.com')).toThrow(/ACL entry/)
      try { parseAclEntry(bad, 'example.com') } catch (error) { expect((error as Error & { code: string }).code).toBe('PH_5001'); expect((error as Error).message).not.toMatch(/\n/) }
    }
  })

  it('matches hosts, wildcards and ports', () => {
    const acl = ['bind:shop.example.com', 'bind:*.ann.example.com', 'bind:tcp:20022']
    expect(aclAllows([], 'anything.example.com')).toBe(true)
    expect(aclAllows(acl, 'shop.example.com')).toBe(true)
    expect(aclAllows(acl, 'a.ann.example.com')).toBe(true)
    expect(aclAllows(acl, '*.x.ann.example.com')).toBe(true)
    expect(aclAllows(acl, 'ann.example.com')).toBe(false)
    expect(aclAllows(acl, 'other.example.com')).toBe(false)
    expect(aclAllows(acl, 'tcp:20022')).toBe(true)
    expect(aclAllows(acl, 'tcp:20023')).toBe(false)
    expect(aclAllows(['bind:tcp:*'], 'tcp:20023')).toBe(true)
    expect(aclAllows(['bind:tcp:*'], 'x.example.com')).toBe(false)
    expect(aclAllows(['bind:*'], 'tcp:1')).toBe(true)
  })

  it('grants (lets bind next to others\' names) only what an entry names, never through bind:* or an empty ACL', () => {
    const acl = ['bind:shop.example.com', 'bind:*.ann.example.com', 'bind:*']
    expect(aclGrants(acl, 'shop.example.com')).toBe(true)
    expect(aclGrants(acl, '*.x.ann.example.com')).toBe(true)
    expect(aclGrants(acl, 'ann.example.com')).toBe(false)
    expect(aclGrants(acl, 'other.example.com')).toBe(false)
    expect(aclGrants(['bind:*'], 'other.example.com')).toBe(false)
    expect(aclGrants([], 'other.example.com')).toBe(false)
  })
})

describe('secrets', () => {
  it('verifies only the right secret, and never stores it', async () => {
    const hash = await hashSecret('s3cret')
    expect(hash).not.toContain('s3cret')
    expect(await verifySecret('s3cret', hash)).toBe(true)
    expect(await verifySecret('s3cret!', hash)).toBe(false)
    expect(await verifySecret('s3cret', 'garbage')).toBe(false)
  })
})

describe('file identity store', () => {
  it('persists changes atomically and reloads them', async () => {
    const dir = tempDir()
    const identity = new Identity(new FileIdentityStore(dir), options)
    await identity.createAccount('Ann')
    const key = await identity.addKey('ann', pub('alice'), { acl: ['bind:shop'] })
    expect(key).toMatchObject({ account: 'ann', acl: ['bind:shop.example.com'], fingerprint: expect.stringMatching(/^SHA256:/) as unknown })
    const again = new Identity(new FileIdentityStore(dir), options)
    expect(again.listAccounts().map((a) => a.name)).toEqual(['ann'])
    expect(again.listKeys('ann')).toHaveLength(1)
    expect(storedCredentialsExist(dir)).toBe(true)
    expect(storedCredentialsExist(tempDir())).toBe(false)
  })

  it('a change that throws leaves nothing, and the others of its batch still land', async () => {
    const dir = tempDir()
    const identity = new Identity(new FileIdentityStore(dir), options)
    const results = await Promise.allSettled([identity.createAccount('a'), identity.createAccount('a'), identity.createAccount('bad name'), identity.createAccount('b')])
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'rejected', 'fulfilled'])
    expect((results[1] as PromiseRejectedResult).reason).toMatchObject({ code: 'PH_5002' })
    expect((results[2] as PromiseRejectedResult).reason).toMatchObject({ code: 'PH_5001' })
    const onDisk = JSON.parse(readFileSync(join(dir, 'identity.json'), 'utf8')) as { accounts: Array<{ name: string }> }
    expect(onDisk.accounts.map((a) => a.name)).toEqual(['a', 'b'])
  })

  it('refuses to start over a corrupt file instead of dropping every account', () => {
    const dir = tempDir()
    writeFileSync(join(dir, 'identity.json'), '{"accounts": [')
    expect(() => new FileIdentityStore(dir)).toThrow(/PH_2002|not valid JSON/)
  })

  it('a file broken while running: reads keep the last good data, writes are refused, nothing is overwritten', async () => {
    const dir = tempDir()
    const errors: string[] = []
    const store = new FileIdentityStore(dir, (error) => errors.push(error.message))
    const identity = new Identity(store, options)
    await identity.createAccount('ann')
    writeFileSync(join(dir, 'identity.json'), '{"accounts": [')
    await new Promise((resolve) => setTimeout(resolve, 300)) // past the stat interval
    expect(identity.listAccounts().map((a) => a.name)).toEqual(['ann'])
    expect(errors).toHaveLength(1)
    expect(errors[0]).toMatch(/not valid JSON/)
    await expect(identity.createAccount('bob')).rejects.toMatchObject({ code: 'PH_5008' })
    expect(readFileSync(join(dir, 'identity.json'), 'utf8')).toBe('{"accounts": [')
  })

  it('takes over stale locks: a dead holder, its own pid after a restart, or one older than 30 s', async () => {
    const dir = tempDir()
    const identity = new Identity(new FileIdentityStore(dir), options)
    const lock = join(dir, 'identity.json.lock')
    writeFileSync(lock, `${process.pid} left-by-an-earlier-run`)
    await identity.createAccount('a') // would wait 5 s and fail if the lock were not taken over
    writeFileSync(lock, '999999999 dead')
    await identity.createAccount('b')
    writeFileSync(lock, `${process.ppid} old`) // a live process (vitest's parent) but a lock nobody refreshed
    utimesSync(lock, new Date(Date.now() - 60_000), new Date(Date.now() - 60_000))
    await identity.createAccount('c')
    expect(identity.listAccounts().map((x) => x.name)).toEqual(['a', 'b', 'c'])
    expect(existsSync(lock)).toBe(false)
  })

  it('never takes over a lock still empty: its holder created it and is writing its name (store-crash flake)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'porthole-id-'))
    const identity = new Identity(new FileIdentityStore(dir), options)
    const lock = join(dir, 'identity.json.lock')
    writeFileSync(lock, '') // 'wx' created it a moment ago; the content comes next
    let done = false
    const created = identity.createAccount('waits').then(() => { done = true })
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(done).toBe(false)
    expect(readFileSync(lock, 'utf8')).toBe('')
    unlinkSync(lock) // the holder finished
    await created
    expect(identity.listAccounts().map((a) => a.name)).toEqual(['waits'])
  })

  it('two processes writing at once lose nothing (lock file + re-read)', async () => {
    const dir = tempDir()
    const store = new FileIdentityStore(dir)
    const identity = new Identity(store, options)
    const script = `
      import { FileIdentityStore } from ${JSON.stringify(resolve(import.meta.dirname, '../../dist/identity/file-store.js'))}
      import { Identity } from ${JSON.stringify(resolve(import.meta.dirname, '../../dist/identity/identity.js'))}
      const identity = new Identity(new FileIdentityStore(process.argv[1]), { domain: 'example.com', tcpPorts: { lo: 1, hi: 2 } })
      for (let i = 0; i < 30; i++) await identity.createAccount('child' + i)
    `
    const child = new Promise<void>((resolveChild, reject) => {
      execFile(process.execPath, ['--input-type=module', '-e', script, dir], (error) => (error ? reject(error) : resolveChild()))
    })
    for (let i = 0; i < 30; i++) await identity.createAccount(`parent${i}`)
    await child
    const names = new Identity(new FileIdentityStore(dir), options).listAccounts().map((a) => a.name)
    expect(names).toHaveLength(60)
  })

  it('checks keys, reservations and tokens', async () => {
    const identity = new Identity(new FileIdentityStore(tempDir()), options)
    await identity.createAccount('ann')
    await identity.createAccount('bob')
    await expect(identity.addKey('ann', 'ssh-ed25519 AAAAnotakey')).rejects.toMatchObject({ code: 'PH_5001' })
    await expect(identity.addKey('nobody', pub('alice'))).rejects.toMatchObject({ code: 'PH_5003' })
    await identity.addKey('ann', pub('alice'))
    await expect(identity.addKey('bob', pub('alice'))).rejects.toMatchObject({ code: 'PH_5002' })

    await identity.reserve('ann', 'domain', '*.ann')
    await identity.reserve('ann', 'tcp', '20022')
    await expect(identity.reserve('bob', 'domain', 'x.ann.example.com')).rejects.toMatchObject({ code: 'PH_5004' })
    await expect(identity.reserve('bob', 'tcp', '20022')).rejects.toMatchObject({ code: 'PH_5004' })
    await expect(identity.reserve('bob', 'tcp', '80')).rejects.toMatchObject({ code: 'PH_5001' })
    await expect(identity.reserve('bob', 'domain', 'bad_name')).rejects.toMatchObject({ code: 'PH_5001' })
    expect(identity.reservedAgainst('x.ann.example.com', 'bob')).toBe(true)
    expect(identity.reservedAgainst('x.ann.example.com', 'ann')).toBe(false)
    expect(identity.reservedAgainst('*.example.com', 'bob')).toBe(true) // would cover ann's names
    expect(identity.reservedAgainst('tcp:20022', undefined)).toBe(true)
    // An exact reservation claims the names under it too (cookies of ann.example.com reach them), and a
    // wildcard reservation claims its bare suffix.
    await identity.reserve('ann', 'domain', 'shop')
    expect(identity.reservedAgainst('www.shop.example.com', 'bob')).toBe(true)
    expect(identity.reservedAgainst('*.shop.example.com', 'bob')).toBe(true)
    expect(identity.reservedAgainst('ann.example.com', 'bob')).toBe(true)
    expect(identity.reservedAgainst('shopping.example.com', 'bob')).toBe(false)
    expect(identity.reservedAgainst('other.example.com', 'bob')).toBe(false)
    await expect(identity.reserve('bob', 'domain', 'x.shop.example.com')).rejects.toMatchObject({ code: 'PH_5004' })
    // What a reservation grants its own account next to others' names: the name and those under it.
    expect(identity.reservedFor('www.shop.example.com', 'ann')).toBe(true)
    expect(identity.reservedFor('*.x.ann.example.com', 'ann')).toBe(true)
    expect(identity.reservedFor('ann.example.com', 'ann')).toBe(true)
    expect(identity.reservedFor('*.example.com', 'ann')).toBe(false)
    expect(identity.reservedFor('www.shop.example.com', 'bob')).toBe(false)
    expect(identity.reservedFor('tcp:20022', 'ann')).toBe(false)
    // Above another account's reservation (its parent could set cookies reaching it): reservedBelow.
    await identity.reserve('ann', 'domain', 'api.team')
    expect(identity.reservedBelow('team.example.com', 'bob')).toBe(true)
    expect(identity.reservedBelow('team.example.com', 'ann')).toBe(false)
    expect(identity.reservedBelow('api.team.example.com', 'bob')).toBe(false) // the name itself: reservedAgainst
    expect(identity.reservedBelow('steam.example.com', 'bob')).toBe(false)
    expect(identity.reservedBelow('*.team.example.com', 'bob')).toBe(false) // covering it: reservedAgainst
    expect(identity.reservedAgainst('*.team.example.com', 'bob')).toBe(true)

    const { token, record } = await identity.createToken('ann', { acl: ['bind:ci'] })
    expect(JSON.stringify(identity.store.read())).not.toContain(token.split('.')[1])
    expect(await identity.verifyToken(token)).toMatchObject({ id: record.id, account: 'ann' })
    expect(await identity.verifyToken(`${record.id}.wrong`)).toBeUndefined()
    await identity.revokeToken(record.id)
    expect(await identity.verifyToken(token)).toBeUndefined()

    await identity.deleteAccount('ann')
    expect(identity.listKeys()).toHaveLength(0)
    expect(identity.listReservations()).toHaveLength(0)
  })
})

describe('registry with reservations and ACLs', () => {
  const reserved = new Map([['shop.example.com', 'ann'], ['tcp:20022', 'ann']])
  const registry = (): Registry => new Registry({
    domain: 'example.com',
    graceMs: 60_000,
    reservedAgainst: (key, account) => reserved.has(key) && reserved.get(key) !== account,
  })
  const dial = async (): Promise<never> => { throw new Error('unused') }
  const spec = { proto: 'http', policy: {}, schemes: { http: true, https: true }, upstream: { tls: false, verify: false, cas: null, protocol: 'http1' } } as never
  const bind = (r: Registry, owner: Owner, bindAddr: string) => r.bind({ bindAddr, slot: `${bindAddr}:80`, spec, owner, dial, hooks: {}, agent: { transport: 'ssh', sessionId: 's1' } })
  const ann: Owner = { id: 'account:ann', persistent: true, account: 'ann' }
  const bob: Owner = { id: 'account:bob', persistent: true, account: 'bob', refuses: (key) => (key.startsWith('bob') ? null : 'only bob*') }
  const keyOwner: Owner = { id: 'SHA256:x', persistent: true }

  it('gives a reserved name only to its account', () => {
    const r = registry()
    expect(() => bind(r, keyOwner, 'shop')).toThrow(/PH_1011|in use, held or reserved/)
    expect(bind(r, ann, 'shop').host).toBe('shop.example.com')
    expect(() => r.bindTcp({ port: 20022, range: { lo: 20000, hi: 20999 }, slot: 's', spec, owner: keyOwner, dial, hooks: {}, agent: { transport: 'ssh', sessionId: 's1' } })).toThrow(/port 20022/)
  })

  it('applies the owner ACL to named and random binds', () => {
    const r = registry()
    expect(bind(r, bob, 'bob-app').host).toBe('bob-app.example.com')
    expect(() => bind(r, bob, 'other')).toThrow(/PH_1025|not allowed to bind other\.example\.com: only bob\*/)
  })

  it('takes a name reserved later from whoever had it, and tells them', () => {
    const r = registry()
    let told: Error | undefined
    r.bind({ bindAddr: 'later', slot: 'later:80', spec, owner: keyOwner, dial, hooks: { onEvicted: (reason) => { told = reason } }, agent: { transport: 'ssh', sessionId: 's1' } })
    reserved.set('later.example.com', 'ann')
    expect(r.enforceReservations()).toHaveLength(1)
    expect(told?.message).toMatch(/later\.example\.com/)
    expect(r.lookup('later.example.com').state).toBe('offline') // ann's, not connected
    expect(bind(r, ann, 'later').owner).toBe(ann)
  })
})

describe('login throttle', () => {
  it('lets a few failures through, then doubles the wait up to a ceiling; success forgets', () => {
    const throttle = new LoginThrottle({ freeFailures: 2, baseDelayMs: 100, maxDelayMs: 350 })
    const delays: number[] = []
    for (let i = 0; i < 6; i++) delays.push(throttle.attempt('1.2.3.4'))
    expect(delays).toEqual([0, 0, 100, 200, 350, 350])
    expect(throttle.delayMs('5.6.7.8')).toBe(0)
    throttle.succeeded('1.2.3.4')
    expect(throttle.delayMs('1.2.3.4')).toBe(0)
  })

  it('by default (as the README says): three free failures, then 1 s, 2 s, 4 s... capped at 30 s', () => {
    const throttle = new LoginThrottle()
    const delays = Array.from({ length: 11 }, () => throttle.attempt('1.2.3.4'))
    expect(delays).toEqual([0, 0, 0, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000])
  })

  it('answers a correct credential at once while wrong ones from the same address wait (regression: the operator locked out)', async () => {
    const throttle = new LoginThrottle({ freeFailures: 0, baseDelayMs: 60_000, maxDelayMs: 600_000 })
    const answered: string[] = []
    const wrong = throttle.check('1.2.3.4', async () => undefined).then(() => answered.push('wrong'))
    const right = await throttle.check('1.2.3.4', async () => 'record')
    answered.push('right')
    expect(right).toBe('record')
    expect(answered).toEqual(['right'])
    // The success took back only its own attempt: the guesser's failure still counts.
    expect(throttle.delayMs('1.2.3.4')).toBe(60_000 * 2)
    void wrong
  })
})
