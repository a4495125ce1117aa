// The ACME rate guard with a fake clock: the hourly cap over a sliding hour, and the per-name backoff that
// doubles with each failure in a row, stops at its maximum and is cleared by a success.
import { describe, expect, it } from 'vitest'
import { OrderGuard } from '../../src/certs/acme-guard.js'

const MINUTE = 60_000
const HOUR = 60 * MINUTE

describe('ACME order guard', () => {
  it('admits at most maxPerHour orders in any sliding hour', () => {
    let now = 1_000_000
    const guard = new OrderGuard({ maxPerHour: 3, now: () => now })
    expect(guard.admit('a.example.com')).toEqual({ ok: true })
    now += 10 * MINUTE
    expect(guard.admit('b.example.com').ok).toBe(true)
    expect(guard.admit('c.example.com').ok).toBe(true)
    // The fourth within the hour is held back until the first leaves the window.
    expect(guard.admit('d.example.com')).toEqual({ ok: false, reason: 'hourly-cap', retryAt: 1_000_000 + HOUR })
    now = 1_000_000 + HOUR - 1
    expect(guard.admit('d.example.com').ok).toBe(false)
    now = 1_000_000 + HOUR
    expect(guard.admit('d.example.com').ok).toBe(true)
    // b and c (placed 10 minutes after a) still fill the window with d.
    expect(guard.admit('e.example.com')).toEqual({ ok: false, reason: 'hourly-cap', retryAt: 1_000_000 + 10 * MINUTE + HOUR })
  })

  it('backs a name off after a failed order, doubling up to the maximum, until one succeeds', () => {
    let now = 0
    const guard = new OrderGuard({ backoffMs: 15 * MINUTE, maxBackoffMs: HOUR, maxPerHour: 1000, now: () => now })
    expect(guard.admit('flaky.example.com').ok).toBe(true)
    expect(guard.failed('flaky.example.com')).toBe(15 * MINUTE)
    expect(guard.admit('flaky.example.com')).toEqual({ ok: false, reason: 'backoff', retryAt: 15 * MINUTE })
    // Other names are not affected.
    expect(guard.admit('other.example.com').ok).toBe(true)

    now = 15 * MINUTE
    expect(guard.admit('flaky.example.com').ok).toBe(true)
    expect(guard.failed('flaky.example.com')).toBe(now + 30 * MINUTE)
    now += 30 * MINUTE
    expect(guard.admit('flaky.example.com').ok).toBe(true)
    expect(guard.failed('flaky.example.com')).toBe(now + HOUR) // 60 min
    now += HOUR
    expect(guard.admit('flaky.example.com').ok).toBe(true)
    expect(guard.failed('flaky.example.com')).toBe(now + HOUR) // capped, not 120 min

    now += HOUR
    expect(guard.admit('flaky.example.com').ok).toBe(true)
    guard.succeeded('flaky.example.com')
    // Cleared: the next failure starts again at the first backoff.
    expect(guard.admit('flaky.example.com').ok).toBe(true)
    expect(guard.failed('flaky.example.com')).toBe(now + 15 * MINUTE)
  })

  it('has the documented defaults: 50 orders an hour, 15 minutes first backoff, 24 hours at most', () => {
    let now = 0
    const guard = new OrderGuard({ now: () => now })
    expect(guard.maxPerHour).toBe(50)
    for (let i = 0; i < 50; i++) expect(guard.admit(`n${i}.example.com`).ok).toBe(true)
    expect(guard.admit('n50.example.com').ok).toBe(false)
    expect(guard.failed('n0.example.com')).toBe(15 * MINUTE)
    for (let i = 0; i < 20; i++) guard.failed('n0.example.com')
    expect(guard.failed('n0.example.com')).toBe(24 * HOUR)
    now = 24 * HOUR
    expect(guard.admit('n0.example.com').ok).toBe(true)
  })
})
