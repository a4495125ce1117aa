// jwt-validation through a real tunnel, with keys made in the test and a JWKS served on loopback:
// a valid token passes; missing, expired, foreign-key, wrong-audience and wrong-issuer tokens get 401 PH_3106, as do
// unsigned (alg none), HS256-keyed-with-the-public-key and outside-allowed_algorithms tokens.
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { exportJWK, exportSPKI, generateKeyPair, importJWK, SignJWT } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connect, fetchVia, startTestGateway, startUpstream, type SshClient, type TestGateway } from './harness.js'

describe('jwt-validation', () => {
  let gateway: TestGateway
  let upstream: Awaited<ReturnType<typeof startUpstream>>
  let jwks: Server
  let client: SshClient
  let url: string
  let sign: (claims: { iss?: string, aud?: string, exp?: string }, key?: CryptoKey) => Promise<string>
  let foreign: CryptoKey
  /** Tokens an attacker makes: unsigned (alg none), HMAC keyed with the public key (RS/HS confusion), a valid
   *  signature with an algorithm outside allowed_algorithms, and the same key with an allowed one (control). */
  let attacks: { none: string, hsConfusion: string, rs384: string, rs256SameKey: string }

  beforeAll(async () => {
    const { privateKey, publicKey } = await generateKeyPair('RS256')
    foreign = (await generateKeyPair('RS256')).privateKey
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }
    // k2 names no alg in the key set: only allowed_algorithms says which algorithms its signatures may use.
    const second = await generateKeyPair('RS384', { extractable: true })
    const jwk2 = { ...(await exportJWK(second.publicKey)), kid: 'k2', use: 'sig' }
    jwks = createServer((_req, res) => { res.setHeader('content-type', 'application/json'); res.end(JSON.stringify({ keys: [jwk, jwk2] })) })
    await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve))
    const jku = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/.well-known/jwks.json`
    sign = (claims, key = privateKey) => new SignJWT({ sub: 'ann' })
      .setProtectedHeader({ alg: 'RS256', kid: 'k1' })
      .setIssuer(claims.iss ?? 'https://issuer.test/')
      .setAudience(claims.aud ?? 'porthole-api')
      .setIssuedAt()
      .setExpirationTime(claims.exp ?? '5m')
      .sign(key)

    const claims = { sub: 'ann', iss: 'https://issuer.test/', aud: 'porthole-api', exp: Math.floor(Date.now() / 1000) + 300 }
    const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url')
    const spki = new TextEncoder().encode(await exportSPKI(publicKey))
    attacks = {
      none: `${b64({ alg: 'none', kid: 'k1' })}.${b64(claims)}.`,
      hsConfusion: await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid: 'k1' }).sign(spki),
      rs384: await new SignJWT(claims).setProtectedHeader({ alg: 'RS384', kid: 'k2' }).sign(second.privateKey),
      rs256SameKey: await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: 'k2' }).sign(await importJWK(await exportJWK(second.privateKey), 'RS256')),
    }

    gateway = await startTestGateway({ flags: { policyPrivateUrls: true } }) // the key sets are on loopback
    upstream = await startUpstream()
    const policy = `on_http_request:
  - actions:
      - type: jwt-validation
        config:
          issuer: { allow_list: [{ value: "https://issuer.test/" }] }
          audience: { allow_list: [{ value: "porthole-api" }] }
          http:
            tokens:
              - { type: jwt, method: header, name: Authorization, prefix: "Bearer " }
              - { type: jwt, method: query, name: access_token }
          jws:
            allowed_algorithms: [RS256]
            keys: { sources: { additional_jkus: ["${jku}"] } }
`
    client = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`jwt:80:localhost:${upstream.port}`], command: 'http --traffic-policy-file -' })
    client.proc.stdin!.end(policy)
    url = (await client.urls())[0]!
  })
  afterAll(async () => {
    await client.kill()
    jwks.close()
    await upstream.close()
    await gateway.stop()
  })

  const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

  it('lets a valid token through, from the header or the query', async () => {
    expect((await fetchVia(gateway, `${url}/`, { headers: bearer(await sign({})) })).status).toBe(200)
    expect((await fetchVia(gateway, `${url}/?access_token=${await sign({})}`)).status).toBe(200)
    // The control for the algorithm cases below: k2's own signature with an allowed algorithm passes.
    expect((await fetchVia(gateway, `${url}/`, { headers: bearer(attacks.rs256SameKey) })).status).toBe(200)
  })

  it.each([
    ['no token', async () => ({})],
    ['an expired token', async () => bearer(await sign({ exp: '-1m' }))],
    ['a token from a foreign key', async () => bearer(await sign({}, foreign))],
    ['another audience', async () => bearer(await sign({ aud: 'other' }))],
    ['another issuer', async () => bearer(await sign({ iss: 'https://evil.test/' }))],
    ['garbage', async () => bearer('not.a.jwt')],
    ['an unsigned token (alg none)', async () => bearer(attacks.none)],
    ['an HS256 token keyed with the public key (algorithm confusion)', async () => bearer(attacks.hsConfusion)],
    ['a valid signature with an algorithm outside allowed_algorithms (RS384)', async () => bearer(attacks.rs384)],
  ])('refuses %s with 401 PH_3106', async (_name, headers) => {
    const res = await fetchVia(gateway, `${url}/`, { headers: await headers() })
    expect(res.status).toBe(401)
    expect(res.headers['porthole-error-code']).toBe('PH_3106')
    expect(res.headers['www-authenticate']).toMatch(/^Bearer/)
  })

  it('refuses a policy with a bad jwt-validation config, naming the field', async () => {
    const bad = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`badjwt:80:localhost:${upstream.port}`], command: 'http --traffic-policy-file -' })
    bad.proc.stdin!.end('on_http_request:\n  - actions:\n      - type: jwt-validation\n        config: { issuer: { allow_list: [] } }\n')
    await bad.waitFor(/PH_1008: invalid traffic policy: config\.issuer\.allow_list: .* at on_http_request\[0\]\.actions\[0\]/)
    await bad.exited
  })
})
