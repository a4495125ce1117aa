// Exec fuzz (issue 9): thousands of exec strings (valid flags, junk, quotes, unicode, huge values, repeated
// flags) must never crash the gateway, never hang a session (every exec ends with an exit status or a bound
// forward) and never bind a forward without its options (a `--basic-auth` that was accepted is enforced).
// The bulk goes through the parser and the bind-time compile directly; a few hundred go through real SSH.
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { isPortholeError } from '../../src/core/errors.js'
import { HELP, parseCommand } from '../../src/agents/ssh/exec-grammar.js'
import { fetchVia, ScriptedClient, startTestGateway, startUpstream, type TestGateway } from '../e2e/harness.js'

const FLAGS = [...new Set(Object.values(HELP).join('\n').match(/--[a-z][a-z-]+/g))]
const SAMPLE_VALUES = ['u:p', 'ann:s3cret', '10.0.0.0/8', '::1/128', '127.0.0.1/32', 'X-A: b', 'X-A', 'rewrite', 'example.com:81', 'http', 'https',
  'http,https', '1', '2', '0.5', 'json', 'text', 'http1', 'http2', '-', 'github', 'https://issuer.example', '.*', '(a+)+$', 'a:', ':', '', ' ']

const word = fc.oneof(
  fc.constantFrom(...SAMPLE_VALUES),
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 12 }), // any code point, lone surrogates included
  fc.string({ unit: 'grapheme', maxLength: 6 }),
  fc.constantFrom('"', "'", '\\', '=', '--', '-', '\t', '\n', '$(id)', '`id`', ';', '&&', '\u0000', '\u202e', '\uffff'),
  fc.integer({ min: 1_000, max: 6_000 }).map((n) => 'x'.repeat(n)), // huge values
)
const quoted = fc.oneof({ weight: 3, arbitrary: word }, { weight: 1, arbitrary: word.map((w) => `'${w}'`) }, { weight: 1, arbitrary: word.map((w) => `"${w}"`) })
const flag = fc.tuple(fc.constantFrom(...FLAGS, '-h', '--frobnicate', '---basic-auth', '--BASIC-AUTH', '-basic-auth'), fc.oneof(fc.constant(null), quoted), fc.boolean())
  .map(([name, value, joined]) => (value === null ? name : joined ? `${name}=${value}` : `${name} ${value}`))
const credential = fc.tuple(fc.stringMatching(/^[a-z0-9]{1,8}$/), fc.stringMatching(/^[A-Za-z0-9]{1,12}$/)).map(([user, pass]) => `${user}:${pass}`)

interface Case { readonly command: string, readonly credential: string | null }

/** A command word (or junk), flags and words in any order, and maybe one well-formed --basic-auth to track. */
const execCase: fc.Arbitrary<Case> = fc.record({
  head: fc.oneof(fc.constantFrom('http', 'tcp', 'tls', 'help', '', 'HTTP', 'http http'), quoted),
  parts: fc.array(fc.oneof({ weight: 3, arbitrary: flag }, { weight: 1, arbitrary: quoted }), { maxLength: 8 }),
  auth: fc.option(fc.tuple(credential, fc.nat())),
  space: fc.constantFrom(' ', '  ', '\t', ' \n '),
}).map(({ head, parts, auth, space }) => withAuth([head, ...parts], auth, space))

/** Inserts `--basic-auth CRED` after the head; it is tracked only where it is a flag, not inside a quote left open. */
function withAuth (tokens: string[], auth: [string, number] | null, space: string): Case {
  if (!auth) return { command: tokens.join(space), credential: null }
  const at = 1 + auth[1] % tokens.length
  const before = tokens.slice(0, at).join(space) + space
  let open: string | null = null
  for (const c of before) {
    if (c === open) open = null
    else if (open === null && (c === '"' || c === "'")) open = c
  }
  return { command: [...tokens.slice(0, at), `--basic-auth ${auth[0]}`, ...tokens.slice(at)].join(space), credential: open === null ? auth[0] : null }
}

/** Mostly well-formed flag sets (so that many sessions bind), with some junk mixed in. */
const VALID_FLAGS = ['--cidr-allow 127.0.0.0/8', '--cidr-deny 10.0.0.0/8', "--request-header-add 'X-A: b'", '--request-header-remove X-A',
  "--response-header-add 'X-B: c'", '--response-header-remove X-B', '--ua-filter-deny bot', '--compression', '--circuit-breaker 0.5',
  '--host-header rewrite', '--schemes http', '--schemes http,https', '--output json', '--upstream-protocol http1', '--basic-auth x:y --basic-auth z:w']
