// The registry's hold indexes (core/hold-index.ts) against the scans they replaced: for any sequence of holds
// added, replaced, taken offline, deleted and pruned, the indexed answers equal a scan of all holds with the
// name rules (covers, nested), the owner and class filters, and the oldest offline hold by expiry.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { HoldIndex } from '../../src/core/hold-index.js'
import { covers, nested } from '../../src/core/names.js'
import type { Hold } from '../../src/core/registry.js'

const DOMAIN = 'example.com'
const LABELS = ['a', 'b', 'c', 'app']
const label = fc.constantFrom(...LABELS)
/** Names under the domain, one to three labels deep, exact or wildcard; and tcp ports. */
const name = fc.oneof(
  fc.tuple(fc.boolean(), fc.array(label, { minLength: 1, maxLength: 3 })).map(([wild, labels]) => `${wild ? '*.' : ''}${labels.join('.')}.${DOMAIN}`),
  fc.integer({ min: 1, max: 3 }).map((port) => `tcp:${port}`),
)
const op = fc.oneof(
  fc.record({ kind: fc.constant('set' as const), host: name, owner: fc.constantFrom('ann', 'bob', 'cy'), anonymous: fc.boolean(), offline: fc.option(fc.integer({ min: 0, max: 50 })) }),
  fc.record({ kind: fc.constant('offline' as const), host: name, at: fc.integer({ min: 0, max: 50 }) }),
  fc.record({ kind: fc.constant('delete' as const), host: name }),
  fc.record({ kind: fc.constant('prune' as const), now: fc.integer({ min: 0, max: 50 }) }),
)

const hosts = (holds: Iterable<Hold>): string[] => [...new Set([...holds].map((hold) => hold.host))].sort()

describe('hold index', () => {
  it('answers as a scan of every hold would, whatever the order of changes (clock steps back included)', () => {
    fc.assert(fc.property(fc.array(op, { maxLength: 40 }), name, (ops, probe) => {
      const index = new HoldIndex(DOMAIN)
      const all = new Map<string, Hold>() // the reference: what the registry's Map held before
      for (const o of ops) {
        if (o.kind === 'set') {
          const hold: Hold = { host: o.host, ownerId: o.owner, random: false, slot: null, expiresAt: o.offline, ...(o.anonymous ? { anonymous: true as const } : {}) }
          index.set(hold)
          all.set(o.host, hold)
        } else if (o.kind === 'offline') {
          const hold = all.get(o.host)
          if (hold) index.setOffline(hold, o.at)
        } else if (o.kind === 'delete') {
          index.delete(o.host)
          all.delete(o.host)
        } else {
          index.prune(o.now)
          for (const [host, hold] of all) if (hold.expiresAt !== null && hold.expiresAt <= o.now) all.delete(host)
        }
      }
      expect(hosts(index.values())).toEqual(hosts(all.values()))
      const names = [...all.values()].filter((hold) => !hold.host.startsWith('tcp:'))
      if (!probe.startsWith('tcp:')) {
        expect(hosts(index.coveringOrEqual(probe))).toEqual(hosts(names.filter((hold) => hold.host === probe || covers(hold.host, probe))))
        expect(hosts(index.nestedWith(probe))).toEqual(hosts(names.filter((hold) => nested(hold.host, probe))))
      }
      for (const owner of ['ann', 'bob', 'cy']) {
        expect(hosts(index.ownedBy(owner))).toEqual(hosts([...all.values()].filter((hold) => hold.ownerId === owner)))
      }
      for (const anonymous of [false, true]) {
        const sameClass = [...all.values()].filter((hold) => (hold.anonymous === true) === anonymous)
        expect(index.countOf(anonymous)).toBe(sameClass.length)
        const offline = sameClass.filter((hold) => hold.expiresAt !== null)
        const oldest = index.oldestOffline(anonymous)
        if (offline.length === 0) expect(oldest).toBeUndefined()
        else expect(oldest?.expiresAt).toBe(Math.min(...offline.map((hold) => hold.expiresAt!)))
      }
    }), { numRuns: 500 })
  })
})
