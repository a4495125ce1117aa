// muxado sessions talking to each other over real loopback TCP: typed streams both ways, 100 MB each way at
// once on one stream (flow control), 200 concurrent echo streams, half-close, resets both ways, and a peer
// whose connection vanishes mid-stream.
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { afterEach, describe, expect, it } from 'vitest'
import { MuxCode, MuxError } from '../../src/agents/ngrok/muxado/errors.js'
import { DEFAULT_WINDOW } from '../../src/agents/ngrok/muxado/frame.js'
import type { MuxStream } from '../../src/agents/ngrok/muxado/stream.js'
import { closed, sessionPair, type Pair } from './muxado/helpers.js'

/** expect.poll's default gives up after 1 s; a loaded machine may need longer (the test timeout bounds it). */
const POLL = { timeout: 30_000 }

let pair: Pair | undefined
afterEach(() => { pair?.close(); pair = undefined })

function nextStream (session: Pair['server']): Promise<[MuxStream, number]> {
  return once(session, 'stream') as Promise<[MuxStream, number]>
}

/** Everything the stream gives until its end (without the async iterator, which destroys the stream). */
function readAll (stream: MuxStream): Promise<Buffer> {
  const parts: Buffer[] = []
  return new Promise((resolve, reject) => {
    stream.on('data', (chunk: Buffer) => parts.push(chunk))
    stream.once('end', () => resolve(Buffer.concat(parts)))
    stream.once('error', reject)
  })
}

function failure (stream: MuxStream): Promise<Error> {
  return new Promise((resolve, reject) => {
    stream.once('error', resolve)
    stream.once('end', () => reject(new Error('the stream ended cleanly')))
  })
}

