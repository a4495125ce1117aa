// oauth: a login with one of the OAuth 2.0 providers ngrok lists (google, github, gitlab, microsoft, ...)
// in front of the endpoint. The shared login flow is in policy/login/flow.ts; the provider table, with the
// operator's endpoint overrides, in policy/login/oauth-providers.ts.
import { z } from 'zod'
import type { OAuthAction } from '../document.js'
import type { CompileOptions, RequestStep } from '../compiled.js'
import { compileLogin } from '../login/flow.js'
import { loginFields, loginSpec, parseConfig } from '../login/config.js'
import { OAUTH_PROVIDERS, oauthSource } from '../login/oauth-providers.js'

const configSchema = z.strictObject({
  ...loginFields,
  provider: z.enum(OAUTH_PROVIDERS, { error: `want one of ${OAUTH_PROVIDERS.join(', ')}` }),
})

export function compileOAuth (action: OAuthAction, options: CompileOptions): RequestStep {
  const config = parseConfig(configSchema, action.config)
  const source = oauthSource({ provider: config.provider, clientId: config.client_id, clientSecret: config.client_secret, overrides: options.oauthProviders?.[config.provider] })
  return compileLogin(loginSpec('oauth', config.provider, config, source, options))
}
