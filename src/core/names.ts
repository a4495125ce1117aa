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
