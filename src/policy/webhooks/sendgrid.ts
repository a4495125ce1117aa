// SendGrid (Twilio SendGrid) Signed Event Webhook: an ECDSA (P-256, SHA-256) signature, base64 of its DER
// encoding, in `X-Twilio-Email-Event-Webhook-Signature`, over `<X-Twilio-Email-Event-Webhook-Timestamp><body>`
// (plain concatenation). The "secret" is the verification key SendGrid shows: base64 of a DER SubjectPublicKeyInfo
// (a PEM block is accepted too).
// https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features
//
// SendGrid documents no timestamp tolerance. We apply 300 s (the Stripe/Slack/Svix figure) by default so the
// signed timestamp still protects against replays; options.toleranceSeconds overrides it.
import { type KeyObject, createPublicKey, verify } from 'node:crypto'
import { type WebhookInput, type WebhookResult, checkTimestamp, fail, isResult, requireHeader } from './common.js'

export const SENDGRID_TOLERANCE_SECONDS = 300

/** Parses the verification key; throws a plain Error when it is not an EC P-256 public key. */
export function sendgridPublicKey (secret: string): KeyObject {
  const text = secret.trim()
  let key: KeyObject
  try {
    key = text.includes('-----BEGIN')
      ? createPublicKey(text)
      : createPublicKey({ key: Buffer.from(text, 'base64'), format: 'der', type: 'spki' })
  } catch {
    throw new Error('not a public key (expected base64 DER or PEM)')
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new Error('not an ECDSA P-256 public key')
  }
  return key
}

export function verifySendgrid (input: WebhookInput, toleranceSeconds = SENDGRID_TOLERANCE_SECONDS): WebhookResult {
  const sig = requireHeader(input.headers, 'x-twilio-email-event-webhook-signature')
  if (isResult(sig)) return sig
  const ts = requireHeader(input.headers, 'x-twilio-email-event-webhook-timestamp')
  if (isResult(ts)) return ts
  let key: KeyObject
  try {
    key = sendgridPublicKey(input.secret)
  } catch (e) {
    return fail(`verification key: ${(e as Error).message}`)
  }
  let good = false
  try {
    good = verify('sha256', Buffer.concat([Buffer.from(ts, 'utf8'), input.body]), key, Buffer.from(sig, 'base64'))
  } catch {
    good = false
  }
  if (!good) return fail('signature mismatch')
  return checkTimestamp(ts, input.now, toleranceSeconds)
}
