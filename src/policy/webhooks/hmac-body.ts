// Providers whose signature covers the body alone (github, shopify, the generic HMAC provider) and gitlab,
// which sends its secret token verbatim. None of these carries a signed timestamp, so none can refuse a replay.
import {
  type DigestEncoding, type HmacAlgorithm, type WebhookInput, type WebhookResult,
  OK, fail, hmac, isResult, requireHeader, safeEqual,
} from './common.js'

/**
 * GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`.
 * https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
 */
export function verifyGithub (input: WebhookInput): WebhookResult {
  const sig = requireHeader(input.headers, 'x-hub-signature-256')
  if (isResult(sig)) return sig
  if (!sig.startsWith('sha256=')) return fail('x-hub-signature-256 does not start with sha256=')
  const expected = 'sha256=' + hmac('sha256', input.secret, input.body).toString('hex')
  return safeEqual(expected, sig.toLowerCase()) ? OK : fail('signature mismatch')
}

/**
 * GitLab: the webhook's secret token is sent as is in `X-Gitlab-Token`; there is no signature over the body.
 * https://docs.gitlab.com/user/project/integrations/webhooks/
 */
export function verifyGitlab (input: WebhookInput): WebhookResult {
  const token = requireHeader(input.headers, 'x-gitlab-token')
  if (isResult(token)) return token
  return safeEqual(input.secret, token) ? OK : fail('token mismatch')
}

/**
 * Shopify: `X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256(client secret, body)>`.
 * https://shopify.dev/docs/apps/build/webhooks/subscribe/https#step-5-verify-the-webhook
 */
export function verifyShopify (input: WebhookInput): WebhookResult {
  const sig = requireHeader(input.headers, 'x-shopify-hmac-sha256')
  if (isResult(sig)) return sig
  const expected = hmac('sha256', input.secret, input.body).toString('base64')
  return safeEqual(expected, sig) ? OK : fail('signature mismatch')
}

export interface GenericHmacConfig {
  algorithm: HmacAlgorithm
  header: string
  encoding: DigestEncoding
  prefix: string
}

/** Generic: `<header>: <prefix><encoding of HMAC-<algorithm>(secret, body)>`. */
export function verifyGenericHmac (input: WebhookInput, config: GenericHmacConfig): WebhookResult {
  const sig = requireHeader(input.headers, config.header.toLowerCase())
  if (isResult(sig)) return sig
  if (!sig.startsWith(config.prefix)) return fail(`${config.header} does not start with ${JSON.stringify(config.prefix)}`)
  const got = sig.slice(config.prefix.length)
  const digest = hmac(config.algorithm, input.secret, input.body)
  const expected = digest.toString(config.encoding)
  // Hex is case-insensitive; base64 is compared as sent (but tolerate a sender that drops the padding).
  if (config.encoding === 'hex') return safeEqual(expected, got.toLowerCase()) ? OK : fail('signature mismatch')
  if (config.encoding === 'base64' && !got.endsWith('=') && expected.endsWith('=')) {
    return safeEqual(expected.replace(/=+$/, ''), got) ? OK : fail('signature mismatch')
  }
  return safeEqual(expected, got) ? OK : fail('signature mismatch')
}
