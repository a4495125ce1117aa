// A deny rule with a typo must not bind as a rule that denies nothing (issue 9 item 2). Before: `req.urll.path`
// and `startsWit(...)` were accepted and evaluated to an error on every request, which counted as "no match",
// so /admin stayed public with nothing said. Now: refused at bind time with PH_1008 naming the expression. And
// an expression that fails at run time (a header the request lacks) fails closed for a deny rule and is said
// once on the session's terminal (PH_1045). Real OpenSSH client, policy on stdin, real upstream.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { connect, fetchVia, startTestGateway, startUpstream, type SshClient, type TestGateway } from '../e2e/harness.js'

const denyRule = (expression: string): string =>
  `on_http_request:\n  - expressions:\n      - ${JSON.stringify(expression)}\n    actions:\n      - type: deny\n`

describe('CEL typos in a deny rule, through a real tunnel', () => {
  let gateway: TestGateway
  let upstream: Awaited<ReturnType<typeof startUpstream>>
  const clients: SshClient[] = []
  const open = (name: string, policy: string): SshClient => {
    const client = connect({ kind: 'openssh', port: gateway.sshPort, key: gateway.key('alice', 'openssh'), forwards: [`${name}:80:localhost:${upstream.port}`], command: 'http --traffic-policy-file -' })
    client.proc.stdin!.end(policy)
    clients.push(client)
    return client
  }

  beforeAll(async () => {
    gateway = await startTestGateway()
    upstream = await startUpstream()
  })
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.kill('SIGKILL')))
    await upstream?.close()
    await gateway?.stop()
  })

  for (const [name, expression, problem] of [
    ['urll', "req.urll.path.startsWith('/admin')", 'unknown field "urll" of req'],
    ['startswit', "req.url.path.startsWit('/admin')", 'unknown function "startsWit"'],
  ] as const) {
    it(`refuses ${expression} at bind time, naming the expression (PH_1008), and binds nothing`, async () => {
      const client = open(`typo-${name}`, denyRule(expression))
      const exit = await client.exited
      expect(client.output).toContain(`PH_1008: invalid traffic policy: on_http_request[0].expressions[0]: ${JSON.stringify(expression)}: ${problem}`)
      expect(exit).not.toBe(0)
      expect(gateway.registry.lookup(`typo-${name}.localhost`).state).toBe('unknown')
    })
  }

  it('denies when a deny rule cannot be evaluated (a missing header), and says so once on the terminal', async () => {
    const client = open('runtime-error', denyRule("req.headers['x-api-key'][0] != 'secret'"))
    const [url] = await client.urls()
    const first = await fetchVia(gateway, `${url}/admin`)
    expect(first.status).toBe(403)
    expect(first.headers['porthole-error-code']).toBe('PH_3102')
    expect((await fetchVia(gateway, `${url}/admin`)).status).toBe(403)
    expect((await fetchVia(gateway, `${url}/admin`, { headers: { 'x-api-key': 'secret' } })).status).toBe(200)
    await client.waitFor(/PH_1045: a traffic policy expression could not be evaluated: on_http_request\[0\]\.expressions\[0\] .*x-api-key.*fail closed/)
    // The third request's line is written after the others: by then a second PH_1045 would have been too.
    await client.waitFor(/GET \/admin 200/)
    expect(client.output.match(/PH_1045/g)).toHaveLength(1)
  })
})
