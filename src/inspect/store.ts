// The in-memory InspectStore: captured requests kept per owner, bounded three ways so a busy (or hostile)
// tunnel cannot make the gateway hold more than a known amount. Per owner, by count and by bytes (lru-cache,
// oldest record evicted first); across owners, by the number of owners and by total bytes (the least recently
// active owner's records dropped first). Every record added is also published on the `porthole:inspect:request`
// diagnostics channel (only when someone listens): the gateway's debug log and metrics read it there.
import { channel } from 'node:diagnostics_channel'
import { LRUCache } from 'lru-cache'
import type { CapturedMessage, CapturedRequest, InspectStore } from './record.js'
import { RECORD_SIZE } from './edge-record.js'

export const INSPECT_REQUEST_CHANNEL = 'porthole:inspect:request'
const requestChannel = channel(INSPECT_REQUEST_CHANNEL)

export interface MemoryInspectStoreOptions {
  /** Records kept per owner (default 500, ngrok's agent keeps a few hundred too). */
  readonly maxRecordsPerOwner?: number
  /** Bytes of records kept per owner (default 8 MiB: about 60 requests whose bodies both reach the 64 KiB cap). */
  readonly maxBytesPerOwner?: number
  /** Owners with records (default 1000); the least recently active one is dropped first. */
  readonly maxOwners?: number
  /** Bytes of records kept in all (default 256 MiB); at least maxBytesPerOwner. */
  readonly maxTotalBytes?: number
}

export const STORE_DEFAULTS = {
  maxRecordsPerOwner: 500,
  maxBytesPerOwner: 8 * 1024 * 1024,
  maxOwners: 1000,
  maxTotalBytes: 256 * 1024 * 1024,
} as const

/** Fixed cost counted per record and per header value besides their bytes (object overhead, roughly). */
const RECORD_OVERHEAD = 512
const VALUE_OVERHEAD = 32

function messageSize (message: CapturedMessage): number {
  let size = message.body.length
  for (const name in message.headers) {
    for (const value of message.headers[name]!) size += name.length + value.length + VALUE_OVERHEAD
  }
  return size
}

/**
 * What one record costs us, near enough: its bodies, its header text, a fixed overhead. The edge's records say
 * it themselves (RECORD_SIZE: their header lists are built only when read); others are walked.
 */
export function recordSize (record: CapturedRequest): number {
  const known = (record as { [RECORD_SIZE]?: number })[RECORD_SIZE]
  if (known !== undefined) return known
  let size = RECORD_OVERHEAD + record.request.uri.length + messageSize(record.request) + (record.response === null ? 0 : messageSize(record.response))
  const sent = record.public
  if (sent !== undefined) {
    size += sent.uri.length
    for (const name in sent.headers) for (const value of sent.headers[name]!) size += name.length + value.length + VALUE_OVERHEAD
  }
  return size
}

type Listener = (record: CapturedRequest) => void

export class MemoryInspectStore implements InspectStore {
  readonly #maxRecords: number
  readonly #maxBytes: number
  readonly #maxOwners: number
  readonly #maxTotal: number
  /** Owners in order of activity, least recent first (a Map keeps insertion order; a touch re-inserts). */
  readonly #owners = new Map<string, LRUCache<string, CapturedRequest>>()
  readonly #listeners = new Map<string, Set<Listener>>()
  #totalBytes = 0
  /** The owner of the latest add: already the most recent in #owners. */
  #lastOwner: string | undefined

  constructor (options: MemoryInspectStoreOptions = {}) {
    this.#maxRecords = positive(options.maxRecordsPerOwner ?? STORE_DEFAULTS.maxRecordsPerOwner, 'maxRecordsPerOwner')
    this.#maxBytes = positive(options.maxBytesPerOwner ?? STORE_DEFAULTS.maxBytesPerOwner, 'maxBytesPerOwner')
    this.#maxOwners = positive(options.maxOwners ?? STORE_DEFAULTS.maxOwners, 'maxOwners')
    this.#maxTotal = Math.max(positive(options.maxTotalBytes ?? STORE_DEFAULTS.maxTotalBytes, 'maxTotalBytes'), this.#maxBytes)
  }

  /** Bytes held in all (as recordSize counts them). */
  get totalBytes (): number { return this.#totalBytes }
  get ownerCount (): number { return this.#owners.size }

  add (record: CapturedRequest): void {
    const size = recordSize(record)
    if (size <= this.#maxBytes) {
      let bucket = this.#owners.get(record.ownerId)
      if (bucket === undefined) {
        bucket = this.#newBucket()
        this.#owners.set(record.ownerId, bucket)
      } else if (this.#lastOwner !== record.ownerId) {
        this.#owners.delete(record.ownerId) // re-inserted: now the most recently active owner
        this.#owners.set(record.ownerId, bucket)
      }
      this.#lastOwner = record.ownerId
      const before = bucket.calculatedSize
      bucket.set(record.id, record, { size })
      this.#totalBytes += bucket.calculatedSize - before // the new record's size less what it evicted
      this.#trimOwners(record.ownerId)
    }
    // A record too big to keep (it cannot be, with the edge's caps) is still announced live.
    const listeners = this.#listeners.get(record.ownerId)
    if (listeners !== undefined) {
      for (const listener of listeners) {
        try {
          listener(record)
        } catch {} // a listener's failure is its own: the edge's add() must not throw
      }
    }
    if (requestChannel.hasSubscribers) requestChannel.publish(record)
  }

  list (ownerId: string, options: { limit?: number, tunnelName?: string } = {}): CapturedRequest[] {
    const bucket = this.#owners.get(ownerId)
    if (bucket === undefined) return []
    const limit = options.limit === undefined || !(options.limit >= 0) ? Infinity : options.limit
    const out: CapturedRequest[] = []
    // peek() never reorders, so iteration order is insertion order, newest first.
    for (const record of bucket.values()) {
      if (out.length >= limit) break
      if (options.tunnelName === undefined || record.tunnelName === options.tunnelName) out.push(record)
    }
    return out
  }

  get (ownerId: string, id: string): CapturedRequest | undefined {
    return this.#owners.get(ownerId)?.peek(id)
  }

  clear (ownerId: string): void {
    const bucket = this.#owners.get(ownerId)
    if (bucket === undefined) return
    this.#owners.delete(ownerId)
    if (this.#lastOwner === ownerId) this.#lastOwner = undefined
    this.#totalBytes -= bucket.calculatedSize
    bucket.clear()
  }

  subscribe (ownerId: string, listener: Listener): () => void {
    let listeners = this.#listeners.get(ownerId)
    if (listeners === undefined) this.#listeners.set(ownerId, listeners = new Set())
    const own = listeners
    const wrapped: Listener = (record) => listener(record) // the same function may subscribe twice
    own.add(wrapped)
    return () => {
      own.delete(wrapped)
      if (own.size === 0 && this.#listeners.get(ownerId) === own) this.#listeners.delete(ownerId)
    }
  }

  #newBucket (): LRUCache<string, CapturedRequest> {
    return new LRUCache<string, CapturedRequest>({ max: this.#maxRecords, maxSize: this.#maxBytes })
  }

  /** Drops the least recently active owners while there are too many, or too many bytes in all. */
  #trimOwners (current: string): void {
    while (this.#owners.size > this.#maxOwners || this.#totalBytes > this.#maxTotal) {
      const oldest = this.#owners.keys().next().value as string
      if (oldest === current) break // only the current owner left: its own bounds hold (maxTotal >= maxBytes)
      this.clear(oldest)
    }
  }
}

function positive (value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${value}`)
  return value
}
