// verify-webhook through a real tunnel: GitHub's documented example delivery passes, a tampered one is
// refused with PH_3105 before it reaches the service, and an oversized body is refused with PH_3011.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connect, fetchVia, startTestGateway, startUpstream, type SshClient, type TestGateway } from './harness.js'

// https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries (the example there).
const SECRET = "It's a Secret to Everybody"
const BODY = 'Hello, World!'
const SIGNATURE = 'sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17'

describe('verify-webhook', () => {
  let gateway: TestGateway
  let upstream: Awaited<ReturnType<typeof startUpstream>>
  let client: SshClient
  let url: string
  const received: string[] = []

  beforeAll(async () => {
    gateway = await startTestGateway()
    upstream = await startUpstream((req, res) => {
      let body = ''
      req.setEncoding('utf8').on('data', (chunk: string) => { body += chunk })
      req.on('end', () => { received.push(body); res.end('delivered') })
    })
    client = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`hooks:80:localhost:${upstream.port}`], command: `http --verify-webhook github --verify-webhook-secret "${SECRET}"` })
    url = (await client.urls())[0]!
  })
  afterAll(async () => {
    await client.kill()
    await upstream.close()
    await gateway.stop()
  })

  it('passes GitHub\'s documented delivery on to the service, body intact', async () => {
    const res = await fetchVia(gateway, `${url}/hook`, { method: 'POST', headers: { 'x-hub-signature-256': SIGNATURE, 'content-type': 'text/plain' }, body: BODY })
    expect(res.status).toBe(200)
    expect(res.body).toBe('delivered')
    expect(received).toEqual([BODY])
  })

  it('refuses a tampered body or a missing signature with PH_3105, and the service sees nothing', async () => {
    const tampered = await fetchVia(gateway, `${url}/hook`, { method: 'POST', headers: { 'x-hub-signature-256': SIGNATURE }, body: 'Hello, World?' })
    expect(tampered.status).toBe(403)
    expect(tampered.headers['porthole-error-code']).toBe('PH_3105')
    const unsigned = await fetchVia(gateway, `${url}/hook`, { method: 'POST', body: BODY })
    expect(unsigned.headers['porthole-error-code']).toBe('PH_3105')
    expect(received).toEqual([BODY])
  })

  it('refuses a body over 1 MiB with PH_3011 instead of buffering it', async () => {
    const res = await fetchVia(gateway, `${url}/hook`, { method: 'POST', headers: { 'x-hub-signature-256': SIGNATURE }, body: 'x'.repeat(1024 * 1024 + 1) })
    expect(res.status).toBe(413)
    expect(res.headers['porthole-error-code']).toBe('PH_3011')
  })

  it('refuses --verify-webhook without a secret', async () => {
    const bad = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`nohook:80:localhost:${upstream.port}`], command: 'http --verify-webhook github' })
    await bad.waitFor(/PH_1002: bad value for --verify-webhook \(give both/)
    await bad.exited
  })
})
