// muxado's error codes and the one error class the multiplexer raises. The codes travel on the wire (RST and
// GOAWAY payloads), so their numbers are fixed by ngrok-rust muxado/src/errors.rs; the names are muxado's.
// A failed stream also carries `code: 'ECONNRESET'`, so code written for net.Socket (undici, pipeline)
// treats a reset or a vanished session like a TCP reset rather than a clean end.

export const MuxCode = {
  None: 0x00,
  Protocol: 0x01,
  Internal: 0x02,
  FlowControl: 0x03,
  StreamClosed: 0x04,
  StreamRefused: 0x05,
  StreamCancelled: 0x06,
  StreamReset: 0x07,
  FrameSize: 0x08,
  AcceptQueueFull: 0x09,
  EnhanceYourCalm: 0x0A,
  RemoteGoneAway: 0x0B,
  StreamsExhausted: 0x0C,
  WriteTimeout: 0x0D,
  SessionClosed: 0x0E,
  PeerEOF: 0x0F,
} as const

export type MuxCodeName = keyof typeof MuxCode

const NAMES: readonly string[] = [
  'None', 'ProtocolError', 'InternalError', 'FlowControlError', 'StreamClosed', 'StreamRefused',
  'StreamCancelled', 'StreamReset', 'FrameSizeError', 'AcceptQueueFull', 'EnhanceYourCalm', 'RemoteGoneAway',
  'StreamsExhausted', 'WriteTimeout', 'SessionClosed', 'PeerEOF',
]

/** muxado's name for a wire error code ('ProtocolError', 'StreamReset', ...; 'Unknown(0x..)' otherwise). */
export function muxCodeName (code: number): string {
  return NAMES[code] ?? `Unknown(0x${(code >>> 0).toString(16)})`
}

export interface MuxErrorOptions {
  /** 'ECONNRESET' for errors that fail a stream the way a TCP reset fails a socket. */
  readonly code?: string
  readonly cause?: unknown
}

/** An error of the multiplexer: `muxCode` is the muxado wire code, the message names it. */
export class MuxError extends Error {
  readonly muxCode: number
  readonly code: string | undefined

  constructor (muxCode: number, detail: string, options: MuxErrorOptions = {}) {
    super(`muxado: ${muxCodeName(muxCode)}: ${detail}`, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'MuxError'
    this.muxCode = muxCode
    this.code = options.code
  }
}

/** The error a stream fails with when it is reset or its session goes: ECONNRESET plus the muxado code. */
export function streamResetError (muxCode: number, detail: string, cause?: unknown): MuxError {
  return new MuxError(muxCode, detail, { code: 'ECONNRESET', cause })
}
