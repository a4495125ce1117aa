// Signing and verifying with node:crypto KeyObjects made once, instead of the PEM text ssh2 hands to OpenSSL on
// every call. ssh2's parsed keys keep only PEM and pass it to crypto.sign/verify, so each signature re-runs
// OpenSSL 3's decoder: on the issue 13 box an ed25519 host-key signature took 457 µs that way and 37 µs with a
// KeyObject; a client's ed25519 key took 245 µs to verify (PEM) against 14 µs to import as a JWK plus the
// verification itself. Per new SSH session that is one host-key signature and one client-key verification.
//
// - Host keys: each is parsed by ssh2 as before and its private KeyObject made once at start-up; the parsed key
//   gets a `sign` of its own that uses it (same algorithm, same bytes: ed25519 and RSA PKCS#1 v1.5 signatures are
//   deterministic, and a test compares them with ssh2's). ssh2 takes an already parsed key as `{ key }`.
// - Client keys: the SSH public key blob (RFC 4253 6.6, RFC 5656 3.1, RFC 8709 4) of an ed25519, RSA or ECDSA key
//   becomes a JWK, which OpenSSL imports without its decoder; the blob must be exactly one well-formed key of
//   the type the client named. Any other key type (ssh-dss) or shape goes through ssh2's own parser as before.
//   Verification itself is node:crypto's in both cases.
import { createPrivateKey, createPublicKey, sign, verify, type JsonWebKey, type KeyObject } from 'node:crypto'
import ssh2, { type ParsedKey } from 'ssh2'
import { BlobReader } from '../../identity/key-blob.js'

const { utils } = ssh2

/** The hash ssh2 uses when the algorithm name does not choose one (rsa-sha2-* do), by key type. */
const DEFAULT_HASH: Record<string, string | null> = {
  'ssh-ed25519': null,
  'ssh-rsa': 'sha1',
  'ecdsa-sha2-nistp256': 'sha256',
  'ecdsa-sha2-nistp384': 'sha384',
  'ecdsa-sha2-nistp521': 'sha512',
}

/**
 * A host key as ssh2's Server `hostKeys` takes it, parsed once, whose signatures use a KeyObject made once.
 * A key type this module does not know keeps ssh2's own `sign`.
 */
export function signingHostKey (text: Buffer | string): { key: ParsedKey } {
  const parsed = utils.parseKey(text)
  if (parsed instanceof Error) throw new Error(`Cannot parse host key: ${parsed.message}`)
  const key = Array.isArray(parsed) ? parsed[0]! : parsed
  const pem = key.getPrivatePEM()
  if (!pem || !(key.type in DEFAULT_HASH)) return { key }
  const privateKey = createPrivateKey(pem)
  const fallback = DEFAULT_HASH[key.type]!
  // ssh2 calls sign(data, hashAlgo) and treats a returned Error as a failed signature.
  Object.defineProperty(key, 'sign', {
    value: function signWithKeyObject (data: Buffer, algo?: string): Buffer | Error {
      try {
        return sign(algo || fallback, data, privateKey)
      } catch (error) {
        return error as Error
      }
    },
  })
  return { key }
}

const EC_CURVES: Record<string, { name: string, crv: string, size: number }> = {
  'ecdsa-sha2-nistp256': { name: 'nistp256', crv: 'P-256', size: 32 },
  'ecdsa-sha2-nistp384': { name: 'nistp384', crv: 'P-384', size: 48 },
  'ecdsa-sha2-nistp521': { name: 'nistp521', crv: 'P-521', size: 66 },
}

/** An mpint's magnitude for a JWK: positive, leading zero bytes dropped; null if negative or zero. */
function unsigned (mpint: Buffer): Buffer | null {
  if (mpint.length === 0 || (mpint[0]! & 0x80) !== 0) return null
  let start = 0
  while (start < mpint.length && mpint[start] === 0) start++
  return start === mpint.length ? null : mpint.subarray(start)
}

/** The JWK of a public key blob of `type` (ed25519, RSA, ECDSA); null for any other type or a malformed blob. */
export function blobJwk (type: string, blob: Buffer): JsonWebKey | null {
  const reader = new BlobReader(blob)
  if (reader.string()?.toString('latin1') !== type) return null
  let jwk: JsonWebKey | null = null
  if (type === 'ssh-ed25519') {
    const x = reader.string()
    if (x?.length === 32) jwk = { kty: 'OKP', crv: 'Ed25519', x: x.toString('base64url') }
  } else if (type === 'ssh-rsa') {
    const e = reader.string()
    const n = reader.string()
    const eu = e && unsigned(e)
    const nu = n && unsigned(n)
    if (eu && nu) jwk = { kty: 'RSA', n: nu.toString('base64url'), e: eu.toString('base64url') }
  } else if (type in EC_CURVES) {
    const curve = EC_CURVES[type]!
    const name = reader.string()?.toString('latin1')
    const q = reader.string()
    // Uncompressed points only (0x04 || X || Y), as OpenSSH writes them.
    if (name === curve.name && q?.length === 1 + 2 * curve.size && q[0] === 0x04) {
      jwk = { kty: 'EC', crv: curve.crv, x: q.subarray(1, 1 + curve.size).toString('base64url'), y: q.subarray(1 + curve.size).toString('base64url') }
    }
  }
  return jwk !== null && reader.done ? jwk : null
}

/** The public KeyObject of a key blob; null when the blob is not a key this module reads or OpenSSL refuses it. */
export function publicKeyObject (type: string, blob: Buffer): KeyObject | null {
  const jwk = blobJwk(type, blob)
  if (jwk === null) return null
  try {
    return createPublicKey({ key: jwk, format: 'jwk' })
  } catch {
    return null
  }
}

/** The key type is the first string inside an SSH public key blob. */
function blobType (blob: Buffer): string | null {
  return new BlobReader(blob).string()?.toString('latin1') ?? null
}

/** What ssh2 gives a server for a publickey login with a signature. */
export interface SignedLogin {
  /** The key type the client named (rsa-sha2-* already mapped to ssh-rsa by ssh2). */
  readonly algo: string
  /** The public key blob. */
  readonly data: Buffer
  /** The signed data (session id + the request), and the signature (ECDSA's already in DER, as OpenSSL wants). */
  readonly blob: Buffer
  readonly signature: Buffer
  /** sha256 / sha512 for rsa-sha2-256 / -512, else undefined (the key type's own hash). */
  readonly hashAlgo?: string
}

/**
 * Whether the client's signature is valid for its key. The key named must be the blob's own type (OpenSSH's
 * sshd checks the same). ed25519, RSA and ECDSA keys go through a KeyObject made from a JWK; others through
 * ssh2's parser (its PEM), as before.
 */
export function verifyLogin (login: SignedLogin): boolean {
  const type = blobType(login.data)
  if (type === null || type !== login.algo) return false
  const key = publicKeyObject(type, login.data)
  if (key !== null) {
    try {
      return verify(login.hashAlgo ?? DEFAULT_HASH[type]!, login.blob, key, login.signature)
    } catch {
      return false
    }
  }
  if (type in DEFAULT_HASH) return false // one of ours, malformed: ssh2 would not do better
  const parsed = utils.parseKey(login.data)
  if (parsed instanceof Error) return false
  const fallback = Array.isArray(parsed) ? parsed[0]! : parsed
  return fallback.verify(login.blob, login.signature, login.hashAlgo) === true
}
