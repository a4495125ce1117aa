// openid-connect (ngrok's type; `oidc` is accepted too): an OpenID Connect login in front of the endpoint.
// The shared login flow is in policy/login/flow.ts; this file reads the action's config.
import { z } from 'zod'
import type { OpenIdConnectAction } from '../document.js'
import type { CompileOptions, RequestStep } from '../compiled.js'
import { compileLogin } from '../login/flow.js'
import { loginFields, loginSpec, parseConfig } from '../login/config.js'
import { openIdSource } from '../login/openid.js'
import { refusedUrl } from '../outbound.js'
import { PortholeError } from '../../core/errors.js'

const configSchema = z.strictObject({
  ...loginFields,
  issuer_url: z.url({ protocol: /^https?$/, error: 'want the http(s) URL of an OpenID provider' }),
})

export function compileOidc (action: OpenIdConnectAction, options: CompileOptions): RequestStep {
  const config = parseConfig(configSchema, action.config)
  const allowPrivate = options.allowPrivateUrls === true
  const refusal = refusedUrl(config.issuer_url, allowPrivate)
  if (refusal) throw new PortholeError('PH_1008', `config.issuer_url: ${refusal} (the gateway fetches only public addresses)`)
  const source = openIdSource({ issuer: config.issuer_url, clientId: config.client_id, clientSecret: config.client_secret, now: options.now ?? Date.now, allowPrivate })
  return compileLogin(loginSpec('oidc', config.issuer_url, config, source, options))
}
