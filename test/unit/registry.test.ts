// Registry: routing (exact over wildcard), ownership, holds and their grace period, takeover by the owner.
import { describe, expect, it } from 'vitest'
import { Registry, type Hold } from '../../src/core/registry.js'
import type { Owner } from '../../src/core/endpoint.js'
import { PortholeError } from '../../src/core/errors.js'
import { aclGrants } from '../../src/identity/acl.js'
import { bareName, isUnder } from '../../src/core/names.js'

const ann: Owner = { id: 'SHA256:ann', persistent: true, known: true }
const bob: Owner = { id: 'SHA256:bob', persistent: true, known: true }
const anon: Owner = { id: 'anon:1', persistent: false }

function setup (reservedFor?: (key: string, account: string) => boolean) {
  let now = 1_000_000
  const saved: Hold[][] = []
  const registry = new Registry({ domain: 'example.com', graceMs: 60_000, now: () => now, onHoldsChanged: (holds) => saved.push(holds), ...(reservedFor ? { reservedFor } : {}) })
  const bind = (owner: Owner, bindAddr: string, slot = `${bindAddr}:80`, onEvicted?: () => void) => registry.bind({
    bindAddr, slot, owner, spec: { proto: 'http', schemes: { http: true, https: true }, upstream: { tls: false, verify: false, cas: null, protocol: 'http1' }, inspect: true }, dial: async () => { throw new Error('no') }, hooks: { onEvicted }, agent: { transport: 'ssh', sessionId: 's1' },
  })
  return { registry, bind, saved, tick: (ms: number) => { now += ms } }
}

const codeOf = (fn: () => unknown): string => {
  try { fn() } catch (error) { return (error as PortholeError).code }
  return 'none'
}

