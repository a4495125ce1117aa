// Slows down credential guessing (SSH authtokens, admin API keys) per source address: the first few failures cost nothing (typos),
// then each further attempt from that address waits twice as long as the last, up to a ceiling. Addresses
// are forgotten after a quiet period, and only so many are tracked (a bounded LRU).
import { LRUCache } from 'lru-cache'

export interface LoginThrottleOptions {
  readonly freeFailures?: number
  readonly baseDelayMs?: number
  readonly maxDelayMs?: number
  readonly forgetAfterMs?: number
}

export class LoginThrottle {
  readonly #failures: LRUCache<string, { count: number }>
  readonly #free: number
  readonly #baseMs: number
  readonly #maxMs: number

  constructor (options: LoginThrottleOptions = {}) {
    this.#free = options.freeFailures ?? 3
    this.#baseMs = options.baseDelayMs ?? 1000
    this.#maxMs = options.maxDelayMs ?? 30_000
    this.#failures = new LRUCache({ max: 10_000, ttl: options.forgetAfterMs ?? 15 * 60_000 })
  }

  /** How long the next attempt from `ip` would wait before it is checked. */
  delayMs (ip: string): number {
    const count = this.#failures.get(ip)?.count ?? 0
    if (count < this.#free) return 0
    return Math.min(this.#baseMs * 2 ** (count - this.#free), this.#maxMs)
  }

  /**
   * Starts an attempt from `ip`: it counts as a failure at once (until succeeded() says otherwise), so
   * attempts sent in parallel each wait longer than the one before. Returns how long this one waits.
   */
  attempt (ip: string): number {
    const delay = this.delayMs(ip)
    // set() again restarts the quiet period.
    this.#failures.set(ip, { count: (this.#failures.get(ip)?.count ?? 0) + 1 })
    return delay
  }

  /**
   * Checks a credential from `ip` under the throttle: waits this attempt's delay, runs `verify`, and forgets
   * the address's failures when it finds something. Resolves to what `verify` found (undefined: refused).
   */
  async check<T> (ip: string, verify: () => Promise<T | undefined>): Promise<T | undefined> {
    const delay = this.attempt(ip)
    // unref: a guesser's pending wait must not keep a stopping gateway alive.
    if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay).unref())
    const found = await verify()
    if (found !== undefined) this.succeeded(ip)
    return found
  }

  succeeded (ip: string): void {
    this.#failures.delete(ip)
  }
}
