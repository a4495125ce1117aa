// What the fast path (src/edge/fast-h1.ts) relies on in node's internal llhttp binding (src/edge/llhttp.ts):
// if a node release changes any of it, this fails before the fast path misbehaves.
import { describe, expect, it } from 'vitest'
import { HTTPParser, METHODS, newParser, type HttpParser } from '../../src/edge/llhttp.js'

interface Seen { events: string[], heads: unknown[][], bodies: Buffer[], fields: string[][] }

function watch (parser: HttpParser): Seen {
  const seen: Seen = { events: [], heads: [], bodies: [], fields: [] }
  parser[HTTPParser.kOnMessageBegin] = () => { seen.events.push('begin') }
  parser[HTTPParser.kOnHeaders] = (fields: string[]) => { seen.events.push('fields'); seen.fields.push(fields) }
  parser[HTTPParser.kOnHeadersComplete] = (...args: unknown[]) => { seen.events.push('head'); seen.heads.push(args); return 0 }
  parser[HTTPParser.kOnBody] = (chunk: Buffer) => { seen.events.push('body'); seen.bodies.push(chunk) }
  parser[HTTPParser.kOnMessageComplete] = () => { seen.events.push('complete') }
  return seen
}

describe('node\'s llhttp binding, as the fast path uses it', () => {
  it('calls back in order with (major, minor, fields, method, url, status, message, upgrade, keepAlive), and a body that is a copy', () => {
    const parser = newParser('request', 16384)
    const seen = watch(parser)
    const input = Buffer.from('POST /x?y=1 HTTP/1.1\r\nHost: a.localhost\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n')
    expect(parser.execute(input)).toBe(input.length)
    expect(seen.events).toEqual(['begin', 'head', 'body', 'complete', 'begin', 'head', 'complete'])
    expect(seen.heads[0]).toEqual([1, 1, ['Host', 'a.localhost', 'Content-Length', '3'], METHODS.indexOf('POST'), '/x?y=1', undefined, undefined, false, true])
    expect(seen.heads[1]!.slice(7)).toEqual([false, false])
    seen.bodies[0]![0] = 0x58
    expect(input.toString('latin1')).toContain('abcGET')
  })

  it('hands a head of more than 32 fields out through kOnHeaders first, and chunked trailers the same way', () => {
    const parser = newParser('request', 65536)
    const seen = watch(parser)
    const many = Array.from({ length: 40 }, (_, i) => `X-${i}: ${i}\r\n`).join('')
    parser.execute(Buffer.from(`GET / HTTP/1.1\r\nHost: a\r\n${many}\r\n`))
    const fromFields = seen.fields.flat()
    const [, , rest, , url] = seen.heads[0]!
    expect(fromFields.length + ((rest as string[] | undefined)?.length ?? 0)).toBe(82)
    expect(url === undefined || url === '').toBe(true)
    const response = newParser('response', 16384)
    const got = watch(response)
    response.execute(Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 1\r\n\r\n'))
    expect(got.events).toEqual(['begin', 'head', 'body', 'fields', 'complete'])
    expect(got.fields[0]).toEqual(['X-Sum', '1'])
    expect(got.heads[0]!.slice(5, 7)).toEqual([200, 'OK'])
  })

  it('is strict: Content-Length with Transfer-Encoding, a bad chunk size and an oversized head are errors with a code', () => {
    const both = newParser('request', 16384)
    watch(both)
    expect(both.execute(Buffer.from('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n'))).toMatchObject({ code: expect.stringMatching(/^HPE_/) })
    const chunk = newParser('request', 16384)
    watch(chunk)
    expect(chunk.execute(Buffer.from('POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'))).toMatchObject({ code: 'HPE_INVALID_CHUNK_SIZE' })
    const big = newParser('request', 100)
    watch(big)
    expect(big.execute(Buffer.from(`GET / HTTP/1.1\r\nX: ${'a'.repeat(200)}\r\n\r\n`))).toMatchObject({ code: 'HPE_HEADER_OVERFLOW' })
  })

  it('skips a response body when kOnHeadersComplete returns 1 (HEAD), and completes a body read until close on finish()', () => {
    const head = newParser('response', 16384)
    const seen = watch(head)
    head[HTTPParser.kOnHeadersComplete] = () => 1
    head.execute(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n'))
    expect(seen.events.filter((e) => e === 'complete')).toHaveLength(2)
    const untilClose = newParser('response', 16384)
    const got = watch(untilClose)
    untilClose.execute(Buffer.from('HTTP/1.1 200 OK\r\n\r\nsome body'))
    expect(got.heads[0]!.at(-1)).toBe(false) // keepAlive: no
    expect(got.events).not.toContain('complete')
    untilClose.finish()
    expect(got.events.at(-1)).toBe('complete')
  })
})
