// The config fields the oauth and openid-connect actions share (ngrok's names), checked with zod when the
// policy is compiled, plus two of Porthole's own: allow_emails and allow_domains (what ngrok's agent flags
// --oauth-allow-email / --oauth-allow-domain did before Traffic Policy).
import { z } from 'zod'
import { PortholeError } from '../../core/errors.js'
import { parseDuration } from '../duration.js'
import type { CompileOptions } from '../compiled.js'
import { checkAuthId, type IdentitySource, type LoginSpec } from './flow.js'

export const DEFAULT_MAX_SESSION = '24h'
export const DEFAULT_IDLE_SESSION = '6h'
const MAX_DURATION_MS = 30 * 24 * 3_600_000

const domainName = z.string().regex(/^@?[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/, 'want a domain such as example.com')

export const loginFields = {
  auth_id: z.string().optional(),
  client_id: z.string().min(1, 'Porthole has no managed OAuth applications: give your own client_id and client_secret'),
  client_secret: z.string().min(1),
  scopes: z.array(z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'a scope is one word')).optional(),
  authz_url_params: z.record(z.string().min(1), z.string()).optional(),
  max_session_duration: z.string().optional(),
  idle_session_duration: z.string().optional(),
  /** The oauth action's name for idle_session_duration in ngrok's documentation. */
  idle_session_timeout: z.string().optional(),
  userinfo_refresh_interval: z.string().optional(),
  allow_cors_preflight: z.boolean().optional(),
  auth_cookie_domain: domainName.optional(),
  allow_emails: z.array(z.string().regex(/^[^@\s]+@[^@\s]+$/, 'want an email address')).optional(),
  allow_domains: z.array(domainName).optional(),
}

const RESERVED_PARAMS = new Set(['response_type', 'client_id', 'redirect_uri', 'scope', 'state', 'nonce', 'code_challenge', 'code_challenge_method'])

type LoginConfig = z.output<z.ZodObject<typeof loginFields>>

/** Parses `config` with `schema`; an error names the field (config.client_id: ...). */
export function parseConfig<T extends z.ZodType> (schema: T, config: unknown): z.output<T> {
  const parsed = schema.safeParse(config ?? {})
  if (parsed.success) return parsed.data
  const issue = parsed.error.issues[0]!
  const message = issue.code === 'unrecognized_keys' ? `unknown field ${issue.keys.join(', ')}` : issue.message
  throw new PortholeError('PH_1008', `config${issue.path.length > 0 ? '.' : ''}${issue.path.map(String).join('.')}: ${message}`)
}

/** Everything but the identity source, from the shared fields. */
export function loginSpec (kind: LoginSpec['kind'], providerId: string, config: LoginConfig, source: IdentitySource, options: CompileOptions): LoginSpec {
  if (options.sessionSecret === undefined) throw new PortholeError('PH_1008', `${kind}: the gateway gave no session secret to sign login cookies with`)
  if (config.idle_session_duration !== undefined && config.idle_session_timeout !== undefined) {
    throw new PortholeError('PH_1008', 'config.idle_session_timeout: give it or idle_session_duration, not both')
  }
  const maxMs = parseDuration(config.max_session_duration ?? DEFAULT_MAX_SESSION, 'config.max_session_duration', 1000, MAX_DURATION_MS)
  const idle = config.idle_session_duration ?? config.idle_session_timeout
  const idleMs = parseDuration(idle ?? DEFAULT_IDLE_SESSION, `config.${config.idle_session_timeout !== undefined ? 'idle_session_timeout' : 'idle_session_duration'}`, 1000, MAX_DURATION_MS)
  const refreshMs = config.userinfo_refresh_interval === undefined ? maxMs : parseDuration(config.userinfo_refresh_interval, 'config.userinfo_refresh_interval', 1000, MAX_DURATION_MS)
  for (const name of Object.keys(config.authz_url_params ?? {})) {
    if (RESERVED_PARAMS.has(name)) throw new PortholeError('PH_1008', `config.authz_url_params.${name}: set by the login itself`)
  }
  const cookieDomain = config.auth_cookie_domain?.toLowerCase().replace(/^@/, '')
  const base = options.baseDomain?.toLowerCase().replace(/\.$/, '')
  if (cookieDomain !== undefined && base !== undefined && (base === cookieDomain || base.endsWith(`.${cookieDomain}`))) {
    throw new PortholeError('PH_1008', `config.auth_cookie_domain: ${cookieDomain} would send the session cookie to every endpoint under ${base}; give your endpoint's own host or a domain between it and ${base}`)
  }
  return {
    kind,
    providerId,
    clientId: config.client_id,
    clientSecret: config.client_secret,
    source,
    scopes: config.scopes ?? [],
    authzParams: config.authz_url_params ?? {},
    authId: checkAuthId(config.auth_id),
    limits: { maxMs, idleMs: Math.min(idleMs, maxMs), refreshMs },
    allowEmails: (config.allow_emails ?? []).map((e) => e.toLowerCase()),
    allowDomains: (config.allow_domains ?? []).map((d) => d.toLowerCase().replace(/^@/, '')),
    corsPreflight: config.allow_cors_preflight ?? false,
    cookieDomain,
    secret: options.sessionSecret,
    now: options.now ?? Date.now,
  }
}
