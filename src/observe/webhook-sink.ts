// The webhook event sink: events POSTed as JSON batches ({"events":[...]}) to an operator's URL, optionally
// signed (X-Porthole-Signature: sha256=<HMAC-SHA256 of the body, hex>, as GitHub signs its webhooks). A dead or
// slow receiver must never cost traffic anything: accept() only pushes onto a bounded queue (beyond it events
// are dropped and counted); one batch at a time is in flight, with a timeout, and retried with exponential
// backoff on 5xx, 429 and connection errors; other answers drop the batch. close() flushes within a deadline.
import { createHmac } from 'node:crypto'
import { Agent, request } from 'undici'
import type { EventSink, SinkCounters } from './event-sinks.js'
import type { PortholeEvent } from './event-shapes.js'

/** One POST: resolves with the HTTP status, rejects on a connection error or timeout. */
export type WebhookSend = (body: string, headers: Record<string, string>, signal: AbortSignal) => Promise<number>

export interface WebhookTuning {
  /** Events waiting (in flight included); more are dropped. */
  readonly maxQueue: number
  /** Their JSON bytes (a stranger chooses URL lengths); more are dropped. */
  readonly maxQueueBytes: number
  /** Events per POST. */
  readonly batchSize: number
  /** How long a partial batch waits for more events. */
  readonly batchMs: number
  /** Per attempt: connect, response headers, body. */
  readonly timeoutMs: number
  /** Attempts after the first before a batch is dropped. */
  readonly maxRetries: number
  /** Backoff before retry n (0-based): min(backoffMs * 2^n, maxBackoffMs). */
  readonly backoffMs: number
  readonly maxBackoffMs: number
}

export const WEBHOOK_DEFAULTS: WebhookTuning = { maxQueue: 10_000, maxQueueBytes: 32 * 1024 * 1024, batchSize: 100, batchMs: 1000, timeoutMs: 10_000, maxRetries: 5, backoffMs: 500, maxBackoffMs: 30_000 }

export interface WebhookSinkOptions extends Partial<WebhookTuning> {
  readonly name: string
  readonly url: string
  readonly secret?: string
  /** Replaces the undici POST (unit tests). */
  readonly send?: WebhookSend
  /** Told once per failure streak, and when it ends. */
  readonly warn?: (fields: Record<string, unknown>, message: string) => void
}

export const SIGNATURE_HEADER = 'x-porthole-signature'

