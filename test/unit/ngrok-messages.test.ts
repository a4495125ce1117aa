// The ngrok session RPC messages: parsers read both clients' casing and name what is wrong; replies carry what
// ngrok-rust's strict serde structs require; the JSON object detector finds the end of a request that has no
// length prefix and no FIN; the Proxy header is byte for byte what ngrok-rust reads.
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { PassThrough } from 'node:stream'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { PortholeError } from '../../src/core/errors.js'
import {
  authReply, bindReply, chooseVersion, clientAddr, decodeProxyHeader, echoOpts, errorReply, errorReplyFor, JsonValueReader,
  MAX_RPC_BYTES, ngrokError, parseAuth, parseBind, parseCommandResp, parsePatchTunnelState, parseSrvInfo, parseStartTunnelWithLabel,
  parseUnbind, proxyHeader, readJsonValue, srvInfoReply, startTunnelWithLabelReply, stopTunnelRequest, StreamType, unbindReply, updateRequest,
} from '../../src/agents/ngrok/messages.js'

const sample = (name: string): Record<string, unknown> => JSON.parse(readFileSync(resolve(import.meta.dirname, '../../fixtures/ngrok', name), 'utf8'))

function failure (run: () => unknown): string {
  try {
    run()
  } catch (error) {
    if (!(error instanceof PortholeError)) throw error
    return error.toLine()
  }
  return 'none'
}

/** What a serde struct without #[serde(default)] requires: each key present, exact casing, of this JSON type. */
type Shape = { [key: string]: 'string' | 'number' | 'boolean' | 'array' | 'object' | 'string|null' | 'number|null' | Shape }
function expectShape (value: unknown, shape: Shape, where = '$'): void {
  expect(value, where).toBeTypeOf('object')
  const object = value as Record<string, unknown>
  for (const [key, want] of Object.entries(shape)) {
    expect(Object.hasOwn(object, key), `${where}.${key} present`).toBe(true)
    const got = object[key]
    if (typeof want === 'object') expectShape(got, want, `${where}.${key}`)
    else if (want === 'array') expect(Array.isArray(got), `${where}.${key}`).toBe(true)
    else if (want.endsWith('|null')) expect(got === null || typeof got === want.slice(0, -5), `${where}.${key}`).toBe(true)
    else expect(typeof got, `${where}.${key}`).toBe(want)
  }
}

/** ngrok-rust's ErrResp::from (proto.rs): non-empty lines; one starting ERR_NGROK_ is the code, the rest the message. */
function rustErrResp (text: string): { msg: string, code: string | null } {
  const lines = text.split(/\r?\n/).filter((line) => line !== '')
  const code = lines.find((line) => line.startsWith('ERR_NGROK_'))
  return { msg: lines.filter((line) => !line.startsWith('ERR_NGROK_')).join('\n'), code: code?.trim() ?? null }
}

describe('stream types', () => {
  it('are ngrok-go msg.go / ngrok-rust proto.rs numbers', () => {
    expect(StreamType).toEqual({ Auth: 0, Bind: 1, Unbind: 2, Proxy: 3, Restart: 4, Stop: 5, Update: 6, StartTunnelWithLabel: 7, SrvInfo: 8, StopTunnel: 9, PatchTunnelState: 10, Heartbeat: 0xFFFFFFFF })
  })
})

