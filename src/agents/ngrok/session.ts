// One ngrok agent session: the muxado session inside the agent's TLS connection, the RPCs it sends (Auth first,
// then Bind/Unbind/SrvInfo), the heartbeat it opens, and the Proxy streams the gateway opens for each public
// connection. It turns the agent into what every transport hands the core: (EndpointSpec, Dialer, Owner). Binds
// go through the same option mapping, policy compiler, registry and edge as an SSH client's forwards.
import { randomBytes } from 'node:crypto'
import type { TLSSocket } from 'node:tls'
import type { Logger } from 'pino'
import { PortholeError, isPortholeError } from '../../core/errors.js'
import { StreamsFullError, type ClientAddress, type Endpoint, type Owner } from '../../core/endpoint.js'
import type { CredentialKind, SessionInfo } from '../../core/session.js'
import { bindNamed, bindTcp, type EndpointContext } from '../bind.js'
import { bindOptions, type RequestedName } from './bind-options.js'
import { WHY } from './option-table.js'
import {
  MAX_RPC_BYTES, StreamType, authReply, bindReply, chooseVersion, clientAddr, echoOpts, errorReply, ngrokError, parseAuth, parseBind,
  parseSrvInfo, parseUnbind, proxyHeader, readJsonValue, srvInfoReply, stopTunnelRequest, unbindReply, type Auth, type Bind,
} from './messages.js'
import { HEARTBEAT_TYPE, Heartbeater, Liveness, MuxCode, MuxSession, answerHeartbeats, type MuxStream } from './muxado/index.js'
import { observeDial, observeLimit, sessionChannel, type SessionObserved } from '../../observe/channels.js'

/** Who the agent logged in as (what the Auth RPC found). */
export interface AgentLogin {
  readonly owner: Owner
  readonly credential: { readonly kind: CredentialKind, readonly id: string | null }
}

export interface NgrokSessionContext extends EndpointContext {
  readonly log: Logger
  readonly maxTunnels: number
  readonly maxStreams: number
  /** An agent that sent no Auth by then is dropped. */
  readonly loginTimeoutMs: number
  /** How often the gateway sends its own heartbeat (the agent echoes it). */
  readonly heartbeatIntervalMs: number
  /** No heartbeat from the agent, or no echo of ours, for this long: the session is dead. */
  readonly heartbeatToleranceMs: number
  /** Checks an Auth's authtoken (throttled per source): the login, or a PortholeError to send back. */
  readonly login: (auth: Auth, ip: string) => Promise<AgentLogin>
  /** Whether a login may start one more session (budgets); a PortholeError when not. */
  readonly admit: (login: AgentLogin, ip: string) => PortholeError | null
  /** The session went live as `owner` (right after admit, in the same tick): counted in the session budgets. */
  readonly live?: (owner: Owner, ip: string) => void
}

interface Tunnel {
  readonly id: string
  readonly bind: Bind
  endpoint: Endpoint | null
}

type State =
  | { state: 'new' }
  | { state: 'authenticating' }
  | { state: 'live', login: AgentLogin, clientId: string, clientVersion: string }
  | { state: 'closed' }

/** The longest heartbeat interval an agent may announce and be waited for (twice that, then it is dropped). */
const MAX_AGENT_INTERVAL_MS = 10 * 60_000
/** How long a kill waits for the agent to take its StopTunnels in before closing the session. */
const STOP_GRACE_MS = 1000
/** Concurrent RPC streams one agent may have in flight (the SDK sends them one at a time). */
const MAX_RPCS = 8
/** The same before Auth succeeded, and how large a message may be then (an Auth is well under 4 KiB). */
const MAX_RPCS_BEFORE_AUTH = 2
const MAX_RPC_BYTES_BEFORE_AUTH = 64 * 1024
/** Tunnel ids an agent chooses (re-binds after a reconnect) are ours from before: short and plain. */
const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/

export class NgrokSession {
  readonly id: string
  readonly #socket: TLSSocket
  readonly #mux: MuxSession
  readonly #ctx: NgrokSessionContext
  readonly #log: Logger
  readonly #tunnels = new Map<string, Tunnel>()
  readonly #startedAt = new Date().toISOString()
  /** The agent's own heartbeats; its tolerance grows at Auth to fit the interval the agent announced. */
  #liveness: Liveness
  /** Echoes of the gateway's own heartbeats (the agent's beats alone do not prove it still reads). */
  readonly #echoes: Liveness
  #beating: Heartbeater | undefined
  readonly #remote: ClientAddress
  #state: State = { state: 'new' }
  #rpcs = 0
  #heartbeats = 0
  #proxyStreams = 0
  readonly #loginTimer: NodeJS.Timeout
  readonly #onEnd: (session: NgrokSession) => void

