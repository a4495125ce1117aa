// Host-key signatures and client-key verification through KeyObjects made once (src/agents/ssh/key-objects.ts):
// the signatures are byte for byte ssh2's own, a client key read from its blob is the very key ssh2 parses,
// good signatures verify and everything else (other data, another key, a key named as another type, a blob
// with bytes missing or trailing) does not.
import { createPrivateKey, createPublicKey, sign, type KeyObject } from 'node:crypto'
import ssh2, { type ParsedKey } from 'ssh2'
import { describe, expect, it } from 'vitest'
import { blobJwk, publicKeyObject, signingHostKey, verifyLogin } from '../../src/agents/ssh/key-objects.js'
import { freshKeyPair, freshPrivateKey } from '../ssh-keys.js'

const { utils } = ssh2

function parsed (text: string): ParsedKey {
  const key = utils.parseKey(text)
  if (key instanceof Error) throw key
  return Array.isArray(key) ? key[0]! : key
}

/** A client key as a test agent holds it: its OpenSSH blob and a private KeyObject to sign with. */
function clientKey (type: 'ed25519' | 'rsa' | 'ecdsa', bits?: number): { blob: Buffer, type: string, privateKey: KeyObject, parsed: ParsedKey } {
  const pair = freshKeyPair(type, bits)
  const key = parsed(pair.private)
  return { blob: key.getPublicSSH(), type: key.type, privateKey: createPrivateKey(key.getPrivatePEM()), parsed: key }
}

const DATA = Buffer.from('session id + userauth request')

function signed (key: ReturnType<typeof clientKey>, hashAlgo?: string, data = DATA) {
  const hash = hashAlgo ?? ({ 'ssh-ed25519': null, 'ssh-rsa': 'sha1' } as Record<string, string | null>)[key.type]
    ?? { 'ecdsa-sha2-nistp256': 'sha256', 'ecdsa-sha2-nistp384': 'sha384', 'ecdsa-sha2-nistp521': 'sha512' }[key.type]!
  return { algo: key.type, data: key.blob, blob: DATA, signature: sign(hash, data, key.privateKey), ...(hashAlgo ? { hashAlgo } : {}) }
}

describe('host keys signing through a KeyObject', () => {
  it('signs exactly as ssh2 does (ed25519, RSA with each hash)', () => {
    for (const [type, algos] of [['ed25519', [undefined]], ['rsa', [undefined, 'sha256', 'sha512']]] as const) {
      const text = freshPrivateKey(type, type === 'rsa' ? 2048 : undefined)
      const ours = signingHostKey(text).key
      const theirs = parsed(text)
      for (const algo of algos) {
        const signature = ours.sign(DATA, algo)
        expect(signature).toBeInstanceOf(Buffer)
        expect(signature).toEqual(theirs.sign(DATA, algo))
        expect(theirs.verify(DATA, signature as Buffer, algo)).toBe(true)
      }
    }
  })

  it('returns an Error for a hash OpenSSL does not know, as ssh2 does', () => {
    const ours = signingHostKey(freshPrivateKey('rsa', 2048)).key
    expect(ours.sign(DATA, 'no-such-hash')).toBeInstanceOf(Error)
  })

  it('keeps the parsed key what ssh2 needs: type, public blob, private PEM', () => {
    const text = freshPrivateKey()
    const ours = signingHostKey(text).key
    expect(ours.type).toBe('ssh-ed25519')
    expect(ours.getPublicSSH()).toEqual(parsed(text).getPublicSSH())
    expect(ours.getPrivatePEM()).toBe(parsed(text).getPrivatePEM())
  })

  it('refuses a host key it cannot parse', () => {
    expect(() => signingHostKey('not a key')).toThrow(/Cannot parse host key/)
  })
})