describe('Auth', () => {
  it('reads ngrok-rust (AuthToken) and ngrok-go (Authtoken) alike', () => {
    const rust = parseAuth(sample('rust-auth.json'))
    const go = parseAuth(sample('go-auth.json'))
    expect(rust.extra.authToken).toBe('2abcTOKEN')
    expect(go.extra.authToken).toBe('2abcTOKEN')
    expect(rust.versions).toEqual(['3', '2'])
    expect(rust.extra.heartbeatIntervalNs).toBe(10_000_000_000)
    expect(rust.extra.stopUnsupportedError).toBe('the agent has no defined callback for this operation')
    expect(go.extra.stopUnsupportedError).toBeNull()
    expect(go.extra.clientType).toBe('ngrok-go')
    expect(chooseVersion(rust)).toBe('3')
    expect(chooseVersion(parseAuth({ Version: ['2'] }))).toBe('2')
    expect(chooseVersion(parseAuth({ Version: ['9'] }))).toBeNull()
  })

  it('reads any casing, and refuses two keys differing only in case', () => {
    expect(parseAuth({ version: ['3'], CLIENTID: 'c1', extra: { authtoken: 't', hEaRtBeAtInTeRvAl: 5 } })).toMatchObject({ clientId: 'c1', extra: { authToken: 't', heartbeatIntervalNs: 5 } })
    expect(failure(() => parseAuth({ Version: ['3'], Extra: { AuthToken: 'a', Authtoken: 'b' } }))).toBe('PH_1070: malformed ngrok message: Extra.AuthToken: given twice (keys differing only in case)')
  })

  it('names the field and value that are wrong, hiding secrets', () => {
    expect(failure(() => parseAuth({ Version: ['3'], Extra: { HeartbeatInterval: '10s' } }))).toBe('PH_1070: malformed ngrok message: Extra.HeartbeatInterval: want a number, not "10s"')
    expect(failure(() => parseAuth({ Version: '3' }))).toBe('PH_1070: malformed ngrok message: Version: want an array, not "3"')
    expect(failure(() => parseAuth({}))).toBe('PH_1070: malformed ngrok message: Version: want an array, not nothing')
    expect(failure(() => parseAuth({ Version: ['3'], Extra: { AuthToken: 12345 } }))).toBe('PH_1070: malformed ngrok message: Extra.AuthToken: want a string, not (hidden)')
    expect(failure(() => parseAuth([1]))).toMatch(/^PH_1070: malformed ngrok message: message: want an object/)
  })

  it('replies with what ngrok-rust AuthResp requires (Version, ClientId; Extra optional fields) and ngrok-go Error', () => {
    const reply = JSON.parse(authReply({ version: '3', clientId: 'c1', extra: { region: 'local', cookie: 'k' } }))
    expectShape(reply, { Version: 'string', ClientId: 'string', Error: 'string', Extra: { Version: 'string|null', Region: 'string|null', Cookie: 'string|null', AccountName: 'string|null', SessionDuration: 'number|null', PlanName: 'string|null', Banner: 'string|null' } })
    expect(reply).toMatchObject({ Version: '3', ClientId: 'c1', Error: '', Extra: { Region: 'local', Cookie: 'k', Banner: null } })
  })
})

