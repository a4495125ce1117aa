// OpenSSH authorized_keys files: which public keys may log in. Options before the key type and comments
// after it are tolerated (and ignored). Files are re-read when they change, so an operator can add a key
// without restarting the gateway.
import { readFileSync, statSync } from 'node:fs'
import ssh2 from 'ssh2'

const { utils } = ssh2
import { PortholeError } from '../core/errors.js'
import { fingerprint } from './fingerprint.js'
import { weakKeyReason } from './key-strength.js'

const KEY = /(?:^|\s)((?:ssh-(?:ed25519|rsa|dss)|ecdsa-sha2-nistp(?:256|384|521)|sk-[a-z0-9@.-]+))\s+([A-Za-z0-9+/]+={0,2})(?:\s|$)/

export interface AuthorizedKey {
  readonly fingerprint: string
  readonly blob: Buffer
  readonly comment: string
}

/** Parses one file's text; bad lines are reported with their line number. */
export function parseAuthorizedKeys (text: string, source: string): { keys: AuthorizedKey[], errors: string[] } {
  const keys: AuthorizedKey[] = []
  const errors: string[] = []
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) return
    const match = KEY.exec(line)
    const parsed = match ? utils.parseKey(`${match[1]} ${match[2]}`) : null
    if (!match || !parsed || parsed instanceof Error) {
      errors.push(`${source}:${index + 1}: not a public key line`)
      return
    }
    const key = Array.isArray(parsed) ? parsed[0]! : parsed
    const blob = key.getPublicSSH()
    const weak = weakKeyReason(blob)
    if (weak !== null) {
      errors.push(`${source}:${index + 1}: key ${fingerprint(blob)} refused: too weak (${weak})`)
      return
    }
    const comment = line.slice(match.index + match[0].length).trim()
    keys.push({ fingerprint: fingerprint(blob), blob, comment })
  })
  return { keys, errors }
}

export class AuthorizedKeys {
  readonly #files: readonly string[]
  readonly #onWarning: (message: string) => void
  #stamp = ''
  #byFingerprint = new Map<string, AuthorizedKey>()

  constructor (files: readonly string[], onWarning: (message: string) => void) {
    this.#files = files
    this.#onWarning = onWarning
    this.#reload(true)
  }

  get configured (): boolean {
    return this.#files.length > 0
  }

  get size (): number {
    return this.#byFingerprint.size
  }

  find (blob: Buffer): AuthorizedKey | undefined {
    this.#reload(false)
    return this.#byFingerprint.get(fingerprint(blob))
  }

  #reload (first: boolean): void {
    let stamp = ''
    for (const file of this.#files) {
      try {
        const stat = statSync(file)
        stamp += `${file}:${stat.mtimeMs}:${stat.size};`
      } catch (error) {
        if (first) throw new PortholeError('PH_2001', `--authorized-keys ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`)
        stamp += `${file}:missing;`
      }
    }
    if (stamp === this.#stamp) return
    this.#stamp = stamp
    const next = new Map<string, AuthorizedKey>()
    for (const file of this.#files) {
      let text: string
      try {
        text = readFileSync(file, 'utf8')
      } catch {
        this.#onWarning(`${file}: cannot be read; its keys are not accepted until it can`)
        continue
      }
      const { keys, errors } = parseAuthorizedKeys(text, file)
      for (const error of errors) this.#onWarning(error)
      for (const key of keys) next.set(key.fingerprint, key)
    }
    this.#byFingerprint = next
  }
}