const likelyValid: fc.Arbitrary<Case> = fc.record({
  head: fc.constantFrom('http', '', 'http'),
  parts: fc.array(fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...VALID_FLAGS) }, { weight: 1, arbitrary: flag }), { maxLength: 6 }),
  auth: fc.option(fc.tuple(credential, fc.nat()), { freq: 2 }),
}).map(({ head, parts, auth }) => withAuth([head, ...parts], auth, ' '))

/** Whether the policy the options bind with checks `credential` with a basic-auth action. */
function enforces (policy: unknown, credential: string): boolean {
  const text = JSON.stringify(policy)
  return text.includes('"type":"basic-auth"') && text.includes(JSON.stringify(credential))
}

describe('exec fuzz through the parser', () => {
  it('never throws anything but a catalogue error, and an accepted --basic-auth is always in the policy (4,000 strings)', () => {
    let accepted = 0
    fc.assert(fc.property(fc.oneof(execCase, likelyValid), ({ command, credential }) => {
      let parsed
      try {
        parsed = parseCommand(command, {})
      } catch (error) {
        if (!isPortholeError(error)) throw error // a crash, not a refusal
        expect(error.toLine()).toMatch(/^PH_10\d\d: [^\n]*$/)
        return
      }
      if (parsed.kind !== 'options') return
      accepted++
      if (credential !== null) expect(enforces(parsed.options.policy, credential)).toBe(true)
    }), { numRuns: 4_000 })
    expect(accepted).toBeGreaterThan(500) // the generator does reach the binding path
  })
})

describe('exec fuzz through real SSH sessions', () => {
  let upstream: Awaited<ReturnType<typeof startUpstream>>
  let gateway: TestGateway
  beforeAll(async () => {
    upstream = await startUpstream((_req, res) => res.end('from-upstream'))
    gateway = await startTestGateway({ tune: { sessionSettleMs: 200, commandWaitMs: 2_000 } })
  })
  afterAll(async () => {
    await gateway.stop()
    await upstream.close()
  })

  it('every exec ends (exit status with a PH_ line, or a bound forward), and a bound forward has its basic auth (240 sessions)', async () => {
    let n = 0
    const seen = { bound: 0, refused: 0, protected: 0, challenged: 0 }
    const session = async ({ command, credential }: Case): Promise<void> => {
      const name = `fz${n++}`
      const client = await ScriptedClient.connect(gateway, upstream.port)
      try {
        const forwarded = client.forward(name, 80).then(() => 'bound' as const, () => 'refused' as const)
        const outcome = await client.run(command)
        const first = await Promise.race([forwarded, outcome.exit.then(() => 'ended' as const)])
        if (first === 'bound') {
          seen.bound++
          if (credential !== null) {
            seen.protected++
            // Without credentials nothing reaches the upstream: 401, or 403 when an address rule refuses first.
            const answer = await fetchVia(gateway, `http://${name}.localhost/`)
            expect(answer.body, command).not.toContain('from-upstream')
            expect([401, 403], command).toContain(answer.status)
            if (answer.status === 401) seen.challenged++
          }
          return
        }
        // Ended (a refused command, or one that does not fit the forward): an exit status, a one-line reason
        // unless it was help, and the forward never bound.
        seen.refused++
        expect(await forwarded, command).toBe('refused')
        const status = await outcome.exit
        expect(typeof status, command).toBe('number')
        if (status !== 0) expect(outcome.output(), command).toMatch(/PH_1\d{3}: /)
      } finally {
        client.end()
      }
    }
    // An SSH packet carries at most ~32 KB: keep the command within what a client can send. Three sessions
    // at a time, each on its own connection (one session per connection is the gateway's rule).
    const sendable = fc.oneof(execCase, likelyValid).filter((c) => Buffer.byteLength(c.command) < 16_000)
    await fc.assert(fc.asyncProperty(fc.tuple(sendable, sendable, sendable), async (cases) => {
      await Promise.all(cases.map(session))
    }), { numRuns: 80 })
    expect(seen.bound).toBeGreaterThan(5)
    expect(seen.refused).toBeGreaterThan(5)
    expect(seen.challenged).toBeGreaterThan(5)
    // After all that the gateway still serves a plain session.
    const client = await ScriptedClient.connect(gateway, upstream.port)
    const forwarded = client.forward('after-fuzz', 80)
    await client.run('http')
    await forwarded
    expect((await fetchVia(gateway, 'http://after-fuzz.localhost/')).body).toBe('from-upstream')
    client.end()
  }, 60_000)
})
