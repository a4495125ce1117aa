// Name rules: what a bind address asks for, which names may exist, and random names.
import { describe, expect, it } from 'vitest'
import { covers, nested, parseBindAddress, randomLabel, wildcardsFor } from '../../src/core/names.js'
import { PortholeError } from '../../src/core/errors.js'

const code = (fn: () => unknown): string => {
  try { fn() } catch (error) { return (error as PortholeError).code }
  return 'none'
}

describe('names', () => {
  it('maps bind addresses per the grammar', () => {
    for (const addr of ['', 'localhost', '*', '0.0.0.0', '127.0.0.1', '::1']) expect(parseBindAddress(addr, 'example.com')).toEqual({ kind: 'random' })
    expect(parseBindAddress('myapp', 'example.com')).toEqual({ kind: 'exact', host: 'myapp.example.com' })
    expect(parseBindAddress('MyApp.Example.com.', 'example.com')).toEqual({ kind: 'exact', host: 'myapp.example.com' })
    expect(parseBindAddress('a.team', 'example.com')).toEqual({ kind: 'exact', host: 'a.team.example.com' })
    expect(parseBindAddress('*.team', 'example.com')).toEqual({ kind: 'wildcard', host: '*.team.example.com' })
    expect(parseBindAddress('*.team.example.com', 'example.com')).toEqual({ kind: 'wildcard', host: '*.team.example.com' })
  })

  it('refuses names that may never be bound', () => {
    expect(code(() => parseBindAddress('*.example.com', 'example.com'))).toBe('PH_1012')
    expect(code(() => parseBindAddress('example.com', 'example.com'))).toBe('PH_1010')
    expect(code(() => parseBindAddress('-bad', 'example.com'))).toBe('PH_1010')
    expect(code(() => parseBindAddress('under_score', 'example.com'))).toBe('PH_1010')
    expect(code(() => parseBindAddress('a..b', 'example.com'))).toBe('PH_1010')
    expect(code(() => parseBindAddress('x'.repeat(64), 'example.com'))).toBe('PH_1010')
    expect(code(() => parseBindAddress('a.*.b', 'example.com'))).toBe('PH_1010')
    expect(code(() => parseBindAddress('**.b', 'example.com'))).toBe('PH_1010')
  })

  it('makes short, lower-case, unambiguous random labels', () => {
    const seen = new Set<string>()
    for (let i = 0; i < 2000; i++) {
      const label = randomLabel()
      expect(label).toMatch(/^[a-hjkmnp-z][a-hjkmnp-z2-9]{5}$/)
      seen.add(label)
    }
    expect(seen.size).toBeGreaterThan(1990)
  })

  it('knows which wildcards cover which names', () => {
    expect(wildcardsFor('a.b.example.com')).toEqual(['*.b.example.com', '*.example.com', '*.com'])
    expect(covers('*.team.example.com', 'a.team.example.com')).toBe(true)
    expect(covers('*.team.example.com', 'x.a.team.example.com')).toBe(true)
    expect(covers('*.team.example.com', 'team.example.com')).toBe(false)
    expect(covers('*.team.example.com', '*.sub.team.example.com')).toBe(true)
    expect(covers('a.example.com', 'a.example.com')).toBe(true)
  })

  it('knows which names lie on one line of descent (cookie reach), and that siblings do not', () => {
    expect(nested('myapp.example.com', 'x.myapp.example.com')).toBe(true)
    expect(nested('myapp.example.com', '*.myapp.example.com')).toBe(true)
    expect(nested('*.team.example.com', 'team.example.com')).toBe(true)
    expect(nested('a.b.c.example.com', 'c.example.com')).toBe(true)
    expect(nested('*.a.team.example.com', '*.team.example.com')).toBe(true)
    expect(nested('a.example.com', 'b.example.com')).toBe(false)
    expect(nested('shop.example.com', 'shopping.example.com')).toBe(false)
    expect(nested('*.a.example.com', '*.b.example.com')).toBe(false)
  })
})
