// rate-limit: a sliding-window counter per bucket (ngrok's `sliding_window`). A bucket's count is this
// window's requests plus the previous window's, weighted by how much of it still overlaps the sliding window;
// two numbers per bucket, however large the capacity. Buckets are keyed by the values of `bucket_key` CEL
// expressions and held in an LRU of bounded size, so strangers cycling through keys cannot grow memory
// (they evict old buckets instead). Limited requests get 429 with retry-after and are not counted.
import { LRUCache } from 'lru-cache'
import { isCelError } from '@bufbuild/cel'
import { PortholeError } from '../../core/errors.js'
import { actionResults, compileExpression, requestVars } from '../cel.js'
import { parseDuration } from '../duration.js'
import type { RateLimitAction } from '../document.js'
import type { CompileOptions, RequestStep } from '../compiled.js'

/** Buckets one rate-limit action keeps at most (least recently used go first). */
export const MAX_BUCKETS = 10_000

interface Bucket {
  /** Start of the current fixed window (ms). */
  start: number
  current: number
  previous: number
}

export function compileRateLimit (action: RateLimitAction, options: CompileOptions): RequestStep {
  const { capacity, enforce = true } = action.config
  if (action.config.algorithm !== 'sliding_window') throw new PortholeError('PH_1008', 'algorithm: want sliding_window')
  const rate = parseDuration(action.config.rate, 'rate', 1000, 24 * 3_600_000)
  const keys = (action.config.bucket_key ?? []).map((expression, i) => compileExpression(expression, `bucket_key[${i}]`))
  const now = options.now ?? Date.now
  const buckets = new LRUCache<string, Bucket>({ max: MAX_BUCKETS })

  return (ctx) => {
    let key = ''
    if (keys.length > 0) {
      const vars = requestVars(ctx)
      for (const program of keys) {
        const value = program(vars)
        key += `${isCelError(value) || value === undefined || value === null ? '' : String(value)}\0`
      }
    }
    const t = now()
    let bucket = buckets.get(key)
    if (bucket === undefined) {
      bucket = { start: t - (t % rate), current: 0, previous: 0 }
      buckets.set(key, bucket)
    } else if (t - bucket.start >= rate) {
      const windows = Math.floor((t - bucket.start) / rate)
      bucket.previous = windows === 1 ? bucket.current : 0
      bucket.current = 0
      bucket.start += windows * rate
    }
    const elapsed = t - bucket.start
    // Let a request through only if the weighted count, this request included, stays within capacity.
    const limited = bucket.previous * (1 - elapsed / rate) + bucket.current + 1 > capacity
    actionResults(ctx).actions.ngrok.rate_limit = { limited }
    if (!limited) {
      bucket.current++
      return undefined
    }
    if (!enforce) return undefined
    // When the weighted count drops below capacity again (within this window, or the next one's).
    const wait = bucket.current + 1 <= capacity
      ? rate * (1 - (capacity - bucket.current - 1) / bucket.previous) - elapsed
      : rate - elapsed + rate * (1 - (capacity - 1) / bucket.current)
    return { code: 'PH_3103', headers: { 'retry-after': String(Math.max(1, Math.ceil(wait / 1000))) } }
  }
}
