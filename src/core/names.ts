// Host names: turning what an SSH client sent as its bind address into the public host of an endpoint,
// the rules a name must follow, and random names. Pure functions, no I/O.
import { randomInt } from 'node:crypto'
import { PortholeError } from './errors.js'

// No 0/o, 1/l/i: names are read aloud and typed from screenshots.
const RANDOM_ALPHABET = 'abcdefghjkmnpqrstuvwxyz23456789'
const RANDOM_FIRST = 'abcdefghjkmnpqrstuvwxyz'
export const RANDOM_NAME_LENGTH = 6

export function randomLabel (): string {
  let label = RANDOM_FIRST[randomInt(RANDOM_FIRST.length)]!
  for (let i = 1; i < RANDOM_NAME_LENGTH; i++) label += RANDOM_ALPHABET[randomInt(RANDOM_ALPHABET.length)]
  return label
}

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/

export function isValidLabel (label: string): boolean {
  return LABEL.test(label)
}

export type HostRequest =
  | { kind: 'random' }
  | { kind: 'exact', host: string }
  | { kind: 'wildcard', host: string } // host is '*.suffix'

/**
 * What a `tcpip-forward` bind address asks for, per DESIGN's grammar:
 * '' / 'localhost' -> a random name; 'myapp' -> myapp.<domain>; 'a.b.<domain>' or '*.b.<domain>' -> that host;
 * other names are taken as relative to the domain. Throws PH_1010/PH_1012 for names that may never be bound.
 */
export function parseBindAddress (bindAddr: string, domain: string): HostRequest {
  const addr = bindAddr.trim().toLowerCase().replace(/\.$/, '')
  if (addr === '' || addr === 'localhost' || addr === '*' || addr === '0.0.0.0' || addr === '::' ||
      addr === '127.0.0.1' || addr === '::1') {
    return { kind: 'random' }
  }
  if (addr.length > 253) throw new PortholeError('PH_1010', `${JSON.stringify(bindAddr.slice(0, 40))}... (longer than 253 characters)`)
  const wildcard = addr.startsWith('*.')
  const rest = wildcard ? addr.slice(2) : addr
  const labels = rest.split('.')
  for (const label of labels) {
    if (!isValidLabel(label)) {
      throw new PortholeError('PH_1010', `${JSON.stringify(bindAddr)} (labels are a-z, 0-9 and inner '-', at most 63 characters)`)
    }
  }
  // Names are relative to the base domain unless they already end with it: 'app.team' -> app.team.<domain>.
  const host = rest === domain || rest.endsWith(`.${domain}`) ? rest : `${rest}.${domain}`
  if (wildcard) {
    if (host === domain) throw new PortholeError('PH_1012', `*.${host}`)
    return { kind: 'wildcard', host: `*.${host}` }
  }
  if (host === domain) throw new PortholeError('PH_1010', `${host} (the base domain itself is not an endpoint name)`)
  return { kind: 'exact', host }
}

/** True when `pattern` ('*.suffix' or an exact host) matches or covers `host`. */
export function covers (pattern: string, host: string): boolean {
  if (!pattern.startsWith('*.')) return pattern === host
  const suffix = pattern.slice(1) // '.suffix'
  const bare = host.startsWith('*.') ? host.slice(1) : host
  return bare.endsWith(suffix) && bare.length > suffix.length
}

/** The wildcard patterns that could match `host`, most specific first: a.b.c.d -> *.b.c.d, *.c.d, *.d */
export function wildcardsFor (host: string): string[] {
  const out: string[] = []
  let i = host.indexOf('.')
  while (i !== -1 && i < host.length - 1) {
    out.push(`*${host.slice(i)}`)
    i = host.indexOf('.', i + 1)
  }
  return out
}

/** The name a host pattern is about: `*.team.example.com` -> team.example.com; an exact host is itself. */
export function bareName (name: string): string {
  return name.startsWith('*.') ? name.slice(2) : name
}

/** Whether `name` is `parent` or lies under it, label by label (shopping.example.com is not under shop.example.com). */
export function isUnder (name: string, parent: string): boolean {
  return name === parent || name.endsWith(`.${parent}`)
}

/**
 * Whether binding `name` (exact or `*.suffix`) touches what `claimed` keeps: the claimed name and everything
 * under it (a host can set cookies for itself and every name above it, and those reach every name under
 * that), and wildcards covering it; `*.team.example.com` also claims team.example.com itself. Reservations
 * claim this way, and so do the names other owners hold.
 */
export function domainClaims (claimed: string, name: string): boolean {
  return isUnder(bareName(name), bareName(claimed)) || (name.startsWith('*.') && isUnder(bareName(claimed), bareName(name)))
}

/**
 * Whether two names lie on one line of descent, either claiming the other: `x.myapp` or `*.myapp` and
 * `myapp`, `team` and `*.team`, `c` and `a.b.c`. Siblings (a.example.com, b.example.com) are not, and the
 * base domain, above every name, is nobody's name.
 */
export function nested (a: string, b: string): boolean {
  return domainClaims(a, b) || domainClaims(b, a)
}
