// node's own HTTP/1.1 parser (llhttp), the one node's HTTP server and client run on. It has no public API: it is
// reached through node's internal _http_common, as node's own modules reach it, and test/unit/llhttp.test.ts
// pins what the fast path (fast-h1.ts) relies on, so a node release that changes it fails there first.
import { createRequire } from 'node:module'

/** A parser's callbacks are set as numbered properties (HTTPParser.kOnHeadersComplete, ...). */
export interface HttpParser {
  initialize (type: number, resource: object, maxHeaderSize: number, lenient: number): void
  /** Parses `data`, calling the callbacks as it goes: the bytes parsed, or an Error with `code` (HPE_*). */
  execute (data: Buffer): number | ParseError
  /** End of input: completes a body read until close; an Error if a message was cut short. */
  finish (): number | ParseError | undefined
  close (): void
  [callback: number]: unknown
}

export type ParseError = Error & { readonly code: string, readonly bytesParsed?: number }

interface HttpParserClass {
  new (): HttpParser
  readonly REQUEST: number
  readonly RESPONSE: number
  readonly kOnMessageBegin: number
  readonly kOnHeaders: number
  readonly kOnHeadersComplete: number
  readonly kOnBody: number
  readonly kOnMessageComplete: number
  readonly kLenientNone: number
}

const internals = createRequire(import.meta.url)('_http_common') as { HTTPParser: HttpParserClass, methods: string[] }

export const HTTPParser = internals.HTTPParser
/** Method names by the number kOnHeadersComplete gives. */
export const METHODS: readonly string[] = internals.methods

/**
 * kOnHeadersComplete's arguments. `headers` and `url` are undefined when the parser already handed them out
 * through kOnHeaders (a head of more than 32 fields), as node's parserOnHeaders collects them.
 */
export type HeadersComplete = (versionMajor: number, versionMinor: number, headers: string[] | undefined, method: number,
  url: string | undefined, statusCode: number, statusMessage: string | undefined, upgrade: boolean, shouldKeepAlive: boolean) => number | undefined

/** A strict parser (no lenient flags, whatever --insecure-http-parser says: what it refuses goes to node's server). */
export function newParser (type: 'request' | 'response', maxHeaderSize: number): HttpParser {
  const parser = new HTTPParser()
  parser.initialize(type === 'request' ? HTTPParser.REQUEST : HTTPParser.RESPONSE, {}, maxHeaderSize, HTTPParser.kLenientNone)
  return parser
}

/** Frees the parser's native side once the current stack (maybe one of its callbacks) has unwound. */
export function closeParser (parser: HttpParser): void {
  setImmediate(() => parser.close())
}
