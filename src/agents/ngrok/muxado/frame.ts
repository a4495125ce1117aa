// muxado's frame format: encoding, and an incremental decoder that checks every header before it reads the
// payload. Layout (ngrok-rust muxado/src/codec.rs): an 8-byte big-endian header, u24 payload length |
// u4 type << 4 | u4 flags, then u32 stream id whose top bit is reserved and masked off. The decoder keeps
// at most one frame's control payload (bounded by maxFrameSize) and hands DATA payloads on as slices of the
// chunks it was given, so a peer cannot make it allocate more than that whatever it sends.
import { MuxCode, MuxError } from './errors.js'

export const FrameType = { Rst: 0, Data: 1, WndInc: 2, GoAway: 3 } as const
/** DATA flags. muxado's PROTOCOL.md documents them the other way round; the code (both clients) is this. */
export const Flag = { Fin: 0x1, Syn: 0x2 } as const

export const HEADER_SIZE = 8
export const MAX_STREAM_ID = 0x7FFFFFFF
export const MAX_WINDOW = 0x7FFFFFFF
export const MAX_LENGTH = 0xFFFFFF
/** The fixed per-stream, per-direction window of ngrok's clients (muxado/src/session.rs DEFAULT_WINDOW). */
export const DEFAULT_WINDOW = 0x40000

export function encodeHeader (type: number, flags: number, streamId: number, length: number): Buffer {
  const header = Buffer.allocUnsafe(HEADER_SIZE)
  header.writeUInt32BE(((length & MAX_LENGTH) << 8 | (type & 0xF) << 4 | (flags & 0xF)) >>> 0, 0)
  header.writeUInt32BE(streamId & MAX_STREAM_ID, 4)
  return header
}

export function encodeRst (streamId: number, code: number): Buffer {
  const frame = Buffer.allocUnsafe(HEADER_SIZE + 4)
  encodeHeader(FrameType.Rst, 0, streamId, 4).copy(frame, 0)
  frame.writeUInt32BE(code >>> 0, HEADER_SIZE)
  return frame
}

export function encodeWndInc (streamId: number, increment: number): Buffer {
  const frame = Buffer.allocUnsafe(HEADER_SIZE + 4)
  encodeHeader(FrameType.WndInc, 0, streamId, 4).copy(frame, 0)
  frame.writeUInt32BE(increment & MAX_WINDOW, HEADER_SIZE)
  return frame
}

/** GOAWAY with the length it should have (8 + debug; ngrok-rust's encoder writes the debug length only). */
export function encodeGoAway (lastStreamId: number, code: number, debug: Buffer): Buffer {
  const body = debug.subarray(0, MAX_LENGTH - 8)
  const frame = Buffer.allocUnsafe(HEADER_SIZE + 8 + body.length)
  encodeHeader(FrameType.GoAway, 0, 0, 8 + body.length).copy(frame, 0)
  frame.writeUInt32BE(lastStreamId & MAX_STREAM_ID, HEADER_SIZE)
  frame.writeUInt32BE(code >>> 0, HEADER_SIZE + 4)
  body.copy(frame, HEADER_SIZE + 8)
  return frame
}

/** What the decoder calls for each frame, in order. Any of them may throw a MuxError to end the session. */
export interface FrameHandler {
  /** A DATA header; its payload follows as dataChunk calls, then dataEnd (also for an empty payload). */
  dataStart (streamId: number, flags: number, length: number): void
  dataChunk (chunk: Buffer): void
  dataEnd (): void
  rst (streamId: number, code: number): void
  wndInc (streamId: number, increment: number): void
  goAway (lastStreamId: number, code: number, debug: Buffer): void
}

const enum State { Header, Data, Control }

