// Joining a public socket and a tunnel stream (tcp and tls endpoints, upgraded HTTP connections), and
// aborting a public connection so its client can tell a failure from a complete stream.
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'

/**
 * Aborts a public connection with a TCP reset, so its client sees an error (ECONNRESET) rather than a clean
 * end it would take for a complete stream. A socket without a TCP handle of its own (TLS terminated here)
 * can only be destroyed.
 */
export function reset (socket: Socket): void {
  if (socket.destroyed) return
  try {
    socket.resetAndDestroy()
  } catch {
    socket.destroy()
  }
}

/**
 * Pipes a public socket and a tunnel stream both ways, with TCP's half-close: a side that ends its writing
 * (FIN, or the agent's EOF) ends the other side's writing and the other direction goes on, so a client that
 * sends its request and shuts its write side still gets the whole answer. The public socket ends cleanly
 * only after the stream did; a stream that fails or closes before its end (the agent died) resets it.
 * Returns abort(), for when the endpoint goes: a reset, unless the stream had already ended and only the
 * rest of its answer is on its way to the client.
 */
export function splice (socket: Socket, stream: Duplex, onClose: (bytesIn: number, bytesOut: number) => void): () => void {
  let bytesIn = 0
  let bytesOut = 0
  let ended = false
  socket.allowHalfOpen = true // read at the client's FIN: keep writing what the stream still sends
  socket.on('data', (chunk: Buffer) => { bytesIn += chunk.length })
  stream.on('data', (chunk: Buffer) => { bytesOut += chunk.length })
  stream.once('end', () => { ended = true }) // pipe() ends the socket's writing after the last byte
  stream.on('error', () => reset(socket))
  socket.on('error', () => stream.destroy())
  stream.once('close', () => {
    if (!ended) return reset(socket)
    // Finished: once our FIN is out, a client that keeps its side open has nobody left to talk to.
    if (socket.writableFinished) socket.destroy()
    else socket.once('finish', () => socket.destroy())
  })
  socket.once('close', () => {
    stream.destroy()
    onClose(bytesIn, bytesOut)
  })
  socket.pipe(stream)
  stream.pipe(socket)
  return () => { if (!ended) reset(socket) }
}
