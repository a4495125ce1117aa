// The OAuth 2.0 providers the `oauth` action knows (ngrok's list): where each one's authorize, token and user
// endpoints are, which scopes give the user's email, and how to read the user from its answer. An operator
// may move a provider's endpoints (`oauth-providers` in the gateway config: GitHub Enterprise, a self-hosted
// GitLab); the rest of the entry still applies.
import { callForObject, callProvider, ProviderError, str } from './provider-http.js'
import { identityOf } from './openid.js'
import type { Identity, IdentitySource } from './flow.js'

export const OAUTH_PROVIDERS = ['amazon', 'facebook', 'github', 'gitlab', 'google', 'linkedin', 'microsoft', 'twitch'] as const
export type OAuthProviderName = typeof OAUTH_PROVIDERS[number]

/** Endpoint URLs an operator may override, by the config's key names. */
export interface OAuthEndpointOverrides {
  readonly 'authorize-url'?: string
  readonly 'token-url'?: string
  readonly 'userinfo-url'?: string
  /** GitHub only: where a user's addresses are listed when the profile hides the email. */
  readonly 'emails-url'?: string
}

interface ProviderEntry {
  readonly authorize: string
  readonly token: string
  readonly userinfo: string
  readonly emails?: string
  readonly scopes: readonly string[]
  /** Extra authorize parameters (Twitch returns the email from userinfo only when asked for it). */
  readonly authorizeParams?: Record<string, string>
  /** Reads the user from the userinfo answer; `extra` fetches more when needed (GitHub's hidden emails). */
  readonly user: (info: Record<string, unknown>, extra: () => Promise<unknown>) => Identity | Promise<Identity>
}

/** OpenID-style userinfo (sub, email, email_verified, name): Google, GitLab, Microsoft, LinkedIn, Twitch. */
const openIdUser = (info: Record<string, unknown>): Identity => identityOf(str(info.sub), info)

const PROVIDERS: Record<OAuthProviderName, ProviderEntry> = {
  amazon: {
    authorize: 'https://www.amazon.com/ap/oa',
    token: 'https://api.amazon.com/auth/o2/token',
    userinfo: 'https://api.amazon.com/user/profile',
    scopes: ['profile'],
    user: (info) => ({ sub: str(info.user_id), email: str(info.email), name: str(info.name) }),
  },
  facebook: {
    authorize: 'https://www.facebook.com/v19.0/dialog/oauth',
    token: 'https://graph.facebook.com/v19.0/oauth/access_token',
    userinfo: 'https://graph.facebook.com/me?fields=id,name,email',
    scopes: ['email', 'public_profile'],
    user: (info) => ({ sub: str(info.id), email: str(info.email), name: str(info.name) }),
  },
  github: {
    authorize: 'https://github.com/login/oauth/authorize',
    token: 'https://github.com/login/oauth/access_token',
    userinfo: 'https://api.github.com/user',
    emails: 'https://api.github.com/user/emails',
    scopes: ['read:user', 'user:email'],
    async user (info, extra) {
      let email = str(info.email)
      if (email === '') {
        // The profile shows only a public email; the primary verified one comes from the email list.
        const list = await extra()
        const primary = Array.isArray(list) ? list.find((e) => e?.primary === true && e?.verified === true) as Record<string, unknown> | undefined : undefined
        email = str(primary?.email)
      }
      return { sub: str(info.id), email, name: str(info.name) || str(info.login) }
    },
  },
  gitlab: {
    authorize: 'https://gitlab.com/oauth/authorize',
    token: 'https://gitlab.com/oauth/token',
    userinfo: 'https://gitlab.com/oauth/userinfo',
    scopes: ['openid', 'profile', 'email'],
    user: openIdUser,
  },
  google: {
    authorize: 'https://accounts.google.com/o/oauth2/v2/auth',
    token: 'https://oauth2.googleapis.com/token',
    userinfo: 'https://openidconnect.googleapis.com/v1/userinfo',
    scopes: ['openid', 'email', 'profile'],
    user: openIdUser,
  },
  linkedin: {
    authorize: 'https://www.linkedin.com/oauth/v2/authorization',
    token: 'https://www.linkedin.com/oauth/v2/accessToken',
    userinfo: 'https://api.linkedin.com/v2/userinfo',
    scopes: ['openid', 'profile', 'email'],
    user: openIdUser,
  },
  microsoft: {
    authorize: 'https://login.microsoftonline.com/common/oauth2/v2.0/authorize',
    token: 'https://login.microsoftonline.com/common/oauth2/v2.0/token',
    userinfo: 'https://graph.microsoft.com/oidc/userinfo',
    scopes: ['openid', 'email', 'profile'],
    user: openIdUser,
  },
  twitch: {
    authorize: 'https://id.twitch.tv/oauth2/authorize',
    token: 'https://id.twitch.tv/oauth2/token',
    userinfo: 'https://id.twitch.tv/oauth2/userinfo',
    scopes: ['openid', 'user:read:email'],
    authorizeParams: { claims: JSON.stringify({ userinfo: { email: null, email_verified: null, preferred_username: null } }) },
    user: openIdUser,
  },
}

export interface OAuthOptions {
  readonly provider: OAuthProviderName
  readonly clientId: string
  readonly clientSecret: string
  readonly overrides?: OAuthEndpointOverrides
}

/** The provider's entry with the operator's overrides applied. */
export function providerEntry (name: OAuthProviderName, overrides: OAuthEndpointOverrides = {}): ProviderEntry {
  const entry = PROVIDERS[name]
  return {
    ...entry,
    authorize: overrides['authorize-url'] ?? entry.authorize,
    token: overrides['token-url'] ?? entry.token,
    userinfo: overrides['userinfo-url'] ?? entry.userinfo,
    ...(entry.emails !== undefined ? { emails: overrides['emails-url'] ?? entry.emails } : {}),
  }
}

export function oauthSource (options: OAuthOptions): IdentitySource {
  const entry = providerEntry(options.provider, options.overrides)
  return {
    defaultScopes: entry.scopes,
    authorizeUrl (params) {
      const url = new URL(entry.authorize)
      for (const [name, value] of Object.entries({ ...entry.authorizeParams, ...params })) url.searchParams.set(name, value)
      return url.toString()
    },
    async identify ({ code, verifier, redirectUri }) {
      const tokens = await callForObject(entry.token, {
        method: 'POST',
        form: { grant_type: 'authorization_code', code, redirect_uri: redirectUri, code_verifier: verifier, client_id: options.clientId, client_secret: options.clientSecret },
      })
      const accessToken = str(tokens.access_token)
      if (accessToken === '') throw new ProviderError('token endpoint answered no access_token')
      const call = { headers: { authorization: `Bearer ${accessToken}` } }
      const info = await callForObject(entry.userinfo, call)
      const identity = await entry.user(info, () => callProvider(entry.emails!, call))
      if (identity.sub === '') throw new ProviderError('userinfo answered no user id')
      return identity
    },
  }
}