describe('registry', () => {
  it('routes exact names before the most specific wildcard', () => {
    const { registry, bind } = setup()
    const wide = bind(ann, '*.team')
    const narrow = bind(ann, '*.a.team')
    const exact = bind(ann, 'x.a.team')
    expect(registry.lookup('x.a.team.example.com')).toEqual({ state: 'bound', endpoint: exact })
    expect(registry.lookup('y.a.team.example.com')).toEqual({ state: 'bound', endpoint: narrow })
    expect(registry.lookup('b.team.example.com')).toEqual({ state: 'bound', endpoint: wide })
    expect(registry.lookup('team.example.com').state).toBe('unknown')
  })

  it('keeps a name for its owner during the grace period, then frees it', () => {
    const { registry, bind, tick } = setup()
    const endpoint = bind(ann, 'shop')
    registry.unbind(endpoint)
    expect(registry.lookup('shop.example.com')).toEqual({ state: 'offline', host: 'shop.example.com' })
    expect(codeOf(() => bind(bob, 'shop'))).toBe('PH_1011')
    expect(bind(ann, 'shop').host).toBe('shop.example.com')
    registry.unbind(registry.endpoints()[0]!)
    tick(60_001)
    expect(registry.lookup('shop.example.com').state).toBe('unknown')
    expect(bind(bob, 'shop').owner).toBe(bob)
  })

  it('gives the same random name back per owner and slot, a new one when it is still online', () => {
    const { registry, bind } = setup()
    const first = bind(ann, 'localhost', 'localhost:80')
    const other = bind(ann, 'localhost', 'localhost:443')
    expect(other.host).not.toBe(first.host)
    const concurrent = bind(ann, 'localhost', 'localhost:80')
    expect(concurrent.host).not.toBe(first.host)
    registry.unbind(first)
    registry.unbind(concurrent)
    expect([first.host, concurrent.host]).toContain(bind(ann, 'localhost', 'localhost:80').host)
    expect(bind(bob, 'localhost', 'localhost:80').host).not.toBe(first.host)
  })

  it('does not hold names of anonymous owners', () => {
    const { registry, bind } = setup()
    const endpoint = bind(anon, 'temp')
    registry.unbind(endpoint)
    expect(registry.lookup('temp.example.com').state).toBe('unknown')
  })

  it('refuses names under another owner\'s wildcard and wildcards over another owner\'s names', () => {
    const { bind } = setup()
    bind(ann, '*.ann')
    expect(codeOf(() => bind(bob, 'x.ann'))).toBe('PH_1011')
    bind(bob, 'y.bobs')
    expect(codeOf(() => bind(ann, '*.bobs'))).toBe('PH_1060') // above bob's name (was PH_1011)
  })

  it('lets the owner take over its own exact name from an older session', () => {
    const { registry, bind } = setup()
    let evicted = false
    const old = bind(ann, 'api', 'api:80', () => { evicted = true })
    const fresh = bind(ann, 'api')
    expect(evicted).toBe(true)
    expect(registry.lookup('api.example.com')).toEqual({ state: 'bound', endpoint: fresh })
    registry.unbind(old) // the old session ending later must not remove the new endpoint
    expect(registry.lookup('api.example.com')).toEqual({ state: 'bound', endpoint: fresh })
  })

  it('cannot be flooded into dropping another owner\'s hold (regression: name hijack by 10 000 junk binds)', () => {
    let now = 0
    const registry = new Registry({ domain: 'example.com', graceMs: 60_000, maxHolds: 50, maxHoldsPerOwner: 10, now: () => now })
    const bindAs = (owner: Owner, name: string) => registry.bind({
      bindAddr: name, slot: `${name}:80`, owner, spec: { proto: 'http', schemes: { http: true, https: true }, upstream: { tls: false, verify: false, cas: null, protocol: 'http1' }, inspect: true }, dial: async () => { throw new Error('no') }, hooks: {}, agent: { transport: 'ssh', sessionId: 's1' },
    })
    registry.unbind(bindAs(ann, 'myapp'))
    for (let i = 0; i < 200; i++) registry.unbind(bindAs(bob, `junk${i}`))
    expect(registry.holds().filter((h) => h.ownerId === bob.id)).toHaveLength(10) // bob only ever evicts his own
    expect(codeOf(() => bindAs(bob, 'myapp'))).toBe('PH_1011')
    for (let i = 0; i < 60; i++) {
      const owner: Owner = { id: `k${i}`, persistent: true, known: true }
      try { registry.unbind(bindAs(owner, `n${i}`)) } catch (error) { expect((error as PortholeError).code).toBe('PH_1036') }
    }
    expect(registry.lookup('myapp.example.com').state).toBe('offline')
    now += 60_001
    expect(bindAs(bob, 'myapp').owner).toBe(bob) // lapsed holds free up room and names
  })

  it('reports holds for persistence and restores them with a fresh grace period', () => {
    const { registry, bind, saved } = setup()
    bind(ann, 'kept')
    const holds = saved.at(-1)!
    expect(holds).toEqual([{ host: 'kept.example.com', ownerId: 'SHA256:ann', random: false, slot: null, expiresAt: null }])
    const restored = new Registry({ domain: 'example.com', graceMs: 60_000 })
    restored.restore(holds)
    expect(restored.lookup('kept.example.com').state).toBe('offline')
    void registry
  })
})

