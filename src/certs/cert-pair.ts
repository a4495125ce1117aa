// A certificate chain and its private key read from PEM text (bring-your-own files, ACME results), checked
// and turned into the TLS context the HTTPS listener serves. Shared by byo-certs.ts and acme-certs.ts.
import { X509Certificate, createPrivateKey } from 'node:crypto'
import { createSecureContext, type SecureContext } from 'node:tls'

export interface LoadedPair {
  readonly context: SecureContext
  /** The leaf certificate (the first in the chain). */
  readonly leaf: X509Certificate
  readonly notBefore: number
  readonly notAfter: number
}

/**
 * Checks that `certPem` starts with a certificate that `keyPem` belongs to, and makes the context
 * (the whole chain is served). Throws a plain Error whose message says what is wrong, for logs.
 */
export function loadPair (certPem: string, keyPem: string): LoadedPair {
  let leaf: X509Certificate
  try {
    leaf = new X509Certificate(certPem)
  } catch {
    throw new Error('not a PEM certificate')
  }
  let key
  try {
    key = createPrivateKey(keyPem)
  } catch {
    throw new Error('not a PEM private key (or one protected by a passphrase)')
  }
  if (!leaf.checkPrivateKey(key)) throw new Error('the key does not belong to the certificate')
  const context = createSecureContext({ cert: certPem, key: keyPem, minVersion: 'TLSv1.2' })
  return { context, leaf, notBefore: Date.parse(leaf.validFrom), notAfter: Date.parse(leaf.validTo) }
}

/** Whether the certificate covers `host` (an exact name, or `*.suffix` meaning every name one label deep). */
export function covers (leaf: X509Certificate, host: string): boolean {
  // A wildcard pattern is checked with a name it must cover; checkHost matches wildcards in the certificate.
  const name = host.startsWith('*.') ? `porthole-probe${host.slice(1)}` : host
  return leaf.checkHost(name, { subject: 'default' }) !== undefined
}