describe('Bind', () => {
  it('reads ngrok-rust http, tcp and tls binds', () => {
    const http = parseBind(sample('rust-bind-http.json'))
    expect(http.proto).toBe('https')
    if (http.proto !== 'https') throw new Error('narrowing')
    expect(http.opts.BasicAuth?.credentials).toEqual([{ username: 'ann', cleartext_password: 's3cret-pw', hashed_password: '' }])
    expect(http.opts.LocalUrlScheme).toBe('')
    expect(http.forwardsTo).toBe('http://localhost:3000/')
    const tcp = parseBind(sample('rust-bind-tcp.json'))
    expect(tcp).toMatchObject({ proto: 'tcp', opts: { ProxyProto: 2, IPRestriction: { allow_cidrs: ['10.0.0.0/8'], deny_cidrs: [] } } })
    expect(parseBind(sample('rust-bind-tls.json'))).toMatchObject({ proto: 'tls', opts: { Domain: 'app.example.com', MutualTLSAtAgent: false } })
  })

  it('reads ngrok-go binds (LocalURLScheme, URL, Policy, null Bindings)', () => {
    const go = parseBind(sample('go-bind-http.json'))
    expect(go).toMatchObject({ proto: 'https', forwardsTo: 'localhost:8080', opts: { URL: 'https://app.example.com', LocalUrlScheme: '' }, extra: { name: 'web', bindings: [] } })
  })

  it('refuses unknown options that ask for something, ignores those at their zero value', () => {
    const base = sample('rust-bind-http.json')
    const withOpts = (extra: Record<string, unknown>) => ({ ...base, Opts: { ...(base.Opts as object), ...extra } })
    expect(failure(() => parseBind(withOpts({ Frobnicate: true })))).toBe('PH_1074: unknown ngrok option Opts.Frobnicate')
    expect(failure(() => parseBind(withOpts({ Frobnicate: {} })))).toBe('PH_1074: unknown ngrok option Opts.Frobnicate')
    expect(failure(() => parseBind(withOpts({ BasicAuth: { credentials: [{ username: 'a', cleartext_password: 'b', totp: 'x' }] } })))).toBe('PH_1074: unknown ngrok option Opts.BasicAuth.credentials[0].totp')
    expect(failure(() => parseBind(withOpts({ Frobnicate: null, Other: '', Flag: false, N: 0, L: [] })))).toBe('none')
  })

  it('a "__proto__" key is an unknown option, never a prototype that lends the schema its fields', () => {
    const text = '{"Proto":"https","Opts":{"__proto__":{"BasicAuth":{"credentials":[{"username":"a","cleartext_password":"b"}]}}}}'
    expect(failure(() => parseBind(JSON.parse(text)))).toBe('PH_1074: unknown ngrok option Opts.__proto__')
    const auth = parseAuth(JSON.parse('{"Version":["3"],"Extra":{"__proto__":{"AuthToken":"x"}}}'))
    expect(auth.extra.authToken).toBe('')
  })

  it('names a mistyped option and a bad Proto', () => {
    const base = sample('rust-bind-http.json')
    expect(failure(() => parseBind({ ...base, Opts: { ProxyProto: '1' } }))).toBe('PH_1070: malformed ngrok message: Opts.ProxyProto: want a number, not "1"')
    expect(failure(() => parseBind({ ...base, Opts: { IPRestriction: { allow_cidrs: '10.0.0.0/8' } } }))).toBe('PH_1070: malformed ngrok message: Opts.IPRestriction.allow_cidrs: want an array, not "10.0.0.0/8"')
    expect(failure(() => parseBind({ ...base, Opts: 'x' }))).toBe('PH_1070: malformed ngrok message: Opts: want an object ("x")')
    expect(failure(() => parseBind({ ...base, Proto: 'ssh' }))).toBe('PH_1072: bad value for ngrok option Proto "ssh" (want http, https, tcp or tls)')
    expect(failure(() => parseBind({ ...base, Proto: undefined }))).toBe('PH_1070: malformed ngrok message: Proto: want a string, not nothing')
  })

  it('replies with the request\'s Opts echoed and every key ngrok-rust BindResp<T> requires', () => {
    for (const [file, opts] of [
      ['rust-bind-http.json', { Domain: 'string', Hostname: 'string', Auth: 'string', Subdomain: 'string', HostHeaderRewrite: 'boolean', ProxyProto: 'number' }],
      ['rust-bind-tcp.json', { Addr: 'string', ProxyProto: 'number' }],
      ['rust-bind-tls.json', { Hostname: 'string', Subdomain: 'string', ProxyProto: 'number', MutualTLSAtAgent: 'boolean' }],
    ] as const) {
      const bind = parseBind(sample(file))
      const reply = JSON.parse(bindReply({ id: 'tn_1', url: 'https://x.example.com', proto: bind.proto, opts: echoOpts(bind), token: 'tok' }))
      expectShape(reply, { Id: 'string', URL: 'string', Proto: 'string', Opts: opts, Error: 'string', Extra: { Token: 'string', TunnelID: 'string' } })
      expect(reply.Opts).toEqual(sample(file).Opts) // a faithful echo: ngrok-rust keeps it (ProxyProto, TLSTermination) and re-binds with it
    }
  })

  it('fills the keys ngrok-rust requires when an agent left them out (ngrok-go sends URL instead of Hostname ...)', () => {
    const bind = parseBind({ Proto: 'http', Opts: { URL: 'https://a.example.com', hostheaderrewrite: true } })
    expect(echoOpts(bind)).toEqual({ URL: 'https://a.example.com', hostheaderrewrite: true, Hostname: '', Auth: '', Subdomain: '', ProxyProto: 0 })
    expect(echoOpts(parseBind({ Proto: 'tcp', Opts: null }))).toEqual({ Addr: '', ProxyProto: 0 })
  })
})

