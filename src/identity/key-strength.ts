// Client keys too weak to accept: RSA keys under 1024 bits, which OpenSSH's sshd and ssh refuse as well
// (RequiredRSASize, 1024 by default since OpenSSH 9.1). Such a modulus can be factored, and whoever factors it
// logs in as the key's owner and takes over its names. Checked at each SSH login and when a key is registered
// (admin API, CLI, authorized_keys files).
import { BlobReader } from './key-blob.js'

/** The smallest RSA modulus accepted, in bits. */
export const MIN_RSA_BITS = 1024

/** The size in bits of an ssh-rsa public key blob's modulus (RFC 4253 6.6: type, e, n); null for any other blob. */
export function rsaModulusBits (blob: Buffer): number | null {
  const reader = new BlobReader(blob)
  if (reader.string()?.toString('latin1') !== 'ssh-rsa') return null
  const e = reader.string()
  const n = e && reader.string()
  if (!n) return null
  let start = 0
  while (start < n.length && n[start] === 0) start++
  if (start === n.length) return 0
  return (n.length - start - 1) * 8 + (32 - Math.clz32(n[start]!))
}

/** Why a public key blob is too weak to accept (`RSA, 768 bits; at least 1024`), or null when it is not. */
export function weakKeyReason (blob: Buffer): string | null {
  const bits = rsaModulusBits(blob)
  return bits !== null && bits < MIN_RSA_BITS ? `RSA, ${bits} bits; at least ${MIN_RSA_BITS}` : null
}
