// Which endpoint serves which host, and who owns which name. A name belongs to the owner that first bound
// it; when its endpoint goes away the owner keeps a hold on it for a grace period, so the same key gets the
// same name back (random names included) and nobody else can take it meanwhile, nor a name under or above
// it (from there cookies can be tossed onto its hosts) unless the operator granted that. No I/O here: the holds are
// handed to a persistence callback (identity/name-store) whenever they change. Bookkeeping per bind and unbind
// is O(1) in the number of holds (core/hold-index.ts), so setting up a tunnel costs the same with 10,000 up.
// Known owners (a credential the operator issued) and anonymous ones (any key, in anonymous mode) hold names
// in two budgets: strangers making up keys can fill only theirs, where the oldest offline name makes room for
// a new one and the grace period is shorter. Known owners' names are never let go for anyone else.
import { randomInt, randomUUID } from 'node:crypto'
import { PortholeError } from './errors.js'
import { parseBindAddress, randomLabel, wildcardsFor } from './names.js'
import { HoldIndex } from './hold-index.js'
import type { AgentRef, Dialer, Endpoint, EndpointHooks, EndpointSpec, Owner } from './endpoint.js'

/** A name held by an owner. `slot` tells random names of one owner apart (the -R bind address and port). */
export interface Hold {
  host: string
  ownerId: string
  random: boolean
  slot: string | null
  /** The owner's account, when it has one (reservations are per account). */
  account?: string
  /** ms since epoch when the hold lapses; null while an endpoint is bound to it. */
  expiresAt: number | null
  /** Held by an anonymous owner (not logged in with a credential the operator issued). */
  anonymous?: true
}

export interface RegistryOptions {
  domain: string
  graceMs: number
  /** The grace period of anonymous owners' names (default: graceMs). */
  anonymousGraceMs?: number
  /** Holds (bound or not) of known owners; past it new names are refused, never others' evicted. */
  maxHolds?: number
  /** Holds of anonymous owners; past it the oldest offline one of them makes room (all online: refused). */
  maxAnonymousHolds?: number
  /** Holds of one owner; past it that owner's oldest unbound hold makes room. */
  maxHoldsPerOwner?: number
  now?: () => number
  /** Called with a copy of every hold after each change (costs a copy of all holds per change: tests). */
  onHoldsChanged?: (holds: Hold[]) => void
  /** Called after each change, with nothing: the listener reads holds() when it persists them (batched). */
  onHoldsDirty?: () => void
  /**
   * Whether `key` (a host, `*.suffix` or `tcp:PORT`) is reserved for an account other than `account`
   * (undefined: for any account). Reserved names are never given to anyone else, random ones included.
   */
  reservedAgainst?: (key: string, account: string | undefined) => boolean
  /** Whether `account` reserved `key` or a domain above it (which lets it bind next to others' names). */
  reservedFor?: (key: string, account: string) => boolean
  /** Whether an account other than `account` reserved a domain strictly under the exact name `key` (its parent
   *  could set cookies reaching it). Such a name is refused like one above another owner's held name. */
  reservedBelow?: (key: string, account: string | undefined) => boolean
}

export interface BindRequest {
  bindAddr: string
  slot: string
  spec: EndpointSpec
  owner: Owner
  dial: Dialer
  hooks: EndpointHooks
  agent: AgentRef
}

export interface TcpBindRequest extends Omit<BindRequest, 'bindAddr'> {
  /** 0 for any free port of the pool. */
  port: number
  range: { lo: number, hi: number }
  /** Ports found unusable (another program listens there): never chosen again for this request. */
  exclude?: ReadonlySet<number>
}

export type Lookup =
  | { state: 'bound', endpoint: Endpoint }
  | { state: 'offline', host: string }
  | { state: 'unknown' }