/** Incremental muxado decoder: push() socket chunks; stop() makes it ignore everything after. */
export class FrameReader {
  readonly #handler: FrameHandler
  readonly #maxFrameSize: number
  readonly #header = Buffer.alloc(HEADER_SIZE)
  #headerFill = 0
  #state = State.Header
  #type = 0
  #streamId = 0
  #remaining = 0
  #control: Buffer = Buffer.alloc(0)
  #controlFill = 0
  #stopped = false

  constructor (handler: FrameHandler, maxFrameSize: number) {
    this.#handler = handler
    this.#maxFrameSize = maxFrameSize
  }

  stop (): void { this.#stopped = true }
  get stopped (): boolean { return this.#stopped }

  push (chunk: Buffer): void {
    let offset = 0
    while (!this.#stopped && offset < chunk.length) {
      if (this.#state === State.Header) {
        const n = Math.min(HEADER_SIZE - this.#headerFill, chunk.length - offset)
        chunk.copy(this.#header, this.#headerFill, offset, offset + n)
        this.#headerFill += n
        offset += n
        if (this.#headerFill === HEADER_SIZE) {
          this.#headerFill = 0
          this.#startFrame()
        }
      } else if (this.#state === State.Data) {
        const n = Math.min(this.#remaining, chunk.length - offset)
        this.#remaining -= n
        this.#handler.dataChunk(chunk.subarray(offset, offset + n))
        offset += n
        if (this.#remaining === 0 && !this.#stopped) this.#endData()
      } else {
        const n = Math.min(this.#remaining, chunk.length - offset)
        chunk.copy(this.#control, this.#controlFill, offset, offset + n)
        this.#controlFill += n
        this.#remaining -= n
        offset += n
        if (this.#remaining === 0) this.#endControl()
      }
    }
  }

  #startFrame (): void {
    const word = this.#header.readUInt32BE(0)
    const length = word >>> 8
    const type = (word >>> 4) & 0xF
    const flags = word & 0xF
    const id = this.#header.readUInt32BE(4) & MAX_STREAM_ID
    this.#type = type
    this.#streamId = id
    this.#remaining = length
    if (type > FrameType.GoAway) throw new MuxError(MuxCode.Protocol, `unknown frame type ${type} on stream ${id}`)
    if (length > this.#maxFrameSize) {
      throw new MuxError(MuxCode.FrameSize, `frame of type ${type} on stream ${id} has length ${length}, more than ${this.#maxFrameSize}`)
    }
    if (type === FrameType.GoAway) {
      if (id !== 0) throw new MuxError(MuxCode.Protocol, `GOAWAY on stream ${id}, not stream 0`)
      if (length < 8) throw new MuxError(MuxCode.FrameSize, `GOAWAY with length ${length}, less than 8`)
    } else {
      if (id === 0) throw new MuxError(MuxCode.Protocol, `frame of type ${type} on stream 0`)
      if (type !== FrameType.Data && length !== 4) {
        throw new MuxError(MuxCode.FrameSize, `${type === FrameType.Rst ? 'RST' : 'WNDINC'} on stream ${id} with length ${length}, not 4`)
      }
    }
    if (type === FrameType.Data) {
      this.#handler.dataStart(id, flags, length)
      if (this.#stopped) return
      if (length === 0) this.#endData()
      else this.#state = State.Data
      return
    }
    this.#control = Buffer.allocUnsafe(length)
    this.#controlFill = 0
    this.#state = State.Control
  }

  #endData (): void {
    this.#state = State.Header
    this.#handler.dataEnd()
  }

  #endControl (): void {
    this.#state = State.Header
    const body = this.#control
    this.#control = Buffer.alloc(0)
    if (this.#type === FrameType.Rst) this.#handler.rst(this.#streamId, body.readUInt32BE(0))
    else if (this.#type === FrameType.WndInc) this.#handler.wndInc(this.#streamId, body.readUInt32BE(0) & MAX_WINDOW)
    else this.#handler.goAway(body.readUInt32BE(0) & MAX_STREAM_ID, body.readUInt32BE(4), body.subarray(8))
  }
}
