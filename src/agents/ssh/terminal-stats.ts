// The connection counters of the full-screen terminal view, in ngrok's columns: total, rate over the last
// minute and the last five (requests per second), and p50/p90 latency. Computed from the per-request records
// the terminal already gets; bounded whatever the traffic: one counter per second for five minutes, and the
// durations of the last LATENCY_SAMPLES requests for the percentiles. The clock is injectable for tests.

const WINDOW_SECONDS = 300
const LATENCY_SAMPLES = 1024

export interface StatsSnapshot {
  readonly total: number
  /** Requests per second, averaged over the last 60 and 300 seconds. */
  readonly rate1: number
  readonly rate5: number
  /** Latency percentiles in ms over the last LATENCY_SAMPLES requests; null before the first. */
  readonly p50: number | null
  readonly p90: number | null
}

export class ConnectionStats {
  readonly #now: () => number
  /** Requests per second; slot = second % WINDOW_SECONDS, valid while #seconds[slot] is that second. */
  readonly #counts = new Uint32Array(WINDOW_SECONDS)
  readonly #seconds = new Float64Array(WINDOW_SECONDS).fill(-1)
  readonly #durations = new Float64Array(LATENCY_SAMPLES)
  #samples = 0
  #next = 0
  #total = 0

  constructor (now: () => number = Date.now) {
    this.#now = now
  }

  /** One finished request (or tcp connection) that took durationMs. */
  record (durationMs: number): void {
    this.#total++
    const second = Math.floor(this.#now() / 1000)
    const slot = second % WINDOW_SECONDS
    if (this.#seconds[slot] !== second) {
      this.#seconds[slot] = second
      this.#counts[slot] = 0
    }
    this.#counts[slot]!++
    this.#durations[this.#next] = Number.isFinite(durationMs) && durationMs > 0 ? durationMs : 0
    this.#next = (this.#next + 1) % LATENCY_SAMPLES
    if (this.#samples < LATENCY_SAMPLES) this.#samples++
  }

  snapshot (): StatsSnapshot {
    const now = Math.floor(this.#now() / 1000)
    let last1 = 0
    let last5 = 0
    for (let slot = 0; slot < WINDOW_SECONDS; slot++) {
      const age = now - this.#seconds[slot]!
      if (age < 0 || age >= WINDOW_SECONDS) continue
      last5 += this.#counts[slot]!
      if (age < 60) last1 += this.#counts[slot]!
    }
    const sorted = this.#durations.slice(0, this.#samples).sort()
    return {
      total: this.#total,
      rate1: last1 / 60,
      rate5: last5 / WINDOW_SECONDS,
      p50: percentile(sorted, 0.5),
      p90: percentile(sorted, 0.9),
    }
  }
}

/** Nearest-rank percentile of sorted values. */
function percentile (sorted: Float64Array, p: number): number | null {
  if (sorted.length === 0) return null
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!
}
