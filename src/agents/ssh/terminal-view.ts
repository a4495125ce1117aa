// The live full-screen view of a session with a pty (`ssh -t ... http`): keeps what the screen shows (URLs,
// counters, the last requests, notices) and redraws it on the alternate screen, coalesced: at most one frame
// per MIN_FRAME_MS whatever the request rate, plus a slow tick for the rates and the open count, and a frame
// equal to the last one is not sent again. A user whose terminal falls behind gets fewer frames, never a
// growing buffer (`write` refuses past the terminal's bound and the next tick tries again).
import type { RequestRecord } from '../../core/endpoint.js'
import { ConnectionStats } from './terminal-stats.js'
import { renderScreen, type ScreenForward, type ScreenModel, type ScreenRequest } from './terminal-screen.js'

const MIN_FRAME_MS = 250
const TICK_MS = 1000
/** Requests kept for the list: a screen never shows more. */
const MAX_REQUESTS = 100
const MAX_NOTICES = 5

export const ENTER = '\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J'
export const LEAVE = '\x1b[?25h\x1b[?1049l'

export interface ViewSession {
  readonly account: string
  readonly version: string
  /** The session's inspector: its address on the user's side and how to reach it; null when there is none. */
  readonly inspector: { readonly url: string, readonly hint: string } | null
  /** Streams open through this session's tunnels now. */
  readonly open: () => number
}

/** The Web Interface line: the address, and until the user reached it, how to (the -L hint). */
export function inspectorLine (session: ViewSession, reached: boolean): string | null {
  const inspector = session.inspector
  if (!inspector) return null
  return reached ? inspector.url : `${inspector.url}  ${inspector.hint}`
}

export class LiveView {
  readonly #session: ViewSession
  /** Writes to the channel; false when it did not (closed, or the client is too far behind). */
  readonly #write: (data: string) => boolean
  readonly #stats: ConnectionStats
  readonly #forwards: ScreenForward[] = []
  readonly #requests: ScreenRequest[] = []
  readonly #notices: string[] = []
  readonly #now: () => number
  #qr: string | null = null
  /** The user reached the inspector already (a -L forward to it): the hint how to is left out. */
  #inspectorReached = false
  #cols: number
  #rows: number
  #lastFrame = ''
  #lastDrawAt = 0
  #timer: NodeJS.Timeout | null = null
  #tick: NodeJS.Timeout | null = null
  #stopped = false

  constructor (session: ViewSession, size: { cols: number, rows: number }, write: (data: string) => boolean, now: () => number = Date.now) {
    this.#session = session
    this.#write = write
    this.#now = now
    this.#stats = new ConnectionStats(now)
    this.#cols = size.cols
    this.#rows = size.rows
  }

  start (): void {
    this.#write(ENTER)
    this.#tick = setInterval(() => this.#schedule(), TICK_MS)
    this.#tick.unref()
    this.#schedule()
  }

  forwards (lines: readonly ScreenForward[]): void {
    this.#forwards.push(...lines)
    this.#schedule()
  }

  /** Replaces the QR code (the qrcode library's terminal text). */
  qr (text: string | null): void {
    this.#qr = text
    this.#schedule()
  }

  request (record: RequestRecord): void {
    this.#stats.record(record.durationMs)
    this.#requests.push({
      at: this.#now(),
      method: record.method,
      path: record.path,
      status: record.status,
      durationMs: record.durationMs,
      ...(record.errorCode ? { errorCode: record.errorCode } : {}),
      ...(record.bytesIn !== undefined ? { bytesIn: record.bytesIn, bytesOut: record.bytesOut ?? 0 } : {}),
    })
    if (this.#requests.length > MAX_REQUESTS) this.#requests.shift()
    this.#schedule()
  }

  notice (line: string): void {
    this.#notices.push(line)
    if (this.#notices.length > MAX_NOTICES) this.#notices.shift()
    this.#schedule()
  }

  get notices (): readonly string[] { return this.#notices }

  inspectorReached (): void {
    this.#inspectorReached = true
    this.#schedule()
  }

  resize (cols: number, rows: number): void {
    if (cols < 1 || rows < 1) return
    this.#cols = cols
    this.#rows = rows
    this.#lastFrame = '' // the terminal may have reflowed what it showed: draw all of it again
    this.#schedule()
  }

  /** Stops drawing; returns what to write to leave the full screen. */
  stop (): string {
    this.#stopped = true
    if (this.#timer) clearTimeout(this.#timer)
    if (this.#tick) clearInterval(this.#tick)
    this.#timer = null
    this.#tick = null
    return LEAVE
  }

  model (): ScreenModel {
    return {
      status: 'online',
      account: this.#session.account,
      version: this.#session.version,
      inspector: inspectorLine(this.#session, this.#inspectorReached),
      forwards: this.#forwards,
      stats: this.#stats.snapshot(),
      open: this.#session.open(),
      requests: this.#requests,
      notices: this.#notices,
      qr: this.#qr,
    }
  }

  #schedule (): void {
    if (this.#stopped || this.#timer) return
    const wait = Math.max(0, this.#lastDrawAt + MIN_FRAME_MS - this.#now())
    this.#timer = setTimeout(() => {
      this.#timer = null
      this.#draw()
    }, wait)
  }

  #draw (): void {
    if (this.#stopped) return
    const lines = renderScreen(this.model(), this.#cols, this.#rows)
    const frame = `\x1b[H${lines.join('\x1b[K\r\n')}\x1b[K\x1b[J`
    if (frame === this.#lastFrame) return
    if (!this.#write(frame)) return // behind or closed: the next tick tries again
    this.#lastFrame = frame
    this.#lastDrawAt = this.#now()
  }
}
