// ngrok-style bind ACLs on keys and authtokens: `bind:*` (anything), `bind:host`, `bind:*.domain`,
// `bind:tcp:PORT`, `bind:tcp:*`. An empty list means "whatever the account may bind". Entries are normalised
// (lower-case; a bare label is relative to the base domain, as in the SSH grammar).
import { PortholeError } from '../core/errors.js'
import { covers, parseBindAddress } from '../core/names.js'

/** Checks and normalises one entry; throws PH_5001 naming it. */
export function parseAclEntry (entry: string, domain: string): string {
  const text = entry.trim().toLowerCase()
  const bad = (why: string): PortholeError => new PortholeError('PH_5001', `ACL entry ${JSON.stringify(entry)}: ${why}`)
  if (!text.startsWith('bind:')) throw bad("want bind:HOST, bind:*.DOMAIN, bind:tcp:PORT or bind:*")
  const target = text.slice(5)
  if (target === '*' || target === 'tcp:*') return text
  if (target.startsWith('tcp:')) {
    const port = Number(target.slice(4))
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw bad('the port must be 1-65535')
    return `bind:tcp:${port}`
  }
  try {
    const host = parseBindAddress(target, domain)
    if (host.kind === 'random') throw bad('name a host')
    return `bind:${host.host}`
  } catch (error) {
    if (error instanceof PortholeError && error.code === 'PH_5001') throw error
    throw bad(error instanceof Error ? error.message : String(error))
  }
}

export function parseAcl (entries: readonly string[], domain: string): string[] {
  return [...new Set(entries.map((entry) => parseAclEntry(entry, domain)))]
}

/**
 * Whether an ACL lets its holder bind `key` (a host, `*.suffix`, or `tcp:PORT` as the registry names them).
 * A wildcard entry allows the names under it and narrower wildcards, not the bare suffix.
 */
export function aclAllows (acl: readonly string[], key: string): boolean {
  if (acl.length === 0) return true
  const tcp = key.startsWith('tcp:')
  for (const entry of acl) {
    const target = entry.slice(5)
    if (target === '*') return true
    if (tcp) {
      if (target === 'tcp:*' || target === key) return true
    } else if (!target.startsWith('tcp:') && (target === key || covers(target, key))) {
      return true
    }
  }
  return false
}

/**
 * Whether an ACL names `key` itself: an entry for that host or a wildcard covering it, not `bind:*` (nor an
 * empty ACL, which names nothing). The operator granted it outright, so it may be bound even next to (under
 * or above) a name another owner holds.
 */
export function aclGrants (acl: readonly string[], key: string): boolean {
  const named = acl.filter((entry) => entry !== 'bind:*' && entry !== 'bind:tcp:*')
  return named.length > 0 && aclAllows(named, key)
}
