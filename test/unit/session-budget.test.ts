// The session budgets' counts kept at login and logout (SessionCounts, O(1) per login) decide exactly as a scan of
// every live session did: pinned by a property over random logins, logouts and probes.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import type { Owner } from '../../src/core/endpoint.js'
import { SessionCounts, scanRefusal, type LiveLogin, type SessionBudgets } from '../../src/agents/session-budget.js'

const IPS = ['127.0.0.1', '127.0.0.2', '::ffff:127.0.0.1', '2001:db8::1', '2001:db8::2', '2001:db8:0:1::1', '10.0.0.7']
const owner = fc.record({ id: fc.constantFrom('a', 'b', 'c', 'SHA256:x'), persistent: fc.boolean(), known: fc.boolean() }) as fc.Arbitrary<Owner>
const login = fc.record({ owner, remoteAddr: fc.constantFrom(...IPS) })
const step = fc.oneof(
  fc.record({ add: login }),
  fc.record({ remove: fc.nat() }),
  fc.record({ probe: fc.record({ owner, ip: fc.constantFrom(...IPS) }) }),
)
const budgets = fc.record({
  maxSessions: fc.integer({ min: 1, max: 6 }),
  maxAnonymousSessions: fc.integer({ min: 1, max: 6 }),
  maxAnonymousSessionsPerSource: fc.integer({ min: 1, max: 4 }),
  maxSessionsPerKey: fc.integer({ min: 1, max: 4 }),
}) as fc.Arbitrary<SessionBudgets>

describe('session budgets', () => {
  it('the counts kept at login and logout refuse exactly what a scan of the live sessions refuses', () => {
    fc.assert(fc.property(budgets, fc.array(step, { maxLength: 60 }), (limits, steps) => {
      const counts = new SessionCounts()
      const live: Array<{ login: LiveLogin, release: () => void }> = []
      for (const s of steps) {
        if ('add' in s) live.push({ login: s.add, release: counts.add(s.add) })
        else if ('remove' in s) {
          if (live.length === 0) continue
          const [gone] = live.splice(s.remove % live.length, 1)
          gone!.release()
          gone!.release() // a second release changes nothing
        } else {
          const kept = counts.refusal(s.probe.owner, s.probe.ip, limits)
          const scanned = scanRefusal(s.probe.owner, s.probe.ip, live.map((l) => l.login), limits)
          expect(kept?.toLine() ?? null).toBe(scanned?.toLine() ?? null)
        }
      }
    }), { numRuns: 500 })
  })

  it('names the cap and its setting when a key has its share', () => {
    const counts = new SessionCounts()
    const key: Owner = { id: 'SHA256:k', persistent: true, known: true }
    counts.add({ owner: key, remoteAddr: '127.0.0.1' })
    const release = counts.add({ owner: key, remoteAddr: '127.0.0.1' })
    const limits = { maxSessions: 10, maxAnonymousSessions: 10, maxAnonymousSessionsPerSource: 10, maxSessionsPerKey: 2 }
    expect(counts.refusal(key, '127.0.0.1', limits)?.toLine()).toMatch(/^PH_1056: this key already has 2 sessions, its share \(max-sessions-per-key\)/)
    release()
    expect(counts.refusal(key, '127.0.0.1', limits)).toBeNull()
  })
})
