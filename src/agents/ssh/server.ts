// The SSH agent transport: an ssh2 server that authenticates clients (authorized_keys, or anonymous under
// DESIGN's rule), answers keepalives, pings idle clients and hands each client to an SshConnection.
import { randomUUID } from 'node:crypto'
import { createServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net'
import { listenOn } from '../../edge/listen.js'
import ssh2, { type AuthContext, type Connection } from 'ssh2'
import type { Logger } from 'pino'
import { PortholeError } from '../../core/errors.js'
import type { Owner } from '../../core/endpoint.js'
import type { AuthorizedKeys } from '../../identity/authorized-keys.js'
import { fingerprint } from '../../identity/fingerprint.js'
import { SshConnection, type ConnectionContext } from './connection.js'
import { batchWritesPerTick } from './batch-writes.js'

const { Server, utils } = ssh2

export interface SshAgentOptions {
  readonly hostKeys: Buffer[]
  readonly authorizedKeys: AuthorizedKeys
  readonly anonymous: boolean
  readonly keepaliveIntervalMs: number
  readonly keepaliveCountMax: number
  readonly maxSessions: number
  readonly maxSessionsPerKey: number
  /** A TCP connection must have logged in by then. */
  readonly loginTimeoutMs: number
  readonly connection: Omit<ConnectionContext, 'log'>
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

const MAX_AUTH_ATTEMPTS = 20
const MAX_UNAUTHENTICATED_PER_IP = 20
const MAX_UNAUTHENTICATED = 500
const LOGGED_IN = Symbol('porthole.loggedIn')

/** The key type is the first string inside an SSH public key blob. */
function keyText (blob: Buffer): string {
  const length = blob.readUInt32BE(0)
  return `${blob.subarray(4, 4 + length).toString('latin1')} ${blob.toString('base64')}`
}

function verifySignature (ctx: AuthContext & { method: 'publickey' }): boolean {
  const parsed = utils.parseKey(keyText(ctx.key.data))
  if (parsed instanceof Error) return false
  const key = Array.isArray(parsed) ? parsed[0]! : parsed
  return key.verify(ctx.blob!, ctx.signature!, ctx.hashAlgo) === true
}

export class SshAgent {
  readonly #options: SshAgentOptions
  readonly #log: Logger
  readonly #server: InstanceType<typeof Server>
  readonly #connections = new Map<string, SshConnection>()
  /** Our own listener: it bounds connections before ssh2 sees them (see #onSocket). */
  readonly #listener: NetServer
  /** Connections not yet logged in, per source address. */
  readonly #unauthenticated = new Map<string, number>()
  #closing = false

  constructor (options: SshAgentOptions) {
    this.#options = options
    this.#log = options.log
    this.#server = new Server({
      hostKeys: options.hostKeys,
      ident: 'Porthole',
      keepaliveInterval: options.keepaliveIntervalMs,
      keepaliveCountMax: options.keepaliveCountMax,
      algorithms: {
        // Old Dropbear (2016.74-2019.78) on routers only knows group14-sha1 besides curve25519/ecdh.
        kex: { append: ['diffie-hellman-group14-sha1'] } as never,
        // No compression: it costs CPU on every packet, and ssh2's zlib writer throws once a
        // compressed connection has closed under an open channel.
        compress: ['none'],
      },
    }, (client, info) => this.#onClient(client, info))
    this.#server.on('error', (error: Error) => this.#log.error({ err: error }, 'ssh listener error'))
    this.#listener = createServer({ noDelay: true }, (socket) => this.#onSocket(socket))
  }

  /**
   * Every TCP connection gets a login deadline from its first byte on (ssh2 only starts its own work once
   * the client's ident line arrived, so a silent socket would otherwise stay forever), and connections not
   * yet logged in are capped per source address and in all. A refused or late one is destroyed, not ended:
   * a peer that never reads would keep a half-closed socket.
   */
  #onSocket (socket: Socket): void {
    socket.on('error', () => {})
    const ip = socket.remoteAddress ?? ''
    const pending = this.#unauthenticated.get(ip) ?? 0
    const total = [...this.#unauthenticated.values()].reduce((a, b) => a + b, 0)
    if (this.#closing || pending >= MAX_UNAUTHENTICATED_PER_IP || total >= MAX_UNAUTHENTICATED || this.#connections.size >= this.#options.maxSessions) {
      this.#log.warn({ ip, pending, total, sessions: this.#connections.size }, 'ssh connection refused: limit')
      socket.destroy()
      return
    }
    this.#unauthenticated.set(ip, pending + 1)
    let counted = true
    const release = (): void => {
      if (!counted) return
      counted = false
      const left = (this.#unauthenticated.get(ip) ?? 1) - 1
      if (left > 0) this.#unauthenticated.set(ip, left)
      else this.#unauthenticated.delete(ip)
    }
    const deadline = setTimeout(() => {
      this.#log.info({ ip }, 'ssh connection closed: no login in time')
      socket.destroy()
    }, this.#options.loginTimeoutMs)
    const loggedIn = (): void => {
      clearTimeout(deadline)
      release()
    }
    socket.once('close', () => {
      clearTimeout(deadline)
      release()
    })
    ;(socket as Socket & { [LOGGED_IN]?: () => void })[LOGGED_IN] = loggedIn
    this.#server.injectSocket(socket)
  }

  get connections (): SshConnection[] {
    return [...this.#connections.values()]
  }

  listen (host: string, port: number): Promise<AddressInfo> {
    return listenOn(this.#listener, host, port)
  }

  #onClient (client: Connection, info: { ip: string, port: number, header: { versions: { software: string } } }): void {
    const id = randomUUID().slice(0, 8)
    const log = this.#log.child({ conn: id, ip: info.ip })
    // An 'error' listener first thing: ssh2 emits socket and protocol errors on the connection.
    client.on('error', (error: Error & { level?: string }) => {
      log[LEVEL_LOG[error.level ?? ''] ?? 'info']({ level_ssh: error.level, err: error.message }, 'ssh connection error')
    })
    // Tunnel traffic is interactive (HTTP exchanges, window adjusts): Nagle's delays would stall it;
    // instead, packets of one tick leave together.
    const socket = (client as unknown as { _sock: Socket & { [LOGGED_IN]?: () => void } })._sock
    batchWritesPerTick(socket)

    let owner: Owner | null = null
    let refusedKey: string | null = null
    let attempts = 0
    client.on('authentication', (ctx) => {
      // Guessing forever on one connection is bounded too (the login deadline bounds the time).
      if (++attempts > MAX_AUTH_ATTEMPTS) {
        log.info({ attempts }, 'refused: too many authentication attempts')
        socket.destroy()
        return
      }
      // ctx.accept() emits 'ready' synchronously, so the owner is recorded before accepting.
      this.#authenticate(ctx, refusedKey, (result) => {
        if (result.refusedKey) refusedKey = result.refusedKey
        if (result.owner) owner = result.owner
      })
    })
    client.once('ready', () => {
      socket[LOGGED_IN]?.()
      if (!owner) return socket.destroy()
      const sameOwner = this.connections.filter((c) => c.owner.id === owner!.id).length
      if (this.#connections.size >= this.#options.maxSessions || (owner.persistent && sameOwner >= this.#options.maxSessionsPerKey)) {
        log.warn({ owner: owner.id, sessions: this.#connections.size }, 'refused: too many sessions')
        socket.destroy()
        return
      }
      log.info({ owner: owner.id, client: info.header?.versions?.software }, 'ssh session started')
      const connection = new SshConnection(id, client, owner, { ...this.#options.connection, log })
      this.#connections.set(id, connection)
      client.once('close', () => {
        this.#connections.delete(id)
        log.info('ssh session ended')
      })
    })
  }

  #authenticate (ctx: AuthContext, refusedKey: string | null, note: (result: { owner?: Owner, refusedKey?: string }) => void): void {
    const { authorizedKeys, anonymous } = this.#options
    if (ctx.method === 'publickey') {
      const print = fingerprint(ctx.key.data)
      const known = authorizedKeys.find(ctx.key.data)
      if (!known && !anonymous) {
        this.#log.info({ key: print, user: ctx.username }, 'refused: key not authorized')
        note({ refusedKey: print })
        ctx.reject(['publickey', 'keyboard-interactive'])
        return
      }
      if (!ctx.signature) {
        ctx.accept() // the client asks whether this key would do; it signs next
        return
      }
      if (!verifySignature(ctx)) {
        ctx.reject(['publickey', 'keyboard-interactive'])
        return
      }
      note({ owner: { id: print, persistent: true } })
      ctx.accept()
      return
    }
    if (ctx.method === 'keyboard-interactive') {
      if (anonymous) {
        note({ owner: { id: `anon:${randomUUID()}`, persistent: false } })
        ctx.accept()
        return
      }
      // No prompts, just the reason: OpenSSH and Dropbear print the instruction text to the user.
      const reason = new PortholeError('PH_1020', refusedKey ?? '(none offered)').toLine()
      ctx.prompt([], 'Porthole', reason, () => ctx.reject(['publickey']))
      return
    }
    ctx.reject(['publickey', 'keyboard-interactive'])
  }

  /** Stops accepting, tells connected users why, and closes their sessions. */
  async close (): Promise<void> {
    this.#closing = true
    const closed = new Promise<void>((resolve) => this.#listener.close(() => resolve()))
    const ended = Promise.all([...this.#connections.values()].map((connection) => connection.end(new PortholeError('PH_1021'))))
    await Promise.race([ended.then(() => closed), new Promise((resolve) => setTimeout(resolve, 3000).unref())])
  }
}
