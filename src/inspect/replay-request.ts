// What a replay asks for: ngrok's `POST /api/requests/http {"id", "tunnel_name"}`, plus the edits the web UI
// sends to replay a changed copy (method, uri, headers, body). Validated here, before anything is sent: a
// method must be an HTTP token, the uri origin-form, header names tokens and values free of CR/LF/NUL, so an
// edit cannot smuggle a second request into the tunnel.
import { PortholeError } from '../core/errors.js'

export interface ReplayEdits {
  method?: string
  uri?: string
  headers?: Record<string, string[]>
  body?: Buffer
}

export interface ReplayRequest {
  readonly id: string
  readonly tunnelName?: string
  readonly edits?: ReplayEdits
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
const BAD_VALUE = /[\r\n\0]/
const MAX_HEADERS = 100

function invalid (field: string): PortholeError {
  return new PortholeError('PH_5001', field)
}

function text (value: unknown, field: string, max: number): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > max) throw invalid(field)
  return value
}

function headers (value: unknown): Record<string, string[]> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid('headers')
  const entries = Object.entries(value as Record<string, unknown>)
  if (entries.length > MAX_HEADERS) throw invalid(`headers (at most ${MAX_HEADERS})`)
  const out: Record<string, string[]> = {}
  for (const [name, raw] of entries) {
    if (!TOKEN.test(name)) throw invalid(`header name ${JSON.stringify(name.slice(0, 64))}`)
    const values = Array.isArray(raw) ? raw : [raw]
    for (const v of values) if (typeof v !== 'string' || BAD_VALUE.test(v)) throw invalid(`header ${name}`)
    out[name] = values as string[]
  }
  return out
}

/** Parses the JSON body of a replay request; throws PH_5001 naming the bad field. */
export function parseReplayRequest (body: Buffer): ReplayRequest {
  let json: unknown
  try {
    json = JSON.parse(body.toString('utf8'))
  } catch {
    throw invalid('JSON body')
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw invalid('JSON body')
  const input = json as Record<string, unknown>
  const id = text(input.id, 'id', 128)
  const tunnelName = input.tunnel_name === undefined || input.tunnel_name === '' ? undefined : text(input.tunnel_name, 'tunnel_name', 512)
  const edits: ReplayEdits = {}
  if (input.method !== undefined) {
    const method = text(input.method, 'method', 32)
    if (!TOKEN.test(method)) throw invalid('method')
    edits.method = method
  }
  if (input.uri !== undefined) {
    const uri = text(input.uri, 'uri', 8192)
    if (!uri.startsWith('/') || /[\s\0]/.test(uri)) throw invalid('uri (origin-form, e.g. /path?q=1)')
    edits.uri = uri
  }
  if (input.headers !== undefined) edits.headers = headers(input.headers)
  if (input.body !== undefined) {
    if (typeof input.body !== 'string') throw invalid('body')
    const encoding = input.body_encoding ?? 'utf8'
    if (encoding !== 'utf8' && encoding !== 'base64') throw invalid('body_encoding (utf8 or base64)')
    edits.body = Buffer.from(input.body, encoding)
  }
  return { id, ...(tunnelName !== undefined ? { tunnelName } : {}), ...(Object.keys(edits).length > 0 ? { edits } : {}) }
}
