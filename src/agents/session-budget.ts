// How many agent sessions the gateway takes, counted across transports (an SSH client and an ngrok agent of the
// same account share the account's budget): known owners and anonymous ones have budgets of their own, anonymous
// ones also per source address, and one owner (key, account) has a share of its own. The counts are kept up to
// date at each login and logout (SessionCounts), so a login's check costs the same with 10 or 20,000 sessions up.
import { PortholeError } from '../core/errors.js'
import type { Owner } from '../core/endpoint.js'
import { sourceOf } from './admission.js'
import { observeLimit } from '../observe/channels.js'

export interface SessionBudgets {
  /** Sessions of known owners (accounts, authtokens, authorized_keys). */
  readonly maxSessions: number
  /** Sessions of anonymous clients, counted apart from known ones. */
  readonly maxAnonymousSessions: number
  readonly maxAnonymousSessionsPerSource: number
  readonly maxSessionsPerKey: number
}

/** A logged-in session, as the budgets see it. */
export interface LiveLogin {
  readonly owner: Owner
  readonly remoteAddr: string
}

/** Owners are counted within their class: a known and an anonymous owner never share a count. */
const ownerKey = (owner: Owner): string => `${owner.known === true ? 'k' : 'a'}:${owner.id}`

/** The live sessions of every transport, counted by class, owner and (anonymous ones) source. */
export class SessionCounts {
  #known = 0
  #anonymous = 0
  readonly #byOwner = new Map<string, number>()
  readonly #bySource = new Map<string, number>()

  /** Counts a session that just logged in; the function returned uncounts it (once, however often it is called). */
  add (login: LiveLogin): () => void {
    const known = login.owner.known === true
    const owner = ownerKey(login.owner)
    const source = known ? null : sourceOf(login.remoteAddr)
    if (known) this.#known++
    else this.#anonymous++
    bump(this.#byOwner, owner, 1)
    if (source !== null) bump(this.#bySource, source, 1)
    let counted = true
    return () => {
      if (!counted) return
      counted = false
      if (known) this.#known--
      else this.#anonymous--
      bump(this.#byOwner, owner, -1)
      if (source !== null) bump(this.#bySource, source, -1)
    }
  }

  /** Why a new session of `owner` from `ip` is refused, or null when there is room (the refusal is observed). */
  refusal (owner: Owner, ip: string, budgets: SessionBudgets): PortholeError | null {
    const known = owner.known === true
    const sameClass = known ? this.#known : this.#anonymous
    const sameOwner = this.#byOwner.get(ownerKey(owner)) ?? 0
    const source = sourceOf(ip)
    const sameSource = known ? 0 : this.#bySource.get(source) ?? 0
    const refusal = budgetRefusal(known, owner, source, { sameClass, sameOwner, sameSource }, budgets)
    if (refusal) observeLimit(refusal)
    return refusal
  }
}

function bump (map: Map<string, number>, key: string, by: number): void {
  const next = (map.get(key) ?? 0) + by
  if (next <= 0) map.delete(key)
  else map.set(key, next)
}

interface Counts { readonly sameClass: number, readonly sameOwner: number, readonly sameSource: number }

/** The same decision from a scan of every live session: what SessionCounts keeps, pinned by a unit test. */
export function scanRefusal (owner: Owner, ip: string, live: Iterable<LiveLogin>, budgets: SessionBudgets): PortholeError | null {
  const known = owner.known === true
  const source = sourceOf(ip)
  let sameClass = 0
  let sameOwner = 0
  let sameSource = 0
  for (const session of live) {
    if ((session.owner.known === true) !== known) continue
    sameClass++
    if (session.owner.id === owner.id) sameOwner++
    if (!known && sourceOf(session.remoteAddr) === source) sameSource++
  }
  return budgetRefusal(known, owner, source, { sameClass, sameOwner, sameSource }, budgets)
}

function budgetRefusal (known: boolean, owner: Owner, source: string, counts: Counts, budgets: SessionBudgets): PortholeError | null {
  const { sameClass, sameOwner, sameSource } = counts
  if (known && sameClass >= budgets.maxSessions) return new PortholeError('PH_1053', String(sameClass))
  if (!known && sameClass >= budgets.maxAnonymousSessions) return new PortholeError('PH_1054', `${sameClass} of ${budgets.maxAnonymousSessions}`)
  if (!known && sameSource >= budgets.maxAnonymousSessionsPerSource) return new PortholeError('PH_1055', `${source} (${sameSource})`)
  if (owner.persistent && sameOwner >= budgets.maxSessionsPerKey) return new PortholeError('PH_1056', String(sameOwner))
  return null
}
