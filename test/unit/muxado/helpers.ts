// Shared by the muxado-*.test.ts files: a loopback TCP pair with a session on each end, an in-memory socket
// whose input a test writes frame by frame and whose output it decodes, and a seeded PRNG.
import { once } from 'node:events'
import net from 'node:net'
import { Duplex } from 'node:stream'
import { FrameReader, FrameType, encodeHeader } from '../../../src/agents/ngrok/muxado/frame.js'
import { MuxSession, type MuxSessionOptions } from '../../../src/agents/ngrok/muxado/session.js'
import type { MuxError } from '../../../src/agents/ngrok/muxado/errors.js'

export interface Pair {
  readonly server: MuxSession
  readonly client: MuxSession
  readonly serverSocket: net.Socket
  readonly clientSocket: net.Socket
  close (): void
}

export async function sessionPair (serverOptions: MuxSessionOptions = {}, clientOptions: MuxSessionOptions = {}): Promise<Pair> {
  const listener = net.createServer()
  listener.listen(0, '127.0.0.1')
  await once(listener, 'listening')
  const { port } = listener.address() as net.AddressInfo
  const accepted = once(listener, 'connection')
  const clientSocket = net.connect(port, '127.0.0.1')
  const [serverSocket] = await accepted as [net.Socket]
  await once(clientSocket, 'connect')
  listener.close()
  const server = new MuxSession(serverSocket, serverOptions)
  const client = new MuxSession(clientSocket, { ...clientOptions, client: true })
  // Tests end by destroying both sessions, which fails every stream still open: expected, not a test error.
  for (const session of [server, client]) {
    session.on('stream', stream => stream.on('error', () => {}))
    const open = session.open.bind(session)
    session.open = (type, firstPayload) => open(type, firstPayload).on('error', () => {})
  }
  return {
    server, client, serverSocket, clientSocket,
    close () { server.destroy(); client.destroy() },
  }
}

/** Resolves with the session's 'close' argument. */
export function closed (session: MuxSession): Promise<MuxError | undefined> {
  if (session.closed) return Promise.resolve(session.closeError)
  return new Promise(resolve => session.once('close', resolve))
}

export interface DecodedFrame {
  readonly type: number
  readonly flags: number
  readonly id: number
  readonly payload: Buffer
  /** RST/GOAWAY error code, WNDINC increment. */
  readonly value?: number
  readonly lastId?: number
}

/** Decodes everything a session wrote (lenient about a trailing partial frame). */
export function decodeAll (bytes: Buffer): DecodedFrame[] {
  const frames: DecodedFrame[] = []
  let data: { id: number, flags: number, parts: Buffer[] } | null = null
  const reader = new FrameReader({
    dataStart: (id, flags) => { data = { id, flags, parts: [] } },
    dataChunk: (chunk) => { data?.parts.push(Buffer.from(chunk)) },
    dataEnd: () => {
      if (data !== null) frames.push({ type: FrameType.Data, flags: data.flags, id: data.id, payload: Buffer.concat(data.parts) })
      data = null
    },
    rst: (id, code) => frames.push({ type: FrameType.Rst, flags: 0, id, payload: Buffer.alloc(0), value: code }),
    wndInc: (id, increment) => frames.push({ type: FrameType.WndInc, flags: 0, id, payload: Buffer.alloc(0), value: increment }),
    goAway: (lastId, code, debug) => frames.push({ type: FrameType.GoAway, flags: 0, id: 0, payload: Buffer.from(debug), value: code, lastId }),
  }, 0xFFFFFF)
  reader.push(bytes)
  return frames
}

/** A socket in memory: feed() is what the peer sends, output() what the session wrote. */
export class MemorySocket extends Duplex {
  readonly written: Buffer[] = []
  writtenBytes = 0
  override _read (): void {}
  override _write (chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.written.push(chunk)
    this.writtenBytes += chunk.length
    callback()
  }

  feed (bytes: Buffer): void { this.push(bytes) }
  output (): DecodedFrame[] { return decodeAll(Buffer.concat(this.written)) }
}

export function frame (type: number, flags: number, id: number, payload: Buffer | number[] = []): Buffer {
  const body = Buffer.isBuffer(payload) ? payload : Buffer.from(payload)
  return Buffer.concat([encodeHeader(type, flags, id, body.length), body])
}

export function u32 (...values: number[]): Buffer {
  const buffer = Buffer.alloc(4 * values.length)
  values.forEach((value, i) => buffer.writeUInt32BE(value >>> 0, 4 * i))
  return buffer
}

/** Waits until the event loop has run everything queued (setImmediate twice: nextTicks and I/O callbacks). */
export async function settle (): Promise<void> {
  await new Promise(resolve => setImmediate(resolve))
  await new Promise(resolve => setImmediate(resolve))
}

/** mulberry32: a small seeded PRNG, so a failing fuzz case can be replayed. */
export function prng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6D2B79F5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
