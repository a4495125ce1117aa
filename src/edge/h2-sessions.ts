// HTTP/2 sessions on the HTTPS listener, bounded in every phase (issue 9, slowloris over HTTP/2). node:http2 has
// no header deadline, and its session idle timer is refreshed by every PING and SETTINGS frame (and the socket's
// by every byte), so a peer that completed one request could hold the connection and its memory forever by
// dripping a later header block or control frames. One coarse timer per listener watches every session:
// - a header block (HEADERS + CONTINUATION) must be complete within the header timeout. nghttp2 counts a stream
//   as processed (session.state.lastProcStreamID) as soon as its HEADERS frame begins, node emits 'stream' only
//   once the block is complete: a processed id above the last stream seen is a block still arriving (or one
//   nghttp2 refused, e.g. a forbidden header: that session is closed too unless a later request follows);
// - the first request must be complete within the header timeout of the session's start;
// - a session with no open stream for the idle timeout is closed, whatever control frames the peer sends
//   (they are not activity: bytes that are not yet a frame, a PING, SETTINGS, WINDOW_UPDATE);
// - a stream that moves no byte either way for the idle timeout is reset (node's per-stream timer, refreshed
//   only by that stream's own reads and writes);
// - PING and SETTINGS floods are cut (nghttp2 already bounds unanswered ACKs; this bounds answered ones).
import { constants, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2'
import type { Duplex } from 'node:stream'
import { checkingIntervalMs } from '../net/listen.js'

/** PING + SETTINGS frames one session may send per CONTROL_WINDOW_MS (browsers send a handful per minute). */
const MAX_CONTROL_FRAMES = 100
const CONTROL_WINDOW_MS = 10_000

interface Watched {
  readonly session: ServerHttp2Session
  readonly started: number
  /** Streams the peer opened whose 'close' has not come yet. */
  open: number
  /** The highest stream id node emitted ('stream': its header block complete); 0 before the first. */
  lastSeenId: number
  /** Since when the session has had no open stream. */
  idleSince: number
  /** Since when a header block has been seen arriving (first seen on a tick), or -1. */
  headersSince: number
  controlFrames: number
  controlWindowStart: number
}

export interface H2SessionLimits {
  readonly headerTimeoutMs: number
  readonly idleTimeoutMs: number
  readonly onCut?: (reason: string, session: ServerHttp2Session) => void
}

export class H2Sessions {
  readonly #limits: H2SessionLimits
  readonly #watched = new Set<Watched>()
  readonly #intervalMs: number
  #timer: NodeJS.Timeout | undefined

  constructor (limits: H2SessionLimits) {
    this.#limits = limits
    this.#intervalMs = Math.min(checkingIntervalMs(limits.headerTimeoutMs), checkingIntervalMs(limits.idleTimeoutMs))
  }

  watch (session: ServerHttp2Session): void {
    // node's session timer (set from the server's timeout) counts PING and SETTINGS as activity: ours does not.
    session.setTimeout(0)
    const now = performance.now()
    const watched: Watched = { session, started: now, open: 0, lastSeenId: 0, idleSince: now, headersSince: -1, controlFrames: 0, controlWindowStart: now }
    this.#watched.add(watched)
    session.on('stream', (stream: ServerHttp2Stream) => this.#onStream(watched, stream))
    const onControl = (): void => this.#onControl(watched)
    session.on('ping', onControl)
    session.on('remoteSettings', onControl)
    session.once('close', () => this.#watched.delete(watched))
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#tick(), this.#intervalMs)
      this.#timer.unref()
    }
  }

  #onStream (watched: Watched, stream: ServerHttp2Stream): void {
    watched.open++
    const id = stream.id ?? 0
    if (id > watched.lastSeenId) watched.lastSeenId = id
    stream.setTimeout(this.#limits.idleTimeoutMs, () => stream.close(constants.NGHTTP2_CANCEL))
    stream.once('close', () => {
      if (--watched.open === 0) watched.idleSince = performance.now()
    })
  }

  #onControl (watched: Watched): void {
    const now = performance.now()
    if (now - watched.controlWindowStart >= CONTROL_WINDOW_MS) {
      watched.controlWindowStart = now
      watched.controlFrames = 0
    }
    if (++watched.controlFrames > MAX_CONTROL_FRAMES) this.#cut(watched, 'PING/SETTINGS flood', constants.NGHTTP2_ENHANCE_YOUR_CALM)
  }

  #tick (): void {
    const now = performance.now()
    const { headerTimeoutMs, idleTimeoutMs } = this.#limits
    for (const watched of this.#watched) {
      const { session } = watched
      if (session.destroyed) {
        this.#watched.delete(watched)
        continue
      }
      if (watched.lastSeenId === 0 && now - watched.started >= headerTimeoutMs) {
        this.#cut(watched, 'no complete request in time', constants.NGHTTP2_NO_ERROR)
        continue
      }
      const processed = session.state.lastProcStreamID ?? 0
      if (processed > watched.lastSeenId) {
        if (watched.headersSince < 0) watched.headersSince = now
        else if (now - watched.headersSince >= headerTimeoutMs) {
          this.#cut(watched, 'header block not complete in time', constants.NGHTTP2_ENHANCE_YOUR_CALM)
          continue
        }
      } else {
        watched.headersSince = -1
      }
      if (watched.open === 0 && watched.headersSince < 0 && now - watched.idleSince >= idleTimeoutMs) {
        this.#cut(watched, 'idle', constants.NGHTTP2_NO_ERROR)
      }
    }
    if (this.#watched.size === 0) this.stop()
  }

  /**
   * GOAWAY and close. node then ends the TLS socket and waits for its writes to drain, which a peer that stops
   * reading would hold off: the TCP socket underneath goes a moment later.
   */
  #cut (watched: Watched, reason: string, code: number): void {
    this.#watched.delete(watched)
    const { session } = watched
    if (session.destroyed) return
    this.#limits.onCut?.(reason, session)
    let raw: Duplex | null | undefined
    try {
      raw = (session.socket as unknown as { _parent?: Duplex | null })._parent
    } catch {}
    if (code === constants.NGHTTP2_NO_ERROR) session.destroy()
    else session.destroy(new Error(`HTTP/2 session cut: ${reason}`), code)
    if (raw) {
      const timer = setTimeout(() => raw.destroy(), 1000)
      raw.once('close', () => clearTimeout(timer))
    }
  }

  stop (): void {
    clearInterval(this.#timer)
    this.#timer = undefined
  }
}
