// Writing key and certificate files in the data dir so that no reader ever sees half a file and two gateways
// starting at once on the same data dir agree on one CA: each file is written to a temp file, fsynced, then
// hard-linked into place, which (unlike rename) fails when the name already exists. The loser reads the
// winner's file instead of overwriting it.
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { chmodSync, closeSync, fchmodSync, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs'

export function ensureDataDir (dataDir: string): void {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 })
}

/** The file's text, or null when it does not exist. */
export function readIfExists (path: string): string | null {
  try {
    return readFileSync(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw error
  }
}

/**
 * Creates `path` with `text` and `mode` unless it exists already; returns what the file holds afterwards
 * (ours, or the one another process created first).
 */
export function createOnce (path: string, text: string, mode: number): string {
  const temp = writeTemp(path, text, mode)
  try {
    linkSync(temp, path)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'EEXIST') return readFileSync(path, 'utf8')
    // Some file systems (FUSE, SMB) have no hard links; a rename is still atomic, only not exclusive.
    if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'ENOSYS') {
      renameSync(temp, path)
      return text
    }
    throw error
  } finally {
    try { unlinkSync(temp) } catch {}
  }
  return text
}

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

/** Replaces `path` with `text` in one step (temp file, fsync, rename): readers see the old or the new file. */
export function replaceFile (path: string, text: string, mode: number): void {
  const temp = writeTemp(path, text, mode)
  try {
    renameSync(temp, path)
  } catch (error) {
    try { unlinkSync(temp) } catch {}
    throw error
  }
}

/** Writes `text` to a new temp file beside `path` (fsynced, with exactly `mode`); returns its path. */
function writeTemp (path: string, text: string, mode: number): string {
  const temp = `${path}.${process.pid}.${Date.now()}.tmp`
  const fd = openSync(temp, 'wx', mode)
  try {
    fchmodSync(fd, mode) // the umask may have narrowed the mode given to open
    writeSync(fd, text)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  return temp
}
