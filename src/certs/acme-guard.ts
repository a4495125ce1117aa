// The rate guard in front of the ACME CA. Only bound names ever reach it (the HTTPS listener asks for
// certificates of bound endpoints only); on top of that it limits how often we order, so that a client
// binding and dropping names, or a name whose validation keeps failing, cannot spend the CA's rate limits
// (Let's Encrypt: 5 failed validations per name per hour, 300 new orders per 3 hours per account):
// - per name: after a failed order, no new order for that name for a backoff that doubles with each
//   failure in a row (15 min, 30 min, 1 h, ... at most 24 h); a success clears it;
// - globally: at most `maxPerHour` orders (renewals included) in any sliding hour.
import { LRUCache } from 'lru-cache'

const MINUTE_MS = 60_000
const HOUR_MS = 60 * MINUTE_MS

export interface OrderGuardOptions {
  /** Orders allowed in any sliding hour. Default 50. */
  readonly maxPerHour?: number
  /** Wait after a name's first failed order; doubles with each failure in a row. Default 15 minutes. */
  readonly backoffMs?: number
  /** The longest backoff. Default 24 hours. */
  readonly maxBackoffMs?: number
  readonly now?: () => number
}

export type Verdict = { readonly ok: true } | { readonly ok: false, readonly reason: 'backoff' | 'hourly-cap', readonly retryAt: number }

interface Failures {
  readonly count: number
  readonly retryAt: number
}

export class OrderGuard {
  readonly maxPerHour: number
  readonly #backoffMs: number
  readonly #maxBackoffMs: number
  readonly #now: () => number
  /** Start times of the orders admitted in the last hour, oldest first. */
  readonly #recent: number[] = []
  // Bounded: a name forgotten here only loses its backoff, and the hourly cap still holds.
  readonly #failures = new LRUCache<string, Failures>({ max: 10_000 })

  constructor (options: OrderGuardOptions = {}) {
    this.maxPerHour = options.maxPerHour ?? 50
    this.#backoffMs = options.backoffMs ?? 15 * MINUTE_MS
    this.#maxBackoffMs = options.maxBackoffMs ?? 24 * HOUR_MS
    this.#now = options.now ?? Date.now
  }

  /** May we order a certificate for `host` now? A yes counts as an order placed. */
  admit (host: string): Verdict {
    const now = this.#now()
    const failures = this.#failures.get(host)
    if (failures && now < failures.retryAt) return { ok: false, reason: 'backoff', retryAt: failures.retryAt }
    while (this.#recent.length > 0 && this.#recent[0]! <= now - HOUR_MS) this.#recent.shift()
    if (this.#recent.length >= this.maxPerHour) return { ok: false, reason: 'hourly-cap', retryAt: this.#recent[0]! + HOUR_MS }
    this.#recent.push(now)
    return { ok: true }
  }

  /** Records a failed order for `host`; returns when the next one may be placed. */
  failed (host: string): number {
    const count = (this.#failures.get(host)?.count ?? 0) + 1
    const wait = Math.min(this.#backoffMs * 2 ** (count - 1), this.#maxBackoffMs)
    const retryAt = this.#now() + wait
    this.#failures.set(host, { count, retryAt })
    return retryAt
  }

  succeeded (host: string): void {
    this.#failures.delete(host)
  }
}
