// The inspector: ngrok's agent API paths (/api/requests/http, /api/tunnels, /api/status, /api/) and the web UI,
// for ONE owner's view, served over streams the SSH transport hands in (a `direct-tcpip` channel of a
// logged-in session to localhost:4040). It never listens on a socket: an http.Server is fed with
// server.emit('connection', stream), and the owner each stream belongs to is looked up per request, so a
// session can only ever see its own owner's records.
// Bounded: connections and live views per owner, header size and time, a 1 MiB body (replay edits), the list's
// limit. Requests must name a loopback Host (DNS rebinding) and changes a loopback Origin when one is sent, and
// POST bodies must be JSON (a foreign page cannot send that without a CORS preflight, which is never granted).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import { PortholeError, isPortholeError } from '../core/errors.js'
import type { InspectStore, Replay } from './record.js'
import { toNgrokRequest } from './ngrok-shape.js'
import { LiveStreams } from './live-stream.js'
import { parseReplayRequest } from './replay-request.js'
import { UiFiles } from './ui-files.js'

/** One of the owner's endpoints as /api/tunnels shows it. */
export interface TunnelView {
  /** The endpoint's host: the same string as `tunnel_name` in captured requests. */
  readonly name: string
  readonly publicUrls: readonly string[]
  readonly proto: string
  /** What the agent forwards to, as far as the gateway knows (for SSH: the -R bind, `localhost:80`). */
  readonly addr: string
  readonly inspect: boolean
}

/** Whose inspector a stream reaches, and what that owner has online. */
export interface InspectorView {
  readonly ownerId: string
  readonly account: string | null
  tunnels (): TunnelView[]
  /** Extra fields for /api/status (the session that opened the view). */
  session (): Record<string, unknown>
}

export interface InspectorOptions {
  readonly store: InspectStore
  readonly replay: Replay
  readonly log: Logger
  /** Inspector connections one owner may hold open at once (browsers open ~6 per page). */
  readonly maxConnectionsPerOwner?: number
  /** Live views (/api/events) one owner may hold open at once. */
  readonly maxStreamsPerOwner?: number
  readonly maxBodyBytes?: number
  /** The list's default and largest `limit`. */
  readonly defaultLimit?: number
  readonly maxLimit?: number
  readonly heartbeatMs?: number
  /** Where the web UI's files are (default: inspector-ui/ beside src/ and dist/). */
  readonly uiDir?: string
}

export interface Inspector {
  /** Serves one stream (an SSH channel) as the given owner's inspector. */
  serve (stream: Duplex, view: InspectorView): void
  close (): void
}

const VIEW = Symbol('porthole.inspectorView')
type ViewedSocket = Duplex & { [VIEW]?: InspectorView }

const LOOPBACK_HOST = /^(localhost|127\.0\.0\.1|\[::1\])(:\d+)?$/i

const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'content-security-policy': "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
}

interface Reply {
  readonly status: number
  readonly json?: unknown
}

