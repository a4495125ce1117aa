// The ngrok agent listener (--agent-addr): TLS with a certificate for the gateway's domain and connect.<domain>,
// muxado inside, one NgrokSession per connection. Connections not yet logged in are bounded as SSH's are
// (MaxStartups with per-source fairness, a login deadline); logins go through the identity layer's authtokens
// with the same throttle, ACLs and reservations as SSH, and a revoked token ends its live sessions.
import { randomUUID } from 'node:crypto'
import type { AddressInfo, Socket } from 'node:net'
import { createServer, type SecureContext, type Server, type TLSSocket } from 'node:tls'
import type { Logger } from 'pino'
import { PortholeError } from '../../core/errors.js'
import type { SessionDirectory, SessionInfo } from '../../core/session.js'
import type { Identity } from '../../identity/identity.js'
import type { LoginThrottle } from '../../identity/login-throttle.js'
import { accountOwner } from '../../identity/owner.js'
import { listenOn } from '../../net/listen.js'
import { StartupAdmission, type StartupLimits } from '../admission.js'
import { observeLogin } from '../../observe/channels.js'
import type { SessionBudgets, SessionCounts } from '../session-budget.js'
import type { Auth } from './messages.js'
import { MuxCode } from './muxado/index.js'
import { NgrokSession, type AgentLogin, type NgrokSessionContext } from './session.js'

/**
 * Proxy streams one ngrok agent session may carry at once: a protocol limit, not a tunable. ngrok-rust (under the
 * @ngrok/ngrok SDKs) accepts at most 512 concurrent muxado streams and its session dies past that; the RPCs and
 * heartbeat need a few of those. max-streams-per-session can lower it, not raise it.
 */
export const NGROK_MAX_STREAMS = 480

export interface NgrokAgentOptions {
  readonly identity: Identity
  /** Asked at each login: any authtoken is an anonymous agent when the gateway runs anonymous. */
  readonly anonymous: () => boolean
  readonly throttle: LoginThrottle
  /** The certificate for a server name the agent asked for (SNI), or for the domain when it sent none. */
  readonly secureContext: (serverName: string) => SecureContext | Promise<SecureContext>
  /** The key and certificate presented without SNI (an agent dialling an IP address). */
  readonly defaultCert: { readonly key: string, readonly cert: string }
  /** Names the listener presents a certificate for: the domain and connect.<domain>. */
  readonly serverNames: readonly string[]
  readonly startups: StartupLimits
  readonly budgets: SessionBudgets
  /** Live sessions of every transport (SSH too), counted in the same budgets. */
  readonly counts: SessionCounts
  readonly session: Omit<NgrokSessionContext, 'log' | 'login' | 'admit' | 'live'>
  readonly log: Logger
}

export class NgrokAgent implements SessionDirectory {
  readonly #options: NgrokAgentOptions
  readonly #log: Logger
  readonly #server: Server
  readonly #sessions = new Map<string, NgrokSession>()
  readonly #startups: StartupAdmission
  /** Startup places of connections not yet logged in, by remote address:port (released at login or close). */
  readonly #tickets = new Map<string, () => void>()
  readonly #sockets = new Set<Socket>()

