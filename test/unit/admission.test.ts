// SSH admission of connections not yet logged in: OpenSSH's MaxStartups (random early drop) with per-source
// fairness (the regression: 20 silent sockets locked their address out, 500 from 25 addresses everyone).
import { describe, expect, it } from 'vitest'
import { StartupAdmission, sourceOf, type Admission } from '../../src/agents/admission.js'

const admitted = (result: Admission): boolean => result.ok
const codeOf = (result: Admission): string => (result.ok ? 'admitted' : result.error.code)

describe('startup admission', () => {
  it('refuses the new connection past the per-source cap and keeps the open ones', () => {
    const evicted: string[] = []
    const admission = new StartupAdmission({ start: 100, rate: 30, full: 100, perSource: 2 })
    expect(admitted(admission.admit('10.0.0.1', () => evicted.push('a')))).toBe(true)
    expect(admitted(admission.admit('10.0.0.1', () => evicted.push('b')))).toBe(true)
    const third = admission.admit('10.0.0.1', () => evicted.push('c'))
    expect(codeOf(third)).toBe('PH_1050')
    expect(!third.ok && third.error.message).toMatch(/10\.0\.0\.1 \(2, the limit per source\)/)
    expect(evicted).toEqual([])
    expect(admitted(admission.admit('10.0.0.2', () => {}))).toBe(true)
  })

  it('frees a place when a connection logs in or closes (release is idempotent)', () => {
    const admission = new StartupAdmission({ start: 10, rate: 30, full: 10, perSource: 1 })
    const first = admission.admit('10.0.0.1', () => {})
    expect(codeOf(admission.admit('10.0.0.1', () => {}))).toBe('PH_1050')
    if (first.ok) { first.ticket.release(); first.ticket.release() }
    expect(admission.pending).toBe(0)
    expect(admitted(admission.admit('10.0.0.1', () => {}))).toBe(true)
  })

  it('drops at random from start with rate% rising to all at full', () => {
    const decide = (random: number, pending: number): string => {
      const admission = new StartupAdmission({ start: 10, rate: 30, full: 20, perSource: 100 }, () => random)
      for (let i = 0; i < pending; i++) admission.admit(`10.0.${i}.1`, () => {})
      return codeOf(admission.admit('10.9.9.9', () => {}))
    }
    expect(decide(0, 9)).toBe('admitted') // below start: never dropped
    expect(decide(0.29, 10)).toBe('PH_1051') // at start: rate% (30) are dropped
    expect(decide(0.31, 10)).toBe('admitted')
    expect(decide(0.64, 15)).toBe('PH_1051') // half way: 65%
    expect(decide(0.66, 15)).toBe('admitted')
    expect(decide(0.999, 20)).toBe('PH_1051') // full: all
  })

  it('when full, a newcomer takes the place of the oldest connection of the source holding the most', () => {
    const evicted: string[] = []
    const admission = new StartupAdmission({ start: 6, rate: 100, full: 6, perSource: 10 })
    for (let i = 0; i < 4; i++) admission.admit('10.0.0.1', () => evicted.push(`flood${i}`))
    admission.admit('10.0.0.2', () => evicted.push('other0'))
    admission.admit('10.0.0.2', () => evicted.push('other1'))
    const newcomer = admission.admit('192.0.2.7', () => {})
    expect(newcomer.ok && newcomer.evicted).toBe('10.0.0.1')
    expect(evicted).toEqual(['flood0'])
    expect(admission.pending).toBe(6)
    // Nobody holds two more than the newcomer's source: refused instead.
    const spread = new StartupAdmission({ start: 2, rate: 100, full: 2, perSource: 10 })
    spread.admit('10.0.0.1', () => {})
    spread.admit('10.0.0.2', () => {})
    expect(codeOf(spread.admit('10.0.0.3', () => {}))).toBe('PH_1051')
  })

  it('counts IPv4-mapped addresses as IPv4 and IPv6 per /64', () => {
    expect(sourceOf('::ffff:127.0.0.1')).toBe('127.0.0.1')
    expect(sourceOf('2001:db8:1:2:aaaa::1')).toBe(sourceOf('2001:db8:1:2:bbbb::2'))
    expect(sourceOf('2001:db8:1:2::1')).not.toBe(sourceOf('2001:db8:1:3::1'))
  })
})