// Issue 9 item 10: a name under or above another owner's name could set cookies that reach their hosts
// (cookie tossing), so it is refused (PH_1060) unless a reservation or the credential's ACL grants it.
describe('names next to another owner\'s', () => {
  it('refuses a child under another owner\'s exact name, at any depth', () => {
    const { bind } = setup()
    bind(ann, 'myapp')
    expect(codeOf(() => bind(bob, 'x.myapp'))).toBe('PH_1060')
    expect(codeOf(() => bind(bob, 'a.b.myapp'))).toBe('PH_1060')
  })

  it('refuses a wildcard under another owner\'s exact name', () => {
    const { bind } = setup()
    bind(ann, 'myapp')
    expect(codeOf(() => bind(bob, '*.myapp'))).toBe('PH_1060')
    expect(codeOf(() => bind(bob, '*.x.myapp'))).toBe('PH_1060')
  })

  it('refuses the exact name above another owner\'s wildcard', () => {
    const { bind } = setup()
    bind(ann, '*.team')
    expect(codeOf(() => bind(bob, 'team'))).toBe('PH_1060')
    expect(codeOf(() => bind(bob, 'x.team'))).toBe('PH_1011') // served by ann's wildcard: in use, as before
  })

  it('refuses the parent (and any ancestor) of another owner\'s exact name', () => {
    const { bind } = setup()
    bind(ann, 'api.shop')
    bind(ann, 'a.b.deep')
    expect(codeOf(() => bind(bob, 'shop'))).toBe('PH_1060')
    expect(codeOf(() => bind(bob, 'deep'))).toBe('PH_1060')
    expect(codeOf(() => bind(bob, '*.deep'))).toBe('PH_1060')
  })

  it('lets siblings and look-alikes be: only ancestors and descendants count, never the base domain', () => {
    const { bind } = setup()
    bind(ann, 'a')
    bind(ann, 'x.team2')
    bind(ann, 'shop')
    expect(bind(bob, 'b').host).toBe('b.example.com')
    expect(bind(bob, 'y.team2').host).toBe('y.team2.example.com')
    expect(bind(bob, 'shopping').host).toBe('shopping.example.com')
    expect(bind(bob, '*.shopping').host).toBe('*.shopping.example.com')
  })

  it('counts names in their grace period, and frees their neighbours when it lapses', () => {
    const { registry, bind, tick } = setup()
    registry.unbind(bind(ann, 'myapp'))
    expect(codeOf(() => bind(bob, 'x.myapp'))).toBe('PH_1060')
    tick(60_001)
    expect(bind(bob, 'x.myapp').owner).toBe(bob)
  })

  it('lets one owner nest its own names', () => {
    const { bind } = setup()
    bind(ann, 'mine')
    expect(bind(ann, 'x.mine').host).toBe('x.mine.example.com')
    expect(bind(ann, '*.mine').host).toBe('*.mine.example.com')
  })

  it('grants a name next to another owner\'s through the account\'s reservation of it or a domain above it', () => {
    const annAccount: Owner = { id: 'account:ann', persistent: true, account: 'ann' }
    const reservations = new Map([['ann', 'x.app.example.com']])
    const { bind } = setup((key, account) => {
      const reserved = reservations.get(account)
      return reserved !== undefined && isUnder(bareName(key), reserved) // as Identity.reservedFor
    })
    bind(bob, 'app')
    expect(bind(annAccount, 'x.app').host).toBe('x.app.example.com')
    expect(bind(annAccount, '*.x.app').host).toBe('*.x.app.example.com')
    expect(codeOf(() => bind(annAccount, 'y.app'))).toBe('PH_1060') // not what was reserved
    expect(codeOf(() => bind(annAccount, 'app'))).toBe('PH_1011') // bob's own name is never granted
  })

  it('grants a name next to another owner\'s through an ACL that names it, not through bind:*', () => {
    const { bind } = setup()
    const scoped: Owner = { id: 'account:ci', persistent: true, account: 'ci', grants: (key) => aclGrants(['bind:*.app.example.com'], key) }
    const anything: Owner = { id: 'account:ops', persistent: true, account: 'ops', grants: (key) => aclGrants(['bind:*'], key) }
    bind(bob, 'app')
    expect(codeOf(() => bind(anything, 'z.app'))).toBe('PH_1060')
    expect(bind(scoped, 'x.app').host).toBe('x.app.example.com')
    expect(bind(scoped, '*.w.app').host).toBe('*.w.app.example.com')
    // Granted above another's name: the wildcard binds and their exact name still wins its host.
    const { registry, bind: bind2 } = setup()
    const theirs = bind2(bob, 'y.team')
    const wide: Owner = { id: 'account:ci', persistent: true, account: 'ci', grants: (key) => aclGrants(['bind:*.team.example.com'], key) }
    const wildcard = bind2(wide, '*.team')
    expect(registry.lookup('y.team.example.com')).toEqual({ state: 'bound', endpoint: theirs })
    expect(registry.lookup('z.team.example.com')).toEqual({ state: 'bound', endpoint: wildcard })
  })
})

