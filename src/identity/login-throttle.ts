// Slows down credential guessing (SSH authtokens, admin API keys) per source address: the first few failures cost nothing (typos),
// then each further failure from that address is answered twice as late as the last, up to a ceiling.
// Only failures wait (as OpenSSH delays failed logins): a correct credential is answered at once even while
// wrong ones from the same address are being held back, so a guesser cannot lock the operator out. A
// guesser's rate is still bounded: each wrong guess holds its connection for its delay, and connections per
// address are capped (SSH admission, the API's per-address limit). Addresses are forgotten after a quiet
// period, and only so many are tracked (a bounded LRU).
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
   * Starts an attempt from `ip`: it counts as a failure at once (check() takes it back on success), so
   * attempts sent in parallel each wait longer than the one before. Returns how long this one waits.
   */
  attempt (ip: string): number {
    const delay = this.delayMs(ip)
    // set() again restarts the quiet period.
    this.#failures.set(ip, { count: (this.#failures.get(ip)?.count ?? 0) + 1 })
    return delay
  }

  /**
   * Checks a credential from `ip` under the throttle: runs `verify`; what it finds is answered at once and
   * does not count; a refusal is answered after this attempt's delay. Resolves to what `verify` found
   * (undefined: refused). A success takes back only its own attempt, not the address's earlier failures
   * (a guesser holding one valid credential cannot reset its count with it).
   */
  async check<T> (ip: string, verify: () => Promise<T | undefined>): Promise<T | undefined> {
    const delay = this.attempt(ip)
    let found: T | undefined
    try {
      found = await verify()
    } catch (error) {
      this.#refund(ip)
      throw error
    }
    if (found !== undefined) {
      this.#refund(ip)
      return found
    }
    // unref: a guesser's pending wait must not keep a stopping gateway alive.
    if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay).unref())
    return undefined
  }

  /** Addresses whose next wrong credential would wait (metrics: a count, never the addresses). */
  throttledSources (): number {
    let count = 0
    for (const entry of this.#failures.values()) if (entry.count >= this.#free) count++
    return count
  }

  /** Forgets the address's failures (an operator's decision; check() never does this on its own). */
  succeeded (ip: string): void {
    this.#failures.delete(ip)
  }

  #refund (ip: string): void {
    const entry = this.#failures.get(ip)
    if (!entry) return
    if (entry.count <= 1) this.#failures.delete(ip)
    else entry.count--
  }
}
