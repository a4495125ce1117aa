// The admin REST API's listener: HTTP + JSON on its own address (--api-addr), every call authenticated by an
// API key (`Authorization: Bearer ak_...`) except GET /metrics and /healthz (counts only, no key). Requests are
// bounded (header size and time, a 64 KiB body); every failure is one JSON shape, `{"error_code", "status_code",
// "msg"}`, from the error catalogue; every call is logged with the API key's id (never the key).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Logger } from 'pino'
import { PortholeError, isPortholeError } from '../core/errors.js'
import type { SessionDirectory } from '../core/session.js'
import type { Identity } from '../identity/identity.js'
import { LoginThrottle } from '../identity/login-throttle.js'
import { checkingIntervalMs, closeSoon, listenOn } from '../net/listen.js'
import { rawResponseHead } from '../edge/error-response.js'
import { routes, type EndpointRequests } from './resources.js'
import type { PublicHandler } from '../observe/metrics-http.js'
import { MethodNotAllowed, Router, type Reply } from './router.js'

export const MAX_BODY_BYTES = 64 * 1024
/**
 * Admin API connections open at once from one address (of 256 in all). Constants, not settings: the admin API's
 * clients are the operator's own CLI and scripts (one connection per command, keep-alive), far below either; they
 * bound what a stranger reaching the port can hold, so that the operator is never locked out.
 */
export const MAX_CONNECTIONS_PER_ADDRESS = 32

export interface ApiServerOptions {
  readonly identity: Identity
  readonly sessions: SessionDirectory
  readonly log: Logger
  /** Slows down wrong API keys per source address (shared with nothing else by default). */
  readonly throttle?: LoginThrottle
  readonly headersTimeoutMs?: number
  readonly requestTimeoutMs?: number
  /** An endpoint's captured requests (GET /api/endpoints/{id}/requests); absent: that path answers 404. */
  readonly requests?: EndpointRequests
  /** Paths answered without an API key (GET /metrics, /healthz: counts only, observe/metrics-http.ts). */
  readonly open?: PublicHandler
}

/** Marks a request whose connection must not be reused (a body left unread). */
class BodyTooLarge extends PortholeError {
  constructor () {
    super('PH_5007', `${MAX_BODY_BYTES / 1024} KiB`)
  }
}

export class ApiServer {
  readonly #identity: Identity
  readonly #log: Logger
  readonly #router: Router
  readonly #server: Server
  readonly #throttle: LoginThrottle

