// Binding one endpoint, the same for every agent transport: the registry takes the name (or port), then the
// edge attaches its state (pool, listener, compiled policy). A tcp port some other program listens on is
// skipped for another one from the pool; a port asked for by number is refused instead. What fails half way
// is unbound again, so nothing is left half-bound.
import type { Logger } from 'pino'
import { PortholeError } from '../core/errors.js'
import type { Endpoint } from '../core/endpoint.js'
import type { BindRequest, Registry, TcpBindRequest } from '../core/registry.js'
import type { CompiledPolicy, CompileOptions } from '../policy/compiled.js'
import { observeLimit } from '../observe/channels.js'

export interface Binder {
  readonly registry: Registry
  /** Called once the endpoint is bound, so an edge can attach (listen, build its upstream state). */
  readonly attach: (endpoint: Endpoint, compiled: CompiledPolicy) => Promise<void> | void
}

/** What every transport is lent to bind endpoints: the binder, the policy compiler's options, the URL maker. */
export interface EndpointContext extends Binder {
  /** What endpoint policies are compiled with: the login actions' session secret, OAuth provider URLs. */
  readonly compile: CompileOptions
  /** The public URLs of an endpoint, main one first: https://abc.localhost:8443, tcp://localhost:20123 ... */
  readonly urlsFor: (endpoint: Endpoint) => string[]
  /** The TCP port pool, and the host names a tcp bind may name besides '' and localhost (tcp host, domain). */
  readonly tcpPorts: { lo: number, hi: number }
  readonly tcpHosts: readonly string[]
}

/** Ports found taken by another program before a tcp bind with port 0 gives up. */
const MAX_PORT_RETRIES = 8

/** An http or tls endpoint: the name from the registry, then the edge's state. */
export async function bindNamed (binder: Binder, request: BindRequest, compiled: CompiledPolicy): Promise<Endpoint> {
  const endpoint = counted(() => binder.registry.bind(request))
  try {
    await binder.attach(endpoint, compiled)
  } catch (error) {
    binder.registry.unbind(endpoint, { keepHold: false })
    throw error
  }
  return endpoint
}

/** A tcp endpoint: a port from the registry, then a listener on it; a port another program holds is skipped. */
export async function bindTcp (binder: Binder, request: Omit<TcpBindRequest, 'exclude'>, compiled: CompiledPolicy, log: Logger): Promise<Endpoint> {
  const exclude = new Set<number>()
  for (;;) {
    const endpoint = counted(() => binder.registry.bindTcp({ ...request, exclude }))
    try {
      await binder.attach(endpoint, compiled)
      return endpoint
    } catch (error) {
      binder.registry.unbind(endpoint, { keepHold: false })
      log.info({ port: endpoint.port, err: (error as Error).message }, 'tcp port unavailable')
      if (request.port !== 0 || exclude.size >= MAX_PORT_RETRIES) throw new PortholeError('PH_1030', String(endpoint.port), { cause: error })
      exclude.add(endpoint.port!)
    }
  }
}

/** The registry's refusals for want of room (holds, the port pool) are caps hit (observe/channels.ts). */
function counted (bind: () => Endpoint): Endpoint {
  try {
    return bind()
  } catch (error) {
    observeLimit(error)
    throw error
  }
}
