// Authtokens and API keys: `<id>.<secret>` strings shown once; the store keeps only a scrypt hash of the
// secret, so a leaked identity.json does not hand out logins. The id part finds the record without
// trying every hash.
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto'

// 16 MiB and ~50 ms per check: cheap for a login, costly for a guesser (who is also slowed per address).
const PARAMS = { N: 16384, r: 8, p: 1 } as const
const KEY_LENGTH = 32

// At most two hashes at a time: each takes a libuv thread (of 4, shared with file and DNS work) for ~50 ms,
// and guesses sent in parallel must not starve the rest of the gateway. Waiting callers queue (bounded by
// the SSH and API connection limits).
const MAX_CONCURRENT = 2
let running = 0
const waiting: Array<() => void> = []

async function scryptAsync (secret: string, salt: Buffer, options: ScryptOptions): Promise<Buffer> {
  if (running >= MAX_CONCURRENT) await new Promise<void>((resolve) => waiting.push(resolve))
  running++
  try {
    return await new Promise((resolve, reject) => scrypt(secret, salt, KEY_LENGTH, options, (error, key) => (error ? reject(error) : resolve(key))))
  } finally {
    running--
    waiting.shift()?.()
  }
}

/** A new random id with a prefix (`tok_`, `key_`, ...): 10 characters of base32-ish text. */
export function newId (prefix: string): string {
  const alphabet = 'abcdefghjkmnpqrstuvwxyz23456789'
  const bytes = randomBytes(10)
  let id = prefix
  for (const byte of bytes) id += alphabet[byte % alphabet.length]
  return id
}

export function newSecret (): string {
  return randomBytes(32).toString('base64url')
}

export async function hashSecret (secret: string): Promise<string> {
  const salt = randomBytes(16)
  const key = await scryptAsync(secret, salt, PARAMS)
  return `scrypt$${PARAMS.N}$${PARAMS.r}$${PARAMS.p}$${salt.toString('base64')}$${key.toString('base64')}`
}

export async function verifySecret (secret: string, hash: string): Promise<boolean> {
  const [scheme, n, r, p, salt, expected] = hash.split('$')
  if (scheme !== 'scrypt' || !salt || !expected) return false
  const want = Buffer.from(expected, 'base64')
  const key = await scryptAsync(secret, Buffer.from(salt, 'base64'), { N: Number(n), r: Number(r), p: Number(p), maxmem: 64 * 1024 * 1024 })
  return key.length === want.length && timingSafeEqual(key, want)
}

/** Splits `<id>.<secret>`; null when the text cannot be one of ours. */
export function splitCredential (text: string, prefix: string): { id: string, secret: string } | null {
  const dot = text.indexOf('.')
  if (dot <= prefix.length || !text.startsWith(prefix) || text.length > 200) return null
  return { id: text.slice(0, dot), secret: text.slice(dot + 1) }
}
