// A hostile or broken ngrok agent on the agent listener, spoken to with Porthole's own muxado client (the real SDK
// cannot be made to misbehave): RPCs before Auth, malformed and oversized messages, unknown stream types, agents
// that never log in or stop echoing the gateway's heartbeats, garbage instead of muxado. Each gets a clear error or
// is dropped, and the gateway goes on serving everyone else.
import { randomBytes } from 'node:crypto'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import { afterEach, describe, expect, it } from 'vitest'
import { HEARTBEAT_TYPE, MuxSession, type MuxStream } from '../../src/agents/ngrok/muxado/index.js'
import { StreamType } from '../../src/agents/ngrok/messages.js'
import { eventually, fetchVia, ngrokSession, startTestGateway, startUpstream, type TestGateway } from '../e2e/harness.js'

interface RawAgent {
  readonly socket: TLSSocket
  readonly mux: MuxSession
  readonly closed: Promise<void>
  /** One RPC: the request on a new typed stream, the whole reply (the gateway ends the stream after it); then the
   *  stream is ended as ngrok-rust does, unless `holdOpen`. */
  rpc (type: number, body: string | Buffer, holdOpen?: boolean): Promise<string>
}

async function rawAgent (gateway: TestGateway): Promise<RawAgent> {
  const socket = tlsConnect({ host: '127.0.0.1', port: gateway.agentPort!, servername: 'localhost', ca: gateway.caPem })
  await new Promise<void>((resolve, reject) => { socket.once('secureConnect', resolve); socket.once('error', reject) })
  const mux = new MuxSession(socket, { client: true })
  const closed = new Promise<void>((resolve) => mux.once('close', () => resolve()))
  return {
    socket,
    mux,
    closed,
    rpc: (type, body, holdOpen = false) => new Promise((resolve, reject) => {
      const stream = mux.open(type, Buffer.from(body))
      let reply = ''
      stream.on('data', (chunk: Buffer) => { reply += chunk.toString('utf8') })
      stream.on('end', () => {
        if (!holdOpen) stream.end()
        resolve(reply)
      })
      stream.on('error', reject)
    }),
  }
}

const AUTH = JSON.stringify({ Version: ['3', '2'], ClientId: '', Extra: { OS: 'linux', Arch: 'x86_64', AuthToken: 'x', Version: '1.7.0', ClientType: 'hostile-test' } })

/** Echoes the gateway's heartbeats, as a live agent does. */
function echoHeartbeats (mux: MuxSession): void {
  mux.on('stream', (stream: MuxStream, type: number) => {
    if (type !== HEARTBEAT_TYPE) return
    stream.on('data', (chunk: Buffer) => stream.write(chunk))
    stream.on('error', () => {})
  })
}

