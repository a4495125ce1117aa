// How many agent sessions the gateway takes, counted across transports (an SSH client and an ngrok agent of the
// same account share the account's budget): known owners and anonymous ones have budgets of their own, anonymous
// ones also per source address, and one owner (key, account) has a share of its own.
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

/** Why a new session of `owner` from `ip` is refused, or null when there is room. */
export function sessionRefusal (owner: Owner, ip: string, live: Iterable<LiveLogin>, budgets: SessionBudgets): PortholeError | null {
  const refusal = budgetRefusal(owner, ip, live, budgets)
  if (refusal) observeLimit(refusal)
  return refusal
}

function budgetRefusal (owner: Owner, ip: string, live: Iterable<LiveLogin>, budgets: SessionBudgets): PortholeError | null {
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
  if (known && sameClass >= budgets.maxSessions) return new PortholeError('PH_1053', String(sameClass))
  if (!known && sameClass >= budgets.maxAnonymousSessions) return new PortholeError('PH_1054', `${sameClass} of ${budgets.maxAnonymousSessions}`)
  if (!known && sameSource >= budgets.maxAnonymousSessionsPerSource) return new PortholeError('PH_1055', `${source} (${sameSource})`)
  if (owner.persistent && sameOwner >= budgets.maxSessionsPerKey) return new PortholeError('PH_1056', String(sameOwner))
  return null
}
