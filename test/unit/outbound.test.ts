// URLs in users' policies reach only public addresses unless the operator allows private ones: literal
// addresses and localhost are refused when the policy is compiled, names resolving to private addresses when
// connecting.
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, expect, it, vi } from 'vitest'

// internal.porthole.test resolves to a private address (as an internal name on the gateway's network would);
// every other name goes to the real resolver.
vi.mock('node:dns', async (importOriginal) => {
  const dns = await importOriginal<typeof import('node:dns')>()
  const lookup = (hostname: string, options: unknown, callback: (...args: unknown[]) => void): void => {
    if (hostname !== 'internal.porthole.test') return void (dns.lookup as (...args: unknown[]) => void)(hostname, options, callback)
    const all = typeof options === 'object' && options !== null && (options as { all?: boolean }).all === true
    if (all) callback(null, [{ address: '10.0.0.8', family: 4 }])
    else callback(null, '10.0.0.8', 4)
  }
  return { ...dns, default: { ...dns, lookup }, lookup }
})
import { compilePolicy } from '../../src/policy/compile.js'
import { parsePolicy } from '../../src/policy/parse.js'
import diagnostics from 'node:diagnostics_channel'
import { isPublicAddress, publicOnly, refusedUrl, type OutboundFailure } from '../../src/policy/outbound.js'
import { callProvider, ProviderError } from '../../src/policy/login/provider-http.js'

const jwtPolicy = (jku: string): string => `on_http_request:
  - actions:
      - type: jwt-validation
        config:
          issuer: { allow_list: [{ value: "https://issuer.test/" }] }
          audience: { allow_list: [{ value: "api" }] }
          http: { tokens: [{ type: jwt, method: header, name: Authorization, prefix: "Bearer " }] }
          jws: { allowed_algorithms: [RS256], keys: { sources: { additional_jkus: ["${jku}"] } } }
`
const oidcPolicy = (issuer: string): string => `on_http_request:
  - actions:
      - type: openid-connect
        config: { issuer_url: "${issuer}", client_id: a, client_secret: b }
`

