// verify-webhook: pure verification of a webhook delivery for the providers ngrok's Traffic Policy knows, plus
// a generic HMAC provider. No I/O and no clock: the edge passes the raw body, the lower-cased headers, the
// public URL and `now`, and gets back ok or a reason (for logs; not meant to be shown to the caller).
import {
  type DigestEncoding, type HmacAlgorithm, type WebhookInput, type WebhookOptions, type WebhookResult,
  DIGEST_ENCODINGS, HMAC_ALGORITHMS, fail,
} from './common.js'
import { verifyGenericHmac, verifyGithub, verifyGitlab, verifyShopify } from './hmac-body.js'
import { sendgridPublicKey, verifySendgrid } from './sendgrid.js'
import { svixKey, verifySlack, verifyStripe, verifySvix } from './timestamped.js'
import { verifyTwilio } from './twilio.js'

export type { DigestEncoding, HmacAlgorithm, WebhookHeaders, WebhookInput, WebhookOptions, WebhookResult } from './common.js'
export { SENDGRID_TOLERANCE_SECONDS } from './sendgrid.js'
export { SLACK_TOLERANCE_SECONDS, STRIPE_TOLERANCE_SECONDS, SVIX_TOLERANCE_SECONDS } from './timestamped.js'

export const WEBHOOK_PROVIDERS = [
  'github', 'gitlab', 'stripe', 'slack', 'twilio', 'shopify', 'sendgrid', 'svix', 'generic',
] as const
export type WebhookProvider = typeof WEBHOOK_PROVIDERS[number]

/** Providers whose signature covers a timestamp, and so accept a tolerance. */
export const TIMESTAMPED_WEBHOOK_PROVIDERS: readonly WebhookProvider[] = ['stripe', 'slack', 'svix', 'sendgrid']

const isProvider = (p: string): p is WebhookProvider => (WEBHOOK_PROVIDERS as readonly string[]).includes(p)

export function verifyWebhook (provider: string, input: WebhookInput, options: WebhookOptions = {}): WebhookResult {
  const p = provider.toLowerCase()
  if (!isProvider(p)) return fail(`unknown webhook provider ${JSON.stringify(provider)}`)
  if (input.secret === '') return fail('no secret configured')
  const tol = options.toleranceSeconds
  switch (p) {
    case 'github': return verifyGithub(input)
    case 'gitlab': return verifyGitlab(input)
    case 'shopify': return verifyShopify(input)
    case 'twilio': return verifyTwilio(input)
    case 'stripe': return verifyStripe(input, tol)
    case 'slack': return verifySlack(input, tol)
    case 'svix': return verifySvix(input, tol)
    case 'sendgrid': return verifySendgrid(input, tol)
    case 'generic': {
      if (options.header === undefined || options.header === '') return fail('generic provider needs a header')
      const algorithm = options.algorithm ?? 'sha256'
      const encoding = options.encoding ?? 'hex'
      if (!HMAC_ALGORITHMS.includes(algorithm)) return fail(`unsupported algorithm ${JSON.stringify(algorithm)}`)
      if (!DIGEST_ENCODINGS.includes(encoding)) return fail(`unsupported encoding ${JSON.stringify(encoding)}`)
      return verifyGenericHmac(input, { algorithm, encoding, header: options.header, prefix: options.prefix ?? '' })
    }
  }
}

/** A verify-webhook action's config once checked. Field names follow ngrok's action (provider, secret, enforce). */
export interface WebhookConfig {
  provider: WebhookProvider
  secret: string
  /** ngrok's `enforce`: when false a failed verification is only recorded, not refused. Defaults to true. */
  enforce: boolean
  /** Only for stripe, slack, svix, sendgrid: replaces the provider's default window, in seconds. */
  toleranceSeconds?: number
  /** Only for generic. */
  algorithm?: HmacAlgorithm
  header?: string
  encoding?: DigestEncoding
  prefix?: string
}

const CONFIG_FIELDS = ['provider', 'secret', 'enforce', 'tolerance', 'algorithm', 'header', 'encoding', 'prefix']
const GENERIC_FIELDS = ['algorithm', 'header', 'encoding', 'prefix']

