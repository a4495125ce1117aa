// Heartbeats: the agent's typed stream 0xFFFFFFFF is echoed byte for byte, and Liveness tells the owner
// when beats stop for toleranceMs (manual timers: nothing here waits on the wall clock).
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { afterEach, describe, expect, it } from 'vitest'
import { HEARTBEAT_TYPE, Heartbeater, Liveness, answerHeartbeats, type LivenessTimers } from '../../src/agents/ngrok/muxado/heartbeat.js'
import type { MuxStream } from '../../src/agents/ngrok/muxado/stream.js'
import { sessionPair, type Pair } from './muxado/helpers.js'

/** Timers driven by advance(): a deadline fires when the manual clock passes it. */
class ManualTimers implements LivenessTimers {
  now = 0
  #next = 1
  readonly pending = new Map<number, { at: number, callback: () => void }>()
  setTimeout (callback: () => void, ms: number): unknown {
    const handle = this.#next++
    this.pending.set(handle, { at: this.now + ms, callback })
    return handle
  }

  clearTimeout (handle: unknown): void { this.pending.delete(handle as number) }
  advance (ms: number): void {
    this.now += ms
    for (const [handle, timer] of [...this.pending]) {
      if (timer.at <= this.now) { this.pending.delete(handle); timer.callback() }
    }
  }
}

let pair: Pair | undefined
afterEach(() => { pair?.close(); pair = undefined })

/** Collects a stream's data from the start; next(n) resolves with the next n bytes. */
function collector (stream: MuxStream): (n: number) => Promise<Buffer> {
  let buffered = Buffer.alloc(0)
  stream.on('data', (chunk: Buffer) => { buffered = Buffer.concat([buffered, chunk]); stream.emit('collected') })
  return async (n) => {
    while (buffered.length < n) await once(stream, 'collected')
    const out = buffered.subarray(0, n)
    buffered = buffered.subarray(n)
    return out
  }
}

describe('heartbeats', () => {
  it('echoes the agent\'s heartbeat bytes and counts a beat per 4 bytes, however they are split', async () => {
    pair = await sessionPair()
    const timers = new ManualTimers()
    let timedOut = 0
    const liveness = new Liveness({ toleranceMs: 15_000, onTimeout: () => { timedOut++ }, timers })
    pair.server.on('stream', (stream: MuxStream, type: number) => {
      if (type === HEARTBEAT_TYPE) answerHeartbeats(stream, liveness)
    })
    liveness.start()
    const beat = randomBytes(4)
    const stream = pair.client.open(HEARTBEAT_TYPE, beat)
    const next = collector(stream)
    expect((await next(4)).equals(beat)).toBe(true)
    expect(liveness.beats).toBe(1)
    const second = randomBytes(4)
    stream.write(second.subarray(0, 2))
    stream.write(second.subarray(2))
    expect((await next(4)).equals(second)).toBe(true)
    expect(liveness.beats).toBe(2)
    timers.advance(14_999)
    expect(timedOut).toBe(0)
  })

  it('Liveness fires once when no beat arrived for the tolerance, measured from the last beat', () => {
    const timers = new ManualTimers()
    let timedOut = 0
    const liveness = new Liveness({ toleranceMs: 1000, onTimeout: () => { timedOut++ }, timers })
    liveness.start()
    timers.advance(900)
    liveness.beat()
    timers.advance(900)
    expect(timedOut).toBe(0)
    expect(timers.pending.size).toBe(1)
    timers.advance(100)
    expect(timedOut).toBe(1)
    expect(liveness.timedOut).toBe(true)
    liveness.beat()
    timers.advance(5000)
    expect(timedOut).toBe(1)
    expect(timers.pending.size).toBe(0)
  })

  it('a stopped Liveness never fires and holds no timer', () => {
    const timers = new ManualTimers()
    let timedOut = 0
    const liveness = new Liveness({ toleranceMs: 1000, onTimeout: () => { timedOut++ }, timers })
    liveness.start()
    liveness.stop()
    liveness.beat()
    timers.advance(10_000)
    expect(timedOut).toBe(0)
    expect(timers.pending.size).toBe(0)
  })

  it('beats that stop (the agent keeps its session but closes the heartbeat stream) are detected', async () => {
    pair = await sessionPair()
    const timers = new ManualTimers()
    let timedOut = 0
    const liveness = new Liveness({ toleranceMs: 15_000, onTimeout: () => { timedOut++ }, timers })
    const ended = new Promise<void>(resolve => {
      pair?.server.on('stream', (stream: MuxStream) => { answerHeartbeats(stream, liveness); stream.on('end', resolve) })
    })
    liveness.start()
    const stream = pair.client.open(HEARTBEAT_TYPE, randomBytes(4))
    await collector(stream)(4)
    stream.end()
    await ended
    timers.advance(15_000)
    expect(timedOut).toBe(1)
    expect(pair.server.closed).toBe(false)
  })

  it('Heartbeater beats towards the agent each interval, one at a time, and checks the echo', async () => {
    pair = await sessionPair()
    const timers = new ManualTimers()
    pair.client.on('stream', (stream: MuxStream, type: number) => { if (type === HEARTBEAT_TYPE) answerHeartbeats(stream) })
    const stream = pair.server.open(HEARTBEAT_TYPE)
    const latencies: number[] = []
    let beats = 0
    const echoed = (): Promise<void> => new Promise(resolve => { beats = latencies.length; stream.once('data', () => setImmediate(resolve)) })
    const heartbeater = new Heartbeater(stream, { intervalMs: 10_000, timers, now: () => timers.now, onBeat: latency => latencies.push(latency) })
    heartbeater.start()
    let next = echoed()
    timers.advance(10_000)
    await next
    expect(latencies).toEqual([0])
    next = echoed()
    timers.advance(10_000)
    await next
    expect(latencies).toHaveLength(beats + 1)
    heartbeater.stop()
    expect(timers.pending.size).toBe(0)
  })

  it('a wrong echo destroys the heartbeat stream', async () => {
    pair = await sessionPair()
    const timers = new ManualTimers()
    pair.client.on('stream', (stream: MuxStream) => { stream.on('data', () => stream.write(Buffer.from('nope'))) })
    const stream = pair.server.open(HEARTBEAT_TYPE)
    const heartbeater = new Heartbeater(stream, { intervalMs: 1000, timers })
    heartbeater.start()
    const closedStream = once(stream, 'close')
    timers.advance(1000)
    await closedStream
    expect(stream.destroyed).toBe(true)
    expect(timers.pending.size).toBe(0)
  })
})
