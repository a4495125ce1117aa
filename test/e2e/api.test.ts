// The admin API through real HTTP against a real gateway: API-key auth, the JSON error shape, every resource,
// pagination, no hashes in any answer, and DELETE /api/sessions/{id} dropping a live tunnel of a real `ssh`.
import { readFileSync } from 'node:fs'
import { createConnection } from 'node:net'
import { join } from 'node:path'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { MAX_CONNECTIONS_PER_ADDRESS } from '../../src/api/server.js'
import { connect, eventually, fetchVia, FIXTURES, rawConnect, rawRequest, startTestGateway, startUpstream, type TestGateway } from './harness.js'

interface Answer { status: number, headers: Record<string, string | string[] | undefined>, body: any, text: string }

const pub = (name: string): string => readFileSync(join(FIXTURES, 'keys', `${name}.pub`), 'utf8')

describe('admin API', () => {
  let gw: TestGateway
  let key: string

  async function call (method: string, path: string, body?: unknown, options: { key?: string | null, raw?: string, headers?: Record<string, string> } = {}): Promise<Answer> {
    const auth = options.key === null ? {} : { authorization: `Bearer ${options.key ?? key}` }
    const payload = options.raw ?? (body === undefined ? undefined : JSON.stringify(body))
    const response = await request(`http://127.0.0.1:${gw.apiPort}${path}`, {
      method: method as 'GET',
      headers: { ...auth, ...(payload === undefined ? {} : { 'content-type': 'application/json' }), ...options.headers },
      body: payload,
    })
    const text = await response.body.text()
    return { status: response.statusCode, headers: response.headers, text, body: text ? JSON.parse(text) : undefined }
  }

  const expectError = (answer: Answer, status: number, code: string, msg?: RegExp): void => {
    expect(answer.status, answer.text).toBe(status)
    expect(answer.body).toMatchObject({ error_code: code, status_code: status })
    expect(Object.keys(answer.body).sort()).toEqual(['error_code', 'msg', 'status_code'])
    if (msg) expect(answer.body.msg).toMatch(msg)
  }

  beforeAll(async () => {
    gw = await startTestGateway({ flags: { tcpPorts: '21000-21099' } })
    key = (await gw.identity.createApiKey({ description: 'tests' })).key
  })
  afterAll(async () => {
    await gw.stop()
  })

  describe('authentication', () => {
    it('refuses a missing, malformed or wrong key with 401 PH_5005, on any path', async () => {
      expectError(await call('GET', '/api/accounts', undefined, { key: null }), 401, 'PH_5005', /Authorization: Bearer/)
      expectError(await call('GET', '/api/accounts', undefined, { key: 'nonsense' }), 401, 'PH_5005')
      expectError(await call('GET', '/api/accounts', undefined, { key: `${key.split('.')[0]}.wrongsecret` }), 401, 'PH_5005')
      expectError(await call('GET', '/api/accounts', undefined, { key: 'ak_unknownid.secret' }), 401, 'PH_5005')
      expectError(await call('GET', '/api/no/such/path', undefined, { key: null }), 401, 'PH_5005')
      expectError(await call('GET', '/api/accounts', undefined, { key: null, headers: { authorization: `Basic ${key}` } }), 401, 'PH_5005')
    })

    it('slows down wrong keys from one address after a few; a right one is not slowed and does not reset them', async () => {
      for (let i = 0; i < 3; i++) await call('GET', '/api/accounts', undefined, { key: `ak_guess${i}.secret` })
      const started = Date.now()
      expectError(await call('GET', '/api/accounts', undefined, { key: 'ak_guess.secret' }), 401, 'PH_5005')
      expect(Date.now() - started).toBeGreaterThanOrEqual(900)
      // Answered at once (test/hostile/admission.test.ts checks it against wrong keys still held back).
      expect((await call('GET', '/api/accounts')).status).toBe(200)
      const after = Date.now()
      expectError(await call('GET', '/api/accounts', undefined, { key: 'ak_guess.secret' }), 401, 'PH_5005')
      expect(Date.now() - after).toBeGreaterThanOrEqual(1900) // the next step up: the right key reset nothing
    })

    it('wrong keys sent in parallel each wait longer: parallelism does not bypass the slowdown', async () => {
      const timed = async (i: number): Promise<number> => {
        const started = Date.now()
        expectError(await call('GET', '/api/accounts', undefined, { key: `ak_parallel${i}.secret` }), 401, 'PH_5005')
        return Date.now() - started
      }
      const times = await Promise.all([0, 1, 2, 3, 4].map(timed))
      expect(Math.max(...times)).toBeGreaterThanOrEqual(1900) // the 5th in flight waits 2 s
      expect((await call('GET', '/api/accounts')).status).toBe(200) // a right key resets the count
    })

    it('one address cannot hold all the connections', async () => {
      const sockets = Array.from({ length: 40 }, () => createConnection(gw.apiPort!, '127.0.0.1'))
      let closed = 0
      for (const socket of sockets) {
        socket.once('close', () => { closed++ })
        socket.on('error', () => {})
      }
      // The gateway destroys each one past its per-address limit as it arrives (keep-alive connections of
      // earlier calls may count too, so at least 40 - limit go).
      await eventually(() => closed >= sockets.length - MAX_CONNECTIONS_PER_ADDRESS)
      expect(sockets.filter((s) => !s.destroyed).length).toBeLessThanOrEqual(MAX_CONNECTIONS_PER_ADDRESS)
      for (const socket of sockets) socket.destroy()
      await eventually(async () => { expect((await call('GET', '/api/accounts')).status).toBe(200); return true })
    })

    it('creates API keys that work until revoked, and never shows a hash', async () => {
      const created = await call('POST', '/api/api_keys', { description: 'second' })
      expect(created.status).toBe(201)
      expect(created.body).toMatchObject({ id: expect.stringMatching(/^ak_/), description: 'second', key: expect.stringMatching(/^ak_\w+\./) })
      expect(created.text).not.toMatch(/scrypt|hash/)
      expect((await call('GET', '/api/accounts', undefined, { key: created.body.key })).status).toBe(200)
      const listed = await call('GET', '/api/api_keys')
      expect(listed.body.api_keys.map((k: { id: string }) => k.id)).toContain(created.body.id)
      expect(listed.text).not.toMatch(/scrypt|hash|"key"/)
      expect((await call('GET', `/api/api_keys/${created.body.id}`)).body).toEqual({ id: created.body.id, uri: `/api/api_keys/${created.body.id}`, description: 'second', created_at: expect.any(String) })
      expect((await call('DELETE', `/api/api_keys/${created.body.id}`)).status).toBe(204)
      expectError(await call('GET', '/api/accounts', undefined, { key: created.body.key }), 401, 'PH_5005')
      expectError(await call('DELETE', `/api/api_keys/${created.body.id}`), 404, 'PH_5003')
    })
  })

  describe('request errors', () => {
    it('answers unknown paths 404, wrong methods 405, bad JSON 400 and large bodies 413, all as JSON', async () => {
      expectError(await call('GET', '/api/nothing'), 404, 'PH_5003', /API path \/api\/nothing not found/)
      expectError(await call('GET', '/'), 404, 'PH_5003')
      const wrong = await call('PUT', '/api/accounts', {})
      expectError(wrong, 405, 'PH_5006', /method PUT not allowed/)
      expect(wrong.headers.allow).toBe('GET, POST')
      expectError(await call('POST', '/api/accounts', undefined, { raw: '{"name": ' }), 400, 'PH_5001', /JSON body/)
      expectError(await call('POST', '/api/accounts', undefined, { raw: '[1]' }), 400, 'PH_5001', /want an object/)
      expectError(await call('POST', '/api/accounts', undefined, { raw: JSON.stringify({ name: 'x'.repeat(70 * 1024) }) }), 413, 'PH_5007', /64 KiB/)
      expectError(await call('POST', '/api/accounts', { name: 'ok', extra: 1 }), 400, 'PH_5001', /"extra"/)
      expectError(await call('POST', '/api/accounts', {}), 400, 'PH_5001', /"name"/)
      expectError(await call('GET', '/api/accounts?colour=red'), 400, 'PH_5001', /query parameter "colour"/)
    })

    it('refuses a streamed (chunked) body over the limit too, and the server keeps serving', async () => {
      // One chunk past the limit, then the client waits: everything it sent is read, so the answer is never lost
      // to a reset (a client still sending when the server closes may see ECONNRESET instead, as with any server).
      const size = 65 * 1024
      const head = `POST /api/accounts HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer ${key}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n`
      const reply = await rawRequest(gw.apiPort!, `${head}${size.toString(16)}\r\n${'a'.repeat(size)}\r\n`)
      expect(reply).toMatch(/^HTTP\/1\.1 413 /)
      expect(reply).toMatch(/connection: close/i)
      expect(JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4))).toMatchObject({ error_code: 'PH_5007', status_code: 413 })
      expect((await call('GET', '/api/accounts')).status).toBe(200)
    })
  })

  it('limits request headers to 16 KiB (the JSON error, then close)', async () => {
    const head = (size: number): string => `GET /api/accounts HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer ${key}\r\nx-pad: ${'p'.repeat(size)}\r\nconnection: close\r\n\r\n`
    expect(await rawRequest(gw.apiPort!, head(15 * 1024))).toMatch(/^HTTP\/1\.1 200 /)
    const over = await rawRequest(gw.apiPort!, head(17 * 1024))
    expect(over).toMatch(/^HTTP\/1\.1 400 /)
    expect(over).toMatch(/"error_code":"PH_5001".*HPE_HEADER_OVERFLOW/)
  })

  it('closes a connection whose headers are not complete within the default 10 s header timeout', async () => {
    const connection = rawConnect(gw.apiPort!)
    await connection.connected
    const started = Date.now()
    connection.socket.write('GET /api/accounts HTTP/1.1\r\nhost: local')
    await connection.closed
    expect(Date.now() - started).toBeGreaterThanOrEqual(9_900)
    expect(connection.received()).toMatch(/"error_code":"PH_3020"/)
  })

  it('ends a request still not complete 30 s after it began, however steadily its body trickles in', async () => {
    const connection = rawConnect(gw.apiPort!)
    const socket = connection.socket
    await connection.connected
    const started = Date.now()
    socket.write(`POST /api/accounts HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer ${key}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n`)
    const drip = setInterval(() => socket.write(' '), 1000) // never idle, never done
    await connection.closed
    clearInterval(drip)
    expect(Date.now() - started).toBeGreaterThanOrEqual(29_900)
    expect(connection.received()).toMatch(/"error_code":"PH_3020"/)
  }, 60_000)

  it('answers malformed HTTP with the same JSON error and closes', async () => {
    const socket = createConnection(gw.apiPort!, '127.0.0.1')
    socket.end('GET /api/accounts HTTP/1.1\r\nbad header line\r\n\r\n')
    let text = ''
    for await (const chunk of socket) text += String(chunk)
    expect(text).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/)
    expect(JSON.parse(text.split('\r\n\r\n')[1]!)).toMatchObject({ error_code: 'PH_5001', status_code: 400, msg: expect.stringMatching(/^invalid HTTP request \(HPE_/) })
  })

  it('answers a request target that is no URL (absolute form, bad port) with 400, and keeps running', async () => {
    const socket = createConnection(gw.apiPort!, '127.0.0.1')
    socket.end('GET http://a:99999/ HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n')
    let text = ''
    for await (const chunk of socket) text += String(chunk)
    expect(text).toMatch(/^HTTP\/1\.1 400 /)
    expect(JSON.parse(text.split('\r\n\r\n')[1]!)).toMatchObject({ error_code: 'PH_5001', msg: 'invalid request target' })
    expect((await call('GET', '/api/accounts')).status).toBe(200)
  })

  describe('accounts', () => {
    it('creates, shows, lists and deletes; refuses bad and duplicate names', async () => {
      const created = await call('POST', '/api/accounts', { name: 'Ann' })
      expect(created.status).toBe(201)
      expect(created.headers.location).toBe('/api/accounts/ann')
      expect(created.body).toEqual({ name: 'ann', uri: '/api/accounts/ann', created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) })
      expectError(await call('POST', '/api/accounts', { name: 'ann' }), 409, 'PH_5002', /account ann already exists/)
      expectError(await call('POST', '/api/accounts', { name: 'not_valid!' }), 400, 'PH_5001', /invalid account name "not_valid!"/)
      expectError(await call('POST', '/api/accounts', { name: 42 }), 400, 'PH_5001', /"name"/)
      expect((await call('GET', '/api/accounts/ann')).body.name).toBe('ann')
      expect((await call('GET', '/api/accounts')).body.accounts.map((a: { name: string }) => a.name)).toContain('ann')
      await call('POST', '/api/accounts', { name: 'gone' })
      expect((await call('DELETE', '/api/accounts/gone')).status).toBe(204)
      expectError(await call('GET', '/api/accounts/gone'), 404, 'PH_5003', /account "gone" not found/)
      expectError(await call('DELETE', '/api/accounts/gone'), 404, 'PH_5003')
    })
  })

  describe('keys', () => {
    it('adds a public key with an ACL, lists it by account, shows and removes it', async () => {
      await call('POST', '/api/accounts', { name: 'keyed' })
      const added = await call('POST', '/api/keys', { account: 'keyed', public_key: pub('bob'), acl: ['bind:*.keyed.localhost', 'bind:tcp:21022'] })
      expect(added.status, added.text).toBe(201)
      expect(added.body).toMatchObject({
        id: expect.stringMatching(/^key_/), account: 'keyed', fingerprint: expect.stringMatching(/^SHA256:/),
        public_key: expect.stringMatching(/^ssh-ed25519 AAAA\S+$/), acl: ['bind:*.keyed.localhost', 'bind:tcp:21022'], description: 'bob@porthole-test',
      })
      expect(added.headers.location).toBe(`/api/keys/${added.body.id}`)
      expect((await call('GET', '/api/keys?account=keyed')).body.keys).toEqual([added.body])
      expect((await call('GET', `/api/keys/${added.body.id}`)).body).toEqual(added.body)
      expectError(await call('POST', '/api/keys', { account: 'ann', public_key: pub('bob') }), 409, 'PH_5002', /key SHA256:\S+ already exists/)
      expect((await call('DELETE', `/api/keys/${added.body.id}`)).status).toBe(204)
      expectError(await call('GET', `/api/keys/${added.body.id}`), 404, 'PH_5003')
      expect((await call('GET', '/api/keys?account=keyed')).body.keys).toEqual([])
    })

    it('refuses malformed keys, bad ACLs and unknown accounts with codes', async () => {
      expectError(await call('POST', '/api/keys', { account: 'ann', public_key: 'ssh-ed25519 AAAAnotbase64' }), 400, 'PH_5001', /invalid public key/)
      expectError(await call('POST', '/api/keys', { account: 'ann', public_key: readFileSync(join(FIXTURES, 'keys', 'carol'), 'utf8') }), 400, 'PH_5001', /public key/)
      expectError(await call('POST', '/api/keys', { account: 'ann', public_key: pub('carol'), acl: ['allow:everything'] }), 400, 'PH_5001', /ACL entry "allow:everything"/)
      expectError(await call('POST', '/api/keys', { account: 'ann', public_key: pub('carol'), acl: ['bind:tcp:70000'] }), 400, 'PH_5001', /1-65535/)
      expectError(await call('POST', '/api/keys', { account: 'ann', public_key: pub('carol'), acl: 'bind:*' }), 400, 'PH_5001', /"acl"/)
      expectError(await call('POST', '/api/keys', { account: 'nobody', public_key: pub('carol') }), 404, 'PH_5003', /account "nobody"/)
      expectError(await call('GET', '/api/keys?account=nobody'), 404, 'PH_5003')
    })
  })

  describe('tokens', () => {
    it('shows the token once at creation and never a hash; revoked tokens are gone', async () => {
      const created = await call('POST', '/api/tokens', { account: 'ann', acl: ['bind:demo.localhost'], description: 'ci' })
      expect(created.status).toBe(201)
      expect(created.body).toEqual({
        id: expect.stringMatching(/^tok_/), uri: `/api/tokens/${created.body.id}`, account: 'ann', acl: ['bind:demo.localhost'],
        description: 'ci', created_at: expect.any(String), token: expect.stringMatching(new RegExp(`^${created.body.id}\\.[\\w-]{40,}$`)),
      })
      expect(created.text).not.toMatch(/scrypt|hash/)
      // The token logs in (what SSH password logins check).
      expect((await gw.identity.verifyToken(created.body.token))?.id).toBe(created.body.id)
      const listed = await call('GET', '/api/tokens?account=ann')
      const shown = await call('GET', `/api/tokens/${created.body.id}`)
      for (const answer of [listed, shown]) {
        expect(answer.text).not.toMatch(/scrypt|hash|"token"/)
        expect(answer.text).not.toContain(created.body.token.split('.')[1])
      }
      const { token, ...record } = created.body
      expect(shown.body).toEqual(record)
      expectError(await call('POST', '/api/tokens', { account: 'ann', acl: ['bind:'] }), 400, 'PH_5001', /ACL entry/)
      expectError(await call('POST', '/api/tokens', { account: 'ann', description: 'two\nlines' }), 400, 'PH_5001', /description/)
      expect((await call('DELETE', `/api/tokens/${created.body.id}`)).status).toBe(204)
      expect(await gw.identity.verifyToken(token)).toBeUndefined()
      expectError(await call('DELETE', `/api/tokens/${created.body.id}`), 404, 'PH_5003')
    })
  })

  describe('reservations', () => {
    it('reserves domains and pool ports; another account gets 409 PH_5004; bad values 400', async () => {
      await call('POST', '/api/accounts', { name: 'bea' })
      const domain = await call('POST', '/api/reservations', { account: 'ann', kind: 'domain', value: 'shop' })
      expect(domain.status, domain.text).toBe(201)
      expect(domain.body).toEqual({ id: expect.stringMatching(/^res_/), uri: `/api/reservations/${domain.body.id}`, account: 'ann', kind: 'domain', value: 'shop.localhost', created_at: expect.any(String) })
      const wildcard = await call('POST', '/api/reservations', { account: 'ann', kind: 'domain', value: '*.ann.localhost' })
      expect(wildcard.status).toBe(201)
      const port = await call('POST', '/api/reservations', { account: 'ann', kind: 'tcp', value: 21022 })
      expect(port.body).toMatchObject({ kind: 'tcp', value: '21022' })
      expectError(await call('POST', '/api/reservations', { account: 'bea', kind: 'domain', value: 'shop.localhost' }), 409, 'PH_5004', /shop\.localhost is reserved by another account/)
      expectError(await call('POST', '/api/reservations', { account: 'bea', kind: 'domain', value: 'x.ann.localhost' }), 409, 'PH_5004')
      expectError(await call('POST', '/api/reservations', { account: 'bea', kind: 'tcp', value: '21022' }), 409, 'PH_5004')
      expectError(await call('POST', '/api/reservations', { account: 'ann', kind: 'domain', value: 'shop' }), 409, 'PH_5002')
      expectError(await call('POST', '/api/reservations', { account: 'bea', kind: 'tcp', value: 80 }), 400, 'PH_5001', /pool is 21000-21099/)
      expectError(await call('POST', '/api/reservations', { account: 'bea', kind: 'tcp', value: 'abc' }), 400, 'PH_5001')
      expectError(await call('POST', '/api/reservations', { account: 'bea', kind: 'udp', value: '1' }), 400, 'PH_5001', /"kind"/)
      expectError(await call('POST', '/api/reservations', { account: 'bea', kind: 'domain', value: 'bad_name!' }), 400, 'PH_5001', /domain/)
      expect((await call('GET', '/api/reservations?account=ann')).body.reservations).toHaveLength(3)
      expect((await call('GET', '/api/reservations?account=bea')).body.reservations).toEqual([])
      expect((await call('GET', `/api/reservations/${port.body.id}`)).body).toEqual(port.body)
      expect((await call('DELETE', `/api/reservations/${port.body.id}`)).status).toBe(204)
      expect((await call('POST', '/api/reservations', { account: 'bea', kind: 'tcp', value: '21022' })).status).toBe(201)
    })
  })

  describe('pagination', () => {
    it('pages every list with limit and after, and next_page_uri walks them all', async () => {
      const names = Array.from({ length: 7 }, (_, i) => `page-${i}`)
      await Promise.all(names.map((name) => call('POST', '/api/accounts', { name })))
      const all = (await call('GET', '/api/accounts?limit=100')).body.accounts.map((a: { name: string }) => a.name)
      expect(all).toEqual([...all].sort())
      expect(all).toEqual(expect.arrayContaining(names))
      const seen: string[] = []
      let uri: string | null = '/api/accounts?limit=3'
      let pages = 0
      while (uri !== null) {
        const page: Answer = await call('GET', uri)
        expect(page.status).toBe(200)
        expect(page.body.accounts.length).toBeLessThanOrEqual(3)
        seen.push(...page.body.accounts.map((a: { name: string }) => a.name))
        uri = page.body.next_page_uri
        pages++
      }
      expect(seen).toEqual(all)
      expect(pages).toBe(Math.ceil(all.length / 3))
      // Filters carry into next pages.
      for (let i = 0; i < 3; i++) await call('POST', '/api/tokens', { account: 'bea' })
      const first = await call('GET', '/api/tokens?account=bea&limit=2')
      expect(first.body.next_page_uri).toMatch(/^\/api\/tokens\?account=bea&limit=2&after=tok_/)
      const second = await call('GET', first.body.next_page_uri)
      expect(second.body.tokens).toHaveLength(1)
      expect(second.body.next_page_uri).toBeNull()
      expect(second.body.tokens.every((t: { account: string }) => t.account === 'bea')).toBe(true)
      const defaults = await call('GET', '/api/reservations')
      expect(defaults.body).toMatchObject({ uri: '/api/reservations', next_page_uri: null })
      for (const bad of ['0', '101', 'x', '-1', '2.5']) expectError(await call('GET', `/api/accounts?limit=${bad}`), 400, 'PH_5001', /limit/)
    })
  })

  describe('live sessions and endpoints', () => {
    it('shows a real ssh session with its endpoints, and DELETE kills it and unbinds', async () => {
      const upstream = await startUpstream()
      try {
        await call('POST', '/api/accounts', { name: 'live' })
        const added = await call('POST', '/api/keys', { account: 'live', public_key: pub('alice') })
        expect(added.status).toBe(201)
        const client = connect({ kind: 'openssh', port: gw.sshPort, key: gw.key('alice', 'openssh'), forwards: [`livesite:80:localhost:${upstream.port}`], command: 'http' })
        const [url] = await client.urls(1)
        expect((await fetchVia(gw, url!)).status).toBe(200)

        const sessions = (await call('GET', '/api/sessions')).body.sessions
        const session = sessions.find((s: { account: string }) => s.account === 'live')
        expect(session).toMatchObject({
          id: expect.any(String),
          account: 'live',
          credential: { kind: 'key', id: added.body.id },
          fingerprint: added.body.fingerprint,
          client_type: 'ssh',
          client_version: expect.stringMatching(/OpenSSH/),
          remote_addr: '127.0.0.1',
          remote_port: expect.any(Number),
          started_at: expect.stringMatching(/^\d{4}-/),
        })
        expect(session.bytes_in).toBeGreaterThan(0)
        expect(session.bytes_out).toBeGreaterThan(0)
        expect(session.endpoints).toHaveLength(1)
        expect(session.endpoints[0]).toMatchObject({ proto: 'http', host: 'livesite.localhost', session_id: session.id, account: 'live' })
        expect(session.endpoints[0].urls).toContain(url)
        expect((await call('GET', `/api/sessions/${session.id}`)).body).toMatchObject({ id: session.id, account: 'live' })

        const endpoints = (await call('GET', '/api/endpoints?account=live')).body
        expect(endpoints.endpoints).toEqual([{ ...session.endpoints[0], uri: `/api/endpoints/${session.endpoints[0].id}` }])
        expect((await call('GET', `/api/endpoints/${session.endpoints[0].id}`)).body.host).toBe('livesite.localhost')

        expect((await call('DELETE', `/api/sessions/${session.id}`)).status).toBe(204)
        expect([404, 503]).toContain((await fetchVia(gw, url!)).status)
        expect(await client.exited).not.toBe(0)
        expect(client.output).toMatch(/PH_1026: session closed by the gateway operator/)
        await eventually(async () => (await call('GET', `/api/sessions/${session.id}`)).status === 404)
        expectError(await call('DELETE', `/api/sessions/${session.id}`), 404, 'PH_5003', /session/)
        expect((await call('GET', '/api/endpoints?account=live')).body.endpoints).toEqual([])
      } finally {
        await upstream.close()
      }
    })
  })
})
