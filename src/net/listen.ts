// Starting a listener as a promise: resolves with the bound address (port 0 becomes the real port), rejects
// with the listen error (EADDRINUSE, EACCES) instead of leaving it to an 'error' event. And how often every
// listener checks its header deadline. (src/net: socket helpers every layer may import.)
import type { AddressInfo, Server } from 'node:net'
import type { Duplex } from 'node:stream'

/**
 * How often node looks for connections past their header (and request) deadline. Node checks every
 * connectionsCheckingInterval (30 s by default), so a 10 s deadline cut at 10-40 s; a quarter of the deadline
 * (at most 1 s) keeps the cut close to what the operator set, for one timer per listener.
 */
export function checkingIntervalMs (deadlineMs: number): number {
  return Math.max(25, Math.min(1000, Math.floor(deadlineMs / 4)))
}

export function listenOn (server: Server, host: string, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      // Later errors (accept failing under descriptor exhaustion) must not crash the process.
      server.on('error', (error: Error) => process.emitWarning(`listener ${host}:${port}: ${error.message}`))
      resolve(server.address() as AddressInfo)
    })
  })
}

/**
 * After an error answer the server's side is ended, but node's HTTP sockets allow half-open: a client that
 * never ends its side (and keeps dripping bytes, which resets the idle timer) would hold the socket. It gets
 * a moment to read the answer, then the socket is destroyed.
 */
export function closeSoon (socket: Duplex): void {
  const timer = setTimeout(() => socket.destroy(), 1000)
  socket.once('close', () => clearTimeout(timer))
}
