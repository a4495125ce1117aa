// circuit-breaker: counts the outcomes of requests that went upstream (5xx are errors) in a rolling window
// of `num_buckets` buckets. When the window holds at least `volume_threshold` requests and the error ratio
// reaches `error_threshold`, the breaker trips: requests get 503 (PH_3104) for `tripped_duration`. Then it
// is half-open: one request goes through as a probe; its success closes the breaker, its failure trips it
// again. A probe that never reports (the client left, a later rule answered) is replaced after another
// `tripped_duration`, so the breaker can never stay stuck open.
// The outcome arrives through the request context's `outcome` hooks, which the edge calls with the status.
import { PortholeError } from '../../core/errors.js'
import { parseDuration } from '../duration.js'
import type { CircuitBreakerAction } from '../document.js'
import type { CompileOptions, RequestStep } from '../compiled.js'

export function compileCircuitBreaker (action: CircuitBreakerAction, options: CompileOptions): RequestStep {
  const config = action.config ?? {}
  const threshold = config.error_threshold ?? 0.5
  if (!(threshold >= 0 && threshold <= 1)) throw new PortholeError('PH_1008', 'error_threshold: want a number from 0 to 1')
  const volume = config.volume_threshold ?? 10
  const windowMs = parseDuration(config.window_duration ?? '10s', 'window_duration', 1000, 120_000)
  const trippedMs = parseDuration(config.tripped_duration ?? '10s', 'tripped_duration', 1000, 120_000)
  const count = config.num_buckets ?? 10
  const enforce = config.enforce ?? true
  const bucketMs = windowMs / count
  const now = options.now ?? Date.now

  // Ring of buckets: which slot (absolute index) each holds, and its counts.
  const slot = new Float64Array(count).fill(-1)
  const total = new Float64Array(count)
  const errors = new Float64Array(count)
  /** 0: closed; else the time until which requests are refused (a probe may pass after it). */
  let trippedUntil = 0
  let probe = 0

  const reset = (): void => { slot.fill(-1); total.fill(0); errors.fill(0) }
  const trip = (t: number): void => { trippedUntil = t + trippedMs; reset() }

  const record = (status: number): void => {
    if (status === 0 || trippedUntil !== 0) return // a request that left before the trip
    const t = now()
    const index = Math.floor(t / bucketMs)
    const i = index % count
    if (slot[i] !== index) { slot[i] = index; total[i] = 0; errors[i] = 0 }
    total[i]!++
    if (status >= 500) errors[i]!++
    let requests = 0
    let failed = 0
    for (let j = 0; j < count; j++) {
      if (slot[j]! > index - count) { requests += total[j]!; failed += errors[j]! }
    }
    if (enforce && requests >= volume && failed / requests >= threshold) trip(t)
  }

  const probed = (generation: number) => (status: number): void => {
    if (generation !== probe || status === 0) return
    if (status >= 500) trip(now())
    else trippedUntil = 0
  }

  return (ctx) => {
    if (trippedUntil !== 0) {
      const t = now()
      if (t < trippedUntil) {
        return { code: 'PH_3104', headers: { 'retry-after': String(Math.max(1, Math.ceil((trippedUntil - t) / 1000))) } }
      }
      // Half-open: this request is the probe; others wait for its outcome (or another tripped_duration).
      trippedUntil = t + trippedMs
      ;(ctx.outcome ??= []).push(probed(++probe))
      return undefined
    }
    ;(ctx.outcome ??= []).push(record)
    return undefined
  }
}
