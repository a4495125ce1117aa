// upstream.ts readChunkByChunk: undici's read() with no size gets the tunnel stream's buffered chunks one at a
// time, as they are (no joined copy), in order, and the stream still ends; read(size) is untouched.
import { PassThrough } from 'node:stream'
import { once } from 'node:events'
import { describe, expect, it } from 'vitest'
import { readChunkByChunk } from '../../src/edge/upstream.js'

describe('readChunkByChunk', () => {
  it('hands out each buffered chunk itself, in order, then null, then the end', async () => {
    const stream = readChunkByChunk(new PassThrough({ highWaterMark: 1 << 20 }))
    const chunks = [Buffer.from('HTTP/1.1 200 OK\r\n'), Buffer.alloc(32_768, 1), Buffer.alloc(100, 2)]
    for (const chunk of chunks) stream.write(chunk)
    stream.end()
    await once(stream, 'readable')
    const read: Buffer[] = []
    for (let chunk = stream.read() as Buffer | null; chunk !== null; chunk = stream.read() as Buffer | null) read.push(chunk)
    expect(read.length).toBe(3)
    read.forEach((chunk, i) => expect(chunk).toBe(chunks[i])) // the same Buffers: nothing copied
    const ended = once(stream, 'end')
    stream.read()
    await ended
  })

  it('leaves read(size) and a single buffered chunk as Readable has them', async () => {
    const stream = readChunkByChunk(new PassThrough({ highWaterMark: 1 << 20 }))
    stream.write(Buffer.from('abc'))
    stream.write(Buffer.from('def'))
    await once(stream, 'readable')
    expect((stream.read(4) as Buffer).toString()).toBe('abcd')
    expect((stream.read() as Buffer).toString()).toBe('ef')
    expect(stream.read()).toBeNull()
  })
})
