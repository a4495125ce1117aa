// Pagination for every list of the admin API, ngrok's way: `?limit=` (1-100, default 50) and `?after=<id>`;
// items are ordered by id, so a page boundary stays put while items before or after it come and go.
import { PortholeError } from '../core/errors.js'

export const DEFAULT_LIMIT = 50
export const MAX_LIMIT = 100

export interface Page {
  readonly [resource: string]: unknown
  readonly uri: string
  readonly next_page_uri: string | null
}

/**
 * One page of `items` as `{<resource>: [...], uri, next_page_uri}`. `filters` are the other query parameters
 * of the list (such as `account`), carried into the next page's URI.
 */
export function paginate<T> (resource: string, path: string, items: readonly T[], idOf: (item: T) => string, query: URLSearchParams, toJson: (item: T) => unknown): Page {
  const limitText = query.get('limit')
  const limit = limitText === null ? DEFAULT_LIMIT : Number(limitText)
  if (!/^\d{1,3}$/.test(limitText ?? '50') || limit < 1 || limit > MAX_LIMIT) {
    throw new PortholeError('PH_5001', `limit ${JSON.stringify(limitText)} (want 1-${MAX_LIMIT})`)
  }
  const after = query.get('after')
  const sorted = [...items].sort((a, b) => compare(idOf(a), idOf(b)))
  const rest = after === null ? sorted : sorted.filter((item) => compare(idOf(item), after) > 0)
  const page = rest.slice(0, limit)
  let next: string | null = null
  if (rest.length > limit) {
    const params = new URLSearchParams()
    for (const [key, value] of query) if (key !== 'after' && key !== 'limit') params.append(key, value)
    params.set('limit', String(limit))
    params.set('after', idOf(page.at(-1)!))
    next = `${path}?${params.toString()}`
  }
  return { [resource]: page.map(toJson), uri: path, next_page_uri: next }
}

function compare (a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}
