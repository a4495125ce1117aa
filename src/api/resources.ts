// The admin API's resources: accounts, keys, tokens, reservations, API keys (stored, through Identity) and
// endpoints, sessions (live, from the agent transports' SessionDirectory). Records become snake_case JSON
// here, field by field, so a hash or any field added to the store later never leaks by accident.
import { z } from 'zod'
import { PortholeError } from '../core/errors.js'
import type { EndpointInfo, SessionDirectory, SessionInfo } from '../core/session.js'
import { checkAccountName, type Identity } from '../identity/identity.js'
import type { Account, ApiKeyRecord, KeyRecord, Reservation, TokenRecord } from '../identity/model.js'
import { paginate } from './paginate.js'
import type { CapturedRequest } from '../inspect/record.js'
import { toNgrokRequest } from '../inspect/ngrok-shape.js'
import type { Route, RouteContext } from './router.js'

const LIST_QUERY = ['limit', 'after'] as const
const LIST_BY_ACCOUNT = [...LIST_QUERY, 'account'] as const
const MAX_ACL_ENTRIES = 100

const text = z.string().max(4096)
const acl = z.array(z.string().max(300)).max(MAX_ACL_ENTRIES).optional()
const bodies = {
  account: z.strictObject({ name: text }),
  key: z.strictObject({ account: text, public_key: z.string().max(16_384), acl, description: text.optional() }),
  token: z.strictObject({ account: text, acl, description: text.optional() }),
  reservation: z.strictObject({ account: text, kind: z.enum(['domain', 'tcp']), value: z.union([text, z.number()]) }),
  apiKey: z.strictObject({ description: text.optional() }),
}

/** Checks a body against its schema; the first problem becomes a PH_5001 naming the field. */
function parseBody<T> (schema: z.ZodType<T>, body: unknown): T {
  const result = schema.safeParse(body)
  if (result.success) return result.data
  const issue = result.error.issues[0]!
  if (issue.code === 'unrecognized_keys') throw new PortholeError('PH_5001', `field ${issue.keys.map((k) => JSON.stringify(k)).join(', ')} (not known here)`)
  const field = issue.path.map(String).join('.')
  throw new PortholeError('PH_5001', `field ${JSON.stringify(field)}: ${issue.message}`)
}

const path = (...parts: string[]): string => `/api/${parts.map(encodeURIComponent).join('/')}`

export const json = {
  account: (a: Account) => ({ name: a.name, uri: path('accounts', a.name), created_at: a.createdAt }),
  key: (k: KeyRecord) => ({
    id: k.id, uri: path('keys', k.id), account: k.account, fingerprint: k.fingerprint, public_key: k.publicKey,
    acl: [...k.acl], description: k.description, created_at: k.createdAt,
  }),
  token: (t: TokenRecord) => ({ id: t.id, uri: path('tokens', t.id), account: t.account, acl: [...t.acl], description: t.description, created_at: t.createdAt }),
  reservation: (r: Reservation) => ({ id: r.id, uri: path('reservations', r.id), account: r.account, kind: r.kind, value: r.value, created_at: r.createdAt }),
  apiKey: (k: ApiKeyRecord) => ({ id: k.id, uri: path('api_keys', k.id), description: k.description, created_at: k.createdAt }),
  endpoint: (e: EndpointInfo) => ({ id: e.id, uri: path('endpoints', e.id), urls: [...e.urls], proto: e.proto, host: e.host, session_id: e.sessionId, account: e.account }),
  session: (s: SessionInfo) => ({
    id: s.id,
    uri: path('sessions', s.id),
    account: s.account,
    credential: { kind: s.credential.kind, id: s.credential.id },
    fingerprint: s.fingerprint,
    client_type: s.clientType,
    client_version: s.clientVersion,
    remote_addr: s.remoteAddr,
    remote_port: s.remotePort,
    endpoints: s.endpoints.map(json.endpoint),
    bytes_in: s.bytesIn,
    bytes_out: s.bytesOut,
    open_streams: s.openStreams,
    started_at: s.startedAt,
  }),
}

function found<T> (item: T | undefined, what: string, id: string): T {
  if (item === undefined) throw new PortholeError('PH_5003', `${what} ${JSON.stringify(id)}`)
  return item
}

/** `?account=` of a list: checked and normalised, and the account must exist. */
function accountFilter (identity: Identity, query: URLSearchParams): string | undefined {
  const name = query.get('account')
  if (name === null) return undefined
  return identity.getAccount(checkAccountName(name)).name
}

const noContent = { status: 204 } as const
/** Captured requests of one endpoint in one answer at most (ngrok's agent API has no paging for them either). */
const MAX_REQUESTS = 500

/** The captured requests of a live endpoint, newest first; undefined when no such endpoint is bound. */
export type EndpointRequests = (endpointId: string) => CapturedRequest[] | undefined