describe('registry: anonymous holds (regression: 105 fresh keys filled all 10,000 holds for 24 h)', () => {
  const spec = { proto: 'http' as const, policy: {}, schemes: { http: true, https: true }, upstream: { tls: false, verify: false, cas: null, protocol: 'http1' as const }, inspect: true }
  function setupBudgets (options: { maxHolds?: number, maxAnonymousHolds?: number } = {}) {
    let now = 0
    const registry = new Registry({ domain: 'example.com', graceMs: 24 * 3600_000, anonymousGraceMs: 3600_000, maxHolds: options.maxHolds ?? 5, maxAnonymousHolds: options.maxAnonymousHolds ?? 4, now: () => now })
    const bindAs = (owner: Owner, name: string) => registry.bind({ bindAddr: name, slot: `${name}:80`, owner, spec, dial: async () => { throw new Error('no') }, hooks: {}, agent: { transport: 'ssh', sessionId: 's1' } })
    const stranger = (i: number): Owner => ({ id: `SHA256:stranger${i}`, persistent: true, known: false })
    const held = (): string[] => registry.holds().map((h) => h.host.replace('.example.com', '')).sort()
    return { registry, bindAs, stranger, held, tick: (ms: number) => { now += ms } }
  }

  it('evicts the oldest offline anonymous hold for a new anonymous name, never a known owner\'s', () => {
    const { registry, bindAs, stranger, held, tick } = setupBudgets()
    registry.unbind(bindAs(ann, 'mine'))
    for (let i = 0; i < 10; i++) {
      registry.unbind(bindAs(stranger(i), `junk${i}`))
      tick(1000)
    }
    expect(held()).toEqual(['junk6', 'junk7', 'junk8', 'junk9', 'mine'])
    expect(registry.holds().filter((h) => h.anonymous)).toHaveLength(4)
    // A new stranger gets a name; the freed names are free; the known owner's name stays hers.
    expect(bindAs(stranger(99), 'newcomer').host).toBe('newcomer.example.com')
    expect(registry.lookup('junk0.example.com').state).toBe('unknown')
    expect(codeOf(() => bindAs(stranger(1), 'mine'))).toBe('PH_1011')
    expect(registry.lookup('mine.example.com').state).toBe('offline')
  })

  it('refuses a new anonymous name (PH_1036) only while every anonymous hold is online; known owners still bind', () => {
    const { bindAs, stranger } = setupBudgets()
    for (let i = 0; i < 4; i++) bindAs(stranger(i), `live${i}`)
    expect(codeOf(() => bindAs(stranger(9), 'more'))).toBe('PH_1036')
    expect(bindAs(ann, 'mine').host).toBe('mine.example.com')
  })

  it('keeps the known budget for known owners: full, it refuses rather than evicting anyone', () => {
    const { registry, bindAs, stranger } = setupBudgets({ maxHolds: 2 })
    registry.unbind(bindAs(ann, 'a1'))
    registry.unbind(bindAs(bob, 'b1'))
    expect(codeOf(() => bindAs(ann, 'a2'))).toBe('PH_1036')
    expect(bindAs(stranger(1), 's1').host).toBe('s1.example.com') // anonymous pressure is apart, both ways
    expect(registry.lookup('b1.example.com').state).toBe('offline')
  })

  it('gives anonymous names the shorter grace period', () => {
    const { registry, bindAs, stranger, tick } = setupBudgets()
    registry.unbind(bindAs(stranger(1), 'brief'))
    registry.unbind(bindAs(ann, 'long'))
    tick(3600_001)
    expect(registry.lookup('brief.example.com').state).toBe('unknown')
    expect(registry.lookup('long.example.com').state).toBe('offline')
  })

  it('restores at most the anonymous budget, newest first, and no hold longer than its grace from now', () => {
    const { registry, held } = setupBudgets()
    const flood: Hold[] = Array.from({ length: 100 }, (_, i) => ({ host: `f${i}.example.com`, ownerId: `SHA256:s${i}`, random: false, slot: null, expiresAt: 10 * 3600_000 + i, anonymous: true }))
    const known: Hold = { host: 'mine.example.com', ownerId: ann.id, random: false, slot: null, expiresAt: 48 * 3600_000 }
    registry.restore([...flood, known])
    expect(held()).toEqual(['f96', 'f97', 'f98', 'f99', 'mine'])
    expect(registry.holds().filter((h) => h.anonymous).every((h) => h.expiresAt === 3600_000)).toBe(true)
    expect(registry.holds().find((h) => h.host === 'mine.example.com')!.expiresAt).toBe(24 * 3600_000)
  })
})