describe('the other RPCs', () => {
  it('Unbind, SrvInfo, StartTunnelWithLabel, PatchTunnelState', () => {
    expect(parseUnbind({ Id: 'tn_1', Extra: null })).toEqual({ id: 'tn_1' })
    expect(failure(() => parseUnbind({}))).toBe('PH_1070: malformed ngrok message: Id: want a string, not nothing')
    expect(JSON.parse(unbindReply())).toEqual({ Error: '' })
    expect(parseSrvInfo({})).toEqual({})
    expect(JSON.parse(srvInfoReply('local'))).toEqual({ Region: 'local' })
    expect(parseStartTunnelWithLabel({ Labels: { edge: 'edghts_1' }, ForwardsTo: 'x', ForwardsProto: '', Metadata: '' })).toEqual({ labels: { edge: 'edghts_1' }, forwardsTo: 'x', forwardsProto: '', metadata: '' })
    expect(JSON.parse(startTunnelWithLabelReply('tn_2'))).toEqual({ Id: 'tn_2', Error: '' })
    expect(parsePatchTunnelState({ TunnelId: 'tn_1', Name: null, PoolingEnabled: true })).toEqual({ tunnelId: 'tn_1', poolingEnabled: true })
  })

  it('server requests carry what ngrok-rust reads (StopTunnel: Id, Message required; Update: Version, PermitMajorVersion)', () => {
    expectShape(JSON.parse(stopTunnelRequest({ id: 'tn_1', message: 'endpoint removed by the operator' })), { Id: 'string', Message: 'string', ErrorCode: 'string|null' })
    expect(JSON.parse(stopTunnelRequest({ id: 'tn_1', message: 'm', errorCode: 'PH_1026' })).ErrorCode).toBe('PH_1026')
    expect(JSON.parse(updateRequest({ version: '', permitMajorVersion: false }))).toEqual({ Version: '', PermitMajorVersion: false })
    expect(parseCommandResp({})).toEqual({ error: null })
    expect(parseCommandResp({ Error: 'the agent has no defined callback for this operation' })).toEqual({ error: 'the agent has no defined callback for this operation' })
  })
})

describe('errors', () => {
  it('errorReply is ngrok\'s {"Error": "message\\n\\nERR_NGROK_nnn"}, never empty', () => {
    expect(JSON.parse(errorReply('authentication failed', 'ERR_NGROK_107'))).toEqual({ Error: 'authentication failed\n\nERR_NGROK_107' })
    expect(rustErrResp(JSON.parse(errorReply('authentication failed', 'ERR_NGROK_107')).Error)).toEqual({ msg: 'authentication failed', code: 'ERR_NGROK_107' })
    expect(JSON.parse(errorReply(''))).toEqual({ Error: 'error' }) // an empty Error is success to ngrok-rust
  })

  it('ngrokError is one line that ngrok-rust shows whole, code first', () => {
    const error = new PortholeError('PH_1071', 'Opts.MutualTLSCA (Porthole does not check client certificates)')
    expect(ngrokError(error)).toBe('PH_1071: this gateway cannot honour ngrok option Opts.MutualTLSCA (Porthole does not check client certificates)')
    const text = JSON.parse(errorReplyFor(error)).Error
    expect(rustErrResp(text)).toEqual({ msg: ngrokError(error), code: null })
    expect(ngrokError(new PortholeError('PH_1072', 'a\nb'))).not.toMatch(/\n/)
  })
})

