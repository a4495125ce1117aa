// A muxado session over one Duplex (the agent's TLS socket): stream ids, the frame rules a peer must keep,
// typed streams, and a teardown that happens exactly once. Server by default (even ids from 2; the ngrok
// agent opens odd ids from 3). What differs from ngrok-rust's session, on purpose (it trusts its server;
// we must not trust the agent):
//  - every id rule is checked: a SYN of the wrong parity, for an existing id or going backwards, DATA/RST/
//    WNDINC for an id never opened, WNDINC of 0 or past 2^31-1, are session errors (GOAWAY with the code);
//  - a SYN past maxStreams or past the backlog of streams whose type has not arrived is refused with a
//    stream RST (StreamsExhausted, AcceptQueueFull) instead of killing the session;
//  - frames for a stream that existed and is gone (reset, both sides finished) are ignored, as muxado does;
//  - the peer closing TCP/TLS without GOAWAY (what ngrok-rust's close does) fails every open stream with
//    ECONNRESET, so a half-read stream never looks complete.
import { EventEmitter } from 'node:events'
import type { Duplex } from 'node:stream'
import { MuxCode, MuxError, muxCodeName, streamResetError } from './errors.js'
import {
  DEFAULT_WINDOW, Flag, FrameReader, FrameType, MAX_LENGTH, MAX_STREAM_ID, encodeGoAway, encodeHeader,
  encodeRst, encodeWndInc, type FrameHandler,
} from './frame.js'
import { MuxStream, type StreamOwner } from './stream.js'

export interface MuxSessionOptions {
  /** Client side: odd ids from 3 (default false: server, even ids from 2). */
  readonly client?: boolean
  /** Concurrently open streams, both directions together (default 512, ngrok-rust's limit). */
  readonly maxStreams?: number
  /** Largest frame payload accepted (default 256 KiB, the window: a bigger DATA frame always overruns it). */
  readonly maxFrameSize?: number
  /** Peer-opened streams whose 4-byte type has not arrived yet (default 64, ngrok-rust's accept queue). */
  readonly acceptBacklog?: number
  /** After GOAWAY, how long the socket may stay half-open before it is destroyed (default 2000 ms). */
  readonly lingerMs?: number
}

/** Bytes queued on the socket past which answering a peer's frames with RSTs counts as a flood. */
const FLOOD_BYTES = 1 << 20
const TYPE_BYTES = 4

interface TypeWait { readonly bytes: Buffer, fill: number }

/** The DATA frame being read: where its payload goes. */
interface Incoming { stream: MuxStream | null, fin: boolean }

export declare interface MuxSession {
  on (event: 'stream', listener: (stream: MuxStream, type: number) => void): this
  on (event: 'close', listener: (error?: MuxError) => void): this
  once (event: 'stream', listener: (stream: MuxStream, type: number) => void): this
  once (event: 'close', listener: (error?: MuxError) => void): this
}

export class MuxSession extends EventEmitter {
  readonly #socket: Duplex
  readonly #client: boolean
  readonly #maxStreams: number
  readonly #acceptBacklog: number
  readonly #lingerMs: number
  readonly #reader: FrameReader
  readonly #streams = new Map<number, MuxStream>()
  readonly #typing = new Map<MuxStream, TypeWait>()
  readonly #drainWaiters = new Set<MuxStream>()
  #nextLocalId: number
  #lastRemoteId: number
  #incoming: Incoming = { stream: null, fin: false }
  #closed = false
  #closeError: MuxError | undefined

