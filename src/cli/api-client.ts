// The CLI's side of the admin API: one request function (undici fetch) that turns every failure into the
// line the user sees, `PH_NNNN: message`: the API's own JSON error, or PH_5009 naming the URL it could not reach.
import { fetch } from 'undici'
import { PortholeError } from '../core/errors.js'

const TIMEOUT_MS = 30_000

/** A failure to show as one line on stderr. */
export class CliError extends Error {
  readonly exitCode: number

  constructor (line: string, exitCode = 1) {
    super(line)
    this.exitCode = exitCode
  }

  static of (error: PortholeError, exitCode = 1): CliError {
    return new CliError(error.toLine(), exitCode)
  }
}

export interface ApiErrorBody { error_code: string, status_code: number, msg: string }

export class ApiClient {
  readonly #base: URL
  readonly #key: string

  constructor (baseUrl: string, key: string) {
    let base: URL
    try {
      base = new URL(baseUrl)
    } catch {
      throw CliError.of(new PortholeError('PH_5001', `--api-url ${JSON.stringify(baseUrl)} (want http://HOST:PORT)`), 2)
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') throw CliError.of(new PortholeError('PH_5001', `--api-url ${JSON.stringify(baseUrl)} (want http://HOST:PORT)`), 2)
    this.#base = base
    this.#key = key
  }

  /** Sends one request; resolves with the JSON answer (undefined for 204), or throws a CliError. */
  async request (method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<any> {
    const url = new URL(path, this.#base)
    const where = this.#base.origin
    let response
    try {
      response = await fetch(url, {
        method,
        headers: { authorization: `Bearer ${this.#key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(TIMEOUT_MS),
      })
    } catch (error) {
      const cause = (error as { cause?: { code?: string, message?: string } }).cause
      const why = (error as Error).name === 'TimeoutError' ? `no answer in ${TIMEOUT_MS / 1000}s` : cause?.code ?? cause?.message ?? (error as Error).message
      throw CliError.of(new PortholeError('PH_5009', `${where} (${why})`))
    }
    const text = await response.text()
    if (response.status === 204 && text === '') return undefined
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch {
      throw CliError.of(new PortholeError('PH_5009', `${where} (it answered ${response.status} without JSON: is it a Porthole admin API?)`))
    }
    if (!response.ok) {
      const error = parsed as Partial<ApiErrorBody>
      if (typeof error.error_code === 'string' && typeof error.msg === 'string') {
        const hint = error.error_code === 'PH_5005' ? ` (the key given by --api-key or PORTHOLE_API_KEY was refused by ${where})` : ''
        throw new CliError(`${error.error_code}: ${error.msg}${hint}`)
      }
      throw CliError.of(new PortholeError('PH_5009', `${where} (it answered ${response.status})`))
    }
    return parsed
  }

  /** Every item of a list, following next_page_uri. */
  async list (path: string, resource: string): Promise<any[]> {
    const items: unknown[] = []
    let next: string | null = `${path}${path.includes('?') ? '&' : '?'}limit=100`
    while (next !== null) {
      const page = await this.request('GET', next) as Record<string, unknown> & { next_page_uri: string | null }
      items.push(...(page[resource] as unknown[]))
      next = page.next_page_uri
    }
    return items
  }
}
