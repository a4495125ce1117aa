// The inspector's live view: Server-Sent Events at /api/events, one stream per open browser tab, fed by the
// store's per-owner subscription so the page updates without polling (each request also as ngrok's
// http_request_complete.v0 event). Bounded: a number of streams per owner
// (past it the new one gets PH_5030), and a slow reader whose unsent backlog passes a cap is dropped rather
// than buffered without end (the browser's EventSource reconnects and reloads the list). One shared timer
// writes a comment now and then so that idle streams are seen to be alive and dead ones are noticed.
import type { ServerResponse } from 'node:http'
import type { CapturedRequest, InspectStore } from './record.js'
import { requestCompleteEvent } from './event.js'
import { toNgrokRequest } from './ngrok-shape.js'

const COMPLETE_EVENT = 'http_request_complete.v0'

/** Unsent bytes a slow live view may have queued before it is dropped. */
const MAX_BACKLOG_BYTES = 512 * 1024

interface Stream {
  readonly ownerId: string
  readonly res: ServerResponse
}

export class LiveStreams {
  readonly #store: InspectStore
  readonly #maxPerOwner: number
  readonly #streams = new Set<Stream>()
  readonly #perOwner = new Map<string, number>()
  #heartbeat: NodeJS.Timeout | null = null
  readonly #heartbeatMs: number

  constructor (store: InspectStore, maxPerOwner: number, heartbeatMs: number) {
    this.#store = store
    this.#maxPerOwner = maxPerOwner
    this.#heartbeatMs = heartbeatMs
  }

  /** Whether this owner may open one more stream. */
  hasRoom (ownerId: string): boolean {
    return (this.#perOwner.get(ownerId) ?? 0) < this.#maxPerOwner
  }

  open (ownerId: string, res: ServerResponse): void {
    const stream: Stream = { ownerId, res }
    this.#streams.add(stream)
    this.#perOwner.set(ownerId, (this.#perOwner.get(ownerId) ?? 0) + 1)
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
    })
    res.write('retry: 2000\n\n')
    const unsubscribe = this.#store.subscribe(ownerId, (record) => this.#send(stream, 'request', record))
    res.once('close', () => {
      unsubscribe()
      this.#streams.delete(stream)
      const left = (this.#perOwner.get(ownerId) ?? 1) - 1
      if (left > 0) this.#perOwner.set(ownerId, left)
      else this.#perOwner.delete(ownerId)
      if (this.#streams.size === 0 && this.#heartbeat) {
        clearInterval(this.#heartbeat)
        this.#heartbeat = null
      }
    })
    this.#heartbeat ??= setInterval(() => {
      for (const s of this.#streams) this.#write(s, ': ping\n\n')
    }, this.#heartbeatMs).unref()
  }

  /** Tells the owner's open views that the list was cleared (DELETE /api/requests/http). */
  cleared (ownerId: string): void {
    for (const stream of this.#streams) if (stream.ownerId === ownerId) this.#write(stream, 'event: clear\ndata: {}\n\n')
  }

  /** Each finished request twice: in the list's shape (`request`, what the page shows) and as ngrok's
   *  `http_request_complete.v0` event (for scripts that consume ngrok's event stream). */
  #send (stream: Stream, event: string, record: CapturedRequest): void {
    this.#write(stream, `event: ${event}\nid: ${record.id}\ndata: ${JSON.stringify(toNgrokRequest(record))}\n\n` +
      `event: ${COMPLETE_EVENT}\ndata: ${JSON.stringify(requestCompleteEvent(record))}\n\n`)
  }

  #write (stream: Stream, text: string): void {
    const { res } = stream
    if (res.destroyed) return
    if (res.writableLength > MAX_BACKLOG_BYTES) {
      res.destroy()
      return
    }
    res.write(text)
  }

  close (): void {
    for (const stream of this.#streams) stream.res.destroy()
  }
}
