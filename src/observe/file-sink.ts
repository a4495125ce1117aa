// The file event sink: one JSON line per event appended to a path, for a log shipper to tail. The disk cannot
// fill: past `maxBytes` the file is renamed to PATH.1 (replacing the previous one) and a new one begun, so at most
// about twice the cap is kept. Writes happen off the publisher's path from a bounded queue; a write error (disk
// full, permissions, a removed directory) is counted and its events dropped, never thrown into traffic; the
// file is reopened on the next write.
import { closeSync, openSync } from 'node:fs'
import { open, rename, type FileHandle } from 'node:fs/promises'
import { PortholeError } from '../core/errors.js'
import type { EventSink, SinkCounters } from './event-sinks.js'
import type { PortholeEvent } from './event-shapes.js'

export interface FileSinkOptions {
  readonly name?: string
  readonly path: string
  /** Rotation size (default 100 MiB). */
  readonly maxBytes?: number
  /** Lines waiting to be written; more are dropped (default 10,000). */
  readonly maxQueue?: number
  /** Their bytes (default 32 MiB). */
  readonly maxQueueBytes?: number
  readonly warn?: (fields: Record<string, unknown>, message: string) => void
}

export class FileSink implements EventSink {
  readonly name: string
  readonly #path: string
  readonly #maxBytes: number
  readonly #maxQueue: number
  readonly #maxQueueBytes: number
  readonly #warn: FileSinkOptions['warn']
  /** JSON lines, serialized once when accepted. */
  #queue: string[] = []
  #queueBytes = 0
  #file: FileHandle | null = null
  #size = 0
  #writing = false
  #scheduled = false
  #closed = false
  /** After close's deadline: no file is opened again. */
  #done = false
  #failing = false
  #idle: (() => void)[] = []
  readonly #counts = { delivered: 0, dropped: 0, failedAttempts: 0 }

  constructor (options: FileSinkOptions) {
    this.name = options.name ?? 'file'
    this.#path = options.path
    this.#maxBytes = options.maxBytes ?? 100 * 1024 * 1024
    this.#maxQueue = options.maxQueue ?? 10_000
    this.#maxQueueBytes = options.maxQueueBytes ?? 32 * 1024 * 1024
    this.#warn = options.warn
    // Fail at start, not at the first event: a path that cannot be written is a configuration mistake.
    try {
      closeSync(openSync(this.#path, 'a', 0o640))
    } catch (error) {
      throw new PortholeError('PH_2002', `--events-file ${this.#path}: ${(error as Error).message}`)
    }
  }

  counters (): SinkCounters {
    return { ...this.#counts, queued: this.#queue.length }
  }

  accept (event: PortholeEvent): void {
    if (this.#closed || this.#queue.length >= this.#maxQueue) {
      this.#counts.dropped++
      return
    }
    const line = `${JSON.stringify(event)}\n`
    if (this.#queueBytes + line.length > this.#maxQueueBytes) {
      this.#counts.dropped++
      return
    }
    this.#queue.push(line)
    this.#queueBytes += line.length
    if (!this.#writing && !this.#scheduled) {
      this.#scheduled = true
      setImmediate(() => { this.#scheduled = false; void this.#run() })
    }
  }

  async #run (): Promise<void> {
    if (this.#writing) return
    this.#writing = true
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, 500)
      for (const line of batch) this.#queueBytes -= line.length
      try {
        await this.#write(batch)
        this.#counts.delivered += batch.length
        this.#failing = false
      } catch (error) {
        this.#counts.failedAttempts++
        this.#counts.dropped += batch.length
        if (!this.#failing) this.#warn?.({ sink: this.name, path: this.#path, reason: (error as Error).message }, 'event file write failed; events dropped')
        this.#failing = true
        await this.#file?.close().catch(() => {})
        this.#file = null
      }
    }
    this.#writing = false
    for (const resolve of this.#idle.splice(0)) resolve()
  }

  async #write (batch: string[]): Promise<void> {
    let pending: string[] = []
    let pendingBytes = 0
    for (const line of batch) {
      const bytes = Buffer.byteLength(line)
      if (this.#file === null) await this.#open()
      if (this.#size + pendingBytes + bytes > this.#maxBytes && this.#size + pendingBytes > 0) {
        if (pending.length > 0) await this.#append(pending.join(''), pendingBytes)
        pending = []
        pendingBytes = 0
        await this.#rotate()
      }
      pending.push(line)
      pendingBytes += bytes
    }
    if (pending.length > 0) await this.#append(pending.join(''), pendingBytes)
  }

  async #open (): Promise<void> {
    if (this.#done) throw new Error('the sink is closed')
    this.#file = await open(this.#path, 'a', 0o640)
    this.#size = (await this.#file.stat()).size
  }

  async #append (data: string, bytes: number): Promise<void> {
    if (this.#file === null) await this.#open()
    await this.#file!.appendFile(data)
    this.#size += bytes
  }

  async #rotate (): Promise<void> {
    await this.#file?.close()
    this.#file = null
    await rename(this.#path, `${this.#path}.1`)
    await this.#open()
  }

  /** Writes what is queued (waiting at most `waitMs`), then closes the file. */
  async close (waitMs: number): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    if (this.#writing || this.#queue.length > 0) {
      if (!this.#writing) void this.#run()
      let deadline: NodeJS.Timeout | undefined
      await Promise.race([
        new Promise<void>((resolve) => this.#idle.push(resolve)),
        new Promise<void>((resolve) => { deadline = setTimeout(resolve, waitMs) }),
      ])
      clearTimeout(deadline)
    }
    this.#done = true
    this.#counts.dropped += this.#queue.length
    this.#queue = []
    this.#queueBytes = 0
    await this.#file?.close().catch(() => {})
    this.#file = null
  }
}
