// The rules a peer's frames must keep, one test per rule: a broken rule ends the session with GOAWAY
// carrying muxado's code (Protocol, FrameSize, FlowControl) and a 'close' with a MuxError; a stream-level
// problem (window overrun, too many streams, backlog full) resets that stream only; frames for a stream
// that is gone are ignored. The session reads from an in-memory socket, so each frame is exact.
import { describe, expect, it } from 'vitest'
import { MuxCode, MuxError } from '../../src/agents/ngrok/muxado/errors.js'
import { DEFAULT_WINDOW, Flag, FrameType, encodeHeader } from '../../src/agents/ngrok/muxado/frame.js'
import { MuxSession, type MuxSessionOptions } from '../../src/agents/ngrok/muxado/session.js'
import type { MuxStream } from '../../src/agents/ngrok/muxado/stream.js'
import { MemorySocket, frame, settle, u32 } from './muxado/helpers.js'

const { Data, Rst, WndInc, GoAway } = FrameType

interface Harness {
  readonly socket: MemorySocket
  readonly session: MuxSession
  readonly streams: MuxStream[]
  readonly closes: Array<MuxError | undefined>
  send (...frames: Buffer[]): Promise<void>
}

function serve (options: MuxSessionOptions = {}): Harness {
  const socket = new MemorySocket()
  const session = new MuxSession(socket, options)
  const streams: MuxStream[] = []
  const closes: Array<MuxError | undefined> = []
  session.on('stream', (stream: MuxStream) => { stream.on('error', () => {}); streams.push(stream) })
  session.on('close', (error?: MuxError) => closes.push(error))
  return {
    socket, session, streams, closes,
    async send (...frames) { for (const f of frames) socket.feed(f); await settle() },
  }
}

/** A peer-opened typed stream: SYN with the 4-byte type (and a payload). */
const syn = (id: number, type = 1, payload: Buffer = Buffer.alloc(0)): Buffer =>
  frame(Data, Flag.Syn, id, Buffer.concat([u32(type), payload]))

async function expectSessionError (frames: Buffer[], muxCode: number, message?: RegExp, options?: MuxSessionOptions): Promise<Harness> {
  const h = serve(options)
  await h.send(...frames)
  expect(h.closes).toHaveLength(1)
  const error = h.closes[0]
  expect(error).toBeInstanceOf(MuxError)
  expect(error?.muxCode).toBe(muxCode)
  if (message !== undefined) expect(error?.message).toMatch(message)
  const goAways = h.socket.output().filter(f => f.type === GoAway)
  expect(goAways).toHaveLength(1)
  expect(goAways[0]?.value).toBe(muxCode)
  expect(goAways[0]?.payload.toString()).toBe(error?.message)
  expect(h.session.closed).toBe(true)
  return h
}

