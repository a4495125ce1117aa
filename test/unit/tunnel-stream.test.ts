// socketDestroy (agents/ssh/tunnel-stream.ts) on a stand-in for ssh2's Channel, whose destroy() is end() then
// close(): the channel's own side is ended once (CHANNEL_EOF) and closed once (CHANNEL_CLOSE), never ended again
// once it has ended, and destroy(error) behaves as net.Socket's.
import { Duplex } from 'node:stream'
import type { ServerChannel } from 'ssh2'
import { describe, expect, it } from 'vitest'
import { socketDestroy } from '../../src/agents/ssh/tunnel-stream.js'

class StandIn extends Duplex {
  ends = 0
  closes = 0
  override _read (): void {}
  override _write (_chunk: unknown, _encoding: string, done: () => void): void { done() }
  override end (...args: unknown[]): this {
    this.ends++
    return super.end(...(args as [])) as this
  }

  close (): void { this.closes++ }
  // ssh2's Channel.destroy (lib/Channel.js)
  override destroy (_error?: Error): this {
    this.end()
    this.close()
    return this
  }
}

const wrapped = (): StandIn => socketDestroy(new StandIn() as unknown as ServerChannel) as unknown as StandIn

describe('socketDestroy', () => {
  it('ends a channel still open, then closes it', () => {
    const channel = wrapped()
    channel.destroy()
    expect(channel.ends).toBe(1)
    expect(channel.closes).toBe(1)
    expect(channel.destroyed).toBe(true)
  })

  it('does not end a channel again that has ended', async () => {
    const channel = wrapped()
    channel.end()
    await new Promise((resolve) => channel.once('finish', resolve))
    channel.destroy()
    expect(channel.ends).toBe(1)
    expect(channel.closes).toBe(1)
    expect(channel.destroyed).toBe(true)
  })

  it('emits the error it is destroyed with when someone listens, as net.Socket does', async () => {
    const channel = wrapped()
    const failed = new Promise<Error>((resolve) => channel.once('error', resolve))
    channel.destroy(new Error('reset'))
    expect((await failed).message).toBe('reset')
  })
})
