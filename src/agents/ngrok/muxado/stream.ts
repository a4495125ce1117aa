// One muxado stream as a Node Duplex that behaves like a net.Socket for the edge (undici, pipe): per-stream
// flow control both ways, half-close, resets that fail the stream with ECONNRESET.
//  - Receiving: the peer may have at most `window` bytes unacknowledged. Received data waits in a queue
//    (bounded by that window, since a peer that overruns it is reset) and is pushed into the Readable only
//    when the application asks (_read); the WNDINC credit goes back as data is handed over, never on
//    receipt, so a slow reader holds the peer back instead of buffering without limit.
//  - Sending: a write is cut into DATA frames no bigger than the peer's remaining window (and than the
//    window itself); its callback waits for WNDINC and for the socket to drain, so nothing piles up.
//  - end() sends FIN and the stream can still read; destroy() before both sides finished sends RST.
import { Duplex } from 'node:stream'
import { MuxCode, streamResetError, type MuxError } from './errors.js'
import { Flag, MAX_WINDOW } from './frame.js'

/** What a stream needs from its session (implemented by MuxSession). */
export interface StreamOwner {
  sendData (stream: MuxStream, payload: Buffer, flags: number): void
  sendWndInc (stream: MuxStream, increment: number): void
  sendRst (stream: MuxStream, code: number): void
  /** True while the socket's write buffer is over its mark; then waitDrain() calls stream.pump() later. */
  needsDrain (): boolean
  waitDrain (stream: MuxStream): void
  /** Both directions are finished or the stream was reset: forget the id. */
  streamDone (stream: MuxStream): void
}

/** Payloads smaller than this are copied into a buffer of this size rather than kept as slices. */
const COALESCE_SIZE = 16 * 1024

interface PendingWrite {
  readonly chunk: Buffer
  offset: number
  readonly callback: (error?: Error | null) => void
}

export class MuxStream extends Duplex {
  readonly id: number
  /** The 4-byte stream type (-1 until a peer-opened stream's type has arrived). */
  type = -1
  readonly #owner: StreamOwner
  readonly #window: number
  readonly #maxPayload: number
  #sendWindow: number
  #recvCredit: number
  readonly #queue: Buffer[] = []
  #queued = 0
  /** Small payloads are copied together here, so tiny frames cannot pin big socket chunks or fill the
   *  queue with thousands of entries. */
  #small: Buffer | null = null
  #smallFill = 0
  #flushScheduled = false
  #unacked = 0
  #readWanted = false
  #remoteFin = false
  #pushedEnd = false
  #localFin = false
  #reset = false
  #pending: PendingWrite | null = null
  #finalCallback: ((error?: Error | null) => void) | null = null

  constructor (owner: StreamOwner, id: number, window: number, maxPayload: number) {
    super({ allowHalfOpen: true })
    this.#owner = owner
    this.id = id
    this.#window = window
    this.#maxPayload = Math.min(maxPayload, window)
    this.#sendWindow = window
    this.#recvCredit = window
  }

