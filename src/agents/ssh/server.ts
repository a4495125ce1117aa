// The SSH agent transport: an ssh2 server that authenticates clients (authorized_keys, or anonymous under
// DESIGN's rule), answers keepalives, pings idle clients and hands each client to an SshConnection.
// Admission: connections not yet logged in go through StartupAdmission (admission.ts); logged-in sessions
// have two budgets, known keys and anonymous clients, so strangers cannot take known users' places
// (session-budget.ts, counted with the ngrok transport). Every refusal is told in one line with its code: before
// the key exchange as a cleartext disconnect (pre-kex-refusal.ts), during login as a userauth banner (auth-banner.ts).
import { randomUUID } from 'node:crypto'
import { createServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net'
import { listenOn } from '../../net/listen.js'
import ssh2, { type AuthContext, type Connection } from 'ssh2'
import type { Logger } from 'pino'
import { PortholeError } from '../../core/errors.js'
import type { Owner } from '../../core/endpoint.js'
import type { SessionDirectory, SessionInfo } from '../../core/session.js'
import { observeLimit, observeLogin, sessionChannel, type SessionObserved } from '../../observe/channels.js'
import type { AuthorizedKeys } from '../../identity/authorized-keys.js'
import { fingerprint } from '../../identity/fingerprint.js'
import { accountOwner } from '../../identity/owner.js'
import type { Identity } from '../../identity/identity.js'
import { SshConnection, type ConnectionContext, type SessionLogin } from './connection.js'
import { adjustsFlushSoon, batchWrites } from './batch-writes.js'
import { LoginThrottle } from '../../identity/login-throttle.js'
import { StartupAdmission, type StartupLimits } from '../admission.js'
import type { SessionBudgets, SessionCounts } from '../session-budget.js'
import { offeredHostKeys, sshAlgorithms } from './algorithms.js'
import { sendAuthBanner } from './auth-banner.js'
import { preKexRefusal } from './pre-kex-refusal.js'
import { installPaddingPool } from './padding-pool.js'
import { signingHostKey, verifyLogin } from './key-objects.js'
import { weakKeyReason } from '../../identity/key-strength.js'
import { patchKeyExchange } from './kex-x25519.js'
import { trimCiphers, trimExchange, withOwnBuffers } from './kex-trim.js'

const { Server } = ssh2
// One RNG call per pool of padding bytes instead of one per SSH packet (padding-pool.ts).
installPaddingPool()

export interface SshAgentOptions extends SessionBudgets {
  readonly hostKeys: Buffer[]
  /** Offer the legacy set for old Dropbear (ssh-rsa, group14-sha1, encrypt-and-MAC); see algorithms.ts. */
  readonly legacyAlgorithms: boolean
  readonly authorizedKeys: AuthorizedKeys
  /** Accounts with their keys and authtokens (checked before authorized_keys). */
  readonly identity: Identity
  /** Asked at each login: accounts created at run time turn anonymous access off. */
  readonly anonymous: () => boolean
  readonly throttle?: LoginThrottle
  readonly keepaliveIntervalMs: number
  readonly keepaliveCountMax: number
  /** Live sessions of every transport (ngrok agents too), counted in the same session budgets. */
  readonly counts: SessionCounts
  /** Connections not yet logged in (MaxStartups and per source). */
  readonly startups: StartupLimits
  /** A TCP connection must have logged in by then (LoginGraceTime). */
  readonly loginTimeoutMs: number
  readonly connection: ConnectionContext
  readonly log: Logger
}

// ssh2's channel error levels -> what they mean to an operator.
const LEVEL_LOG: Record<string, 'debug' | 'info' | 'warn'> = {
  'client-socket': 'debug',
  socket: 'debug',
  'client-timeout': 'info',
  handshake: 'info',
  protocol: 'warn',
}

/**
 * Authentication requests one connection may make (OpenSSH's MaxAuthTries is 6): bounds guessing per connection
 * (the login deadline bounds the time). A protocol-defensive constant, not a setting: an agent offering more than
 * 20 keys is told so (PH_1120) and how to pick one.
 */
const MAX_AUTH_ATTEMPTS = 20
/**
 * How long a refused connection may take to read its one-line reason and close before it is destroyed, and
 * how many may do so at once (past that, a flood's refusals are destroyed at once: they must not pin fds).
 */
const REFUSAL_LINGER_MS = 2000
const MAX_LINGERING = 256
const LOGGED_IN = Symbol('porthole.loggedIn')

type Login = Pick<SessionLogin, 'owner' | 'credential' | 'fingerprint'>

/** What one connection's login attempts found so far. */
interface LoginState {
  readonly ip: string
  login: Login | null
  /** The fingerprint of a key we refused: the keyboard-interactive instruction names it. */
  refusedKey: string | null
  /** Why a valid login was not admitted (a session budget is full): the keyboard-interactive instruction says it. */
  refusal: PortholeError | null
  /** Once a keyboard-interactive round failed it is not offered again (Dropbear would retry it forever). */
  interactiveFailed: boolean
  /** The refusal went out as a userauth banner: keyboard-interactive is not offered to say it again. */
  told: boolean
  /** Sends a line as a userauth banner (auth-banner.ts); false if it could not. */
  banner: (line: string) => boolean
  tokenFailures: number
  /** Ends the connection (too many failures). */
  drop: () => void
}

/** Wrong authtokens one connection may send before it is dropped (OpenSSH clients try 3 by default): a
 *  protocol-defensive constant (the throttle, per source, is what slows guessing); the user is told (PH_1121). */
const MAX_TOKEN_FAILURES = 3

export class SshAgent implements SessionDirectory {
  readonly #options: SshAgentOptions
  readonly #log: Logger
  readonly #server: InstanceType<typeof Server>
  readonly #connections = new Map<string, SshConnection>()
  /** Our own listener: it bounds connections before ssh2 sees them (see #onSocket). */
  readonly #listener: NetServer
  /** Connections not yet logged in. */
  readonly #startups: StartupAdmission
  readonly #throttle: LoginThrottle
  /** What every SshConnection is lent (one object for all of them). */
  readonly #connectionContext: ConnectionContext
  /** Refused connections still reading their reason. */
  #lingering = 0
  #closing = false

  constructor (options: SshAgentOptions) {
    this.#options = options
    this.#log = options.log
    this.#throttle = options.throttle ?? new LoginThrottle()
    this.#startups = new StartupAdmission(options.startups)
    this.#connectionContext = { ...options.connection, identity: options.identity }
    // A removed key, revoked authtoken or deleted account ends the sessions it opened.
    options.identity.onChange(() => this.#dropRevoked())
    this.#server = new Server({
      // Parsed once, each with a KeyObject for its signatures (key-objects.ts).
      hostKeys: offeredHostKeys(options.hostKeys, options.legacyAlgorithms).map(signingHostKey) as never,
      ident: 'Porthole',
      keepaliveInterval: options.keepaliveIntervalMs,
      keepaliveCountMax: options.keepaliveCountMax,
      // The algorithm lists, and why ssh-rsa (SHA-1) and diffie-hellman-group14-sha1 stay by default: algorithms.ts.
      algorithms: sshAlgorithms(options.legacyAlgorithms) as never,
    }, (client, info) => this.#onClient(client, info))
    this.#server.on('error', (error: Error) => this.#log.error({ err: error }, 'ssh listener error'))
    this.#listener = createServer({ noDelay: true }, (socket) => this.#onSocket(socket))
  }

  /**
   * Every TCP connection gets a login deadline from its first byte on (ssh2 only starts its own work once
   * the client's ident line arrived, so a silent socket would otherwise stay forever), and goes through
   * admission (admission.ts). A refused connection is told why in one line before any SSH version line
   * (RFC 4253 4.2 allows such lines; `ssh -v` prints them), then closed without a reset; connections
   * already open are kept. A late or evicted one is destroyed.
   */
  #onSocket (socket: Socket): void {
    // A module-level no-op: a closure made here would keep this scope (deadline, ticket) for the socket's life.
    socket.on('error', ignore)
    const ip = socket.remoteAddress ?? ''
    if (this.#closing) {
      socket.destroy()
      return
    }
    const admission = this.#startups.admit(ip, () => socket.destroy())
    if (!admission.ok) {
      this.#refuseSocket(socket, ip, admission.error)
      return
    }
    if (admission.evicted !== null) this.#log.info({ ip, evicted: admission.evicted }, 'ssh connection admitted in place of the oldest unauthenticated connection of the busiest source')
    const { ticket } = admission
    const deadline = setTimeout(() => {
      this.#log.info({ ip }, new PortholeError('PH_1052', `${this.#options.loginTimeoutMs / 1000}s`).toLine())
      socket.destroy()
    }, this.#options.loginTimeoutMs)
    // At the login or the close, whichever is first; then nothing of this is held by the socket.
    const done = (): void => {
      clearTimeout(deadline)
      ticket.release()
      socket.removeListener('close', done)
      ;(socket as Socket & { [LOGGED_IN]?: () => void })[LOGGED_IN] = undefined
    }
    socket.once('close', done)
    ;(socket as Socket & { [LOGGED_IN]?: () => void })[LOGGED_IN] = done
    // ssh2 builds its per-connection ident buffers here, kept for the connection's life: not from the pool (kex-trim.ts).
    withOwnBuffers(() => this.#server.injectSocket(socket))
  }

  /** The reason (pre-kex-refusal.ts), then FIN; whatever the client sent is read and dropped so that no RST goes out. */
  #refuseSocket (socket: Socket, ip: string, error: PortholeError): void {
    this.#log.warn({ ip, pending: this.#startups.pending }, `ssh connection refused: ${error.toLine()}`)
    if (this.#lingering >= MAX_LINGERING) {
      socket.destroy()
      return
    }
    this.#lingering++
    const timer = setTimeout(() => socket.destroy(), REFUSAL_LINGER_MS).unref()
    socket.once('close', () => {
      this.#lingering--
      clearTimeout(timer)
    })
    socket.resume()
    socket.end(preKexRefusal(error.toLine()))
  }

  get connections (): SshConnection[] {
    return [...this.#connections.values()]
  }

  /** Connections not yet logged in, each holding a startup place (admission.ts) until it logs in or closes. */
  get startupsPending (): number {
    return this.#startups.pending
  }

  sessions (): SessionInfo[] {
    return this.connections.map((connection) => connection.describe())
  }

  async kill (id: string): Promise<boolean> {
    const connection = this.#connections.get(id)
    if (!connection) return false
    await connection.kill(new PortholeError('PH_1026'))
    return true
  }

  #dropRevoked (): void {
    const { identity } = this.#options
    const live = { key: new Set(identity.listKeys().map((k) => k.id)), token: new Set(identity.listTokens().map((t) => t.id)) }
    for (const connection of this.connections) {
      const { kind, id } = connection.login.credential
      if ((kind === 'key' || kind === 'token') && !live[kind].has(id!)) void connection.kill(new PortholeError('PH_1026'))
    }
  }

  listen (host: string, port: number): Promise<AddressInfo> {
    return listenOn(this.#listener, host, port)
  }

  #onClient (client: Connection, info: { ip: string, port: number, header: { identRaw?: string, versions: { software: string } } }): void {
    const id = randomUUID().slice(0, 8)
    const { ip, port } = info
    // What the session keeps of the ident line; `info` itself is not held.
    const clientVersion = info.header?.versions?.software ?? ''
    const clientIdent = info.header?.identRaw
    // One pino child per connection: {conn, ip} until the login, then {conn, ip, session, owner} (not a child of
    // a child: each level would make the one above a prototype, with its own hidden classes, per session).
    let log = this.#log.child({ conn: id, ip })
    // An 'error' listener first thing: ssh2 emits socket and protocol errors on the connection.
    client.on('error', (error: Error & { level?: string }) => {
      log[LEVEL_LOG[error.level ?? ''] ?? 'info']({ level_ssh: error.level, err: error.message }, 'ssh connection error')
    })
    // Tunnel traffic is interactive (HTTP exchanges, window adjusts): Nagle's delays would stall it;
    // instead, packets of one event-loop turn leave together, window adjusts at the end of their tick.
    const internals = client as unknown as { _sock: Socket & { [LOGGED_IN]?: () => void }, _protocol: Parameters<typeof adjustsFlushSoon>[0] }
    const socket = internals._sock
    adjustsFlushSoon(internals._protocol, batchWrites(socket))
    client.on('handshake', onHandshake)
    this.#watchLogin(client, socket, ip, log, (login) => {
      socket[LOGGED_IN]?.()
      log = this.#log.child({ conn: id, ip, session: id, owner: login.owner.id })
      this.#startSession(id, client, { ...login, clientVersion, clientIdent, remoteAddr: ip, remotePort: port }, log)
    })
  }

  /**
   * The login phase of one connection: its attempts and what they found (LoginState). Everything here is let go
   * once logged in (the 'authentication' listener is removed), so an idle session does not hold it.
   */
  #watchLogin (client: Connection, socket: Socket, ip: string, log: Logger, loggedIn: (login: Login) => void): void {
    const state: LoginState = {
      ip,
      login: null,
      refusedKey: null,
      refusal: null,
      interactiveFailed: false,
      told: false,
      banner: (line) => sendAuthBanner(client, line),
      drop: () => endAfterBanner(socket),
      tokenFailures: 0,
    }
    let attempts = 0
    const onAuthentication = (ctx: AuthContext): void => {
      // Guessing forever on one connection is bounded too (the login deadline bounds the time).
      if (++attempts > MAX_AUTH_ATTEMPTS) {
        // Told once; what the client still sends before it reads our FIN is ignored.
        if (attempts === MAX_AUTH_ATTEMPTS + 1) {
          const error = new PortholeError('PH_1120', String(MAX_AUTH_ATTEMPTS))
          observeLimit(error)
          log.info({ attempts }, `ssh login refused: ${error.toLine()}`)
          state.banner(error.toLine())
          state.drop()
        }
        return
      }
      // ctx.accept() emits 'ready' synchronously, so the owner is recorded before accepting.
      this.#authenticate(ctx, state)
    }
    client.on('authentication', onAuthentication)
    client.once('ready', () => {
      // ssh2 answers any userauth request after the login with a disconnect: no listener needed any more.
      client.removeListener('authentication', onAuthentication)
      const login = state.login
      if (!login) return socket.destroy()
      loggedIn(login)
    })
  }

  #startSession (id: string, client: Connection, login: SessionLogin, log: Logger): void {
    const owner = login.owner
    log.info({ credential: login.credential, client: login.clientVersion }, 'ssh session started')
    const connection = new SshConnection(id, client, login, this.#connectionContext, log)
    this.#connections.set(id, connection)
    const uncount = this.#options.counts.add({ owner, remoteAddr: login.remoteAddr })
    if (sessionChannel.hasSubscribers) sessionChannel.publish({ event: 'start', session: connection.describe() } satisfies SessionObserved)
    client.once('close', () => {
      this.#connections.delete(id)
      uncount()
      log.info('ssh session ended')
      if (sessionChannel.hasSubscribers) sessionChannel.publish({ event: 'stop', session: connection.describe() } satisfies SessionObserved)
    })
  }

  /** Records the login in `state` before accepting: ctx.accept() emits 'ready' synchronously. */
  #authenticate (ctx: AuthContext, state: LoginState): void {
    const { authorizedKeys, identity } = this.#options
    const anonymous = this.#options.anonymous()
    // Password methods are offered only when there is an authtoken that could match.
    const methods = (): Array<'publickey' | 'keyboard-interactive' | 'password'> => [
      'publickey',
      ...(state.interactiveFailed || state.told ? [] : ['keyboard-interactive' as const]),
      ...(identity.hasTokens ? ['password' as const] : []),
    ]
    if (ctx.method === 'publickey') {
      const print = fingerprint(ctx.key.data)
      const weak = weakKeyReason(ctx.key.data)
      if (weak !== null) {
        // Refused whoever holds it, as OpenSSH's sshd does.
        const refusal = new PortholeError('PH_1027', `${print} (${weak})`)
        this.#log.info({ key: print, user: ctx.username }, `refused: ${refusal.toLine()}`)
        observeLogin('ssh', 'refused')
        this.#recordRefusal(state, refusal)
        ctx.reject(methods())
        return
      }
      const record = identity.findKey(print)
      const known = record ?? authorizedKeys.find(ctx.key.data)
      if (!known && !anonymous) {
        this.#log.info({ key: print, user: ctx.username }, 'refused: key not authorized')
        observeLogin('ssh', 'refused')
        state.refusedKey = print
        ctx.reject(methods())
        return
      }
      if (!ctx.signature) {
        ctx.accept() // the client asks whether this key would do; it signs next
        return
      }
      if (!verifyLogin({ algo: ctx.key.algo, data: ctx.key.data, blob: ctx.blob!, signature: ctx.signature, hashAlgo: ctx.hashAlgo })) {
        ctx.reject(methods())
        return
      }
      const login: Login = (
        record
          ? { owner: accountOwner(record.account, record.acl, `key ${print}`), credential: { kind: 'key', id: record.id }, fingerprint: print }
          : { owner: { id: print, persistent: true, known: known !== undefined }, credential: { kind: known ? 'authorized-key' : 'anonymous', id: null }, fingerprint: print }
      )
      // Refused for room: the client tries keyboard-interactive next, whose instruction tells why.
      this.#admitLogin(state, login, () => ctx.accept(), () => ctx.reject(methods()))
      return
    }
    if (ctx.method === 'password') {
      this.#checkToken(state, ctx.password, () => ctx.accept(), () => ctx.reject(methods()))
      return
    }
    if (ctx.method === 'keyboard-interactive') {
      if (state.refusal) {
        this.#tell(ctx, state, state.refusal.toLine(), methods)
        return
      }
      if (anonymous) {
        const login: Login = { owner: { id: `anon:${randomUUID()}`, persistent: false }, credential: { kind: 'anonymous', id: null }, fingerprint: null }
        this.#admitLogin(state, login, () => ctx.accept(), () => this.#tell(ctx, state, state.refusal!.toLine(), methods))
        return
      }
      // The reason goes in the instruction text: OpenSSH and Dropbear print it to the user.
      const reason = new PortholeError('PH_1020', state.refusedKey ?? '(none offered)').toLine()
      if (!identity.hasTokens) {
        ctx.prompt([], 'Porthole', reason, () => ctx.reject(['publickey']))
        return
      }
      const instructions = state.refusedKey ? `${reason}\nLog in with an authtoken instead, or press Enter to stop.` : 'Log in with a Porthole authtoken.'
      ctx.prompt([{ prompt: 'Authtoken: ', echo: false }], 'Porthole', instructions, (answers) => {
        this.#checkToken(state, answers[0] ?? '', () => ctx.accept(), () => {
          state.interactiveFailed = true
          if (state.refusal) this.#tell(ctx, state, state.refusal.toLine(), methods)
          else ctx.reject(methods())
        })
      })
      return
    }
    ctx.reject(methods())
  }

  /**
   * Accepts a verified login if its budget has room: known keys and anonymous clients count apart (anonymous
   * ones also per source), and one key has a share. Otherwise records why in state.refusal, logs it, and
   * rejects. Records the login before accepting: ctx.accept() emits 'ready' synchronously.
   */
  #admitLogin (state: LoginState, login: Login, accept: () => void, reject: () => void): void {
    observeLogin('ssh', 'ok')
    const refusal = this.#options.counts.refusal(login.owner, state.ip, this.#options)
    if (refusal) {
      this.#log.warn({ ip: state.ip, owner: login.owner.id }, `ssh login refused: ${refusal.toLine()}`)
      this.#recordRefusal(state, refusal)
      reject()
      return
    }
    state.login = login
    accept()
  }

  /**
   * Records why a login was refused, for keyboard-interactive to say, and tells it once per code as a banner:
   * every client shows banners (OpenSSH in BatchMode too, which never tries keyboard-interactive). A refusal of
   * another kind first (a weak key the client offered) does not hide a later one.
   */
  #recordRefusal (state: LoginState, refusal: PortholeError): void {
    if (state.refusal?.code !== refusal.code) state.told = state.banner(refusal.toLine())
    state.refusal = refusal
  }

  /**
   * Says a refusal over keyboard-interactive unless a banner said it already: the instruction is where OpenSSH
   * (not in BatchMode) and Dropbear print a reason. No name: Dropbear prints name and instruction run together.
   */
  #tell (ctx: AuthContext & { method: 'keyboard-interactive' }, state: LoginState, line: string, methods: () => Array<'publickey' | 'keyboard-interactive' | 'password'>): void {
    state.interactiveFailed = true
    if (state.told) {
      ctx.reject(methods())
      return
    }
    ctx.prompt([], '', line, () => ctx.reject(['publickey']))
  }

  /** An authtoken given as password; failures from one address are answered ever more slowly. */
  #checkToken (state: LoginState, text: string, accept: () => void, reject: () => void): void {
    const ip = state.ip
    if (text.trim() === '') {
      reject()
      return
    }
    const throttled = this.#throttle.delayMs(ip) > 0
    this.#throttle.check(ip, () => this.#options.identity.verifyToken(text)).then((record) => {
      if (!record) {
        observeLogin('ssh', throttled ? 'throttled' : 'refused')
        this.#log.info({ ip }, new PortholeError('PH_1024').toLine())
        if (++state.tokenFailures === MAX_TOKEN_FAILURES) {
          const error = new PortholeError('PH_1121', String(MAX_TOKEN_FAILURES))
          observeLimit(error)
          state.banner(error.toLine())
          state.drop()
        } else if (state.tokenFailures < MAX_TOKEN_FAILURES) reject()
        return
      }
      this.#admitLogin(state, { owner: accountOwner(record.account, record.acl, `authtoken ${record.id}`), credential: { kind: 'token', id: record.id }, fingerprint: null }, accept, reject)
    }, (error: unknown) => {
      this.#log.error({ err: (error as Error).message }, 'authtoken check failed')
      reject()
    })
  }

  /** Stops accepting, tells connected users why, and closes their sessions. */
  async close (): Promise<void> {
    this.#closing = true
    const closed = new Promise<void>((resolve) => this.#listener.close(() => resolve()))
    const ended = Promise.all([...this.#connections.values()].map((connection) => connection.end(new PortholeError('PH_1021'))))
    await Promise.race([ended.then(() => closed), new Promise((resolve) => setTimeout(resolve, 3000).unref())])
  }
}

/**
 * After each key exchange: ssh2's curve25519 exchange class is reached through the first one (kex-x25519.ts), and
 * the finished exchange is cut down to what ssh2 still reads (kex-trim.ts). One function for every connection.
 */
function onHandshake (this: Connection): void {
  const protocol = (this as unknown as { _protocol?: { _kex?: unknown } })._protocol
  patchKeyExchange(protocol?._kex) // once: it does nothing after the first curve25519 exchange it saw
  trimExchange(protocol as Parameters<typeof trimExchange>[0])
  trimCiphers(protocol as Parameters<typeof trimCiphers>[0])
}

function ignore (): void {}

/** Closes a connection whose reason went out as a banner: FIN so that it is read, destroyed if it lingers. */
function endAfterBanner (socket: Socket): void {
  socket.end()
  setTimeout(() => socket.destroy(), REFUSAL_LINGER_MS).unref()
}
