// Durations in action configs, written as ngrok (and Go) writes them: "60s", "10m", "1h30m", "500ms".
import { PortholeError } from '../core/errors.js'

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }
const DURATION = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$/

/** Milliseconds of `text`; throws PH_1008 naming `field` when it is malformed or outside [minMs, maxMs]. */
export function parseDuration (text: unknown, field: string, minMs: number, maxMs: number): number {
  if (typeof text !== 'string' || !DURATION.test(text)) throw new PortholeError('PH_1008', `${field}: ${JSON.stringify(text)} is not a duration (want e.g. "60s", "10m", "1h")`)
  let ms = 0
  for (const [, value, unit] of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) ms += Number(value) * UNIT_MS[unit!]!
  if (ms < minMs || ms > maxMs) throw new PortholeError('PH_1008', `${field}: ${text} is outside ${minMs / 1000}s..${maxMs / 1000}s`)
  return ms
}
