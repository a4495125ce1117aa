// Events for operators: the observe channels (src/observe/channels.ts) turned into ngrok-shaped events
// (event-shapes.ts) and handed to the sinks the operator configured: the log (one pino line per event), a file of
// JSON lines, webhooks. The channel subscribers build each event once and only push it to the sinks, which queue
// and write on their own time: nothing is awaited on the publisher's path, so a dead or slow receiver never
// delays a request; what cannot be kept is dropped and counted. Counters per sink, as a plain object and as
// Prometheus metrics on a registry passed in.
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import type { Logger } from 'pino'
import { Counter, Gauge, type Registry } from 'prom-client'
import type { HttpRequestObserved, SessionObserved, TcpConnectionObserved } from './channels.js'
import { EVENT_TYPES, httpRequestEvent, sessionEvent, tcpConnectionEvent, type EventType, type PortholeEvent } from './event-shapes.js'
import { FileSink } from './file-sink.js'
import { WebhookSink, type WebhookSend, type WebhookTuning } from './webhook-sink.js'

export interface SinkCounters {
  /** Events written (log, file) or acknowledged with a 2xx (webhook). */
  readonly delivered: number
  /** Events that will never be delivered: queue full, retries exhausted, refused, write error, closing. */
  readonly dropped: number
  /** Failed POSTs (each retry counts) or failed writes. */
  readonly failedAttempts: number
  /** Events waiting, in flight included. */
  readonly queued: number
}

export interface EventSink {
  readonly name: string
  /** Synchronous, cheap, never throws: called on the publisher's path. */
  accept (event: PortholeEvent): void
  counters (): SinkCounters
  /** Flushes within `waitMs`, then lets go. */
  close (waitMs: number): Promise<void>
}

class LogSink implements EventSink {
  readonly name = 'log'
  #delivered = 0
  constructor (private readonly log: Logger) {}
  accept (event: PortholeEvent): void {
    this.log.info({ event }, event.event_type)
    this.#delivered++
  }

  counters (): SinkCounters { return { delivered: this.#delivered, dropped: 0, failedAttempts: 0, queued: 0 } }
  async close (): Promise<void> {}
}

export interface EventsOptions {
  readonly log: Logger
  /** One info line per event (component events). */
  readonly logEvents?: boolean
  readonly file?: string
  readonly fileMaxBytes?: number
  readonly webhooks?: readonly string[]
  readonly webhookSecret?: string
  /** Which event types; undefined: all. */
  readonly types?: readonly EventType[]
  /** Webhook queue, batch, timeout and retry settings (defaults in webhook-sink.ts). */
  readonly webhook?: Partial<WebhookTuning> & { readonly send?: WebhookSend }
  /** close()'s default deadline (5 s): a dead webhook cannot hold a shutdown longer. */
  readonly closeWaitMs?: number
}

export interface EventPipeline {
  readonly sinks: readonly EventSink[]
  /** Per sink name (log, file, webhook or webhook-1, webhook-2...). */
  counters (): Record<string, SinkCounters>
  /** porthole_events_delivered_total{sink}, porthole_events_dropped_total{sink}, porthole_events_queue_length{sink},
   *  porthole_events_failed_attempts_total{sink}; once per registry. */
  register (registry: Registry): void
  /** Unsubscribes, then gives the sinks at most `waitMs` (together) to deliver what they hold. */
  close (waitMs?: number): Promise<void>
}

const CHANNELS = {
  http: 'porthole:observe:http-request',
  tcp: 'porthole:observe:tcp-connection',
  session: 'porthole:observe:session',
} as const

/** The configured sinks fed from the observe channels; null when none is configured. */
export function startEvents (options: EventsOptions): EventPipeline | null {
  const log = options.log.child({ component: 'events' })
  const warn = (fields: Record<string, unknown>, message: string): void => log.warn(fields, message)
  const sinks: EventSink[] = []
  if (options.logEvents) sinks.push(new LogSink(log))
  if (options.file !== undefined) sinks.push(new FileSink({ path: options.file, maxBytes: options.fileMaxBytes, warn }))
  const webhooks = options.webhooks ?? []
  webhooks.forEach((url, i) => {
    sinks.push(new WebhookSink({ ...options.webhook, name: webhooks.length === 1 ? 'webhook' : `webhook-${i + 1}`, url, secret: options.webhookSecret, warn }))
  })
  if (sinks.length === 0) return null

  const wanted = new Set<EventType>(options.types ?? EVENT_TYPES)
  let failed = false
  const deliver = (build: () => PortholeEvent | null): void => {
    try {
      const event = build()
      if (event === null) return
      for (const sink of sinks) sink.accept(event)
    } catch (error) {
      // Observers must not throw into traffic; a builder bug is told once.
      if (!failed) log.error({ err: error }, 'building an event failed')
      failed = true
    }
  }
  const onHttp = (m: unknown): void => deliver(() => httpRequestEvent(m as HttpRequestObserved))
  const onTcp = (m: unknown): void => deliver(() => tcpConnectionEvent(m as TcpConnectionObserved))
  const onSession = (m: unknown): void => deliver(() => {
    const type = (m as SessionObserved).event === 'start' ? 'agent_session_start.v0' : 'agent_session_stop.v0'
    return wanted.has(type) ? sessionEvent(m as SessionObserved) : null
  })
  const subscriptions: [string, (m: unknown) => void][] = []
  if (wanted.has('http_request_complete.v0')) subscriptions.push([CHANNELS.http, onHttp])
  if (wanted.has('tcp_connection_closed.v0')) subscriptions.push([CHANNELS.tcp, onTcp])
  if (wanted.has('agent_session_start.v0') || wanted.has('agent_session_stop.v0')) subscriptions.push([CHANNELS.session, onSession])
  for (const [name, fn] of subscriptions) subscribe(name, fn)

  const counters = (): Record<string, SinkCounters> => Object.fromEntries(sinks.map((s) => [s.name, s.counters()]))
  const registered = new Set<Registry>()
  let closing: Promise<void> | null = null
  return {
    sinks,
    counters,
    register (registry) {
      if (registered.has(registry)) return
      registered.add(registry)
      const counter = (name: string, help: string, pick: (c: SinkCounters) => number): void => {
        new Counter({
          name,
          help,
          labelNames: ['sink'],
          registers: [registry],
          collect () {
            this.reset()
            for (const sink of sinks) this.inc({ sink: sink.name }, pick(sink.counters()))
          },
        })
      }
      counter('porthole_events_delivered_total', 'Events delivered by each event sink.', (c) => c.delivered)
      counter('porthole_events_dropped_total', 'Events an event sink dropped (queue full, retries exhausted, write error, shutdown).', (c) => c.dropped)
      counter('porthole_events_failed_attempts_total', 'Failed deliveries (each webhook retry counts, each failed file write).', (c) => c.failedAttempts)
      new Gauge({
        name: 'porthole_events_queue_length',
        help: 'Events waiting in each event sink, in flight included.',
        labelNames: ['sink'],
        registers: [registry],
        collect () {
          for (const sink of sinks) this.set({ sink: sink.name }, sink.counters().queued)
        },
      })
    },
    close (waitMs = options.closeWaitMs ?? 5000) {
      closing ??= (async () => {
        for (const [name, fn] of subscriptions) unsubscribe(name, fn)
        await Promise.all(sinks.map((s) => s.close(waitMs)))
      })()
      return closing
    },
  }
}