/**
 * Checks a verify-webhook config (as parsed from a policy document or flags) and returns it normalised.
 * Throws a plain Error whose message starts with the offending field. `tolerance` is in seconds.
 */
export function checkWebhookConfig (config: unknown): WebhookConfig {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new Error('config: expected an object with provider and secret')
  }
  const c = config as Record<string, unknown>
  for (const k of Object.keys(c)) {
    if (!CONFIG_FIELDS.includes(k)) throw new Error(`${k}: unknown field (allowed: ${CONFIG_FIELDS.join(', ')})`)
  }
  if (c.provider === undefined) throw new Error('provider: missing')
  if (typeof c.provider !== 'string') throw new Error('provider: must be a string')
  const provider = c.provider.toLowerCase()
  if (!isProvider(provider)) {
    throw new Error(`provider: unknown provider ${JSON.stringify(c.provider)} (known: ${WEBHOOK_PROVIDERS.join(', ')})`)
  }
  if (c.secret === undefined || c.secret === '') throw new Error('secret: missing')
  if (typeof c.secret !== 'string') throw new Error('secret: must be a string')
  const secret = c.secret
  if (c.enforce !== undefined && typeof c.enforce !== 'boolean') throw new Error('enforce: must be true or false')
  const out: WebhookConfig = { provider, secret, enforce: c.enforce !== false }

  if (c.tolerance !== undefined) {
    if (!TIMESTAMPED_WEBHOOK_PROVIDERS.includes(provider)) {
      throw new Error(`tolerance: ${provider} signs no timestamp (only ${TIMESTAMPED_WEBHOOK_PROVIDERS.join(', ')})`)
    }
    if (typeof c.tolerance !== 'number' || !Number.isFinite(c.tolerance) || c.tolerance <= 0) {
      throw new Error('tolerance: must be a positive number of seconds')
    }
    out.toleranceSeconds = c.tolerance
  }

  if (provider === 'svix' && svixKey(secret) === undefined) {
    throw new Error('secret: a svix secret is whsec_ followed by base64')
  }
  if (provider === 'sendgrid') {
    try {
      sendgridPublicKey(secret)
    } catch (e) {
      throw new Error(`secret: the sendgrid verification key is ${(e as Error).message}`)
    }
  }

  if (provider !== 'generic') {
    for (const k of GENERIC_FIELDS) {
      if (c[k] !== undefined) throw new Error(`${k}: only for the generic provider`)
    }
    return out
  }
  if (c.header === undefined || c.header === '') throw new Error('header: missing (the header carrying the signature)')
  if (typeof c.header !== 'string' || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(c.header)) {
    throw new Error('header: must be an HTTP header name')
  }
  out.header = c.header.toLowerCase()
  if (c.algorithm !== undefined) {
    const a = typeof c.algorithm === 'string' ? c.algorithm.toLowerCase().replace('-', '') : c.algorithm
    if (typeof a !== 'string' || !(HMAC_ALGORITHMS as readonly string[]).includes(a)) {
      throw new Error(`algorithm: must be one of ${HMAC_ALGORITHMS.join(', ')}`)
    }
    out.algorithm = a as HmacAlgorithm
  } else out.algorithm = 'sha256'
  if (c.encoding !== undefined) {
    if (typeof c.encoding !== 'string' || !(DIGEST_ENCODINGS as readonly string[]).includes(c.encoding)) {
      throw new Error(`encoding: must be one of ${DIGEST_ENCODINGS.join(', ')}`)
    }
    out.encoding = c.encoding as DigestEncoding
  } else out.encoding = 'hex'
  if (c.prefix !== undefined && typeof c.prefix !== 'string') throw new Error('prefix: must be a string')
  out.prefix = c.prefix ?? ''
  return out
}

/** The options verifyWebhook takes, from a checked config. */
export function webhookOptions (config: WebhookConfig): WebhookOptions {
  const o: WebhookOptions = {}
  if (config.toleranceSeconds !== undefined) o.toleranceSeconds = config.toleranceSeconds
  if (config.algorithm !== undefined) o.algorithm = config.algorithm
  if (config.header !== undefined) o.header = config.header
  if (config.encoding !== undefined) o.encoding = config.encoding
  if (config.prefix !== undefined) o.prefix = config.prefix
  return o
}
