// Who gets to try an agent login (SSH or ngrok) when many connect at once. Connections not yet logged in cost the gateway a
// socket, a key exchange and a login deadline each, and one party opening many of them must not lock others
// out. This follows OpenSSH's MaxStartups (random early drop between `start` and `full`) with per-source
// fairness: one source address (IPv6: one /64) may hold only so many (the NEW connection is refused, those
// open are kept), and when the gateway as a whole is full, a newcomer from a source holding fewer takes the
// place of the oldest connection of the source holding the most. So an attacker needs as many addresses as
// there are places to lock anyone out, and even then only for the login grace time.
import ipaddr from 'ipaddr.js'
import { PortholeError } from '../core/errors.js'
import type { Startups } from '../config/schema.js'
import { observeLimit, type LimitCap } from '../observe/channels.js'

export interface StartupLimits extends Startups {
  /** Connections not yet logged in from one source. */
  readonly perSource: number
}

/** What the admission of one connection hands back: release() when it logs in or closes. */
export interface StartupTicket {
  readonly source: string
  release (): void
}

interface Pending extends StartupTicket {
  /** Ends the connection when it is evicted for a newcomer. */
  readonly evict: () => void
}

export type Admission = { ok: true, ticket: StartupTicket, evicted: string | null } | { ok: false, error: PortholeError }

/** The unit fairness counts in: an IPv4 address (also when IPv4-mapped), or an IPv6 /64. */
export function sourceOf (ip: string): string {
  if (!ipaddr.isValid(ip)) return ip
  let address = ipaddr.parse(ip)
  if (address.kind() === 'ipv6' && (address as ipaddr.IPv6).isIPv4MappedAddress()) address = (address as ipaddr.IPv6).toIPv4Address()
  if (address.kind() === 'ipv4') return address.toString()
  const parts = (address as ipaddr.IPv6).parts.slice(0, 4).map((p) => p.toString(16))
  return `${parts.join(':')}::/64`
}

export class StartupAdmission {
  readonly #limits: StartupLimits
  readonly #random: () => number
  /** Per source, its pending connections oldest first (a Set keeps insertion order). */
  readonly #bySource = new Map<string, Set<Pending>>()
  #total = 0

  constructor (limits: StartupLimits, random: () => number = Math.random) {
    this.#limits = limits
    this.#random = random
  }

  get pending (): number {
    return this.#total
  }

  /**
   * Admits or refuses a new connection from `ip`. `evict` ends it should a newcomer take its place later.
   * On admission, `evicted` names the source whose oldest connection made room (already ended).
   */
  admit (ip: string, evict: () => void): Admission {
    const source = sourceOf(ip)
    const own = this.#bySource.get(source)?.size ?? 0
    if (own >= this.#limits.perSource) return refused(new PortholeError('PH_1050', `${source} (${own}, the limit per source)`))
    let evicted: string | null = null
    if (this.#shouldDrop()) {
      const busiest = this.#busiest()
      // Only a source holding at least two more than the newcomer's gives one up: the result is fairer.
      if (!busiest || busiest[1].size < own + 2) return refused(new PortholeError('PH_1051', String(this.#total)), this.#total >= this.#limits.full ? 'startups_full' : 'startups_early_drop')
      const oldest = busiest[1].values().next().value!
      oldest.release()
      oldest.evict()
      evicted = busiest[0]
    }
    return { ok: true, ticket: this.#add(source, evict), evicted }
  }

  /** OpenSSH's rule: below start admit; from start drop with rate% rising linearly to 100% at full. */
  #shouldDrop (): boolean {
    const { start, rate, full } = this.#limits
    if (this.#total < start) return false
    if (this.#total >= full) return true
    const percent = rate + ((100 - rate) * (this.#total - start)) / (full - start)
    return this.#random() * 100 < percent
  }

  #busiest (): [string, Set<Pending>] | undefined {
    let best: [string, Set<Pending>] | undefined
    for (const entry of this.#bySource) if (!best || entry[1].size > best[1].size) best = entry
    return best
  }

  #add (source: string, evict: () => void): Pending {
    let set = this.#bySource.get(source)
    if (!set) this.#bySource.set(source, set = new Set())
    let released = false
    const pending: Pending = {
      source,
      evict,
      release: () => {
        if (released) return
        released = true
        this.#total--
        set.delete(pending)
        if (set.size === 0 && this.#bySource.get(source) === set) this.#bySource.delete(source)
      },
    }
    set.add(pending)
    this.#total++
    return pending
  }
}

/** A refusal, counted as a cap hit (observe/channels.ts). */
function refused (error: PortholeError, cap?: LimitCap): Admission {
  observeLimit(error, cap)
  return { ok: false, error }
}