  constructor (socket: Duplex, options: MuxSessionOptions = {}) {
    super()
    this.#socket = socket
    this.#client = options.client ?? false
    this.#maxStreams = options.maxStreams ?? 512
    this.#acceptBacklog = options.acceptBacklog ?? 64
    this.#lingerMs = options.lingerMs ?? 2000
    const maxFrameSize = Math.min(options.maxFrameSize ?? DEFAULT_WINDOW, MAX_LENGTH)
    this.#nextLocalId = this.#client ? 3 : 2
    this.#lastRemoteId = this.#client ? 0 : 1
    this.#reader = new FrameReader(this.#handler, maxFrameSize)
    socket.on('data', this.#onData)
    socket.on('end', () => this.#finish(new MuxError(MuxCode.PeerEOF, 'the peer closed the connection without GOAWAY')))
    socket.on('error', (error: Error) => this.#finish(new MuxError(MuxCode.PeerEOF, `connection failed: ${error.message}`, { cause: error })))
    socket.on('close', () => this.#finish(new MuxError(MuxCode.PeerEOF, 'the connection closed')))
    socket.on('drain', this.#onDrain)
  }

  get streamCount (): number { return this.#streams.size }
  get closed (): boolean { return this.#closed }
  /** Why the session ended (undefined while open or after a local close()). */
  get closeError (): MuxError | undefined { return this.#closeError }

  /**
   * Opens a typed stream: its SYN frame carries the 4-byte type and the start of firstPayload together
   * (ngrok's Go agent reads the type with a single read). Throws a MuxError (SessionClosed,
   * StreamsExhausted) when no stream can be opened; the peer may still refuse it with an RST.
   */
  open (type: number, firstPayload: Buffer = Buffer.alloc(0)): MuxStream {
    if (this.#closed) throw new MuxError(MuxCode.SessionClosed, 'the session is closed')
    if (this.#streams.size >= this.#maxStreams) throw new MuxError(MuxCode.StreamsExhausted, `${this.#maxStreams} streams are open`)
    if (this.#nextLocalId > MAX_STREAM_ID) throw new MuxError(MuxCode.StreamsExhausted, 'no stream ids left')
    const id = this.#nextLocalId
    this.#nextLocalId += 2
    const stream = new MuxStream(this.#owner, id, DEFAULT_WINDOW, DEFAULT_WINDOW)
    stream.type = type >>> 0
    this.#streams.set(id, stream)
    const head = firstPayload.subarray(0, DEFAULT_WINDOW - TYPE_BYTES)
    const payload = Buffer.allocUnsafe(TYPE_BYTES + head.length)
    payload.writeUInt32BE(type >>> 0, 0)
    head.copy(payload, TYPE_BYTES)
    this.#write(encodeHeader(FrameType.Data, Flag.Syn, id, payload.length))
    this.#write(payload)
    stream.spendSendWindow(payload.length)
    if (head.length < firstPayload.length) stream.write(firstPayload.subarray(head.length))
    return stream
  }

  /** Sends GOAWAY (last peer stream id, code, debug text), fails open streams and ends the socket. */
  close (code: number = MuxCode.None, debug = ''): void {
    this.#finish(undefined, code, debug)
  }

  /** Ends at once without GOAWAY: streams fail, the socket is destroyed, 'close' gets the error. */
  destroy (error?: Error): void {
    let muxError: MuxError
    if (error instanceof MuxError) muxError = error
    else if (error === undefined) muxError = new MuxError(MuxCode.SessionClosed, 'the session was destroyed')
    else muxError = new MuxError(MuxCode.Internal, error.message, { cause: error })
    this.#finish(muxError)
    this.#socket.destroy()
  }

  // ---- teardown --------------------------------------------------------------------------------------

  #finish (error: MuxError | undefined, goAwayCode?: number, debug = ''): void {
    if (this.#closed) return
    this.#closed = true
    this.#closeError = error
    this.#reader.stop()
    if (goAwayCode !== undefined) {
      this.#socket.write(encodeGoAway(this.#lastRemoteId, goAwayCode, Buffer.from(debug)))
    }
    const streamCode = error?.muxCode ?? MuxCode.SessionClosed
    const reason = error === undefined ? 'the session was closed' : error.message
    const streams = [...this.#streams.values()]
    this.#streams.clear()
    this.#drainWaiters.clear()
    for (const stream of streams) {
      if (this.#typing.has(stream)) stream.fail()
      else stream.sessionEnded(streamResetError(streamCode, `stream ${stream.id} failed: ${reason}`, error))
    }
    this.#typing.clear()
    if (goAwayCode !== undefined && !this.#socket.destroyed) {
      this.#socket.end()
      setTimeout(() => this.#socket.destroy(), this.#lingerMs).unref()
    } else {
      this.#socket.destroy()
    }
    this.emit('close', error)
  }

  /** A peer broke a rule: GOAWAY with the rule's code and the message as debug text (our own failures
   *  tell the peer no more than that they happened). */
  #fail (error: MuxError): void {
    this.#finish(error, error.muxCode, error.muxCode === MuxCode.Internal ? 'internal error' : error.message)
  }

  readonly #onData = (chunk: Buffer): void => {
    try {
      this.#reader.push(chunk)
    } catch (error) {
      if (error instanceof MuxError) this.#fail(error)
      else this.#fail(new MuxError(MuxCode.Internal, `while reading frames: ${(error as Error).message}`, { cause: error }))
    }
  }

  readonly #onDrain = (): void => {
    if (this.#drainWaiters.size === 0) return
    const waiters = [...this.#drainWaiters]
    this.#drainWaiters.clear()
    for (const stream of waiters) stream.pump()
  }

  // ---- output ----------------------------------------------------------------------------------------

  #write (buffer: Buffer): void {
    if (!this.#closed) this.#socket.write(buffer)
  }

  /**
   * Answers a peer's WNDINC with an empty DATA frame (never more than it sent us, and not while a peer that does
   * not read has a megabyte waiting). ngrok-rust leaves
   * Nagle's algorithm on: it sends its WNDINC for our request alone, and the response it writes right after
   * waits until our kernel ACKs that segment, which Linux delays by up to 40 ms when it has nothing to send.
   * Every request through an SDK took 44 ms at best; the empty frame (a no-op for the peer) carries the ACK.
   */
  #nudge (stream: MuxStream): void {
    if (stream.writableEnded || stream.destroyed || this.#socket.writableLength > FLOOD_BYTES) return
    this.#write(encodeHeader(FrameType.Data, 0, stream.id, 0))
  }

  /** An RST the peer's own frames provoked: a peer that provokes them faster than it reads is cut off. */
  #answerRst (id: number, code: number): void {
    if (this.#socket.writableLength > FLOOD_BYTES) {
      throw new MuxError(MuxCode.EnhanceYourCalm, 'the peer provokes RSTs faster than it reads them')
    }
    this.#write(encodeRst(id, code))
  }

  readonly #owner: StreamOwner = {
    sendData: (stream, payload, flags) => {
      // One write per frame: over TLS each write is a record of its own.
      this.#write(payload.length > 0 ? Buffer.concat([encodeHeader(FrameType.Data, flags, stream.id, payload.length), payload]) : encodeHeader(FrameType.Data, flags, stream.id, 0))
    },
    sendWndInc: (stream, increment) => {
      if (this.#streams.get(stream.id) === stream) this.#write(encodeWndInc(stream.id, increment))
    },
    sendRst: (stream, code) => {
      if (this.#streams.get(stream.id) === stream) this.#write(encodeRst(stream.id, code))
    },
    needsDrain: () => this.#socket.writableNeedDrain,
    waitDrain: (stream) => { if (!this.#closed) this.#drainWaiters.add(stream) },
    streamDone: (stream) => {
      if (this.#streams.get(stream.id) === stream) this.#streams.delete(stream.id)
      this.#typing.delete(stream)
      this.#drainWaiters.delete(stream)
      if (this.#incoming.stream === stream) this.#incoming.stream = null
    },
  }

  // ---- input -----------------------------------------------------------------------------------------

  #isLocal (id: number): boolean { return (id % 2 === 1) === this.#client }

  #neverOpened (id: number): boolean {
    return this.#isLocal(id) ? id >= this.#nextLocalId : id > this.#lastRemoteId
  }

  #unknownStream (id: number, what: string): void {
    if (this.#neverOpened(id)) throw new MuxError(MuxCode.Protocol, `${what} on stream ${id} with neither SYN nor an open stream`)
  }

  readonly #handler: FrameHandler = {
    dataStart: (id, flags, length) => {
      const fin = (flags & Flag.Fin) !== 0
      this.#incoming = { stream: null, fin }
      let stream: MuxStream | undefined
      if ((flags & Flag.Syn) !== 0) {
        stream = this.#acceptSyn(id)
        if (stream === undefined) return
      } else {
        stream = this.#streams.get(id)
        if (stream === undefined) { this.#unknownStream(id, 'DATA'); return }
        if (stream.remoteFinished) {
          this.#answerRst(id, MuxCode.StreamClosed)
          stream.fail(streamResetError(MuxCode.StreamClosed, `stream ${id} got DATA after its FIN`))
          return
        }
      }
      if (!stream.takeCredit(length)) {
        this.#answerRst(id, MuxCode.FlowControl)
        const error = streamResetError(MuxCode.FlowControl, `stream ${id} got ${length} bytes past its window`)
        if (this.#typing.has(stream)) stream.fail()
        else stream.fail(error)
        return
      }
      this.#incoming.stream = stream
    },
    dataChunk: (chunk) => {
      const stream = this.#incoming.stream
      if (stream === null) return
      const wait = this.#typing.get(stream)
      if (wait === undefined) { stream.receive(chunk); return }
      const n = Math.min(TYPE_BYTES - wait.fill, chunk.length)
      chunk.copy(wait.bytes, wait.fill, 0, n)
      wait.fill += n
      if (wait.fill < TYPE_BYTES) return
      this.#typing.delete(stream)
      stream.type = wait.bytes.readUInt32BE(0)
      stream.consumed(TYPE_BYTES)
      if (n < chunk.length) stream.receive(chunk.subarray(n))
      this.emit('stream', stream, stream.type)
    },
    dataEnd: () => {
      const { stream, fin } = this.#incoming
      this.#incoming = { stream: null, fin: false }
      if (stream === null || !fin) return
      // A stream that ends before its type arrived was never anything: drop it (RST StreamCancelled).
      if (this.#typing.has(stream)) { this.#typing.delete(stream); stream.destroy(); return }
      stream.receiveFin()
    },
    rst: (id, code) => {
      const stream = this.#streams.get(id)
      if (stream === undefined) { this.#unknownStream(id, 'RST'); return }
      if (this.#typing.has(stream)) { stream.fail(); return }
      stream.fail(streamResetError(code, `stream ${id} was reset by the peer`))
    },
    wndInc: (id, increment) => {
      if (increment === 0) throw new MuxError(MuxCode.Protocol, `WNDINC of 0 on stream ${id}`)
      const stream = this.#streams.get(id)
      if (stream === undefined) { this.#unknownStream(id, 'WNDINC'); return }
      if (!stream.receiveWndInc(increment)) {
        throw new MuxError(MuxCode.FlowControl, `WNDINC of ${increment} on stream ${id} takes its window past 2^31-1`)
      }
      this.#nudge(stream)
    },
    goAway: (lastId, code, debug) => {
      const text = debug.subarray(0, 1024).toString('utf8')
      const muxCode = code === MuxCode.None ? MuxCode.RemoteGoneAway : code
      this.#finish(new MuxError(muxCode, `the peer sent GOAWAY (${muxCodeName(code)}, last stream ${lastId})${text === '' ? '' : `: ${text}`}`))
    },
  }

  /** A peer's SYN: the new stream, or undefined when it was refused with an RST (its payload is dropped). */
  #acceptSyn (id: number): MuxStream | undefined {
    if (this.#isLocal(id)) throw new MuxError(MuxCode.Protocol, `SYN for stream ${id}, whose id has this side's parity`)
    if (this.#streams.has(id)) throw new MuxError(MuxCode.Protocol, `SYN for stream ${id}, which is open`)
    if (id <= this.#lastRemoteId) throw new MuxError(MuxCode.Protocol, `SYN for stream ${id} after stream ${this.#lastRemoteId}: ids went backwards`)
    this.#lastRemoteId = id
    if (this.#streams.size >= this.#maxStreams) { this.#answerRst(id, MuxCode.StreamsExhausted); return undefined }
    if (this.#typing.size >= this.#acceptBacklog) { this.#answerRst(id, MuxCode.AcceptQueueFull); return undefined }
    const stream = new MuxStream(this.#owner, id, DEFAULT_WINDOW, DEFAULT_WINDOW)
    this.#streams.set(id, stream)
    this.#typing.set(stream, { bytes: Buffer.alloc(TYPE_BYTES), fill: 0 })
    return stream
  }
}
