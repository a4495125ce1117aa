// Streams a response body through node:zlib when compress-response chose an encoding: chunks are written
// as they come and flushed as the encoder produces them, with backpressure to the upstream.
import { constants, createBrotliCompress, createDeflate, createGzip, type BrotliCompress, type Deflate, type Gzip } from 'node:zlib'
import type { ResponseEncoding } from '../policy/compiled.js'

export type Encoder = Gzip | Deflate | BrotliCompress

export function createEncoder (encoding: ResponseEncoding): Encoder {
  if (encoding === 'br') {
    // Quality 4: most of brotli's gain at a fraction of the default (11)'s CPU, which is made for static files.
    return createBrotliCompress({ params: { [constants.BROTLI_PARAM_QUALITY]: 4 } })
  }
  return encoding === 'gzip' ? createGzip({ level: 6 }) : createDeflate({ level: 6 })
}