describe('client keys read from their blob', () => {
  const keys = [
    clientKey('ed25519'), clientKey('rsa', 2048), clientKey('rsa', 3072),
    clientKey('ecdsa', 256), clientKey('ecdsa', 384), clientKey('ecdsa', 521),
  ]

  it('are the very key ssh2 parses from the same blob', () => {
    for (const key of keys) {
      const ours = publicKeyObject(key.type, key.blob)
      expect(ours, key.type).not.toBeNull()
      const theirs = createPublicKey(key.parsed.getPublicPEM())
      expect(ours!.export({ type: 'spki', format: 'der' })).toEqual(theirs.export({ type: 'spki', format: 'der' }))
    }
  })

  it('verify good signatures: each type, RSA with ssh-rsa (SHA-1), rsa-sha2-256 and rsa-sha2-512', () => {
    for (const key of keys) expect(verifyLogin(signed(key)), key.type).toBe(true)
    const rsa = keys[1]!
    expect(verifyLogin(signed(rsa, 'sha256'))).toBe(true)
    expect(verifyLogin(signed(rsa, 'sha512'))).toBe(true)
  })

  it('refuse a signature of other data, by another key, or with another hash than the one named', () => {
    for (const key of keys) expect(verifyLogin(signed(key, undefined, Buffer.from('other data'))), key.type).toBe(false)
    const [ed, rsa] = keys
    expect(verifyLogin({ ...signed(ed!), data: clientKey('ed25519').blob })).toBe(false)
    expect(verifyLogin({ ...signed(rsa!, 'sha256'), hashAlgo: 'sha512' })).toBe(false)
    expect(verifyLogin({ ...signed(ed!), signature: Buffer.alloc(64) })).toBe(false)
    expect(verifyLogin({ ...signed(ed!), signature: Buffer.alloc(3) })).toBe(false)
  })

  it('refuse a key named as another type than its blob says', () => {
    const [ed, rsa] = keys
    expect(verifyLogin({ ...signed(ed!), algo: 'ssh-rsa' })).toBe(false)
    expect(verifyLogin({ ...signed(rsa!), algo: 'ssh-ed25519' })).toBe(false)
    expect(verifyLogin({ ...signed(keys[3]!), algo: 'ecdsa-sha2-nistp384' })).toBe(false)
  })

  it('refuse a blob with bytes missing or trailing, a wrong curve name, a negative RSA modulus, an unknown type', () => {
    for (const key of keys) {
      expect(blobJwk(key.type, key.blob), key.type).not.toBeNull()
      expect(blobJwk(key.type, key.blob.subarray(0, key.blob.length - 1)), key.type).toBeNull()
      expect(blobJwk(key.type, Buffer.concat([key.blob, Buffer.alloc(1)])), key.type).toBeNull()
      expect(verifyLogin({ ...signed(key), data: Buffer.concat([key.blob, Buffer.alloc(4)]) }), key.type).toBe(false)
    }
    const p256 = keys[3]!
    const renamed = Buffer.from(p256.blob)
    renamed.write('nistp384', 4 + 'ecdsa-sha2-nistp256'.length + 4, 'latin1') // the curve name inside the blob
    expect(blobJwk(p256.type, renamed)).toBeNull()
    const rsa = keys[1]!
    const negative = Buffer.from(rsa.blob)
    const nAt = 4 + 7 + 4 + negative.readUInt32BE(11) // after the type and e: n's length, then n (0x00 first)
    expect(negative[nAt + 4]).toBe(0)
    negative[nAt + 4] = 0x80
    expect(blobJwk('ssh-rsa', negative)).toBeNull()
    expect(blobJwk('ssh-foo', Buffer.from('\0\0\0\x07ssh-foo'))).toBeNull()
    expect(verifyLogin({ algo: 'ssh-foo', data: Buffer.from('\0\0\0\x07ssh-foo'), blob: DATA, signature: Buffer.alloc(8) })).toBe(false)
    expect(verifyLogin({ algo: 'ssh-ed25519', data: Buffer.alloc(2), blob: DATA, signature: Buffer.alloc(8) })).toBe(false)
  })
})