export function createInspector (options: InspectorOptions): Inspector {
  const { store, replay, log } = options
  const maxConnections = options.maxConnectionsPerOwner ?? 32
  const maxBody = options.maxBodyBytes ?? 1024 * 1024
  const defaultLimit = options.defaultLimit ?? 50
  const maxLimit = options.maxLimit ?? 1000
  const live = new LiveStreams(store, options.maxStreamsPerOwner ?? 8, options.heartbeatMs ?? 15_000)
  const ui = new UiFiles(options.uiDir)
  const connections = new Map<string, number>()
  const streams = new Set<Duplex>()

  const server: Server = createServer({
    maxHeaderSize: 16 * 1024,
    headersTimeout: 20_000,
    requestTimeout: 60_000,
    keepAliveTimeout: 30_000,
  }, (req, res) => {
    const view = (req.socket as ViewedSocket)[VIEW]
    if (!view) {
      res.destroy()
      return
    }
    handle(req, res, view).catch((error: unknown) => {
      log.error({ err: (error as Error)?.message }, 'inspector request failed outside its handler')
      if (!res.headersSent) send(res, errorReply(new PortholeError('PH_5010')))
      else res.destroy()
    })
  })
  server.on('clientError', (_error, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n')
    else socket.destroy()
  })

  async function handle (req: IncomingMessage, res: ServerResponse, view: InspectorView): Promise<void> {
    const host = req.headers.host ?? ''
    if (!LOOPBACK_HOST.test(host)) return send(res, errorReply(new PortholeError('PH_5035', `Host ${JSON.stringify(host.slice(0, 100))}`)))
    const method = req.method ?? 'GET'
    const origin = req.headers.origin
    if (method !== 'GET' && method !== 'HEAD' && origin !== undefined && !LOOPBACK_HOST.test(origin.replace(/^https?:\/\//i, ''))) {
      return send(res, errorReply(new PortholeError('PH_5035', `Origin ${JSON.stringify(origin.slice(0, 100))}`)))
    }
    const url = new URL(req.url ?? '/', 'http://inspector')
    const path = url.pathname

    if (!path.startsWith('/api')) {
      if (method !== 'GET' && method !== 'HEAD') return send(res, errorReply(new PortholeError('PH_5006', method)))
      const file = ui.get(path)
      if (!file) return send(res, errorReply(new PortholeError('PH_5003', `path ${path.slice(0, 100)}`)))
      res.writeHead(200, { 'content-type': file.type, 'content-length': file.body.length, 'cache-control': 'no-cache', ...SECURITY_HEADERS })
      res.end(method === 'HEAD' ? undefined : file.body)
      return
    }

    try {
      const reply = await route(req, res, view, method, path, url.searchParams)
      if (reply) send(res, reply)
    } catch (error) {
      const err = isPortholeError(error) ? error : new PortholeError('PH_5010')
      if (!isPortholeError(error)) log.error({ err: (error as Error)?.message }, 'inspector request failed')
      if (err.code === 'PH_5007') res.shouldKeepAlive = false // the rest of the body is never read
      if (!res.headersSent) send(res, errorReply(err))
      else res.destroy()
    }
  }

  /** The API; returns null when the handler answered itself (the live stream). */
  async function route (req: IncomingMessage, res: ServerResponse, view: InspectorView, method: string, path: string, query: URLSearchParams): Promise<Reply | null> {
    const allow = (...methods: string[]): void => {
      if (!methods.includes(method)) throw new PortholeError('PH_5006', method)
    }
    if (path === '/api' || path === '/api/') {
      allow('GET')
      return { status: 200, json: { uri: '/api/', tunnels_uri: '/api/tunnels', requests_uri: '/api/requests/http', status_uri: '/api/status', events_uri: '/api/events' } }
    }
    if (path === '/api/tunnels') {
      allow('GET')
      return { status: 200, json: { tunnels: view.tunnels().map(tunnelJson), uri: '/api/tunnels' } }
    }
    if (path.startsWith('/api/tunnels/')) {
      allow('GET')
      const name = decodeURIComponent(path.slice('/api/tunnels/'.length))
      const tunnel = view.tunnels().find((t) => t.name === name)
      if (!tunnel) throw new PortholeError('PH_5003', `tunnel ${name.slice(0, 100)}`)
      return { status: 200, json: tunnelJson(tunnel) }
    }
    if (path === '/api/status') {
      allow('GET')
      const tunnels = view.tunnels()
      return {
        status: 200,
        json: {
          status: 'online',
          account: view.account,
          tunnels: tunnels.length,
          public_urls: tunnels.flatMap((t) => t.publicUrls),
          captured: store.list(view.ownerId, { limit: maxLimit }).length,
          session: view.session(),
          uri: '/api/status',
        },
      }
    }
    if (path === '/api/requests/http') {
      allow('GET', 'DELETE', 'POST')
      if (method === 'GET') {
        const limit = intParam(query.get('limit'), 'limit', defaultLimit, maxLimit)
        const tunnelName = query.get('tunnel_name') ?? undefined
        const records = store.list(view.ownerId, { limit, ...(tunnelName ? { tunnelName } : {}) })
        return { status: 200, json: { requests: records.map(toNgrokRequest), uri: '/api/requests/http' } }
      }
      if (method === 'DELETE') {
        store.clear(view.ownerId)
        live.cleared(view.ownerId)
        return { status: 204 }
      }
      const body = await readJsonBody(req, maxBody)
      const ask = parseReplayRequest(body)
      const record = store.get(view.ownerId, ask.id)
      if (!record) throw new PortholeError('PH_5031', ask.id)
      if (ask.tunnelName !== undefined && ask.tunnelName !== record.tunnelName) {
        throw new PortholeError('PH_5001', `tunnel_name: a request is replayed through the tunnel it came in on (${record.tunnelName})`)
      }
      try {
        await replay(record, ask.edits)
      } catch (error) {
        log.info({ owner: view.ownerId, id: record.id, err: (error as Error)?.message }, 'replay failed')
        throw new PortholeError('PH_5032', isPortholeError(error) ? error.toLine() : String((error as Error)?.message ?? error))
      }
      return { status: 204 }
    }
    if (path.startsWith('/api/requests/http/')) {
      allow('GET')
      const id = decodeURIComponent(path.slice('/api/requests/http/'.length))
      const record = store.get(view.ownerId, id)
      if (!record) throw new PortholeError('PH_5031', id.slice(0, 128))
      return { status: 200, json: toNgrokRequest(record) }
    }
    if (path === '/api/events') {
      allow('GET')
      if (!live.hasRoom(view.ownerId)) throw new PortholeError('PH_5030', 'live views')
      live.open(view.ownerId, res)
      return null
    }
    throw new PortholeError('PH_5003', `path ${path.slice(0, 100)}`)
  }

  return {
    serve (stream: Duplex, view: InspectorView): void {
      const count = connections.get(view.ownerId) ?? 0
      if (count >= maxConnections) {
        const body = JSON.stringify(errorJson(new PortholeError('PH_5030', 'connections')))
        stream.on('error', () => {})
        streams.add(stream)
        const linger = setTimeout(() => stream.destroy(), 5000).unref()
        stream.once('close', () => {
          clearTimeout(linger)
          streams.delete(stream)
        })
        stream.end(`HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`)
        return
      }
      connections.set(view.ownerId, count + 1)
      let released = false
      const release = (): void => {
        if (released) return
        released = true
        const left = (connections.get(view.ownerId) ?? 1) - 1
        if (left > 0) connections.set(view.ownerId, left)
        else connections.delete(view.ownerId)
      }
      streams.add(stream)
      stream.once('close', () => {
        streams.delete(stream)
        release()
      })
      stream.on('error', () => {})
      ;(stream as ViewedSocket)[VIEW] = view
      server.emit('connection', stream)
    },
    close (): void {
      live.close()
      for (const stream of streams) stream.destroy()
    },
  }
}

function tunnelJson (tunnel: TunnelView): Record<string, unknown> {
  const publicUrl = tunnel.publicUrls[0] ?? ''
  return {
    name: tunnel.name,
    uri: `/api/tunnels/${encodeURIComponent(tunnel.name)}`,
    public_url: publicUrl,
    public_urls: tunnel.publicUrls,
    proto: publicUrl.split(':')[0] || tunnel.proto,
    config: { addr: tunnel.addr, inspect: tunnel.inspect },
  }
}

function intParam (value: string | null, name: string, fallback: number, max: number): number {
  if (value === null || value === '') return fallback
  if (!/^\d{1,9}$/.test(value)) throw new PortholeError('PH_5001', `${name} (a whole number)`)
  return Math.min(Math.max(Number(value), 1), max)
}

async function readJsonBody (req: IncomingMessage, max: number): Promise<Buffer> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase()
  if (type !== 'application/json') throw new PortholeError('PH_5001', 'content-type (send application/json)')
  const declared = Number(req.headers['content-length'] ?? 0)
  if (declared > max) {
    req.resume()
    throw new PortholeError('PH_5007', `${max / 1024} KiB`)
  }
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > max) throw new PortholeError('PH_5007', `${max / 1024} KiB`)
    chunks.push(chunk)
  }
  return Buffer.concat(chunks)
}

function errorJson (error: PortholeError): Record<string, unknown> {
  return { error_code: error.code, status_code: error.status, msg: error.message }
}

function errorReply (error: PortholeError): Reply {
  return { status: error.status, json: errorJson(error) }
}

function send (res: ServerResponse, reply: Reply): void {
  if (reply.status === 204 || reply.json === undefined) {
    res.writeHead(reply.status, { 'cache-control': 'no-store', ...SECURITY_HEADERS })
    res.end()
    return
  }
  const body = JSON.stringify(reply.json)
  res.writeHead(reply.status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...SECURITY_HEADERS,
    ...(reply.status >= 400 ? { 'porthole-error-code': (reply.json as { error_code: string }).error_code } : {}),
  })
  res.end(body)
}
