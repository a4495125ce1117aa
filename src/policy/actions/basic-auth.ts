// basic-auth: the request must carry one of the configured user:password pairs, else 401 with a challenge.
// The Authorization header is for the gateway, so it is removed before the request goes upstream.
import { createHash, timingSafeEqual } from 'node:crypto'
import { PortholeError } from '../../core/errors.js'
import type { BasicAuthAction } from '../document.js'
import type { RequestStep } from '../compiled.js'

const digest = (value: string): Buffer => createHash('sha256').update(value).digest()

export function compileBasicAuth (action: BasicAuthAction): RequestStep {
  const credentials = action.config.credentials
  if (!Array.isArray(credentials) || credentials.length === 0) {
    throw new PortholeError('PH_1006', '(basic-auth needs at least one user:password)')
  }
  const expected = credentials.map((credential) => {
    const colon = typeof credential === 'string' ? credential.indexOf(':') : -1
    // RFC 7617: no control characters. A tab would also hide a split that did not happen (`a:b\t--flag`).
    if (colon <= 0 || colon === credential.length - 1 || /[\x00-\x1f\x7f]/.test(credential)) {
      throw new PortholeError('PH_1006', `${JSON.stringify(String(credential).replace(/:.*/s, ':***'))} (want user:password, both non-empty, no control characters)`)
    }
    return digest(`Basic ${Buffer.from(credential).toString('base64')}`)
  })
  const realm = (action.config.realm ?? 'porthole').replace(/["\\\r\n]/g, '')
  const challenge = { 'www-authenticate': `Basic realm="${realm}", charset="UTF-8"` }
  const denial = { code: 'PH_3101', headers: challenge } as const
  const enforce = action.config.enforce ?? true

  return (ctx) => {
    const header = ctx.headers.authorization
    if (typeof header === 'string') {
      // Compare digests in constant time, against every credential, so timing reveals nothing.
      const given = digest(header)
      let ok = false
      for (const candidate of expected) ok = timingSafeEqual(given, candidate) || ok
      if (ok) {
        delete ctx.headers.authorization
        return undefined
      }
    }
    return enforce ? denial : undefined
  }
}
