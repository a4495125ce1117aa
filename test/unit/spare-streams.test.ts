// An endpoint's pool keeps a few idle upstream streams for the full keep-alive and closes a burst's extra ones
// soon (spare-streams.ts): after `core + 3` concurrent requests, `core` connections stay open, the pool still
// answers, and a new burst opens spare streams again. A real HTTP server counts the open connections.
import { afterEach, describe, expect, it } from 'vitest'
import { createServer, type Server } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { Pool, request } from 'undici'
import { connect } from 'node:net'
import { spareStreamsClose, CORE_STREAMS } from '../../src/edge/spare-streams.js'
import { Upstream } from '../../src/edge/upstream.js'
import type { Endpoint } from '../../src/core/endpoint.js'

const CORE = 2
let server: Server | null = null
let pool: Pool | null = null

afterEach(async () => {
  await pool?.destroy()
  await new Promise((resolve) => server ? server.close(resolve) : resolve(undefined))
  pool = null
  server = null
})

/** An HTTP server that answers after `delayMs` (so that requests overlap), counting its open connections. */
async function slowServer (delayMs: number): Promise<{ port: number, open: Set<Socket> }> {
  const open = new Set<Socket>()
  server = createServer((req, res) => { setTimeout(() => res.end(`ok ${req.url}`), delayMs) })
  server.keepAliveTimeout = 60_000
  server.on('connection', (socket: Socket) => {
    open.add(socket)
    socket.once('close', () => open.delete(socket))
  })
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve))
  return { port: (server.address() as AddressInfo).port, open }
}

async function burst (port: number, n: number): Promise<string[]> {
  return Promise.all(Array.from({ length: n }, async (_, i) => {
    const res = await request(`http://127.0.0.1:${port}/${i}`, { dispatcher: pool! })
    return res.body.text()
  }))
}

async function until (check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 25))
  expect(check()).toBe(true)
}

describe('spareStreamsClose', () => {
  it('keeps the first `core` streams after a burst and closes the others once idle', async () => {
    const { port, open } = await slowServer(100)
    pool = new Pool(`http://127.0.0.1:${port}`, { connections: 10, keepAliveTimeout: 30_000, factory: spareStreamsClose(CORE, 50) })
    const bodies = await burst(port, CORE + 3)
    expect(bodies).toEqual(Array.from({ length: CORE + 3 }, (_, i) => `ok /${i}`))
    expect(open.size).toBe(CORE + 3)
    await until(() => open.size === CORE)
    // Still answering, on the kept streams; a new burst opens spare streams again, which close in turn.
    expect(await burst(port, 1)).toEqual(['ok /0'])
    expect(open.size).toBe(CORE)
    await burst(port, CORE + 2)
    await until(() => open.size === CORE)
  })

  it('counts a client whose connect failed as gone (the pool drops it)', async () => {
    const { port, open } = await slowServer(0)
    let failures = 1
    const factory = spareStreamsClose(1, 50)
    pool = new Pool(`http://127.0.0.1:${port}`, {
      connections: 4,
      keepAliveTimeout: 30_000,
      factory,
      connect: (options, callback) => {
        if (failures-- > 0) { callback(new Error('refused'), null); return }
        import('node:net').then(({ connect }) => {
          const socket = connect(Number(options.port), options.hostname)
          socket.once('connect', () => callback(null, socket as never)).once('error', (error) => callback(error, null))
        }, (error: Error) => callback(error, null))
      },
    })
    await expect(burst(port, 1)).rejects.toThrow('refused')
    expect(await burst(port, 1)).toEqual(['ok /0'])
    // The client made after the failure is the one core client: its stream stays.
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(open.size).toBe(1)
  })

  it('is what an endpoint\'s upstream pool uses (CORE_STREAMS streams stay after a burst)', async () => {
    const { port, open } = await slowServer(100)
    const endpoint = {
      spec: { proto: 'http', schemes: { http: true, https: false }, upstream: { tls: false, verify: false, cas: null, protocol: 'http1' }, inspect: false },
      dial: () => new Promise((resolve, reject) => {
        const socket = connect(port, '127.0.0.1')
        socket.once('connect', () => resolve(socket)).once('error', reject)
      }),
    } as unknown as Endpoint
    const upstream = new Upstream(endpoint, { needsBody: false } as never, { connections: 64, timeoutMs: 5_000, maxResponseHeaderSize: 16 * 1024 })
    try {
      const n = CORE_STREAMS + 4
      const bodies = await Promise.all(Array.from({ length: n }, async (_, i) => (await request(`http://upstream.invalid/${i}`, { dispatcher: upstream.pool })).body.text()))
      expect(bodies).toEqual(Array.from({ length: n }, (_, i) => `ok /${i}`))
      expect(open.size).toBe(n)
      await until(() => open.size === CORE_STREAMS)
    } finally {
      await upstream.close()
    }
  })
})