describe('muxado sessions over TCP', () => {
  it('opens typed streams both ways; the type arrives with the first payload', async () => {
    pair = await sessionPair()
    const { server, client } = pair
    const accepted = nextStream(server)
    const fromClient = client.open(7, Buffer.from('{"Version":["3"]}'))
    const [atServer, type] = await accepted
    expect(type).toBe(7)
    expect(atServer.type).toBe(7)
    expect(atServer.id).toBe(3)
    fromClient.end()
    expect((await readAll(atServer)).toString()).toBe('{"Version":["3"]}')

    const acceptedByClient = nextStream(client)
    const fromServer = server.open(3, Buffer.from('proxy header'))
    const [atClient, clientType] = await acceptedByClient
    expect([clientType, atClient.id, fromServer.id]).toEqual([3, 2, 2])
    fromServer.end(' and body')
    expect((await readAll(atClient)).toString()).toBe('proxy header and body')
  })

  it('carries 100 MB each way at once on one stream, intact, never buffering past the window', async () => {
    pair = await sessionPair()
    const { server, client } = pair
    const total = Number(process.env.MUX_MB ?? 100)
    const block = randomBytes(1 << 20)
    async function send (stream: MuxStream): Promise<string> {
      const hash = createHash('sha256')
      for (let i = 0; i < total; i++) {
        const chunk = Buffer.from(block)
        chunk.writeUInt32BE(i, 0)
        hash.update(chunk)
        if (!stream.write(chunk)) await once(stream, 'drain')
      }
      stream.end()
      return hash.digest('hex')
    }
    let maxQueued = 0
    let maxReadable = 0
    function receive (stream: MuxStream): Promise<[string, number]> {
      const hash = createHash('sha256')
      let bytes = 0
      return new Promise((resolve, reject) => {
        stream.on('data', (chunk: Buffer) => {
          maxQueued = Math.max(maxQueued, stream.queuedBytes)
          maxReadable = Math.max(maxReadable, stream.readableLength)
          hash.update(chunk)
          bytes += chunk.length
        })
        stream.once('end', () => resolve([hash.digest('hex'), bytes]))
        stream.once('error', reject)
      })
    }
    const accepted = nextStream(server)
    const clientStream = client.open(1)
    const [serverStream] = await accepted
    const [sentByClient, sentByServer, [gotByServer, serverBytes], [gotByClient, clientBytes]] = await Promise.all([
      send(clientStream), send(serverStream), receive(serverStream), receive(clientStream),
    ])
    expect(serverBytes).toBe(total << 20)
    expect(clientBytes).toBe(total << 20)
    expect(gotByServer).toBe(sentByClient)
    expect(gotByClient).toBe(sentByServer)
    expect(maxQueued).toBeLessThanOrEqual(DEFAULT_WINDOW)
    expect(maxReadable).toBeLessThanOrEqual(DEFAULT_WINDOW)
  })

  it('holds a writer back while its reader does not read: the receiver keeps at most the window', async () => {
    pair = await sessionPair()
    const { server, client } = pair
    const accepted = nextStream(server)
    const writer = client.open(1)
    const [reader] = await accepted
    reader.pause()
    const payload = randomBytes(4 << 20)
    let written = false
    writer.write(payload, () => { written = true })
    writer.end()
    // The writer may send one window (less the 4 type bytes) and must then stall: watch every socket chunk.
    const held = () => reader.queuedBytes + reader.readableLength
    let maxHeld = 0
    await new Promise<void>(resolve => {
      const check = (): void => {
        maxHeld = Math.max(maxHeld, held())
        if (held() >= DEFAULT_WINDOW - 4) { pair?.serverSocket.off('data', check); resolve() }
      }
      pair?.serverSocket.on('data', check)
    })
    await new Promise(resolve => setImmediate(resolve))
    expect(held()).toBe(DEFAULT_WINDOW - 4)
    expect(maxHeld).toBeLessThanOrEqual(DEFAULT_WINDOW)
    expect(written).toBe(false)
    const all = readAll(reader)
    reader.resume()
    expect((await all).equals(payload)).toBe(true)
    expect(written).toBe(true)
  })

  it('runs 200 concurrent streams, each echoing its own data', async () => {
    pair = await sessionPair()
    const { server, client } = pair
    server.on('stream', (stream: MuxStream) => { stream.on('error', () => {}); stream.pipe(stream) })
    const results = await Promise.all(Array.from({ length: 200 }, async (_, i) => {
      const data = randomBytes(32 << 10)
      const stream = client.open(100 + i, data.subarray(0, 100))
      stream.end(data.subarray(100))
      const echoed = await readAll(stream)
      return echoed.equals(data)
    }))
    expect(results.every(Boolean)).toBe(true)
    expect(client.streamCount).toBe(0)
    await expect.poll(() => server.streamCount, POLL).toBe(0)
  })

  it('half-closes: the side that ended its writes still reads the answer', async () => {
    pair = await sessionPair()
    const { server, client } = pair
    const accepted = nextStream(server)
    const stream = client.open(1, Buffer.from('request'))
    stream.end()
    const [atServer] = await accepted
    expect((await readAll(atServer)).toString()).toBe('request')
    expect(atServer.writable).toBe(true)
    atServer.write('response ')
    atServer.end('after FIN')
    expect((await readAll(stream)).toString()).toBe('response after FIN')
    await expect.poll(() => server.streamCount + client.streamCount, POLL).toBe(0)
  })

  it('resets both ways: the other side fails with ECONNRESET and the muxado code', async () => {
    pair = await sessionPair()
    const { server, client } = pair
    let accepted = nextStream(server)
    const byClient = client.open(1, Buffer.from('x'))
    let [atServer] = await accepted
    const serverFailure = failure(atServer)
    byClient.destroy()
    const serverError = await serverFailure as MuxError
    expect(serverError).toBeInstanceOf(MuxError)
    expect(serverError.code).toBe('ECONNRESET')
    expect(serverError.muxCode).toBe(MuxCode.StreamCancelled)

    accepted = nextStream(server)
    const second = client.open(2, Buffer.from('y'))
    ;[atServer] = await accepted
    const clientFailure = failure(second)
    atServer.destroy()
    const clientError = await clientFailure as MuxError
    expect([clientError.code, clientError.muxCode]).toEqual(['ECONNRESET', MuxCode.StreamCancelled])
    await expect.poll(() => server.streamCount + client.streamCount, POLL).toBe(0)
    expect(server.closed || client.closed).toBe(false)
  })

  it('fails half-read streams with ECONNRESET when the peer\'s connection closes without GOAWAY', async () => {
    pair = await sessionPair()
    const { server, client, clientSocket } = pair
    const accepted = nextStream(server)
    const stream = client.open(1, Buffer.from('part of a body'))
    stream.on('error', () => {})
    const [atServer] = await accepted
    const got: Buffer[] = []
    atServer.on('data', (chunk: Buffer) => got.push(chunk))
    const serverFailure = failure(atServer)
    const serverClosed = closed(server)
    while (got.length === 0) await once(atServer, 'data')
    clientSocket.destroy()
    const error = await serverFailure as MuxError
    expect(error.code).toBe('ECONNRESET')
    expect(error.muxCode).toBe(MuxCode.PeerEOF)
    const sessionError = await serverClosed
    expect(sessionError).toBeInstanceOf(MuxError)
    expect(sessionError?.muxCode).toBe(MuxCode.PeerEOF)
    expect(server.streamCount).toBe(0)
  })

  it('close() sends GOAWAY: the peer\'s session ends with RemoteGoneAway and its streams fail', async () => {
    pair = await sessionPair()
    const { server, client } = pair
    const accepted = nextStream(server)
    const stream = client.open(1, Buffer.from('x'))
    const [atServer] = await accepted
    atServer.on('error', () => {})
    const streamFailure = failure(stream)
    const clientClosed = closed(client)
    const serverClosed = closed(server)
    server.close(MuxCode.None, 'gateway shutting down')
    expect(await serverClosed).toBeUndefined()
    const error = await clientClosed
    expect(error?.muxCode).toBe(MuxCode.RemoteGoneAway)
    expect(error?.message).toContain('gateway shutting down')
    expect(((await streamFailure) as MuxError).code).toBe('ECONNRESET')
    expect(() => server.open(1)).toThrow(/SessionClosed/)
  })

  it('emits close exactly once, whatever ends the session', async () => {
    pair = await sessionPair()
    const { server, serverSocket } = pair
    let count = 0
    server.on('close', () => { count++ })
    const done = closed(server)
    server.destroy(new Error('first'))
    server.close()
    serverSocket.destroy()
    expect((await done)?.message).toContain('first')
    await once(serverSocket, 'close').catch(() => {})
    expect(count).toBe(1)
  })
})