describe('ngrok agent listener under hostile agents', () => {
  let gateway: TestGateway | undefined
  afterEach(async () => {
    await gateway?.stop()
    gateway = undefined
  })

  it('RPCs before Auth, malformed JSON and unknown options get one-line errors; the session stays usable', async () => {
    gateway = await startTestGateway()
    const agent = await rawAgent(gateway)
    echoHeartbeats(agent.mux)
    expect(JSON.parse(await agent.rpc(StreamType.Bind, '{"Id":"","Proto":"http","Opts":{}}'))).toEqual({ Error: expect.stringMatching(/^PH_1081: the ngrok agent sent Bind before a successful Auth/) })
    const authed = JSON.parse(await agent.rpc(StreamType.Auth, AUTH)) as { Version: string, ClientId: string, Error: string }
    expect(authed).toMatchObject({ Version: '3', Error: '' })
    expect(authed.ClientId).toMatch(/^[0-9a-f]{32}$/)
    expect(JSON.parse(await agent.rpc(StreamType.Auth, AUTH))).toEqual({ Error: expect.stringMatching(/^PH_1070: .*second Auth/) })
    expect(JSON.parse(await agent.rpc(StreamType.Bind, '{"Id":"","Proto":"http","Opts":{"Frobnicate":{"x":1}}}'))).toEqual({ Error: expect.stringMatching(/^PH_1074: unknown ngrok option .*Frobnicate/) })
    expect(JSON.parse(await agent.rpc(StreamType.Bind, '{"Id":"","Proto":"gopher","Opts":{}}'))).toEqual({ Error: expect.stringMatching(/^PH_1072: .*gopher/) })
    expect(JSON.parse(await agent.rpc(StreamType.Bind, '{"Id":"' + 'x'.repeat(300) + '","Proto":"http","Opts":{}}'))).toEqual({ Error: expect.stringMatching(/^PH_1070/) })
    expect(JSON.parse(await agent.rpc(StreamType.Bind, '{"Id": [1, 2}'))).toEqual({ Error: expect.stringMatching(/^PH_1070/) })
    // Still alive: a good Bind works on the same session.
    const bound = JSON.parse(await agent.rpc(StreamType.Bind, '{"Id":"","Proto":"http","ForwardsTo":"x","Opts":{"Domain":"raw-agent"},"Extra":{}}')) as { URL: string, Error: string, Id: string }
    expect(bound).toMatchObject({ Error: '', URL: `http://raw-agent.localhost:${gateway.httpPort}` })
    expect(JSON.parse(await agent.rpc(StreamType.Unbind, JSON.stringify({ Id: bound.Id })))).toEqual({ Error: '' })
    expect(gateway.registry.lookup('raw-agent.localhost').state).toBe('offline')
    agent.socket.destroy()
  })

  it('an RPC past 1 MiB is refused without being held whole; an unknown stream type is refused, the session goes on', async () => {
    gateway = await startTestGateway()
    const agent = await rawAgent(gateway)
    echoHeartbeats(agent.mux)
    await agent.rpc(StreamType.Auth, AUTH)
    const huge = `{"Id":"","Proto":"http","Opts":{"TrafficPolicy":"${'a'.repeat(2 * 1024 * 1024)}"}}`
    expect(JSON.parse(await agent.rpc(StreamType.Bind, huge))).toEqual({ Error: expect.stringMatching(/^PH_1073/) })
    expect(JSON.parse(await agent.rpc(1234, '{}'))).toEqual({ Error: expect.stringMatching(/^PH_1071: .*stream type 1234/) })
    expect(JSON.parse(await agent.rpc(StreamType.SrvInfo, '{}'))).toEqual({ Region: 'porthole' })
    // RPC streams the agent never ends count against a small bound (8): the next one is reset, not served.
    for (let i = 0; i < 8; i++) await agent.rpc(StreamType.SrvInfo, '{}', true)
    await expect(agent.rpc(StreamType.SrvInfo, '{}')).rejects.toThrow(/reset by the peer/)
    agent.socket.destroy()
  })

  it('before Auth a stranger gets little: 64 KiB messages, two RPCs at a time, one heartbeat stream', async () => {
    gateway = await startTestGateway()
    const agent = await rawAgent(gateway)
    expect(JSON.parse(await agent.rpc(StreamType.Auth, `{"Version":["3"],"Extra":{"Metadata":"${'m'.repeat(70 * 1024)}"}}`))).toEqual({ Error: expect.stringMatching(/^PH_1073/) })
    const other = await rawAgent(gateway)
    const held = [other.rpc(StreamType.SrvInfo, '{', true), other.rpc(StreamType.SrvInfo, '{', true)]
    await expect(other.rpc(StreamType.SrvInfo, '{}')).rejects.toThrow(/reset by the peer/)
    const first = other.mux.open(HEARTBEAT_TYPE)
    first.on('error', () => {})
    const second = other.mux.open(HEARTBEAT_TYPE)
    const reset = new Promise((resolve) => second.once('error', resolve))
    second.write(randomBytes(4))
    await reset
    other.socket.destroy()
    await Promise.allSettled(held)
  })

  it('an agent that never sends Auth is dropped at the login deadline', async () => {
    gateway = await startTestGateway({ tune: { loginTimeoutMs: 300 } })
    const agent = await rawAgent(gateway)
    await agent.closed
  })

  it('an agent that sends its own heartbeats but never echoes the gateway\'s is dropped; others are served', async () => {
    gateway = await startTestGateway({ tune: { keepaliveIntervalMs: 200, keepaliveCountMax: 3 } })
    const upstream = await startUpstream((_req, res) => res.end('fine'))
    const sdk = await ngrokSession(gateway)
    try {
      const listener = await sdk.httpEndpoint().domain('still-served').listenAndForward(`http://localhost:${upstream.port}`)
      const agent = await rawAgent(gateway)
      agent.mux.on('stream', (stream: MuxStream) => { stream.resume(); stream.on('error', () => {}) }) // reads, never echoes
      const beats = agent.mux.open(HEARTBEAT_TYPE)
      beats.on('data', () => {})
      beats.on('error', () => {})
      const timer = setInterval(() => beats.write(randomBytes(4)), 50)
      try {
        await agent.rpc(StreamType.Auth, AUTH)
        await agent.closed
      } finally {
        clearInterval(timer)
      }
      expect((await fetchVia(gateway, listener.url()!)).body).toBe('fine')
    } finally {
      await sdk.close().catch(() => {})
      await upstream.close()
    }
  })

  it('garbage instead of muxado ends that connection only', async () => {
    gateway = await startTestGateway()
    const agent = await rawAgent(gateway)
    agent.socket.write(randomBytes(4096))
    await agent.closed
    const other = await rawAgent(gateway)
    echoHeartbeats(other.mux)
    expect(JSON.parse(await other.rpc(StreamType.Auth, AUTH))).toMatchObject({ Error: '' })
    other.socket.destroy()
    await eventually(() => gateway!.sessions.sessions().length === 0)
  })
})
