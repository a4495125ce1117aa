// Host keys: an ed25519 key for modern clients and an RSA key that can also sign with ssh-rsa (SHA-1) for
// Dropbear builds older than 2020 (no ed25519, no rsa-sha2). Generated on first start, reused afterwards.
// Which of them is offered, and with which algorithms (the legacy set and its switch), is algorithms.ts.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import ssh2 from 'ssh2'

const { utils } = ssh2

const KEYS = [
  { file: 'ssh_host_ed25519_key', generate: () => utils.generateKeyPairSync('ed25519') },
  { file: 'ssh_host_rsa_key', generate: () => utils.generateKeyPairSync('rsa', { bits: 3072 }) },
]

/**
 * ssh2 sometimes writes an ed25519 key its own parser then refuses ("Malformed OpenSSH private key",
 * about 1 in 75 here): keep only a key that parses back, so a first start never fails on it.
 */
export function generateParsable (generate: () => { private: string, public: string }): { private: string, public: string } {
  for (let attempt = 0; attempt < 20; attempt++) {
    const pair = generate()
    if (!(utils.parseKey(pair.private) instanceof Error)) return pair
  }
  throw new Error('could not generate a host key that ssh2 can read back')
}

/** Returns the host keys (PEM/OpenSSH text), creating the data dir (0700) and missing keys (0600). */
export function loadHostKeys (dataDir: string): Buffer[] {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  return KEYS.map(({ file, generate }) => {
    const path = join(dataDir, file)
    if (!existsSync(path)) {
      const pair = generateParsable(generate)
      writeFileSync(path, pair.private, { mode: 0o600, flag: 'wx' })
      writeFileSync(`${path}.pub`, `${pair.public}\n`, { mode: 0o644 })
    }
    chmodSync(path, 0o600)
    return readFileSync(path)
  })
}
