// Which `-L` (direct-tcpip) destinations the gateway answers, and the owner's view it answers them with.
// Only localhost:4040 in its three spellings (what `ssh -L 4040:localhost:4040` and `-L 9000:127.0.0.1:4040`
// send; the user's own side may use any local port): the gateway answers that channel itself with the
// session owner's inspector, and refuses every other destination, other ports of localhost included (the
// admin API listens on 127.0.0.1:4040 of the gateway's host: the gateway must never dial anything for a client).
import type { Endpoint, Owner } from '../../core/endpoint.js'
import type { Registry } from '../../core/registry.js'
import type { InspectorView, TunnelView } from '../../inspect/server.js'

export const INSPECTOR_PORT = 4040
const LOCAL_NAMES = new Set(['localhost', '127.0.0.1', '::1', '[::1]'])

export function acceptsDirect (host: string, port: number): boolean {
  return port === INSPECTOR_PORT && LOCAL_NAMES.has(host.toLowerCase())
}

export interface ViewContext {
  readonly registry: Registry
  urlsFor (endpoint: Endpoint): string[]
}

export interface ViewSession {
  /** The `-R` bind (`localhost:80`) of an endpoint of this session, else undefined. */
  forwardOf (endpoint: Endpoint): string | undefined
  describe (): Record<string, unknown>
}

/** The owner's view: every endpoint the owner has online (any session, any transport), and this session. */
export function inspectorView (ctx: ViewContext, owner: Owner, session: ViewSession): InspectorView {
  return {
    ownerId: owner.id,
    account: owner.account ?? null,
    tunnels: (): TunnelView[] => ctx.registry.endpoints()
      .filter((endpoint) => endpoint.owner.id === owner.id)
      .map((endpoint) => ({
        name: endpoint.host,
        publicUrls: ctx.urlsFor(endpoint),
        proto: endpoint.spec.proto,
        addr: session.forwardOf(endpoint) ?? '',
        inspect: endpoint.spec.proto === 'http' && (endpoint.spec as { inspect?: boolean }).inspect !== false,
      })),
    session: () => session.describe(),
  }
}
