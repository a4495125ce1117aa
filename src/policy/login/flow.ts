// The login in front of an endpoint that the oauth and openid-connect actions share: an authorization-code
// flow with state, nonce and PKCE, then a signed session cookie. The two actions differ only in their
// IdentitySource (where to send the visitor, how a code becomes an identity).
//
//   unauthenticated request  -> 302 to the provider; a signed login cookie holds state, nonce, PKCE verifier
//   GET /porthole/oauth/callback?code&state -> code exchanged, identity checked (allow_emails, allow_domains),
//                              session cookie set, 302 back to where the visitor was going
//   GET /ngrok/login, /ngrok/logout (ngrok's special paths, with ?auth_id= and ?redirect_path=)
//   a valid session          -> the request goes on, with actions.ngrok.<oauth|oidc>.* set for later rules and
//                              ngrok-auth-user-* headers for the upstream
// No per-visitor state is kept in the gateway: both cookies carry their own (signed) state.
import { createHash, randomBytes } from 'node:crypto'
import { PortholeError } from '../../core/errors.js'
import { actionResults } from '../cel.js'
import type { Denial, HttpRequestContext, RequestResult, RequestStep } from '../compiled.js'
import { ProviderError } from './provider-http.js'
import { checkSession, cookieValues, deriveKey, seal, setCookie, unseal, withoutCookies, type Session, type SessionLimits } from './signed-cookie.js'

export const CALLBACK_PATH = '/porthole/oauth/callback'
export const LOGIN_PATH = '/ngrok/login'
export const LOGOUT_PATH = '/ngrok/logout'
/** How long a visitor has to finish logging in at the provider. */
export const LOGIN_TTL_MS = 10 * 60_000

export interface Identity {
  /** The provider's user id. */
  readonly sub: string
  /** '' when the provider gives none (or an unverified one). */
  readonly email: string
  readonly name: string
}

export interface IdentitySource {
  readonly defaultScopes: readonly string[]
  authorizeUrl (params: Record<string, string>): string | Promise<string>
  identify (login: { code: string, verifier: string, nonce: string, redirectUri: string }): Promise<Identity>
}

export interface LoginSpec {
  /** Result variables go to actions.ngrok.<kind>. */
  readonly kind: 'oauth' | 'oidc'
  /** The issuer URL or provider name. The cookie keys are bound to it, the client id and secret and the auth id. */
  readonly providerId: string
  readonly clientId: string
  readonly clientSecret: string
  readonly source: IdentitySource
  readonly scopes: readonly string[]
  readonly authzParams: Readonly<Record<string, string>>
  readonly authId: string | undefined
  readonly limits: SessionLimits
  /** Lower-case addresses and domains; both empty: anyone the provider logs in. */
  readonly allowEmails: readonly string[]
  readonly allowDomains: readonly string[]
  readonly corsPreflight: boolean
  readonly cookieDomain: string | undefined
  readonly secret: Buffer
  readonly now: () => number
}

/** Upstream headers carrying the identity (ngrok's names); a client cannot send its own. */
const IDENTITY_HEADERS = ['ngrok-auth-user-email', 'ngrok-auth-user-id', 'ngrok-auth-user-name'] as const

interface LoginState {
  readonly state: string
  readonly nonce: string
  readonly verifier: string
  readonly redirect: string
  readonly host: string
  readonly expires: number
}

const random = (bytes: number): string => randomBytes(bytes).toString('base64url')

/** An identity value as a header value: printable ASCII, the rest percent-encoded (UTF-8). */
const headerValue = (text: string): string => text.replace(/[^\x20-\x7e]+/g, (run) => encodeURIComponent(run))

/** Identity values as the provider gave them, cut so that the cookie stays well under browsers' 4 KiB. */
const clip = (text: string): string => text.slice(0, 256)

/** Whether a request can follow a login: a page load (or a client that does not say, such as curl). Fetches
 *  and subresources get 401 instead: a redirect to the provider is of no use to them, and each would start
 *  a login of its own, replacing the page's login cookie. */
