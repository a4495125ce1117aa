// Private keys in the data dir: generated on first use, written once (two gateways starting together on
// one data dir agree on the first key written; see storage/files.ts) and kept at mode 0600.
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { chmodSync } from 'node:fs'
import { createOnce, readIfExists } from '../storage/files.js'

export { createOnce, ensureDataDir, readIfExists, replaceFile } from '../storage/files.js'

/** Loads the RSA private key (PKCS#8 PEM) at `path`, generating it on first use; keeps the file at 0600. */
export function loadOrCreateRsaKey (path: string, bits: number): string {
  // node:crypto, not forge: forge falls back to pure JS (seconds) when it cannot find the native call.
  return loadOrCreateKey(path, () => generateKeyPairSync('rsa', { modulusLength: bits, publicExponent: 0x10001 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string)
}

/** A new ECDSA P-256 private key as PKCS#8 PEM (ACME account and certificate keys). */
export function newEcKeyPem (): string {
  return generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string
}

/** Loads the ECDSA P-256 private key (PKCS#8 PEM) at `path`, generating it on first use; keeps it at 0600. */
export function loadOrCreateEcKey (path: string): string {
  return loadOrCreateKey(path, newEcKeyPem)
}

/** A 256-bit secret (hex) at `path`, made on first use and kept at 0600: the gateway's session secret, which
 *  signs the login actions' cookies, so sessions outlive reconnects and restarts. */
export function loadOrCreateSecret (path: string): Buffer {
  const hex = loadOrCreateKey(path, () => `${randomBytes(32).toString('hex')}\n`).trim()
  if (!/^[0-9a-f]{64,}$/.test(hex)) throw new Error(`${path}: want at least 64 hex digits`)
  return Buffer.from(hex, 'hex')
}

function loadOrCreateKey (path: string, generate: () => string): string {
  let pem = readIfExists(path)
  if (pem === null) pem = createOnce(path, generate(), 0o600)
  chmodSync(path, 0o600)
  return pem
}
