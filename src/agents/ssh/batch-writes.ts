// ssh2 writes every SSH packet to the socket on its own: with TCP_NODELAY that is one system call (and
// often one TCP segment) per packet. Corking the socket until the end of the tick sends all packets
// produced in one tick (many requests' data, window adjusts) in a single writev. Per tick, not per
// event-loop turn: holding window adjusts until setImmediate measurably slowed downloads.
import type { Socket } from 'node:net'

export function batchWritesPerTick (socket: Socket): void {
  const write = socket.write
  let corked = false
  const uncork = (): void => {
    corked = false
    socket.uncork()
  }
  socket.write = function (this: Socket, ...args: Parameters<Socket['write']>) {
    if (!corked) {
      corked = true
      socket.cork()
      process.nextTick(uncork)
    }
    return write.apply(this, args)
  } as Socket['write']
}