export class Registry {
  readonly #domain: string
  readonly #graceMs: number
  readonly #anonymousGraceMs: number
  readonly #maxHolds: number
  readonly #maxAnonymousHolds: number
  readonly #unbindListeners = new Set<(endpoint: Endpoint) => void>()
  readonly #maxHoldsPerOwner: number
  readonly #now: () => number
  readonly #onHoldsChanged: ((holds: Hold[]) => void) | undefined
  readonly #onHoldsDirty: (() => void) | undefined
  readonly #reservedAgainst: (key: string, account: string | undefined) => boolean
  readonly #reservedFor: (key: string, account: string) => boolean
  readonly #reservedBelow: (key: string, account: string | undefined) => boolean
  readonly #exact = new Map<string, Endpoint>()
  readonly #wildcard = new Map<string, Endpoint>()
  readonly #tcp = new Map<number, Endpoint>()
  readonly #holds: HoldIndex

  constructor (options: RegistryOptions) {
    this.#domain = options.domain
    this.#graceMs = options.graceMs
    this.#anonymousGraceMs = options.anonymousGraceMs ?? options.graceMs
    this.#maxHolds = options.maxHolds ?? 10_000
    this.#maxAnonymousHolds = options.maxAnonymousHolds ?? 2_000
    this.#maxHoldsPerOwner = options.maxHoldsPerOwner ?? 100
    this.#now = options.now ?? Date.now
    this.#onHoldsChanged = options.onHoldsChanged
    this.#onHoldsDirty = options.onHoldsDirty
    this.#holds = new HoldIndex(options.domain)
    this.#reservedAgainst = options.reservedAgainst ?? (() => false)
    this.#reservedFor = options.reservedFor ?? (() => false)
    this.#reservedBelow = options.reservedBelow ?? (() => false)
  }

