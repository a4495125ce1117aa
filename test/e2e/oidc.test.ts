// oauth and openid-connect through a real tunnel, against a real identity provider (oidc-provider on
// loopback), with a browser that follows redirects and keeps cookies: the visitor is sent to the provider,
// logs in, comes back with a signed session cookie and reaches the upstream with their identity. Tampered
// cookies, accounts outside allow_emails, idle sessions and logout are refused or sent back to log in.
import { statSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connect, sleep, startTestGateway, startUpstream, type SshClient, type TestGateway } from './harness.js'
import { Browser, listenIdentityProvider, type IdentityProvider, type Page } from './identity-provider.js'

const CALLBACK = '/porthole/oauth/callback'

describe('oauth and openid-connect logins', () => {
  let gateway: TestGateway
  let upstream: Awaited<ReturnType<typeof startUpstream>>
  let idp: IdentityProvider
  const clients: SshClient[] = []

  beforeAll(async () => {
    idp = await listenIdentityProvider()
    // The oauth action's gitlab provider, moved by the operator to the test's provider (as for a self-hosted GitLab).
    gateway = await startTestGateway({
      // The provider runs on loopback: the operator lets policies reach private addresses.
      flags: { policyPrivateUrls: true, oauthProviders: { gitlab: { 'authorize-url': `${idp.issuer}/auth`, 'token-url': `${idp.issuer}/token`, 'userinfo-url': `${idp.issuer}/me` } } },
    })
    const redirects = ['flags', 'doc', 'oauth'].map((name) => `http://${name}.localhost:${gateway.httpPort}${CALLBACK}`)
    redirects.push(`https://flags.localhost:${gateway.httpsPort}${CALLBACK}`)
    idp.start([
      { client_id: 'porthole-oidc', client_secret: 'oidc-secret', redirect_uris: redirects, grant_types: ['authorization_code'], response_types: ['code'] },
      { client_id: 'porthole-oauth', client_secret: 'oauth-secret', redirect_uris: redirects, grant_types: ['authorization_code'], response_types: ['code'], token_endpoint_auth_method: 'client_secret_post' },
    ])
    upstream = await startUpstream()
  })
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.kill()))
    await upstream.close()
    await gateway.stop()
    await idp.close()
  })

  async function bind (name: string, command: string, policy?: string): Promise<string> {
    const client = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`${name}:80:localhost:${upstream.port}`], command })
    clients.push(client)
    if (policy !== undefined) client.proc.stdin!.end(policy)
    return (await client.urls())[0]!
  }

  const echoed = (page: Page): { url: string, headers: Record<string, string> } => JSON.parse(page.body)

  describe('--oidc flags', () => {
    let url: string
    beforeAll(async () => {
      url = await bind('flags', `http --oidc ${idp.issuer} --oidc-client-id porthole-oidc --oidc-client-secret oidc-secret`)
    })

    it('sends a visitor to the provider with state, nonce and PKCE, and in with a signed session cookie', async () => {
      const browser = new Browser()
      const first = await browser.fetch(`${url}/hello?x=1`)
      expect(first.status).toBe(302)
      const authorize = new URL(String(first.headers.location))
      expect(authorize.origin).toBe(idp.issuer)
      const params = authorize.searchParams
      expect(params.get('client_id')).toBe('porthole-oidc')
      expect(params.get('redirect_uri')).toBe(`${url}${CALLBACK}`)
      expect(params.get('scope')!.split(' ')).toEqual(expect.arrayContaining(['openid', 'email', 'profile']))
      expect(params.get('code_challenge_method')).toBe('S256')
      for (const name of ['state', 'nonce', 'code_challenge']) expect(params.get(name)!.length).toBeGreaterThan(10)
      expect(String(first.headers['set-cookie'])).toMatch(new RegExp(`^porthole_login=[^;]+; Path=${CALLBACK}; Max-Age=600; HttpOnly; SameSite=Lax$`))

      // Through the provider's login and consent pages, back to the callback, which sets the session and
      // sends the visitor where they were going.
      const back = await browser.visit(String(first.headers.location), 'alice', (next) => next.pathname === '/hello')
      expect(back.url).toMatch(new RegExp(`^${url}${CALLBACK}\\?`))
      expect(back.status).toBe(302)
      expect(back.headers.location).toBe('/hello?x=1')
      const cookies = ([] as string[]).concat(back.headers['set-cookie'] as string[])
      expect(cookies.find((c) => c.startsWith('porthole_session='))).toMatch(/; Path=\/; Max-Age=86400; HttpOnly; SameSite=Lax$/)
      expect(cookies.find((c) => c.startsWith('porthole_login='))).toMatch(/Max-Age=0/)

      // The identity reaches the upstream; a visitor cannot send identity headers of their own, and the
      // gateway's cookies stay at the gateway.
      browser.setCookie('flags.localhost', 'theirs', 'kept')
      const page = await browser.fetch(`${url}/hello?x=1`, { headers: { 'ngrok-auth-user-email': 'mallory@example.com' } })
      expect(page.status).toBe(200)
      const seen = echoed(page)
      expect(seen.url).toBe('/hello?x=1')
      expect(seen.headers['ngrok-auth-user-email']).toBe('alice@example.com')
      expect(seen.headers['ngrok-auth-user-id']).toBe('alice')
      expect(seen.headers['ngrok-auth-user-name']).toBe('Alice')
      expect(seen.headers.cookie).toBe('theirs=kept')
    })

    it('refuses a tampered or forged session cookie (back to the provider) and a callback without its login cookie', async () => {
      const browser = new Browser()
      await browser.visit(`${url}/`, 'alice')
      const [value] = browser.cookies.get('flags.localhost')!.get('porthole_session')!
      const [body, mac] = value.split('.')
      const claims = JSON.parse(Buffer.from(body!, 'base64url').toString())
      expect(claims.email).toBe('alice@example.com')
      const forgedBody = Buffer.from(JSON.stringify({ ...claims, email: 'boss@example.com' })).toString('base64url')
      for (const forged of [`${forgedBody}.${mac}`, `${body}.${mac!.slice(0, -2)}AA`, forgedBody, 'garbage']) {
        const mallory = new Browser()
        mallory.setCookie('flags.localhost', 'porthole_session', forged)
        const page = await mallory.fetch(`${url}/`)
        expect(page.status, forged).toBe(302)
        expect(String(page.headers.location).startsWith(idp.issuer)).toBe(true)
      }
      // A callback with a state this browser never got: refused with our code, nothing set.
      const stranger = await new Browser().fetch(`${url}${CALLBACK}?code=abc&state=${new URL(String((await new Browser().fetch(`${url}/`)).headers.location)).searchParams.get('state')}`)
      expect(stranger.status).toBe(400)
      expect(stranger.headers['porthole-error-code']).toBe('PH_3107')
    })

    it('over https: an https redirect URI and Secure cookies', async () => {
      const origin = `https://flags.localhost:${gateway.httpsPort}`
      const browser = new Browser(gateway.caPem)
      const first = await browser.fetch(`${origin}/secure`)
      expect(new URL(String(first.headers.location)).searchParams.get('redirect_uri')).toBe(`${origin}${CALLBACK}`)
      expect(String(first.headers['set-cookie'])).toMatch(/; Secure$/)
      const back = await browser.visit(String(first.headers.location), 'alice', (next) => next.pathname === '/secure')
      // Over https the session cookie is a __Host- cookie (Secure, Path=/, no Domain): another endpoint under the
      // base domain cannot plant one with Domain=localhost.
      const session = ([] as string[]).concat(back.headers['set-cookie'] as string[]).find((c) => c.startsWith('__Host-porthole_session='))
      expect(session).toMatch(/; Path=\/; Max-Age=86400; HttpOnly; SameSite=Lax; Secure$/)
      expect(session).not.toMatch(/Domain=/)
      const page = await browser.fetch(`${origin}/secure`)
      expect(page.status).toBe(200)
      expect(echoed(page).headers['ngrok-auth-user-email']).toBe('alice@example.com')
    })

    it('keeps sessions when the agent reconnects: the secret is in the data dir (0600)', async () => {
      expect(statSync(join(gateway.dataDir, 'session-secret')).mode & 0o777).toBe(0o600)
      const browser = new Browser()
      expect((await browser.visit(`${url}/`, 'alice')).status).toBe(200)
      const client = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`again:80:localhost:${upstream.port}`], command: `http --oidc ${idp.issuer} --oidc-client-id porthole-oidc --oidc-client-secret oidc-secret` })
      clients.push(client)
      await client.urls()
      // A second endpoint compiled the same action again: it accepts the first one's cookie only at its own host.
      const [cookie] = browser.cookies.get('flags.localhost')!.get('porthole_session')!
      const elsewhere = new Browser()
      elsewhere.setCookie('again.localhost', 'porthole_session', cookie)
      expect((await elsewhere.fetch(`http://again.localhost:${gateway.httpPort}/`)).status).toBe(302)
      await clients[0]!.kill()
      const rebound = await bind('flags', `http --oidc ${idp.issuer} --oidc-client-id porthole-oidc --oidc-client-secret oidc-secret`)
      expect(rebound).toBe(url)
      const page = await browser.fetch(`${url}/`)
      expect(page.status).toBe(200)
      expect(echoed(page).headers['ngrok-auth-user-email']).toBe('alice@example.com')
    })

    it('logs out at /ngrok/logout', async () => {
      const browser = new Browser()
      expect((await browser.visit(`${url}/`, 'alice')).status).toBe(200)
      const out = await browser.fetch(`${url}/ngrok/logout?redirect_path=/bye`)
      expect(out.status).toBe(302)
      expect(out.headers.location).toBe('/bye')
      expect(String(out.headers['set-cookie'])).toMatch(/^porthole_session=; Path=\/; Max-Age=0/)
      expect((await browser.fetch(`${url}/`)).status).toBe(302)
    })

    it('open redirect: redirect_path=/%09/evil.example goes to / at logout and after a login', async () => {
      const browser = new Browser()
      expect((await browser.visit(`${url}/`, 'alice')).status).toBe(200)
      const out = await browser.fetch(`${url}/ngrok/logout?redirect_path=/%09/evil.example`)
      expect(out.status).toBe(302)
      expect(out.headers.location).toBe('/')
      const login = await browser.fetch(`${url}/ngrok/login?redirect_path=/%09/evil.example`)
      expect(login.status).toBe(302)
      const back = await browser.visit(String(login.headers.location), 'alice', (next) => next.origin === url && next.pathname !== CALLBACK)
      expect(back.url).toMatch(new RegExp(`^${url}${CALLBACK}\\?`))
      expect(back.headers.location).toBe('/')
    })

    it('redirect_uri: a Host header of flags.localhost:@evil.test never leads to evil.test (the edge refuses its port)', async () => {
      const first = await new Browser().fetch(`${url}/`, { headers: { host: 'flags.localhost:@evil.test' } })
      expect(first.status).toBe(400)
      expect(first.headers['porthole-error-code']).toBe('PH_3013')
      expect(first.headers.location).toBeUndefined()
    })
  })

  describe('an openid-connect policy document', () => {
    let url: string
    beforeAll(async () => {
      url = await bind('doc', 'http --traffic-policy-file -', `on_http_request:
  - actions:
      - type: openid-connect
        config:
          issuer_url: "${idp.issuer}"
          client_id: porthole-oidc
          client_secret: oidc-secret
          idle_session_duration: 4s
          allow_emails: [alice@example.com]
  - expressions: ["actions.ngrok.oidc.identity.email == 'alice@example.com'"]
    actions:
      - type: add-headers
        config:
          headers:
            x-who: "\${actions.ngrok.oidc.identity.name} (\${actions.ngrok.oidc.identity.provider_user_id})"
`)
    })

    it('lets in an allowed account, with result variables for later rules', async () => {
      const page = await new Browser().visit(`${url}/`, 'alice')
      expect(page.status).toBe(200)
      expect(echoed(page).headers['x-who']).toBe('Alice (alice)')
    })

    it('answers 403 PH_3109 to an account outside allow_emails', async () => {
      const page = await new Browser().visit(`${url}/`, 'bob')
      expect(page.url).toMatch(new RegExp(`^${url}${CALLBACK}`))
      expect(page.status).toBe(403)
      expect(page.headers['porthole-error-code']).toBe('PH_3109')
      expect(page.body).toContain('bob@example.com')
    })

    it('ends an idle session, and keeps one in use alive', async () => {
      const browser = new Browser()
      expect((await browser.visit(`${url}/`, 'alice')).status).toBe(200)
      // In use: each request within the idle time renews the cookie.
      for (let i = 0; i < 2; i++) {
        await sleep(2000)
        expect((await browser.fetch(`${url}/`)).status).toBe(200)
      }
      await sleep(5000)
      const page = await browser.fetch(`${url}/`)
      expect(page.status).toBe(302)
      expect(String(page.headers.location).startsWith(idp.issuer)).toBe(true)
    })
  })

  describe('--oauth flags with an operator-moved provider', () => {
    let url: string
    beforeAll(async () => {
      url = await bind('oauth', 'http --oauth gitlab --oauth-client-id porthole-oauth --oauth-client-secret oauth-secret --oauth-allow-domain example.com --oauth-allow-email carol@elsewhere.test --oauth-scope read_user')
    })

    it('logs in through the provider table (code exchange, userinfo) and exposes the identity', async () => {
      const browser = new Browser()
      const first = await browser.fetch(`${url}/`)
      const authorize = new URL(String(first.headers.location))
      expect(`${authorize.origin}${authorize.pathname}`).toBe(`${idp.issuer}/auth`)
      expect(authorize.searchParams.get('scope')).toBe('openid profile email read_user')
      expect(authorize.searchParams.has('nonce')).toBe(false)
      const page = await browser.visit(`${url}/`, 'dave')
      expect(page.status).toBe(200)
      expect(echoed(page).headers['ngrok-auth-user-email']).toBe('dave@example.com')
    })
  })
})
