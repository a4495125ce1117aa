// Starting a listener as a promise: resolves with the bound address (port 0 becomes the real port),
// rejects with the listen error (EADDRINUSE, EACCES) instead of leaving it to an 'error' event.
import type { AddressInfo, Server } from 'node:net'

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