  constructor (options: ApiServerOptions) {
    this.#identity = options.identity
    this.#log = options.log
    this.#throttle = options.throttle ?? new LoginThrottle()
    this.#router = new Router(routes(options.identity, options.sessions, options.requests))
    const headersTimeout = options.headersTimeoutMs ?? 10_000
    this.#server = createServer({
      maxHeaderSize: 16 * 1024,
      headersTimeout,
      // node refuses a request deadline shorter than the header one
      requestTimeout: Math.max(options.requestTimeoutMs ?? 30_000, headersTimeout),
      // node's default (30 s) cut a 10 s header deadline at 25-40 s
      connectionsCheckingInterval: checkingIntervalMs(headersTimeout),
      keepAliveTimeout: 5_000,
    }, (req, res) => {
      if (options.open?.(req, res)) return
      // #handle answers every error itself; this catch is the last guard so that nothing a client sends can
      // become an unhandled rejection (which ends the whole gateway process).
      this.#handle(req, res).catch((error: unknown) => {
        this.#log.error({ err: (error as Error)?.message }, 'api request failed outside its handler')
        if (!res.headersSent) this.#send(res, errorReply(new PortholeError('PH_5010')))
        else res.destroy()
      })
    })
    this.#server.maxConnections = 256
    // One address cannot take all 256 (a stranger holding sockets would lock the operator out).
    const perAddress = new Map<string, number>()
    this.#server.on('connection', (socket) => {
      const ip = socket.remoteAddress ?? ''
      const count = (perAddress.get(ip) ?? 0) + 1
      if (count > MAX_CONNECTIONS_PER_ADDRESS) return socket.destroy()
      perAddress.set(ip, count)
      socket.once('close', () => {
        const left = (perAddress.get(ip) ?? 1) - 1
        if (left > 0) perAddress.set(ip, left)
        else perAddress.delete(ip)
      })
    })
    // Malformed HTTP (or headers over the limit, or too slow): the same JSON error shape, then close.
    this.#server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
      if (!socket.writable || error.code === 'ECONNRESET') return socket.destroy()
      const reply = errorReply(error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? new PortholeError('PH_3020') : new PortholeError('PH_5001', `HTTP request (${error.code ?? 'unreadable'})`))
      const text = `${JSON.stringify(reply.body)}\n`
      socket.end(rawResponseHead(reply.status, { 'content-type': 'application/json; charset=utf-8', connection: 'close', 'content-length': String(Buffer.byteLength(text)) }) + text)
      closeSoon(socket)
    })
  }

  listen (host: string, port: number): Promise<AddressInfo> {
    return listenOn(this.#server, host, port)
  }

  close (): Promise<void> {
    return new Promise((resolve) => {
      this.#server.close(() => resolve())
      this.#server.closeAllConnections()
    })
  }

  async #handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now()
    const method = req.method ?? 'GET'
    let path = '(unparsed)'
    let keyId: string | null = null
    let reply: Reply
    let failure: unknown = null
    try {
      // Node accepts absolute-form targets (`GET http://a:99999/`): a URL that does not parse is the client's error.
      let url: URL
      try {
        url = new URL(req.url ?? '/', 'http://api')
      } catch {
        throw new PortholeError('PH_5001', 'request target')
      }
      path = url.pathname
      keyId = await this.#authenticate(req, req.socket.remoteAddress ?? '')
      const { route, params } = this.#router.match(method, url.pathname)
      const allowed = route.query ?? []
      for (const name of url.searchParams.keys()) {
        if (!allowed.includes(name)) throw new PortholeError('PH_5001', `query parameter ${JSON.stringify(name.slice(0, 64))}`)
      }
      const body = method === 'POST' ? await readJson(req) : {}
      reply = await route.handle({ params, query: url.searchParams, body })
    } catch (error) {
      failure = error
      // Unexpected errors are not shown to the client (they may carry internals); the log has them.
      const known = isPortholeError(error) ? error : new PortholeError('PH_5010')
      reply = errorReply(known)
      if (error instanceof MethodNotAllowed) res.setHeader('allow', error.allow)
    }
    // A body we did not read (refused early, or too large) must not be taken for the next request.
    if (failure instanceof BodyTooLarge || (failure !== null && !req.complete)) res.setHeader('connection', 'close')
    this.#send(res, reply)
    const fields = { method, path, status: reply.status, api_key: keyId, ms: Math.round(performance.now() - started) }
    if (reply.status >= 500) this.#log.error({ ...fields, err: (failure as Error)?.message }, 'api request failed')
    else this.#log.info(fields, 'api request')
  }

  /**
   * The id of the presented API key; throws PH_5005 when missing, unknown or revoked. After a few wrong keys
   * from one address, each further attempt from it waits longer (as SSH authtokens do).
   */
  async #authenticate (req: IncomingMessage, ip: string): Promise<string> {
    const header = req.headers.authorization ?? ''
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header)
    if (!match) throw new PortholeError('PH_5005')
    const record = await this.#throttle.check(ip, () => this.#identity.verifyApiKey(match[1]!))
    if (!record) throw new PortholeError('PH_5005')
    return record.id
  }

  #send (res: ServerResponse, reply: Reply): void {
    if (reply.location) res.setHeader('location', reply.location)
    res.setHeader('cache-control', 'no-store')
    if (reply.body === undefined) {
      res.writeHead(reply.status).end()
      return
    }
    const text = `${JSON.stringify(reply.body)}\n`
    res.writeHead(reply.status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) }).end(text)
  }
}

function errorReply (error: PortholeError): Reply {
  return { status: error.status, body: { error_code: error.code, status_code: error.status, msg: error.message } }
}

/** The request body as a JSON object (`{}` when empty); PH_5007 past the limit, PH_5001 when not JSON. */
async function readJson (req: IncomingMessage): Promise<Record<string, unknown>> {
  const declared = Number(req.headers['content-length'] ?? 0)
  if (declared > MAX_BODY_BYTES) throw new BodyTooLarge()
  // Events, not `for await`: leaving an async iterator destroys the socket before the 413 could be sent.
  const chunks = await new Promise<Buffer[]>((resolve, reject) => {
    const received: Buffer[] = []
    let size = 0
    const onData = (chunk: Buffer): void => {
      size += chunk.length
      if (size > MAX_BODY_BYTES) {
        req.off('data', onData).pause()
        reject(new BodyTooLarge())
        return
      }
      received.push(chunk)
    }
    req.on('data', onData)
    req.once('end', () => resolve(received))
    req.once('error', reject)
    req.once('close', () => { if (!req.complete) reject(new PortholeError('PH_5001', 'request body (the client went away)')) })
  })
  const text = Buffer.concat(chunks).toString('utf8').trim()
  if (text === '') return {}
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    throw new PortholeError('PH_5001', `JSON body (${(error as Error).message.slice(0, 120)})`)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new PortholeError('PH_5001', 'JSON body (want an object)')
  return value as Record<string, unknown>
}
