// The records the edge makes (capture.ts): small classes whose header lists are built only when someone reads
// them (the inspector, the admin API, a replay), since most records are evicted unread and a busy endpoint
// should not pay for them per request; plus the header helpers both share. Each record carries its size for
// the store (RECORD_SIZE), so the store need not walk it either.
import { randomBytes } from 'node:crypto'
import { STATUS_CODES } from 'node:http'
import type { HeaderMap } from '../policy/compiled.js'
import type { CapturedRequest, CapturedRequestPart, CapturedResponsePart } from './record.js'

/** Characters kept of one header value. */
export const HEADER_VALUE_CAP = 4 * 1024
/** Never shown: the replay mark carries the process's secret (capture.ts). */
const REPLAY_HEADER = 'porthole-replay'

let lastMs = 0
let lastMsText = ''
let sequence = 0
/** Tells this process's ids from another run's (ids are per process; a restart starts a new store). */
const RUN = randomBytes(3).toString('hex')
/** The sequence part of an id, made once per number (a busy millisecond counts into the tens). */
const sequenceTexts: string[] = []
/** 'req_' + milliseconds + a sequence within the millisecond + this run's tag: later ids sort after earlier ones. */
export function newRecordId (): string {
  const now = Date.now()
  if (now <= lastMs) sequence++ // the same millisecond, or a clock that stepped back: keep counting
  else {
    lastMs = now
    lastMsText = `req_${now.toString(36).padStart(9, '0')}`
    sequence = 0
  }
  return lastMsText + (sequence < 1296 ? (sequenceTexts[sequence] ??= sequenceText(sequence)) : sequenceText(sequence))
}

function sequenceText (sequence: number): string {
  return `${sequence.toString(36).padStart(4, '0')}${RUN}`
}

const statusTexts: string[] = []
/** '200 OK': a status code and its standard reason, made once per code. */
export function statusText (code: number): string {
  return statusTexts[code] ??= `${code} ${STATUS_CODES[code] ?? ''}`.trimEnd()
}

/**
 * What a record costs in the store, as the edge knows it cheaply (body bytes and header text), under a symbol
 * the store reads instead of walking the record (its header lists are built only when someone reads them).
 */
export const RECORD_SIZE = Symbol('porthole.inspect.recordSize')

/** A shallow copy of a header map whose lists are copies too: what the policy does to the original stays there. */
export function snapshot (headers: HeaderMap): HeaderMap {
  const copy: HeaderMap = {}
  for (const name in headers) {
    const value = headers[name]
    copy[name] = Array.isArray(value) ? value.slice() : value
  }
  return copy
}

export function headerBytes (headers: HeaderMap): number {
  let size = 0
  for (const name in headers) {
    const value = headers[name]
    if (typeof value === 'string') size += name.length + value.length + 32
    else if (value !== undefined) for (const v of value) size += name.length + v.length + 32
  }
  return size
}

function capValue (value: string): string {
  return value.length > HEADER_VALUE_CAP ? value.slice(0, HEADER_VALUE_CAP) : value
}

/** HeaderMap (or getHeaders()) to the record's shape: every value a list, each cut at HEADER_VALUE_CAP. */
export function headerLists (headers: Record<string, string | string[] | number | undefined>): Record<string, string[]> {
  const out: Record<string, string[]> = {}
  for (const name in headers) {
    const value = headers[name]
    if (value === undefined) continue
    out[name] = Array.isArray(value) ? value.map(capValue) : [capValue(String(value))]
  }
  return out
}

export function rawHeaderLists (raw: readonly string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {}
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!
    // The replay mark carries the process's secret: never shown (the policy and the upstream never see it either).
    if (name.charCodeAt(0) === 58 /* ':' */ || name.toLowerCase() === REPLAY_HEADER) continue
    ;(out[name] ??= []).push(capValue(raw[i + 1]!))
  }
  return out
}

/** The header lines of a serialized HTTP/1.1 head (its first line skipped). */
export function parseHeaderLines (head: string): Record<string, string[]> {
  const headers: Record<string, string[]> = {}
  let at = head.indexOf('\r\n')
  while (at !== -1) {
    const start = at + 2
    const end = head.indexOf('\r\n', start)
    const line = head.slice(start, end === -1 ? undefined : end)
    at = end
    const colon = line.indexOf(':')
    if (colon <= 0) continue
    ;(headers[line.slice(0, colon)] ??= []).push(capValue(line.slice(colon + 1).trim()))
  }
  return headers
}

/** A serialized HTTP/1.1 response head: status line and header lines. */
export function parseHead (head: string): { statusCode: number, status: string, headers: Record<string, string[]> } | undefined {
  const match = /^HTTP\/\d\.\d (\d{3})(?: ([^\r\n]*))?/.exec(head)
  if (match === null) return undefined
  const statusCode = Number(match[1])
  return { statusCode, status: `${statusCode} ${match[2] ?? STATUS_CODES[statusCode] ?? ''}`.trimEnd(), headers: parseHeaderLines(head) }
}

