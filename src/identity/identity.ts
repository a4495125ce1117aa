// Accounts and what they own, as operations with checked input: what the admin API calls, and what the SSH
// agent asks at login (which account does this key / authtoken belong to, with which ACL) and at bind time
// (is this name reserved for someone else). Every error is a PortholeError with a PH_5xxx code.
import { createHash } from 'node:crypto'
import ssh2 from 'ssh2'
import { LRUCache } from 'lru-cache'
import { PortholeError } from '../core/errors.js'
import { bareName, domainClaims, isUnder, isValidLabel, parseBindAddress } from '../core/names.js'
import { parseAcl } from './acl.js'
import { fingerprint } from './fingerprint.js'
import { weakKeyReason } from './key-strength.js'
import { hasCredentials, type Account, type ApiKeyRecord, type IdentityStore, type KeyRecord, type Reservation, type ReservationKind, type TokenRecord } from './model.js'
import { hashSecret, newId, newSecret, splitCredential, verifySecret } from './secrets.js'

const { utils } = ssh2

export const TOKEN_PREFIX = 'tok_'
export const API_KEY_PREFIX = 'ak_'

export interface IdentityOptions {
  readonly domain: string
  readonly tcpPorts: { readonly lo: number, readonly hi: number }
}

export interface CredentialOptions {
  readonly acl?: readonly string[]
  readonly description?: string
}

const MAX_DESCRIPTION = 255

function now (): string {
  return new Date().toISOString()
}

function description (text: string | undefined): string {
  const value = (text ?? '').trim()
  if (value.length > MAX_DESCRIPTION || /[\r\n\0]/.test(value)) throw new PortholeError('PH_5001', `description (one line, at most ${MAX_DESCRIPTION} characters)`)
  return value
}

export function checkAccountName (name: string): string {
  const value = String(name).trim().toLowerCase()
  if (!isValidLabel(value)) throw new PortholeError('PH_5001', `account name ${JSON.stringify(name)} (a-z, 0-9 and inner '-', at most 63 characters)`)
  return value
}

/** A reservation as the registry names what it binds: the host, or `tcp:PORT`. */
function registryKey (reservation: Pick<Reservation, 'kind' | 'value'>): string {
  return reservation.kind === 'tcp' ? `tcp:${reservation.value}` : reservation.value
}

/**
 * Whether binding `key` (a host, `*.suffix` or `tcp:PORT`) touches `reservation`: its port, or its domain as
 * domainClaims says (the name and everything under it, wildcards covering it; `*.ann` also keeps `ann`).
 */
function reservationClaims (reservation: Pick<Reservation, 'kind' | 'value'>, key: string): boolean {
  if (reservation.kind === 'tcp') return registryKey(reservation) === key
  return !key.startsWith('tcp:') && domainClaims(reservation.value, key)
}

export class Identity {
  readonly #store: IdentityStore
  readonly #options: IdentityOptions
  /** Verified API keys by a digest of the presented text: scrypt on every API call would be slow. */
  readonly #apiKeyCache = new LRUCache<string, string>({ max: 1000, ttl: 60_000 })

  constructor (store: IdentityStore, options: IdentityOptions) {
    this.#store = store
    this.#options = options
  }

  get store (): IdentityStore {
    return this.#store
  }

  onChange (listener: () => void): void {
    this.#store.onChange(listener)
  }

  // --- accounts ------------------------------------------------------------------------------------------

