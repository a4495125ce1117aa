// The official ngrok agent SDK (@ngrok/ngrok, pinned in package.json) against Porthole's agent listener.
import ngrok from '@ngrok/ngrok'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { fetchVia, startTestGateway, startUpstream, type TestGateway } from './harness.js'

describe('ngrok agent SDK', () => {
  let gateway: TestGateway
  let upstream: Awaited<ReturnType<typeof startUpstream>>
  beforeAll(async () => {
    gateway = await startTestGateway()
    upstream = await startUpstream((req, res) => res.end(`hello ${req.url} from ${req.headers['x-forwarded-for']}`))
  })
  afterAll(async () => {
    await upstream.close()
    await gateway.stop()
  })

  it('forwards http with basic auth', async () => {
    const session = await new ngrok.SessionBuilder().authtoken('anything').serverAddr(`localhost:${gateway.agentPort}`).caCert(Buffer.from(gateway.caPem)).connect()
    const listener = await session.httpEndpoint().basicAuth('ann', 's3cret-pw').listenAndForward(`http://localhost:${upstream.port}`)
    const url = listener.url()!
    expect(url).toMatch(/^https:\/\/[a-z0-9]+\.localhost:\d+$/)
    const host = new URL(url).hostname
    expect((await fetchVia(gateway, `http://${host}/x`)).status).toBe(401)
    const ok = await fetchVia(gateway, `http://${host}/x`, { headers: { authorization: `Basic ${Buffer.from('ann:s3cret-pw').toString('base64')}` } })
    expect(ok.status).toBe(200)
    expect(ok.body).toBe('hello /x from 127.0.0.1')
    await session.close()
  })
})