  /**
   * Restores holds saved by an earlier run; names bound then are held for the grace period from now.
   * Anonymous holds past their budget (a flood before the restart, or a smaller budget now) are dropped
   * oldest first. A hold saved without the anonymous mark counts as known (files of older versions).
   */
  restore (holds: Hold[]): void {
    const now = this.#now()
    const anonymous = holds.filter((hold) => hold.anonymous === true && (hold.expiresAt ?? Infinity) > now)
      .sort((a, b) => (a.expiresAt ?? Infinity) - (b.expiresAt ?? Infinity))
    const dropped = new Set(anonymous.slice(0, Math.max(0, anonymous.length - this.#maxAnonymousHolds)))
    for (const hold of holds) {
      if (dropped.has(hold)) continue
      // No hold outlives its grace period counted from now (it may have been saved under a longer one).
      const until = now + (hold.anonymous === true ? this.#anonymousGraceMs : this.#graceMs)
      const expiresAt = Math.min(hold.expiresAt ?? until, until)
      if (expiresAt > now) this.#holds.set({ ...hold, ...(hold.anonymous === true ? { anonymous: true } : {}), expiresAt })
    }
  }

  get size (): number {
    return this.#exact.size + this.#wildcard.size + this.#tcp.size
  }

  endpoints (): Endpoint[] {
    return [...this.#exact.values(), ...this.#wildcard.values(), ...this.#tcp.values()]
  }

  /**
   * Binds an endpoint for what the client asked (its bind address), or throws a PortholeError saying why not.
   * The same owner asking again for an exact name it has bound in another session takes it over (that
   * session is most likely dead and not yet noticed).
   */
  bind (request: BindRequest): Endpoint {
    const wanted = parseBindAddress(request.bindAddr, this.#domain)
    const owner = request.owner
    let host: string
    let random = false
    if (wanted.kind === 'random') {
      host = this.#randomHostFor(owner, request.slot)
      random = true
    } else {
      host = wanted.host
      if (this.#reservedAgainst(host, owner.account)) throw new PortholeError('PH_1011', host)
      if (this.#reservedBelow(host, owner.account) && !this.#granted(host, owner)) throw new PortholeError('PH_1060', host)
      this.#checkMayBind(host, owner)
    }
    this.#checkAcl(host, owner)
    return this.#add(host, undefined, random, request)
  }

  /**
   * Binds a tcp endpoint on `port`, or on a free port of the range for 0 (the owner's held port for this
   * slot first, so a reconnect gets its port back). Throws PH_1030/1031/1032.
   */
  bindTcp (request: TcpBindRequest): Endpoint {
    const { owner, range } = request
    let port = request.port
    const random = port === 0
    if (random) {
      port = this.#freePortFor(owner, request.slot, range, request.exclude)
    } else {
      if (port < range.lo || port > range.hi) throw new PortholeError('PH_1031', `${port} (pool ${range.lo}-${range.hi})`)
      const hold = this.#holds.get(`tcp:${port}`)
      if ((hold && hold.ownerId !== owner.id && this.#live(hold)) || request.exclude?.has(port) || this.#reservedAgainst(`tcp:${port}`, owner.account)) {
        throw new PortholeError('PH_1030', String(port))
      }
    }
    this.#checkAcl(`tcp:${port}`, owner)
    return this.#add(`tcp:${port}`, port, random, request)
  }

  lookupTcp (port: number): Endpoint | undefined {
    return this.#tcp.get(port)
  }

  #mapFor (key: string): Map<string, Endpoint> | Map<number, Endpoint> {
    return key.startsWith('tcp:') ? this.#tcp : key.startsWith('*.') ? this.#wildcard : this.#exact
  }

  #current (endpoint: { host: string, port?: number }): Endpoint | undefined {
    return endpoint.port !== undefined ? this.#tcp.get(endpoint.port) : (this.#mapFor(endpoint.host) as Map<string, Endpoint>).get(endpoint.host)
  }

  #add (key: string, port: number | undefined, random: boolean, request: Omit<BindRequest, 'bindAddr'>): Endpoint {
    this.#makeRoom(key, request.owner)
    const previous = this.#current({ host: key, ...(port !== undefined ? { port } : {}) })
    if (previous) {
      this.unbind(previous)
      previous.hooks.onEvicted?.()
    }
    const endpoint: Endpoint = {
      id: randomUUID(),
      host: key,
      ...(port !== undefined ? { port } : {}),
      spec: request.spec,
      owner: request.owner,
      dial: request.dial,
      hooks: request.hooks,
      agent: request.agent,
    }
    if (port !== undefined) this.#tcp.set(port, endpoint)
    else (this.#mapFor(key) as Map<string, Endpoint>).set(key, endpoint)
    const account = request.owner.account
    const anonymous = request.owner.known !== true
    this.#holds.set({ host: key, ownerId: request.owner.id, random, slot: random ? request.slot : null, ...(account ? { account } : {}), expiresAt: null, ...(anonymous ? { anonymous: true } : {}) })
    this.#changed()
    return endpoint
  }

  /**
   * Removes an endpoint; its owner keeps the name for the grace period (unless keepHold is false: a bind
   * that never went live). Safe to call twice.
   */
  unbind (endpoint: Endpoint, { keepHold = true }: { keepHold?: boolean } = {}): void {
    if (this.#current(endpoint) !== endpoint) return
    if (endpoint.port !== undefined) this.#tcp.delete(endpoint.port)
    else (this.#mapFor(endpoint.host) as Map<string, Endpoint>).delete(endpoint.host)
    for (const listener of this.#unbindListeners) listener(endpoint)
    const hold = this.#holds.get(endpoint.host)
    if (hold && hold.ownerId === endpoint.owner.id) {
      if (endpoint.owner.persistent && keepHold) this.#holds.setOffline(hold, this.#now() + (hold.anonymous ? this.#anonymousGraceMs : this.#graceMs))
      else this.#holds.delete(endpoint.host)
    }
    this.#changed()
  }

  /** Whether `endpoint` is still bound (an edge attaching after an await checks it did not go meanwhile). */
  isBound (endpoint: Endpoint): boolean {
    return this.#current(endpoint) === endpoint
  }

  /** Calls `listener` with each endpoint as it is removed (the edge drops its state for it). Returns the unsubscribe. */
  onUnbind (listener: (endpoint: Endpoint) => void): () => void {
    this.#unbindListeners.add(listener)
    return () => this.#unbindListeners.delete(listener)
  }

  /** Routes a public Host (lower-case, no port): exact names first, then the most specific wildcard. */
  lookup (host: string): Lookup {
    const exact = this.#exact.get(host)
    if (exact) return { state: 'bound', endpoint: exact }
    if (this.#wildcard.size > 0) {
      for (const pattern of wildcardsFor(host)) {
        const endpoint = this.#wildcard.get(pattern)
        if (endpoint) return { state: 'bound', endpoint }
      }
    }
    const hold = this.#holds.get(host)
    if (hold && (hold.expiresAt === null || hold.expiresAt > this.#now())) return { state: 'offline', host }
    // A reserved name is someone's endpoint even while its account is not connected.
    if (this.#reservedAgainst(host, undefined)) return { state: 'offline', host }
    return { state: 'unknown' }
  }

  /**
   * Applies reservations made after names were taken: endpoints and holds of other owners on a reserved
   * name or port are removed (their sessions are told why). Returns the endpoints removed.
   */
  enforceReservations (): Endpoint[] {
    const removed: Endpoint[] = []
    let dropped = false
    for (const [key, hold] of [...this.#holds.entries()]) {
      if (!this.#reservedAgainst(key, hold.account)) continue
      dropped = true
      const endpoint = this.#current(key.startsWith('tcp:') ? { host: key, port: Number(key.slice(4)) } : { host: key })
      this.#holds.delete(key)
      if (endpoint) {
        this.unbind(endpoint, { keepHold: false })
        endpoint.hooks.onEvicted?.(new PortholeError(key.startsWith('tcp:') ? 'PH_1030' : 'PH_1011', key.replace(/^tcp:/, '')))
        removed.push(endpoint)
      }
    }
    if (dropped) this.#changed()
    return removed
  }

  holds (): Hold[] {
    return [...this.#holds.values()].map((hold) => ({ ...hold }))
  }

  /** The holds themselves, not copies (the name store serialises them at once, and caches by object). */
  holdValues (): IterableIterator<Readonly<Hold>> {
    return this.#holds.values()
  }

  #live (hold: Hold): boolean {
    return hold.expiresAt === null || hold.expiresAt > this.#now()
  }

  /**
   * Refuses a name another owner holds (bound or in its grace period) or one a wildcard of theirs serves
   * (PH_1011); and one under or above a name of theirs (PH_1060): `x.myapp` or `*.myapp` next to their
   * `myapp`, `team` above their `*.team`, where cookies set for the one reach the other's hosts. The operator
   * can grant the latter: a reservation of the owner's account, or its credential's ACL naming the name.
   */
  #checkMayBind (host: string, owner: Owner): void {
    for (const hold of this.#holds.coveringOrEqual(host)) {
      if (hold.ownerId !== owner.id && this.#live(hold)) throw new PortholeError('PH_1011', host)
    }
    if (this.#nextToOthers(host, owner) && !this.#granted(host, owner)) throw new PortholeError('PH_1060', host)
  }

  #granted (host: string, owner: Owner): boolean {
    return (owner.account !== undefined && this.#reservedFor(host, owner.account)) || owner.grants?.(host) === true
  }

  /** Whether an owner other than `owner` holds a name under or above `host` (random names avoid those). */
  #nextToOthers (host: string, owner: Owner): boolean {
    for (const hold of this.#holds.nestedWith(host)) {
      if (hold.ownerId !== owner.id && this.#live(hold)) return true
    }
    return false
  }

  #checkAcl (key: string, owner: Owner): void {
    const refusal = owner.refuses?.(key)
    if (refusal) throw new PortholeError('PH_1025', `${key.replace(/^tcp:/, 'tcp port ')}: ${refusal}`)
  }

  #freePortFor (owner: Owner, slot: string, range: { lo: number, hi: number }, exclude?: ReadonlySet<number>): number {
    const usable = (port: number): boolean => {
      if (exclude?.has(port) || this.#tcp.has(port) || this.#reservedAgainst(`tcp:${port}`, undefined)) return false
      const hold = this.#holds.get(`tcp:${port}`)
      return !hold || !this.#live(hold)
    }
    if (owner.persistent) {
      for (const hold of this.#holds.ownedBy(owner.id)) {
        if (!hold.host.startsWith('tcp:') || !hold.random || hold.ownerId !== owner.id || hold.slot !== slot || hold.expiresAt === null || !this.#live(hold)) continue
        const port = Number(hold.host.slice(4))
        if (port >= range.lo && port <= range.hi && !exclude?.has(port) && !this.#tcp.has(port)) return port
      }
    }
    const size = range.hi - range.lo + 1
    for (let i = 0; i < 32; i++) {
      const port = range.lo + randomInt(size)
      if (usable(port)) return port
    }
    for (let port = range.lo; port <= range.hi; port++) if (usable(port)) return port
    throw new PortholeError('PH_1032', `${range.lo}-${range.hi}`)
  }

  #randomHostFor (owner: Owner, slot: string): string {
    if (owner.persistent) {
      for (const hold of this.#holds.ownedBy(owner.id)) {
        if (hold.random && !hold.host.startsWith('tcp:') && hold.ownerId === owner.id && hold.slot === slot && hold.expiresAt !== null && this.#live(hold)) {
          return hold.host
        }
      }
    }
    for (;;) {
      const host = `${randomLabel()}.${this.#domain}`
      const hold = this.#holds.get(host)
      if (hold && this.#live(hold)) continue
      if (this.lookup(host).state !== 'unknown') continue // bound, held or reserved
      if (this.#nextToOthers(host, owner)) continue // someone's *.label or x.label
      return host
    }
  }

  #changed (): void {
    this.#prune()
    this.#onHoldsChanged?.(this.holds())
    this.#onHoldsDirty?.()
  }

  /** Drops lapsed holds. */
  #prune (): void {
    this.#holds.prune(this.#now())
  }

  /**
   * Bounds what one owner, and each class of owners, can make the registry keep. An owner over its share
   * loses its own oldest offline hold. Known owners together: a full budget refuses new names, because
   * evicting someone else's hold would let a stranger flood the table and then take the freed name.
   * Anonymous owners together: the oldest offline anonymous hold makes room (anonymous names are kept only
   * as long as strangers leave room); refused only while all of them are online.
   */
  #makeRoom (key: string, owner: Owner): void {
    if (this.#holds.get(key)?.ownerId === owner.id) return // re-binding a name it holds adds nothing
    this.#prune()
    const own = this.#holds.ownedBy(owner.id)
    if (own.size >= this.#maxHoldsPerOwner) {
      const oldest = oldestOffline(own)
      if (!oldest) throw new PortholeError('PH_1035', String(this.#maxHoldsPerOwner))
      this.#holds.delete(oldest.host)
    }
    const anonymous = owner.known !== true
    if (this.#holds.countOf(anonymous) < (anonymous ? this.#maxAnonymousHolds : this.#maxHolds)) return
    const oldest = anonymous ? this.#holds.oldestOffline(true) : undefined
    if (!oldest) throw new PortholeError('PH_1036')
    this.#holds.delete(oldest.host)
  }
}

/** The hold that went offline first (its grace ends first); undefined when all are bound. */
function oldestOffline (holds: Iterable<Hold>): Hold | undefined {
  let oldest: Hold | undefined
  for (const hold of holds) if (hold.expiresAt !== null && (!oldest || hold.expiresAt < oldest.expiresAt!)) oldest = hold
  return oldest
}
