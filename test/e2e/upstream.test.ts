// How the edge speaks to the service behind the tunnel, with each real SSH client: TLS (unverified, and
// verified against CAs sent on stdin), HTTP/2 by prior knowledge and by ALPN, and PROXY protocol headers
// in front of tcp streams.
import { createServer as createH2Server, createSecureServer as createH2SecureServer } from 'node:http2'
import { createServer as createHttpsServer } from 'node:https'
import { createServer as createNetServer, createConnection, type AddressInfo, type Server } from 'node:net'
import { join } from 'node:path'
import { randomInt } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CertStore } from '../../src/certs/cert-store.js'
import { CLIENTS, connect, fetchVia, type SshClient, startTestGateway, type TestGateway } from './harness.js'

async function listen (server: Server | import('node:http2').Http2Server | import('node:https').Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return (server.address() as AddressInfo).port
}

describe.each(CLIENTS)('upstream protocols with %s', (kind) => {
  let gateway: TestGateway
  let own: CertStore
  const servers: { close: () => void }[] = []
  const clients: SshClient[] = []
  const open = (forward: string, command: string, stdin?: string): SshClient => {
    const client = connect({ kind, port: gateway.sshPort, key: gateway.key('alice', kind), forwards: [forward], command })
    if (stdin !== undefined) client.proc.stdin!.end(stdin)
    clients.push(client)
    return client
  }

  beforeAll(async () => {
    // TCP ports below Linux's ephemeral range (32768+), where upstreams listening on port 0 land.
    gateway = await startTestGateway({ flags: { tcpPorts: `${28_500 + randomInt(2_000)}-${31_999}` } })
    own = new CertStore({ dataDir: join(gateway.tmp, 'service-ca') })
  })
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.kill('SIGKILL')))
    for (const server of servers) server.close()
    await gateway.stop()
  })

  async function httpsService (): Promise<number> {
    const cert = own.issue('localhost')
    const server = createHttpsServer({ key: cert.keyPem, cert: cert.certPem }, (req, res) => {
      res.end(JSON.stringify({ encrypted: (req.socket as import('node:tls').TLSSocket).encrypted === true, servername: (req.socket as unknown as { servername?: string }).servername }))
    })
    servers.push(server)
    return listen(server)
  }

  it('--upstream-tls speaks TLS to the service without checking its certificate', async () => {
    const port = await httpsService()
    const client = open(`utls-${kind}:80:localhost:${port}`, 'http --upstream-tls')
    const [url] = await client.urls()
    const res = await fetchVia(gateway, `${url}/`)
    expect(res.status).toBe(200)
    expect(JSON.parse(res.body)).toEqual({ encrypted: true, servername: 'localhost' })
  })

  it('--upstream-tls-verify checks against CAs sent on stdin, and refuses others with PH_3009', async () => {
    const port = await httpsService()
    const good = open(`uverify-${kind}:80:localhost:${port}`, 'http --upstream-tls --upstream-tls-verify --upstream-tls-verify-cas -', own.caPem)
    const [goodUrl] = await good.urls()
    expect((await fetchVia(gateway, `${goodUrl}/`)).status).toBe(200)

    const wrong = open(`uwrong-${kind}:80:localhost:${port}`, 'http --upstream-tls --upstream-tls-verify --upstream-tls-verify-cas -', gateway.caPem)
    const [wrongUrl] = await wrong.urls()
    const res = await fetchVia(gateway, `${wrongUrl}/`)
    expect(res.status).toBe(502)
    expect(res.headers['porthole-error-code']).toBe('PH_3009')

    const garbage = open(`ugarbage-${kind}:80:localhost:${port}`, 'http --upstream-tls --upstream-tls-verify --upstream-tls-verify-cas -', 'not a certificate\n')
    await garbage.waitFor(/PH_1002: bad value for --upstream-tls-verify-cas - \(stdin: no PEM certificate\)/)
  })

  it('--upstream-protocol http2 speaks HTTP/2 with prior knowledge', async () => {
    const server = createH2Server((req, res) => res.end(`h2c ${req.httpVersion} ${req.headers[':path']}`))
    servers.push(server)
    const port = await listen(server)
    const client = open(`uh2c-${kind}:80:localhost:${port}`, 'http --upstream-protocol http2')
    const [url] = await client.urls()
    const res = await fetchVia(gateway, `${url}/two`)
    expect(res.body).toBe('h2c 2.0 /two')
  })

  it('--upstream-tls --upstream-protocol http2 negotiates HTTP/2 by ALPN', async () => {
    const cert = own.issue('localhost')
    const server = createH2SecureServer({ key: cert.keyPem, cert: cert.certPem }, (req, res) => res.end(`h2 ${req.httpVersion}`))
    servers.push(server)
    const port = await listen(server)
    const client = open(`uh2-${kind}:80:localhost:${port}`, 'http --upstream-tls --upstream-protocol http2')
    const [url] = await client.urls()
    expect((await fetchVia(gateway, `${url}/`)).body).toBe('h2 2.0')
  })

  it.each([1, 2] as const)('--proxy-proto %i tells a tcp service who the client is', async (version) => {
    const received: Buffer[] = []
    const server = createNetServer((socket) => {
      socket.on('data', (chunk) => {
        received.push(chunk)
        if (Buffer.concat(received).includes('payload')) socket.end('ok')
      })
    })
    servers.push(server)
    const port = await listen(server)
    const client = open(`0:localhost:${port}`, `tcp --proxy-proto ${version}`)
    const publicPort = Number((await client.waitFor(/Forwarding\s+tcp:\/\/localhost:(\d+)/))[1])
    const socket = createConnection({ host: '127.0.0.1', port: publicPort })
    const localPort = await new Promise<number>((resolve) => socket.once('connect', () => resolve(socket.localPort!)))
    socket.write('payload')
    socket.resume() // read the reply, so the end of the stream is seen
    await new Promise((resolve) => socket.once('close', resolve))
    const data = Buffer.concat(received)
    if (version === 1) {
      expect(data.toString()).toMatch(new RegExp(`^PROXY TCP4 127\\.0\\.0\\.1 127\\.0\\.0\\.1 ${localPort} ${publicPort}\\r\\n`))
    } else {
      expect(data.subarray(0, 12).toString('hex')).toBe('0d0a0d0a000d0a515549540a')
      expect(data[12]).toBe(0x21)
      expect(data[13]).toBe(0x11)
      expect(data.readUInt16BE(14)).toBe(12)
      expect([...data.subarray(16, 24)]).toEqual([127, 0, 0, 1, 127, 0, 0, 1])
      expect(data.readUInt16BE(24)).toBe(localPort)
      expect(data.readUInt16BE(26)).toBe(publicPort)
    }
  })
})
