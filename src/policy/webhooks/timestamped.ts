// Providers that sign a timestamp together with the body (stripe, slack, svix) and so refuse replays outside
// the window their documentation gives.
import {
  type WebhookInput, type WebhookResult,
  OK, checkTimestamp, fail, headerValue, hmac, isResult, requireHeader, safeEqual, safeEqualBytes,
} from './common.js'

/** Stripe's libraries default to 300 s ("five minutes") between the signed `t` and the receiver's clock. */
export const STRIPE_TOLERANCE_SECONDS = 300
/** Slack: refuse a request whose timestamp is more than five minutes from local time. */
export const SLACK_TOLERANCE_SECONDS = 300
/** Svix: its libraries refuse a timestamp more than five minutes away, past or future. */
export const SVIX_TOLERANCE_SECONDS = 300

/**
 * Stripe: `Stripe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>[,v1=...][,v0=...]`.
 * The endpoint secret (whsec_...) is used as the HMAC key verbatim. Any one v1 entry matching is enough
 * (several are sent while a secret is being rolled); other schemes are ignored.
 * https://docs.stripe.com/webhooks#verify-manually
 */
export function verifyStripe (input: WebhookInput, toleranceSeconds = STRIPE_TOLERANCE_SECONDS): WebhookResult {
  const header = requireHeader(input.headers, 'stripe-signature')
  if (isResult(header)) return header
  let t: string | undefined
  const v1: string[] = []
  for (const item of header.split(',')) {
    const eq = item.indexOf('=')
    if (eq < 0) continue
    const k = item.slice(0, eq).trim()
    const v = item.slice(eq + 1).trim()
    if (k === 't') {
      if (t !== undefined) return fail('stripe-signature has more than one t')
      t = v
    } else if (k === 'v1') v1.push(v.toLowerCase())
  }
  if (t === undefined) return fail('stripe-signature has no timestamp (t=)')
  if (v1.length === 0) return fail('stripe-signature has no v1 signature')
  const expected = hmac('sha256', input.secret, `${t}.`, input.body).toString('hex')
  let matched = false
  for (const s of v1) if (safeEqual(expected, s)) matched = true
  if (!matched) return fail('signature mismatch')
  return checkTimestamp(t, input.now, toleranceSeconds)
}

/**
 * Slack: `X-Slack-Signature: v0=<hex HMAC-SHA256(signing secret, "v0:<X-Slack-Request-Timestamp>:<body>")>`.
 * https://api.slack.com/authentication/verifying-requests-from-slack
 */
export function verifySlack (input: WebhookInput, toleranceSeconds = SLACK_TOLERANCE_SECONDS): WebhookResult {
  const ts = requireHeader(input.headers, 'x-slack-request-timestamp')
  if (isResult(ts)) return ts
  const sig = requireHeader(input.headers, 'x-slack-signature')
  if (isResult(sig)) return sig
  if (!sig.startsWith('v0=')) return fail('x-slack-signature does not start with v0=')
  const expected = 'v0=' + hmac('sha256', input.secret, `v0:${ts}:`, input.body).toString('hex')
  if (!safeEqual(expected, sig.toLowerCase())) return fail('signature mismatch')
  return checkTimestamp(ts, input.now, toleranceSeconds)
}

/** Decodes a Svix secret: `whsec_` followed by base64 of the key bytes. Undefined when it is not that. */
export function svixKey (secret: string): Buffer | undefined {
  const b64 = secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : secret
  if (b64 === '' || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) return undefined
  const key = Buffer.from(b64, 'base64')
  return key.length > 0 ? key : undefined
}

/**
 * Svix (and the Standard Webhooks spec it follows): headers `svix-id`, `svix-timestamp`, `svix-signature`
 * (or the white-labelled `webhook-*` names); signed content `<id>.<timestamp>.<body>`; key = base64 decoding
 * of the secret after `whsec_`; the signature header is a space-separated list of `v1,<base64 HMAC-SHA256>`,
 * any one matching is enough.
 * https://docs.svix.com/receiving/verifying-payloads/how-manual
 */
export function verifySvix (input: WebhookInput, toleranceSeconds = SVIX_TOLERANCE_SECONDS): WebhookResult {
  const prefix = headerValue(input.headers, 'svix-id') !== undefined ? 'svix-' : 'webhook-'
  const id = requireHeader(input.headers, `${prefix}id`)
  if (isResult(id)) return id
  const ts = requireHeader(input.headers, `${prefix}timestamp`)
  if (isResult(ts)) return ts
  const sigs = requireHeader(input.headers, `${prefix}signature`)
  if (isResult(sigs)) return sigs
  const key = svixKey(input.secret)
  if (key === undefined) return fail('secret is not whsec_<base64>')
  const expected = hmac('sha256', key, `${id}.${ts}.`, input.body)
  let matched = false
  for (const entry of sigs.split(' ')) {
    const comma = entry.indexOf(',')
    if (comma < 0 || entry.slice(0, comma) !== 'v1') continue
    const b64 = entry.slice(comma + 1)
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) continue
    if (safeEqualBytes(expected, Buffer.from(b64, 'base64'))) matched = true
  }
  if (!matched) return fail('signature mismatch')
  return checkTimestamp(ts, input.now, toleranceSeconds)
}
