// A real identity provider for the login tests: `oidc-provider` (OpenID Connect and plain OAuth 2.0) on a
// loopback port, with its development login and consent pages; and a small browser: it follows redirects
// by hand, keeps cookies per host, and fills the provider's login form as a given user.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import Provider from 'oidc-provider'
import { Agent, request } from 'undici'

export interface IdentityProvider {
  readonly issuer: string
  /** Registers the clients (their redirect URIs are known once the gateway listens) and starts answering. */
  start (clients: Record<string, unknown>[]): void
  close (): Promise<void>
}

/** Listens first (the gateway's config needs the URL), answers once `start` has the clients. */
export async function listenIdentityProvider (): Promise<IdentityProvider> {
  let handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined
  const server: Server = createServer((req, res) => {
    if (handler) handler(req, res)
    else { res.statusCode = 503; res.end() }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  return {
    issuer,
    start (clients) {
      const provider = new Provider(issuer, {
        clients: clients as never,
        cookies: { keys: ['porthole-test-cookie-key'] },
        ttl: { Interaction: 600, Session: 3600, Grant: 3600, AccessToken: 600, IdToken: 600 },
        claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
        // Every login name is an account: `alice` is alice@example.com, named Alice.
        findAccount: (_ctx, id) => ({
          accountId: id,
          claims: () => ({ sub: id, email: `${id}@example.com`, email_verified: true, name: id[0]!.toUpperCase() + id.slice(1) }),
        }),
      })
      provider.on('server_error', (_ctx, error) => { process.stderr.write(`oidc-provider: ${String(error)}\n`) })
      handler = provider.callback()
    },
    close: () => new Promise((resolve) => { server.closeAllConnections(); server.close(() => resolve()) }),
  }
}

export interface Page { readonly url: string, readonly status: number, readonly headers: Record<string, string | string[] | undefined>, readonly body: string }

/** A browser that talks to everything on 127.0.0.1 (the gateway's *.localhost names included) and keeps cookies.
 *  https URLs are verified with `ca` (the gateway's local CA) for their host name. */
export class Browser {
  /** host (without port) -> cookie name -> [value, path] */
  readonly cookies = new Map<string, Map<string, [string, string]>>()
  readonly #ca: string | undefined
  readonly #agents = new Map<string, Agent>()

  constructor (ca?: string) {
    this.#ca = ca
  }

  #agentFor (host: string): Agent {
    let agent = this.#agents.get(host)
    if (!agent) this.#agents.set(host, agent = new Agent({ connect: { ca: this.#ca, servername: host } }))
    return agent
  }

  cookieHeader (url: URL): string | undefined {
    const jar = this.cookies.get(url.hostname)
    if (!jar) return undefined
    const pairs = [...jar].filter(([, [, path]]) => url.pathname.startsWith(path)).map(([name, [value]]) => `${name}=${value}`)
    return pairs.length > 0 ? pairs.join('; ') : undefined
  }

  setCookie (host: string, name: string, value: string, path = '/'): void {
    let jar = this.cookies.get(host)
    if (!jar) this.cookies.set(host, jar = new Map())
    jar.set(name, [value, path])
  }

  #store (url: URL, header: string | string[] | undefined): void {
    for (const line of header === undefined ? [] : Array.isArray(header) ? header : [header]) {
      const [pair, ...attributes] = line.split(';').map((part) => part.trim())
      const eq = pair!.indexOf('=')
      const name = pair!.slice(0, eq)
      const path = attributes.find((a) => /^path=/i.test(a))?.slice(5) ?? '/'
      if (attributes.some((a) => /^max-age=0$/i.test(a)) || attributes.some((a) => /^expires=thu, 01 jan 1970/i.test(a))) this.cookies.get(url.hostname)?.delete(name)
      else this.setCookie(url.hostname, name, pair!.slice(eq + 1), path)
    }
  }

  /** One request, no redirects followed. */
  async fetch (target: string, init: { method?: string, form?: Record<string, string>, headers?: Record<string, string> } = {}): Promise<Page> {
    const url = new URL(target)
    const cookie = this.cookieHeader(url)
    const https = url.protocol === 'https:'
    const response = await request(`${url.protocol}//127.0.0.1:${url.port}${url.pathname}${url.search}`, {
      ...(https ? { dispatcher: this.#agentFor(url.hostname) } : {}),
      method: (init.method ?? (init.form ? 'POST' : 'GET')) as 'GET',
      headers: {
        host: url.host,
        ...(cookie ? { cookie } : {}),
        ...(init.form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}),
        ...init.headers,
      },
      body: init.form ? new URLSearchParams(init.form).toString() : undefined,
    })
    this.#store(url, response.headers['set-cookie'])
    return { url: url.toString(), status: response.statusCode, headers: response.headers, body: await response.body.text() }
  }

  /**
   * Follows redirects from `target`; on the provider's login page signs in as `user`, on its consent page
   * consents. Returns the first page that is neither a redirect nor one of those (or `stopAt`'s match).
   */
  async visit (target: string, user: string, stopAt?: (url: URL) => boolean): Promise<Page> {
    let page = await this.fetch(target)
    for (let hops = 0; hops < 20; hops++) {
      if (page.status >= 300 && page.status < 400) {
        const next = new URL(String(page.headers.location), page.url)
        if (stopAt?.(next)) return page
        page = await this.fetch(next.toString())
        continue
      }
      const form = /<form[^>]*action="([^"]+)"[\s\S]*?name="prompt" value="(\w+)"/.exec(page.body)
      if (page.status !== 200 || !form) return page
      const action = new URL(form[1]!.replace(/&amp;/g, '&'), page.url).toString()
      page = await this.fetch(action, { form: form[2] === 'login' ? { prompt: 'login', login: user, password: 'any' } : { prompt: form[2]! } })
    }
    throw new Error(`too many redirects from ${target}`)
  }
}
