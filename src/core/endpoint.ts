// The seam between agent transports and the edge: an agent produces (EndpointSpec, Dialer, Owner); the
// registry binds it into an Endpoint; the edge routes public traffic to it and calls dial(). The edge keeps its
// own per-endpoint state (pools, listeners, the compiled policy) keyed by endpoint id and drops it when the
// registry reports the unbind; nothing is parked on the Endpoint.
import type { Duplex } from 'node:stream'
import { PortholeError } from './errors.js'

export type EndpointProto = 'http' | 'tcp' | 'tls'

export interface EndpointSpec {
  readonly proto: EndpointProto
  /** 'rewrite' sends the upstream Host header as the upstream address; another value sends that value. */
  readonly hostHeader?: string
  /** http endpoints: which public schemes serve it (--schemes); plain HTTP is redirected when only https. */
  readonly schemes: { readonly http: boolean, readonly https: boolean }
  /** http endpoints: how the edge speaks to the service through the tunnel. */
  readonly upstream: { readonly tls: boolean, readonly verify: boolean, readonly cas: string | null, readonly protocol: 'http1' | 'http2' }
  /** tcp/tls endpoints: PROXY protocol version prepended to each stream (0: none). */
  readonly proxyProto?: 0 | 1 | 2
  /** http endpoints: whether the edge captures its requests for the inspector (--inspect=false: no). Always false for tcp/tls. */
  readonly inspect: boolean
}

/** Who owns a name. `persistent` owners (a key) can come back for their names; anonymous ones cannot. */
export interface Owner {
  readonly id: string
  readonly persistent: boolean
  /**
   * Logged in with a credential the operator issued (an account's key or authtoken, an authorized_keys key),
   * not merely accepted in anonymous mode. Only these may make the gateway spend shared quotas (ACME orders).
   */
  readonly known?: boolean
  /** The account it logs in as; undefined for authorized_keys keys (the implicit default account) and anonymous clients. */
  readonly account?: string
  /** The credential's ACL: why binding `key` (host, `*.suffix`, `tcp:PORT`) is refused, or null when allowed. */
  readonly refuses?: (key: string) => string | null
  /** Whether the credential's ACL names `key` itself (not `bind:*`): then it may bind next to others' names. */
  readonly grants?: (key: string) => boolean
}

/** The public client a stream is opened for (what SSH puts in a forwarded-tcpip channel as originator). */
export interface ClientAddress {
  readonly remoteAddress: string
  readonly remotePort: number
}

/**
 * Opens one bidirectional stream to the agent's upstream for the public client `client`. The stream behaves like
 * a net.Socket (half-close with end(), destroy(error) fails it, 'error' before 'close' on an abort): the transport
 * fixes its own library's quirks before handing it over.
 */
export type Dialer = (client: ClientAddress) => Promise<Duplex>

/**
 * What a Dialer rejects with when its agent session carries as many streams as it may
 * (--max-streams-per-session): PH_3002, told apart from an agent refusing the stream, because the edge may then
 * close one of the session's streams it keeps idle and dial again.
 */
export class StreamsFullError extends PortholeError {
  constructor (limit: number) {
    super('PH_3002', `${limit} streams already open on this agent session (the gateway's max-streams-per-session)`)
  }
}

export interface RequestRecord {
  readonly method: string
  readonly path: string
  readonly status: number
  readonly durationMs: number
  readonly clientIp: string
  readonly errorCode?: string
  /** tcp/tls connections: bytes from and to the public client. */
  readonly bytesIn?: number
  readonly bytesOut?: number
}

export interface EndpointHooks {
  /** Called once per finished HTTP request (the terminal's request log). */
  onRequest?: (record: RequestRecord) => void
  /**
   * Called when the registry removes this endpoint: for another session of the same owner (no reason), or
   * because the name was reserved for another account (the reason).
   */
  onEvicted?: (reason?: Error) => void
}

/** Which agent session holds an endpoint (what observers and the admin API name it by). */
export interface AgentRef {
  readonly transport: 'ssh' | 'ngrok'
  readonly sessionId: string
}

export interface Endpoint {
  readonly id: string
  /** Exact host or '*.suffix' (http, tls); 'tcp:PORT' for tcp. */
  readonly host: string
  /** The public port of a tcp endpoint. */
  readonly port?: number
  readonly spec: EndpointSpec
  readonly owner: Owner
  readonly dial: Dialer
  readonly hooks: EndpointHooks
  readonly agent: AgentRef
}
