// A service that answers with a body and closes the connection at once (HTTP/1.0 servers such as
// `python3 -m http.server`, or `Connection: close`) while the public client reads slower than the tunnel:
// the body's last bytes and the end of the stream reach undici in one read while its parser is paused for
// backpressure, and undici asserted (Parser.finish: assert(!this.paused)) and took the whole gateway down.
// Found by trying python's http.server behind a real ssh -R; the gateway must serve such answers whole.
import { createHash, randomBytes } from 'node:crypto'
import { connect as netConnect } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connect, fetchVia, sleep, startRawUpstream, startTestGateway, type SshClient, type TestGateway } from '../e2e/harness.js'

const BODY = randomBytes(200_000)
const BODY_SHA = createHash('sha256').update(BODY).digest('hex')

describe('a service that closes right after its answer', () => {
  let gateway: TestGateway
  let upstream: Awaited<ReturnType<typeof startRawUpstream>>
  let client: SshClient

  beforeAll(async () => {
    gateway = await startTestGateway()
    upstream = await startRawUpstream((socket, head) => {
      if (head.startsWith('GET /small')) return void socket.end('HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok')
      // One write of the whole answer, then FIN: as an HTTP/1.0 server does.
      socket.end(Buffer.concat([Buffer.from(`HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${BODY.length}\r\n\r\n`), BODY]))
    })
    client = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`closer:80:localhost:${upstream.port}`], command: 'http' })
    await client.urls()
  })
  afterAll(async () => {
    await client.kill('SIGKILL')
    await upstream.close()
    await gateway.stop()
  })

  /** GETs through the gateway on a raw socket that reads nothing for a while (backpressure), then all of it. */
  function slowGet (): Promise<{ head: string, sha: string, bytes: number }> {
    return new Promise((resolve, reject) => {
      const socket = netConnect(gateway.httpPort, '127.0.0.1')
      const chunks: Buffer[] = []
      socket.pause()
      socket.on('error', reject)
      socket.write('GET /big HTTP/1.1\r\nHost: closer.localhost\r\nConnection: close\r\n\r\n')
      setTimeout(() => socket.resume(), 300)
      socket.on('data', (chunk: Buffer) => chunks.push(chunk))
      socket.once('end', () => {
        const all = Buffer.concat(chunks)
        const split = all.indexOf('\r\n\r\n')
        const body = all.subarray(split + 4)
        resolve({ head: all.subarray(0, split).toString('latin1'), sha: createHash('sha256').update(body).digest('hex'), bytes: body.length })
      })
    })
  }

  it('serves the whole body to slow clients, and the gateway stays up', async () => {
    for (let i = 0; i < 10; i++) {
      const got = await slowGet()
      expect(got.head).toMatch(/^HTTP\/1\.1 200 /)
      expect({ bytes: got.bytes, sha: got.sha }).toEqual({ bytes: BODY.length, sha: BODY_SHA })
    }
    await sleep(50)
    expect((await fetchVia(gateway, 'http://closer.localhost/small')).body).toBe('ok')
  })
})
