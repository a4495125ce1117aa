// The SSH session-options lifecycle alone, on fake timers: which event lets forwards bind, when defaults
// apply, and when the command deadline refuses them (the end-to-end cases are test/hostile/late-options).
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { PortholeError } from '../../src/core/errors.js'
import { DEFAULT_OPTIONS, parseCommand } from '../../src/agents/ssh/exec-grammar.js'
import { SessionOptionsLifecycle } from '../../src/agents/ssh/session-options.js'

function lifecycle (noMoreSessions = false): { options: SessionOptionsLifecycle, calls: string[] } {
  const calls: string[] = []
  const options = new SessionOptionsLifecycle({
    settleMs: 500,
    commandWaitMs: 10_000,
    noMoreSessions: () => noMoreSessions,
    socket: undefined,
    bind: () => calls.push('bind'),
    refuseWaiting: () => calls.push('refuse'),
    timedOut: () => new PortholeError('PH_1022', 'localhost:80'),
  })
  return { options, calls }
}

describe('session options lifecycle', () => {
  beforeEach(() => { vi.useFakeTimers() })
  afterEach(() => { vi.useRealTimers() })

  it('no session within the settle: binds with defaults', () => {
    const { options, calls } = lifecycle()
    options.forwardWaiting()
    vi.advanceTimersByTime(499)
    expect(calls).toEqual([])
    vi.advanceTimersByTime(1)
    vi.runOnlyPendingTimers() // the decision waits for one more turn of input (setImmediate)
    expect(calls).toEqual(['bind'])
    expect(options.state).toEqual({ state: 'known', options: DEFAULT_OPTIONS })
  })

  it('no-more-sessions already received: binds at once', () => {
    const { options, calls } = lifecycle(true)
    options.forwardWaiting()
    expect(calls).toEqual(['bind'])
  })

  it('a session opened within the settle is waited for past it, and its command decides', () => {
    const { options, calls } = lifecycle()
    options.forwardWaiting()
    options.sessionOpened(true)
    vi.advanceTimersByTime(9_000)
    expect(calls).toEqual([])
    expect(options.commandArrived()).toBe(true)
    const parsed = parseCommand('http --basic-auth u:p')
    if (parsed.kind !== 'options') throw new Error('parsed as help')
    options.known(parsed.options)
    options.forwardWaiting()
    expect(calls).toEqual(['bind'])
    vi.advanceTimersByTime(60_000)
    expect(calls).toEqual(['bind'])
  })

  it('a session that sends no command: its waiting forwards are refused at the deadline, and a late command is late', () => {
    const { options, calls } = lifecycle()
    options.sessionOpened(false)
    vi.advanceTimersByTime(60_000)
    expect(calls).toEqual([]) // no forward waits: no deadline runs
    options.forwardWaiting()
    vi.advanceTimersByTime(10_000)
    vi.runOnlyPendingTimers()
    expect(calls).toEqual(['refuse'])
    expect(options.state).toMatchObject({ state: 'refused', error: { code: 'PH_1022' } })
    expect(options.commandArrived()).toBe(false)
    options.forwardWaiting()
    expect(calls).toEqual(['refuse', 'refuse'])
  })

  it('a session opened after the forwards bound with defaults does not reopen the wait', () => {
    const { options, calls } = lifecycle()
    options.forwardWaiting()
    vi.advanceTimersByTime(500)
    vi.runOnlyPendingTimers()
    options.sessionOpened(true)
    expect(options.commandArrived()).toBe(false)
    expect(options.state).toEqual({ state: 'known', options: DEFAULT_OPTIONS })
    expect(calls).toEqual(['bind'])
  })
})