export function routes (identity: Identity, sessions: SessionDirectory, requests?: EndpointRequests): Route[] {
  const liveEndpoints = (): EndpointInfo[] => sessions.sessions().flatMap((s) => s.endpoints)
  const list = <T>(resource: string, items: readonly T[], idOf: (item: T) => string, ctx: RouteContext, toJson: (item: T) => unknown) =>
    ({ status: 200, body: paginate(resource, path(resource), items, idOf, ctx.query, toJson) })
  const created = <T extends { uri: string }>(body: T) => ({ status: 201, body, location: body.uri })

  /** GET /api/<resource>[?account=], GET and DELETE /api/<resource>/{id} of a stored record kind. */
  const stored = <T extends { id: string }>(resource: string, what: string, items: (account?: string) => T[], toJson: (item: T) => unknown, remove: (id: string) => Promise<void>, byAccount = true): Route[] => [
    {
      method: 'GET',
      pattern: `/api/${resource}`,
      query: byAccount ? LIST_BY_ACCOUNT : LIST_QUERY,
      handle: (ctx) => list(resource, items(byAccount ? accountFilter(identity, ctx.query) : undefined), (item) => item.id, ctx, toJson),
    },
    { method: 'GET', pattern: `/api/${resource}/{id}`, handle: ({ params }) => ({ status: 200, body: toJson(found(items().find((item) => item.id === params.id), what, params.id!)) }) },
    {
      method: 'DELETE',
      pattern: `/api/${resource}/{id}`,
      handle: async ({ params }) => {
        await remove(params.id!)
        return noContent
      },
    },
  ]

  return [
    // --- accounts (named, not numbered: the name is the id)
    { method: 'GET', pattern: '/api/accounts', query: LIST_QUERY, handle: (ctx) => list('accounts', identity.listAccounts(), (a) => a.name, ctx, json.account) },
    {
      method: 'POST',
      pattern: '/api/accounts',
      handle: async ({ body }) => created(json.account(await identity.createAccount(parseBody(bodies.account, body).name))),
    },
    { method: 'GET', pattern: '/api/accounts/{name}', handle: ({ params }) => ({ status: 200, body: json.account(identity.getAccount(checkAccountName(params.name!))) }) },
    {
      method: 'DELETE',
      pattern: '/api/accounts/{name}',
      handle: async ({ params }) => {
        await identity.deleteAccount(checkAccountName(params.name!))
        return noContent
      },
    },

    // --- SSH keys
    ...stored('keys', 'key', (account) => identity.listKeys(account), json.key, (id) => identity.removeKey(id)),
    {
      method: 'POST',
      pattern: '/api/keys',
      handle: async ({ body }) => {
        const input = parseBody(bodies.key, body)
        const record = await identity.addKey(checkAccountName(input.account), input.public_key, { acl: input.acl, description: input.description })
        return created(json.key(record))
      },
    },

    // --- authtokens (the secret is in the creation answer only)
    ...stored('tokens', 'token', (account) => identity.listTokens(account), json.token, (id) => identity.revokeToken(id)),
    {
      method: 'POST',
      pattern: '/api/tokens',
      handle: async ({ body }) => {
        const input = parseBody(bodies.token, body)
        const { record, token } = await identity.createToken(checkAccountName(input.account), { acl: input.acl, description: input.description })
        return created({ ...json.token(record), token })
      },
    },

    // --- reservations
    ...stored('reservations', 'reservation', (account) => identity.listReservations(account), json.reservation, (id) => identity.unreserve(id)),
    {
      method: 'POST',
      pattern: '/api/reservations',
      handle: async ({ body }) => {
        const input = parseBody(bodies.reservation, body)
        return created(json.reservation(await identity.reserve(checkAccountName(input.account), input.kind, String(input.value))))
      },
    },

    // --- admin API keys (the key is in the creation answer only)
    ...stored('api_keys', 'API key', () => identity.listApiKeys(), json.apiKey, (id) => identity.revokeApiKey(id), false),
    {
      method: 'POST',
      pattern: '/api/api_keys',
      handle: async ({ body }) => {
        const { record, key } = await identity.createApiKey({ description: parseBody(bodies.apiKey, body).description })
        return created({ ...json.apiKey(record), key })
      },
    },

    // --- live endpoints and sessions
    {
      method: 'GET',
      pattern: '/api/endpoints',
      query: LIST_BY_ACCOUNT,
      handle: (ctx) => {
        const account = ctx.query.get('account')
        return list('endpoints', liveEndpoints().filter((e) => account === null || e.account === account), (e) => e.id, ctx, json.endpoint)
      },
    },
    { method: 'GET', pattern: '/api/endpoints/{id}', handle: ({ params }) => ({ status: 200, body: json.endpoint(found(liveEndpoints().find((e) => e.id === params.id), 'endpoint', params.id!)) }) },
    {
      // The endpoint's captured requests in the inspector's (ngrok's agent API) shape: {requests, uri}.
      method: 'GET',
      pattern: '/api/endpoints/{id}/requests',
      query: ['limit'],
      handle: ({ params, query }) => {
        const limitText = query.get('limit')
        const limit = limitText === null ? 50 : Number(limitText)
        if (!/^\d{1,3}$/.test(limitText ?? '50') || limit < 1 || limit > MAX_REQUESTS) throw new PortholeError('PH_5001', `limit ${JSON.stringify(limitText)} (want 1-${MAX_REQUESTS})`)
        const records = found(requests?.(params.id!), 'endpoint', params.id!)
        return { status: 200, body: { requests: records.slice(0, limit).map(toNgrokRequest), uri: `${path('endpoints', params.id!)}/requests` } }
      },
    },
    {
      method: 'GET',
      pattern: '/api/sessions',
      query: LIST_BY_ACCOUNT,
      handle: (ctx) => {
        const account = ctx.query.get('account')
        return list('sessions', sessions.sessions().filter((s) => account === null || s.account === account), (s) => s.id, ctx, json.session)
      },
    },
    { method: 'GET', pattern: '/api/sessions/{id}', handle: ({ params }) => ({ status: 200, body: json.session(found(sessions.sessions().find((s) => s.id === params.id), 'session', params.id!)) }) },
    {
      method: 'DELETE',
      pattern: '/api/sessions/{id}',
      handle: async ({ params }) => {
        if (!(await sessions.kill(params.id!))) throw new PortholeError('PH_5003', `session ${JSON.stringify(params.id)}`)
        return noContent
      },
    },
  ]
}
