// GET /metrics (Prometheus text format) and GET /healthz, served without an API key on the admin API's listener
// and on a listener of their own (--metrics-addr). Both show counts only: no names, addresses, keys or secrets
// (metric-labels.ts), so a scraper needs no credential. The own listener serves these two paths and nothing else.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { checkingIntervalMs, listenOn } from '../net/listen.js'
import type { GatewayMetrics } from './metrics.js'

export const METRICS_PATHS = ['/metrics', '/healthz'] as const

/** Answers a request for /metrics or /healthz and returns true; returns false for any other path. */
export type PublicHandler = (req: IncomingMessage, res: ServerResponse) => boolean

/** `shuttingDown` turns /healthz to 503 (load balancers and container health checks stop sending). */
export function metricsHandler (metrics: GatewayMetrics, shuttingDown: () => boolean): PublicHandler {
  return (req, res) => {
    const path = (req.url ?? '').split('?', 1)[0]
    if (path !== '/metrics' && path !== '/healthz') return false
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n', { allow: 'GET, HEAD' })
      return true
    }
    if (path === '/healthz') {
      const down = shuttingDown()
      send(res, down ? 503 : 200, 'application/json; charset=utf-8', down ? '{"status":"shutting down"}\n' : '{"status":"ok"}\n')
      return true
    }
    metrics.render().then(
      (text) => send(res, 200, metrics.contentType, text),
      () => send(res, 500, 'text/plain; charset=utf-8', 'metrics could not be collected\n'),
    )
    return true
  }
}

function send (res: ServerResponse, status: number, type: string, body: string, extra: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', ...extra })
  res.end(res.req.method === 'HEAD' ? undefined : body)
}

export interface MetricsServer {
  readonly address: AddressInfo
  close (): Promise<void>
}

/** The --metrics-addr listener: the two paths, 404 for anything else; bounded like the admin API's. */
export async function startMetricsServer (handler: PublicHandler, host: string, port: number, headersTimeoutMs: number): Promise<MetricsServer> {
  const server: Server = createServer({
    maxHeaderSize: 8 * 1024,
    headersTimeout: headersTimeoutMs,
    requestTimeout: Math.max(30_000, headersTimeoutMs),
    connectionsCheckingInterval: checkingIntervalMs(headersTimeoutMs),
    keepAliveTimeout: 5_000,
  }, (req, res) => {
    if (!handler(req, res)) send(res, 404, 'text/plain; charset=utf-8', 'not found: this listener serves /metrics and /healthz\n')
  })
  server.maxConnections = 64
  server.on('clientError', (_error, socket) => socket.destroy())
  const address = await listenOn(server, host, port)
  return {
    address,
    close: () => new Promise((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    }),
  }
}
