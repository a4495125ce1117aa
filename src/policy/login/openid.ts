// OpenID Connect as an identity source for the login flow: the provider's configuration comes from its
// discovery document (fetched on the first login, cached), and a login is proven by its ID token, verified
// with jose against the provider's JWKS (issuer, audience, nonce). Claims the ID token leaves out (email,
// name) are read from the userinfo endpoint.
import { createRemoteJWKSet, customFetch, jwtVerify, type JWTVerifyGetKey } from 'jose'
import { policyFetch } from '../outbound.js'
import { callForObject, ProviderError, str } from './provider-http.js'
import type { Identity, IdentitySource } from './flow.js'

interface Discovered {
  /** As the provider names itself: what its ID tokens' iss must be. */
  readonly issuer: string
  readonly authorize: string
  readonly token: string
  readonly userinfo: string | undefined
  readonly basicAuth: boolean
  readonly keys: JWTVerifyGetKey
}

const DISCOVERY_TTL_MS = 3_600_000
const RETRY_MS = 10_000

export interface OpenIdOptions {
  readonly issuer: string
  readonly clientId: string
  readonly clientSecret: string
  readonly now: () => number
  /** Discovery may name non-public addresses (outbound.ts); the operator's choice. */
  readonly allowPrivate?: boolean
}

export function openIdSource (options: OpenIdOptions): IdentitySource {
  const { issuer, clientId, clientSecret, now } = options
  const allowPrivate = options.allowPrivate === true
  let cached: { value: Promise<Discovered>, until: number } | undefined

  async function discover (): Promise<Discovered> {
    const url = `${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`
    const doc = await callForObject(url, { allowPrivate })
    // OpenID Connect Discovery 1.0 section 4.3: the document must name the issuer it was fetched for (a
    // trailing slash in the configured URL aside).
    const named = str(doc.issuer)
    if (named.replace(/\/$/, '') !== issuer.replace(/\/$/, '')) throw new ProviderError(`discovery names issuer ${JSON.stringify(named.slice(0, 100))}, not ${issuer}`)
    const endpoint = (name: string, required: boolean): string | undefined => {
      const value = str(doc[name])
      if (value === '' && !required) return undefined
      if (!/^https?:\/\//.test(value)) throw new ProviderError(`discovery has no usable ${name}`)
      return value
    }
    const methods = Array.isArray(doc.token_endpoint_auth_methods_supported) ? doc.token_endpoint_auth_methods_supported : ['client_secret_basic']
    return {
      issuer: named,
      authorize: endpoint('authorization_endpoint', true)!,
      token: endpoint('token_endpoint', true)!,
      userinfo: endpoint('userinfo_endpoint', false),
      basicAuth: methods.includes('client_secret_basic'),
      keys: createRemoteJWKSet(new URL(endpoint('jwks_uri', true)!), { timeoutDuration: 5000, cooldownDuration: 30_000, cacheMaxAge: 600_000, [customFetch]: policyFetch(allowPrivate) as never }),
    }
  }

  /** The discovered configuration, shared by concurrent logins; a failure is retried after a short pause. */
  function discovered (): Promise<Discovered> {
    const t = now()
    if (cached === undefined || t >= cached.until) {
      const value = discover()
      cached = { value, until: t + DISCOVERY_TTL_MS }
      value.catch(() => { if (cached?.value === value) cached.until = now() + RETRY_MS })
    }
    return cached.value
  }

  return {
    defaultScopes: ['openid', 'email', 'profile'],
    async authorizeUrl (params) {
      const url = new URL((await discovered()).authorize)
      for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value)
      return url.toString()
    },
    async identify ({ code, verifier, nonce, redirectUri }): Promise<Identity> {
      const config = await discovered()
      const form: Record<string, string> = { grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier }
      const headers: Record<string, string> = {}
      if (config.basicAuth) {
        // RFC 6749 section 2.3.1: both parts form-encoded before they are joined.
        const encode = (text: string): string => encodeURIComponent(text).replace(/%20/g, '+')
        headers.authorization = `Basic ${Buffer.from(`${encode(clientId)}:${encode(clientSecret)}`).toString('base64')}`
      } else {
        form.client_id = clientId
        form.client_secret = clientSecret
      }
      const tokens = await callForObject(config.token, { method: 'POST', form, headers, allowPrivate })
      const idToken = str(tokens.id_token)
      if (idToken === '') throw new ProviderError('token endpoint answered no id_token')
      let claims
      try {
        ({ payload: claims } = await jwtVerify(idToken, config.keys, { issuer: config.issuer, audience: clientId, currentDate: new Date(now()) }))
      } catch (error) {
        throw new ProviderError(`ID token refused: ${(error as Error).message}`)
      }
      if (claims.nonce !== nonce) throw new ProviderError('ID token refused: nonce does not match')
      if (Array.isArray(claims.aud) && claims.aud.length > 1 && claims.azp !== clientId) throw new ProviderError('ID token refused: azp is not this client')
      const sub = str(claims.sub)
      let info: Record<string, unknown> = claims
      const accessToken = str(tokens.access_token)
      if ((claims.email === undefined || claims.name === undefined) && config.userinfo !== undefined && accessToken !== '') {
        const fetched = await callForObject(config.userinfo, { headers: { authorization: `Bearer ${accessToken}` }, allowPrivate })
        // OpenID Connect Core section 5.3.2: userinfo about another subject must not be used.
        if (str(fetched.sub) === sub) info = { ...fetched, ...claims }
      }
      return identityOf(sub, info)
    },
  }
}

/** Identity from OpenID claims; an email the provider says is unverified is not used. */
export function identityOf (sub: string, claims: Record<string, unknown>): Identity {
  const email = claims.email_verified === false || claims.email_verified === 'false' ? '' : str(claims.email)
  return { sub, email, name: str(claims.name) || str(claims.preferred_username) || str(claims.nickname) }
}
