// What the identity store holds: accounts and what they own (SSH keys, authtokens, reservations), plus the
// admin API's keys. Plain JSON-able records; secrets are kept only as scrypt hashes.

export interface Account {
  /** Lower-case name, unique: also the account's id in the API and CLI. */
  readonly name: string
  readonly createdAt: string
}

export interface KeyRecord {
  readonly id: string
  readonly account: string
  /** SHA256:... as OpenSSH prints it. Unique across accounts. */
  readonly fingerprint: string
  /** `type base64` (the comment is dropped). */
  readonly publicKey: string
  /** ngrok-style `bind:...` entries; empty: anything the account may bind. */
  readonly acl: readonly string[]
  readonly description: string
  readonly createdAt: string
}

export interface TokenRecord {
  readonly id: string
  readonly account: string
  /** scrypt hash of the secret (see secrets.ts). */
  readonly hash: string
  readonly acl: readonly string[]
  readonly description: string
  readonly createdAt: string
}

export type ReservationKind = 'domain' | 'tcp'

export interface Reservation {
  readonly id: string
  readonly account: string
  readonly kind: ReservationKind
  /** A host (`shop.example.com`, `*.ann.example.com`) or a TCP port as text. */
  readonly value: string
  readonly createdAt: string
}

export interface ApiKeyRecord {
  readonly id: string
  readonly hash: string
  readonly description: string
  readonly createdAt: string
}

export interface IdentityData {
  version: 1
  accounts: Account[]
  keys: KeyRecord[]
  tokens: TokenRecord[]
  reservations: Reservation[]
  apiKeys: ApiKeyRecord[]
}

/** Whether any account can log in (a key or an authtoken): then strangers are not let in anonymously. */
export function hasCredentials (data: Partial<IdentityData>): boolean {
  return (data.keys?.length ?? 0) > 0 || (data.tokens?.length ?? 0) > 0
}

export function emptyIdentityData (): IdentityData {
  return { version: 1, accounts: [], keys: [], tokens: [], reservations: [], apiKeys: [] }
}

/**
 * Where identity data lives. Reads come from memory; `update` applies one change and resolves only once it
 * is durable (a crash after that loses nothing). A change that throws leaves the data untouched.
 */
export interface IdentityStore {
  read (): IdentityData
  update<T> (change: (data: IdentityData) => T): Promise<T>
  /** Called after the data changed (by this process or, for file stores, by another writer). */
  onChange (listener: () => void): void
  close (): Promise<void>
}