function isNavigation (ctx: HttpRequestContext): boolean {
  const mode = ctx.headers['sec-fetch-mode']
  return mode === undefined || mode === 'navigate'
}

/** Where relative paths are resolved to see whether they stay on the endpoint (never contacted). */
const DUMMY_ORIGIN = 'http://porthole.invalid'

/**
 * A local path to send the visitor back to: '/' for anything that could leave the endpoint. Browsers drop
 * tabs and newlines from URLs and read a backslash as a slash, so '/\t/evil' or '/\\evil' would be
 * '//evil' (another site) to them: control characters and backslashes are refused outright, and what is
 * left must resolve to the same origin; only its path, query and fragment are kept.
 */
export function safeRedirect (path: string | null | undefined): string {
  // eslint-disable-next-line no-control-regex
  if (typeof path !== 'string' || !path.startsWith('/') || /[\x00-\x1f\x7f\\]/.test(path)) return '/'
  let url: URL
  try {
    url = new URL(path, DUMMY_ORIGIN)
  } catch {
    return '/'
  }
  if (url.origin !== DUMMY_ORIGIN) return '/'
  const local = `${url.pathname}${url.search}${url.hash}`
  return local.startsWith('//') ? '/' : local
}

function asLoginState (payload: Record<string, unknown> | undefined): LoginState | undefined {
  if (!payload) return undefined
  const { state, nonce, verifier, redirect, host, expires } = payload
  if (typeof state !== 'string' || typeof nonce !== 'string' || typeof verifier !== 'string' || typeof redirect !== 'string' || typeof host !== 'string' || typeof expires !== 'number') return undefined
  return { state, nonce, verifier, redirect, host, expires }
}

function allowed (spec: LoginSpec, email: string): boolean {
  if (spec.allowEmails.length === 0 && spec.allowDomains.length === 0) return true
  const address = email.toLowerCase()
  const at = address.lastIndexOf('@')
  return address !== '' && (spec.allowEmails.includes(address) || (at > 0 && spec.allowDomains.includes(address.slice(at + 1))))
}

const redirectTo = (location: string, cookies: string[]): Denial => ({
  response: { status: 302, headers: { location, 'set-cookie': cookies, 'cache-control': 'no-store' }, body: '' },
})