/** The request part of an edge record: its header lists are made on first read. */
export class LazyRequestPart implements CapturedRequestPart {
  readonly method: string
  readonly proto: string
  readonly uri: string
  readonly body: Buffer
  readonly bodySize: number
  readonly truncated: boolean
  #map: HeaderMap | null
  #raw: readonly string[] | null
  #lists: Record<string, string[]> | null = null

  constructor (method: string, proto: string, uri: string, map: HeaderMap | null, raw: readonly string[], body: Buffer, bodySize: number, truncated: boolean) {
    this.method = method
    this.proto = proto
    this.uri = uri
    this.#map = map
    this.#raw = map === null ? raw : null
    this.body = body
    this.bodySize = bodySize
    this.truncated = truncated
  }

  get headers (): Record<string, string[]> {
    if (this.#lists === null) {
      this.#lists = this.#map !== null ? headerLists(this.#map) : rawHeaderLists(this.#raw!)
      this.#map = this.#raw = null
    }
    return this.#lists
  }

  toJSON (): object { return { method: this.method, proto: this.proto, uri: this.uri, headers: this.headers, body: this.body, bodySize: this.bodySize, truncated: this.truncated } }
}

/** The response part of an edge record: HTTP/1.1 heads are parsed on first read. */
export class LazyResponsePart implements CapturedResponsePart {
  readonly statusCode: number
  readonly status: string
  readonly proto: string
  readonly body: Buffer
  readonly bodySize: number
  readonly truncated: boolean
  #head: string | null
  #set: Record<string, string | string[] | number | undefined> | null
  #lists: Record<string, string[]> | null = null

  constructor (statusCode: number, status: string, proto: string, head: string | null, set: Record<string, string | string[] | number | undefined> | null, body: Buffer, bodySize: number, truncated: boolean) {
    this.statusCode = statusCode
    this.status = status
    this.proto = proto
    this.#head = head
    this.#set = set
    this.body = body
    this.bodySize = bodySize
    this.truncated = truncated
  }

  get headers (): Record<string, string[]> {
    if (this.#lists === null) {
      this.#lists = this.#head !== null ? parseHeaderLines(this.#head) : headerLists(this.#set!)
      this.#head = this.#set = null
    }
    return this.#lists
  }

  toJSON (): object { return { status: this.status, statusCode: this.statusCode, proto: this.proto, headers: this.headers, body: this.body, bodySize: this.bodySize, truncated: this.truncated } }
}

export class LazyPublic {
  readonly uri: string
  #map: HeaderMap | null
  #lists: Record<string, string[]> | null = null

  constructor (uri: string, map: HeaderMap) {
    this.uri = uri
    this.#map = map
  }

  get headers (): Record<string, string[]> {
    if (this.#lists === null) {
      this.#lists = headerLists(this.#map!)
      this.#map = null
    }
    return this.#lists
  }

  toJSON (): object { return { uri: this.uri, headers: this.headers } }
}

/** A record the edge made: plain fields, and its size for the store (RECORD_SIZE). */
export class EdgeRecord implements CapturedRequest {
  readonly id: string
  readonly ownerId: string
  readonly endpointId: string
  readonly tunnelName: string
  readonly remoteAddr: string
  readonly #startMs: number
  #start: string | null = null
  readonly durationMs: number
  readonly request: CapturedRequestPart
  readonly response: CapturedResponsePart | null
  // declared, not defined: absent unless set (as in a plain record), so no own property holds undefined
  declare readonly errorCode?: string
  declare readonly replayOf?: string
  declare readonly public?: CapturedRequest['public']
  readonly #size: number

  constructor (id: string, ownerId: string, endpointId: string, tunnelName: string, remoteAddr: string, start: number, durationMs: number,
    request: CapturedRequestPart, response: CapturedResponsePart | null, errorCode: string | undefined, replayOf: string | undefined,
    sent: CapturedRequest['public'] | undefined, size: number) {
    this.#startMs = start
    this.id = id
    this.ownerId = ownerId
    this.endpointId = endpointId
    this.tunnelName = tunnelName
    this.remoteAddr = remoteAddr
    this.durationMs = durationMs
    this.request = request
    this.response = response
    if (errorCode !== undefined) this.errorCode = errorCode
    if (replayOf !== undefined) this.replayOf = replayOf
    if (sent !== undefined) this.public = sent
    this.#size = size
  }

  /** ISO 8601, made on first read. */
  get start (): string { return (this.#start ??= new Date(this.#startMs).toISOString()) }

  get [RECORD_SIZE] (): number { return this.#size }

  toJSON (): object {
    return { ...this, start: this.start }
  }
}
