// `ssh gateway urls`: the URLs of the caller's endpoints online now, each with the -R it came from. A session
// started with `ssh -N` (or `dbclient -N`) has no channel to print a banner on; this is how its user learns
// the URLs. Endpoints are matched by owner (the same key, or any key or authtoken of the same account), so
// nobody lists anyone else's. Which -R an endpoint came from is known only to the SSH connection that bound
// it; it notes it here (a WeakMap: nothing outlives the endpoint).
import type { Endpoint, Owner } from '../../core/endpoint.js'
import type { Registry } from '../../core/registry.js'
import { forwardLabel, type EndpointLine } from './terminal.js'

const binds = new WeakMap<Endpoint, string>()

/** Notes the -R (`bindAddr:port`) an endpoint was bound for. */
export function noteForward (endpoint: Endpoint, bind: string): void {
  binds.set(endpoint, bind)
}

export interface OwnedUrl extends EndpointLine {
  /** False for endpoints of other agents (the ngrok SDK): `bind` is then their proto. */
  readonly ssh: boolean
}

/** Every URL of `owner`'s bound endpoints, in the registry's order. */
export function ownedUrls (registry: Registry, urlsFor: (endpoint: Endpoint) => string[], owner: Owner): OwnedUrl[] {
  return registry.endpoints()
    .filter((endpoint) => endpoint.owner.id === owner.id)
    .flatMap((endpoint) => {
      const bind = binds.get(endpoint)
      return urlsFor(endpoint).map((url) => ({ url, proto: endpoint.spec.proto, bind: bind ?? endpoint.spec.proto, ssh: bind !== undefined }))
    })
}

/** The text lines: `URL  -R bind` (other agents: `URL  (ngrok agent)`), URLs padded to one column. */
export function urlsText (urls: readonly OwnedUrl[]): string {
  const width = Math.max(0, ...urls.map((u) => u.url.length))
  return urls.map((u) => `${u.url.padEnd(width)}  ${u.ssh ? forwardLabel(u.bind) : '(ngrok agent)'}`).join('\n')
}

/** The JSON lines, in the shape of the banner's endpoint events (`bind` null for other agents). */
export function urlsJson (urls: readonly OwnedUrl[]): string {
  return urls.map((u) => JSON.stringify({ event: 'endpoint', url: u.url, proto: u.proto, bind: u.ssh ? u.bind : null })).join('\n')
}
