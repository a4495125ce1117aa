// Replays a captured request (as captured, or edited) through the gateway's own public listener on 127.0.0.1,
// with the public Host it was routed by: the same routing, traffic policy and tunnel as live traffic, nothing
// skipped. The request carries the replay mark (capture.ts: this process's secret, the owner, the record id)
// so its own record says which one it replays; the edge strips the mark before the policy or the upstream
// see it, and refuses (PH_3201) a marked request that lands on another owner's endpoint.
import { request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { PortholeError } from '../core/errors.js'
import { replayMark, REPLAY_HEADER } from './capture.js'
import type { CapturedRequest, Replay } from './record.js'

export interface ReplayOptions {
  /** The gateway's public HTTP listener (and HTTPS one): replays go to 127.0.0.1 on these ports. */
  readonly httpPort: number
  readonly httpsPort?: number
  /** The replay mark's secret; the edge must have the same one (InspectOptions.replaySecret). */
  readonly secret: string
  /** Replays in flight per owner at most (default 8); more are refused with PH_3202. */
  readonly maxInFlightPerOwner?: number
  /** How long a replay may take to get its response head (default 30s), then PH_3204. */
  readonly timeoutMs?: number
  /** Where to connect (default 127.0.0.1: the listeners' address when they listen on all interfaces). */
  readonly host?: string
}

/** Request headers the edge sets itself: a replay sends them afresh instead of stacking a second copy. */
const EDGE_SET = new Set(['host', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'content-length', 'transfer-encoding', 'connection', REPLAY_HEADER, 'porthole-hop'])
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
// eslint-disable-next-line no-control-regex
const FIELD_VALUE = /^[^\x00-\x08\x0a-\x1f\x7f]*$/

function lastValue (headers: CapturedRequest['request']['headers'], name: string): string | undefined {
  for (const key in headers) {
    if (key.toLowerCase() !== name) continue
    const values = headers[key]!
    const last = values[values.length - 1]
    return last?.split(',').pop()?.trim()
  }
  return undefined
}

/** The authority the original request was routed by: X-Forwarded-Host (the edge sets it), else the endpoint's name. */
function publicAuthority (record: CapturedRequest, headers: CapturedRequest['request']['headers']): string {
  const forwarded = lastValue(headers, 'x-forwarded-host')
  if (forwarded !== undefined && forwarded !== '') return forwarded
  if (!record.tunnelName.startsWith('*.')) return record.tunnelName
  return lastValue(headers, 'host') ?? record.tunnelName
}

export function createReplay (options: ReplayOptions): Replay {
  const limit = options.maxInFlightPerOwner ?? 8
  const timeoutMs = options.timeoutMs ?? 30_000
  const host = options.host ?? '127.0.0.1'
  const inFlight = new Map<string, number>()

  return async (record, edits = {}) => {
    // What the public client sent (the policy runs again on the way); records without it: what the upstream got.
    const sent = record.public ?? { uri: record.request.uri, headers: record.request.headers }
    const method = edits.method ?? record.request.method
    const uri = edits.uri ?? sent.uri
    if (!TOKEN.test(method)) throw new PortholeError('PH_3203', `method ${JSON.stringify(method)}`)
    if (!uri.startsWith('/') || !FIELD_VALUE.test(uri) || uri.includes(' ')) throw new PortholeError('PH_3203', `path ${JSON.stringify(uri)} (want /path?query)`)
    if (edits.body === undefined && record.request.truncated) throw new PortholeError('PH_3200', `${record.request.body.length} of ${record.request.bodySize} bytes kept`)
    const body = edits.body ?? record.request.body
    const headers: OutgoingHttpHeaders = {}
    for (const [name, values] of Object.entries(edits.headers ?? sent.headers)) {
      if (!TOKEN.test(name)) throw new PortholeError('PH_3203', `header name ${JSON.stringify(name)}`)
      if (EDGE_SET.has(name.toLowerCase())) continue
      for (const value of values) if (!FIELD_VALUE.test(value)) throw new PortholeError('PH_3203', `header ${name} value`)
      headers[name] = [...values]
    }
    const authority = publicAuthority(record, sent.headers)
    headers.host = authority
    headers['content-length'] = String(body.length)
    headers[REPLAY_HEADER] = replayMark(options.secret, record.ownerId, record.id)
    const https = lastValue(sent.headers, 'x-forwarded-proto') === 'https' && options.httpsPort !== undefined

    const owner = record.ownerId
    const running = inFlight.get(owner) ?? 0
    if (running >= limit) throw new PortholeError('PH_3202', String(limit))
    inFlight.set(owner, running + 1)
    try {
      await send(https, { host, port: https ? options.httpsPort! : options.httpPort, servername: authority.replace(/:\d+$/, '').replace(/^\[|\]$/g, ''), method, path: uri, headers, body, timeoutMs })
    } finally {
      const left = (inFlight.get(owner) ?? 1) - 1
      if (left <= 0) inFlight.delete(owner)
      else inFlight.set(owner, left)
    }
  }
}

interface Outgoing {
  readonly host: string
  readonly port: number
  readonly servername: string
  readonly method: string
  readonly path: string
  readonly headers: OutgoingHttpHeaders
  readonly body: Buffer
  readonly timeoutMs: number
}

/** One request to our own listener; resolves once the response has been read (and dropped: the edge records it). */
function send (https: boolean, out: Outgoing): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (detail: string): void => reject(new PortholeError('PH_3204', detail))
    const onResponse = (res: IncomingMessage): void => {
      res.resume()
      res.once('end', () => resolve())
      res.once('error', (error) => fail(error.message))
    }
    const common = { host: out.host, port: out.port, method: out.method, path: out.path, headers: out.headers, agent: false as const, setHost: false }
    // Our own listener: its certificate is for the public name and may come from anywhere (ACME, the local CA).
    const req = https
      ? httpsRequest({ ...common, servername: /^[\d.]+$|:/.test(out.servername) ? undefined : out.servername, rejectUnauthorized: false }, onResponse)
      : httpRequest(common, onResponse)
    req.setTimeout(out.timeoutMs, () => req.destroy(new Error(`no answer in ${out.timeoutMs} ms`)))
    req.once('error', (error) => fail(error.message))
    req.end(out.body)
  })
}
