// Starting a listener as a promise: resolves with the bound address (port 0 becomes the real port),
// rejects with the listen error (EADDRINUSE, EACCES) instead of leaving it to an 'error' event.
import type { AddressInfo, Server } from 'node:net'

export function listenOn (server: Server, host: string, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve(server.address() as AddressInfo)
    })
  })
}