export function signBody (secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`
}

export function backoffDelay (tuning: Pick<WebhookTuning, 'backoffMs' | 'maxBackoffMs'>, retry: number): number {
  return Math.min(tuning.backoffMs * 2 ** Math.min(retry, 30), tuning.maxBackoffMs)
}

type Outcome = 'delivered' | 'retry' | 'refused'

export class WebhookSink implements EventSink {
  readonly name: string
  readonly #tuning: WebhookTuning
  readonly #url: string
  readonly #secret: string | undefined
  readonly #send: WebhookSend
  readonly #agent: Agent | null
  readonly #warn: WebhookSinkOptions['warn']
  /** Events as JSON, serialized once when accepted. */
  #queue: string[] = []
  #queueBytes = 0
  #inFlight = 0
  #inFlightBytes = 0
  #sending = false
  #failing = false
  #closing = false
  #closed = false
  #batchTimer: NodeJS.Timeout | null = null
  #retryWait: { timer: NodeJS.Timeout, resolve: () => void } | null = null
  #abort: AbortController | null = null
  #idle: (() => void)[] = []
  readonly #counts = { delivered: 0, dropped: 0, failedAttempts: 0 }

  constructor (options: WebhookSinkOptions) {
    this.name = options.name
    this.#tuning = { ...WEBHOOK_DEFAULTS, ...Object.fromEntries(Object.entries(options).filter(([k, v]) => k in WEBHOOK_DEFAULTS && v !== undefined)) }
    this.#url = options.url
    this.#secret = options.secret
    this.#warn = options.warn
    if (options.send) {
      this.#send = options.send
      this.#agent = null
    } else {
      const timeout = this.#tuning.timeoutMs
      const agent = new Agent({ connect: { timeout }, headersTimeout: timeout, bodyTimeout: timeout, connections: 1 })
      this.#agent = agent
      this.#send = async (body, headers, signal) => {
        const response = await request(this.#url, { method: 'POST', body, headers, signal, dispatcher: agent })
        await response.body.dump({ limit: 64 * 1024 }).catch(() => {})
        return response.statusCode
      }
    }
  }

  counters (): SinkCounters {
    return { ...this.#counts, queued: this.#queue.length + this.#inFlight }
  }

  /** Synchronous and cheap: the publisher's path. */
  accept (event: PortholeEvent): void {
    if (this.#closed || this.#queue.length + this.#inFlight >= this.#tuning.maxQueue) {
      this.#counts.dropped++
      return
    }
    const json = JSON.stringify(event)
    if (this.#queueBytes + this.#inFlightBytes + json.length > this.#tuning.maxQueueBytes) {
      this.#counts.dropped++
      return
    }
    this.#queue.push(json)
    this.#queueBytes += json.length
    this.#kick()
  }

  #kick (): void {
    if (this.#sending || this.#queue.length === 0) return
    if (this.#queue.length >= this.#tuning.batchSize || this.#closing) {
      if (this.#batchTimer) clearTimeout(this.#batchTimer)
      this.#batchTimer = setTimeout(() => { void this.#run() }, 0)
    } else {
      this.#batchTimer ??= setTimeout(() => { void this.#run() }, this.#tuning.batchMs)
    }
  }

  async #run (): Promise<void> {
    this.#batchTimer = null
    if (this.#sending || this.#queue.length === 0) return
    this.#sending = true
    const batch = this.#queue.splice(0, this.#tuning.batchSize)
    this.#inFlight = batch.length
    this.#inFlightBytes = batch.reduce((n, json) => n + json.length, 0)
    this.#queueBytes -= this.#inFlightBytes
    const body = `{"events":[${batch.join(',')}]}`
    const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'porthole-events' }
    if (this.#secret !== undefined) headers[SIGNATURE_HEADER] = signBody(this.#secret, body)
    for (let retry = 0; ; retry++) {
      const outcome = await this.#attempt(body, headers)
      if (outcome === 'delivered') {
        this.#counts.delivered += batch.length
        if (this.#failing) this.#warn?.({ sink: this.name }, 'event webhook delivers again')
        this.#failing = false
        break
      }
      this.#counts.failedAttempts++
      if (outcome === 'refused' || retry >= this.#tuning.maxRetries || this.#closed) {
        this.#counts.dropped += batch.length
        break
      }
      await this.#sleep(backoffDelay(this.#tuning, retry))
      if (this.#closed) {
        this.#counts.dropped += batch.length
        break
      }
    }
    this.#inFlight = 0
    this.#inFlightBytes = 0
    this.#sending = false
    if (this.#queue.length > 0 && !this.#closed) this.#kick()
    else if (this.#queue.length === 0) for (const resolve of this.#idle.splice(0)) resolve()
  }

  async #attempt (body: string, headers: Record<string, string>): Promise<Outcome> {
    const abort = new AbortController()
    this.#abort = abort
    const timer = setTimeout(() => abort.abort(new Error('timed out')), this.#tuning.timeoutMs)
    try {
      const status = await this.#send(body, headers, abort.signal)
      if (status >= 200 && status < 300) return 'delivered'
      this.#tellFailure(`HTTP ${status}`)
      return status >= 500 || status === 429 ? 'retry' : 'refused'
    } catch (error) {
      this.#tellFailure((error as Error).message)
      return 'retry'
    } finally {
      clearTimeout(timer)
      this.#abort = null
    }
  }

  #tellFailure (reason: string): void {
    if (this.#failing) return
    this.#failing = true
    this.#warn?.({ sink: this.name, reason }, 'event webhook failed; retrying with backoff (events beyond the queue are dropped)')
  }

  #sleep (ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.#retryWait = null; resolve() }, ms)
      this.#retryWait = { timer, resolve }
    })
  }

  /** Sends what is queued, waiting at most `waitMs`; then gives up (what is left is counted as dropped). */
  async close (waitMs: number): Promise<void> {
    if (this.#closed) return
    this.#closing = true
    this.#kick()
    await this.#waitIdle(waitMs)
    this.#closed = true
    if (this.#batchTimer) clearTimeout(this.#batchTimer)
    this.#counts.dropped += this.#queue.length
    this.#queue = []
    this.#queueBytes = 0
    this.#abort?.abort(new Error('closing'))
    if (this.#retryWait) {
      clearTimeout(this.#retryWait.timer)
      this.#retryWait.resolve()
    }
    // The aborted attempt settles at once (its batch is then counted as dropped); bounded all the same.
    await this.#waitIdle(1000)
    await this.#agent?.destroy().catch(() => {})
  }

  async #waitIdle (ms: number): Promise<void> {
    if (!this.#sending && this.#queue.length === 0) return
    let deadline: NodeJS.Timeout | undefined
    await Promise.race([
      new Promise<void>((resolve) => this.#idle.push(resolve)),
      new Promise<void>((resolve) => { deadline = setTimeout(resolve, ms) }),
    ])
    clearTimeout(deadline)
  }
}