describe('outbound requests of policies', () => {
  it('tells public addresses from the rest', () => {
    for (const ip of ['8.8.8.8', '1.1.1.1', '2606:4700::1111']) expect(isPublicAddress(ip), ip).toBe(true)
    for (const ip of ['127.0.0.1', '10.1.2.3', '172.16.0.1', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '::1', 'fd00::1', 'fe80::1', '::ffff:127.0.0.1', '224.0.0.1']) {
      expect(isPublicAddress(ip), ip).toBe(false)
    }
    expect(refusedUrl('http://169.254.169.254/latest/meta-data', false)).toMatch(/not a public address/)
    expect(refusedUrl('http://[::1]:8080/', false)).toMatch(/not a public address/)
    expect(refusedUrl('https://LOCALHOST/jwks', false)).toMatch(/own machine/)
    expect(refusedUrl('https://login.example.com/', false)).toBeNull()
    expect(refusedUrl('http://127.0.0.1/', true)).toBeNull()
  })

  it('refuses, at compile time, key sets and issuers on private addresses unless allowed', () => {
    const sessionSecret = Buffer.alloc(32, 1)
    expect(() => compilePolicy(parsePolicy(jwtPolicy('http://127.0.0.1:9/jwks')), 'http', {})).toThrow(/PH_1008|additional_jkus\.0: 127\.0\.0\.1 is not a public address/)
    expect(() => compilePolicy(parsePolicy(oidcPolicy('http://10.0.0.5/')), 'http', { sessionSecret })).toThrow(/config\.issuer_url: 10\.0\.0\.5 is not a public address/)
    expect(() => compilePolicy(parsePolicy(jwtPolicy('http://127.0.0.1:9/jwks')), 'http', { allowPrivateUrls: true })).not.toThrow()
    expect(() => compilePolicy(parsePolicy(oidcPolicy('http://10.0.0.5/')), 'http', { sessionSecret, allowPrivateUrls: true })).not.toThrow()
  })

  it('a name resolving only to private addresses is refused when connecting; public answers are kept', async () => {
    const fake = (answers: string[]) => (_host: string, _options: unknown, callback: (error: null, addresses: Array<{ address: string, family: number }>) => void): void => {
      callback(null, answers.map((address) => ({ address, family: address.includes(':') ? 6 : 4 })))
    }
    const lookup = (answers: string[], all: boolean) => new Promise<{ error: Error | null, address: unknown }>((resolve) => {
      publicOnly(fake(answers) as never)('internal.example.com', { all }, (error, address) => resolve({ error, address }))
    })
    expect((await lookup(['10.0.0.8', '127.0.0.1'], true)).error?.message).toMatch(/resolves to no public address/)
    expect((await lookup(['10.0.0.8', '93.184.216.34'], true)).address).toEqual([{ address: '93.184.216.34', family: 4 }])
    expect((await lookup(['10.0.0.8', '93.184.216.34'], false)).address).toBe('93.184.216.34')
  })

  it('provider calls to a private address fail unless allowed', async () => {
    const server = createServer((_req, res) => res.end('{"ok":true}'))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`
    try {
      await expect(callProvider(url, { allowPrivate: false })).rejects.toThrow(/refused: 127\.0\.0\.1 is not a public address/)
      await expect(callProvider(url, { allowPrivate: true })).resolves.toEqual({ ok: true })
    } finally {
      server.close()
    }
  })
  it('IPv4-compatible IPv6 (::a.b.c.d, ::/96) is not public, in either spelling', () => {
    for (const ip of ['::127.0.0.1', '::7f00:1', '::10.0.0.1', '::a00:1', '::169.254.169.254', '::8.8.8.8', '::808:808', '0:0:0:0:0:0:8.8.8.8']) {
      expect(isPublicAddress(ip), ip).toBe(false)
    }
    expect(refusedUrl('http://[::127.0.0.1]/', false)).toMatch(/not a public address/)
    expect(refusedUrl('http://[::7f00:1]:8080/', false)).toMatch(/not a public address/)
    expect(isPublicAddress('::ffff:8.8.8.8')).toBe(true) // IPv4-mapped: the IPv4 address is what is reached
  })

  it('a name resolving to private addresses fails with the same visitor detail as a name that does not exist', async () => {
    const failures: OutboundFailure[] = []
    const listener = (message: unknown): void => { failures.push(message as OutboundFailure) }
    diagnostics.subscribe('porthole:policy:outbound', listener)
    try {
      // The lookup refusal itself looks like DNS's (ENOTFOUND), its message (for the log) says why.
      const refused = await new Promise<NodeJS.ErrnoException | null>((resolve) => {
        publicOnly(((_h: string, _o: unknown, cb: (e: null, a: Array<{ address: string, family: number }>) => void) => cb(null, [{ address: '10.0.0.8', family: 4 }])) as never)('internal.example.com', { all: true }, (error) => resolve(error))
      })
      expect(refused?.code).toBe('ENOTFOUND')
      const detailOf = (url: string): Promise<string> => callProvider(url, { allowPrivate: false }).then(() => '', (error: unknown) => {
        expect(error).toBeInstanceOf(ProviderError)
        return (error as Error).message
      })
      // A name that does not exist (RFC 2606 .invalid) and one resolving only to a private address: the
      // visitor sees the host and nothing else, the same words for both.
      expect(await detailOf('http://no-such-host.invalid/.well-known/openid-configuration')).toBe('no-such-host.invalid unreachable')
      expect(await detailOf('http://internal.porthole.test/.well-known/openid-configuration')).toBe('internal.porthole.test unreachable')
      // The gateway side keeps the precise reason of each.
      expect(failures.map((f) => f.url)).toEqual(['http://no-such-host.invalid/.well-known/openid-configuration', 'http://internal.porthole.test/.well-known/openid-configuration'])
      expect(failures[0]!.reason).toMatch(/ENOTFOUND|EAI_AGAIN/)
      expect(failures[1]!.reason).toMatch(/resolves to no public address/)
    } finally {
      diagnostics.unsubscribe('porthole:policy:outbound', listener)
    }
  })
})
