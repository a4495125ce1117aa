// The SSH socket's write batching (src/agents/ssh/batch-writes.ts): packets written in one event-loop turn
// leave together when the turn ends (one cork, one uncork), and a batch holding a window adjust leaves at the
// end of its tick instead.
import type { Socket } from 'node:net'
import { describe, expect, it } from 'vitest'
import { adjustsFlushSoon, batchWrites } from '../../src/agents/ssh/batch-writes.js'

function fakeSocket () {
  const log: string[] = []
  let corked = 0
  const socket = {
    write (chunk: string) { log.push(corked > 0 ? `held ${chunk}` : `sent ${chunk}`); return true },
    cork () { corked++ },
    uncork () { corked--; log.push('uncork') },
  }
  return { socket: socket as unknown as Socket, log, corked: () => corked }
}

const tick = (): Promise<void> => new Promise((resolve) => process.nextTick(resolve))
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

describe('batchWrites', () => {
  it('holds the packets of one event-loop turn, across ticks, and sends them when the turn ends', async () => {
    const { socket, log, corked } = fakeSocket()
    batchWrites(socket)
    socket.write('a')
    await tick()
    socket.write('b')
    await tick()
    expect(log).toEqual(['held a', 'held b'])
    await turn()
    expect(log).toEqual(['held a', 'held b', 'uncork'])
    expect(corked()).toBe(0)
    socket.write('c') // a new batch
    await turn()
    expect(log.slice(3)).toEqual(['held c', 'uncork'])
    expect(corked()).toBe(0)
  })

  it('sends a batch asked to flush soon at the end of its tick, and the next batch at the end of the turn', async () => {
    const { socket, log, corked } = fakeSocket()
    const batch = batchWrites(socket)
    socket.write('data')
    socket.write('adjust')
    batch.flushSoon()
    batch.flushSoon()
    await tick()
    expect(log).toEqual(['held data', 'held adjust', 'uncork'])
    socket.write('later')
    await tick()
    expect(log.slice(3)).toEqual(['held later'])
    await turn()
    expect(log.slice(3)).toEqual(['held later', 'uncork'])
    expect(corked()).toBe(0)
  })

  it('flushSoon with nothing held does nothing', async () => {
    const { socket, log, corked } = fakeSocket()
    batchWrites(socket).flushSoon()
    await turn()
    expect(log).toEqual([])
    expect(corked()).toBe(0)
  })

  it('adjustsFlushSoon: a window adjust is sent by ssh2 as before, then its batch flushes at the end of the tick', async () => {
    const { socket, log } = fakeSocket()
    const batch = batchWrites(socket)
    const protocol = { channelWindowAdjust (channel: number, amount: number) { socket.write(`adjust ${channel} ${amount}`) } }
    adjustsFlushSoon(protocol, batch)
    protocol.channelWindowAdjust(3, 1024)
    await tick()
    expect(log).toEqual(['held adjust 3 1024', 'uncork'])
  })
})