  /** Bytes received and not yet handed to the Readable (the test of "never more than the window"). */
  get queuedBytes (): number { return this.#queued }
  /** Buffers held for those bytes (the test that tiny frames are coalesced). */
  get queuedChunks (): number { return this.#queue.length + (this.#smallFill > 0 ? 1 : 0) }
  get localFinished (): boolean { return this.#localFin }
  get remoteFinished (): boolean { return this.#remoteFin }

  // net.Socket compatibility for code that expects a socket (undici calls these).
  setNoDelay (_noDelay?: boolean): this { return this }
  setKeepAlive (_enable?: boolean, _delay?: number): this { return this }
  setTimeout (_ms: number, _callback?: () => void): this { return this }
  ref (): this { return this }
  unref (): this { return this }

  // ---- called by the session -------------------------------------------------------------------------

  /** The peer sends `length` bytes: false (and nothing changed) if that overruns the window it was given. */
  takeCredit (length: number): boolean {
    if (length > this.#recvCredit) return false
    this.#recvCredit -= length
    return true
  }

  /** Bytes the session consumed itself (the stream type): credit them back as if read. */
  consumed (length: number): void {
    this.#unacked += length
    this.#maybeAck()
  }

  /** A slice of a socket chunk: kept as is only when it is most of that chunk, else copied. */
  receive (chunk: Buffer): void {
    if (this.#reset || this.destroyed || chunk.length === 0) return
    this.#queued += chunk.length
    if (chunk.length >= COALESCE_SIZE) {
      this.#sealSmall()
      this.#queue.push(chunk.buffer.byteLength <= 2 * chunk.length ? chunk : Buffer.from(chunk))
    } else {
      let offset = 0
      while (offset < chunk.length) {
        this.#small ??= Buffer.allocUnsafe(COALESCE_SIZE)
        const n = chunk.copy(this.#small, this.#smallFill, offset)
        this.#smallFill += n
        offset += n
        if (this.#smallFill === COALESCE_SIZE) this.#sealSmall()
      }
    }
    this.#scheduleFlush()
  }

  receiveFin (): void {
    this.#remoteFin = true
    if (this.#localFin) this.#owner.streamDone(this)
    this.#scheduleFlush()
  }

  /** False (and nothing changed) if the increment would take the window past 2^31-1. */
  receiveWndInc (increment: number): boolean {
    if (this.#sendWindow + increment > MAX_WINDOW) return false
    this.#sendWindow += increment
    this.pump()
    return true
  }

  /** The peer reset the stream, or the session went: fail it without sending anything (no error: a stream
   *  the application never saw, which must not emit 'error'). */
  fail (error?: MuxError): void {
    if (this.#reset) return
    this.#reset = true
    this.destroy(error)
  }

  /**
   * The session went. A stream whose peer had sent its FIN, with no write of ours waiting, is complete: its reader
   * still gets every byte and a clean end (a reply followed at once by GOAWAY must not be lost); nothing more is
   * sent on it. Any other stream fails with `error`.
   */
  sessionEnded (error?: MuxError): void {
    if (this.#reset) return
    if (!this.#remoteFin || this.#pending !== null) return this.fail(error)
    this.#reset = true
    if (this.readableEnded) this.destroy()
    else this.once('end', () => this.destroy())
  }

  /** Sends what the current write can send now; the session calls it again after WNDINC or drain. */
  pump (): void {
    const pending = this.#pending
    if (pending === null || this.#reset || this.destroyed) return
    while (pending.offset < pending.chunk.length) {
      if (this.#sendWindow <= 0) return
      if (this.#owner.needsDrain()) { this.#owner.waitDrain(this); return }
      const n = Math.min(pending.chunk.length - pending.offset, this.#sendWindow, this.#maxPayload)
      this.#owner.sendData(this, pending.chunk.subarray(pending.offset, pending.offset + n), 0)
      pending.offset += n
      this.#sendWindow -= n
    }
    if (this.#owner.needsDrain()) { this.#owner.waitDrain(this); return }
    this.#pending = null
    pending.callback()
  }

  /** Counts the bytes an opener sent in the SYN frame against the peer's window. */
  spendSendWindow (length: number): void { this.#sendWindow -= length }

  // ---- Duplex ----------------------------------------------------------------------------------------

  override _read (): void {
    this.#readWanted = true
    this.#flush()
  }

  override _write (chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.#reset) { callback(streamResetError(MuxCode.StreamClosed, `stream ${this.id} was reset`)); return }
    this.#pending = { chunk, offset: 0, callback }
    this.pump()
  }

  override _final (callback: (error?: Error | null) => void): void {
    if (this.#reset) { callback(streamResetError(MuxCode.StreamClosed, `stream ${this.id} was reset`)); return }
    this.#finalCallback = callback
    this.#sendFin()
  }

  override _destroy (error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.#reset && !(this.#localFin && this.#remoteFin)) {
      this.#reset = true
      this.#owner.sendRst(this, MuxCode.StreamCancelled)
    }
    this.#reset = true
    this.#queue.length = 0
    this.#queued = 0
    this.#small = null
    this.#smallFill = 0
    this.#pending = null
    this.#owner.streamDone(this)
    callback(error)
  }

  #sendFin (): void {
    this.#localFin = true
    this.#owner.sendData(this, Buffer.alloc(0), Flag.Fin)
    if (this.#remoteFin) this.#owner.streamDone(this)
    const callback = this.#finalCallback
    this.#finalCallback = null
    callback?.()
  }

  /** Moves the small-payload buffer into the queue (a partial one as an exact-size copy). */
  #sealSmall (): void {
    if (this.#small === null || this.#smallFill === 0) return
    if (this.#smallFill === COALESCE_SIZE) {
      this.#queue.push(this.#small)
      this.#small = null
    } else {
      this.#queue.push(Buffer.from(this.#small.subarray(0, this.#smallFill)))
    }
    this.#smallFill = 0
  }

  /** Data for a waiting reader is pushed once per turn of the event loop, not once per frame. */
  #scheduleFlush (): void {
    if (!this.#readWanted || this.#flushScheduled) return
    this.#flushScheduled = true
    setImmediate(this.#scheduledFlush)
  }

  readonly #scheduledFlush = (): void => {
    this.#flushScheduled = false
    if (!this.destroyed) this.#flush()
  }

  #flush (): void {
    if (this.#readWanted) this.#sealSmall()
    while (this.#readWanted && this.#queue.length > 0) {
      const chunk = this.#queue.shift() as Buffer
      this.#queued -= chunk.length
      this.#unacked += chunk.length
      this.#readWanted = this.push(chunk)
    }
    this.#maybeAck()
    if (this.#remoteFin && this.#queued === 0 && !this.#pushedEnd && !this.destroyed) {
      this.#pushedEnd = true
      this.push(null)
    }
  }

  /** WNDINC in batches of an eighth of the window: the peer keeps at least 7/8 of its credit meanwhile. */
  #maybeAck (): void {
    if (this.#unacked < this.#window / 8 || this.#remoteFin || this.#reset) return
    this.#recvCredit += this.#unacked
    this.#owner.sendWndInc(this, this.#unacked)
    this.#unacked = 0
  }
}
