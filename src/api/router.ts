// A small router for the admin API: `/api/accounts/{name}`-style patterns, one handler per method. A path
// that matches no pattern is a 404 (PH_5003); a known path with another method is a 405 (PH_5006).
import { PortholeError } from '../core/errors.js'

export type Method = 'GET' | 'POST' | 'DELETE'

export interface Reply {
  readonly status: number
  readonly body?: unknown
  /** The created resource's path (a `location` header). */
  readonly location?: string
}

export interface RouteContext {
  readonly params: Readonly<Record<string, string>>
  readonly query: URLSearchParams
  /** The parsed JSON body (POST only; `{}` when empty). */
  readonly body: Record<string, unknown>
}

export interface Route {
  readonly method: Method
  readonly pattern: string
  /** Query parameters this route takes; any other is refused (PH_5001). */
  readonly query?: readonly string[]
  readonly handle: (ctx: RouteContext) => Promise<Reply> | Reply
}

interface Compiled {
  readonly segments: readonly string[]
  readonly methods: Map<string, Route>
}

export interface Match {
  readonly route: Route
  readonly params: Record<string, string>
}

/** A 405 that knows which methods the path takes (the `allow` header). */
export class MethodNotAllowed extends PortholeError {
  readonly allow: string

  constructor (method: string, allowed: readonly string[]) {
    super('PH_5006', method.slice(0, 16))
    this.allow = allowed.join(', ')
  }
}

export class Router {
  readonly #routes: Compiled[] = []

  constructor (routes: readonly Route[]) {
    for (const route of routes) {
      let compiled = this.#routes.find((r) => r.segments.join('/') === route.pattern.slice(1))
      if (!compiled) {
        compiled = { segments: route.pattern.slice(1).split('/'), methods: new Map() }
        this.#routes.push(compiled)
      }
      compiled.methods.set(route.method, route)
    }
  }

  /** The route for a request, or throws PH_5003 / PH_5006. */
  match (method: string, path: string): Match {
    const parts = path.replace(/\/+$/, '').slice(1).split('/')
    for (const compiled of this.#routes) {
      const params = matchSegments(compiled.segments, parts)
      if (!params) continue
      const route = compiled.methods.get(method)
      if (!route) throw new MethodNotAllowed(method, [...compiled.methods.keys()])
      return { route, params }
    }
    throw new PortholeError('PH_5003', `API path ${path.slice(0, 200)}`)
  }
}

function matchSegments (segments: readonly string[], parts: readonly string[]): Record<string, string> | null {
  if (segments.length !== parts.length) return null
  const params: Record<string, string> = {}
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!
    const part = parts[i]!
    if (segment.startsWith('{')) {
      if (part === '') return null
      let value: string
      try {
        value = decodeURIComponent(part)
      } catch {
        return null
      }
      params[segment.slice(1, -1)] = value
    } else if (segment !== part) {
      return null
    }
  }
  return params
}
