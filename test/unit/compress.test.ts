// compress-response decisions: which encoding a client gets, and which responses are left alone.
import { describe, expect, it } from 'vitest'
import { acceptedEncodings, chooseEncoding, compileCompressResponse } from '../../src/policy/actions/compress.js'
import type { HttpRequestContext, HttpResponseContext } from '../../src/policy/compiled.js'

const request = (acceptEncoding?: string, method = 'GET'): HttpRequestContext => ({
  clientIp: '127.0.0.1', clientPort: 1, serverPort: 80, endpointHost: 'a.localhost', protocol: 'http', method, path: '/', host: 'a.localhost',
  headers: acceptEncoding === undefined ? {} : { 'accept-encoding': acceptEncoding },
})

function run (headers: Record<string, string>, acceptEncoding = 'gzip, deflate, br', status = 200, method = 'GET'): HttpResponseContext {
  const ctx: HttpResponseContext = { request: request(acceptEncoding, method), status, headers }
  compileCompressResponse({ type: 'compress-response' })(ctx)
  return ctx
}

describe('compress-response', () => {
  it('reads q-values and picks the best allowed encoding', () => {
    expect(acceptedEncodings('gzip;q=0.5, br, identity;q=0')).toEqual(new Map([['gzip', 0.5], ['br', 1], ['identity', 0]]))
    expect(chooseEncoding('gzip, deflate, br', ['br', 'gzip', 'deflate'])).toBe('br')
    expect(chooseEncoding('gzip;q=1, br;q=0.1', ['br', 'gzip', 'deflate'])).toBe('gzip')
    expect(chooseEncoding('*', ['gzip'])).toBe('gzip')
    expect(chooseEncoding('br;q=0', ['br'])).toBeUndefined()
    expect(chooseEncoding(undefined, ['gzip'])).toBeUndefined()
  })

  it('compresses text-like responses and says so', () => {
    const ctx = run({ 'content-type': 'application/json', 'content-length': '5000', vary: 'Origin' })
    expect(ctx.encoding).toBe('br')
    expect(ctx.headers).toEqual({ 'content-type': 'application/json', 'content-encoding': 'br', vary: 'Origin, Accept-Encoding' })
  })

  it.each([
    ['already encoded', { 'content-type': 'text/html', 'content-encoding': 'gzip' }],
    ['an image', { 'content-type': 'image/png' }],
    ['an event stream', { 'content-type': 'text/event-stream' }],
    ['small', { 'content-type': 'text/plain', 'content-length': '100' }],
    ['no-transform', { 'content-type': 'text/plain', 'cache-control': 'no-transform' }],
    ['no content type', {}],
  ])('leaves %s responses alone', (_name, headers) => {
    expect(run({ ...headers }).encoding).toBeUndefined()
  })

  it('leaves HEAD, 204 and 304, and clients that accept nothing, alone', () => {
    expect(run({ 'content-type': 'text/plain' }, 'gzip', 200, 'HEAD').encoding).toBeUndefined()
    expect(run({ 'content-type': 'text/plain' }, 'gzip', 204).encoding).toBeUndefined()
    expect(run({ 'content-type': 'text/plain' }, 'gzip', 304).encoding).toBeUndefined()
    expect(run({ 'content-type': 'text/plain' }, 'identity').encoding).toBeUndefined()
  })
})