export function compileLogin (spec: LoginSpec): RequestStep {
  const { now, limits } = spec
  const suffix = spec.authId === undefined ? '' : `_${spec.authId}`
  // Over https, and unless auth_cookie_domain shares it, the session cookie is a __Host- cookie: browsers take
  // such a name only with Secure, Path=/ and no Domain, so another endpoint under the same base domain cannot
  // plant one here with Domain=<base domain> (it could plant a plain-named cookie). Plain http has no such
  // protection: the name stays plain there.
  const plainSessionName = `porthole_session${suffix}`
  const hostSessionName = `__Host-${plainSessionName}`
  const loginName = `porthole_login${suffix}`
  const keyParts = [spec.kind, spec.providerId, spec.clientId, spec.clientSecret, spec.authId ?? '']
  const sessionKey = deriveKey(spec.secret, 'session', keyParts)
  const loginKey = deriveKey(spec.secret, 'login', keyParts)
  // The state parameter starts with this action's tag, so that with several login actions on one endpoint
  // (each with its auth_id) the callback finds its own.
  const tag = createHash('sha256').update(loginKey).digest('base64url').slice(0, 8)
  const scope = [...new Set([...spec.source.defaultScopes, ...spec.scopes])].join(' ')

  const secure = (ctx: HttpRequestContext): boolean => ctx.protocol === 'https'
  /** The cookie Domain, when auth_cookie_domain covers this host (else the cookie is the host's alone). */
  const domainFor = (ctx: HttpRequestContext): string | undefined => {
    const domain = spec.cookieDomain
    return domain !== undefined && (ctx.host === domain || ctx.host.endsWith(`.${domain}`)) ? domain : undefined
  }
  const sessionName = (ctx: HttpRequestContext): string => (secure(ctx) && domainFor(ctx) === undefined ? hostSessionName : plainSessionName)
  const sessionCookie = (ctx: HttpRequestContext, value: string, maxAgeMs: number): string =>
    setCookie(sessionName(ctx), value, { path: '/', secure: secure(ctx), maxAgeMs, domain: domainFor(ctx) })
  const loginCookie = (ctx: HttpRequestContext, value: string, maxAgeMs: number): string =>
    setCookie(loginName, value, { path: CALLBACK_PATH, secure: secure(ctx), maxAgeMs })
  /** The callback URL at the host the request was routed by (never the raw Host header: 'a.<domain>:@evil'
   *  routes to a, but would name evil), with the Host header's port when it is only a port. */
  const redirectUri = (ctx: HttpRequestContext): string => {
    const header = typeof ctx.headers.host === 'string' ? ctx.headers.host.toLowerCase() : ''
    const port = header.startsWith(ctx.host) ? /^\.?:(\d{1,5})$/.exec(header.slice(ctx.host.length))?.[1] : undefined
    const n = port === undefined ? 0 : Number(port)
    const shown = n > 0 && n < 65536 && n !== (secure(ctx) ? 443 : 80) ? `:${n}` : ''
    return `${ctx.protocol}://${ctx.host}${shown}${CALLBACK_PATH}`
  }

  async function startLogin (ctx: HttpRequestContext, redirect: string, force: boolean): Promise<Denial> {
    const login: LoginState = { state: `${tag}.${random(16)}`, nonce: random(16), verifier: random(32), redirect: safeRedirect(redirect), host: ctx.host, expires: now() + LOGIN_TTL_MS }
    let location
    try {
      location = await spec.source.authorizeUrl({
        ...spec.authzParams,
        response_type: 'code',
        client_id: spec.clientId,
        redirect_uri: redirectUri(ctx),
        scope,
        state: login.state,
        code_challenge: createHash('sha256').update(login.verifier).digest('base64url'),
        code_challenge_method: 'S256',
        ...(spec.kind === 'oidc' ? { nonce: login.nonce } : {}),
        ...(force && spec.kind === 'oidc' ? { prompt: 'login' } : {}),
      })
    } catch (error) {
      return { code: 'PH_3108', detail: (error as Error).message }
    }
    return redirectTo(location, [loginCookie(ctx, seal(loginKey, login), LOGIN_TTL_MS)])
  }

  async function callback (ctx: HttpRequestContext, params: URLSearchParams): Promise<Denial> {
    const clearLogin = loginCookie(ctx, '', 0)
    const state = params.get('state')
    const t = now()
    const login = cookieValues(ctx.headers.cookie, loginName).map((value) => asLoginState(unseal(loginKey, value))).find((l) => l?.state === state)
    if (login === undefined || t >= login.expires || login.host !== ctx.host) return { code: 'PH_3107', headers: { 'set-cookie': clearLogin } }
    const refused = params.get('error')
    if (refused !== null) return { code: 'PH_3110', detail: refused.replace(/[^\w.-]/g, '').slice(0, 64), headers: { 'set-cookie': clearLogin } }
    const code = params.get('code')
    if (code === null || code === '') return { code: 'PH_3107', headers: { 'set-cookie': clearLogin } }
    let identity: Identity
    try {
      identity = await spec.source.identify({ code, verifier: login.verifier, nonce: login.nonce, redirectUri: redirectUri(ctx) })
    } catch (error) {
      if (!(error instanceof ProviderError)) throw error
      return { code: 'PH_3108', detail: error.message, headers: { 'set-cookie': clearLogin } }
    }
    if (!allowed(spec, identity.email)) return { code: 'PH_3109', detail: identity.email || 'no email', headers: { 'set-cookie': clearLogin } }
    const done = now()
    const session: Session = { sid: random(16), host: ctx.host, sub: clip(identity.sub), email: clip(identity.email), name: clip(identity.name), loginAt: done, seenAt: done }
    return redirectTo(login.redirect, [sessionCookie(ctx, seal(sessionKey, session), limits.maxMs), clearLogin])
  }

  function logout (ctx: HttpRequestContext, params: URLSearchParams): Denial {
    const cookie = sessionCookie(ctx, '', 0)
    const to = params.get('redirect_path')
    if (to !== null) return redirectTo(safeRedirect(to), [cookie])
    return { response: { status: 200, headers: { 'set-cookie': cookie, 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' }, body: 'Logged out.\n' } }
  }

  /** The request goes on as this session's: results for later rules, identity headers, no gateway cookies upstream. */
  function admit (ctx: HttpRequestContext, session: Session, renew: boolean): undefined {
    if (renew) (ctx.setCookies ??= []).push(sessionCookie(ctx, seal(sessionKey, { ...session, seenAt: now() }), session.loginAt + limits.maxMs - now()))
    const cookie = withoutCookies(ctx.headers.cookie, [plainSessionName, hostSessionName, loginName])
    if (cookie === undefined) delete ctx.headers.cookie
    else ctx.headers.cookie = cookie
    ctx.headers['ngrok-auth-user-email'] = headerValue(session.email)
    ctx.headers['ngrok-auth-user-id'] = headerValue(session.sub)
    ctx.headers['ngrok-auth-user-name'] = headerValue(session.name)
    actionResults(ctx).actions.ngrok[spec.kind] = {
      identity: {
        id: createHash('sha256').update(`${spec.providerId}\0${session.sub}`).digest('base64url').slice(0, 22),
        email: session.email,
        name: session.name,
        provider_user_id: session.sub,
        current_session_id: session.sid,
      },
      expires_at: new Date(Math.min(session.loginAt + limits.maxMs, now() + limits.idleMs)).toISOString(),
      session_timed_out: false,
      session_max_duration_reached: false,
      userinfo_refreshed: false,
    }
    return undefined
  }

  const forThisAction = (params: URLSearchParams): boolean => (params.get('auth_id') ?? undefined) === spec.authId

  return (ctx): RequestResult => {
    for (const name of IDENTITY_HEADERS) delete ctx.headers[name]
    const q = ctx.path.indexOf('?')
    const path = q === -1 ? ctx.path : ctx.path.slice(0, q)
    if (path === CALLBACK_PATH || path === LOGIN_PATH || path === LOGOUT_PATH) {
      const params = new URLSearchParams(q === -1 ? '' : ctx.path.slice(q + 1))
      if (path === CALLBACK_PATH && params.get('state')?.startsWith(`${tag}.`)) return callback(ctx, params)
      if (path === LOGIN_PATH && forThisAction(params)) return startLogin(ctx, params.get('redirect_path') ?? '/', true)
      if (path === LOGOUT_PATH && forThisAction(params)) return logout(ctx, params)
    }
    if (spec.corsPreflight && ctx.method === 'OPTIONS' && ctx.headers['access-control-request-method'] !== undefined) return undefined
    const t = now()
    for (const value of cookieValues(ctx.headers.cookie, sessionName(ctx))) {
      const check = checkSession(sessionKey, value, t, limits, ctx.host, spec.cookieDomain)
      if (check.ok) {
        if (!allowed(spec, check.session.email)) return { code: 'PH_3109', detail: check.session.email || 'no email', headers: { 'set-cookie': sessionCookie(ctx, '', 0) } }
        return admit(ctx, check.session, check.renew)
      }
    }
    if (!isNavigation(ctx)) return { code: 'PH_3111' }
    // Only a page load can come back after the login: other methods return to / afterwards.
    return startLogin(ctx, ctx.method === 'GET' || ctx.method === 'HEAD' ? ctx.path : '/', false)
  }
}

/** Checks an auth_id (it names cookies and appears in URLs). */
export function checkAuthId (authId: string | undefined): string | undefined {
  if (authId !== undefined && !/^[A-Za-z0-9_-]{1,64}$/.test(authId)) throw new PortholeError('PH_1008', `config.auth_id: ${JSON.stringify(authId)} (letters, digits, _ and - only)`)
  return authId
}
