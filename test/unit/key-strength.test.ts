// RSA keys under 1024 bits are refused wherever a key comes in (identity/key-strength.ts): the size is read from
// the public key blob, exactly at the boundary, and the refusals name the key and its size.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import ssh2 from 'ssh2'
import { afterAll, describe, expect, it } from 'vitest'
import { parseAuthorizedKeys } from '../../src/identity/authorized-keys.js'
import { FileIdentityStore } from '../../src/identity/file-store.js'
import { Identity } from '../../src/identity/identity.js'
import { MIN_RSA_BITS, rsaModulusBits, weakKeyReason } from '../../src/identity/key-strength.js'
import { freshKeyPair } from '../ssh-keys.js'

/** The public key blob of an OpenSSH public key line. */
const blobOf = (line: string): Buffer => Buffer.from(line.split(' ')[1]!, 'base64')

const rsa768 = freshKeyPair('rsa', 768).public
const rsa1023 = freshKeyPair('rsa', 1023).public
const rsa1024 = freshKeyPair('rsa', 1024).public
const ed25519 = freshKeyPair('ed25519').public

const dirs: string[] = []
afterAll(() => { for (const dir of dirs) rmSync(dir, { recursive: true, force: true }) })

describe('key strength', () => {
  it('reads the modulus size of RSA blobs, and nothing from other blobs', () => {
    expect(rsaModulusBits(blobOf(rsa768))).toBe(768)
    expect(rsaModulusBits(blobOf(rsa1023))).toBe(1023)
    expect(rsaModulusBits(blobOf(rsa1024))).toBe(1024)
    expect(rsaModulusBits(blobOf(ed25519))).toBeNull()
    expect(rsaModulusBits(blobOf(rsa1024).subarray(0, 40))).toBeNull() // cut inside the modulus
    expect(rsaModulusBits(Buffer.alloc(0))).toBeNull()
  })

  it('calls RSA under 1024 bits weak, and names the size', () => {
    expect(MIN_RSA_BITS).toBe(1024)
    expect(weakKeyReason(blobOf(rsa768))).toBe('RSA, 768 bits; at least 1024')
    expect(weakKeyReason(blobOf(rsa1023))).toBe('RSA, 1023 bits; at least 1024')
    expect(weakKeyReason(blobOf(rsa1024))).toBeNull()
    expect(weakKeyReason(blobOf(ed25519))).toBeNull()
  })

  it('skips a weak key in an authorized_keys file with a line naming it, and keeps the others', () => {
    const { keys, errors } = parseAuthorizedKeys(`${rsa768}\n${rsa1024}\n`, 'keys')
    expect(keys).toHaveLength(1)
    expect(errors).toEqual([expect.stringMatching(/^keys:1: key SHA256:\S+ refused: too weak \(RSA, 768 bits; at least 1024\)$/)])
  })

  it('refuses to register a weak key (PH_5001), and registers a 1024-bit one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'porthole-key-strength-'))
    dirs.push(dir)
    const identity = new Identity(new FileIdentityStore(dir), { domain: 'example.com', tcpPorts: { lo: 1, hi: 2 } })
    await identity.createAccount('ann')
    const refused = identity.addKey('ann', rsa768)
    await expect(refused).rejects.toMatchObject({ code: 'PH_5001' })
    await expect(refused).rejects.toThrow(/^invalid public key SHA256:\S+: too weak \(RSA, 768 bits; at least 1024\); make a new one with ssh-keygen -t ed25519$/)
    expect(identity.listKeys('ann')).toHaveLength(0)
    await identity.addKey('ann', rsa1024)
    expect(identity.listKeys('ann')).toHaveLength(1)
    expect(ssh2.utils.parseKey(rsa1024)).not.toBeInstanceOf(Error)
  })
})
