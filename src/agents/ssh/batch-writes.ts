// ssh2 writes every SSH packet to the socket on its own: with TCP_NODELAY that is one system call (and
// often one TCP segment) per packet. Corking the socket until the end of the event-loop turn (setImmediate)
// sends every packet produced in one turn in a single writev: under keep-alive load one poll phase reads
// many public requests (~17 per turn in the bench), and per tick each became its own write to the SSH socket
// (one write syscall per request, ~8% of gateway CPU in a perf profile of the bench's wrk phase).
// Window adjusts are the exception: the agent stops sending when its window runs out, so holding an adjust
// for the rest of a busy turn slowed downloads (measured when responses were first corked per turn); a batch
// that holds one leaves at the end of the tick instead (flushSoon).
import type { Socket } from 'node:net'

export interface WriteBatch {
  /** Sends what the current batch holds at the end of this tick rather than of this event-loop turn. */
  flushSoon (): void
}

export function batchWrites (socket: Socket): WriteBatch {
  const write = socket.write
  let corked = false
  let immediatePending = false
  let tickPending = false
  const flush = (): void => {
    if (!corked) return
    corked = false
    socket.uncork()
  }
  const onImmediate = (): void => {
    immediatePending = false
    flush()
  }
  const onTick = (): void => {
    tickPending = false
    flush()
  }
  socket.write = function (this: Socket, ...args: Parameters<Socket['write']>) {
    if (!corked) {
      corked = true
      socket.cork()
      if (!immediatePending) {
        immediatePending = true
        setImmediate(onImmediate)
      }
    }
    return write.apply(this, args)
  } as Socket['write']
  return {
    flushSoon () {
      if (!corked || tickPending) return
      tickPending = true
      process.nextTick(onTick)
    },
  }
}

interface WindowAdjusting { channelWindowAdjust (channel: number, amount: number): void }

/** Makes the window adjusts ssh2 sends on `protocol` (a Connection's `_protocol`) leave at the end of the tick. */
export function adjustsFlushSoon (protocol: WindowAdjusting, batch: WriteBatch): void {
  const adjust = protocol.channelWindowAdjust
  protocol.channelWindowAdjust = function (this: WindowAdjusting, channel: number, amount: number) {
    adjust.call(this, channel, amount)
    batch.flushSoon()
  }
}
