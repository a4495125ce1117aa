// Signed cookies for the login actions (oauth, openid-connect): the session cookie and the short-lived
// login-state cookie. A value is base64url(JSON) "." base64url(HMAC-SHA256), so the gateway keeps no
// per-visitor state at all (nothing for strangers to grow) and nothing read from a cookie is trusted until
// its MAC checks. Each action signs with its own key, derived from the gateway's secret and the action's
// provider and client credentials: a cookie minted for one endpoint's login is worthless at another's.
import { createHmac, timingSafeEqual } from 'node:crypto'

const SEP = '.'

/** HMAC key for one login action and one purpose ('session' or 'login'). */
export function deriveKey (secret: Buffer, purpose: string, parts: readonly string[]): Buffer {
  const mac = createHmac('sha256', secret).update(`porthole login v1\0${purpose}`)
  for (const part of parts) mac.update(`\0${part.length}:${part}`)
  return mac.digest()
}

const mac = (key: Buffer, body: string): Buffer => createHmac('sha256', key).update(body).digest()

export function seal (key: Buffer, payload: object): string {
  const body = Buffer.from(JSON.stringify(payload)).toString('base64url')
  return `${body}${SEP}${mac(key, body).toString('base64url')}`
}

/** The payload of a value `seal` made with `key`, or undefined for anything else (forged, cut, garbage). */
export function unseal (key: Buffer, value: string | undefined): Record<string, unknown> | undefined {
  if (value === undefined || value.length > 4096) return undefined
  const dot = value.indexOf(SEP)
  if (dot <= 0) return undefined
  const body = value.slice(0, dot)
  const given = Buffer.from(value.slice(dot + 1), 'base64url')
  const expected = mac(key, body)
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined
  try {
    const payload: unknown = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'))
    return payload !== null && typeof payload === 'object' && !Array.isArray(payload) ? payload as Record<string, unknown> : undefined
  } catch {
    return undefined
  }
}

/** What a logged-in visitor carries. Times are ms since the epoch. */
export interface Session {
  /** Session id (random), shown as identity.current_session_id. */
  readonly sid: string
  /** The host the login happened at (the cookie is only good there, or under auth_cookie_domain). */
  readonly host: string
  readonly sub: string
  readonly email: string
  readonly name: string
  /** When the visitor logged in, and when the identity was last confirmed by the provider. */
  readonly loginAt: number
  /** Last request seen: refreshed (a new cookie) as the visitor keeps using the endpoint. */
  readonly seenAt: number
}

export interface SessionLimits {
  readonly idleMs: number
  readonly maxMs: number
  /** userinfo_refresh_interval: after this, the identity is confirmed again by a new login round. */
  readonly refreshMs: number
}

export type SessionCheck =
  | { readonly ok: true, readonly session: Session, readonly renew: boolean }
  | { readonly ok: false, readonly reason: 'missing' | 'idle' | 'max' | 'refresh' | 'host' }

const isString = (value: unknown): value is string => typeof value === 'string'
const isTime = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value)

function asSession (payload: Record<string, unknown> | undefined): Session | undefined {
  if (!payload) return undefined
  const { sid, host, sub, email, name, loginAt, seenAt } = payload
  if (!isString(sid) || !isString(host) || !isString(sub) || !isString(email) || !isString(name) || !isTime(loginAt) || !isTime(seenAt)) return undefined
  return { sid, host, sub, email, name, loginAt, seenAt }
}

/** `host` is the request's (no port); `domain` is auth_cookie_domain, if set. */
export function hostMatches (sessionHost: string, host: string, domain: string | undefined): boolean {
  if (sessionHost === host) return true
  if (domain === undefined) return false
  const suffix = `.${domain.replace(/^\./, '')}`
  return host.endsWith(suffix) && sessionHost.endsWith(suffix)
}

/**
 * Checks a session cookie at time `now`. A valid session is renewed (a fresh cookie with seenAt = now) once
 * a twentieth of the idle time (at most a minute) has passed since it was last written, so the idle clock
 * follows the visitor without a Set-Cookie on every response.
 */
export function checkSession (key: Buffer, value: string | undefined, now: number, limits: SessionLimits, host: string, domain?: string): SessionCheck {
  const session = asSession(unseal(key, value))
  if (!session) return { ok: false, reason: 'missing' }
  if (!hostMatches(session.host, host, domain)) return { ok: false, reason: 'host' }
  if (now - session.loginAt >= limits.maxMs) return { ok: false, reason: 'max' }
  if (now - session.seenAt >= limits.idleMs) return { ok: false, reason: 'idle' }
  if (now - session.loginAt >= limits.refreshMs) return { ok: false, reason: 'refresh' }
  return { ok: true, session, renew: now - session.seenAt >= Math.min(60_000, limits.idleMs / 20) }
}

/** A Set-Cookie value. `maxAgeMs` 0 deletes the cookie. */
export function setCookie (name: string, value: string, options: { path: string, secure: boolean, maxAgeMs: number, domain?: string }): string {
  let cookie = `${name}=${value}; Path=${options.path}; Max-Age=${Math.max(0, Math.floor(options.maxAgeMs / 1000))}; HttpOnly; SameSite=Lax`
  if (options.secure) cookie += '; Secure'
  if (options.domain !== undefined) cookie += `; Domain=${options.domain}`
  return cookie
}

/** The values of cookie `name` in the request's Cookie header(s). */
export function cookieValues (header: string | string[] | undefined, name: string): string[] {
  const values: string[] = []
  for (const line of header === undefined ? [] : Array.isArray(header) ? header : [header]) {
    for (const pair of line.split(';')) {
      const eq = pair.indexOf('=')
      if (eq > 0 && pair.slice(0, eq).trim() === name) values.push(pair.slice(eq + 1).trim())
    }
  }
  return values
}

/** The Cookie header without the named cookies (the gateway's own never go upstream); undefined if none is left. */
export function withoutCookies (header: string | string[] | undefined, names: readonly string[]): string | undefined {
  if (header === undefined) return undefined
  const kept: string[] = []
  for (const line of Array.isArray(header) ? header : [header]) {
    for (const pair of line.split(';')) {
      const eq = pair.indexOf('=')
      const name = (eq === -1 ? pair : pair.slice(0, eq)).trim()
      if (name !== '' && !names.includes(name)) kept.push(pair.trim())
    }
  }
  return kept.length > 0 ? kept.join('; ') : undefined
}
