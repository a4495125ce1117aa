// Cancelled requests must give back their upstream stream (issue 9 item 4). A client that resets an HTTP/2
// stream (RST_STREAM CANCEL, what every closed browser tab does) or drops its HTTP/1.1 socket, at any moment
// (waiting for a pool connection, uploading, waiting for headers, mid-body, during an upgrade), must abort
// the undici request, so the pool connection and its SSH forwarded-tcpip channel are released. Before the
// fix an h2 cancel left the request paused on its pool connection forever: 128 of them wedged the endpoint.
import { constants as h2 } from 'node:http2'
import { connect as netConnect, type Socket } from 'node:net'
import type { Pool } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connect, eventually, fetchVia, h2Session, h2Status, sleep, startTestGateway, startUpstream, type SshClient, type TestGateway } from '../e2e/harness.js'

const CANCELS = 1000
const BATCH = 100
const NAME = 'cancel.localhost'

/** Deterministic pseudo-random numbers, so a failing mix can be replayed. */
function random (seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0
    return state / 2 ** 32
  }
}

describe('cancelled requests release their upstream stream', () => {
  let gateway: TestGateway
  let upstream: Awaited<ReturnType<typeof startUpstream>>
  let client: SshClient
  let host: string

  beforeAll(async () => {
    // The usual path's pool (undici): the fast path (on by default) gives a dropped client's stream back itself
    // (test/e2e/fast-h1.test.ts, a client leaving mid-response).
    gateway = await startTestGateway({ flags: { fastH1: false } })
    upstream = await startUpstream((req, res) => {
      const url = new URL(req.url ?? '/', 'http://upstream')
      if (url.pathname === '/slow') {
        // Headers only after a while (the client cancels before they come).
        const timer = setTimeout(() => res.end('late'), Number(url.searchParams.get('ms') ?? 500))
        res.once('close', () => clearTimeout(timer))
      } else if (url.pathname === '/stream') {
        // A body that keeps coming (the client cancels mid-body).
        res.writeHead(200, { 'content-type': 'application/octet-stream' })
        const chunk = Buffer.alloc(4096, 120)
        const timer = setInterval(() => res.write(chunk), 5)
        res.once('close', () => clearInterval(timer))
      } else if (url.pathname === '/upload') {
        // Answers once the whole body is in (the client cancels mid-upload).
        req.resume()
        req.once('end', () => res.end('got it'))
      } else {
        res.end('ok')
      }
    })
    // Upgrades answered late, then a stream that never ends.
    upstream.server.on('upgrade', (_req, socket: Socket) => {
      socket.on('error', () => {})
      const timer = setTimeout(() => {
        socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n')
        const ticker = setInterval(() => socket.write('tick'), 20)
        socket.once('close', () => clearInterval(ticker))
      }, 30)
      socket.once('close', () => clearTimeout(timer))
    })
    client = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`cancel:80:localhost:${upstream.port}`], command: 'http' })
    const [url] = await client.urls()
    host = new URL(url!).host
  })
  afterAll(async () => {
    await client.kill('SIGKILL')
    await upstream.close()
    await gateway.stop()
  })

  const pool = (): { stats: Pool['stats'] } => {
    const endpoint = gateway.registry.endpoints().find((e) => e.host === NAME)!
    return { stats: gateway.edge.poolStats(endpoint.id)! }
  }
  const openStreams = (): number => gateway.ssh.sessions().reduce((sum, s) => sum + s.openStreams, 0)

  /** One HTTP/2 request, reset with RST_STREAM(CANCEL) after `delay` ms. */
  function h2Cancel (session: ReturnType<typeof h2Session>, path: string, delay: number, upload: boolean, authority = NAME): Promise<void> {
    return new Promise((resolve) => {
      const stream = session.request({ ':method': upload ? 'POST' : 'GET', ':path': path, ':authority': authority }, { endStream: !upload })
      stream.on('error', () => {})
      stream.on('data', () => {})
      if (upload) stream.write(Buffer.alloc(16 * 1024, 97))
      setTimeout(() => {
        stream.close(h2.NGHTTP2_CANCEL)
        resolve()
      }, delay)
    })
  }

  /** One HTTP/1.1 request (or upgrade) on a raw socket, destroyed after `delay` ms. */
  function h1Cancel (head: string, delay: number, body?: Buffer): Promise<void> {
    return new Promise((resolve) => {
      const socket = netConnect(gateway.httpPort, '127.0.0.1')
      socket.on('error', () => {})
      socket.on('data', () => {})
      socket.write(head)
      if (body) socket.write(body)
      setTimeout(() => {
        socket.destroy()
        resolve()
      }, delay)
    })
  }

  it(`${CANCELS} requests cancelled at random moments (h2 RST_STREAM, h1 disconnects, upgrades), then a 200`, async () => {
    const next = random(9)
    const sessions = Array.from({ length: 4 }, () => h2Session(gateway, NAME))
    for (let done = 0; done < CANCELS; done += BATCH) {
      const batch: Promise<void>[] = []
      for (let i = 0; i < BATCH; i++) {
        const delay = Math.floor(next() * 120)
        const wait = 20 + Math.floor(next() * 200)
        const path = ['/slow?ms=' + wait, '/stream', '/upload', '/ws'][Math.floor(next() * 4)]!
        if (next() < 0.5 && path !== '/ws') {
          batch.push(h2Cancel(sessions[i % sessions.length]!, path, delay, path === '/upload'))
        } else if (path === '/ws') {
          batch.push(h1Cancel(`GET /ws HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`, delay))
        } else if (path === '/upload') {
          batch.push(h1Cancel(`POST /upload HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 1000000\r\n\r\n`, delay, Buffer.alloc(16 * 1024, 97)))
        } else {
          batch.push(h1Cancel(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\n\r\n`, delay))
        }
      }
      await Promise.all(batch)
    }
    for (const session of sessions) session.close()

    // Every request is gone from the pool, and no tunnel stream is open beyond the pool's idle keep-alive ones
    // (an upgraded stream leaves the pool: one left open would show here).
    await eventually(() => {
      const stats = pool().stats
      expect({ running: stats.running, pending: stats.pending, queued: stats.queued }).toEqual({ running: 0, pending: 0, queued: 0 })
      expect(openStreams()).toBe(stats.connected)
      return true
    }, 15_000)

    const plain = await fetchVia(gateway, `http://${host}/ok`)
    expect(plain.status).toBe(200)
    expect(plain.body).toBe('ok')
    const session = h2Session(gateway, NAME)
    try {
      expect(await h2Status(session, NAME, '/ok')).toBe(200)
    } finally {
      session.close()
    }
  })

  it('requests cancelled while queued for a pool connection (upgrades, h1, h2) leave nothing open', async () => {
    // A second endpoint whose 128 pool connections are all busy: what comes next waits in the pool's queue,
    // and its client leaves before undici ever starts it.
    const other = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`cancel-busy:80:localhost:${upstream.port}`], command: 'http' })
    try {
      const [url] = await other.urls()
      const busyHost = new URL(url!).host
      const busyPool = (): { stats: Pool['stats'] } => ({ stats: gateway.edge.poolStats(gateway.registry.endpoints().find((e) => e.host === 'cancel-busy.localhost')!.id)! })
      const holders = Array.from({ length: 128 }, () => fetchVia(gateway, `http://${busyHost}/slow?ms=1500`))
      await eventually(() => busyPool().stats.running === 128)
      const session = h2Session(gateway, 'cancel-busy.localhost')
      const sockets: Socket[] = []
      const streams: ReturnType<typeof session.request>[] = []
      for (let i = 0; i < 20; i++) {
        for (const head of [`GET /ws HTTP/1.1\r\nHost: ${busyHost}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`, `GET /stream HTTP/1.1\r\nHost: ${busyHost}\r\n\r\n`]) {
          const socket = netConnect(gateway.httpPort, '127.0.0.1')
          socket.on('error', () => {})
          socket.write(head)
          sockets.push(socket)
        }
        const stream = session.request({ ':path': '/stream', ':authority': 'cancel-busy.localhost' })
        stream.on('error', () => {})
        streams.push(stream)
      }
      await eventually(() => busyPool().stats.queued === 60)
      for (const socket of sockets) socket.destroy()
      for (const stream of streams) stream.close(h2.NGHTTP2_CANCEL)
      for (const held of await Promise.all(holders)) expect(held.status).toBe(200)
      session.close()
      await eventually(() => {
        const stats = busyPool().stats
        expect({ running: stats.running, pending: stats.pending, queued: stats.queued }).toEqual({ running: 0, pending: 0, queued: 0 })
        expect(openStreams()).toBe(stats.connected + pool().stats.connected)
        return true
      }, 15_000)
      expect((await fetchVia(gateway, `http://${busyHost}/ok`)).status).toBe(200)
    } finally {
      await other.kill('SIGKILL')
    }
  })
})