describe('muxado frame rules', () => {
  it('an unknown frame type is a ProtocolError', async () => {
    await expectSessionError([frame(4, 0, 3, [1, 2])], MuxCode.Protocol, /unknown frame type 4/)
  })

  it('a payload longer than maxFrameSize is a FrameSizeError, decided from the header alone', async () => {
    const header = encodeHeader(Data, Flag.Syn, 3, DEFAULT_WINDOW + 1)
    await expectSessionError([header], MuxCode.FrameSize, /length 262145/)
    await expectSessionError([encodeHeader(GoAway, 0, 0, 0xFFFFFF)], MuxCode.FrameSize)
  })

  it('RST and WNDINC must carry exactly 4 bytes; GOAWAY at least 8', async () => {
    await expectSessionError([syn(3), frame(Rst, 0, 3, [0, 0, 0, 0, 1])], MuxCode.FrameSize, /RST on stream 3 with length 5/)
    await expectSessionError([syn(3), frame(WndInc, 0, 3, [0, 0, 1])], MuxCode.FrameSize, /WNDINC on stream 3 with length 3/)
    await expectSessionError([frame(GoAway, 0, 0, [0, 0, 0, 0])], MuxCode.FrameSize, /GOAWAY with length 4/)
  })

  it('a WNDINC of 0 is a ProtocolError; one that takes the window past 2^31-1 a FlowControlError', async () => {
    await expectSessionError([syn(3), frame(WndInc, 0, 3, u32(0))], MuxCode.Protocol, /WNDINC of 0/)
    await expectSessionError([syn(3), frame(WndInc, 0, 3, u32(0x7FFFFFFF))], MuxCode.FlowControl, /past 2\^31-1/)
  })

  it('GOAWAY must be on stream 0, every other frame on a stream other than 0', async () => {
    await expectSessionError([frame(GoAway, 0, 5, u32(0, 0))], MuxCode.Protocol, /GOAWAY on stream 5/)
    await expectSessionError([frame(Data, Flag.Syn, 0, u32(1))], MuxCode.Protocol, /on stream 0/)
    await expectSessionError([frame(WndInc, 0, 0, u32(1))], MuxCode.Protocol, /on stream 0/)
  })

  it('DATA, RST or WNDINC for a stream never opened is a ProtocolError (either parity)', async () => {
    await expectSessionError([frame(Data, 0, 4, [1])], MuxCode.Protocol,
      /^muxado: ProtocolError: DATA on stream 4 with neither SYN nor an open stream$/)
    await expectSessionError([frame(Data, 0, 5, [1])], MuxCode.Protocol, /DATA on stream 5/)
    await expectSessionError([frame(Rst, 0, 7, u32(6))], MuxCode.Protocol, /RST on stream 7/)
    await expectSessionError([frame(WndInc, 0, 2, u32(6))], MuxCode.Protocol, /WNDINC on stream 2/)
  })

  it('a SYN of this side\'s parity, for an open stream, or going backwards is a ProtocolError', async () => {
    await expectSessionError([syn(4)], MuxCode.Protocol, /SYN for stream 4, whose id has this side's parity/)
    await expectSessionError([syn(3), syn(3)], MuxCode.Protocol, /SYN for stream 3, which is open/)
    await expectSessionError([syn(7), syn(5)], MuxCode.Protocol, /SYN for stream 5 after stream 7/)
    // A client session sees the server's parity the other way round.
    await expectSessionError([syn(3)], MuxCode.Protocol, /parity/, { client: true })
  })

  it('reads nothing after a session error', async () => {
    const h = await expectSessionError([frame(4, 0, 3), syn(3)], MuxCode.Protocol)
    expect(h.streams).toHaveLength(0)
  })

  it('DATA past a stream\'s window resets that stream with FlowControl; the session goes on', async () => {
    const h = serve()
    await h.send(syn(3, 1, Buffer.alloc(DEFAULT_WINDOW - 4)))
    expect(h.streams).toHaveLength(1)
    const failed = new Promise<MuxError>(resolve => h.streams[0]?.once('error', resolve))
    await h.send(frame(Data, 0, 3, [1]))
    expect((await failed).muxCode).toBe(MuxCode.FlowControl)
    expect(h.socket.output().filter(f => f.type === Rst)).toEqual([expect.objectContaining({ id: 3, value: MuxCode.FlowControl })])
    expect(h.closes).toHaveLength(0)
    // Frames for the stream that was reset are ignored, as muxado does.
    await h.send(frame(Data, 0, 3, [1, 2]), frame(WndInc, 0, 3, u32(10)), frame(Rst, 0, 3, u32(0)), frame(Data, Flag.Fin, 3))
    expect(h.closes).toHaveLength(0)
    expect(h.session.streamCount).toBe(0)
  })

  it('the window is credited back as the application reads, not on receipt', async () => {
    const h = serve()
    await h.send(syn(3, 1, Buffer.alloc(100_000)))
    const stream = h.streams[0] as MuxStream
    expect(h.socket.output().filter(f => f.type === WndInc)).toHaveLength(0)
    stream.pause()
    await h.send(frame(Data, 0, 3, Buffer.alloc(DEFAULT_WINDOW - 100_004)))
    expect(h.socket.output().filter(f => f.type === WndInc)).toHaveLength(0)
    stream.resume()
    await settle()
    const credited = h.socket.output().filter(f => f.type === WndInc).reduce((sum, f) => sum + (f.value ?? 0), 0)
    expect(credited).toBeGreaterThanOrEqual(DEFAULT_WINDOW * 7 / 8)
    await h.send(frame(Data, 0, 3, Buffer.alloc(credited)))
    expect(h.closes).toHaveLength(0)
    expect(h.socket.output().filter(f => f.type === Rst)).toHaveLength(0)
  })

  it('a SYN past maxStreams gets RST StreamsExhausted; past the type backlog RST AcceptQueueFull', async () => {
    const h = serve({ maxStreams: 2, acceptBacklog: 1 })
    await h.send(syn(3), syn(5), syn(7, 1, Buffer.from('dropped')))
    expect(h.streams.map(s => s.id)).toEqual([3, 5])
    expect(h.socket.output().filter(f => f.type === Rst)).toEqual([expect.objectContaining({ id: 7, value: MuxCode.StreamsExhausted })])
    // Frames for the refused stream are ignored.
    await h.send(frame(Data, Flag.Fin, 7, [1]))
    const backlog = serve({ acceptBacklog: 2 })
    await backlog.send(frame(Data, Flag.Syn, 3, [0]), frame(Data, Flag.Syn, 5), frame(Data, Flag.Syn, 7, [0, 0]))
    expect(backlog.socket.output().filter(f => f.type === Rst)).toEqual([expect.objectContaining({ id: 7, value: MuxCode.AcceptQueueFull })])
    expect(h.closes).toHaveLength(0)
    expect(backlog.closes).toHaveLength(0)
  })

  it('a type that arrives a byte at a time is read across frames; the rest of the frame is the stream\'s', async () => {
    const h = serve()
    await h.send(frame(Data, Flag.Syn, 3, [0]), frame(Data, 0, 3, [0, 1]))
    expect(h.streams).toHaveLength(0)
    await h.send(frame(Data, 0, 3, [2, 0x68, 0x69]), frame(Data, Flag.Fin, 3))
    expect(h.streams).toHaveLength(1)
    expect(h.streams[0]?.type).toBe(0x102)
    expect(h.streams[0]?.read()?.toString()).toBe('hi')
  })

  it('a stream that ends before its type arrived is dropped with an RST, never emitted', async () => {
    const h = serve()
    await h.send(frame(Data, Flag.Syn | Flag.Fin, 3, [0, 0]))
    expect(h.streams).toHaveLength(0)
    expect(h.session.streamCount).toBe(0)
    expect(h.socket.output().filter(f => f.type === Rst)).toEqual([expect.objectContaining({ id: 3, value: MuxCode.StreamCancelled })])
  })

  it('open() puts the type and the first payload in the SYN frame', async () => {
    const h = serve()
    h.session.open(3, Buffer.from('{"Id":"t"}')).on('error', () => {})
    const [syn] = h.socket.output()
    expect(syn).toMatchObject({ type: Data, flags: Flag.Syn, id: 2 })
    expect(syn?.payload.readUInt32BE(0)).toBe(3)
    expect(syn?.payload.subarray(4).toString()).toBe('{"Id":"t"}')
  })

  it('frames we send carry at most 256 KiB and respect the peer\'s window', async () => {
    const h = serve()
    const stream = h.session.open(3, Buffer.alloc(DEFAULT_WINDOW * 3))
    stream.on('error', () => {})
    await settle()
    const sent = () => h.socket.output().filter(f => f.type === Data && f.id === 2)
    expect(sent().reduce((sum, f) => sum + f.payload.length, 0)).toBe(DEFAULT_WINDOW)
    await h.send(frame(WndInc, 0, 2, u32(DEFAULT_WINDOW * 2)))
    expect(sent().every(f => f.payload.length <= DEFAULT_WINDOW)).toBe(true)
    expect(sent().reduce((sum, f) => sum + f.payload.length, 0)).toBe(DEFAULT_WINDOW * 3)
  })

  it('a peer\'s GOAWAY ends the session with its code and debug text, and fails open streams', async () => {
    const h = serve()
    await h.send(syn(3))
    const failed = new Promise<MuxError>(resolve => h.streams[0]?.once('error', resolve))
    await h.send(frame(GoAway, 0, 0, Buffer.concat([u32(3, MuxCode.Protocol), Buffer.from('bad')])))
    expect(h.closes[0]?.muxCode).toBe(MuxCode.Protocol)
    expect(h.closes[0]?.message).toMatch(/GOAWAY \(ProtocolError, last stream 3\): bad/)
    expect((await failed).code).toBe('ECONNRESET')
  })

  it('reads ngrok-rust\'s GOAWAY, whose length field counts the debug text only, and nothing after it', async () => {
    const h = serve()
    const debug = Buffer.from('session closing')
    const rustGoAway = Buffer.concat([encodeHeader(GoAway, 0, 0, debug.length), u32(0, MuxCode.None), debug])
    await h.send(rustGoAway)
    expect(h.closes).toHaveLength(1)
    expect(h.closes[0]?.muxCode).toBe(MuxCode.RemoteGoneAway)
    expect(h.closes[0]?.message).toMatch(/: session$/) // the 8 bytes the length left out are its last 8
    expect(h.socket.output().filter(f => f.type === GoAway)).toHaveLength(0)
  })

  it('open() past maxStreams throws StreamsExhausted without sending anything', async () => {
    const h = serve({ maxStreams: 1 })
    h.session.open(1).on('error', () => {})
    expect(() => h.session.open(1)).toThrow(/StreamsExhausted/)
    expect(h.socket.output()).toHaveLength(1)
  })

  it('coalesces tiny DATA frames: 10 000 one-byte frames are held in one buffer, in order with big ones', async () => {
    const h = serve()
    await h.send(syn(3))
    const stream = h.streams[0] as MuxStream
    const expected: Buffer[] = []
    const frames: Buffer[] = []
    for (let i = 0; i < 10_000; i++) {
      const byte = Buffer.from([i & 0xFF])
      expected.push(byte)
      frames.push(frame(Data, 0, 3, byte))
    }
    const big = Buffer.alloc(40_000, 7)
    expected.push(big, Buffer.from('end'))
    await h.send(Buffer.concat(frames))
    expect(stream.queuedBytes).toBe(10_000)
    expect(stream.queuedChunks).toBe(1)
    await h.send(frame(Data, 0, 3, big), frame(Data, Flag.Fin, 3, Buffer.from('end')))
    expect(stream.queuedChunks).toBeLessThanOrEqual(3)
    const got: Buffer[] = []
    stream.on('data', (chunk: Buffer) => got.push(chunk))
    await new Promise(resolve => stream.once('end', resolve))
    expect(Buffer.concat(got).equals(Buffer.concat(expected))).toBe(true)
  })

  it('a \'stream\' listener that throws ends the session with InternalError, not the process', async () => {
    const socket = new MemorySocket()
    const session = new MuxSession(socket)
    const closes: Array<MuxError | undefined> = []
    session.on('close', (error?: MuxError) => closes.push(error))
    session.on('stream', (stream: MuxStream) => { stream.on('error', () => {}); throw new Error('application bug') })
    socket.feed(syn(3))
    await settle()
    expect(closes.map(e => e?.muxCode)).toEqual([MuxCode.Internal])
    expect(socket.output().find(f => f.type === GoAway)?.payload.toString()).toBe('internal error')
  })

  it('a peer that provokes RSTs while not reading our output is cut off with EnhanceYourCalm', async () => {
    const socket = new MemorySocket()
    // The peer reads nothing: our writes queue up on the socket.
    socket._write = () => {}
    const session = new MuxSession(socket, { maxStreams: 1 })
    const closes: Array<MuxError | undefined> = []
    session.on('close', (error?: MuxError) => closes.push(error))
    session.on('stream', (stream: MuxStream) => stream.on('error', () => {}))
    const flood: Buffer[] = []
    for (let id = 3; id < 2 * 120_000; id += 2) flood.push(frame(Data, Flag.Syn, id, u32(1)))
    socket.feed(Buffer.concat(flood))
    await settle()
    expect(closes.map(e => e?.muxCode)).toEqual([MuxCode.EnhanceYourCalm])
    expect(socket.writableLength).toBeLessThan(2 << 20)
  })

  it('a stream the peer finished (FIN) before its GOAWAY is read whole and ends cleanly; an unfinished one fails', async () => {
    const h = serve()
    // One chunk: a reply and its FIN on stream 3, half a reply on stream 5, then GOAWAY (an Auth refusal, say).
    h.socket.feed(Buffer.concat([syn(3, 0, Buffer.from('{"Error":"no"}')), frame(Data, Flag.Fin, 3), syn(5, 0, Buffer.from('{"Err')), frame(GoAway, 0, 0, u32(5, 0))]))
    await settle()
    const [finished, unfinished] = h.streams
    const text = await new Promise<string>((resolve, reject) => {
      let body = ''
      finished!.on('data', (chunk: Buffer) => { body += chunk.toString() })
      finished!.once('end', () => resolve(body))
      finished!.once('error', reject)
    })
    expect(text).toBe('{"Error":"no"}')
    expect(unfinished!.destroyed).toBe(true)
    expect(unfinished!.errored).toMatchObject({ code: 'ECONNRESET' })
  })
})
