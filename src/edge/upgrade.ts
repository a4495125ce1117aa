// WebSocket (and other) upgrades, through the endpoint's undici pool: the request goes upstream with the
// same header handling and policy as any request, and only once the service answers 101 are the two
// sockets spliced. Nothing the client sends before that reaches the service, so it cannot smuggle a second
// request past the policy; a non-101 answer is relayed (cleaned) and the connection closed.
import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { Dispatcher } from 'undici'
import type { Endpoint } from '../core/endpoint.js'
import type { ErrorCode } from '../core/errors.js'
import type { HeaderMap, HttpRequestContext } from '../policy/compiled.js'
import { rawResponseHead, sendRawError } from './error-response.js'
import { cleanResponseHeaders } from './headers.js'
import { splice } from '../net/splice.js'
import type { Upstream } from './upstream.js'

class UpgradeHandler implements Dispatcher.DispatchHandler {
  readonly #socket: Socket
  readonly #head: Buffer
  readonly #endpoint: Endpoint
  readonly #ctx: HttpRequestContext
  readonly #started = performance.now()
  readonly #mapError: (error: unknown) => { code: ErrorCode, detail?: string }
  #answered = false
  /** undici is done with the request (upgraded, ended or failed): nothing left to abort. */
  #settled = false
  #clientGone = false
  #controller: Dispatcher.DispatchController | null = null

  constructor (socket: Socket, head: Buffer, endpoint: Endpoint, ctx: HttpRequestContext, mapError: (error: unknown) => { code: ErrorCode, detail?: string }) {
    this.#socket = socket
    this.#head = head
    this.#endpoint = endpoint
    this.#ctx = ctx
    this.#mapError = mapError
    // From dispatch on: a client that leaves while the request waits for a pool connection must abort it too.
    this.#clientGone = socket.destroyed
    socket.once('close', () => {
      if (this.#settled) return
      this.#clientGone = true
      this.#controller?.abort(new Error('client closed'))
    })
  }

  onRequestStart (controller: Dispatcher.DispatchController): void {
    this.#controller = controller
    if (this.#clientGone) controller.abort(new Error('client closed'))
  }

  onRequestUpgrade (_controller: Dispatcher.DispatchController, statusCode: number, upstreamHeaders: HeaderMap, upstream: Duplex): void {
    this.#settled = true
    this.#answered = true
    if (this.#socket.destroyed) {
      upstream.destroy() // the client left as the service answered: splice would never see its 'close'
      return
    }
    const protocol = upstreamHeaders.upgrade
    const headers = cleanResponseHeaders(upstreamHeaders)
    headers.connection = 'Upgrade'
    if (protocol !== undefined) headers.upgrade = protocol
    this.#socket.write(rawResponseHead(statusCode, headers))
    if (this.#head.length > 0) upstream.write(this.#head)
    this.#log(statusCode)
    splice(this.#socket, upstream, () => {})
  }

  onResponseStart (_controller: Dispatcher.DispatchController, statusCode: number, upstreamHeaders: HeaderMap): void {
    if (statusCode < 200) return
    this.#answered = true
    const headers = cleanResponseHeaders(upstreamHeaders)
    delete headers['content-length']
    headers.connection = 'close'
    this.#socket.write(rawResponseHead(statusCode, headers))
    this.#log(statusCode)
  }

  onResponseData (controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#socket.write(chunk)) return
    controller.pause()
    this.#socket.once('drain', () => controller.resume())
  }

  onResponseEnd (): void {
    this.#settled = true
    this.#socket.end()
  }

  onResponseError (_controller: Dispatcher.DispatchController, error: Error & { code?: string }): void {
    this.#settled = true
    if (this.#answered || error.code === 'UND_ERR_ABORTED') {
      this.#socket.destroy()
      return
    }
    this.#answered = true
    const { code, detail } = this.#mapError(error) // tunnel refused, timeout, bad response: its catalogue code
    sendRawError(this.#socket, code, detail)
  }

  #log (status: number): void {
    this.#endpoint.hooks.onRequest?.({
      method: this.#ctx.method, path: this.#ctx.path, status, durationMs: Math.round(performance.now() - this.#started), clientIp: this.#ctx.clientIp,
    })
  }
}

/** Sends an upgrade request upstream; `headers` are the cleaned request headers (undici adds Connection/Upgrade). */
export function proxyUpgrade (req: IncomingMessage, socket: Socket, head: Buffer, endpoint: Endpoint, upstream: Upstream, ctx: HttpRequestContext, headers: HeaderMap, mapError: (error: unknown) => { code: ErrorCode, detail?: string }): void {
  const protocol = String(req.headers.upgrade ?? 'websocket')
  const handler = new UpgradeHandler(socket, head, endpoint, ctx, mapError)
  upstream.dispatch({ remoteAddress: ctx.clientIp, remotePort: ctx.clientPort }, { method: (req.method ?? 'GET') as Dispatcher.HttpMethod, path: ctx.path, headers: headers as Record<string, string | string[]>, upgrade: protocol }, handler)
}
