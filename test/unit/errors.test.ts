// The catalogue and docs/errors.md list the same codes with the same statuses, both ways.
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { describe, expect, it } from 'vitest'
import { catalogue, formatMessage, PortholeError, type ErrorCode } from '../../src/core/errors.js'

const doc = readFileSync(resolve(import.meta.dirname, '../../docs/errors.md'), 'utf8')
const documented = new Map([...doc.matchAll(/^\| (PH_\d{4}) \| (\d{3}) \|/gm)].map((m) => [m[1]!, Number(m[2])]))

describe('error catalogue', () => {
  it('documents every code with its status', () => {
    for (const [code, entry] of Object.entries(catalogue)) expect(documented.get(code), code).toBe(entry.status)
  })

  it('documents no code that does not exist', () => {
    for (const code of documented.keys()) expect(Object.keys(catalogue)).toContain(code)
  })

  it('codes are unique PH_NNNN and messages fill their detail', () => {
    for (const code of Object.keys(catalogue)) expect(code).toMatch(/^PH_\d{4}$/)
    expect(formatMessage('PH_1001', '--foo')).toBe('unknown option --foo')
    expect(formatMessage('PH_3002')).toBe('the agent could not reach its upstream service')
    const error = new PortholeError('PH_1011' as ErrorCode, 'a.example.com')
    expect(error.toLine()).toBe('PH_1011: name a.example.com is in use, held or reserved by someone else')
    expect(error.status).toBe(409)
  })
})
