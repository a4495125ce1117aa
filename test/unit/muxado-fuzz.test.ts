// Fuzzing a server session with hostile input: seeded random bytes, and valid frame sequences with bits
// flipped, bytes inserted, dropped or duplicated, fed in random splits. Whatever arrives, the session must
// never throw or crash the process, must either keep going within its bounds or end in exactly one 'close'
// with a MuxError, and must not let a case make it hold or write more than a bounded amount.
import { describe, expect, it } from 'vitest'
import { MuxError } from '../../src/agents/ngrok/muxado/errors.js'
import { DEFAULT_WINDOW, Flag, FrameType } from '../../src/agents/ngrok/muxado/frame.js'
import { MuxSession } from '../../src/agents/ngrok/muxado/session.js'
import type { MuxStream } from '../../src/agents/ngrok/muxado/stream.js'
import { MemorySocket, frame, prng, settle, u32 } from './muxado/helpers.js'

const CASES = 3000
const MAX_STREAMS = 8

type Random = () => number
const int = (random: Random, n: number): number => Math.floor(random() * n)
const bytes = (random: Random, n: number): Buffer => Buffer.from(Array.from({ length: n }, () => int(random, 256)))

/** A plausible conversation from a client: SYNs with types, data, window updates, FINs, RSTs. */
function validFrames (random: Random): Buffer[] {
  const frames: Buffer[] = []
  const open: number[] = []
  let nextId = 3
  const count = 1 + int(random, 12)
  for (let i = 0; i < count; i++) {
    const pick = int(random, 10)
    const id = open.length > 0 ? open[int(random, open.length)] as number : 0
    if (pick < 3 || id === 0) {
      const payload = Buffer.concat([u32(int(random, 12)), bytes(random, int(random, 40))])
      frames.push(frame(FrameType.Data, Flag.Syn | (random() < 0.1 ? Flag.Fin : 0), nextId, payload))
      open.push(nextId)
      nextId += 2 * (1 + int(random, 2))
    } else if (pick < 6) {
      const big = random() < 0.05
      frames.push(frame(FrameType.Data, random() < 0.2 ? Flag.Fin : 0, id, big ? Buffer.alloc(DEFAULT_WINDOW - int(random, 8)) : bytes(random, int(random, 64))))
    } else if (pick < 8) {
      frames.push(frame(FrameType.WndInc, 0, id, u32(1 + int(random, 1 << 20))))
    } else if (pick < 9) {
      frames.push(frame(FrameType.Rst, 0, id, u32(int(random, 16))))
    } else {
      frames.push(frame(FrameType.GoAway, 0, 0, Buffer.concat([u32(id, int(random, 16)), bytes(random, int(random, 16))])))
    }
  }
  return frames
}

function mutate (random: Random, input: Buffer): Buffer {
  let out = Buffer.from(input)
  const edits = 1 + int(random, 4)
  for (let i = 0; i < edits && out.length > 0; i++) {
    const at = int(random, out.length)
    switch (int(random, 5)) {
      case 0: out[at] = (out[at] as number) ^ (1 << int(random, 8)); break
      case 1: out[at] = int(random, 256); break
      case 2: out = Buffer.concat([out.subarray(0, at), bytes(random, 1 + int(random, 12)), out.subarray(at)]); break
      case 3: out = Buffer.concat([out.subarray(0, at), out.subarray(Math.min(out.length, at + 1 + int(random, 12)))]); break
      default: out = Buffer.concat([out.subarray(0, at), out.subarray(at, at + 16), out.subarray(at)])
    }
  }
  return out
}

interface Outcome { closes: number, error: unknown, maxQueued: number, maxStreams: number, written: number }

async function runCase (random: Random, input: Buffer): Promise<Outcome> {
  const socket = new MemorySocket()
  const session = new MuxSession(socket, { maxStreams: MAX_STREAMS, acceptBacklog: 2 })
  const outcome: Outcome = { closes: 0, error: undefined, maxQueued: 0, maxStreams: 0, written: 0 }
  session.on('close', (error?: MuxError) => { outcome.closes++; outcome.error = error })
  session.on('stream', (stream: MuxStream) => {
    stream.on('error', () => {})
    const watch = (): void => { outcome.maxQueued = Math.max(outcome.maxQueued, stream.queuedBytes + stream.readableLength) }
    switch (int(random, 4)) {
      case 0: stream.pipe(stream); break
      case 1: stream.on('data', watch); break
      case 2: stream.destroy(); break
      default: stream.end('bye'); stream.on('data', watch)
    }
  })
  let offset = 0
  while (offset < input.length) {
    const n = 1 + int(random, 64)
    socket.feed(input.subarray(offset, offset + n))
    offset += n
    outcome.maxStreams = Math.max(outcome.maxStreams, session.streamCount)
    if (random() < 0.2) await settle()
  }
  await settle()
  outcome.maxStreams = Math.max(outcome.maxStreams, session.streamCount)
  socket.feed(null as unknown as Buffer) // the peer's EOF: every case ends here
  await settle()
  outcome.written = socket.writtenBytes
  return outcome
}

describe('muxado fuzz', () => {
  it(`survives ${CASES} random and mutated inputs, ending each in one clean close`, async () => {
    const seed = Number(process.env.MUXADO_FUZZ_SEED ?? 0x5eed)
    const random = prng(seed)
    let errors = 0
    for (let i = 0; i < CASES; i++) {
      const input = i % 3 === 0 ? bytes(random, int(random, 200)) : mutate(random, Buffer.concat(validFrames(random)))
      const context = `seed ${seed}, case ${i}`
      const outcome = await runCase(random, input)
      expect(outcome.closes, context).toBe(1)
      expect(outcome.error, context).toBeInstanceOf(MuxError)
      expect(outcome.maxStreams, context).toBeLessThanOrEqual(MAX_STREAMS)
      expect(outcome.maxQueued, context).toBeLessThanOrEqual(DEFAULT_WINDOW + (64 << 10))
      // What a case makes us write: echoes (bounded by the input), RSTs, one GOAWAY, 'bye's and WNDINCs.
      expect(outcome.written, context).toBeLessThanOrEqual(3 * input.length + 64 * 1024)
      if ((outcome.error as MuxError).muxCode !== 0x0F) errors++
    }
    // Most mutated inputs break a rule before the EOF does: the rules are being reached, not just EOF.
    expect(errors).toBeGreaterThan(CASES / 3)
  })

  it('keeps going on valid conversations until the peer goes', async () => {
    const random = prng(42)
    for (let i = 0; i < 300; i++) {
      const frames = validFrames(random).filter(f => (f.readUInt8(3) >> 4) !== FrameType.GoAway)
      const outcome = await runCase(random, Buffer.concat(frames))
      expect(outcome.closes).toBe(1)
      expect((outcome.error as MuxError).muxCode, `case ${i}`).not.toBe(0x01)
    }
  })
})
