// Policies from ngrok's documentation (fixtures/policies/ngrok/, each crediting its page) behave as that page
// says, end to end: each is sent on stdin to `http --traffic-policy-file -` of a real OpenSSH client, on one
// gateway, in front of a real upstream. Where the documented example cannot do what its page says (the
// redirect pattern), the test pins what it really does and the fixture says why.
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connect, fetchVia, startTestGateway, startUpstream, type SshClient, type TestGateway } from './harness.js'

const FIXTURES = resolve(import.meta.dirname, '../../fixtures/policies/ngrok')
const EXAMPLES = [
  'deprecate-api-version', 'remove-powered-by', 'robots-txt', 'deny-non-get', 'require-authorization', 'rate-limit-by-auth',
  'blog-url-rewrite', 'compress-json', 'basic-auth', 'restrict-ips', 'deny-404', 'redirect-regex', 'custom-response-json',
] as const
type Example = typeof EXAMPLES[number]

describe('ngrok documentation examples through a real tunnel', () => {
  let gateway: TestGateway
  let upstream: Awaited<ReturnType<typeof startUpstream>>
  const clients: SshClient[] = []
  const urls = new Map<Example, string>()
  const url = (example: Example): string => urls.get(example)!
  /** What the echo upstream saw of a request that reached it. */
  const seen = (body: string): { method: string, url: string, headers: Record<string, string> } => JSON.parse(body)

  beforeAll(async () => {
    gateway = await startTestGateway()
    // The harness's echo, padded to be worth compressing, with a header for remove-headers to find.
    upstream = await startUpstream((req, res) => {
      res.setHeader('content-type', 'application/json')
      res.setHeader('x-powered-by', 'Express')
      res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, padding: 'x'.repeat(300) }))
    })
    // One session per example, all at once: one gateway, many tunnels.
    await Promise.all(EXAMPLES.map(async (example) => {
      const client = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`${example}:80:localhost:${upstream.port}`], command: 'http --traffic-policy-file -' })
      client.proc.stdin!.end(readFileSync(resolve(FIXTURES, `${example}.yml`), 'utf8'))
      clients.push(client)
      const [found] = await client.urls()
      urls.set(example, found!)
    }))
  })
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.kill('SIGKILL')))
    await upstream?.close()
    await gateway?.stop()
  })

  it('deprecates API version 2 with a 400 and the JSON error (header named in any case)', async () => {
    const old = await fetchVia(gateway, `${url('deprecate-api-version')}/users`, { headers: { 'X-Api-Version': '2' } })
    expect(old.status).toBe(400)
    expect(JSON.parse(old.body)).toEqual({ error: { message: 'Version 2 of the API is no longer supported. Use Version 3 instead.' } })
    const current = await fetchVia(gateway, `${url('deprecate-api-version')}/users`, { headers: { 'x-api-version': '3' } })
    expect(current.status).toBe(200)
    expect(seen(current.body).url).toBe('/users')
  })

  it('removes X-Powered-By from requests (the rule is in on_http_request, as the page writes it)', async () => {
    const response = await fetchVia(gateway, `${url('remove-powered-by')}/`, { headers: { 'X-Powered-By': 'PHP/8', 'x-kept': 'yes' } })
    expect(response.status).toBe(200)
    expect(seen(response.body).headers['x-powered-by']).toBeUndefined()
    expect(seen(response.body).headers['x-kept']).toBe('yes')
    expect(response.headers['x-powered-by']).toBe('Express') // the response's own header is not touched
  })

  it('answers /robots.txt itself (req.url as a string) and passes other paths', async () => {
    const robots = await fetchVia(gateway, `${url('robots-txt')}/robots.txt`)
    expect(robots.status).toBe(200)
    expect(robots.headers['content-type']).toBe('text/plain')
    expect(robots.body).toBe('User-agent: *\r\nDisallow: /')
    expect(seen((await fetchVia(gateway, `${url('robots-txt')}/index.html`)).body).url).toBe('/index.html')
  })

  it('denies every method but GET with 403', async () => {
    expect((await fetchVia(gateway, `${url('deny-non-get')}/`)).status).toBe(200)
    const post = await fetchVia(gateway, `${url('deny-non-get')}/`, { method: 'POST', body: 'x' })
    expect(post.status).toBe(403)
    expect(post.headers['porthole-error-code']).toBe('PH_3102')
    expect((await fetchVia(gateway, `${url('deny-non-get')}/`, { method: 'DELETE' })).status).toBe(403)
  })

  it('answers 401 "Unauthorized" without an Authorization header', async () => {
    const bare = await fetchVia(gateway, `${url('require-authorization')}/`)
    expect(bare.status).toBe(401)
    expect(bare.body).toBe('Unauthorized')
    const authorized = await fetchVia(gateway, `${url('require-authorization')}/`, { headers: { Authorization: 'Bearer t' } })
    expect(authorized.status).toBe(200)
    expect(seen(authorized.body).headers.authorization).toBe('Bearer t')
  })

  it('rate limits anonymous clients to 10 a minute, authenticated ones separately', async () => {
    const statuses: number[] = []
    for (let i = 0; i < 11; i++) statuses.push((await fetchVia(gateway, `${url('rate-limit-by-auth')}/`)).status)
    expect(statuses.slice(0, 10)).toEqual(Array(10).fill(200))
    expect(statuses[10]).toBe(429)
    // The authorized tier has its own limiter (100 a minute): still open for the same address.
    expect((await fetchVia(gateway, `${url('rate-limit-by-auth')}/`, { headers: { Authorization: 'Bearer t' } })).status).toBe(200)
  })

  it('rewrites a pretty blog URL to the CMS permalink, unseen by the client', async () => {
    const response = await fetchVia(gateway, `${url('blog-url-rewrite')}/blog/11/example/`)
    expect(response.status).toBe(200)
    expect(seen(response.body).url).toBe('/blog/index.php?p=11&title=example')
    expect(seen((await fetchVia(gateway, `${url('blog-url-rewrite')}/blog/about`)).body).url).toBe('/blog/about')
  })

  it('compresses JSON responses with an accepted algorithm (the list holds "compress" too)', async () => {
    const response = await request(`http://127.0.0.1:${gateway.httpPort}/data`, { headers: { host: new URL(url('compress-json')).host, 'accept-encoding': 'gzip' } })
    expect(response.statusCode).toBe(200)
    expect(response.headers['content-encoding']).toBe('gzip')
    expect(JSON.parse(gunzipSync(Buffer.from(await response.body.arrayBuffer())).toString()).url).toBe('/data')
    const plain = await fetchVia(gateway, `${url('compress-json')}/data`, { headers: { 'accept-encoding': 'compress' } })
    expect(plain.headers['content-encoding']).toBeUndefined()
    expect(seen(plain.body).url).toBe('/data')
  })

  it('basic-auth then the custom response: 200 with valid credentials, 401 without', async () => {
    const basic = (pair: string) => ({ authorization: `Basic ${Buffer.from(pair).toString('base64')}` })
    const ok = await fetchVia(gateway, `${url('basic-auth')}/`, { headers: basic('user:password1') })
    expect(ok.status).toBe(200)
    expect(ok.body).toBe('Successfully Authenticated!')
    expect((await fetchVia(gateway, `${url('basic-auth')}/`, { headers: basic('admin:password2') })).status).toBe(200)
    const denied = await fetchVia(gateway, `${url('basic-auth')}/`)
    expect(denied.status).toBe(401)
    expect(denied.headers['www-authenticate']).toContain('realm="sample-realm"')
    expect((await fetchVia(gateway, `${url('basic-auth')}/`, { headers: basic('user:wrong') })).status).toBe(401)
  })

  it('restrict-ips: an address not on the allow list gets a 403', async () => {
    const response = await fetchVia(gateway, `${url('restrict-ips')}/`)
    expect(response.status).toBe(403)
    expect(response.headers['porthole-error-code']).toBe('PH_3100')
  })

  it('deny with status 404', async () => {
    const response = await fetchVia(gateway, `${url('deny-404')}/anything`)
    expect(response.status).toBe(404)
    expect(response.headers['porthole-error-code']).toBe('PH_3102')
  })

  it('the redirect example\'s pattern cannot match its own example URL: the request goes upstream', async () => {
    const response = await fetchVia(gateway, `${url('redirect-regex')}/api/v1/users?id=123`)
    expect(response.status).toBe(200)
    expect(seen(response.body).url).toBe('/api/v1/users?id=123')
    // What the pattern does match ("user" with an optional "s", then "id="): that is redirected as configured.
    const moved = await fetchVia(gateway, `${url('redirect-regex')}/api/v1/userid=123`)
    expect(moved.status).toBe(301)
    expect(moved.headers.location).toBe(`${url('redirect-regex')}/api/v2/users/123/`) // absolute, the port kept
    expect(moved.headers['x-redirected']).toBe('true')
  })

  it('custom-response defaults to 200, JSON with the connection\'s start time in RFC 3339', async () => {
    const before = Date.now() - 1000
    const response = await fetchVia(gateway, `${url('custom-response-json')}/api/example`)
    expect(response.status).toBe(200)
    expect(response.headers['content-type']).toBe('application/json')
    const start = JSON.parse(response.body)['connection-start'] as string
    expect(start).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/)
    expect(Date.parse(start)).toBeGreaterThanOrEqual(before)
    expect(Date.parse(start)).toBeLessThanOrEqual(Date.now())
    expect(seen((await fetchVia(gateway, `${url('custom-response-json')}/api/other`)).body).url).toBe('/api/other')
  })
})
