// ngrok's session RPCs are one raw JSON object on a stream, with no length prefix, and the client sends no FIN
// before it has read the reply (ngrok-rust reads the reply to EOF with its write side still open). So the server
// must see for itself when a complete top-level object has arrived: a scan that tracks nesting outside strings
// (escapes respected), bounded in bytes and depth so a peer cannot make us buffer or recurse without end.
import type { Readable } from 'node:stream'
import { PortholeError } from '../../core/errors.js'

/** The most an RPC message may hold before it is complete (the largest real one, a Bind with a traffic policy, is far smaller). */
export const MAX_RPC_BYTES = 1024 * 1024
/** Deeper nesting than any ngrok message has; refused before JSON.parse and the schemas walk it. */
export const MAX_JSON_DEPTH = 64

const OPEN_OBJECT = 0x7b
const CLOSE_OBJECT = 0x7d
const OPEN_ARRAY = 0x5b
const CLOSE_ARRAY = 0x5d
const QUOTE = 0x22
const BACKSLASH = 0x5c

function isSpace (byte: number): boolean {
  return byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09
}

/**
 * Fed the bytes of a stream, says when one complete top-level JSON object has arrived and returns it parsed.
 * Throws PortholeError PH_1070 (not a JSON object, malformed, too deep, bytes after it, or cut short at end())
 * or PH_1073 (larger than the limit before it was complete).
 */
export class JsonValueReader {
  readonly #limit: number
  readonly #chunks: Buffer[] = []
  #size = 0
  /** The brackets open now, innermost last (at most MAX_JSON_DEPTH): a `}` closing a `[` is malformed at once. */
  readonly #open: number[] = []
  #started = false
  #inString = false
  #escaped = false
  #done = false

  constructor (limit = MAX_RPC_BYTES) {
    this.#limit = limit
  }

  /** True once the object was returned by push(). */
  get done (): boolean {
    return this.#done
  }

  /** Feeds bytes. Returns the parsed object once it is complete, undefined while more is needed. */
  push (chunk: Uint8Array): Record<string, unknown> | undefined {
    if (this.#done) {
      this.#expectOnlySpace(chunk, 0)
      return undefined
    }
    const room = this.#limit - this.#size
    for (let i = 0; i < chunk.length; i++) {
      if (i >= room) throw new PortholeError('PH_1073', `${this.#limit} bytes`)
      const byte = chunk[i]!
      if (this.#inString) {
        if (this.#escaped) this.#escaped = false
        else if (byte === BACKSLASH) this.#escaped = true
        else if (byte === QUOTE) this.#inString = false
        continue
      }
      if (!this.#started) {
        if (isSpace(byte)) continue
        if (byte !== OPEN_OBJECT) throw new PortholeError('PH_1070', `want a JSON object, got ${describeByte(byte)}`)
        this.#started = true
      }
      if (byte === QUOTE) this.#inString = true
      else if (byte === OPEN_OBJECT || byte === OPEN_ARRAY) {
        if (this.#open.length >= MAX_JSON_DEPTH) throw new PortholeError('PH_1070', `JSON nested deeper than ${MAX_JSON_DEPTH} levels`)
        this.#open.push(byte)
      } else if (byte === CLOSE_OBJECT || byte === CLOSE_ARRAY) {
        const opener = this.#open.pop()
        if (opener !== (byte === CLOSE_OBJECT ? OPEN_OBJECT : OPEN_ARRAY)) throw new PortholeError('PH_1070', `malformed JSON (${describeByte(byte)} closes ${opener === undefined ? 'nothing' : describeByte(opener)})`)
        if (this.#open.length === 0) return this.#complete(chunk, i + 1)
      }
    }
    this.#keep(chunk, chunk.length)
    return undefined
  }

  /** The stream ended (FIN): an error if an object was begun or none came at all. */
  end (): void {
    if (this.#done) return
    throw new PortholeError('PH_1070', this.#size === 0 ? 'the stream ended before any JSON arrived' : `the stream ended inside the JSON object (after ${this.#size} bytes)`)
  }

  #keep (chunk: Uint8Array, end: number): void {
    this.#size += end
    if (this.#size > this.#limit) throw new PortholeError('PH_1073', `${this.#limit} bytes`)
    this.#chunks.push(Buffer.from(chunk.subarray(0, end))) // a copy: the caller may reuse its buffer
  }

  #complete (chunk: Uint8Array, end: number): Record<string, unknown> {
    this.#keep(chunk, end)
    this.#done = true
    this.#expectOnlySpace(chunk, end)
    const bytes = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#size)
    this.#chunks.length = 0
    let value: unknown
    try {
      value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes))
    } catch (error) {
      throw new PortholeError('PH_1070', `malformed JSON (${(error as Error).message.split('\n')[0]!.slice(0, 120)})`)
    }
    return value as Record<string, unknown> // the scan saw `{`...`}`, and JSON.parse accepted it: an object
  }

  #expectOnlySpace (chunk: Uint8Array, from: number): void {
    for (let i = from; i < chunk.length; i++) {
      if (!isSpace(chunk[i]!)) throw new PortholeError('PH_1070', `${describeByte(chunk[i]!)} after the JSON object (one object per stream)`)
    }
  }
}

function describeByte (byte: number): string {
  return byte >= 0x21 && byte <= 0x7e ? JSON.stringify(String.fromCharCode(byte)) : `byte 0x${byte.toString(16).padStart(2, '0')}`
}

/**
 * Reads one JSON object from `stream` without waiting for its end, then stops reading (the stream is paused
 * and left open for the reply). Rejects with the reader's PortholeError, or when the stream ends, closes or
 * fails first.
 */
export function readJsonValue (stream: Readable, limit = MAX_RPC_BYTES): Promise<Record<string, unknown>> {
  const reader = new JsonValueReader(limit)
  return new Promise((resolve, reject) => {
    if (stream.readableEnded || stream.destroyed) {
      reject(new PortholeError('PH_1070', 'the stream ended before any JSON arrived'))
      return
    }
    const finish = (error: unknown, value?: Record<string, unknown>): void => {
      stream.off('data', onData)
      stream.off('end', onEnd)
      stream.off('close', onEnd)
      stream.off('error', onError)
      stream.pause()
      if (value !== undefined) resolve(value)
      else reject(error)
    }
    const onData = (chunk: Buffer | string): void => {
      try {
        const value = reader.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk)
        if (value !== undefined) finish(undefined, value)
      } catch (error) {
        finish(error)
      }
    }
    const onEnd = (): void => {
      try {
        reader.end()
      } catch (error) {
        finish(error)
      }
    }
    const onError = (error: Error): void => finish(error)
    stream.on('data', onData)
    stream.once('end', onEnd)
    stream.once('close', onEnd)
    stream.once('error', onError)
  })
}
