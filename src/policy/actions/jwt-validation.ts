// jwt-validation (ngrok's config shape): the request must carry a JWT, from a header or query parameter,
// signed by a key of the configured JWKS URLs (fetched and cached by jose), with an allowed algorithm,
// issuer and audience; else 401 PH_3106 with a Bearer challenge. The one asynchronous action: keys may
// have to be fetched, so the edge waits for its answer.
import { createRemoteJWKSet, customFetch, jwtVerify, type JWTVerifyGetKey } from 'jose'
import { z } from 'zod'
import { PortholeError } from '../../core/errors.js'
import type { JwtValidationAction } from '../document.js'
import type { CompileOptions, HttpRequestContext, RequestStep } from '../compiled.js'
import { policyFetch, refusedUrl } from '../outbound.js'

const allowList = z.strictObject({ allow_list: z.array(z.strictObject({ value: z.string().min(1) })).min(1) })
const configSchema = z.strictObject({
  issuer: allowList,
  audience: allowList,
  http: z.strictObject({
    tokens: z.array(z.strictObject({
      type: z.literal('jwt').default('jwt'),
      method: z.enum(['header', 'query']),
      name: z.string().min(1),
      prefix: z.string().optional(),
    })).min(1),
  }),
  jws: z.strictObject({
    allowed_algorithms: z.array(z.string().regex(/^(RS|PS|ES)(256|384|512)$|^EdDSA$/, 'want RS256, ES256, PS256, EdDSA ...')).min(1),
    keys: z.strictObject({ sources: z.strictObject({ additional_jkus: z.array(z.url()).min(1) }) }),
  }),
})

type Config = z.output<typeof configSchema>

const CHALLENGE = { 'www-authenticate': 'Bearer error="invalid_token"' }

function tokenOf (ctx: HttpRequestContext, tokens: Config['http']['tokens']): string | undefined {
  for (const source of tokens) {
    let raw: string | undefined
    if (source.method === 'header') {
      const value = ctx.headers[source.name.toLowerCase()]
      raw = Array.isArray(value) ? value[0] : value
    } else {
      const query = ctx.path.indexOf('?')
      raw = query === -1 ? undefined : new URLSearchParams(ctx.path.slice(query + 1)).get(source.name) ?? undefined
    }
    if (raw === undefined) continue
    const prefix = source.prefix ?? ''
    if (prefix !== '' && !raw.toLowerCase().startsWith(prefix.toLowerCase())) continue
    return raw.slice(prefix.length).trim()
  }
  return undefined
}

export function compileJwtValidation (action: JwtValidationAction, compile: CompileOptions = {}): RequestStep {
  const parsed = configSchema.safeParse(action.config)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!
    throw new PortholeError('PH_1008', `config.${issue.path.map(String).join('.')}: ${issue.message}`)
  }
  const config = parsed.data
  // jose caches each key set, refetching on an unknown kid (at most every 30 s) and after 10 minutes.
  const allowPrivate = compile.allowPrivateUrls === true
  const keySets: JWTVerifyGetKey[] = config.jws.keys.sources.additional_jkus.map((url, index) => {
    const refusal = refusedUrl(url, allowPrivate)
    if (refusal) throw new PortholeError('PH_1008', `config.jws.keys.sources.additional_jkus.${index}: ${refusal} (the gateway fetches only public addresses)`)
    return createRemoteJWKSet(new URL(url), { timeoutDuration: 5000, cooldownDuration: 30_000, cacheMaxAge: 600_000, [customFetch]: policyFetch(allowPrivate) as never })
  })
  const options = {
    issuer: config.issuer.allow_list.map((entry) => entry.value),
    audience: config.audience.allow_list.map((entry) => entry.value),
    algorithms: config.jws.allowed_algorithms,
  }
  return async (ctx) => {
    const token = tokenOf(ctx, config.http.tokens)
    if (!token) return { code: 'PH_3106', headers: { 'www-authenticate': 'Bearer' } }
    for (const keys of keySets) {
      try {
        await jwtVerify(token, keys, options)
        return undefined
      } catch {
        // next key set; none verifying means the token is refused
      }
    }
    return { code: 'PH_3106', headers: CHALLENGE }
  }
}
