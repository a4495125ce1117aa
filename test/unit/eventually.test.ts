// The e2e harness's wait: nothing (undefined, null, false) means "not yet", so a find() that found nothing
// never ends a wait early (issue 14: it used to take undefined for success and return at once).
import { describe, expect, it } from 'vitest'
import { eventually } from '../e2e/harness.js'

describe('eventually', () => {
  it('keeps waiting while the check gives undefined, null or false, and then gives up', async () => {
    for (const nothing of [undefined, null, false]) {
      await expect(eventually(() => nothing, 150)).rejects.toThrow('eventually: condition never held')
    }
  })

  it('resolves with the first value found, once the state settles', async () => {
    const lines: string[] = []
    setTimeout(() => lines.push('ready'), 100)
    expect(await eventually(() => lines.find((l) => l === 'ready'), 5000)).toBe('ready')
  })

  it('keeps waiting while the check throws, and rethrows its last error at the deadline', async () => {
    await expect(eventually(() => { throw new Error('still not') }, 150)).rejects.toThrow('still not')
  })
})
