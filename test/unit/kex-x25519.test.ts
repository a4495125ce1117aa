// The curve25519 exchange's public keys as JWK instead of DER (src/agents/ssh/kex-x25519.ts): ssh2 1.17's class is
// patched through the first exchange a server sees, its replacements give exactly what ssh2's own methods give,
// refuse what they refused, and later handshakes complete with them.
import { generateKeyPairSync } from 'node:crypto'
import type { AddressInfo } from 'node:net'
import ssh2 from 'ssh2'
import { afterAll, describe, expect, it } from 'vitest'
import { kexPatch, patchKeyExchange, toMpint } from '../../src/agents/ssh/kex-x25519.js'
import { freshPrivateKey } from '../ssh-keys.js'

const { Client, Server, utils } = ssh2

interface Kex { getPublicKey (): Buffer, computeSecret (key: Buffer): Buffer | Error, _keys: unknown }

const exchanges: Kex[] = []
const server = new Server({ hostKeys: [freshPrivateKey()] }, (client) => {
  client.on('error', () => {})
  client.once('handshake', () => {
    const kex = (client as unknown as { _protocol: { _kex: Kex } })._protocol._kex
    patchKeyExchange(kex)
    exchanges.push(kex)
  })
  client.on('authentication', (ctx) => ctx.accept())
  client.on('ready', () => client.end())
})
const listening = new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)))
afterAll(() => server.close())

async function connect (): Promise<void> {
  const port = await listening
  await new Promise<void>((resolve, reject) => {
    const client = new Client()
    client.on('error', reject)
    client.on('ready', () => { client.end(); resolve() })
    client.connect({ host: '127.0.0.1', port, username: 'test', algorithms: { kex: ['curve25519-sha256'] } })
  })
}

describe('curve25519 key exchange through JWK', () => {
  it('patches ssh2 1.17\'s class at the first exchange (fails when ssh2 changes: review kex-x25519.ts)', async () => {
    await connect()
    expect(kexPatch()?.patched).toBe(true)
  })

  it('gives what ssh2\'s own methods give, and refuses what they refuse', async () => {
    await connect() // an exchange made with the patched methods
    const kex = exchanges.at(-1)!
    const { original } = kexPatch()!
    expect(kex._keys).not.toBeNull()
    expect(kex.getPublicKey()).toEqual(original.getPublicKey.call(kex))
    expect(kex.getPublicKey()).toHaveLength(32)
    for (let i = 0; i < 50; i++) {
      const peer = generateKeyPairSync('x25519').publicKey.export({ format: 'jwk' }).x!
      const raw = Buffer.from(peer, 'base64url')
      expect(kex.computeSecret(raw)).toEqual(original.computeSecret.call(kex, raw))
    }
    for (const bad of [Buffer.alloc(31, 9), Buffer.alloc(33, 9), Buffer.alloc(32)]) {
      expect(original.computeSecret.call(kex, bad)).toBeInstanceOf(Error)
      expect(kex.computeSecret(bad)).toBeInstanceOf(Error)
    }
  })

  it('completes handshakes afterwards', async () => {
    for (let i = 0; i < 5; i++) await connect()
  })

  it('encodes a secret as ssh2 does: no leading zeros, a zero before a high bit', () => {
    expect(toMpint(Buffer.from([0, 0, 1, 2]))).toEqual(Buffer.from([1, 2]))
    expect(toMpint(Buffer.from([0, 0x80, 1]))).toEqual(Buffer.from([0, 0x80, 1]))
    expect(toMpint(Buffer.from([0x80, 1]))).toEqual(Buffer.from([0, 0x80, 1]))
    expect(toMpint(Buffer.from([0x7f, 1]))).toEqual(Buffer.from([0x7f, 1]))
  })
})
