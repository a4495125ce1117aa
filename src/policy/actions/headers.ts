// add-headers / remove-headers, for requests (to the upstream) and responses (to the public client).
// add-headers replaces a header of the same name rather than appending, so a client cannot smuggle in a
// second value of a header the endpoint owner sets.
import { PortholeError } from '../../core/errors.js'
import type { AddHeadersAction, RemoveHeadersAction } from '../document.js'
import type { HeaderMap } from '../compiled.js'
import { compileTemplate } from '../cel.js'

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
// Headers the edge owns: letting a policy set them would break framing or our own error signalling.
const FORBIDDEN = new Set(['content-length', 'transfer-encoding', 'connection', 'upgrade', 'porthole-error-code'])

export function headerName (name: unknown): string {
  if (typeof name !== 'string' || !TOKEN.test(name)) throw new PortholeError('PH_1005', `name ${JSON.stringify(name)}`)
  const lower = name.toLowerCase()
  if (FORBIDDEN.has(lower)) throw new PortholeError('PH_1005', `${name} (managed by the gateway)`)
  return lower
}

export function headerValue (name: string, value: unknown): string {
  if (typeof value !== 'string' || /[\r\n\0]/.test(value)) throw new PortholeError('PH_1005', `value of ${name}`)
  return value.trim()
}

/** Values may interpolate CEL (`${req.host}`); `vars` gives the variables when one does. */
export function compileAddHeaders (action: AddHeadersAction): (headers: HeaderMap, vars: () => Record<string, unknown>) => void {
  const entries = Object.entries(action.config.headers ?? {}).map(([name, value]) => {
    const lower = headerName(name)
    return [lower, compileTemplate(headerValue(lower, value), `header ${lower}`)] as const
  })
  if (entries.length === 0) throw new PortholeError('PH_1005', '(add-headers needs at least one header)')
  return (headers, vars) => {
    for (const [name, value] of entries) headers[name] = typeof value === 'string' ? value : value(vars()).replace(/[\r\n]/g, ' ')
  }
}

export function compileRemoveHeaders (action: RemoveHeadersAction): (headers: HeaderMap) => void {
  const names = (action.config.headers ?? []).map(headerName)
  if (names.length === 0) throw new PortholeError('PH_1005', '(remove-headers needs at least one header)')
  return (headers) => {
    for (const name of names) if (name in headers) delete headers[name] // a delete makes the object slower to use
  }
}
