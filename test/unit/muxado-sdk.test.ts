// muxado against the real client: the @ngrok/ngrok SDK (pinned 1.7.0, which wraps ngrok-rust's muxado)
// dials a bare MuxSession over TLS. A stub answers just enough RPCs (Auth, Bind, Unbind) to get a listener;
// then a Proxy stream we open carries 2 MB up and 20 MB down, which exercises both flow-control directions
// against Rust's implementation, and the heartbeat stream is echoed. Session RPCs proper belong elsewhere.
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import tls from 'node:tls'
import { createRequire } from 'node:module'
import { afterAll, describe, expect, it } from 'vitest'
import { LocalCa } from '../../src/certs/local-ca.js'
import { HEARTBEAT_TYPE, Heartbeater, answerHeartbeats } from '../../src/agents/ngrok/muxado/heartbeat.js'
import { MuxSession } from '../../src/agents/ngrok/muxado/session.js'
import type { MuxStream } from '../../src/agents/ngrok/muxado/stream.js'

/** expect.poll's default gives up after 1 s; a loaded machine may need longer (the test timeout bounds it). */
const POLL = { timeout: 30_000 }

const require = createRequire(import.meta.url)
const ngrok = require('@ngrok/ngrok') as typeof import('@ngrok/ngrok')
const sdkVersion = (JSON.parse(readFileSync(require.resolve('@ngrok/ngrok/package.json'), 'utf8')) as { version: string }).version

const dir = mkdtempSync(join(tmpdir(), 'muxado-sdk-'))
afterAll(async () => { await ngrok.kill().catch(() => {}); rmSync(dir, { recursive: true, force: true }) })

const DOWN = 20 << 20
const UP = 2 << 20

/** Reads one JSON value from an RPC stream (no FIN needed), answers it and FINs. */
function answerRpc (stream: MuxStream, answer: (request: Record<string, unknown>) => unknown, seen: Array<[number, unknown]>): void {
  let text = ''
  stream.on('data', (chunk: Buffer) => {
    text += chunk.toString()
    let request: Record<string, unknown>
    try { request = JSON.parse(text) as Record<string, unknown> } catch { return }
    seen.push([stream.type, request])
    stream.end(JSON.stringify(answer(request)))
  })
}

describe('muxado with the real ngrok SDK', () => {
  it(`carries RPCs, heartbeats and a Proxy stream both ways with @ngrok/ngrok ${sdkVersion}`, async () => {
    expect(sdkVersion).toBe('1.7.0')
    const ca = LocalCa.loadOrCreate(dir)
    const leaf = ca.issue('localhost')
    const down = Buffer.alloc(DOWN)
    for (let i = 0; i < DOWN; i += 4) down.writeUInt32BE(i, i)
    const upstream = http.createServer((req, res) => {
      const hash = createHash('sha256')
      req.on('data', (chunk: Buffer) => hash.update(chunk))
      req.on('end', () => { res.setHeader('x-up-sha256', hash.digest('hex')); res.end(down) })
    })
    upstream.listen(0, '127.0.0.1')
    await once(upstream, 'listening')

    const seen: Array<[number, unknown]> = []
    const types: number[] = []
    let session: MuxSession | undefined
    let forwarded: Promise<unknown> | undefined
    const sessionReady = new Promise<MuxSession>(resolve => {
      const server = tls.createServer({ cert: leaf.certPem, key: leaf.keyPem }, socket => {
        socket.on('error', () => {})
        const s = new MuxSession(socket)
        session = s
        s.on('stream', (stream: MuxStream, type: number) => {
          types.push(type)
          stream.on('error', () => {})
          if (type === HEARTBEAT_TYPE) answerHeartbeats(stream)
          else if (type === 0) answerRpc(stream, () => ({ Version: '3', ClientId: 'muxado-test', Error: '', Extra: { Region: 'local', Cookie: 'c' } }), seen)
          else if (type === 1) answerRpc(stream, request => ({ Id: 'tun1', URL: 'https://t.localhost', Proto: request.Proto, Opts: request.Opts, Error: '', Extra: { Token: 't', TunnelID: 'tun1' } }), seen)
          else answerRpc(stream, () => ({}), seen)
        })
        resolve(s)
      })
      server.listen(0, '127.0.0.1', () => {
        const { port } = server.address() as AddressInfo
        forwarded = ngrok.forward({ addr: (upstream.address() as AddressInfo).port, authtoken: 'anything', server_addr: `localhost:${port}`, session_ca_cert: ca.certPem })
      })
    })
    await sessionReady
    // The SDK drops (Rust: RST StreamClosed) a Proxy stream that arrives before it has read the Bind answer.
    await forwarded
    expect(types[0]).toBe(HEARTBEAT_TYPE)
    expect(types.slice(1, 3)).toEqual([0, 1])

    const proxyHeader = Buffer.from(JSON.stringify({ Id: 'tun1', ClientAddr: '192.0.2.7:5555', Proto: 'https', EdgeType: '', PassthroughTLS: false }))
    const length = Buffer.alloc(8)
    length.writeBigInt64LE(BigInt(proxyHeader.length))
    const up = Buffer.alloc(UP, 0x61)
    const request = Buffer.from(`POST / HTTP/1.1\r\nHost: t.localhost\r\nContent-Length: ${UP}\r\nConnection: close\r\n\r\n`)
    const stream = (session as MuxSession).open(3, Buffer.concat([length, proxyHeader, request]))
    const parts: Buffer[] = []
    const failed = new Promise<never>((_resolve, reject) => stream.on('error', reject))
    stream.on('data', (chunk: Buffer) => parts.push(chunk))
    const ended = once(stream, 'end')
    stream.end(up)
    await Promise.race([ended, failed])
    const response = Buffer.concat(parts)
    const split = response.indexOf('\r\n\r\n')
    const head = response.subarray(0, split).toString()
    expect(head).toMatch(/^HTTP\/1\.1 200/)
    expect(head).toContain(`x-up-sha256: ${createHash('sha256').update(up).digest('hex')}`)
    expect(response.subarray(split + 4).equals(down)).toBe(true)
    expect((session as MuxSession).closed).toBe(false)
    upstream.close()

    // The agent answers heartbeats we send on a stream we open (its responder echoes each 4-byte read).
    const beat = (session as MuxSession).open(HEARTBEAT_TYPE)
    beat.on('error', () => {})
    const latencies: number[] = []
    const heartbeater = new Heartbeater(beat, { intervalMs: 10, onBeat: latency => latencies.push(latency) })
    heartbeater.start()
    await expect.poll(() => latencies.length, POLL).toBeGreaterThanOrEqual(3)
    heartbeater.stop()

    // Closing the listener is an Unbind RPC on a new client-opened stream of the same session.
    await (await forwarded as { close: () => Promise<void> }).close()
    await expect.poll(() => seen.find(([type]) => type === 2)?.[1], POLL).toEqual({ Id: 'tun1' })
  })
})
