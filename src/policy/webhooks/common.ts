// Shared pieces of the webhook verifiers: the input every verifier receives, the result it returns, header
// access, constant-time comparison and the timestamp window. Everything here is pure: no I/O, no clock (the
// caller passes `now`).
import { createHmac, timingSafeEqual } from 'node:crypto'

export type WebhookHeaders = Record<string, string | string[] | undefined>

export interface WebhookInput {
  /** HTTP method as received, e.g. "POST". */
  method: string
  /** The full public URL the provider called (scheme, host, optional port, path and query). */
  url: string
  /** Request headers with lower-case names. */
  headers: WebhookHeaders
  /** The raw request body, byte for byte as received. */
  body: Buffer
  /** The shared secret (HMAC providers), the token (gitlab) or the verification public key (sendgrid). */
  secret: string
  /** Current time in milliseconds since the epoch. */
  now: number
}

export type WebhookResult = { ok: true } | { ok: false, reason: string }

export type HmacAlgorithm = 'sha1' | 'sha256' | 'sha384' | 'sha512'
export type DigestEncoding = 'hex' | 'base64' | 'base64url'

export const HMAC_ALGORITHMS: readonly HmacAlgorithm[] = ['sha1', 'sha256', 'sha384', 'sha512']
export const DIGEST_ENCODINGS: readonly DigestEncoding[] = ['hex', 'base64', 'base64url']

/** Options of the generic HMAC provider, plus a tolerance override that applies to the timestamped providers. */
export interface WebhookOptions {
  /** generic: HMAC digest algorithm. */
  algorithm?: HmacAlgorithm
  /** generic: lower-case name of the header carrying the signature. */
  header?: string
  /** generic: how the digest is written in the header. */
  encoding?: DigestEncoding
  /** generic: text before the digest in the header, e.g. "sha256=". */
  prefix?: string
  /** Timestamped providers: allowed clock difference in seconds, replacing the provider's documented default. */
  toleranceSeconds?: number
}

export const OK: WebhookResult = { ok: true }
export const fail = (reason: string): WebhookResult => ({ ok: false, reason })

/**
 * The single value of a header. A header sent more than once is ambiguous for a signature, so it is refused
 * (returned as an error string) rather than guessed at.
 */
export function headerValue (headers: WebhookHeaders, name: string): string | undefined | { duplicate: true } {
  const v = headers[name]
  if (v === undefined) return undefined
  if (Array.isArray(v)) {
    if (v.length === 0) return undefined
    if (v.length > 1) return { duplicate: true }
    return v[0]
  }
  return v
}

/** Reads a required header, or produces the failure to return. */
export function requireHeader (headers: WebhookHeaders, name: string): string | WebhookResult {
  const v = headerValue(headers, name)
  if (v === undefined || v === '') return fail(`missing ${name} header`)
  if (typeof v !== 'string') return fail(`${name} header sent more than once`)
  return v
}

export const isResult = (v: string | WebhookResult): v is WebhookResult => typeof v !== 'string'

/** Constant-time equality of two strings (length is not treated as secret). */
export function safeEqual (a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8')
  const y = Buffer.from(b, 'utf8')
  if (x.length !== y.length) return false
  return timingSafeEqual(x, y)
}

/** Constant-time equality of two byte strings. */
export function safeEqualBytes (x: Buffer, y: Buffer): boolean {
  if (x.length !== y.length) return false
  return timingSafeEqual(x, y)
}

export function hmac (algorithm: HmacAlgorithm, key: string | Buffer, ...parts: Array<string | Buffer>): Buffer {
  const h = createHmac(algorithm, key)
  for (const p of parts) h.update(p)
  return h.digest()
}

/**
 * Replay protection: the signed timestamp (seconds since the epoch, as sent) must be within `toleranceSeconds`
 * of `nowMs`, in either direction.
 */
export function checkTimestamp (raw: string, nowMs: number, toleranceSeconds: number): WebhookResult {
  if (!/^\d{1,15}$/.test(raw)) return fail('timestamp is not a number of seconds')
  const ts = Number(raw)
  const skew = Math.abs(nowMs / 1000 - ts)
  if (skew > toleranceSeconds) return fail(`timestamp outside the ${toleranceSeconds} s tolerance`)
  return OK
}
