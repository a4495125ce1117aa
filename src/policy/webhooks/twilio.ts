// Twilio: `X-Twilio-Signature: <base64 HMAC-SHA1(auth token, URL + sorted POST parameters)>`.
// https://www.twilio.com/docs/usage/webhooks/webhooks-security (formerly /docs/usage/security#validating-requests)
//
// The string to sign is the full URL Twilio requested (with its query string), followed, for a form-encoded
// POST, by every body parameter sorted by name (Unix-style, case-sensitive), each written as name then value
// with no delimiters. For a JSON body Twilio adds a `bodySHA256` query parameter (hex SHA-256 of the body) and
// signs the URL alone. Like Twilio's own helper, the URL is also tried with the default port added or the
// explicit port removed, because proxies disagree on whether to keep it. Twilio signs no timestamp.
import { createHash } from 'node:crypto'
import {
  type WebhookInput, type WebhookResult,
  OK, fail, headerValue, hmac, isResult, requireHeader, safeEqual,
} from './common.js'

/** The URL as given, then with its port toggled (added when absent, removed when present). */
function urlVariants (url: string): string[] {
  const m = /^([a-zA-Z][a-zA-Z0-9+.-]*:\/\/)([^/?#]*)(.*)$/s.exec(url)
  if (m === null) return [url]
  const [, scheme, authority, rest] = m as unknown as [string, string, string, string]
  const portMatch = /:(\d+)$/.exec(authority)
  if (portMatch !== null && !authority.endsWith(']')) {
    return [url, scheme + authority.slice(0, -portMatch[0].length) + rest]
  }
  const lower = scheme.toLowerCase()
  const port = lower === 'https://' ? 443 : lower === 'http://' ? 80 : undefined
  return port === undefined ? [url] : [url, `${scheme}${authority}:${port}${rest}`]
}

/** Form parameters written the way Twilio signs them: names sorted, repeated names' values sorted. */
function sortedParams (body: Buffer): string {
  const grouped = new Map<string, string[]>()
  for (const [k, v] of new URLSearchParams(body.toString('utf8'))) {
    const list = grouped.get(k)
    if (list === undefined) grouped.set(k, [v])
    else list.push(v)
  }
  let out = ''
  const byCodeUnit = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0)
  for (const k of [...grouped.keys()].sort(byCodeUnit)) {
    for (const v of (grouped.get(k) ?? []).sort(byCodeUnit)) out += k + v
  }
  return out
}

function queryParam (url: string, name: string): string | undefined {
  const q = url.indexOf('?')
  if (q < 0) return undefined
  const hash = url.indexOf('#', q)
  return new URLSearchParams(url.slice(q + 1, hash < 0 ? undefined : hash)).get(name) ?? undefined
}

export function verifyTwilio (input: WebhookInput): WebhookResult {
  const sig = requireHeader(input.headers, 'x-twilio-signature')
  if (isResult(sig)) return sig
  const bodySha = queryParam(input.url, 'bodySHA256')
  let params = ''
  if (bodySha !== undefined) {
    const actual = createHash('sha256').update(input.body).digest('hex')
    if (!safeEqual(actual, bodySha.toLowerCase())) return fail('bodySHA256 does not match the body')
  } else if (input.method.toUpperCase() === 'POST') {
    const ct = headerValue(input.headers, 'content-type')
    if (typeof ct === 'string' && ct.toLowerCase().startsWith('application/x-www-form-urlencoded')) {
      params = sortedParams(input.body)
    }
  }
  let matched = false
  for (const url of urlVariants(input.url)) {
    const expected = hmac('sha1', input.secret, url, params).toString('base64')
    if (safeEqual(expected, sig)) matched = true
  }
  return matched ? OK : fail('signature mismatch')
}
