// Options arriving late (issue 9, item 1): a forward must never go public before the session's options are
// known. The ssh2 library drives each step at the moment the test picks (ssh and dbclient never allow that):
// a session that exists is waited for, a session opened after the forwards bound with defaults is refused
// out loud, a session that sends no command gets its forwards refused, and no-more-sessions binds at once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { eventually, fetchVia, ScriptedClient, sleep, startTestGateway, startUpstream, type TestGateway } from '../e2e/harness.js'

const SETTLE_MS = 150
const COMMAND_WAIT_MS = 2500
const AUTH = `Basic ${Buffer.from('u:p').toString('base64')}`

let upstream: Awaited<ReturnType<typeof startUpstream>>
let gateway: TestGateway
beforeAll(async () => {
  upstream = await startUpstream((_req, res) => res.end('from-upstream'))
  gateway = await startTestGateway({ tune: { sessionSettleMs: SETTLE_MS, commandWaitMs: COMMAND_WAIT_MS } })
})
afterAll(async () => {
  await gateway.stop()
  await upstream.close()
})

/** GETs `url` over and over until `done` settles; returns every answer that came from the upstream itself. */
async function probeUntil (url: string, done: Promise<unknown>): Promise<string[]> {
  let finished = false
  void done.finally(() => { finished = true }).catch(() => {})
  const leaks: string[] = []
  while (!finished) {
    const answer = await fetchVia(gateway, url)
    if (answer.status === 200 || answer.body.includes('from-upstream')) leaks.push(`${answer.status} ${answer.body}`)
    await sleep(10)
  }
  return leaks
}

/** Blocks the whole process (gateway included), as a GC pause or an overloaded host would. */
function stall (ms: number): void {
  const until = Date.now() + ms
  while (Date.now() < until) { /* the gateway's timers expire meanwhile; its sockets are not read */ }
}

describe('options arriving late', () => {
  it('a session opened before the settle is waited for: options sent well past the settle protect the endpoint from the start', async () => {
    const client = await ScriptedClient.connect(gateway, upstream.port)
    try {
      const forwarded = client.forward('late-a', 80)
      const session = await client.openSession()
      const url = 'http://late-a.localhost/'
      // Several settle periods pass with the session silent: the endpoint must not answer meanwhile.
      const leaks = await probeUntil(url, sleep(SETTLE_MS * 5))
      expect(leaks).toEqual([])
      const outcome = await client.exec(session, 'http --basic-auth u:p')
      expect(outcome.accepted).toBe(true)
      await forwarded
      expect((await fetchVia(gateway, url)).status).toBe(401)
      expect((await fetchVia(gateway, url, { headers: { authorization: AUTH } })).body).toBe('from-upstream')
    } finally {
      client.end()
    }
  })

  it('a gateway stalled past the settle reads the session open already sent before binding with defaults', async () => {
    const client = await ScriptedClient.connect(gateway, upstream.port)
    try {
      const before = client.gatewayBytesIn()
      const forwarded = client.forward('late-stall', 80)
      forwarded.catch(() => {})
      await eventually(() => client.gatewayBytesIn() > before) // the gateway has parsed the tcpip-forward
      // The session open goes on the wire, then the process stalls past the settle. From the check phase, so
      // that the next loop turn runs the expired timers before it reads the sockets, as after any real pause.
      const opening = await new Promise<ReturnType<ScriptedClient['openSession']>>((resolve) => setImmediate(() => {
        const opened = client.openSession()
        stall(Math.max(SETTLE_MS, 500) * 2)
        resolve(opened)
      }))
      const session = await opening
      const url = 'http://late-stall.localhost/'
      const leaks = await probeUntil(url, sleep(SETTLE_MS * 3))
      expect(leaks).toEqual([])
      const outcome = await client.exec(session, 'http --basic-auth u:p')
      expect(outcome.accepted).toBe(true)
      await forwarded
      expect((await fetchVia(gateway, url)).status).toBe(401)
    } finally {
      client.end()
    }
  })

  it('options sent after the forward was bound with defaults are refused with PH_1040, exit 1, and the endpoint goes down', async () => {
    const client = await ScriptedClient.connect(gateway, upstream.port)
    try {
      // No session at all within the settle: like Dropbear -N, the forward binds with defaults.
      await client.forward('late-b', 80)
      const url = 'http://late-b.localhost/'
      expect((await fetchVia(gateway, url)).body).toBe('from-upstream')
      const outcome = await client.run('http --basic-auth u:p')
      expect(await outcome.exit).toBe(1)
      expect(outcome.output()).toMatch(/^PH_1040: .*"http --basic-auth"/m)
      expect(outcome.output()).not.toContain('u:p') // the refusal names the flags, never their values
      // The protection the user asked for is missing: the endpoint is taken down rather than left public.
      await eventually(() => gateway.registry.lookup('late-b.localhost').state !== 'bound')
      expect((await fetchVia(gateway, url)).body).not.toContain('from-upstream')
    } finally {
      client.end()
    }
  })

  it('a session opened after the forward bound with defaults and no options is its terminal: it shows the endpoint', async () => {
    const client = await ScriptedClient.connect(gateway, upstream.port)
    try {
      await client.forward('late-c', 80)
      const outcome = await client.run('')
      expect(outcome.accepted).toBe(true)
      await eventually(() => /Forwarding\s+http:\/\/late-c\.localhost/.test(outcome.output()))
      expect((await fetchVia(gateway, 'http://late-c.localhost/')).body).toBe('from-upstream')
    } finally {
      client.end()
    }
  })

  it('a session that sends no command: the forward is refused with PH_1022 after the deadline, never public meanwhile, and a late exec hears why', async () => {
    const client = await ScriptedClient.connect(gateway, upstream.port)
    try {
      const session = await client.openSession()
      const forwarded = client.forward('late-d', 80)
      const leaks = await probeUntil('http://late-d.localhost/', forwarded)
      expect(leaks).toEqual([])
      await expect(forwarded).rejects.toThrow(/Unable to bind/)
      const outcome = await client.exec(session, 'http --basic-auth u:p')
      expect(await outcome.exit).toBe(1)
      expect(outcome.output()).toMatch(/^PH_1022: .*late-d:80/m)
      expect(gateway.registry.lookup('late-d.localhost').state).not.toBe('bound')
    } finally {
      client.end()
    }
  })
})

describe('no-more-sessions', () => {
  let patient: TestGateway
  // A settle far longer than the test: binding can only come from no-more-sessions.
  beforeAll(async () => { patient = await startTestGateway({ tune: { sessionSettleMs: 600_000 } }) })
  afterAll(async () => { await patient.stop() })

  it('binds at once with defaults when the client says no session will come', async () => {
    const client = await ScriptedClient.connect(patient, upstream.port)
    try {
      const forwarded = client.forward('nms', 80)
      client.noMoreSessions()
      await forwarded
      expect((await fetchVia(patient, 'http://nms.localhost/')).body).toBe('from-upstream')
      await expect(client.openSession()).rejects.toThrow()
    } finally {
      client.end()
    }
  })
})
