// An agent that dies mid-stream (issue 9, item 8): every public TCP stream its tunnel carried and had not
// finished must end in a reset (ECONNRESET), never in a clean end that passes a cut stream off as complete;
// a stream the agent had finished (its CHANNEL_EOF arrived) may end cleanly, with every byte. The agent here is
// ssh2's client library, so the test picks the moment its TCP connection goes: a FIN or a reset from its side,
// at a random point of one stream, with others in flight. Also: the gateway survives an agent that dies under
// HTTP requests in flight (undici once threw after the channel's 'close' and took the gateway process down).
import { createHash, randomBytes, randomInt } from 'node:crypto'
import { connect as netConnect, createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { eventually, fetchVia, readToEnding, ScriptedClient, startGatewayProcess, startRawUpstream, startTestGateway, type StreamEnding, type TestGateway } from '../e2e/harness.js'

const SIZE = 1_000_000
const payload = randomBytes(SIZE)
const sha = (bytes: Buffer): string => createHash('sha256').update(bytes).digest('hex')

/** What one public stream asks of the upstream: `part` bytes, then an end (finish) or nothing more. */
interface Plan { part: number, finish: boolean }

/** An upstream that reads a plan line (`part finish\n`) and follows it. */
async function plannedUpstream (): Promise<{ server: Server, port: number, sockets: Set<Socket> }> {
  const sockets = new Set<Socket>()
  const server = createServer((socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    let line = ''
    const onData = (chunk: Buffer): void => {
      line += chunk.toString('latin1')
      if (!line.includes('\n')) return
      socket.off('data', onData)
      const [part, finish] = line.split('\n')[0]!.split(' ').map(Number)
      if (finish === 1) socket.end(payload.subarray(0, part))
      else socket.write(payload.subarray(0, part))
    }
    socket.on('data', onData)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { server, port: (server.address() as AddressInfo).port, sockets }
}

describe('an agent dying mid-stream', () => {
  let gateway: TestGateway
  let upstream: Awaited<ReturnType<typeof plannedUpstream>>

  beforeAll(async () => {
    const base = 24_100 + Math.floor(Math.random() * 50) * 40 // below the ephemeral range (32768+)
    gateway = await startTestGateway({ flags: { tcpPorts: `${base}-${base + 39}` } })
    upstream = await plannedUpstream()
  })
  afterAll(async () => {
    for (const socket of upstream?.sockets ?? []) socket.destroy()
    upstream?.server.close()
    await gateway?.stop()
  })

  it('resets every unfinished tcp stream and ends no stream cleanly short of its bytes (200 streams, random cuts)', async () => {
    const outcomes: Array<{ plan: Plan, result: StreamEnding }> = []
    for (let round = 0; round < 50; round++) {
      const agent = await ScriptedClient.connect(gateway, upstream.port)
      const forwarded = agent.forward('localhost', 0)
      await agent.run('tcp')
      const port = await forwarded
      const socket = (agent.client as unknown as { _sock: Socket })._sock
      // Stream 0 never finishes and the agent's connection is cut once a random part of it arrived; the others
      // finish or not, at their own pace.
      const plans: Plan[] = Array.from({ length: 4 }, (_, i) => ({ part: randomInt(1, SIZE), finish: i > 0 && randomInt(0, 2) === 1 }))
      const cutAt = randomInt(1, plans[0]!.part + 1)
      const cut = (): void => { if (!socket.destroyed) (round % 2 === 0 ? socket.destroy() : socket.resetAndDestroy()) }
      const results = await Promise.all(plans.map((plan, i) => {
        const client = netConnect({ host: '127.0.0.1', port, allowHalfOpen: true })
        client.write(`${plan.part} ${plan.finish ? 1 : 0}\n`)
        return readToEnding(client, i === 0 ? (bytes) => { if (bytes >= cutAt) cut() } : undefined)
      }))
      results.forEach((result, i) => outcomes.push({ plan: plans[i]!, result }))
      agent.end()
    }
    const wrong = outcomes.filter(({ plan, result }) => (result.ending === 'end'
      ? !plan.finish || result.bytes !== plan.part || result.sha !== sha(payload.subarray(0, plan.part))
      : result.ending !== 'ECONNRESET'))
    expect(wrong).toEqual([])
    expect(outcomes.filter((o) => !o.plan.finish).every((o) => o.result.ending === 'ECONNRESET')).toBe(true)
    expect(outcomes).toHaveLength(200)
  }, 120_000)
})

describe('a gateway whose agent dies under HTTP requests in flight', () => {
  it('stays up and serves the next agent (the requests are cut, the process lives)', async () => {
    const gateway = await startGatewayProcess()
    // Answers each request's head and part of its body, then holds: every response is unfinished.
    const service = await startRawUpstream((socket) => { socket.write(`HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n${'x'.repeat(1000)}`) })
    const servicePort = service.port
    const target = gateway as unknown as TestGateway
    // A gateway that died shows as a refused login: say so, with what it printed.
    const agentTo = async (port: number): Promise<ScriptedClient> => {
      try {
        return await ScriptedClient.connect(target, port)
      } catch (error) {
        throw new Error(`the gateway is gone (exit ${gateway.proc.exitCode}, ${(error as Error).message}):\n${gateway.output().slice(-1500)}`)
      }
    }
    try {
      for (let round = 0; round < 4; round++) {
        const agent = await agentTo(servicePort)
        const forwarded = agent.forward(`midway${round}`, 80)
        await agent.run('http')
        await forwarded
        const host = `midway${round}.localhost`
        const clients = Array.from({ length: 8 }, () => {
          const socket = netConnect(gateway.httpPort, '127.0.0.1')
          socket.on('error', () => {})
          socket.write(`GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`)
          return socket
        })
        await Promise.all(clients.map((socket) => new Promise((resolve) => socket.once('data', resolve))))
        const closed = clients.map((socket) => new Promise((resolve) => socket.once('close', resolve)))
        const agentSocket = (agent.client as unknown as { _sock: Socket })._sock
        if (round % 2 === 0) agentSocket.destroy()
        else agentSocket.resetAndDestroy()
        await Promise.all(closed)
        expect(gateway.proc.exitCode, gateway.output()).toBeNull()
      }
      // The process still serves: a new agent, a complete answer.
      const ok = createServer((socket) => {
        socket.on('error', () => {})
        socket.once('data', () => socket.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok'))
      })
      await new Promise<void>((resolve) => ok.listen(0, '127.0.0.1', resolve))
      try {
        const agent = await agentTo((ok.address() as AddressInfo).port)
        const forwarded = agent.forward('alive', 80)
        await agent.run('http')
        await forwarded
        const response = await eventually(() => fetchVia(gateway, 'http://alive.localhost/'))
        expect(response.status).toBe(200)
        expect(response.body).toBe('ok')
        agent.end()
      } finally {
        ok.close()
      }
      expect(gateway.output()).not.toMatch(/TypeError|uncaught/i)
      expect(gateway.proc.exitCode).toBeNull()
    } finally {
      await service.close()
      await gateway.stop()
    }
  }, 60_000)
})
