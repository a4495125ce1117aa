// A finished key exchange cut down to what ssh2 still reads (src/agents/ssh/kex-trim.ts): the session id still
// signs logins (a publickey login verifies against it), a rekey started by the client completes from it, and
// channels work afterwards; the key pair and the handshake's closure are gone, the ident lines own their memory.
import type { AddressInfo } from 'node:net'
import ssh2, { type Connection } from 'ssh2'
import { afterAll, describe, expect, it } from 'vitest'
import { ownMemory, trimCiphers, trimExchange, withOwnBuffers } from '../../src/agents/ssh/kex-trim.js'
import { verifyLogin } from '../../src/agents/ssh/key-objects.js'
import { freshPrivateKey } from '../ssh-keys.js'

const { Client, Server, utils } = ssh2

type Internals = { _protocol: Parameters<typeof trimExchange>[0] & { _kex?: Record<string, unknown> } }
const seen: Array<{ kex: Record<string, unknown>, protocol: Internals['_protocol'] }> = []
let rekeys = 0
let onRekey = (): void => {}

const server = new Server({ hostKeys: [freshPrivateKey()], ident: 'Porthole' }, (client: Connection) => {
  client.on('error', () => {})
  client.on('handshake', () => {
    const protocol = (client as unknown as Internals)._protocol
    trimExchange(protocol)
    trimCiphers(protocol as Parameters<typeof trimCiphers>[0])
    seen.push({ kex: protocol!._kex!, protocol })
  })
  client.on('rekey', () => { rekeys++; onRekey() })
  client.on('authentication', (ctx) => {
    if (ctx.method !== 'publickey') return ctx.reject(['publickey'])
    if (!ctx.signature) return ctx.accept()
    const ok = verifyLogin({ algo: ctx.key.algo, data: ctx.key.data, blob: ctx.blob!, signature: ctx.signature, hashAlgo: ctx.hashAlgo })
    return ok ? ctx.accept() : ctx.reject(['publickey'])
  })
  client.on('session', (accept) => {
    const session = accept()
    session.on('exec', (accept) => {
      const stream = accept()
      stream.end('ok\n')
      stream.exit(0)
    })
  })
})
const listening = new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)))
afterAll(() => server.close())

/** Every small Buffer field of a cipher or decipher owns its memory. */
function ownsAll (cipher: object): boolean {
  return Object.values(cipher).every((v) => !Buffer.isBuffer(v) || v.length > 256 || v.buffer.byteLength === v.length)
}

function exec (client: InstanceType<typeof Client>): Promise<string> {
  return new Promise((resolve, reject) => client.exec('x', (error, stream) => {
    if (error) return reject(error)
    let out = ''
    stream.on('data', (chunk: Buffer) => { out += chunk })
    stream.on('close', () => resolve(out))
  }))
}

describe('a finished key exchange, trimmed', () => {
  it('still signs publickey logins, rekeys from its session id, and carries channels', async () => {
    const port = await listening
    const client = new Client()
    await new Promise<void>((resolve, reject) => {
      client.on('error', reject)
      client.on('ready', () => resolve())
      client.connect({ host: '127.0.0.1', port, username: 'test', privateKey: freshPrivateKey() })
    })
    const first = seen.at(-1)!
    const ciphers = first.protocol as unknown as { _cipher: object, _decipher: object }
    expect(ownsAll(ciphers._cipher) && ownsAll(ciphers._decipher)).toBe(true)
    expect(Object.keys(first.kex).sort()).toEqual(['negotiated', 'remoteExtInfoEnabled', 'sessionID'])
    expect(first.kex.sessionID).toBeInstanceOf(Uint8Array)
    expect(await exec(client)).toBe('ok\n')
    // The client starts a rekey (ssh2's Client has no public rekey(); its protocol does).
    const rekeyed = new Promise<void>((resolve) => { onRekey = resolve })
    ;(client as unknown as { _protocol: { rekey (): void } })._protocol.rekey()
    await rekeyed
    expect(rekeys).toBe(1)
    const second = seen.at(-1)!
    expect(second.kex).not.toBe(first.kex)
    expect(Buffer.from(second.kex.sessionID as Uint8Array)).toEqual(Buffer.from(first.kex.sessionID as Uint8Array)) // RFC 4253 7.2
    expect(await exec(client)).toBe('ok\n')
    const { _identRaw: ident, _remoteIdentRaw: remote } = first.protocol!
    expect(ident!.toString()).toBe('SSH-2.0-Porthole')
    expect(ident!.buffer.byteLength).toBe(ident!.length)
    expect(remote!.buffer.byteLength).toBe(remote!.length)
    client.end()
  })

  it('carries channels with each cipher after its buffers moved (AES-GCM, chacha20-poly1305, AES-CTR with an ETM and an EtM-less MAC)', async () => {
    const port = await listening
    for (const [cipher, hmac] of [['aes128-gcm@openssh.com', 'hmac-sha2-256-etm@openssh.com'], ['chacha20-poly1305@openssh.com', 'hmac-sha2-256-etm@openssh.com'], ['aes128-ctr', 'hmac-sha2-256-etm@openssh.com'], ['aes256-ctr', 'hmac-sha2-512']]) {
      const client = new Client()
      await new Promise<void>((resolve, reject) => {
        client.on('error', reject)
        client.on('ready', () => resolve())
        client.connect({ host: '127.0.0.1', port, username: 'test', privateKey: freshPrivateKey(), algorithms: { cipher: [cipher!] as never, hmac: [hmac!] as never } })
      })
      for (let i = 0; i < 3; i++) expect(await exec(client), cipher).toBe('ok\n')
      client.end()
    }
  })

  it('builds in unpooled memory inside withOwnBuffers, and pools again after it (also when it throws)', () => {
    const inside = withOwnBuffers(() => Buffer.allocUnsafe(16))
    expect(inside.buffer.byteLength).toBe(16)
    expect(Buffer.allocUnsafe(16).buffer.byteLength).toBeGreaterThan(16)
    expect(() => withOwnBuffers(() => { throw new Error('x') })).toThrow('x')
    expect(Buffer.allocUnsafe(16).buffer.byteLength).toBeGreaterThan(16)
  })

  it('shares one copy of our own ident line between connections', () => {
    // The connection above and its rekey, then a second connection's first exchange.
    const idents = seen.map((s) => s.protocol!._identRaw)
    expect(new Set(idents).size).toBe(1)
  })

  it('leaves an exchange it does not recognise (not finished) alone', () => {
    const kex = { _finished: false, sessionID: new Uint8Array(4), negotiated: { cs: {}, sc: {} } }
    const protocol = { _kex: kex }
    trimExchange(protocol)
    expect(protocol._kex).toBe(kex)
  })

  it('copies a buffer into memory of its own only when it shares some', () => {
    const own = Buffer.allocUnsafeSlow(8)
    expect(ownMemory(own)).toBe(own)
    const slice = Buffer.from('hello world').subarray(2, 5)
    const copy = ownMemory(slice)
    expect(copy).toEqual(Buffer.from('llo'))
    expect(copy.buffer.byteLength).toBe(3)
  })
})
