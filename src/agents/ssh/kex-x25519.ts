// ssh2's curve25519 key exchange moves its two public keys through DER: it exports the server's ephemeral
// public key as SubjectPublicKeyInfo and keeps the last 32 bytes, and wraps the client's 32 bytes in a DER
// SubjectPublicKeyInfo for createPublicKey. Through OpenSSL 3's encoder and decoder that is 122 + 161 µs per new
// SSH session on the issue 13 box; as a JWK (the same 32 raw bytes, base64url) it is 3 + 9 µs. This module
// replaces the two methods with the JWK form; the key generation and the X25519 derivation stay node:crypto's
// (generateKeyPairSync, diffieHellman), and so do the checks: OpenSSL refuses a key that is not 32 bytes and
// an all-zero shared secret (RFC 7748 6.1) as before.
//
// ssh2 does not export the class (it lives inside lib/protocol/kex.js's createKeyExchange), so it is reached
// through the first key exchange the server sees: `patchKeyExchange(protocol._kex)` after a 'handshake'. As
// with padding-pool.ts, the methods are replaced only if their source is, to the byte, what this was written
// from (ssh2 1.17.0); any other version keeps ssh2's code, and test/unit/kex-x25519.test.ts fails so that whoever
// upgrades ssh2 looks again.
import { createHash, createPublicKey, diffieHellman, type KeyObject } from 'node:crypto'

interface Curve25519Like {
  _keys: { publicKey: KeyObject, privateKey: KeyObject } | null
  generateKeys (): void
  getPublicKey (): Buffer
  computeSecret (otherPublicKey: Buffer): Buffer | Error
  constructor: { name: string }
}

const SOURCES = {
  getPublicKey: '4460fa846d2ae3795b00a68003c01545f7640697cb5e16e74fd6d7e2c6716881',
  computeSecret: '9b308ed0de0367e3bc36dcfff0ec52a98635cc2794e671e35eb900cb41d3bfd2',
} as const

/** ssh2's convertToMpint (kex.js): a secret as an SSH mpint's magnitude (no leading zeros, 0x00 before a high bit). */
export function toMpint (buf: Buffer): Buffer {
  let idx = 0
  while (idx < buf.length && buf[idx] === 0x00) idx++
  if (idx < buf.length && (buf[idx]! & 0x80) !== 0) {
    const out = Buffer.allocUnsafe(1 + buf.length - idx)
    out[0] = 0
    buf.copy(out, 1, idx)
    return out
  }
  return idx === 0 ? buf : buf.subarray(idx)
}

function getPublicKey (this: Curve25519Like): Buffer {
  this.generateKeys()
  return Buffer.from(this._keys!.publicKey.export({ format: 'jwk' }).x!, 'base64url')
}

function computeSecret (this: Curve25519Like, otherPublicKey: Buffer): Buffer | Error {
  this.generateKeys()
  try {
    if (otherPublicKey.length !== 32) throw new Error(`X25519 public key of ${otherPublicKey.length} bytes`)
    const publicKey = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: otherPublicKey.toString('base64url') }, format: 'jwk' })
    return toMpint(diffieHellman({ privateKey: this._keys!.privateKey, publicKey }))
  } catch (error) {
    return error as Error
  }
}

export interface KexPatch {
  /** ssh2's own methods, for the test that compares both. */
  readonly original: Pick<Curve25519Like, 'getPublicKey' | 'computeSecret'>
  readonly patched: boolean
}

let state: KexPatch | null = null

/** The patch once made (null: no curve25519 exchange seen yet). */
export function kexPatch (): KexPatch | null {
  return state
}

/**
 * Patches the class of `kex` (ssh2's Protocol._kex, after its 'handshake') if it is the curve25519 exchange whose
 * source matches; once done (or found not to match), later calls do nothing.
 */
export function patchKeyExchange (kex: unknown): void {
  if (state !== null || kex === null || typeof kex !== 'object') return
  const prototype = Object.getPrototypeOf(kex) as Curve25519Like
  if (prototype?.constructor?.name !== 'Curve25519Exchange') return
  const hash = (fn: unknown): string => createHash('sha256').update(String(fn)).digest('hex')
  const original = { getPublicKey: prototype.getPublicKey, computeSecret: prototype.computeSecret }
  const patched = hash(original.getPublicKey) === SOURCES.getPublicKey && hash(original.computeSecret) === SOURCES.computeSecret
  if (patched) {
    prototype.getPublicKey = getPublicKey
    prototype.computeSecret = computeSecret
  }
  state = { original, patched }
}
