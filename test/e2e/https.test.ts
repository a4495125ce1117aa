// HTTPS and TLS endpoints with each real SSH client and real TLS clients (curl, openssl s_client, ws):
// certificates from the local CA that verify against ca.pem, HTTP/2 by ALPN, wss, https-only endpoints,
// SNI passthrough to an upstream that presents its own certificate, and clean refusals of strangers.
import { execFile } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { createServer as createTlsServer, connect as tlsConnect, type Server as TlsServer } from 'node:tls'
import { connect as netConnect, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { promisify } from 'node:util'
import WebSocket, { WebSocketServer } from 'ws'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { CertStore } from '../../src/certs/cert-store.js'
import { LocalCa } from '../../src/certs/local-ca.js'
import { CLIENTS, connect, startTestGateway, startUpstream, type SshClient, type TestGateway } from './harness.js'

const run = promisify(execFile)

describe.each(CLIENTS)('https and tls endpoints with %s', (kind) => {
  let gateway: TestGateway
  let upstream: Awaited<ReturnType<typeof startUpstream>>
  let caFile: string
  const clients: SshClient[] = []
  const open = (forward: string, command: string): SshClient => {
    const client = connect({ kind, port: gateway.sshPort, key: gateway.key('alice', kind), forwards: [forward], command })
    clients.push(client)
    return client
  }
  const curl = (host: string, path: string, extra: string[] = []) => run('curl', [
    '-sS', '--cacert', caFile, '--resolve', `${host}:${gateway.httpsPort}:127.0.0.1`, '-o', '-', '-w', '\n%{http_code} %{http_version}',
    ...extra, `https://${host}:${gateway.httpsPort}${path}`,
  ])

  beforeAll(async () => {
    gateway = await startTestGateway()
    caFile = join(gateway.tmp, 'ca.pem')
    writeFileSync(caFile, gateway.caPem)
    upstream = await startUpstream()
    const wss = new WebSocketServer({ server: upstream.server })
    wss.on('connection', (socket, req) => {
      socket.send(`proto ${req.headers['x-forwarded-proto']}`)
      socket.on('message', (data) => socket.send(data.toString()))
    })
  })
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.kill('SIGKILL')))
    await upstream.close()
    await gateway.stop()
  })

  it('serves https with a certificate that verifies against ca.pem, HTTP/2 when offered', async () => {
    const client = open(`secure-${kind}:443:localhost:${upstream.port}`, 'http')
    await client.waitFor(new RegExp(`Forwarding\\s+https://secure-${kind}\\.localhost:${gateway.httpsPort}`))
    const h2 = await curl(`secure-${kind}.localhost`, '/x', ['--http2'])
    const [body, status] = h2.stdout.split('\n') as [string, string]
    expect(status).toBe('200 2')
    const seen = JSON.parse(body)
    expect(seen.url).toBe('/x')
    expect(seen.headers['x-forwarded-proto']).toBe('https')
    expect(seen.headers.host).toBe(`secure-${kind}.localhost:${gateway.httpsPort}`)
    const h1 = await curl(`secure-${kind}.localhost`, '/y', ['--http1.1'])
    expect(h1.stdout.split('\n')[1]).toBe('200 1.1')
  })

  it('carries a WebSocket over wss', async () => {
    const client = open(`wss-${kind}:443:localhost:${upstream.port}`, 'http')
    await client.urls()
    const options = { ca: gateway.caPem, servername: `wss-${kind}.localhost`, headers: { host: `wss-${kind}.localhost` } }
    const ws = new WebSocket(`wss://127.0.0.1:${gateway.httpsPort}/ws`, options as WebSocket.ClientOptions)
    const messages: string[] = []
    ws.on('message', (data) => messages.push(data.toString()))
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
    ws.send('over tls')
    await new Promise((resolve) => { const check = (): void => { if (messages.length >= 2) resolve(null); else setTimeout(check, 20) }; check() })
    expect(messages).toEqual(['proto https', 'over tls'])
    ws.close()
  })

  it('--schemes https redirects plain HTTP with a 308', async () => {
    const client = open(`only-${kind}:80:localhost:${upstream.port}`, 'http --schemes https')
    const line = await client.waitFor(/Forwarding\s+(https:\/\/\S+)/)
    expect(client.output).not.toMatch(/Forwarding\s+http:\/\//)
    const res = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code} %{redirect_url}', '-H', `Host: only-${kind}.localhost`, `http://127.0.0.1:${gateway.httpPort}/p?q=1`])
    expect(res.stdout).toBe(`308 ${line[1]}/p?q=1`)
  })

  it('passes TLS through by SNI to an upstream that presents its own certificate', async () => {
    const own = new CertStore({ dataDir: join(gateway.tmp, `own-${kind}`) })
    const issued = own.issue(`pass-${kind}.localhost`)
    const tlsUpstream: TlsServer = createTlsServer({ key: issued.keyPem, cert: issued.certPem }, (socket) => socket.end('end to end\n'))
    await new Promise<void>((resolve) => tlsUpstream.listen(0, '127.0.0.1', resolve))
    const client = open(`pass-${kind}:443:localhost:${(tlsUpstream.address() as AddressInfo).port}`, 'tls')
    await client.waitFor(new RegExp(`Forwarding\\s+tls://pass-${kind}\\.localhost:${gateway.httpsPort}`))

    const sClient = await run('openssl', ['s_client', '-connect', `127.0.0.1:${gateway.httpsPort}`, '-servername', `pass-${kind}.localhost`, '-CAfile', join(gateway.tmp, `own-${kind}`, 'ca.pem'), '-verify_return_error'], { timeout: 10_000 }).catch((error: { stdout: string }) => error)
    expect(sClient.stdout).toContain('Verify return code: 0 (ok)')
    expect(sClient.stdout).toContain(`CN = pass-${kind}.localhost`)
    expect(sClient.stdout).toContain('end to end')

    // The gateway's own CA does not verify it: this certificate is the upstream's, not ours.
    const verifiedByGateway = await new Promise<boolean>((resolve) => {
      const socket = tlsConnect({ host: '127.0.0.1', port: gateway.httpsPort, servername: `pass-${kind}.localhost`, ca: gateway.caPem }, () => resolve(socket.authorized))
      socket.on('error', () => resolve(false))
    })
    expect(verifiedByGateway).toBe(false)
    tlsUpstream.close()
  })

  it('refuses a tls forward on a port other than 443', async () => {
    const client = open(`badtls-${kind}:80:localhost:${upstream.port}`, 'tls')
    await client.waitFor(/PH_1033: port 80 cannot carry a tls endpoint/)
  })

  it('closes handshakes for unbound names, without SNI, and garbage, issuing nothing', async () => {
    const issued = vi.spyOn(LocalCa.prototype, 'issue')
    const contexts = vi.spyOn(CertStore.prototype, 'contextFor')
    const unbound = await new Promise<string>((resolve) => {
      const socket = tlsConnect({ host: '127.0.0.1', port: gateway.httpsPort, servername: `nobody-${kind}.localhost`, ca: gateway.caPem }, () => resolve('connected'))
      socket.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message))
    })
    expect(unbound).toBe('ECONNRESET')
    const noSni = await new Promise<string>((resolve) => {
      const socket = tlsConnect({ host: '127.0.0.1', port: gateway.httpsPort, ca: gateway.caPem }, () => resolve('connected'))
      socket.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message))
    })
    expect(noSni).toBe('ECONNRESET')
    const garbage = await new Promise<string>((resolve) => {
      const socket = netConnect(gateway.httpsPort, '127.0.0.1', () => socket.write('GET / HTTP/1.1\r\n\r\n'))
      let data = ''
      socket.on('data', (chunk) => { data += chunk.toString() })
      socket.on('close', () => resolve(data))
      socket.on('error', () => {})
    })
    expect(garbage).toBe('')
    // No certificate was made or looked up for any of them (a stranger cannot make the CA sign names).
    expect(issued).not.toHaveBeenCalled()
    expect(contexts).not.toHaveBeenCalled()
    issued.mockRestore()
    contexts.mockRestore()
  })
})
