// The login actions without a network: signed cookies and session limits over a fake clock, and the whole
// login flow (redirect, callback, session, renewal, expiry, logout, allow lists) against a fake identity
// source. The real providers are in test/e2e/oidc.test.ts.
import { mkdtempSync, statSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { loadOrCreateSecret } from '../../src/certs/key-files.js'
import { PortholeError } from '../../src/core/errors.js'
import { compilePolicy } from '../../src/policy/compile.js'
import type { CompileOptions, Denial, HttpRequestContext, RequestStep } from '../../src/policy/compiled.js'
import { CALLBACK_PATH, compileLogin, safeRedirect, type Identity, type IdentitySource } from '../../src/policy/login/flow.js'
import { loginSpec } from '../../src/policy/login/config.js'
import { oauthSource, providerEntry } from '../../src/policy/login/oauth-providers.js'
import { openIdSource } from '../../src/policy/login/openid.js'
import { ProviderError } from '../../src/policy/login/provider-http.js'
import { checkSession, cookieValues, deriveKey, seal, setCookie, unseal, withoutCookies, type Session } from '../../src/policy/login/signed-cookie.js'

const SECRET = Buffer.alloc(32, 7)
const MINUTE = 60_000
const HOUR = 60 * MINUTE

function fakeClock (start = 1_700_000_000_000) {
  let t = start
  return { now: () => t, advance: (ms: number) => { t += ms } }
}

describe('signed cookies', () => {
  const key = deriveKey(SECRET, 'session', ['oidc', 'https://idp.test', 'client', 'secret', ''])

  it('open only with the key they were sealed with, and only untouched', () => {
    const value = seal(key, { email: 'ann@example.com' })
    expect(unseal(key, value)).toEqual({ email: 'ann@example.com' })
    const [body, mac] = value.split('.') as [string, string]
    const otherBody = Buffer.from(JSON.stringify({ email: 'boss@example.com' })).toString('base64url')
    for (const bad of [`${otherBody}.${mac}`, `${body}.${mac.slice(1)}`, `${body}.`, body, '', 'a.b.c', `${body}.${mac}x`.repeat(400)]) {
      expect(unseal(key, bad), bad.slice(0, 40)).toBeUndefined()
    }
    expect(unseal(deriveKey(SECRET, 'login', ['oidc', 'https://idp.test', 'client', 'secret', '']), value)).toBeUndefined()
    expect(unseal(deriveKey(Buffer.alloc(32, 8), 'session', ['oidc', 'https://idp.test', 'client', 'secret', '']), value)).toBeUndefined()
  })

  it('derive a different key for each action (part boundaries count)', () => {
    const keys = [
      deriveKey(SECRET, 'session', ['oauth', 'github', 'id', 'secret', '']),
      deriveKey(SECRET, 'session', ['oauth', 'github', 'id', 'other', '']),
      deriveKey(SECRET, 'session', ['oauth', 'githu', 'bid', 'secret', '']),
      deriveKey(SECRET, 'session', ['oauth', 'github', 'id', 'secret', 'team']),
    ]
    expect(new Set(keys.map((k) => k.toString('hex'))).size).toBe(keys.length)
  })

  it('are set HttpOnly and SameSite=Lax, Secure over https, and read back from Cookie headers', () => {
    expect(setCookie('s', 'v', { path: '/', secure: true, maxAgeMs: 90_500 })).toBe('s=v; Path=/; Max-Age=90; HttpOnly; SameSite=Lax; Secure')
    expect(setCookie('s', '', { path: '/x', secure: false, maxAgeMs: -5, domain: 'example.com' })).toBe('s=; Path=/x; Max-Age=0; HttpOnly; SameSite=Lax; Domain=example.com')
    expect(cookieValues(['a=1; s=two', 's=three'], 's')).toEqual(['two', 'three'])
    expect(withoutCookies('a=1; porthole_session=x; b=2', ['porthole_session'])).toBe('a=1; b=2')
    expect(withoutCookies('porthole_session=x', ['porthole_session'])).toBeUndefined()
  })
})

describe('session limits (fake clock)', () => {
  const key = deriveKey(SECRET, 'session', ['x'])
  const limits = { idleMs: 30 * MINUTE, maxMs: 8 * HOUR, refreshMs: 8 * HOUR }
  const t0 = 1_700_000_000_000
  const session: Session = { sid: 's1', host: 'app.example.com', sub: 'u1', email: 'ann@example.com', name: 'Ann', loginAt: t0, seenAt: t0 }
  const cookie = (over: Partial<Session> = {}): string => seal(key, { ...session, ...over })

  it('accepts a fresh session and asks for renewal after a twentieth of the idle time, a minute at most', () => {
    expect(checkSession(key, cookie(), t0, limits, 'app.example.com')).toEqual({ ok: true, session, renew: false })
    expect(checkSession(key, cookie(), t0 + 59_000, limits, 'app.example.com')).toMatchObject({ ok: true, renew: false })
    expect(checkSession(key, cookie(), t0 + 60_000, limits, 'app.example.com')).toMatchObject({ ok: true, renew: true })
    const short = { ...limits, idleMs: 10 * MINUTE }
    expect(checkSession(key, cookie(), t0 + 29_000, short, 'app.example.com')).toMatchObject({ ok: true, renew: false })
    expect(checkSession(key, cookie(), t0 + 30_000, short, 'app.example.com')).toMatchObject({ ok: true, renew: true })
  })

  it('ends a session idle too long, even one the visitor keeps renewing past its maximum', () => {
    expect(checkSession(key, cookie(), t0 + 30 * MINUTE, limits, 'app.example.com')).toEqual({ ok: false, reason: 'idle' })
    // Renewed every 20 minutes: alive until the maximum, then over however active.
    expect(checkSession(key, cookie({ seenAt: t0 + 7 * HOUR }), t0 + 7 * HOUR + 20 * MINUTE, limits, 'app.example.com')).toMatchObject({ ok: true })
    expect(checkSession(key, cookie({ seenAt: t0 + 8 * HOUR - MINUTE }), t0 + 8 * HOUR, limits, 'app.example.com')).toEqual({ ok: false, reason: 'max' })
    expect(checkSession(key, cookie(), t0 + HOUR, { ...limits, refreshMs: HOUR }, 'app.example.com')).toMatchObject({ ok: false })
    expect(checkSession(key, cookie({ seenAt: t0 + 59 * MINUTE }), t0 + HOUR, { ...limits, refreshMs: HOUR }, 'app.example.com')).toEqual({ ok: false, reason: 'refresh' })
  })

  it('is good only at the host it was made at, or under auth_cookie_domain', () => {
    expect(checkSession(key, cookie(), t0, limits, 'other.example.com')).toEqual({ ok: false, reason: 'host' })
    expect(checkSession(key, cookie(), t0, limits, 'other.example.com', 'example.com')).toMatchObject({ ok: true })
    expect(checkSession(key, cookie(), t0, limits, 'example.com.evil.test', 'example.com')).toEqual({ ok: false, reason: 'host' })
    expect(checkSession(key, undefined, t0, limits, 'app.example.com')).toEqual({ ok: false, reason: 'missing' })
  })
})

/** A provider that knows one code per user. */
function fakeSource (users: Record<string, Identity>, fail?: Error): IdentitySource & { calls: { code: string, verifier: string, nonce: string, redirectUri: string }[] } {
  const calls: { code: string, verifier: string, nonce: string, redirectUri: string }[] = []
  return {
    calls,
    defaultScopes: ['openid', 'email'],
    authorizeUrl: (params) => `https://idp.test/authorize?${new URLSearchParams(params)}`,
    async identify (login) {
      calls.push(login)
      if (fail) throw fail
      const user = users[login.code]
      if (!user) throw new ProviderError('token endpoint answered 400 invalid_grant')
      return user
    },
  }
}

function request (over: Partial<HttpRequestContext> = {}): HttpRequestContext {
  return {
    clientIp: '10.1.2.3', clientPort: 5555, serverPort: 443, endpointHost: 'app.example.com', protocol: 'https',
    method: 'GET', path: '/', host: 'app.example.com', headers: { host: 'app.example.com' }, ...over,
  }
}

type Redirect = { response: { status: number, headers: Record<string, string | string[]>, body: string } }
const asRedirect = (denial: Denial | undefined): Redirect => {
  if (!denial || !('response' in denial)) throw new Error(`not a response: ${JSON.stringify(denial)}`)
  return denial as Redirect
}
const cookiesOf = (denial: Redirect): string[] => ([] as string[]).concat(denial.response.headers['set-cookie'] ?? [])
/** name=value of a Set-Cookie line, as a browser sends it back. */
const pairOf = (line: string): string => line.split(';')[0]!

const USERS: Record<string, Identity> = {
  ann: { sub: 'u-ann', email: 'Ann@Example.com', name: 'Ann' },
  bob: { sub: 'u-bob', email: 'bob@elsewhere.test', name: 'Bob' },
  eve: { sub: 'u-eve', email: '', name: 'Eve' },
  zoe: { sub: 'u-zoe', email: 'zoe@example.com', name: 'Zoë 名\r\nX-Evil: 1' },
}

function makeLogin (config: Record<string, unknown> = {}, options: { clock?: ReturnType<typeof fakeClock>, source?: IdentitySource, secret?: Buffer } = {}) {
  const clock = options.clock ?? fakeClock()
  const source = options.source ?? fakeSource(USERS)
  const spec = loginSpec('oidc', 'https://idp.test', { client_id: 'cid', client_secret: 'csecret', ...config } as never, source, { now: clock.now, sessionSecret: options.secret ?? SECRET })
  const step = compileLogin(spec)
  return { clock, source, step }
}

/** Runs the visitor's request through the step; a browser's cookies go in `jar`. */
async function send (step: RequestStep, path: string, jar: string[], over: Partial<HttpRequestContext> = {}): Promise<{ denial: Denial | undefined, ctx: HttpRequestContext }> {
  const ctx = request({ path, headers: { host: 'app.example.com', ...(jar.length > 0 ? { cookie: jar.join('; ') } : {}) }, ...over })
  return { denial: await step(ctx), ctx }
}

/** Logs `user` in: first request, then the callback with the provider's code. Returns the session cookie. */
async function logIn (step: RequestStep, user: string, path = '/start?x=1'): Promise<{ jar: string[], callback: Denial | undefined, authorize: URL }> {
  const first = asRedirect((await send(step, path, [])).denial)
  const authorize = new URL(String(first.response.headers.location))
  const login = cookiesOf(first).map(pairOf)
  const { denial } = await send(step, `${CALLBACK_PATH}?code=${user}&state=${authorize.searchParams.get('state')}`, login)
  const jar = denial && 'response' in denial ? cookiesOf(asRedirect(denial)).filter((c) => !/Max-Age=0/.test(c)).map(pairOf) : []
  return { jar, callback: denial, authorize }
}

describe('the login flow', () => {
  it('redirects with state, nonce and PKCE, exchanges the code once back, and lets the session in', async () => {
    const { step, source } = makeLogin({ scopes: ['groups'], authz_url_params: { hd: 'example.com' } })
    const { jar, callback, authorize } = await logIn(step, 'ann')
    expect(authorize.searchParams.get('redirect_uri')).toBe(`https://app.example.com${CALLBACK_PATH}`)
    expect(authorize.searchParams.get('scope')).toBe('openid email groups')
    expect(authorize.searchParams.get('hd')).toBe('example.com')
    const call = (source as ReturnType<typeof fakeSource>).calls[0]!
    expect(call.nonce).toBe(authorize.searchParams.get('nonce'))
    // The challenge the provider saw is the S256 of the verifier the callback sent.
    const { createHash } = await import('node:crypto')
    expect(createHash('sha256').update(call.verifier).digest('base64url')).toBe(authorize.searchParams.get('code_challenge'))
    expect(asRedirect(callback).response.headers.location).toBe('/start?x=1')
    expect(cookiesOf(asRedirect(callback))[0]).toMatch(/^__Host-porthole_session=[^;]+; Path=\/; Max-Age=86400; HttpOnly; SameSite=Lax; Secure$/)

    const { denial, ctx } = await send(step, '/page', [...jar, 'app=1'], { headers: { host: 'app.example.com', cookie: [...jar, 'app=1'].join('; '), 'ngrok-auth-user-email': 'forged@example.com' } })
    expect(denial).toBeUndefined()
    expect(ctx.headers['ngrok-auth-user-email']).toBe('Ann@Example.com')
    expect(ctx.headers.cookie).toBe('app=1')
    expect(ctx.results?.actions.ngrok.oidc).toMatchObject({ identity: { email: 'Ann@Example.com', name: 'Ann', provider_user_id: 'u-ann' }, session_timed_out: false })
  })

  it('refuses callbacks without the login cookie, with another state, or after ten minutes (PH_3107)', async () => {
    const { step, clock } = makeLogin()
    const first = asRedirect((await send(step, '/', [])).denial)
    const state = new URL(String(first.response.headers.location)).searchParams.get('state')!
    const login = cookiesOf(first).map(pairOf)
    const code = (d: Denial | undefined): string | undefined => (d && 'code' in d ? d.code : undefined)
    expect(code((await send(step, `${CALLBACK_PATH}?code=ann&state=${state}`, [])).denial)).toBe('PH_3107')
    const other = new URL(String(asRedirect((await send(step, '/', [])).denial).response.headers.location)).searchParams.get('state')!
    expect(code((await send(step, `${CALLBACK_PATH}?code=ann&state=${other}`, login)).denial)).toBe('PH_3107')
    expect(code((await send(step, `${CALLBACK_PATH}?code=ann&state=${state}`, login, { host: 'evil.example.com' })).denial)).toBe('PH_3107')
    clock.advance(10 * MINUTE)
    expect(code((await send(step, `${CALLBACK_PATH}?code=ann&state=${state}`, login)).denial)).toBe('PH_3107')
  })

  it('reports the provider refusing (PH_3110) and a failed exchange (PH_3108)', async () => {
    const { step } = makeLogin()
    const first = asRedirect((await send(step, '/', [])).denial)
    const state = new URL(String(first.response.headers.location)).searchParams.get('state')!
    const login = cookiesOf(first).map(pairOf)
    expect((await send(step, `${CALLBACK_PATH}?error=access_denied&state=${state}`, login)).denial).toMatchObject({ code: 'PH_3110', detail: 'access_denied' })
    expect((await send(step, `${CALLBACK_PATH}?code=nobody&state=${state}`, login)).denial).toMatchObject({ code: 'PH_3108', detail: 'token endpoint answered 400 invalid_grant' })
  })

  it('lets in only allowed emails and domains, case-insensitively (PH_3109), also for sessions made before', async () => {
    const { step } = makeLogin({ allow_domains: ['example.com'], allow_emails: ['bob@elsewhere.test'] })
    expect((await logIn(step, 'ann')).jar).toHaveLength(1)
    expect((await logIn(step, 'bob')).jar).toHaveLength(1)
    expect((await logIn(step, 'eve')).callback).toMatchObject({ code: 'PH_3109', detail: 'no email' })
    const annOnly = makeLogin({ allow_emails: ['ann@example.com'] })
    expect((await logIn(annOnly.step, 'bob')).callback).toMatchObject({ code: 'PH_3109', detail: 'bob@elsewhere.test' })
  })

  it('renews the session cookie as it is used, ends it when idle or at its maximum', async () => {
    const { step, clock } = makeLogin({ idle_session_duration: '10m', max_session_duration: '1h' })
    let { jar } = await logIn(step, 'ann')
    clock.advance(8 * MINUTE)
    const used = await send(step, '/', jar)
    expect(used.denial).toBeUndefined()
    expect(used.ctx.setCookies).toHaveLength(1) // the edge adds it to the upstream's response
    jar = used.ctx.setCookies!.map(pairOf)
    clock.advance(8 * MINUTE) // 16 minutes after the login, 8 after the renewal
    expect((await send(step, '/', jar)).denial).toBeUndefined()
    clock.advance(10 * MINUTE) // 10 minutes without a request
    expect(asRedirect((await send(step, '/', jar)).denial).response.status).toBe(302)

    let session = (await logIn(step, 'ann')).jar
    for (let i = 1; i <= 6; i++) { // a request every 9 minutes: 54 minutes after the login, still in
      clock.advance(9 * MINUTE)
      const { denial, ctx } = await send(step, '/', session)
      expect(denial, `minute ${9 * i}`).toBeUndefined()
      session = ctx.setCookies?.map(pairOf) ?? session
    }
    clock.advance(7 * MINUTE) // 61 minutes after the login, 7 after the last request
    expect(asRedirect((await send(step, '/', session)).denial).response.status).toBe(302)
  })

  it('keeps sessions across a restart with the same secret, not with another', async () => {
    const clock = fakeClock()
    const { jar } = await logIn(makeLogin({}, { clock }).step, 'ann')
    expect((await send(makeLogin({}, { clock }).step, '/', jar)).denial).toBeUndefined()
    expect((await send(makeLogin({}, { clock, secret: Buffer.alloc(32, 9) }).step, '/', jar)).denial).toBeDefined()
    expect((await send(makeLogin({ client_secret: 'rotated' }, { clock }).step, '/', jar)).denial).toBeDefined()
  })

  it('sends a POST back to / after the login, and never off the endpoint', async () => {
    const { step } = makeLogin()
    expect(asRedirect((await logIn(step, 'ann', '//evil.test/x')).callback).response.headers.location).toBe('/')
    const post = asRedirect((await send(step, '/api/items', [], { method: 'POST' })).denial)
    const state = new URL(String(post.response.headers.location)).searchParams.get('state')
    const back = await send(step, `${CALLBACK_PATH}?code=ann&state=${state}`, cookiesOf(post).map(pairOf))
    expect(asRedirect(back.denial).response.headers.location).toBe('/')
    for (const [path, safe] of [['/a?b=1', '/a?b=1'], ['//evil', '/'], ['/\\evil', '/'], ['https://evil', '/'], ['', '/'], [null, '/']] as const) {
      expect(safeRedirect(path)).toBe(safe)
    }
  })

  it('serves /ngrok/login (forcing a new login) and /ngrok/logout for its auth_id only', async () => {
    const { step } = makeLogin({ auth_id: 'team' })
    const { jar } = await logIn(step, 'ann')
    expect(jar[0]).toMatch(/^__Host-porthole_session_team=/)
    const login = asRedirect((await send(step, '/ngrok/login?auth_id=team&redirect_path=/home', jar)).denial)
    expect(new URL(String(login.response.headers.location)).searchParams.get('prompt')).toBe('login')
    expect((await send(step, '/ngrok/logout?auth_id=other', jar)).denial).toBeUndefined() // another action's: goes on
    const out = asRedirect((await send(step, '/ngrok/logout?auth_id=team', jar)).denial)
    expect(out.response.status).toBe(200)
    expect(cookiesOf(out)[0]).toMatch(/^__Host-porthole_session_team=; Path=\/; Max-Age=0/)
  })

  it('answers fetches and subresources without a session 401 PH_3111, with no login started', async () => {
    const { step } = makeLogin()
    for (const mode of ['cors', 'no-cors', 'same-origin']) {
      const { denial } = await send(step, '/api/data', [], { headers: { host: 'app.example.com', 'sec-fetch-mode': mode } })
      expect(denial).toEqual({ code: 'PH_3111' })
    }
    expect(asRedirect((await send(step, '/', [], { headers: { host: 'app.example.com', 'sec-fetch-mode': 'navigate' } })).denial).response.status).toBe(302)
  })

  it('sends identity values upstream as printable ASCII, the rest percent-encoded', async () => {
    const { step } = makeLogin()
    const { jar } = await logIn(step, 'zoe')
    const { denial, ctx } = await send(step, '/', jar)
    expect(denial).toBeUndefined()
    expect(ctx.headers['ngrok-auth-user-name']).toBe('Zo%C3%AB %E5%90%8D%0D%0AX-Evil: 1')
    expect(ctx.results?.actions.ngrok.oidc).toMatchObject({ identity: { name: 'Zoë 名\r\nX-Evil: 1' } })
  })

  it('lets CORS preflights through only with allow_cors_preflight', async () => {
    const preflight = { method: 'OPTIONS', headers: { host: 'app.example.com', 'access-control-request-method': 'POST' } }
    expect((await send(makeLogin().step, '/api', [], preflight)).denial).toBeDefined()
    expect((await send(makeLogin({ allow_cors_preflight: true }).step, '/api', [], preflight)).denial).toBeUndefined()
    expect((await send(makeLogin({ allow_cors_preflight: true }).step, '/api', [], { method: 'OPTIONS' })).denial).toBeDefined()
  })
})

describe('login flow regressions', () => {
  const location = (denial: Denial | undefined): string => String(asRedirect(denial).response.headers.location)

  it('open redirect: /ngrok/logout?redirect_path=/%09/evil.example stays on the endpoint (a tab is dropped by browsers)', async () => {
    const { step } = makeLogin()
    for (const bad of ['/%09/evil.example', '/%0a/evil.example', '/%0d/evil.example', '/%00/evil.example', '/%5C/evil.example', '/./%2F/x', '/.//evil.example', '/%2e//evil.example']) {
      const to = location((await send(step, `/ngrok/logout?redirect_path=${bad}`, [])).denial)
      expect(to, bad).not.toMatch(/^\/[\s\\/]|[\x00-\x1f\\]/)
      expect(new URL(to, 'https://app.example.com').host, bad).toBe('app.example.com')
    }
    expect(location((await send(step, '/ngrok/logout?redirect_path=/%09/evil.example', [])).denial)).toBe('/')
    expect(location((await send(step, '/ngrok/logout?redirect_path=/a/b%3Fc?d=1%26e#f', [])).denial)).toBe('/a/b?c?d=1&e#f')
  })

  it('open redirect: /ngrok/login?redirect_path=/%09/evil.example returns to / after the callback', async () => {
    const { step } = makeLogin()
    const login = asRedirect((await send(step, '/ngrok/login?redirect_path=/%09/evil.example', [])).denial)
    const state = new URL(String(login.response.headers.location)).searchParams.get('state')
    const back = await send(step, `${CALLBACK_PATH}?code=ann&state=${state}`, cookiesOf(login).map(pairOf))
    expect(location(back.denial)).toBe('/')
    // The first request's own path (a tab in it reaches the gateway percent-encoded or raw) is checked the same way.
    expect(location((await logIn(step, 'ann', '/\t/evil.example')).callback)).toBe('/')
  })

  it('safeRedirect keeps only local paths (control characters, backslashes, dot segments to //)', () => {
    for (const [path, safe] of [
      ['/a?b=1', '/a?b=1'], ['/a/../b', '/b'], ['/x#top', '/x#top'], ['/\t/evil.example', '/'], ['/\n/evil', '/'], ['/\u007f/evil', '/'],
      ['/.//evil', '/'], ['/./\\evil', '/'], ['/x\\y', '/'], ['/ /evil', '/%20/evil'],
    ] as const) {
      expect(safeRedirect(path), JSON.stringify(path)).toBe(safe)
    }
  })

  it('cookie planting: over https the session cookie is __Host- (no Domain), a plain-named one is not read', async () => {
    const { step } = makeLogin()
    const { jar, callback } = await logIn(step, 'ann')
    const line = cookiesOf(asRedirect(callback))[0]!
    expect(line).toMatch(/^__Host-porthole_session=/)
    expect(line).toMatch(/; Path=\/;.*; Secure$/)
    expect(line).not.toMatch(/Domain=/)
    // The same value under the plain name (what another endpoint could set with Domain=<base domain>) does not count.
    const planted = jar.map((pair) => pair.replace(/^__Host-/, ''))
    expect(asRedirect((await send(step, '/', planted)).denial).response.status).toBe(302)
    expect((await send(step, '/', jar)).denial).toBeUndefined()
    // and neither name goes upstream
    const { ctx } = await send(step, '/', [...jar, ...planted, 'app=1'])
    expect(ctx.headers.cookie).toBe('app=1')
  })

  it('cookie planting: plain http keeps the plain name; auth_cookie_domain keeps it with its Domain', async () => {
    const http = makeLogin()
    const first = asRedirect((await send(http.step, '/', [], { protocol: 'http' })).denial)
    const state = new URL(String(first.response.headers.location)).searchParams.get('state')
    const back = asRedirect((await send(http.step, `${CALLBACK_PATH}?code=ann&state=${state}`, cookiesOf(first).map(pairOf), { protocol: 'http' })).denial)
    expect(cookiesOf(back)[0]).toMatch(/^porthole_session=[^;]+; Path=\/; Max-Age=86400; HttpOnly; SameSite=Lax$/)

    const shared = makeLogin({ auth_cookie_domain: 'example.com' })
    const { callback } = await logIn(shared.step, 'ann')
    expect(cookiesOf(asRedirect(callback))[0]).toMatch(/^porthole_session=[^;]+; .*; Secure; Domain=example\.com$/)
  })

  it('cookie planting: refuses an auth_cookie_domain that is the base domain or above it (PH_1008)', () => {
    const spec = (domain: string, baseDomain = 'tunnel.example.com') => () => loginSpec('oidc', 'https://idp.test', { client_id: 'c', client_secret: 's', auth_cookie_domain: domain } as never, fakeSource(USERS), { sessionSecret: SECRET, baseDomain })
    for (const domain of ['tunnel.example.com', 'TUNNEL.example.com', 'example.com', '@example.com', 'com']) {
      expect(spec(domain), domain).toThrow(/config\.auth_cookie_domain: .* every endpoint under tunnel\.example\.com/)
      try { spec(domain)() } catch (error) { expect((error as PortholeError).code).toBe('PH_1008') }
    }
    for (const domain of ['app.tunnel.example.com', 'team.tunnel.example.com', 'corp.test', 'other.example.com']) expect(spec(domain), domain).not.toThrow()
    const policy = { on_http_request: [{ actions: [{ type: 'openid-connect', config: { issuer_url: 'https://idp.test', client_id: 'c', client_secret: 's', auth_cookie_domain: 'tunnel.example.com' } } as never] }] }
    expect(() => compilePolicy(policy, 'http', { sessionSecret: SECRET, baseDomain: 'tunnel.example.com' })).toThrow(/auth_cookie_domain/)
  })

  it('redirect_uri: names the routed host, not what a Host header adds after it (a.<domain>:@evil)', async () => {
    const { step } = makeLogin()
    const uri = async (host: string, over: Partial<HttpRequestContext> = {}): Promise<string | null> => {
      const first = asRedirect((await send(step, '/', [], { headers: { host }, ...over })).denial)
      return new URL(String(first.response.headers.location)).searchParams.get('redirect_uri')
    }
    expect(await uri('app.example.com:@evil.test')).toBe(`https://app.example.com${CALLBACK_PATH}`)
    expect(await uri('app.example.com:443@evil.test')).toBe(`https://app.example.com${CALLBACK_PATH}`)
    expect(await uri('app.example.com:8443')).toBe(`https://app.example.com:8443${CALLBACK_PATH}`)
    expect(await uri('APP.example.com.:8443')).toBe(`https://app.example.com:8443${CALLBACK_PATH}`)
    expect(await uri('app.example.com:443')).toBe(`https://app.example.com${CALLBACK_PATH}`)
    expect(await uri('app.example.com:80', { protocol: 'http' })).toBe(`http://app.example.com${CALLBACK_PATH}`)
    expect(await uri('app.example.com:99999')).toBe(`https://app.example.com${CALLBACK_PATH}`)
    // The code exchange names the same URI.
    const { source, step: s2 } = makeLogin()
    const first = asRedirect((await send(s2, '/', [], { headers: { host: 'app.example.com:@evil.test' } })).denial)
    const state = new URL(String(first.response.headers.location)).searchParams.get('state')
    await send(s2, `${CALLBACK_PATH}?code=ann&state=${state}`, cookiesOf(first).map(pairOf), { headers: { host: 'app.example.com:@evil.test', cookie: cookiesOf(first).map(pairOf).join('; ') } })
    expect((source as ReturnType<typeof fakeSource>).calls[0]!.redirectUri).toBe(`https://app.example.com${CALLBACK_PATH}`)
  })
})

describe('login action configs', () => {
  const withSecret: CompileOptions = { sessionSecret: SECRET }
  const compile = (action: Record<string, unknown>, options = withSecret) => compilePolicy({ on_http_request: [{ actions: [action as never] }] }, 'http', options)
  const oidc = (config: Record<string, unknown>) => ({ type: 'openid-connect', config: { issuer_url: 'https://idp.test', client_id: 'c', client_secret: 's', ...config } })

  it('compiles ngrok-shaped configs of both actions', () => {
    expect(compile(oidc({ scopes: ['openid', 'email'], idle_session_duration: '15m', max_session_duration: '12h', userinfo_refresh_interval: '1h', allow_cors_preflight: true, auth_cookie_domain: 'example.com', auth_id: 'corp', authz_url_params: { prompt: 'select_account' } })).onHttpRequest).toHaveLength(1)
    expect(compile({ type: 'oidc', config: oidc({}).config }).onHttpRequest).toHaveLength(1)
    expect(compile({ type: 'oauth', config: { provider: 'github', client_id: 'c', client_secret: 's', idle_session_timeout: '1h', allow_emails: ['a@b.c'], allow_domains: ['example.com'] } }).onHttpRequest).toHaveLength(1)
  })

  it.each([
    [oidc({ client_id: '' }), /config\.client_id: Porthole has no managed OAuth applications/],
    [oidc({ issuer_url: 'ftp://idp.test' }), /config\.issuer_url/],
    [oidc({ max_session_duration: 'forever' }), /config\.max_session_duration/],
    [oidc({ idle_session_duration: '1h', idle_session_timeout: '1h' }), /not both/],
    [oidc({ authz_url_params: { redirect_uri: 'https://evil.test' } }), /authz_url_params\.redirect_uri: set by the login itself/],
    [oidc({ auth_id: 'a b' }), /config\.auth_id/],
    [oidc({ allow_emails: ['nobody'] }), /config\.allow_emails\.0: want an email address/],
    [oidc({ frobnicate: 1 }), /unknown field frobnicate/],
    [{ type: 'oauth', config: { provider: 'myspace', client_id: 'c', client_secret: 's' } }, /config\.provider: want one of amazon, facebook, github/],
  ])('refuses a bad config: %j', (action, message) => {
    expect(() => compile(action)).toThrow(message)
    try { compile(action) } catch (error) { expect((error as PortholeError).code).toBe('PH_1008') }
  })

  it('refuses to compile without the gateway\'s session secret (never a made-up key)', () => {
    expect(() => compile(oidc({}), {})).toThrow(/no session secret/)
  })

  it('moves a provider\'s endpoints where the operator says', () => {
    const moved = providerEntry('github', { 'authorize-url': 'https://ghe.corp/login/oauth/authorize', 'emails-url': 'https://ghe.corp/api/v3/user/emails' })
    expect(moved.authorize).toBe('https://ghe.corp/login/oauth/authorize')
    expect(moved.token).toBe('https://github.com/login/oauth/access_token')
    expect(moved.emails).toBe('https://ghe.corp/api/v3/user/emails')
  })
})

describe('the session secret', () => {
  it('is made once (0600) in the data dir and read back after a restart', () => {
    const path = join(mkdtempSync(join(tmpdir(), 'porthole-secret-')), 'session-secret')
    const first = loadOrCreateSecret(path)
    expect(first).toHaveLength(32)
    expect(statSync(path).mode & 0o777).toBe(0o600)
    expect(loadOrCreateSecret(path).equals(first)).toBe(true)
  })
})

/** A loopback server answering JSON by path; records what it was sent. */
async function jsonServer (routes: Record<string, (req: IncomingMessage, body: string) => unknown>) {
  const seen: { path: string, headers: IncomingMessage['headers'], body: string }[] = []
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = ''
    req.on('data', (chunk: Buffer) => { body += chunk.toString() })
    req.on('end', () => {
      const path = req.url!.split('?')[0]!
      seen.push({ path, headers: req.headers, body })
      const route = routes[path]
      const answer = route ? route(req, body) : undefined
      res.writeHead(answer === undefined ? 404 : 200, { 'content-type': 'application/json' })
      res.end(JSON.stringify(answer ?? { error: 'not_found' }))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return { base, seen, close: () => new Promise<void>((resolve) => server.close(() => resolve())) }
}

describe('identity sources against loopback servers', () => {
  it('github: code for a token (client in the form), the profile, and the primary verified email when the profile hides it', async () => {
    const api = await jsonServer({
      '/login/oauth/access_token': () => ({ access_token: 'gho_token', token_type: 'bearer' }),
      '/api/v3/user': () => ({ id: 42, login: 'octo', name: null, email: null }),
      '/api/v3/user/emails': () => [{ email: 'old@example.com', primary: false, verified: true }, { email: 'octo@example.com', primary: true, verified: true }],
    })
    try {
      const source = oauthSource({
        provider: 'github',
        clientId: 'cid',
        clientSecret: 'csecret',
        overrides: { 'authorize-url': `${api.base}/login/oauth/authorize`, 'token-url': `${api.base}/login/oauth/access_token`, 'userinfo-url': `${api.base}/api/v3/user`, 'emails-url': `${api.base}/api/v3/user/emails` },
      })
      expect(new URL(await source.authorizeUrl({ state: 's' })).origin).toBe(api.base)
      expect(await source.identify({ code: 'c0de', verifier: 'v', nonce: 'n', redirectUri: 'https://app.example.com/cb' })).toEqual({ sub: '42', email: 'octo@example.com', name: 'octo' })
      const form = new URLSearchParams(api.seen[0]!.body)
      expect(Object.fromEntries(form)).toEqual({ grant_type: 'authorization_code', code: 'c0de', redirect_uri: 'https://app.example.com/cb', code_verifier: 'v', client_id: 'cid', client_secret: 'csecret' })
      expect(api.seen[1]!.headers.authorization).toBe('Bearer gho_token')
      expect(api.seen[1]!.headers['user-agent']).toBe('porthole')
    } finally {
      await api.close()
    }
  })

  it('openid: a discovery document naming another issuer, or a token endpoint error, fail the login (PH_3108)', async () => {
    let issuer = ''
    const idp = await jsonServer({
      '/.well-known/openid-configuration': () => ({ issuer: 'https://someone-else.test', authorization_endpoint: `${issuer}/auth`, token_endpoint: `${issuer}/token`, jwks_uri: `${issuer}/jwks` }),
    })
    issuer = idp.base
    try {
      const clock = fakeClock()
      const source = openIdSource({ issuer, clientId: 'cid', clientSecret: 'cs', now: clock.now, allowPrivate: true })
      const step = compileLogin(loginSpec('oidc', issuer, { client_id: 'cid', client_secret: 'cs' } as never, source, { now: clock.now, sessionSecret: SECRET }))
      expect(await step(request())).toMatchObject({ code: 'PH_3108', detail: `discovery names issuer "https://someone-else.test", not ${issuer}` })
      // Failures are retried after a pause, not on every request.
      expect(await step(request())).toMatchObject({ code: 'PH_3108' })
      expect(idp.seen).toHaveLength(1)
      clock.advance(10_000)
      await step(request())
      expect(idp.seen).toHaveLength(2)
    } finally {
      await idp.close()
    }
  })
})
