// The back-channel calls a login makes to an identity provider: discovery documents, the token endpoint, the
// userinfo endpoint. Bounded in time and size: a slow or huge answer fails the login, it never ties up the gateway.
import { request } from 'undici'
import { policyDispatcher, refusedUrl, unreachableDetail } from '../outbound.js'

const TIMEOUT_MS = 10_000
const MAX_BYTES = 1024 * 1024

/** A provider call that failed; `detail` is short and safe to show the visitor (no bodies, no secrets). */
export class ProviderError extends Error {}

export interface ProviderCall {
  readonly method?: 'GET' | 'POST'
  readonly headers?: Record<string, string>
  /** Form fields (application/x-www-form-urlencoded). */
  readonly form?: Record<string, string>
  /**
   * Whether the URL may be a non-public address (outbound.ts). True for the operator's own provider table;
   * URLs an SSH user chose (an OpenID issuer and what its discovery names) pass false.
   */
  readonly allowPrivate?: boolean
}

/** Calls `url` and returns its JSON; a non-2xx answer throws, naming the OAuth `error` if it has one. */
export async function callProvider (url: string, call: ProviderCall = {}): Promise<unknown> {
  const allowPrivate = call.allowPrivate ?? true
  const refusal = refusedUrl(url, allowPrivate)
  if (refusal) throw new ProviderError(`${new URL(url).host} refused: ${refusal}`)
  let response
  try {
    response = await request(url, {
      dispatcher: policyDispatcher(allowPrivate),
      method: call.method ?? 'GET',
      headers: {
        accept: 'application/json',
        'user-agent': 'porthole', // GitHub's API refuses requests without one
        ...(call.form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
        ...call.headers,
      },
      body: call.form ? new URLSearchParams(call.form).toString() : undefined,
      headersTimeout: TIMEOUT_MS,
      bodyTimeout: TIMEOUT_MS, // and no redirects: undici's request follows none
    })
  } catch (error) {
    throw new ProviderError(unreachableDetail(url, error))
  }
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of response.body as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > MAX_BYTES) {
      response.body.destroy()
      throw new ProviderError(`${new URL(url).pathname} answered more than ${MAX_BYTES} bytes`)
    }
    chunks.push(chunk)
  }
  let json: unknown
  try {
    json = JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    json = undefined
  }
  const object = json !== null && typeof json === 'object' && !Array.isArray(json) ? json as Record<string, unknown> : undefined
  const oauthError = typeof object?.error === 'string' ? object.error.replace(/[^\w.-]/g, '').slice(0, 64) : ''
  if (response.statusCode < 200 || response.statusCode > 299 || oauthError !== '') {
    throw new ProviderError(`${new URL(url).pathname} answered ${response.statusCode}${oauthError ? ` ${oauthError}` : ''}`)
  }
  if (json === undefined) throw new ProviderError(`${new URL(url).pathname} did not answer JSON`)
  return json
}

/** The JSON object `url` answers (token and userinfo endpoints, discovery). */
export async function callForObject (url: string, call: ProviderCall = {}): Promise<Record<string, unknown>> {
  const json = await callProvider(url, call)
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw new ProviderError(`${new URL(url).pathname} did not answer a JSON object`)
  return json as Record<string, unknown>
}

export const str = (value: unknown): string => (typeof value === 'string' ? value : typeof value === 'number' ? String(value) : '')