  constructor (options: NgrokAgentOptions) {
    this.#options = options
    this.#log = options.log
    this.#startups = new StartupAdmission(options.startups)
    options.identity.onChange(() => this.#dropRevoked())
    const names = new Set(options.serverNames.map((name) => name.toLowerCase()))
    this.#server = createServer({
      key: options.defaultCert.key,
      cert: options.defaultCert.cert,
      minVersion: 'TLSv1.2',
      handshakeTimeout: options.session.loginTimeoutMs,
      SNICallback: (name, callback) => {
        if (!names.has(name.toLowerCase())) return callback(new Error(`no certificate for ${name}: agents connect to ${[...names].join(' or ')}`))
        Promise.resolve().then(() => options.secureContext(name.toLowerCase())).then((context) => callback(null, context), (error: Error) => callback(error))
      },
    })
    this.#server.on('connection', (socket) => this.#onSocket(socket))
    this.#server.on('secureConnection', (socket: TLSSocket) => this.#onSecure(socket))
    this.#server.on('tlsClientError', (error: Error) => this.#log.debug({ err: error.message }, 'agent tls error'))
  }

  listen (host: string, port: number): Promise<AddressInfo> {
    return listenOn(this.#server, host, port)
  }

  /** A connection another listener accepted for us (the HTTPS port, routed by SNI), its ClientHello unread. */
  accept (socket: Socket): void {
    this.#server.emit('connection', socket)
  }

  sessions (): SessionInfo[] {
    return [...this.#sessions.values()].flatMap((session) => session.info() ?? [])
  }

  async kill (id: string): Promise<boolean> {
    const session = this.#sessions.get(id)
    if (!session?.live) return false
    await session.kill(new PortholeError('PH_1026'))
    return true
  }

  /** Stops listening and ends every session and every connection still in its handshake or login. */
  close (): Promise<void> {
    return new Promise((resolve) => {
      this.#server.close(() => resolve())
      for (const session of this.#sessions.values()) session.close(MuxCode.None, new PortholeError('PH_1021').toLine())
      for (const socket of this.#sockets) socket.destroy()
    })
  }

  /** A TCP connection not yet logged in holds a startup place until its Auth succeeds or it goes. */
  #onSocket (socket: Socket): void {
    socket.setNoDelay(true)
    this.#sockets.add(socket)
    socket.once('close', () => this.#sockets.delete(socket))
    const admission = this.#startups.admit(socket.remoteAddress ?? '', () => socket.destroy())
    if (!admission.ok) {
      this.#log.warn({ ip: socket.remoteAddress }, `agent connection refused: ${admission.error.toLine()}`)
      socket.destroy()
      return
    }
    const key = `${socket.remoteAddress}:${socket.remotePort}`
    this.#tickets.set(key, admission.ticket.release)
    socket.once('close', () => {
      admission.ticket.release()
      this.#tickets.delete(key)
    })
  }

  #onSecure (socket: TLSSocket): void {
    const release = this.#tickets.get(`${socket.remoteAddress}:${socket.remotePort}`) ?? noop
    socket.on('error', () => {})
    const id = randomUUID().slice(0, 8)
    let uncount = noop
    const session = new NgrokSession(id, socket, {
      ...this.#options.session,
      log: this.#log,
      login: (auth, ip) => this.#login(auth, ip),
      admit: (login, ip) => {
        const refusal = this.#options.counts.refusal(login.owner, ip, this.#options.budgets)
        if (refusal === null) release()
        return refusal
      },
      // Counted under the owner it goes live as (an anonymous agent is ngrok:<ClientId>), in the same tick as admit.
      live: (owner, ip) => { uncount = this.#options.counts.add({ owner, remoteAddr: ip }) },
    }, (ended) => {
      this.#sessions.delete(ended.id)
      uncount()
    })
    this.#sessions.set(id, session)
  }

  /** An account's authtoken logs in as that account; in anonymous mode any other token is an anonymous agent. */
  async #login (auth: Auth, ip: string): Promise<AgentLogin> {
    const { identity, throttle } = this.#options
    const text = auth.extra.authToken
    let throttled = false
    if (identity.hasTokens && text !== '') {
      throttled = throttle.delayMs(ip) > 0
      const record = await throttle.check(ip, () => identity.verifyToken(text))
      if (record) {
        observeLogin('ngrok', 'ok')
        return { owner: accountOwner(record.account, record.acl, `authtoken ${record.id}`), credential: { kind: 'token', id: record.id } }
      }
    }
    if (this.#options.anonymous()) {
      observeLogin('ngrok', 'ok')
      return { owner: { id: 'ngrok:anonymous', persistent: true, known: false }, credential: { kind: 'anonymous', id: null } }
    }
    observeLogin('ngrok', throttled ? 'throttled' : 'refused')
    throw new PortholeError('PH_1024', text === '' ? ': this gateway needs an authtoken (authtoken option or NGROK_AUTHTOKEN)' : '')
  }

  #dropRevoked (): void {
    const tokens = new Set(this.#options.identity.listTokens().map((t) => t.id))
    for (const session of this.#sessions.values()) {
      const credential = session.login?.credential
      if (credential?.kind === 'token' && !tokens.has(credential.id!)) void session.kill(new PortholeError('PH_1026'))
    }
  }
}

function noop (): void {}
