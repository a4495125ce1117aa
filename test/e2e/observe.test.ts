// The observe channels (src/observe/channels.ts) that metrics and event sinks read: what a real ssh -R and the
// ngrok SDK produce, field by field: sessions starting and stopping, HTTP requests (forwarded and answered by
// the gateway itself), tcp connections with their byte counts.
import { subscribe, unsubscribe } from 'node:diagnostics_channel'
import { createServer, type AddressInfo, type Server } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { HttpRequestObserved, SessionObserved, TcpConnectionObserved } from '../../src/observe/channels.js'
import { connect, echoOnce, eventually, fetchVia, ngrokSession, startTestGateway, startUpstream, within, type SshClient, type TestGateway } from './harness.js'

describe('observe channels', () => {
  let gateway: TestGateway
  let upstream: Awaited<ReturnType<typeof startUpstream>>
  let echo: Server
  const clients: SshClient[] = []
  const seen = { http: [] as HttpRequestObserved[], tcp: [] as TcpConnectionObserved[], session: [] as SessionObserved[] }
  const onHttp = (m: unknown): void => { seen.http.push(m as HttpRequestObserved) }
  const onTcp = (m: unknown): void => { seen.tcp.push(m as TcpConnectionObserved) }
  const onSession = (m: unknown): void => { seen.session.push(m as SessionObserved) }

  beforeAll(async () => {
    subscribe('porthole:observe:http-request', onHttp)
    subscribe('porthole:observe:tcp-connection', onTcp)
    subscribe('porthole:observe:session', onSession)
    gateway = await startTestGateway()
    upstream = await startUpstream((req, res) => { res.setHeader('content-length', 5); res.end('hello') })
    echo = createServer((socket) => socket.pipe(socket))
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve))
  })
  afterAll(async () => {
    unsubscribe('porthole:observe:http-request', onHttp)
    unsubscribe('porthole:observe:tcp-connection', onTcp)
    unsubscribe('porthole:observe:session', onSession)
    await Promise.all(clients.map((c) => c.kill('SIGKILL')))
    echo.close()
    await upstream.close()
    await gateway.stop()
  })

  it('an ssh session: start, a forwarded request, a request the gateway answered, stop', async () => {
    const client = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`obs:80:localhost:${upstream.port}`], command: 'http --basic-auth ann:pw' })
    clients.push(client)
    await client.waitFor(/Forwarding\s+http:/)
    const start = await eventually(() => seen.session.find((s) => s.event === 'start' && s.session.clientType === 'ssh'))
    expect(start.session.clientVersion).toMatch(/OpenSSH/)
    const auth = `Basic ${Buffer.from('ann:pw').toString('base64')}`
    expect((await fetchVia(gateway, 'http://obs.localhost/a?b=1', { headers: { authorization: auth } })).status).toBe(200)
    expect((await fetchVia(gateway, 'http://obs.localhost/denied')).status).toBe(401)
    const ok = await eventually(() => seen.http.find((r) => r.path === '/a?b=1'))
    expect(ok).toMatchObject({ endpointHost: 'obs.localhost', transport: 'ssh', scheme: 'http', httpVersion: '1.1', method: 'GET', host: 'obs.localhost', status: 200, errorCode: undefined, clientIp: '127.0.0.1', requestBytes: 0, responseBytes: 5 })
    expect(ok.durationMs).toBeGreaterThan(0)
    const denied = await eventually(() => seen.http.find((r) => r.path === '/denied'))
    expect(denied).toMatchObject({ status: 401, errorCode: 'PH_3101' })
    await client.kill('SIGKILL')
    const stop = await eventually(() => seen.session.find((s) => s.event === 'stop' && s.session.id === start.session.id))
    expect(stop.session.clientType).toBe('ssh')
  })

  it('a tcp connection through an ngrok SDK session: bytes both ways, then the session stops', async () => {
    const session = await within(ngrokSession(gateway), 15_000, 'ngrok SDK connect')
    const listener = await within(session.tcpEndpoint().listenAndForward(`tcp://localhost:${(echo.address() as AddressInfo).port}`), 15_000, 'ngrok SDK tcp listen')
    const port = Number(new URL(listener.url()!).port)
    expect(await echoOnce(port, 'ping-pong!')).toBe(10)
    const conn = await eventually(() => seen.tcp.find((c) => c.serverPort === port))
    expect(conn).toMatchObject({ transport: 'ngrok', proto: 'tcp', endpointHost: `tcp:${port}`, clientIp: '127.0.0.1', bytesIn: 10, bytesOut: 10 })
    const start = seen.session.find((s) => s.event === 'start' && s.session.clientType === 'ngrok')
    expect(start?.session.clientVersion).toMatch(/ngrok/)
    await gateway.sessions.kill(start!.session.id)
    await eventually(() => seen.session.find((s) => s.event === 'stop' && s.session.id === start!.session.id))
    // No session.close() here: after a kill the SDK reconnects on its own (its token is still good), and its
    // close() races that reconnect (ngrok-rust marks the session closed only after closing the transport), so it
    // can leave a new session up anyway. The gateway's stop in afterAll ends whatever is left.
  })
})