describe('JsonValueReader', () => {
  const feedBytes = (text: string, reader = new JsonValueReader()) => {
    const bytes = Buffer.from(text)
    const results: unknown[] = []
    for (let i = 0; i < bytes.length; i++) {
      const value = reader.push(bytes.subarray(i, i + 1))
      if (value !== undefined) results.push({ at: i, value })
    }
    return results
  }

  it('says complete at the closing brace, byte by byte, strings with braces and escapes included', () => {
    const text = '  {"a":"}{\\"}","b":[{"c":"\\\\"},"]"],"d":{"e":"\\u007d"},"é":"💡"}'
    expect(feedBytes(text)).toEqual([{ at: Buffer.byteLength(text) - 1, value: JSON.parse(text) }])
  })

  it('takes whole chunks, and a real Auth split anywhere', () => {
    const text = readFileSync(resolve(import.meta.dirname, '../../fixtures/ngrok/rust-auth.json'))
    for (const cut of [1, 17, 100, text.length - 2]) {
      const reader = new JsonValueReader()
      expect(reader.push(text.subarray(0, cut))).toBeUndefined()
      expect(reader.push(text.subarray(cut))).toEqual(JSON.parse(text.toString()))
      expect(reader.done).toBe(true)
    }
  })

  it('refuses what is not one JSON object', () => {
    expect(failure(() => new JsonValueReader().push(Buffer.from('[1]')))).toBe('PH_1070: malformed ngrok message: want a JSON object, got "["')
    expect(failure(() => new JsonValueReader().push(Buffer.from('{"a":}')))).toMatch(/^PH_1070: malformed ngrok message: malformed JSON \(/)
    expect(failure(() => new JsonValueReader().push(Buffer.from('{"a":1}{')))).toBe('PH_1070: malformed ngrok message: "{" after the JSON object (one object per stream)')
    expect(failure(() => new JsonValueReader().push(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d])))).toMatch(/^PH_1070: malformed ngrok message: malformed JSON/)
    expect(failure(() => new JsonValueReader().push(Buffer.from('{"a":' + '['.repeat(100))))).toBe('PH_1070: malformed ngrok message: JSON nested deeper than 64 levels')
    const cut = new JsonValueReader()
    cut.push(Buffer.from('{"a":'))
    expect(failure(() => cut.end())).toBe('PH_1070: malformed ngrok message: the stream ended inside the JSON object (after 5 bytes)')
    expect(failure(() => new JsonValueReader().end())).toBe('PH_1070: malformed ngrok message: the stream ended before any JSON arrived')
    const done = new JsonValueReader()
    done.push(Buffer.from('{}'))
    expect(done.push(Buffer.from(' \r\n'))).toBeUndefined() // whitespace after it is harmless
  })

  it('refuses a message past the size cap before buffering more', () => {
    const reader = new JsonValueReader(1000)
    reader.push(Buffer.from('{"a":"'))
    expect(failure(() => { for (let i = 0; i < 10; i++) reader.push(Buffer.alloc(100, 0x61)) })).toBe('PH_1073: ngrok message larger than 1000 bytes')
    expect(failure(() => new JsonValueReader(10).push(Buffer.from(`{"a":"${'x'.repeat(100)}"}`)))).toBe('PH_1073: ngrok message larger than 10 bytes')
    expect(failure(() => new JsonValueReader(10).push(Buffer.from(' '.repeat(11))))).toBe('PH_1073: ngrok message larger than 10 bytes')
    expect(new JsonValueReader(9).push(Buffer.from('{"a":"b"}'))).toEqual({ a: 'b' }) // exactly at the cap
    expect(MAX_RPC_BYTES).toBe(1024 * 1024)
  })

  it('finds any JSON object however it is cut (property)', () => {
    const cuts = (length: number) => fc.uniqueArray(fc.integer({ min: 1, max: Math.max(1, length - 1) }), { maxLength: 8 }).map((points) => [...points].sort((a, b) => a - b))
    fc.assert(fc.property(fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 4 })).chain((object) => {
      const bytes = Buffer.from(JSON.stringify(object))
      return fc.tuple(fc.constant(object), fc.constant(bytes), cuts(bytes.length))
    }), ([object, bytes, points]) => {
      const reader = new JsonValueReader()
      const results: unknown[] = []
      let from = 0
      for (const at of [...points, bytes.length]) {
        const value = reader.push(bytes.subarray(from, at))
        if (value !== undefined) results.push(value)
        from = at
      }
      expect(results).toEqual([JSON.parse(JSON.stringify(object))])
    }), { numRuns: 300 })
  })

  it('any bytes at all: a value, a wait, or a PortholeError, never another failure (property)', () => {
    fc.assert(fc.property(fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 8 }), fc.constantFrom(...Buffer.from('{}[]"\\ :,ab1\n')), (chunks, byte) => {
      const reader = new JsonValueReader(256)
      try {
        for (const chunk of chunks) reader.push(chunk.map((b) => (b % 3 === 0 ? byte : b)))
        reader.end()
      } catch (error) {
        expect(error).toBeInstanceOf(PortholeError)
      }
    }), { numRuns: 500 })
  })

  it('readJsonValue resolves without the stream ending, and leaves it open for the reply', async () => {
    const stream = new PassThrough()
    const value = readJsonValue(stream)
    stream.write('{"Id":')
    stream.write('"tn_1"}')
    await expect(value).resolves.toEqual({ Id: 'tn_1' })
    expect(stream.destroyed).toBe(false)
    expect(stream.writable).toBe(true)
    expect(stream.listenerCount('data')).toBe(0)
  })

  it('readJsonValue rejects when the stream ends first or sends garbage', async () => {
    const ended = new PassThrough()
    const value = readJsonValue(ended)
    ended.end('{"Id":')
    await expect(value).rejects.toThrow('the stream ended inside the JSON object')
    const garbage = new PassThrough()
    const bad = readJsonValue(garbage)
    garbage.write('GET / HTTP/1.1\r\n')
    await expect(bad).rejects.toMatchObject({ code: 'PH_1070' })
  })
})