  listAccounts (): Account[] {
    return [...this.#store.read().accounts]
  }

  getAccount (name: string): Account {
    const account = this.#store.read().accounts.find((a) => a.name === name)
    if (!account) throw new PortholeError('PH_5003', `account ${JSON.stringify(name)}`)
    return account
  }

  async createAccount (name: string): Promise<Account> {
    const value = checkAccountName(name)
    return this.#store.update((data) => {
      if (data.accounts.some((a) => a.name === value)) throw new PortholeError('PH_5002', `account ${value}`)
      const account = { name: value, createdAt: now() }
      data.accounts.push(account)
      return account
    })
  }

  /** Deletes an account with its keys, tokens and reservations. */
  deleteAccount (name: string): Promise<void> {
    return this.#store.update((data) => {
      if (!data.accounts.some((a) => a.name === name)) throw new PortholeError('PH_5003', `account ${JSON.stringify(name)}`)
      data.accounts = data.accounts.filter((a) => a.name !== name)
      data.keys = data.keys.filter((k) => k.account !== name)
      data.tokens = data.tokens.filter((t) => t.account !== name)
      data.reservations = data.reservations.filter((r) => r.account !== name)
    })
  }

  // --- SSH keys ------------------------------------------------------------------------------------------

  listKeys (account?: string): KeyRecord[] {
    return this.#store.read().keys.filter((k) => account === undefined || k.account === account)
  }

  /** Adds a public key (an OpenSSH `type base64 [comment]` line) to an account. */
  async addKey (account: string, publicKey: string, options: CredentialOptions = {}): Promise<KeyRecord> {
    const parsed = utils.parseKey(String(publicKey).trim())
    const key = parsed instanceof Error || !parsed ? null : Array.isArray(parsed) ? parsed[0] : parsed
    if (!key || key.isPrivateKey()) throw new PortholeError('PH_5001', 'public key (want one OpenSSH line: ssh-ed25519 AAAA... [comment])')
    const blob = key.getPublicSSH()
    const weak = weakKeyReason(blob)
    if (weak !== null) throw new PortholeError('PH_5001', `public key ${fingerprint(blob)}: too weak (${weak}); make a new one with ssh-keygen -t ed25519`)
    const record: KeyRecord = {
      id: newId('key_'),
      account,
      fingerprint: fingerprint(blob),
      publicKey: `${key.type} ${blob.toString('base64')}`,
      acl: parseAcl(options.acl ?? [], this.#options.domain),
      description: description(options.description ?? (key.comment || undefined)),
      createdAt: now(),
    }
    return this.#store.update((data) => {
      this.#requireAccount(data.accounts, account)
      const existing = data.keys.find((k) => k.fingerprint === record.fingerprint)
      // Which account holds it is not said: keys are not secret, but accounts are not to be enumerated.
      if (existing) throw new PortholeError('PH_5002', `key ${record.fingerprint}`)
      data.keys.push(record)
      return record
    })
  }

  removeKey (id: string): Promise<void> {
    return this.#removeById('keys', id, 'key')
  }

  /** The registered key with this fingerprint (SHA256:...), if any. */
  findKey (print: string): KeyRecord | undefined {
    return this.#store.read().keys.find((k) => k.fingerprint === print)
  }

  // --- authtokens ----------------------------------------------------------------------------------------

  listTokens (account?: string): TokenRecord[] {
    return this.#store.read().tokens.filter((t) => account === undefined || t.account === account)
  }

  get hasTokens (): boolean {
    return this.#store.read().tokens.length > 0
  }

  /** Whether any account can log in (a key or an authtoken): then strangers are not let in anonymously. */
  get hasCredentials (): boolean {
    return hasCredentials(this.#store.read())
  }

  /** A new authtoken; `token` is shown once and never stored. */
  async createToken (account: string, options: CredentialOptions = {}): Promise<{ record: TokenRecord, token: string }> {
    const acl = parseAcl(options.acl ?? [], this.#options.domain)
    const text = description(options.description)
    this.getAccount(account)
    const id = newId(TOKEN_PREFIX)
    const secret = newSecret()
    const record: TokenRecord = { id, account, hash: await hashSecret(secret), acl, description: text, createdAt: now() }
    await this.#store.update((data) => {
      this.#requireAccount(data.accounts, account)
      data.tokens.push(record)
    })
    return { record, token: `${id}.${secret}` }
  }

  revokeToken (id: string): Promise<void> {
    return this.#removeById('tokens', id, 'token')
  }

  /** The token record a presented authtoken belongs to, or undefined (unknown, revoked, wrong secret). */
  async verifyToken (text: string): Promise<TokenRecord | undefined> {
    const parts = splitCredential(text.trim(), TOKEN_PREFIX)
    if (!parts) return undefined
    const record = this.#store.read().tokens.find((t) => t.id === parts.id)
    if (!record || !(await verifySecret(parts.secret, record.hash))) return undefined
    // Revoked while we were hashing?
    return this.#store.read().tokens.find((t) => t.id === record.id)
  }

  // --- reservations --------------------------------------------------------------------------------------

  listReservations (account?: string): Reservation[] {
    return this.#store.read().reservations.filter((r) => account === undefined || r.account === account)
  }

  /** Reserves a domain (`shop`, `shop.example.com`, `*.ann.example.com`) or a TCP port of the pool. */
  async reserve (account: string, kind: ReservationKind, value: string): Promise<Reservation> {
    const wanted = { kind, value: this.#reservationValue(kind, value) }
    const normalised = wanted.value
    return this.#store.update((data) => {
      this.#requireAccount(data.accounts, account)
      for (const other of data.reservations) {
        if (!reservationClaims(other, registryKey(wanted)) && !reservationClaims(wanted, registryKey(other))) continue
        if (other.account === account && registryKey(other) === registryKey(wanted)) throw new PortholeError('PH_5002', `reservation ${normalised}`)
        if (other.account !== account) throw new PortholeError('PH_5004', normalised)
      }
      const reservation: Reservation = { id: newId('res_'), account, kind, value: normalised, createdAt: now() }
      data.reservations.push(reservation)
      return reservation
    })
  }

  unreserve (id: string): Promise<void> {
    return this.#removeById('reservations', id, 'reservation')
  }

  /**
   * Whether binding `key` (a host, `*.suffix` or `tcp:PORT`) would take what another account reserved
   * (see reservationClaims). `account` undefined: any reservation at all counts (random names avoid them).
   */
  reservedAgainst (key: string, account: string | undefined): boolean {
    return this.#store.read().reservations.some((r) => r.account !== account && reservationClaims(r, key))
  }

  /**
   * Whether an account other than `account` (undefined: any) reserved a domain strictly under `key`, an exact
   * name: binding `key` would sit above their reservation, able to set cookies that reach it.
   */
  reservedBelow (key: string, account: string | undefined): boolean {
    if (key.startsWith('tcp:') || key.startsWith('*.')) return false // wildcards over a reservation: reservedAgainst
    return this.#store.read().reservations.some((r) => r.account !== account && r.kind === 'domain' && bareName(r.value) !== key && isUnder(bareName(r.value), key))
  }

  /**
   * Whether `account` reserved `key` or a domain above it: then its credentials may bind `key` even next to
   * (under or above) a name another owner holds. Wildcards covering the reservation are not granted by it.
   */
  reservedFor (key: string, account: string): boolean {
    if (key.startsWith('tcp:')) return false
    return this.#store.read().reservations.some((r) => r.account === account && r.kind === 'domain' && isUnder(bareName(key), bareName(r.value)))
  }

  #reservationValue (kind: ReservationKind, value: string): string {
    if (kind === 'tcp') {
      const port = Number(value)
      const { lo, hi } = this.#options.tcpPorts
      if (!Number.isInteger(port) || port < lo || port > hi) throw new PortholeError('PH_5001', `port ${JSON.stringify(value)} (the TCP pool is ${lo}-${hi})`)
      return String(port)
    }
    if (kind !== 'domain') throw new PortholeError('PH_5001', `reservation kind ${JSON.stringify(kind)} (domain or tcp)`)
    let host
    try {
      host = parseBindAddress(String(value), this.#options.domain)
    } catch (error) {
      throw new PortholeError('PH_5001', `domain: ${(error as Error).message}`)
    }
    if (host.kind === 'random') throw new PortholeError('PH_5001', `domain ${JSON.stringify(value)}`)
    return host.host
  }

  // --- admin API keys ------------------------------------------------------------------------------------

  listApiKeys (): ApiKeyRecord[] {
    return [...this.#store.read().apiKeys]
  }

  async createApiKey (options: { description?: string } = {}): Promise<{ record: ApiKeyRecord, key: string }> {
    const text = description(options.description)
    const id = newId(API_KEY_PREFIX)
    const secret = newSecret()
    const record: ApiKeyRecord = { id, hash: await hashSecret(secret), description: text, createdAt: now() }
    await this.#store.update((data) => {
      data.apiKeys.push(record)
    })
    return { record, key: `${id}.${secret}` }
  }

  revokeApiKey (id: string): Promise<void> {
    this.#apiKeyCache.clear()
    return this.#removeById('apiKeys', id, 'API key')
  }

  async verifyApiKey (text: string): Promise<ApiKeyRecord | undefined> {
    const parts = splitCredential(text.trim(), API_KEY_PREFIX)
    if (!parts) return undefined
    const digest = createHash('sha256').update(text.trim()).digest('base64')
    const find = (): ApiKeyRecord | undefined => this.#store.read().apiKeys.find((k) => k.id === parts.id)
    if (this.#apiKeyCache.get(digest) === parts.id) return find()
    const record = find()
    if (!record || !(await verifySecret(parts.secret, record.hash))) return undefined
    this.#apiKeyCache.set(digest, record.id)
    return find()
  }

  /** Deletes the record `id` of one collection; PH_5003 naming `what` when there is none. */
  #removeById (collection: 'keys' | 'tokens' | 'reservations' | 'apiKeys', id: string, what: string): Promise<void> {
    return this.#store.update((data) => {
      const records: Array<{ id: string }> = data[collection]
      const index = records.findIndex((r) => r.id === id)
      if (index === -1) throw new PortholeError('PH_5003', `${what} ${JSON.stringify(id)}`)
      records.splice(index, 1)
    })
  }

  #requireAccount (accounts: Account[], name: string): void {
    if (!accounts.some((a) => a.name === name)) throw new PortholeError('PH_5003', `account ${JSON.stringify(name)}`)
  }
}
