// One policy regex must not freeze the gateway (issue 9 item 5). Before: url-rewrite/redirect `from` ran on
// JavaScript's backtracking RegExp, and `(a+)+$` against a URL of a's ending in '!' held the event loop
// (31 a's: 20 s; 64 a's: for ever), so every other endpoint and every SSH login stalled. Now every user
// regex runs on RE2 (re2js), linear in the input. The gateway runs as its own process so that this test keeps
// running while the gateway is busy: on the old code the pathological request, the other endpoint's request
// and the new SSH login never complete (the test fails by vitest's timeout; no timing bound here).
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connect, fetchVia, startGatewayProcess, startUpstream, type GatewayProcess, type SshClient } from '../e2e/harness.js'

const EVIL = '(a+)+$'
const policy = `on_http_request:
  - expressions:
      - "req.url.path.matches('${EVIL}')"
    actions:
      - type: add-headers
        config:
          headers:
            x-matched: "yes"
  - actions:
      - type: url-rewrite
        config:
          from: "${EVIL}"
          to: rewritten
`

describe('a pathological policy regex (RE2, linear time)', () => {
  let gateway: GatewayProcess
  let upstream: Awaited<ReturnType<typeof startUpstream>>
  const clients: SshClient[] = []
  const open = (name: string, command: string, stdin?: string): SshClient => {
    const client = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice'), forwards: [`${name}:80:localhost:${upstream.port}`], command })
    if (stdin !== undefined) client.proc.stdin!.end(stdin)
    clients.push(client)
    return client
  }

  beforeAll(async () => {
    gateway = await startGatewayProcess()
    upstream = await startUpstream()
  })
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.kill('SIGKILL')))
    await upstream?.close()
    await gateway?.stop()
  })

  it('does not stall another endpoint or an SSH login while (a+)+$ meets a\'s and a \'!\'', async () => {
    const [evilUrl] = await open('evil', 'http --traffic-policy-file -', policy).urls()
    const [calmUrl] = await open('calm', 'http').urls()
    const pathological = fetchVia(gateway, `${evilUrl}/${'a'.repeat(64)}!`)
    // While it is in flight: another endpoint's request, and a new SSH login that binds.
    const other = await fetchVia(gateway, `${calmUrl}/other`)
    expect(other.status).toBe(200)
    expect(JSON.parse(other.body).url).toBe('/other')
    const [lateUrl] = await open('late', 'http').urls()
    expect((await fetchVia(gateway, `${lateUrl}/`)).status).toBe(200)
    // And the pathological request itself is answered: no match (the path ends in '!'), passed on unchanged.
    const answered = await pathological
    expect(answered.status).toBe(200)
    expect(JSON.parse(answered.body).url).toBe(`/${'a'.repeat(64)}!`)
    expect(JSON.parse(answered.body).headers['x-matched']).toBeUndefined()
    // The same rules still match what they should.
    const matched = await fetchVia(gateway, `${evilUrl}/aaaa`)
    expect(JSON.parse(matched.body).url).toBe('/rewritten')
    expect(JSON.parse(matched.body).headers['x-matched']).toBe('yes')
  })
})
