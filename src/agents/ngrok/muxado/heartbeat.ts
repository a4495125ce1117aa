// ngrok's heartbeat: the agent opens a typed stream 0xFFFFFFFF first thing and, every interval (10 s by
// default), writes 4 random bytes that the other side echoes (ngrok-rust muxado/src/heartbeat.rs). The
// agent does not drop a session whose echoes stop, so the gateway needs its own check: Liveness tells the
// owner when no heartbeat arrived for toleranceMs. Timers are injected so tests need not wait.
import { randomBytes } from 'node:crypto'
import type { Duplex } from 'node:stream'

export const HEARTBEAT_TYPE = 0xFFFFFFFF
const BEAT_BYTES = 4

export interface LivenessTimers {
  setTimeout (callback: () => void, ms: number): unknown
  clearTimeout (handle: unknown): void
}

const realTimers: LivenessTimers = {
  setTimeout: (callback, ms) => {
    const handle = setTimeout(callback, ms)
    handle.unref()
    return handle
  },
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
}

export interface LivenessOptions {
  /** How long without a heartbeat before the peer counts as gone. */
  readonly toleranceMs: number
  /** Called once, when the tolerance ran out. */
  readonly onTimeout: () => void
  readonly timers?: LivenessTimers
}

/** One re-armed deadline: start() arms it, beat() pushes it back, stop() disarms it for good. */
export class Liveness {
  readonly #toleranceMs: number
  readonly #onTimeout: () => void
  readonly #timers: LivenessTimers
  #handle: unknown = undefined
  #state: 'idle' | 'armed' | 'timedOut' | 'stopped' = 'idle'
  #beats = 0

  constructor (options: LivenessOptions) {
    this.#toleranceMs = options.toleranceMs
    this.#onTimeout = options.onTimeout
    this.#timers = options.timers ?? realTimers
  }

  get timedOut (): boolean { return this.#state === 'timedOut' }
  get beats (): number { return this.#beats }

  start (): void {
    if (this.#state !== 'idle') return
    this.#arm()
  }

  beat (): void {
    if (this.#state === 'timedOut' || this.#state === 'stopped') return
    this.#beats++
    this.#arm()
  }

  stop (): void {
    if (this.#state === 'armed') this.#timers.clearTimeout(this.#handle)
    if (this.#state !== 'timedOut') this.#state = 'stopped'
  }

  #arm (): void {
    if (this.#state === 'armed') this.#timers.clearTimeout(this.#handle)
    this.#state = 'armed'
    this.#handle = this.#timers.setTimeout(this.#expire, this.#toleranceMs)
  }

  readonly #expire = (): void => {
    if (this.#state !== 'armed') return
    this.#state = 'timedOut'
    this.#onTimeout()
  }
}

/**
 * Echoes everything read from a heartbeat stream back (with backpressure: a peer cannot make us buffer
 * more than the stream's window) and counts each 4 bytes as one beat for `liveness`. Ends our side when the
 * peer ends its side. A heartbeat stream that closes stops the beats, so liveness then times out: the owner
 * stops it when the session ends.
 */
export function answerHeartbeats (stream: Duplex, liveness?: Pick<Liveness, 'beat'>): void {
  let partial = 0
  stream.on('data', (chunk: Buffer) => {
    partial += chunk.length
    while (partial >= BEAT_BYTES) {
      partial -= BEAT_BYTES
      liveness?.beat()
    }
    if (!stream.write(chunk)) {
      stream.pause()
      stream.once('drain', () => stream.resume())
    }
  })
  stream.on('end', () => stream.end())
  stream.on('error', () => {})
}

export interface HeartbeaterOptions {
  /** Time between beats (ngrok's default is 10 s). */
  readonly intervalMs: number
  /** Each echoed beat, with its round trip in ms (feed a Liveness from here). */
  readonly onBeat?: (latencyMs: number) => void
  readonly timers?: LivenessTimers
  readonly now?: () => number
  readonly randomBeat?: () => Buffer
}

/**
 * Our side of heartbeats towards the agent (it answers a 0xFFFFFFFF stream we open, as we answer its own):
 * every interval, 4 random bytes; the echo must be the same bytes. One beat is in flight at a time, so a
 * peer that stops echoing makes us stop sending, not pile up. A wrong echo destroys the stream.
 */
export class Heartbeater {
  readonly #stream: Duplex
  readonly #options: HeartbeaterOptions
  readonly #timers: LivenessTimers
  readonly #now: () => number
  #handle: unknown = undefined
  #stopped = false
  #outstanding: Buffer | null = null
  #sentAt = 0
  #echo = Buffer.alloc(0)

  constructor (stream: Duplex, options: HeartbeaterOptions) {
    this.#stream = stream
    this.#options = options
    this.#timers = options.timers ?? realTimers
    this.#now = options.now ?? Date.now
    stream.on('data', this.#onData)
    stream.on('error', () => this.stop())
    stream.on('close', () => this.stop())
  }

  start (): void {
    if (this.#stopped || this.#handle !== undefined) return
    this.#handle = this.#timers.setTimeout(this.#tick, this.#options.intervalMs)
  }

  stop (): void {
    this.#stopped = true
    if (this.#handle !== undefined) this.#timers.clearTimeout(this.#handle)
    this.#handle = undefined
  }

  readonly #tick = (): void => {
    this.#handle = undefined
    if (this.#stopped) return
    if (this.#outstanding === null) {
      const beat = (this.#options.randomBeat ?? randomBeat)()
      this.#outstanding = beat
      this.#sentAt = this.#now()
      this.#stream.write(beat)
    }
    this.start()
  }

  readonly #onData = (chunk: Buffer): void => {
    this.#echo = Buffer.concat([this.#echo, chunk])
    while (this.#echo.length >= BEAT_BYTES) {
      const echo = this.#echo.subarray(0, BEAT_BYTES)
      this.#echo = this.#echo.subarray(BEAT_BYTES)
      const expected = this.#outstanding
      if (expected === null || !expected.equals(echo)) {
        this.stop()
        this.#stream.destroy()
        return
      }
      this.#outstanding = null
      this.#options.onBeat?.(this.#now() - this.#sentAt)
    }
  }
}

function randomBeat (): Buffer {
  return randomBytes(BEAT_BYTES)
}