  constructor (id: string, socket: TLSSocket, ctx: NgrokSessionContext, onEnd: (session: NgrokSession) => void) {
    this.id = id
    this.#socket = socket
    this.#ctx = ctx
    this.#onEnd = onEnd
    this.#remote = { remoteAddress: socket.remoteAddress ?? '', remotePort: socket.remotePort ?? 0 }
    this.#log = ctx.log.child({ session: id, ip: this.#remote.remoteAddress })
    this.#mux = new MuxSession(socket, { maxStreams: ctx.maxStreams + MAX_RPCS + 2 })
    this.#liveness = this.#agentLiveness(ctx.heartbeatToleranceMs)
    this.#echoes = new Liveness({
      toleranceMs: ctx.heartbeatToleranceMs,
      onTimeout: () => {
        this.#log.info('the agent stopped echoing heartbeats: session dropped')
        this.close(MuxCode.None, 'heartbeat echo timeout')
      },
    })
    this.#loginTimer = setTimeout(() => {
      if (this.#state.state === 'live') return
      this.#log.info('no Auth in time: session dropped')
      this.close(MuxCode.None, 'no Auth in time')
    }, ctx.loginTimeoutMs)
    this.#mux.on('stream', (stream, type) => this.#onStream(stream, type))
    this.#mux.on('close', (error) => this.#ended(error?.message))
  }

  /** The agent's address (what the session budgets count per source). */
  get remoteAddr (): string {
    return this.#remote.remoteAddress
  }

  get login (): AgentLogin | null {
    return this.#state.state === 'live' ? this.#state.login : null
  }

  get live (): boolean {
    return this.#state.state === 'live'
  }

  /** What the admin API lists. */
  info (): SessionInfo | null {
    if (this.#state.state !== 'live') return null
    const { login, clientVersion } = this.#state
    return {
      id: this.id,
      clientType: 'ngrok',
      account: login.owner.account ?? null,
      credential: login.credential,
      fingerprint: null,
      clientVersion,
      remoteAddr: this.#remote.remoteAddress,
      remotePort: this.#remote.remotePort,
      startedAt: this.#startedAt,
      bytesIn: this.#socket.bytesRead,
      bytesOut: this.#socket.bytesWritten,
      openStreams: this.#proxyStreams,
      endpoints: [...this.#tunnels.values()].flatMap((tunnel) => tunnel.endpoint === null ? [] : [{
        id: tunnel.endpoint.id,
        urls: this.#ctx.urlsFor(tunnel.endpoint),
        proto: tunnel.endpoint.spec.proto,
        host: tunnel.endpoint.host,
        sessionId: this.id,
        account: login.owner.account ?? null,
      }]),
    }
  }

  /**
   * Ends the session: its endpoints go at once, each tunnel is told why (the SDK closes that listener with the
   * error and does not bind it again when it reconnects), then GOAWAY once the agent took the StopTunnels in (or
   * after a second: a dead agent must not hold the kill).
   */
  async kill (reason: PortholeError): Promise<void> {
    const tunnels = [...this.#tunnels.values()]
    for (const tunnel of tunnels) {
      if (tunnel.endpoint !== null) this.#ctx.registry.unbind(tunnel.endpoint, { keepHold: true })
      tunnel.endpoint = null
    }
    const told = tunnels.map((tunnel) => this.#stopTunnel(tunnel, reason))
    let timer: NodeJS.Timeout | undefined
    await Promise.race([Promise.all(told), new Promise((resolve) => { timer = setTimeout(resolve, STOP_GRACE_MS) })])
    clearTimeout(timer)
    this.close(MuxCode.None, reason.toLine())
  }

  close (code: number = MuxCode.None, debug = ''): void {
    if (this.#state.state === 'closed') return
    this.#mux.close(code, debug)
    this.#ended(debug)
  }

  #ended (why: string | undefined): void {
    if (this.#state.state === 'closed') return
    const wasLive = this.#state.state === 'live'
    const last = wasLive && sessionChannel.hasSubscribers ? this.info() : null
    this.#state = { state: 'closed' }
    clearTimeout(this.#loginTimer)
    this.#beating?.stop()
    this.#liveness.stop()
    this.#echoes.stop()
    for (const tunnel of this.#tunnels.values()) {
      if (tunnel.endpoint !== null) this.#ctx.registry.unbind(tunnel.endpoint)
      tunnel.endpoint = null
    }
    this.#tunnels.clear()
    if (!this.#mux.closed) this.#mux.destroy()
    this.#socket.destroy()
    if (wasLive) this.#log.info({ reason: why }, 'ngrok session ended')
    if (last !== null) sessionChannel.publish({ event: 'stop', session: last, ...(why ? { reason: why } : {}) } satisfies SessionObserved)
    this.#onEnd(this)
  }

  // --- streams the agent opens ------------------------------------------------------------------------

  #onStream (stream: MuxStream, type: number): void {
    stream.on('error', () => {})
    if (type === HEARTBEAT_TYPE) {
      // One heartbeat stream per agent (each may hold a window of echoes): a second one is reset.
      if (this.#heartbeats > 0) return void stream.destroy()
      this.#heartbeats++
      stream.once('close', () => { this.#heartbeats-- })
      answerHeartbeats(stream, { beat: () => this.#liveness.beat() })
      this.#liveness.start()
      return
    }
    // Before Auth a stranger gets two small RPCs (SrvInfo, Auth) at a time; after, eight of up to 1 MiB.
    const live = this.#state.state === 'live'
    if (this.#rpcs >= (live ? MAX_RPCS : MAX_RPCS_BEFORE_AUTH)) {
      stream.destroy()
      return
    }
    this.#rpcs++
    stream.once('close', () => { this.#rpcs-- })
    readJsonValue(stream, live ? MAX_RPC_BYTES : MAX_RPC_BYTES_BEFORE_AUTH).then(
      (value) => this.#rpc(type, value),
      (error: unknown) => { throw isPortholeError(error) ? error : new PortholeError('PH_1070', (error as Error).message) },
    ).then((reply) => {
      stream.end(reply)
      stream.resume() // read on to the agent's FIN, so the stream closes (and leaves the RPC count)
    }, (error: unknown) => {
      const refusal = isPortholeError(error) ? error : new PortholeError('PH_1070', (error as Error).message)
      this.#log.info({ rpc: typeName(type), err: refusal.toLine() }, 'ngrok rpc refused')
      stream.end(errorReply(ngrokError(refusal)))
      stream.resume()
      // An Auth that failed leaves nothing to talk about: the SDK reports the error and retries on its own.
      if (type === StreamType.Auth && this.#state.state !== 'live') setImmediate(() => this.close(MuxCode.None, refusal.toLine()))
    })
  }

  async #rpc (type: number, value: Record<string, unknown>): Promise<string> {
    if (this.#state.state === 'closed') throw new PortholeError('PH_1021')
    switch (type) {
      case StreamType.SrvInfo:
        parseSrvInfo(value)
        return srvInfoReply('porthole')
      case StreamType.Auth:
        return this.#auth(parseAuth(value))
    }
    if (this.#state.state !== 'live') throw new PortholeError('PH_1081', typeName(type))
    switch (type) {
      case StreamType.Bind:
        return this.#bind(parseBind(value))
      case StreamType.Unbind:
        return this.#unbind(parseUnbind(value).id)
      case StreamType.StartTunnelWithLabel:
        throw new PortholeError('PH_1071', 'labeled tunnels (StartTunnelWithLabel: ngrok edges and labels); bind an endpoint with a url/domain instead')
      default:
        throw new PortholeError('PH_1071', `the ${typeName(type)} request`)
    }
  }

  async #auth (auth: Auth): Promise<string> {
    if (this.#state.state !== 'new') throw new PortholeError('PH_1070', 'a second Auth on one session')
    const version = chooseVersion(auth)
    if (version === null) throw new PortholeError('PH_1070', `protocol versions ${JSON.stringify(auth.versions)} (Porthole speaks 3 and 2)`)
    this.#state = { state: 'authenticating' }
    let login: AgentLogin
    try {
      login = await this.#ctx.login(auth, this.#remote.remoteAddress)
    } catch (error) {
      if (this.#state.state === 'authenticating') this.#state = { state: 'new' }
      throw error
    }
    if (this.#state.state !== 'authenticating') throw new PortholeError('PH_1021')
    const refusal = this.#ctx.admit(login, this.#remote.remoteAddress)
    if (refusal !== null) {
      this.#state = { state: 'new' }
      throw refusal
    }
    // The ClientId names the agent across reconnects: one we handed out earlier comes back, else a new one.
    const clientId = ID_PATTERN.test(auth.clientId) ? auth.clientId : randomBytes(16).toString('hex')
    const anonymousOwner = login.credential.kind === 'anonymous'
    const owner: Owner = anonymousOwner ? { id: `ngrok:${clientId}`, persistent: true, known: false } : login.owner
    const clientVersion = `${auth.extra.clientType || 'ngrok'} ${auth.extra.version}`.trim()
    this.#state = { state: 'live', login: { ...login, owner }, clientId, clientVersion }
    this.#ctx.live?.(owner, this.#remote.remoteAddress)
    clearTimeout(this.#loginTimer)
    // An agent beating less often than the gateway's tolerance (SDK heartbeatInterval) is given two of its intervals.
    const announcedMs = Math.min(auth.extra.heartbeatIntervalNs / 1e6, MAX_AGENT_INTERVAL_MS)
    if (2 * announcedMs > this.#ctx.heartbeatToleranceMs) {
      this.#liveness.stop()
      this.#liveness = this.#agentLiveness(2 * announcedMs)
    }
    this.#liveness.start()
    this.#heartbeat()
    this.#log.info({ owner: owner.id, credential: login.credential, client: clientVersion }, 'ngrok session started')
    const started = sessionChannel.hasSubscribers ? this.info() : null
    if (started !== null) sessionChannel.publish({ event: 'start', session: started } satisfies SessionObserved)
    return authReply({ version, clientId, extra: { version: 'porthole', region: 'porthole', cookie: clientId, ...(owner.account ? { accountName: owner.account } : {}) } })
  }

  #agentLiveness (toleranceMs: number): Liveness {
    return new Liveness({
      toleranceMs,
      onTimeout: () => {
        this.#log.info('no heartbeat in time: session dropped')
        this.close(MuxCode.None, 'heartbeat timeout')
      },
    })
  }

  /**
   * The gateway's own heartbeat, as ngrok's service sends one: a heartbeat stream of ours on which 4 random bytes
   * go out every interval and must come back (ngrok-rust and ngrok-go echo them) within the tolerance.
   */
  #heartbeat (): void {
    let stream: MuxStream
    try {
      stream = this.#mux.open(HEARTBEAT_TYPE)
    } catch {
      return
    }
    stream.on('error', () => {})
    this.#beating = new Heartbeater(stream, { intervalMs: this.#ctx.heartbeatIntervalMs, onBeat: () => this.#echoes.beat() })
    this.#beating.start()
    this.#echoes.start()
  }

  async #bind (bind: Bind): Promise<string> {
    const live = this.#state as Extract<State, { state: 'live' }>
    if (bind.id !== '' && !ID_PATTERN.test(bind.id)) throw new PortholeError('PH_1070', `Id ${JSON.stringify(bind.id)}`)
    const id = bind.id === '' ? randomBytes(12).toString('hex') : bind.id
    if (this.#tunnels.has(id)) throw new PortholeError('PH_1017', id)
    if (this.#tunnels.size >= this.#ctx.maxTunnels) {
      const error = new PortholeError('PH_1018', String(this.#ctx.maxTunnels))
      observeLimit(error)
      throw error
    }
    const mapping = bindOptions(bind, this.#ctx.compile)
    if (mapping.pooling) throw new PortholeError('PH_1071', `Extra.PoolingEnabled (${WHY.pooling})`)
    const { spec, compiled } = mapping.bound
    const tunnel: Tunnel = { id, bind, endpoint: null }
    this.#tunnels.set(id, tunnel)
    const request = {
      slot: `ngrok:${id}`,
      spec,
      owner: live.login.owner,
      dial: (client: ClientAddress) => this.#dial(tunnel, client),
      agent: { transport: 'ngrok' as const, sessionId: this.id },
      hooks: {
        onEvicted: (reason?: Error) => {
          tunnel.endpoint = null
          this.#tunnels.delete(id)
          void this.#stopTunnel(tunnel, reason instanceof PortholeError ? reason : new PortholeError('PH_1023', mapping.name?.value ?? id))
        },
      },
    }
    let endpoint: Endpoint
    try {
      endpoint = mapping.proto === 'tcp'
        ? await bindTcp(this.#ctx, { ...request, port: this.#tcpPort(mapping.name), range: this.#ctx.tcpPorts }, compiled, this.#log)
        : await bindNamed(this.#ctx, { ...request, bindAddr: mapping.name?.value ?? '' }, compiled)
    } catch (error) {
      this.#tunnels.delete(id)
      throw error
    }
    if (this.#state.state === 'closed' || this.#tunnels.get(id) !== tunnel) {
      this.#ctx.registry.unbind(endpoint)
      throw new PortholeError('PH_1021')
    }
    tunnel.endpoint = endpoint
    this.#log.info({ host: endpoint.host, tunnel: id, url: this.#urlFor(endpoint, mapping.urlScheme) }, 'endpoint bound')
    return bindReply({ id, url: this.#urlFor(endpoint, mapping.urlScheme), proto: bind.proto, opts: echoOpts(bind), token: id })
  }

  /** The endpoint's URL in the scheme the agent asked for (an http endpoint serves both, https first). */
  #urlFor (endpoint: Endpoint, scheme: string): string {
    const urls = this.#ctx.urlsFor(endpoint)
    return urls.find((url) => url.startsWith(`${scheme}://`)) ?? urls[0]!
  }

  /** A tcp Addr `host:port` (host: the gateway's tcp host or domain) asks for that port; none: any free one. */
  #tcpPort (name: RequestedName | null): number {
    if (name === null) return 0
    const host = name.value.slice(0, name.value.lastIndexOf(':')).toLowerCase()
    if (!this.#ctx.tcpHosts.includes(host)) throw new PortholeError('PH_1034', JSON.stringify(name.value))
    return name.port!
  }

  #unbind (id: string): string {
    const tunnel = this.#tunnels.get(id)
    if (tunnel === undefined) throw new PortholeError('PH_1070', `Unbind of unknown tunnel ${JSON.stringify(id)}`)
    this.#tunnels.delete(id)
    if (tunnel.endpoint !== null) this.#ctx.registry.unbind(tunnel.endpoint)
    tunnel.endpoint = null
    return unbindReply()
  }

  /**
   * Tells the agent one tunnel is gone (server-opened StopTunnel; the SDK closes that listener with the message
   * and forgets the tunnel). Resolves when the agent is done with the stream (it sends no reply).
   */
  #stopTunnel (tunnel: Tunnel, reason: PortholeError): Promise<void> {
    if (this.#mux.closed) return Promise.resolve()
    try {
      const stream = this.#mux.open(StreamType.StopTunnel, Buffer.from(stopTunnelRequest({ id: tunnel.id, message: ngrokError(reason), errorCode: reason.code })))
      stream.on('error', () => {})
      stream.resume()
      stream.end()
      return new Promise((resolve) => {
        stream.once('close', resolve)
        stream.once('end', resolve)
      })
    } catch {
      return Promise.resolve()
    }
  }

  // --- the Dialer --------------------------------------------------------------------------------------

  /** A Proxy stream for one public connection: type 3, the header, then the connection's bytes. */
  #dial (tunnel: Tunnel, client: ClientAddress): Promise<MuxStream> {
    const started = performance.now()
    if (this.#state.state === 'closed' || tunnel.endpoint === null) {
      observeDial('ngrok', started, 'closed')
      return Promise.reject(new PortholeError('PH_3001', tunnel.bind.extra.name || tunnel.id))
    }
    if (this.#proxyStreams >= this.#ctx.maxStreams) {
      observeDial('ngrok', started, 'busy')
      return Promise.reject(new StreamsFullError(this.#ctx.maxStreams))
    }
    const header = proxyHeader({
      id: tunnel.id,
      clientAddr: clientAddr(client.remoteAddress, client.remotePort),
      proto: tunnel.bind.proto,
      passthroughTls: tunnel.bind.proto === 'tls',
    })
    let stream: MuxStream
    try {
      stream = this.#mux.open(StreamType.Proxy, header)
    } catch (error) {
      observeDial('ngrok', started, 'refused')
      return Promise.reject(new PortholeError('PH_3002', (error as Error).message, { cause: error }))
    }
    observeDial('ngrok', started, 'ok')
    this.#proxyStreams++
    stream.once('close', () => { this.#proxyStreams-- })
    return Promise.resolve(stream)
  }
}

function typeName (type: number): string {
  const entry = Object.entries(StreamType).find(([, value]) => value === type)
  return entry ? entry[0] : `stream type ${type}`
}
