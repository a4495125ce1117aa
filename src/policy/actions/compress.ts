// compress-response: picks an encoding the client accepts (gzip, deflate, br; by q-value, then the
// configured order) for responses worth compressing, and leaves the streaming to the edge (edge/encode.ts).
// Never double-compresses: a response that already has a Content-Encoding is left alone.
import { PortholeError } from '../../core/errors.js'
import type { CompressResponseAction } from '../document.js'
import type { HttpResponseContext, ResponseEncoding, ResponseStep } from '../compiled.js'

const ALGORITHMS: readonly ResponseEncoding[] = ['br', 'gzip', 'deflate']
// Text-like types; images, video, archives and event streams are left as they are.
const COMPRESSIBLE = /^(text\/(?!event-stream)|application\/(json|javascript|ecmascript|xml|xhtml\+xml|manifest\+json|wasm|[\w.+-]+\+(json|xml))|image\/svg\+xml)/i
const MIN_BYTES = 256

function first (value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value
}

/** q-values of an Accept-Encoding header: 'gzip;q=0.5, br' -> { gzip: 0.5, br: 1 }. */
export function acceptedEncodings (header: string | string[] | undefined): Map<string, number> {
  const accepted = new Map<string, number>()
  for (const part of (Array.isArray(header) ? header.join(',') : header ?? '').split(',')) {
    const [name = '', ...params] = part.trim().toLowerCase().split(';')
    if (name === '') continue
    const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='))
    accepted.set(name, q ? Math.min(1, Math.max(0, Number(q.slice(2)) || 0)) : 1)
  }
  return accepted
}

export function chooseEncoding (header: string | string[] | undefined, allowed: readonly ResponseEncoding[]): ResponseEncoding | undefined {
  const accepted = acceptedEncodings(header)
  let best: ResponseEncoding | undefined
  let bestQ = 0
  for (const algorithm of allowed) {
    const q = accepted.get(algorithm) ?? accepted.get('*') ?? 0
    if (q > bestQ) { best = algorithm; bestQ = q }
  }
  return best
}

export function compileCompressResponse (action: CompressResponseAction): ResponseStep {
  const listed = action.config?.algorithms ?? ALGORITHMS
  // ngrok lists 'compress' (LZW) too; clients hardly ever ask for it and node:zlib cannot make it, so it is
  // never chosen. Alone it would compress nothing: refused rather than accepted and silently ignored.
  const configured = listed.filter((algorithm): algorithm is ResponseEncoding => algorithm !== 'compress')
  if (configured.length === 0) throw new PortholeError('PH_1008', 'algorithms: "compress" (LZW) is not supported; list gzip, deflate or br')
  for (const algorithm of configured) {
    if (!ALGORITHMS.includes(algorithm)) throw new PortholeError('PH_1008', `algorithms: ${JSON.stringify(algorithm)} (want gzip, deflate or br)`)
  }
  return (ctx: HttpResponseContext) => {
    const { headers, status, request } = ctx
    if (request.method === 'HEAD' || status === 204 || status === 304 || status < 200) return
    if (headers['content-encoding'] !== undefined || /\bno-transform\b/i.test(String(headers['cache-control'] ?? ''))) return
    if (!COMPRESSIBLE.test(first(headers['content-type']) ?? '')) return
    const length = Number(first(headers['content-length']) ?? NaN)
    if (length < MIN_BYTES) return
    const encoding = chooseEncoding(request.headers['accept-encoding'], configured)
    if (!encoding) return
    headers['content-encoding'] = encoding
    delete headers['content-length']
    const vary = first(headers.vary)
    headers.vary = vary ? (/accept-encoding/i.test(vary) ? vary : `${vary}, Accept-Encoding`) : 'Accept-Encoding'
    ctx.encoding = encoding
  }
}