describe('Proxy header', () => {
  it('is int64 LE length + the JSON ngrok-rust ProxyHeader serialises (field order, exact casing, EdgeType a string)', () => {
    const json = '{"Id":"tn_1","ClientAddr":"203.0.113.7:51234","Proto":"https","EdgeType":"","PassthroughTLS":false}'
    const expected = Buffer.concat([Buffer.from([json.length, 0, 0, 0, 0, 0, 0, 0]), Buffer.from(json)])
    expect(proxyHeader({ id: 'tn_1', clientAddr: '203.0.113.7:51234', proto: 'https' })).toEqual(expected)
    const tls = proxyHeader({ id: 'tn_2', clientAddr: clientAddr('2001:db8::1', 443), proto: 'tls', edgeType: '2', passthroughTls: true })
    expect(tls.subarray(8).toString()).toBe('{"Id":"tn_2","ClientAddr":"[2001:db8::1]:443","Proto":"tls","EdgeType":"2","PassthroughTLS":true}')
    expect(tls.readBigInt64LE(0)).toBe(BigInt(tls.length - 8))
  })

  it('formats client addresses as Rust SocketAddr parses them', () => {
    expect(clientAddr('203.0.113.7', 80)).toBe('203.0.113.7:80')
    expect(clientAddr('::ffff:203.0.113.7', 80)).toBe('203.0.113.7:80')
    expect(clientAddr('::1', 80)).toBe('[::1]:80')
  })

  it('decodes for in-process agents: incomplete, whole with the bytes after it, and bad lengths', () => {
    const bytes = Buffer.concat([proxyHeader({ id: 'a', clientAddr: '1.2.3.4:5', proto: 'tcp' }), Buffer.from('payload')])
    expect(decodeProxyHeader(bytes.subarray(0, 7))).toBeUndefined()
    expect(decodeProxyHeader(bytes.subarray(0, 20))).toBeUndefined()
    const decoded = decodeProxyHeader(bytes)!
    expect(decoded.header).toEqual({ id: 'a', clientAddr: '1.2.3.4:5', proto: 'tcp', edgeType: '', passthroughTls: false })
    expect(bytes.subarray(decoded.length).toString()).toBe('payload')
    const negative = Buffer.alloc(8)
    negative.writeBigInt64LE(-1n)
    expect(failure(() => decodeProxyHeader(negative))).toBe('PH_1070: malformed ngrok message: proxy header length -1')
  })
})
